//! Installing host packages with apt: simulate first, never remove a package, replace one that
//! no configured apt source offers when it stands in the way. apt's transcript goes to a log
//! file, never to stdout.

use super::version::tool_version_with;
use std::path::Path;
use std::process::Command;

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
impl std::fmt::Display for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} was installed from no configured apt source and stood in the way; replaced \
             by the configured release's {} (the same tools)",
            self.package, self.installed, self.with
        )
    }
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
    let root = rustix::process::geteuid().is_root();
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
}
