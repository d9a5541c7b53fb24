//! The ssh transport: guest commands over ssh (libssh2 via `ssh2`) beside the command shell on hvc.
//!
//! How a run uses it:
//! 1. [`reserve_port`] picks a 127.0.0.1 port no other rig uses; QEMU's user-mode network
//!    forwards it to the guest's port 22 ([`PortReservation::hostfwd`]).
//! 2. [`ClientKey::generate`] makes a fresh ed25519 key pair; its public half reaches the guest on
//!    the kernel command line ([`ClientKey::kernel_cmdline_param`]) or as a per-run
//!    `/root/.ssh/authorized_keys` ([`ClientKey::authorized_keys`]).
//! 3. The guest hook `images/init/etc/rig/init.d/50-ssh.sh` installs that key, generates a host key,
//!    starts dropbear and prints `RIG-SSH-HOSTKEY <algorithm> <base64>` on the console.
//! 4. [`HostKey::from_console`] reads that line; [`connect`] retries until ssh answers, refuses
//!    any other host key, and authenticates as root with the client key.
//!
//! A lost connection (guest hung, network down, QEMU gone) surfaces as
//! [`TransportError::Disconnected`] or [`TransportError::Timeout`] with the console's last lines,
//! never as a hang: every blocking libssh2 call has a timeout, command output is read without
//! blocking, and a connection that stays silent although keepalives are sent counts as lost.

mod connect;
mod exec;
pub mod keys;
pub mod port;

pub use connect::{connect, connect_with, SshOptions};
pub use keys::{ClientKey, HostKey, CMDLINE_PARAM, ERROR_MARKER, HOSTKEY_MARKER};
pub use port::{reserve_port, reserve_port_in, PortReservation};

use crate::guest::transport::{CommandOutput, Transport, TransportError};
use crate::host::events::{Event, Events};
use crate::host::shell::shell_line;
use connect::{Conn, Target};
use exec::{Failure, Job};
use sha2::{Digest, Sha256};
use ssh2::{MethodType, Session};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TRANSPORT: &str = "ssh";
/// libssh2's `LIBSSH2_ERROR_AUTHENTICATION_FAILED`.
const LIBSSH2_ERROR_AUTHENTICATION_FAILED: i32 = -18;

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot generate an ssh key pair")]
    KeyGen {
        #[source]
        source: ssh_key::Error,
    },
    #[error("not an ssh public key: `{line}`")]
    BadHostKey {
        line: String,
        #[source]
        source: ssh_key::Error,
    },
    #[error(
        "the console shows no `{HOSTKEY_MARKER}` line: did the guest run /etc/rig/init.d/50-ssh.sh, \
         and was `{CMDLINE_PARAM}=` on the kernel command line? (guest ssh errors: {guest_errors})"
    )]
    NoHostKeyMarker { guest_errors: String },
    #[error("cannot create or lock {path}")]
    PortLock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the port lock directory: {message}")]
    PortDir { message: String },
    #[error("RIG_SSH_PORTS=`{value}` is not a port range (FIRST-LAST or one port, 1024-65535)")]
    BadPortRange { value: String },
    #[error(
        "no free port on 127.0.0.1 in {first}..={last}: {locked} locked by other rigs (in {lock_dir}), \
         {in_use} in use by other programs"
    )]
    NoFreePort {
        first: u16,
        last: u16,
        lock_dir: PathBuf,
        locked: u32,
        in_use: u32,
    },
    #[error(
        "ssh to {addr} did not answer within {waited:?} ({attempts} attempts); last failure: \
         {last_failure}; console showed last:\n{last_console}"
    )]
    NotReady {
        addr: String,
        waited: Duration,
        attempts: u32,
        last_failure: String,
        last_console: String,
    },
    #[error(
        "host key mismatch at {addr}: the guest console announced {expected} but ssh presented \
         {actual}; refusing to connect; console showed last:\n{last_console}"
    )]
    HostKeyMismatch {
        addr: String,
        expected: String,
        actual: String,
        last_console: String,
    },
    #[error(
        "ssh public key authentication as {user} at {addr} with key {key} was refused (is the key in \
         the guest's /root/.ssh/authorized_keys, with /root 0700 and the file 0600?); console showed \
         last:\n{last_console}"
    )]
    AuthFailed {
        addr: String,
        user: String,
        key: String,
        #[source]
        source: Box<ssh2::Error>,
        last_console: String,
    },
    #[error("gave up connecting to ssh at {addr}: {reason}; console showed last:\n{last_console}")]
    Aborted {
        addr: String,
        reason: String,
        last_console: String,
    },
    #[error("cannot set up an ssh session")]
    Session {
        #[source]
        source: Box<ssh2::Error>,
    },
}

