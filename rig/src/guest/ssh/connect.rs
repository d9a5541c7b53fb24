//! Opening ssh sessions to the guest: retries until ssh answers, the pinned host key, public key
//! authentication, and every blocking step bounded.

use super::keys::{ClientKey, HostKey};
use super::*;
use std::sync::Arc;

/// Tunables; the defaults suit TCG guests on a busy host.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The guest user; rig logs in as root.
    pub user: String,
    /// Bound on one blocking protocol step (TCP connect, handshake, auth, opening a channel).
    pub io_timeout: Duration,
    /// How often an idle connection sends an ssh keepalive the guest must answer.
    pub keepalive_interval: Duration,
    /// A connection that receives nothing for this long while commands run, although
    /// keepalives were sent, is lost (guest hung, network down).
    pub silence_limit: Duration,
    /// Pause between connection attempts while the guest is not answering yet.
    pub retry_interval: Duration,
    /// How long to try re-establishing a connection dropped after a timed-out command.
    pub reconnect_timeout: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            user: "root".into(),
            io_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(5),
            silence_limit: Duration::from_secs(45),
            retry_interval: Duration::from_millis(500),
            reconnect_timeout: Duration::from_secs(60),
        }
    }
}

/// Why one connection attempt failed.
#[derive(Debug)]
pub(super) enum AttemptError {
    Tcp(std::io::Error),
    Handshake(ssh2::Error),
    Session(ssh2::Error),
    HostKeyMismatch { expected: String, actual: String },
    Auth(ssh2::Error),
}

impl AttemptError {
    pub(super) fn describe(&self) -> String {
        match self {
            AttemptError::Tcp(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("connection refused ({e}): is QEMU forwarding the port?")
            }
            AttemptError::Tcp(e) => format!("TCP connect failed: {e}"),
            AttemptError::Handshake(e) => format!(
                "ssh handshake failed ({e}): the port answers but no ssh server does yet \
                 (QEMU accepts forwarded connections and drops them while dropbear is not listening)"
            ),
            AttemptError::Session(e) => format!("libssh2 session setup failed: {e}"),
            AttemptError::HostKeyMismatch { expected, actual } => {
                format!("host key mismatch: expected {expected}, got {actual}")
            }
            AttemptError::Auth(e) => format!("public key authentication refused: {e}"),
        }
    }
}

