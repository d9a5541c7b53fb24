//! Ways into the guest. The command shell on a virtio console (`/dev/hvc0` in the guest, the
//! shell stream of [`crate::machine::console::Console`], with [`crate::guest::hvc_shell`]'s
//! protocol; not the board's UART, which carries the kernel log alone) is always there, also when
//! the network is gone; ssh ([`crate::guest::ssh`]) adds separate stderr, concurrency and uploads.
//! Both implement [`Transport`], so scenario steps do not care which one carries them. The first
//! is named `hvc` after its guest device (`Via::Hvc`, `--transport hvc`, a scenario's `via: hvc`);
//! its old name `serial` ([`OLD_HVC_NAME`]) is still read, with a deprecation notice.

use serde::{Deserialize, Deserializer, Serialize};
use std::time::Duration;

/// The result of one guest command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutput {
    pub stdout: String,
    /// `None` where the transport cannot separate stderr (hvc merges it into stdout).
    pub stderr: Option<String>,
    pub status: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("guest command `{command}` did not finish within {timeout:?} over {transport}; console showed last:\n{last_console}")]
    Timeout {
        transport: &'static str,
        command: String,
        timeout: Duration,
        last_console: String,
    },
    #[error(
        "{status} while `{command}` ran over {transport}; console showed last:\n{last_console}"
    )]
    GuestDied {
        transport: &'static str,
        command: String,
        /// What ended the guest, as a sentence start: `QEMU exited (exit code 0)`, `the
        /// console closed (QEMU exited)`.
        status: String,
        last_console: String,
    },
    #[error("lost the {transport} connection while `{command}` ran: {reason}; console showed last:\n{last_console}")]
    Disconnected {
        transport: &'static str,
        command: String,
        reason: String,
        last_console: String,
    },
    #[error("{transport}: {message}")]
    Other {
        transport: &'static str,
        message: String,
    },
}

/// Runs shell commands in the guest.
pub trait Transport {
    /// `hvc` or `ssh`.
    fn name(&self) -> &'static str;

    /// Runs `command` with `sh -c` semantics; waits at most `timeout`.
    fn run(&mut self, command: &str, timeout: Duration) -> Result<CommandOutput, TransportError>;
}

/// Which way into the guest a command takes (the scenario format's `via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The command shell on the guest's `/dev/hvc0`; `serial` ([`OLD_HVC_NAME`]) is its old
    /// spelling, still read.
    #[default]
    Hvc,
    Ssh,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Hvc => "hvc",
            Via::Ssh => "ssh",
        }
    }
}

/// The old name of [`Via::Hvc`] (the command shell was once on the UART). Scenario files
/// (`transport:`, `via:`) and `--transport` still accept it; whoever reads it tells the user
/// [`old_hvc_notice`].
pub const OLD_HVC_NAME: &str = "serial";

/// The deprecation notice for the old spelling `what` (`via: serial`, `--transport serial`),
/// with `new` the same thing spelled today.
pub fn old_hvc_notice(what: &str, new: &str) -> String {
    format!("{what} is deprecated: the command shell is on the guest's virtio console hvc0, not a serial port; write {new}")
}

/// Read as [`FromStr`](std::str::FromStr) reads it: the old name too, and an unknown name's
/// error lists the current names only.
impl<'de> Deserialize<'de> for Via {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Via {
    type Err = crate::host::board::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hvc" | OLD_HVC_NAME => Ok(Via::Hvc),
            "ssh" => Ok(Via::Ssh),
            _ => Err(crate::host::board::UnknownName {
                what: "transport",
                given: s.into(),
                known: "hvc, ssh".into(),
            }),
        }
    }
}