/// Guest commands over ssh. One session carries all commands; concurrent commands are
/// channels multiplexed on it. After a timeout or a lost connection the session is dropped and
/// the next command connects again (same pinned host key).
pub struct SshTransport {
    target: Target,
    conn: Mutex<Option<Conn>>,
    console_tail: Box<dyn Fn() -> String + Send>,
    events: Events,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("addr", &self.target.addr)
            .field("host_key", &self.target.pinned)
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// Emits `GuestCommand`/`GuestCommandDone` events to `events`.
    pub fn set_events(&mut self, events: Events) {
        self.events = events;
    }

    /// Where this transport connects.
    pub fn addr(&self) -> SocketAddr {
        self.target.addr
    }

    /// The pinned guest host key.
    pub fn host_key(&self) -> &HostKey {
        &self.target.pinned
    }

    /// Runs several commands at once, each on its own channel with its own timeout; results
    /// are in the order of `cmds`.
    pub fn run_concurrent(
        &self,
        cmds: &[(&str, Duration)],
    ) -> Vec<Result<CommandOutput, TransportError>> {
        let jobs: Vec<Job<'_>> = cmds
            .iter()
            .map(|&(command, timeout)| Job {
                command,
                timeout,
                stdin: None,
            })
            .collect();
        for j in &jobs {
            self.events.emit(Event::GuestCommand {
                command: j.command.to_owned(),
            });
        }
        let started = Instant::now();
        let results = self.drive(&jobs);
        let elapsed = started.elapsed();
        for (j, r) in jobs.iter().zip(&results) {
            if let Ok(out) = r {
                self.events.emit(Event::GuestCommandDone {
                    command: j.command.to_owned(),
                    status: out.status,
                    elapsed,
                });
            }
        }
        results
    }

    /// Copies `local` to `remote` in the guest with permission bits `mode` (e.g. `0o755`),
    /// replacing it atomically, and checks the guest's sha256 of the result.
    pub fn upload(&self, local: &Path, remote: &str, mode: i32) -> Result<(), TransportError> {
        let data = std::fs::read(local).map_err(|e| TransportError::Other {
            transport: TRANSPORT,
            message: format!("cannot read {} to upload it: {e}", local.display()),
        })?;
        let want = hex::encode(Sha256::digest(&data));
        let tmp = format!("{remote}.rig-upload");
        let command = format!(
            "cat > {t} && chmod {mode:o} {t} && mv -f {t} {r} && sha256sum {r}",
            t = shell_line(&[&tmp]),
            r = shell_line(&[remote]),
        );
        // Generous for TCG: 30 s plus 1 s per 256 KiB.
        let timeout = Duration::from_secs(30 + (data.len() as u64 >> 18));
        let job = Job {
            command: &command,
            timeout,
            stdin: Some(&data),
        };
        self.events.emit(Event::GuestCommand {
            command: format!("upload {} -> {remote}", local.display()),
        });
        let started = Instant::now();
        let out = self
            .drive(std::slice::from_ref(&job))
            .pop()
            .unwrap_or_else(|| {
                Err(TransportError::Other {
                    transport: TRANSPORT,
                    message: "no result for the upload".into(),
                })
            })?;
        self.events.emit(Event::GuestCommandDone {
            command: format!("upload {} -> {remote}", local.display()),
            status: out.status,
            elapsed: started.elapsed(),
        });
        let got = out.stdout.split_whitespace().next().unwrap_or_default();
        if out.status != 0 || got != want {
            return Err(TransportError::Other {
                transport: TRANSPORT,
                message: format!(
                    "upload of {} ({} bytes, sha256 {want}) to {remote} failed: exit status {}, \
                     guest sha256 `{got}`, stderr: {}",
                    local.display(),
                    data.len(),
                    out.status,
                    out.stderr.as_deref().unwrap_or("").trim()
                ),
            });
        }
        Ok(())
    }

    /// Runs `command` on a plain blocking channel of the current session and returns its
    /// stdout: no deadlines, events or stderr. The baseline of `rig bench command --transport
    /// ssh`; a guest that never answers blocks it for at most `timeout`.
    pub fn bare_exec(&self, command: &str, timeout: Duration) -> Result<String, TransportError> {
        let other = |message: String| TransportError::Other {
            transport: TRANSPORT,
            message,
        };
        let guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let conn = guard
            .as_ref()
            .ok_or_else(|| other("no ssh session".into()))?;
        conn.session.set_blocking(true);
        conn.session.set_timeout(connect::millis(timeout));
        let result = (|| {
            let e = |e: ssh2::Error| e.to_string();
            let mut ch = conn.session.channel_session().map_err(e)?;
            ch.exec(command).map_err(e)?;
            let mut out = String::new();
            std::io::Read::read_to_string(&mut ch, &mut out).map_err(|e| e.to_string())?;
            ch.wait_close().map_err(e)?;
            Ok::<_, String>(out)
        })();
        conn.session.set_timeout(0);
        result.map_err(|e| other(format!("`{command}`: {e}")))
    }

