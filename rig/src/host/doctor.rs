//! Host provisioning: which tools rig needs, their versions, what is missing, and installing the
//! missing ones with apt on Debian/Ubuntu.

use super::version::tool_version_with;
use std::path::Path;

pub use super::version::tool_version;

/// What a tool is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// Booting and driving VMs, provisioning images.
    Core,
    /// Building kernels (`rig kernel build`, `rig-6.12` kernels, bisect).
    Kbuild,
    /// The test suite's host-side ssh server.
    Tests,
    /// Makes things faster or nicer; rig works without it.
    Optional,
}

/// How to tell that a tool is there.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// A command on PATH, asked for its version with this flag.
    Command(&'static str, &'static str),
    /// A file that must exist (headers, source tarballs).
    File(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub probe: Probe,
    /// The Debian/Ubuntu package providing it.
    pub package: &'static str,
    pub need: Need,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "qemu-system-x86_64",
        probe: Probe::Command("qemu-system-x86_64", "--version"),
        package: "qemu-system-x86",
        need: Need::Core,
    },
    Tool {
        name: "qemu-system-aarch64",
        probe: Probe::Command("qemu-system-aarch64", "--version"),
        package: "qemu-system-arm",
        need: Need::Core,
    },
    Tool {
        name: "mmdebstrap",
        probe: Probe::Command("mmdebstrap", "--version"),
        package: "mmdebstrap",
        need: Need::Core,
    },
    Tool {
        name: "cpio",
        probe: Probe::Command("cpio", "--version"),
        package: "cpio",
        need: Need::Core,
    },
    Tool {
        name: "depmod",
        probe: Probe::Command("depmod", "--version"),
        package: "kmod",
        need: Need::Core,
    },
    Tool {
        name: "dtc",
        probe: Probe::Command("dtc", "--version"),
        package: "device-tree-compiler",
        need: Need::Core,
    },
    Tool {
        // `make all` compresses arm64's `Image.gz` and x86_64's bzImage (CONFIG_KERNEL_GZIP)
        // with it; rig's own archives are gzip'd in-process.
        name: "gzip",
        probe: Probe::Command("gzip", "--version"),
        package: "gzip",
        need: Need::Kbuild,
    },
    Tool {
        name: "xz",
        probe: Probe::Command("xz", "--version"),
        package: "xz-utils",
        need: Need::Kbuild,
    },
    Tool {
        name: "make",
        probe: Probe::Command("make", "--version"),
        package: "make",
        need: Need::Kbuild,
    },
    Tool {
        name: "gcc",
        probe: Probe::Command("gcc", "--version"),
        package: "gcc",
        need: Need::Kbuild,
    },
    Tool {
        name: "aarch64-linux-gnu-gcc",
        probe: Probe::Command("aarch64-linux-gnu-gcc", "--version"),
        package: "gcc-aarch64-linux-gnu",
        need: Need::Kbuild,
    },
    Tool {
        name: "flex",
        probe: Probe::Command("flex", "--version"),
        package: "flex",
        need: Need::Kbuild,
    },
    Tool {
        name: "bison",
        probe: Probe::Command("bison", "--version"),
        package: "bison",
        need: Need::Kbuild,
    },
    Tool {
        name: "bc",
        probe: Probe::Command("bc", "--version"),
        package: "bc",
        need: Need::Kbuild,
    },
    Tool {
        name: "libelf headers",
        probe: Probe::File("/usr/include/gelf.h"),
        package: "libelf-dev",
        need: Need::Kbuild,
    },
    Tool {
        name: "openssl headers",
        probe: Probe::File("/usr/include/openssl/ssl.h"),
        package: "libssl-dev",
        need: Need::Kbuild,
    },
    Tool {
        name: "linux-source-6.12",
        probe: Probe::File("/usr/src/linux-source-6.12.tar.xz"),
        package: "linux-source-6.12",
        need: Need::Kbuild,
    },
    Tool {
        name: "patch",
        probe: Probe::Command("patch", "--version"),
        package: "patch",
        need: Need::Kbuild,
    },
    Tool {
        name: "git",
        probe: Probe::Command("git", "--version"),
        package: "git",
        need: Need::Optional,
    },
    Tool {
        name: "rsync",
        probe: Probe::Command("rsync", "--version"),
        package: "rsync",
        need: Need::Kbuild,
    },
    Tool {
        name: "addr2line",
        probe: Probe::Command("addr2line", "--version"),
        package: "binutils",
        need: Need::Optional,
    },
    Tool {
        name: "aarch64-linux-gnu-addr2line",
        probe: Probe::Command("aarch64-linux-gnu-addr2line", "--version"),
        package: "binutils-aarch64-linux-gnu",
        need: Need::Optional,
    },
    Tool {
        name: "ccache",
        probe: Probe::Command("ccache", "--version"),
        package: "ccache",
        need: Need::Optional,
    },
    Tool {
        name: "dropbear",
        probe: Probe::Command("dropbear", "-V"),
        package: "dropbear-bin",
        need: Need::Tests,
    },
    Tool {
        // Opens a failed run's vmcore (both boards' cores on this host); the tests open them.
        name: "gdb-multiarch",
        probe: Probe::Command("gdb-multiarch", "--version"),
        package: "gdb-multiarch",
        need: Need::Tests,
    },
    Tool {
        // The report HTML is tested in a real headless browser.
        name: "chromium",
        probe: Probe::Command("chromium", "--version"),
        package: "chromium",
        need: Need::Tests,
    },
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolStatus {
    pub name: &'static str,
    pub package: &'static str,
    pub need: Need,
    /// `None`: missing.
    pub version: Option<String>,
}

