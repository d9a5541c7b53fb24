//! Host provisioning: which tools rig needs, their versions, what is missing, and installing the
//! missing ones with apt on Debian/Ubuntu.

use std::path::Path;
use std::process::Command;

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
        name: "gzip",
        probe: Probe::Command("gzip", "--version"),
        package: "gzip",
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
        // The report HTML is tested in a real headless browser.
        name: "chromium",
        probe: Probe::Command("chromium", "--version"),
        package: "chromium",
        need: Need::Tests,
    },
];

/// The first line a tool prints about its version, or `None` when it is not there.
pub fn tool_version(program: &str) -> Option<String> {
    tool_version_with(program, "--version")
}

fn tool_version_with(program: &str, flag: &str) -> Option<String> {
    let out = Command::new(program).arg(flag).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let text = String::from_utf8_lossy(&text);
    Some(
        text.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("present")
            .trim()
            .to_string(),
    )
}

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

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("this is not a Debian/Ubuntu host: install these packages (or their equivalents) yourself: {}", .0.join(" "))]
    NotDebian(Vec<&'static str>),
    #[error("installing packages needs root or sudo: run `sudo apt-get install -y {}`", .0.join(" "))]
    NotRoot(Vec<&'static str>),
    #[error(
        "installing {} would make apt remove {} (rig never removes packages); resolve the \
         conflict yourself, e.g. install the same versions' counterparts \
         (`apt-get install -t <release> {}`), then rerun",
        .packages.join(" "), .removed.join(" "), .packages.join(" ")
    )]
    WouldRemove {
        packages: Vec<&'static str>,
        removed: Vec<String>,
    },
    #[error("`{command}` failed ({status}); apt said:\n{tail}\nfull log: {log}")]
    Apt {
        command: String,
        status: String,
        tail: String,
        log: std::path::PathBuf,
    },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// The apt commands that install `packages` (and the `NAME=VERSION` `pins`, which may be
/// downgrades), with `sudo` when not root: refresh the lists, simulate (to see what would be
/// removed), install. The install never removes anything.
pub fn apt_commands(packages: &[&str], root: bool, pins: &[String]) -> AptCommands {
    let prefix: Vec<String> = if root { vec![] } else { vec!["sudo".into()] };
    let with = |args: &[&str]| {
        let mut v = prefix.clone();
        v.extend(args.iter().map(|s| s.to_string()));
        if !pins.is_empty() {
            v.push("--allow-downgrades".into());
        }
        v.extend(packages.iter().map(|p| p.to_string()));
        v.extend(pins.iter().cloned());
        v
    };
    let mut update = prefix.clone();
    update.extend(["apt-get", "update"].map(String::from));
    AptCommands {
        update,
        simulate: with(&["apt-get", "install", "-s", "--no-install-recommends"]),
        install: with(&[
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "--no-remove",
        ]),
    }
}

pub struct AptCommands {
    pub update: Vec<String>,
    pub simulate: Vec<String>,
    pub install: Vec<String>,
}