    /// Runs `jobs` on the current session (connecting again first if it was dropped).
    fn drive(&self, jobs: &[Job<'_>]) -> Vec<Result<CommandOutput, TransportError>> {
        let mut guard = match self.conn.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.is_none() {
            let deadline = Instant::now() + self.target.opts.reconnect_timeout;
            match self
                .target
                .open_until(deadline, &*self.console_tail, &mut || None, true)
            {
                Ok(c) => *guard = Some(c),
                Err(e) => {
                    let reason = format!("cannot reconnect: {e}");
                    return jobs
                        .iter()
                        .map(|j| {
                            Err(TransportError::Disconnected {
                                transport: TRANSPORT,
                                command: j.command.to_owned(),
                                reason: reason.clone(),
                                last_console: String::new(),
                            })
                        })
                        .collect();
                }
            }
        }
        let Some(conn) = guard.as_ref() else {
            return Vec::new();
        };
        let outcome = exec::drive(&conn.session, &conn.socket, &self.target.opts, jobs);
        if outcome.drop_session {
            *guard = None;
        }
        drop(guard);
        let mut last_console: Option<String> = None;
        outcome
            .results
            .into_iter()
            .zip(jobs)
            .map(|(r, job)| {
                r.map_err(|f| {
                    let console = last_console
                        .get_or_insert_with(|| (self.console_tail)())
                        .clone();
                    match f {
                        Failure::Timeout => TransportError::Timeout {
                            transport: TRANSPORT,
                            command: job.command.to_owned(),
                            timeout: job.timeout,
                            last_console: console,
                        },
                        Failure::Disconnected(reason) => TransportError::Disconnected {
                            transport: TRANSPORT,
                            command: job.command.to_owned(),
                            reason,
                            last_console: console,
                        },
                        Failure::TooLarge { limit } => TransportError::Other {
                            transport: TRANSPORT,
                            message: format!(
                                "`{}` printed more than {} MiB (rig keeps at most that of a \
                                 command's output; the rest was not read)",
                                job.command,
                                limit / (1024 * 1024)
                            ),
                        },
                    }
                })
            })
            .collect()
    }
}

impl Transport for SshTransport {
    fn name(&self) -> &'static str {
        TRANSPORT
    }

    fn run(&mut self, command: &str, timeout: Duration) -> Result<CommandOutput, TransportError> {
        self.run_concurrent(&[(command, timeout)])
            .pop()
            .unwrap_or_else(|| {
                Err(TransportError::Other {
                    transport: TRANSPORT,
                    message: format!("no result for `{command}`"),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<SshTransport>();
    }

    #[test]
    fn connect_reports_refusal_with_the_console_tail() {
        // A port nobody listens on: every attempt is refused until the deadline.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let key = ClientKey::generate().unwrap();
        let pinned =
            HostKey::from_openssh(&ClientKey::generate().unwrap().authorized_keys()).unwrap();
        let opts = SshOptions {
            retry_interval: Duration::from_millis(50),
            ..SshOptions::default()
        };
        let started = Instant::now();
        let err = connect_with(
            opts,
            IpAddr::from([127, 0, 0, 1]),
            port,
            &key,
            &pinned,
            Instant::now() + Duration::from_millis(600),
            || "[    3.0] dropbear: not found".to_string(),
            || None,
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let msg = err.to_string();
        assert!(
            matches!(err, SshError::NotReady { attempts, .. } if attempts >= 2),
            "{msg}"
        );
        assert!(msg.contains("connection refused"), "{msg}");
        assert!(msg.contains("dropbear: not found"), "{msg}");
    }

    #[test]
    fn connect_stops_when_told_the_guest_died() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let key = ClientKey::generate().unwrap();
        let pinned = HostKey::from_openssh(&key.authorized_keys()).unwrap();
        let started = Instant::now();
        let err = connect_with(
            SshOptions::default(),
            IpAddr::from([127, 0, 0, 1]),
            port,
            &key,
            &pinned,
            Instant::now() + Duration::from_secs(60),
            String::new,
            || Some("QEMU exited with exit code 1".into()),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, SshError::Aborted { .. }), "{err}");
        assert!(err.to_string().contains("QEMU exited"), "{err}");
    }
}
