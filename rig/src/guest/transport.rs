//! Ways into the guest. The command shell on a virtio console (`/dev/hvc0` in the guest, the
//! shell stream of [`crate::machine::console::Console`], with [`crate::guest::serial`]'s
//! protocol; not the board's UART, which carries the kernel log alone) is always there, also when
//! the network is gone; ssh ([`crate::guest::ssh`]) adds separate stderr, concurrency and uploads.
//! Both implement [`Transport`], so scenario steps do not care which one carries them. The first
//! keeps the name `serial` (`Via::Serial`, `--transport serial`, a scenario's `via: serial`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The result of one guest command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutput {
    pub stdout: String,
    /// `None` where the transport cannot separate stderr (serial merges it into stdout).
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
    #[error("QEMU exited ({status}) while `{command}` ran over {transport}; console showed last:\n{last_console}")]
    GuestDied {
        transport: &'static str,
        command: String,
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
    /// `serial` or `ssh`.
    fn name(&self) -> &'static str;

    /// Runs `command` with `sh -c` semantics; waits at most `timeout`.
    fn run(&mut self, command: &str, timeout: Duration) -> Result<CommandOutput, TransportError>;
}

/// Which way into the guest a command takes (the scenario format's `via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    #[default]
    Serial,
    Ssh,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Serial => "serial",
            Via::Ssh => "ssh",
        }
    }
}

impl std::str::FromStr for Via {
    type Err = crate::host::board::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "serial" => Ok(Via::Serial),
            "ssh" => Ok(Via::Ssh),
            _ => Err(crate::host::board::UnknownName {
                what: "transport",
                given: s.into(),
                known: "serial, ssh".into(),
            }),
        }
    }
}
