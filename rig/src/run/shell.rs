//! Guest shell commands the engine builds: checked statuses, guest-side polls, overlay and
//! memory-state commands, and the commands of shell-like steps.

use crate::guest::transport::Via;
use crate::scenario::{ExpectStatus, StepKind};
use std::time::Duration;

/// A guest-side poll loop: waits until `cond` (a shell condition) holds, at most `timeout`.
pub(super) fn poll_script(cond: &str, timeout: Duration) -> String {
    let tries = (timeout.as_millis() / 100).max(1);
    format!(
        "i=0; while ! ( {cond} ) >/dev/null 2>&1; do [ $i -ge {tries} ] && exit 1; i=$((i+1)); sleep 0.1; done"
    )
}

/// Wraps a command so its exit status is checked in the guest: the job exits 0 when the
/// status is acceptable, else with the status (and says so).
pub(super) fn checked(cmd: &str, expect: &ExpectStatus, may_fail: bool) -> String {
    if may_fail {
        return format!("( {cmd} ); true");
    }
    match expect {
        ExpectStatus::Any => format!("( {cmd} ); true"),
        ExpectStatus::OneOf(v) => {
            let list: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            format!(
                "( {cmd} ); s=$?; case \" {} \" in *\" $s \"*) ;; *) echo \"rig: exit status $s\"; exit $s;; esac",
                list.join(" ")
            )
        }
    }
}

pub(super) fn overlay_remove_cmd(id: &str) -> String {
    format!("rmdir /sys/kernel/config/device-tree/overlays/{id}")
}

/// The guest shell command for steps that are one (`guest`, `devlink_reload`,
/// `netdevsim_new`, `netdevsim_del`), with the transport it goes over. `parallel` can run
/// these as background jobs of one shell.
pub(super) fn shell_command(kind: &StepKind) -> Option<(String, Via)> {
    match kind {
        StepKind::Guest(g) => Some((g.run.clone(), g.via)),
        StepKind::DevlinkReload(d) => Some((
            format!(
                "devlink dev reload {} action {}",
                d.dev,
                d.action.devlink_name()
            ),
            d.via,
        )),
        StepKind::NetdevsimNew(n) => Some((
            format!(
                "echo '{} {}' > /sys/bus/netdevsim/new_device",
                n.id, n.ports
            ),
            n.via,
        )),
        StepKind::NetdevsimDel(n) => Some((
            format!("echo {} > /sys/bus/netdevsim/del_device", n.id),
            n.via,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_like_steps_become_one_command_each() {
        use crate::scenario::{
            DevlinkReloadStep, NetdevsimDelStep, NetdevsimNewStep, ReloadAction,
        };
        let t = Duration::from_secs(1);
        let new = StepKind::NetdevsimNew(NetdevsimNewStep {
            id: 10,
            ports: 1,
            via: Via::Ssh,
            timeout: t,
        });
        assert_eq!(
            shell_command(&new),
            Some((
                "echo '10 1' > /sys/bus/netdevsim/new_device".into(),
                Via::Ssh
            ))
        );
        let reload = StepKind::DevlinkReload(DevlinkReloadStep {
            dev: "netdevsim/netdevsim10".into(),
            action: ReloadAction::FwActivate,
            via: Via::Serial,
            timeout: t,
        });
        assert_eq!(
            shell_command(&reload).unwrap().0,
            "devlink dev reload netdevsim/netdevsim10 action fw_activate"
        );
        let del = StepKind::NetdevsimDel(NetdevsimDelStep {
            id: 10,
            via: Via::Serial,
            timeout: t,
        });
        assert_eq!(
            shell_command(&del).unwrap().0,
            "echo 10 > /sys/bus/netdevsim/del_device"
        );
        assert_eq!(shell_command(&StepKind::Sleep(t)), None);
    }

    #[test]
    fn checked_commands_accept_listed_statuses() {
        let s = checked("false", &ExpectStatus::OneOf(vec![0, 1]), false);
        assert!(s.contains("\" 0 1 \""), "{s}");
        assert_eq!(
            checked("x", &ExpectStatus::OneOf(vec![0]), true),
            "( x ); true"
        );
        assert_eq!(checked("x", &ExpectStatus::Any, false), "( x ); true");
    }

    #[test]
    fn checked_script_semantics_in_a_real_shell() {
        let run = |s: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(s)
                .output()
                .unwrap()
                .status
                .code()
        };
        assert_eq!(
            run(&checked("exit 1", &ExpectStatus::OneOf(vec![0, 1]), false)),
            Some(0)
        );
        assert_eq!(
            run(&checked("exit 3", &ExpectStatus::OneOf(vec![0, 1]), false)),
            Some(3)
        );
        assert_eq!(
            run(&checked("exit 3", &ExpectStatus::OneOf(vec![0]), true)),
            Some(0)
        );
        let poll = poll_script("[ -e /nonexistent-rig-file ]", Duration::from_millis(300));
        assert_eq!(run(&poll), Some(1));
        let poll = poll_script("true", Duration::from_millis(300));
        assert_eq!(run(&poll), Some(0));
    }
}