pub fn check(tool: &Tool) -> ToolStatus {
    let version = match tool.probe {
        Probe::Command(cmd, flag) => tool_version_with(cmd, flag),
        Probe::File(p) => Path::new(p).exists().then(|| format!("present ({p})")),
    };
    ToolStatus {
        name: tool.name,
        package: tool.package,
        need: tool.need,
        version,
    }
}

/// For tests and steps that cannot work without a host tool: `Err` names the tool, the package
/// that provides it and the command that installs it.
pub fn require(name: &str) -> Result<(), String> {
    let tool = TOOLS
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| format!("`{name}` is not a tool rig knows"))?;
    match check(tool).version {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{name}` is not installed: `apt-get install {}` (`rig setup --kbuild --tests` installs \
             everything the test suite needs)",
            tool.package
        )),
    }
}

pub fn check_all() -> Vec<ToolStatus> {
    TOOLS.iter().map(check).collect()
}

/// Packages to install for the missing tools with the given needs (deduplicated, in table order).
pub fn missing_packages(statuses: &[ToolStatus], needs: &[Need]) -> Vec<&'static str> {
    let mut pkgs: Vec<&'static str> = Vec::new();
    for s in statuses {
        if s.version.is_none() && needs.contains(&s.need) && !pkgs.contains(&s.package) {
            pkgs.push(s.package);
        }
    }
    pkgs
}

pub use super::apt::{install, Replacement, SetupError};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_are_deduplicated_and_filtered_by_need() {
        let st = |name, package, need, present: bool| ToolStatus {
            name,
            package,
            need,
            version: present.then(|| "1".to_string()),
        };
        let s = vec![
            st("a", "pkg-a", Need::Core, false),
            st("b", "pkg-a", Need::Core, false),
            st("c", "pkg-c", Need::Kbuild, false),
            st("d", "pkg-d", Need::Core, true),
        ];
        assert_eq!(missing_packages(&s, &[Need::Core]), vec!["pkg-a"]);
        assert_eq!(
            missing_packages(&s, &[Need::Core, Need::Kbuild]),
            vec!["pkg-a", "pkg-c"]
        );
    }

    #[test]
    fn require_names_the_package_of_a_missing_tool() {
        assert!(require("gzip").is_ok());
        assert!(require("no-such-tool").is_err());
        let fake = Tool {
            name: "rig-missing",
            probe: Probe::Command("definitely-not-a-rig-tool", "--version"),
            package: "rig-pkg",
            need: Need::Core,
        };
        assert!(check(&fake).version.is_none());
    }
}
