//! Why QEMU ended: its last QMP `SHUTDOWN` event, and the error that carries it.

use std::path::PathBuf;

/// QEMU ended while rig waited for it (boot, console, QMP).
#[derive(Debug, thiserror::Error)]
#[error("QEMU exited ({status}; {cause}) during {step}\nQEMU said:\n{stderr}\nconsole showed last:\n{console}\nartifacts: {artifacts}")]
pub struct QemuExit {
    pub step: String,
    pub status: String,
    pub cause: ExitCause,
    pub stderr: String,
    pub console: String,
    pub artifacts: PathBuf,
}

/// Why QEMU stopped, from its last QMP `SHUTDOWN` event (with `-no-reboot` a guest reset ends
/// QEMU too).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "by", content = "reason", rename_all = "snake_case")]
pub enum ExitCause {
    /// The guest reset, triple-faulted, panicked or powered off (`guest-reset`, `guest-panic`,
    /// `guest-shutdown`): the kernel's doing.
    Guest(String),
    /// rig, a signal or QEMU itself (`host-qmp-quit`, `host-signal`, `host-error`, …).
    Host(String),
    /// QEMU said nothing: it was killed or crashed.
    Unknown,
}

impl ExitCause {
    /// The cause the last `SHUTDOWN` event among `events` gives.
    pub fn from_events(events: &[serde_json::Value]) -> ExitCause {
        let Some(data) = events
            .iter()
            .rev()
            .find(|e| e["event"] == "SHUTDOWN")
            .map(|e| &e["data"])
        else {
            return ExitCause::Unknown;
        };
        let reason = data["reason"].as_str().unwrap_or("").to_string();
        if data["guest"].as_bool() == Some(true) || reason.starts_with("guest-") {
            ExitCause::Guest(reason)
        } else {
            ExitCause::Host(reason)
        }
    }
}

impl std::fmt::Display for ExitCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitCause::Guest(r) => write!(f, "the guest ended it: {r}"),
            ExitCause::Host(r) => write!(f, "ended from the host: {r}"),
            ExitCause::Unknown => f.write_str("no SHUTDOWN event: killed or crashed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exit_cause_comes_from_the_last_shutdown_event() {
        let ev = |reason: &str, guest: bool| json!({"event": "SHUTDOWN", "data": {"guest": guest, "reason": reason}});
        let dd = json!({"event": "DEVICE_DELETED", "data": {"device": "x"}});
        assert_eq!(ExitCause::from_events(&[]), ExitCause::Unknown);
        assert_eq!(
            ExitCause::from_events(std::slice::from_ref(&dd)),
            ExitCause::Unknown
        );
        assert_eq!(
            ExitCause::from_events(&[dd.clone(), ev("guest-reset", true)]),
            ExitCause::Guest("guest-reset".into())
        );
        assert_eq!(
            ExitCause::from_events(&[ev("guest-panic", true)]),
            ExitCause::Guest("guest-panic".into())
        );
        assert_eq!(
            ExitCause::from_events(&[ev("host-qmp-quit", false)]),
            ExitCause::Host("host-qmp-quit".into())
        );
        assert_eq!(
            ExitCause::from_events(&[ev("host-signal", false)]),
            ExitCause::Host("host-signal".into())
        );
    }
}