/// The packages an `apt-get install -s` transcript would remove (`Remv NAME [VERSION]` lines).
pub fn removals(simulation: &str) -> Vec<String> {
    simulation
        .lines()
        .filter_map(|l| l.strip_prefix("Remv "))
        .filter_map(|r| r.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// A package apt would have had to remove, installed at a version no configured apt source
/// offers (left behind from a source since removed, say a backports `qemu-utils`), replaced by
/// the configured release's version instead: the package stays, at the version the rest of
/// the install needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub package: String,
    pub installed: String,
    pub with: String,
}

impl Replacement {
    fn pin(&self) -> String {
        format!("{}={}", self.package, self.with)
    }
}

/// What to tell the user about a replacement.
pub fn replacement_notice(r: &Replacement) -> String {
    format!(
        "{} {} was installed from no configured apt source and stood in the way; replaced by \
         the configured release's {} (the same tools)",
        r.package, r.installed, r.with
    )
}

/// From `apt-cache policy PACKAGE`: when the installed version comes from no apt source (its
/// only origin is `/var/lib/dpkg/status`), the highest version a source offers.
pub fn orphan_replacement(package: &str, policy: &str) -> Option<Replacement> {
    // Version lines: ` *** VERSION PRIO` (installed) or `     VERSION PRIO`; each is followed
    // by its origins, `        PRIO ORIGIN...`.
    let mut versions: Vec<(String, bool, Vec<String>)> = Vec::new();
    let mut in_table = false;
    for line in policy.lines() {
        if line.trim_start().starts_with("Version table:") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["***", version, _prio] => versions.push((version.to_string(), true, vec![])),
            [version, _prio] if indent <= 5 => versions.push((version.to_string(), false, vec![])),
            [_prio, origin, ..] if indent > 5 => {
                if let Some(v) = versions.last_mut() {
                    v.2.push(origin.to_string());
                }
            }
            _ => {}
        }
    }
    let from_archive = |origins: &[String]| origins.iter().any(|o| o != "/var/lib/dpkg/status");
    let (installed, _, origins) = versions.iter().find(|v| v.1)?;
    if from_archive(origins) {
        return None;
    }
    let (with, _, _) = versions.iter().find(|v| !v.1 && from_archive(&v.2))?;
    Some(Replacement {
        package: package.to_string(),
        installed: installed.clone(),
        with: with.clone(),
    })
}

