//! Which processes belong to a run, from `/proc`: by process group, by the QEMU marker in the
//! argv (`-name rig-<run id>`) and by the `RIG_RUN_ID` every process of the run inherits. A run
//! leaks when any of them is still alive after rig has exited.

use std::fs;
use std::time::{Duration, Instant};

/// One live process of a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Proc {
    pub pid: i32,
    pub pgid: i32,
    /// The short name (`comm`): `qemu-system-aar`, `dropbear`, `mmdebstrap`, `make`, …
    pub comm: String,
    /// How it was found: `group`, `marker` or `env`.
    pub by: &'static str,
}

/// A process's state letter, parent, group and name from `/proc/<pid>/stat`; `None` if gone.
fn stat(pid: i32) -> Option<(char, i32, String)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ppid pgrp …`: comm may hold spaces and parentheses; it ends at the last `)`.
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let mut rest = s.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let _ppid = rest.next()?;
    let pgrp: i32 = rest.next()?.parse().ok()?;
    Some((state, pgrp, comm))
}

fn nul_fields(path: &str) -> Vec<Vec<u8>> {
    fs::read(path)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Whether `argv` holds the pair `-name <name>` or `-name <name>.<suffix>` (a soak child's run
/// ids extend the parent's as `<id>.<n>`).
pub fn argv_has_marker(argv: &[Vec<u8>], name: &str) -> bool {
    argv.windows(2).any(|w| {
        w[0] == b"-name"
            && (w[1] == name.as_bytes()
                || w[1]
                    .strip_prefix(name.as_bytes())
                    .is_some_and(|r| r.first() == Some(&b'.')))
    })
}

/// Whether an environment block holds `RIG_RUN_ID=<id>` or `RIG_RUN_ID=<id>.<suffix>`.
pub fn env_has_run_id(env: &[Vec<u8>], id: &str) -> bool {
    let want = format!("RIG_RUN_ID={id}");
    env.iter().any(|v| {
        v == want.as_bytes()
            || v.strip_prefix(want.as_bytes())
                .is_some_and(|r| r.first() == Some(&b'.'))
    })
}

/// What to look for.
#[derive(Debug, Clone)]
pub struct RunMarks {
    /// The process group of the run's rig (its own, as the soak starts it).
    pub pgid: Option<i32>,
    /// The run id: QEMU's `-name rig-<id>` and `RIG_RUN_ID=<id>` in the environment.
    pub run_id: String,
}

/// Live (not zombie) processes of the run other than this process.
pub fn find(marks: &RunMarks) -> Vec<Proc> {
    let me = std::process::id() as i32;
    let qemu_name = crate::host::artifacts::qemu_name(&marks.run_id);
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Some((state, pgid, comm)) = stat(pid) else {
            continue;
        };
        if state == 'Z' || state == 'X' {
            continue;
        }
        let by = if marks.pgid == Some(pgid) {
            "group"
        } else if argv_has_marker(&nul_fields(&format!("/proc/{pid}/cmdline")), &qemu_name) {
            "marker"
        } else if env_has_run_id(&nul_fields(&format!("/proc/{pid}/environ")), &marks.run_id) {
            "env"
        } else {
            continue;
        };
        out.push(Proc {
            pid,
            pgid,
            comm,
            by,
        });
    }
    out
}

/// Waits up to `grace` for the run's processes to go (a SIGKILLed group takes a moment to be
/// reaped), then kills what is left (SIGKILL) and returns it: the leaks.
pub fn reap_leaks(marks: &RunMarks, grace: Duration) -> Vec<Proc> {
    let deadline = Instant::now() + grace;
    loop {
        let left = find(marks);
        if left.is_empty() {
            return left;
        }
        if Instant::now() >= deadline {
            for p in &left {
                // A pid we just read; at worst it names a process that has exited meanwhile
                // (ESRCH).
                if let Some(pid) = rustix::process::Pid::from_raw(p.pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first live process whose argv carries the run's QEMU marker.
pub fn qemu_of(run_id: &str) -> Option<i32> {
    let marks = RunMarks {
        pgid: None,
        run_id: run_id.to_string(),
    };
    find(&marks)
        .into_iter()
        .find(|p| p.by == "marker")
        .map(|p| p.pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn fields(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn markers_match_exactly_or_with_a_child_suffix() {
        let argv = fields(&["qemu-system-aarch64", "-name", "rig-soak-1.3", "-m", "1G"]);
        assert!(argv_has_marker(&argv, "rig-soak-1.3"));
        assert!(argv_has_marker(&argv, "rig-soak-1"));
        assert!(!argv_has_marker(&argv, "rig-soak"));
        assert!(!argv_has_marker(&argv, "rig-soak-1.30"));
        assert!(!argv_has_marker(
            &fields(&["x", "rig-soak-1"]),
            "rig-soak-1"
        ));
        let env = fields(&["HOME=/root", "RIG_RUN_ID=ci-4.2"]);
        assert!(env_has_run_id(&env, "ci-4"));
        assert!(env_has_run_id(&env, "ci-4.2"));
        assert!(!env_has_run_id(&env, "ci-42"));
        assert!(!env_has_run_id(&env, "ci"));
    }

    #[test]
    fn a_process_of_the_run_is_found_by_group_marker_and_env_and_reaped() {
        let id = format!("proc-test-{}", std::process::id());
        // A child in its own group carrying the marker in its argv and the id in its env.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 60; : -name", "-name"])
            .arg(crate::host::artifacts::qemu_name(&id))
            .env("RIG_RUN_ID", format!("{id}.1"));
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = loop {
            let f = find(&RunMarks {
                pgid: None,
                run_id: id.clone(),
            });
            if f.iter().any(|p| p.pid == pid) || Instant::now() > deadline {
                break f;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            found.iter().any(|p| p.pid == pid && p.by == "marker"),
            "{found:?}"
        );
        assert_eq!(qemu_of(&id), Some(pid));
        // By group alone (the sleep grandchild is in the same group).
        let by_group = find(&RunMarks {
            pgid: Some(pid),
            run_id: "nothing-like-it".into(),
        });
        assert!(by_group.iter().any(|p| p.by == "group"), "{by_group:?}");
        let leaks = reap_leaks(
            &RunMarks {
                pgid: Some(pid),
                run_id: id.clone(),
            },
            Duration::from_millis(100),
        );
        assert!(leaks.iter().any(|p| p.pid == pid), "{leaks:?}");
        let _ = child.wait();
        let again = reap_leaks(
            &RunMarks {
                pgid: Some(pid),
                run_id: id,
            },
            Duration::from_secs(5),
        );
        assert!(again.is_empty(), "{again:?}");
    }
}