/// One live ssh session.
pub(super) struct Conn {
    pub(super) session: Session,
    /// The session's socket, shared with libssh2 (which owns it too).
    pub(super) socket: Arc<TcpStream>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Shut the socket down before libssh2 frees the session: freeing closes any channel
        // still open, and on a live socket to a stuck guest that would wait for its reply up to
        // the session timeout. On a shut-down socket it fails at once.
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// Everything needed to open a session again.
pub(super) struct Target {
    pub(super) addr: SocketAddr,
    pub(super) key: ClientKey,
    pub(super) pinned: HostKey,
    pub(super) opts: SshOptions,
}

pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

impl Target {
    /// One attempt: TCP connect, handshake, host key check, public key auth.
    pub(super) fn open(&self, budget: Duration) -> Result<Conn, AttemptError> {
        let step = self
            .opts
            .io_timeout
            .min(budget)
            .max(Duration::from_millis(200));
        let tcp = TcpStream::connect_timeout(&self.addr, step).map_err(AttemptError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let socket = Arc::new(tcp);
        let mut session = Session::new().map_err(AttemptError::Session)?;
        session.set_tcp_stream(Arc::clone(&socket));
        session.set_timeout(millis(step));
        let prefs = match self.pinned.algorithm() {
            "ssh-rsa" => "rsa-sha2-512,rsa-sha2-256,ssh-rsa",
            other => other,
        };
        session
            .method_pref(MethodType::HostKey, prefs)
            .map_err(AttemptError::Session)?;
        session.handshake().map_err(AttemptError::Handshake)?;
        let presented = match session.host_key() {
            Some((blob, _)) => blob.to_vec(),
            None => Vec::new(),
        };
        if presented != self.pinned.blob() {
            let actual = HostKey::from_blob(&presented)
                .map(|k| k.to_string())
                .unwrap_or_else(|_| format!("an unparsable {}-byte key", presented.len()));
            return Err(AttemptError::HostKeyMismatch {
                expected: self.pinned.to_string(),
                actual,
            });
        }
        session
            .userauth_pubkey_memory(&self.opts.user, None, self.key.private_openssh(), None)
            .map_err(AttemptError::Auth)?;
        if !session.authenticated() {
            return Err(AttemptError::Auth(ssh2::Error::new(
                ssh2::ErrorCode::Session(LIBSSH2_ERROR_AUTHENTICATION_FAILED),
                "server did not confirm authentication",
            )));
        }
        let interval = u32::try_from(self.opts.keepalive_interval.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        session.set_keepalive(true, interval);
        session.set_timeout(millis(self.opts.io_timeout));
        Ok(Conn { session, socket })
    }

    /// Attempts until one succeeds, a final failure, `abort` says so, or `deadline` passes.
    /// With `refused_is_final`, a refused TCP connection ends the wait: QEMU accepts on a
    /// forwarded port for as long as it runs, so a refusal after a first success means it is gone.
    pub(super) fn open_until(
        &self,
        deadline: Instant,
        console_tail: &dyn Fn() -> String,
        abort: &mut dyn FnMut() -> Option<String>,
        refused_is_final: bool,
    ) -> Result<Conn, SshError> {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let budget = deadline.saturating_duration_since(Instant::now());
            let err = match self.open(budget) {
                Ok(conn) => return Ok(conn),
                Err(e) => e,
            };
            match err {
                AttemptError::HostKeyMismatch { expected, actual } => {
                    return Err(SshError::HostKeyMismatch {
                        addr: self.addr.to_string(),
                        expected,
                        actual,
                        last_console: console_tail(),
                    })
                }
                AttemptError::Auth(source) => {
                    return Err(SshError::AuthFailed {
                        addr: self.addr.to_string(),
                        user: self.opts.user.clone(),
                        key: self.key.fingerprint(),
                        source: Box::new(source),
                        last_console: console_tail(),
                    })
                }
                AttemptError::Session(source) => {
                    return Err(SshError::Session {
                        source: Box::new(source),
                    })
                }
                e @ (AttemptError::Tcp(_) | AttemptError::Handshake(_)) => {
                    let refused = matches!(&e, AttemptError::Tcp(io)
                        if io.kind() == std::io::ErrorKind::ConnectionRefused);
                    let reason = if refused && refused_is_final {
                        Some("nothing listens on the forwarded port any more (QEMU gone?)".into())
                    } else {
                        abort()
                    };
                    if let Some(reason) = reason {
                        return Err(SshError::Aborted {
                            addr: self.addr.to_string(),
                            reason: format!("{reason} (last ssh failure: {})", e.describe()),
                            last_console: console_tail(),
                        });
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(SshError::NotReady {
                            addr: self.addr.to_string(),
                            waited: now - started,
                            attempts,
                            last_failure: e.describe(),
                            last_console: console_tail(),
                        });
                    }
                    // Retry pacing: the guest is not answering yet.
                    std::thread::sleep(self.opts.retry_interval.min(deadline - now));
                }
            }
        }
    }
}

/// Waits until the guest's ssh answers at `addr:port` (retrying until `deadline`), checks that
/// its host key is `pinned`, and logs in as root with `key`.
///
/// `console_tail` returns the console's last lines; errors quote it. It is kept for the
/// transport's later errors, hence `Send + 'static`.
pub fn connect(
    addr: IpAddr,
    port: u16,
    key: &ClientKey,
    pinned: &HostKey,
    deadline: Instant,
    console_tail: impl Fn() -> String + Send + 'static,
) -> Result<SshTransport, SshError> {
    connect_with(
        SshOptions::default(),
        addr,
        port,
        key,
        pinned,
        deadline,
        console_tail,
        || None,
    )
}

/// [`connect`] with explicit options and an `abort` check called between attempts: return
/// `Some(reason)` (e.g. "QEMU exited with code 1") to stop waiting at once.
#[allow(clippy::too_many_arguments)]
pub fn connect_with(
    opts: SshOptions,
    addr: IpAddr,
    port: u16,
    key: &ClientKey,
    pinned: &HostKey,
    deadline: Instant,
    console_tail: impl Fn() -> String + Send + 'static,
    mut abort: impl FnMut() -> Option<String>,
) -> Result<SshTransport, SshError> {
    let target = Target {
        addr: SocketAddr::new(addr, port),
        key: key.clone(),
        pinned: pinned.clone(),
        opts,
    };
    let conn = target.open_until(deadline, &console_tail, &mut abort, false)?;
    Ok(SshTransport {
        target,
        conn: Mutex::new(Some(conn)),
        console_tail: Box::new(console_tail),
        events: Events::none(),
    })
}