/// Installs `packages` with apt. apt's whole transcript goes to `log` (never to stdout, which
/// belongs to the command's own output). Refuses when apt would remove any package, except that
/// a package installed from no configured source is replaced by its configured version when
/// that is what stands in the way (returned, for the caller to report).
pub fn install(packages: &[&'static str], log: &Path) -> Result<Vec<Replacement>, SetupError> {
    if packages.is_empty() {
        return Ok(vec![]);
    }
    if !Path::new("/etc/debian_version").exists() {
        return Err(SetupError::NotDebian(packages.to_vec()));
    }
    let root = unsafe { libc::geteuid() } == 0;
    if !root && tool_version_with("sudo", "--version").is_none() {
        return Err(SetupError::NotRoot(packages.to_vec()));
    }
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut apt = apt_commands(packages, root, &[]);
    apt_run(&apt.update, log)?;
    let mut removed = removals(&apt_run(&apt.simulate, log)?);
    let mut replaced = Vec::new();
    if !removed.is_empty() {
        let policies: Option<Vec<Replacement>> = removed
            .iter()
            .map(|p| {
                let policy =
                    apt_run(&["apt-cache".into(), "policy".into(), p.clone()], log).ok()?;
                orphan_replacement(p, &policy)
            })
            .collect();
        if let Some(r) = policies {
            let pins: Vec<String> = r.iter().map(Replacement::pin).collect();
            apt = apt_commands(packages, root, &pins);
            removed = removals(&apt_run(&apt.simulate, log)?);
            replaced = r;
        }
    }
    if !removed.is_empty() {
        return Err(SetupError::WouldRemove {
            packages: packages.to_vec(),
            removed,
        });
    }
    apt_run(&apt.install, log)?;
    Ok(replaced)
}

/// Runs one apt command with its output appended to `log`; returns what it printed.
fn apt_run(argv: &[String], log: &Path) -> Result<String, SetupError> {
    let command = argv.join(" ");
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| SetupError::Spawn {
            command: command.clone(),
            source,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        use std::io::Write;
        let _ = writeln!(f, "$ {command}\n{text}");
    }
    if !out.status.success() {
        return Err(SetupError::Apt {
            command,
            status: crate::host::process::describe_status(&out.status),
            tail: crate::host::process::tail_lines(&text, 15),
            log: log.to_path_buf(),
        });
    }
    Ok(text)
}

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
    fn apt_commands_use_sudo_only_when_not_root_and_never_remove() {
        let c = apt_commands(&["qemu-system-arm"], true, &[]);
        assert_eq!(c.update, ["apt-get", "update"]);
        assert_eq!(c.install.last().unwrap(), "qemu-system-arm");
        assert!(c.install.contains(&"--no-remove".to_string()));
        assert!(!c.install.contains(&"--allow-downgrades".to_string()));
        assert!(c.simulate.contains(&"-s".to_string()));
        let pins = ["qemu-utils=1:7.2".to_string()];
        let c = apt_commands(&["qemu-system-arm"], true, &pins);
        assert!(c.install.contains(&"--no-remove".to_string()));
        assert!(c.install.contains(&"--allow-downgrades".to_string()));
        assert_eq!(c.install.last().unwrap(), "qemu-utils=1:7.2");
        let c = apt_commands(&["x"], false, &[]);
        assert_eq!(c.update[0], "sudo");
        assert_eq!(c.install[0], "sudo");
    }

    #[test]
    fn removals_are_read_from_apt_simulation() {
        // The shape of `apt-get install -s` when a backports qemu-utils conflicts.
        let sim =
            "Reading package lists...\nThe following packages will be REMOVED:\n  qemu-utils\n\
                   Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]\n\
                   Inst qemu-system-common (1:7.2+dfsg-7+deb12u18 Debian:12.13/stable [amd64])\n\
                   Conf qemu-system-common (1:7.2+dfsg-7+deb12u18 Debian:12.13/stable [amd64])\n";
        assert_eq!(removals(sim), ["qemu-utils"]);
        assert!(removals("Inst a (1 x)\nConf a (1 x)\n").is_empty());
        let e = SetupError::WouldRemove {
            packages: vec!["qemu-system-x86"],
            removed: vec!["qemu-utils".into()],
        };
        assert!(
            e.to_string().contains("would make apt remove qemu-utils"),
            "{e}"
        );
    }

    /// `apt-cache policy qemu-utils` on a Debian 12 machine that has backports' qemu-utils but
    /// no backports source (seen on this project's machines).
    const ORPHAN_POLICY: &str = "qemu-utils:
  Installed: 1:10.0.2+ds-2+deb13u1~bpo12+1
  Candidate: 1:10.0.2+ds-2+deb13u1~bpo12+1
  Version table:
 *** 1:10.0.2+ds-2+deb13u1~bpo12+1 100
        100 /var/lib/dpkg/status
     1:7.2+dfsg-7+deb12u18+b3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
     1:7.2+dfsg-7+deb12u15 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
";

    #[test]
    fn a_package_from_no_source_is_replaced_by_the_archive_version() {
        assert_eq!(
            orphan_replacement("qemu-utils", ORPHAN_POLICY),
            Some(Replacement {
                package: "qemu-utils".into(),
                installed: "1:10.0.2+ds-2+deb13u1~bpo12+1".into(),
                with: "1:7.2+dfsg-7+deb12u18+b3".into(),
            })
        );
        // Installed from a source: apt's removal is a real conflict, not replaced.
        let from_source = ORPHAN_POLICY.replacen(
            "        100 /var/lib/dpkg/status",
            "        100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n        100 /var/lib/dpkg/status",
            1,
        );
        assert_eq!(orphan_replacement("qemu-utils", &from_source), None);
        // No archive version to go to.
        let only_local =
            "x:\n  Installed: 2\n  Version table:\n *** 2 100\n        100 /var/lib/dpkg/status\n";
        assert_eq!(orphan_replacement("x", only_local), None);
        assert_eq!(orphan_replacement("x", ""), None);
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

    #[test]
    fn version_of_a_present_and_a_missing_tool() {
        assert!(tool_version("sh").is_some() || tool_version("ls").is_some());
        assert!(tool_version("definitely-not-a-rig-tool").is_none());
    }
}
