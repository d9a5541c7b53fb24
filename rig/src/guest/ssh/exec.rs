//! Runs commands as channels multiplexed on one session, on the calling thread.
//!
//! The session is non-blocking throughout: channels are opened and commands started, stdin
//! fed, stdout and stderr drained, and the socket polled with short waits, so per-command
//! deadlines, keepalives and the silence limit are checked at least four times a second and a
//! stuck guest cannot block anything past a deadline.

use super::SshOptions;
use crate::guest::transport::CommandOutput;
use ssh2::{BlockDirections, Channel, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One command to run.
pub(super) struct Job<'a> {
    pub command: &'a str,
    pub timeout: Duration,
    /// Bytes for the command's stdin; `None` closes stdin at once.
    pub stdin: Option<&'a [u8]>,
}

#[derive(Debug)]
pub(super) enum Failure {
    /// The job's own timeout passed.
    Timeout,
    /// The session broke; the reason says how.
    Disconnected(String),
    /// The command printed more than [`crate::guest::hvc_shell::MAX_OUTPUT`] on stdout or
    /// stderr (its channel was closed there, the rest never read).
    TooLarge { limit: usize },
}

pub(super) struct Outcome {
    pub results: Vec<Result<CommandOutput, Failure>>,
    /// The session is unusable or in an unknown state (timed-out channel, lost connection).
    pub drop_session: bool,
}

/// Where one job is.
enum Slot<'a> {
    /// Waiting for its turn to open a channel (libssh2 opens one channel at a time).
    Pending,
    /// Channel open, `exec` request in flight.
    Starting(Channel),
    Running(Running<'a>),
    Done,
}

struct Running<'a> {
    channel: Channel,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdin: &'a [u8],
    written: usize,
    eof_sent: bool,
}

/// The longest single wait on the socket, so deadlines and keepalives are checked often.
const MAX_WAIT: Duration = Duration::from_millis(250);
const CHUNK: usize = 32 * 1024;

pub(super) fn drive(
    session: &Session,
    fd: &TcpStream,
    opts: &SshOptions,
    jobs: &[Job<'_>],
) -> Outcome {
    let started = Instant::now();
    let deadlines: Vec<Instant> = jobs.iter().map(|j| started + j.timeout).collect();
    let mut results: Vec<Option<Result<CommandOutput, Failure>>> =
        jobs.iter().map(|_| None).collect();
    let mut slots: Vec<Slot<'_>> = jobs.iter().map(|_| Slot::Pending).collect();
    let mut drop_session = false;
    let mut next_start = 0;
    let mut buf = vec![0u8; CHUNK];
    let mut last_rx = Instant::now();

    // Everything below is non-blocking: a stuck guest can delay nothing past a deadline.
    session.set_blocking(false);
    loop {
        let mut broken: Option<String> = None;

        // Start jobs in order, one channel open at a time.
        while next_start < jobs.len() {
            let i = next_start;
            if matches!(slots[i], Slot::Done) {
                next_start += 1;
                continue;
            }
            match advance_start(session, &jobs[i], &mut slots[i]) {
                Ok(true) => next_start += 1,
                Ok(false) => break,
                Err(e) => {
                    broken = Some(format!("cannot start `{}`: {e}", jobs[i].command));
                    break;
                }
            }
        }

        let now = Instant::now();
        if broken.is_none() {
            for (i, slot) in slots.iter_mut().enumerate() {
                let outcome = match slot {
                    Slot::Running(r) => step(r, &mut buf),
                    Slot::Pending | Slot::Starting(_) => Ok(None),
                    Slot::Done => continue,
                };
                match outcome {
                    Ok(Some(Finished::Output(out))) => {
                        results[i] = Some(Ok(out));
                        *slot = Slot::Done;
                    }
                    Ok(Some(Finished::TooLarge)) => {
                        results[i] = Some(Err(Failure::TooLarge { limit: MAX_OUTPUT }));
                        // Dropped while non-blocking: the guest's flood is not read to its end.
                        *slot = Slot::Done;
                        drop_session = true;
                    }
                    Ok(None) if now >= deadlines[i] => {
                        results[i] = Some(Err(Failure::Timeout));
                        // The channel is freed while non-blocking: no waiting on a stuck guest.
                        *slot = Slot::Done;
                        // A half-open channel may still be in libssh2's open state machine.
                        drop_session = true;
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        broken = Some(reason);
                        break;
                    }
                }
            }
        }

        let active = slots.iter().any(|s| !matches!(s, Slot::Done));
        if broken.is_none() && active {
            if let Err(e) = session.keepalive_send() {
                if !is_eagain(&e) {
                    broken = Some(format!("sending an ssh keepalive failed: {e}"));
                }
            }
            if broken.is_none() && last_rx.elapsed() > opts.silence_limit {
                broken = Some(format!(
                    "the guest sent nothing for {:?} although ssh keepalives went out every {:?} \
                     (guest hung, or its network is down)",
                    opts.silence_limit, opts.keepalive_interval
                ));
            }
        }
        if let Some(reason) = broken {
            drop_session = true;
            for (i, slot) in slots.iter_mut().enumerate() {
                if !matches!(slot, Slot::Done) {
                    *slot = Slot::Done;
                    results[i] = Some(Err(Failure::Disconnected(reason.clone())));
                }
            }
            break;
        }
        if !active {
            break;
        }
        let next_deadline = slots
            .iter()
            .zip(&deadlines)
            .filter(|(s, _)| !matches!(s, Slot::Done))
            .map(|(_, d)| *d)
            .min()
            .unwrap_or(now);
        let wait = next_deadline
            .saturating_duration_since(Instant::now())
            .min(MAX_WAIT);
        if wait_socket(fd, session.block_directions(), wait) {
            last_rx = Instant::now();
        }
    }
    drop(slots);
    session.set_blocking(true);

    let results = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Failure::Disconnected(
                    "the command was never started".into(),
                ))
            })
        })
        .collect();
    Outcome {
        results,
        drop_session,
    }
}

/// Moves a job towards `Running` without blocking: `Ok(true)` once it runs, `Ok(false)` when
/// libssh2 waits for the guest.
fn advance_start<'a>(
    session: &Session,
    job: &Job<'a>,
    slot: &mut Slot<'a>,
) -> Result<bool, ssh2::Error> {
    loop {
        match slot {
            Slot::Pending => match session.channel_session() {
                Ok(channel) => *slot = Slot::Starting(channel),
                Err(e) if is_eagain(&e) => return Ok(false),
                Err(e) => return Err(e),
            },
            Slot::Starting(channel) => match channel.exec(job.command) {
                Ok(()) => {
                    let Slot::Starting(channel) = std::mem::replace(slot, Slot::Done) else {
                        return Ok(true);
                    };
                    *slot = Slot::Running(Running {
                        channel,
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                        stdin: job.stdin.unwrap_or_default(),
                        written: 0,
                        eof_sent: false,
                    });
                    return Ok(true);
                }
                Err(e) if is_eagain(&e) => return Ok(false),
                Err(e) => return Err(e),
            },
            Slot::Running(_) | Slot::Done => return Ok(true),
        }
    }
}

/// How a command's channel ended.
enum Finished {
    Output(CommandOutput),
    /// It printed more than [`MAX_OUTPUT`].
    TooLarge,
}

/// The most a command may print on each of stdout and stderr over ssh: the hvc
/// transport's limit, so a guest cannot grow rig's memory by gigabytes either way.
const MAX_OUTPUT: usize = crate::guest::hvc_shell::MAX_OUTPUT;

/// Advances one command without blocking: `Some` once the guest closed the channel (or the
/// output passed the limit), `Err(reason)` when the session failed.
fn step(r: &mut Running<'_>, buf: &mut [u8]) -> Result<Option<Finished>, String> {
    while r.written < r.stdin.len() {
        let end = r.stdin.len().min(r.written + CHUNK);
        match r.channel.write(&r.stdin[r.written..end]) {
            Ok(0) => break,
            Ok(n) => r.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                // The command stopped reading (it exited or closed stdin). Its exit status
                // tells what happened; a dead session shows up on the reads below.
                r.written = r.stdin.len();
                r.eof_sent = true;
            }
        }
    }
    if r.written == r.stdin.len() && !r.eof_sent {
        match r.channel.send_eof() {
            Ok(()) => r.eof_sent = true,
            Err(e) if is_eagain(&e) => {}
            Err(_) => r.eof_sent = true,
        }
    }
    drain(&mut r.channel.stream(0), &mut r.stdout, buf, MAX_OUTPUT)?;
    drain(&mut r.channel.stderr(), &mut r.stderr, buf, MAX_OUTPUT)?;
    if r.stdout.len() > MAX_OUTPUT || r.stderr.len() > MAX_OUTPUT {
        return Ok(Some(Finished::TooLarge));
    }
    if !r.channel.eof() {
        return Ok(None);
    }
    match r.channel.wait_close() {
        Ok(()) => Ok(Some(Finished::Output(CommandOutput {
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: Some(String::from_utf8_lossy(&r.stderr).into_owned()),
            status: exit_code(&r.channel),
        }))),
        Err(e) if is_eagain(&e) => Ok(None),
        Err(e) => Err(format!(
            "connection lost while waiting for the command to finish ({e})"
        )),
    }
}

/// Reads everything available now, stopping once `into` holds more than `limit` bytes.
fn drain(
    stream: &mut impl Read,
    into: &mut Vec<u8>,
    buf: &mut [u8],
    limit: usize,
) -> Result<(), String> {
    loop {
        if into.len() > limit {
            return Ok(());
        }
        match stream.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(format!(
                    "connection lost while reading command output ({e})"
                ))
            }
        }
    }
}

/// The exit status, or 128 + signal number for a command killed by a signal (shell convention).
fn exit_code(channel: &Channel) -> i32 {
    if let Ok(sig) = channel.exit_signal() {
        if let Some(name) = sig.exit_signal {
            return 128 + signal_number(&name);
        }
    }
    channel.exit_status().unwrap_or(-1)
}

/// Signal names as ssh sends them (RFC 4254 §6.10, without `SIG`); numbers as on x86 and arm64.
fn signal_number(name: &str) -> i32 {
    match name.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 0,
    }
}

/// libssh2's `LIBSSH2_ERROR_EAGAIN`.
const LIBSSH2_ERROR_EAGAIN: i32 = -37;

fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_EAGAIN)
}

/// Waits until the socket is ready in the directions libssh2 needs (always also readable).
/// `true` when data (or a hang-up) arrived.
fn wait_socket(fd: &TcpStream, dirs: BlockDirections, timeout: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut events = PollFlags::IN;
    if matches!(dirs, BlockDirections::Outbound | BlockDirections::Both) {
        events |= PollFlags::OUT;
    }
    let mut fds = [PollFd::new(fd, events)];
    let ms = timeout.as_millis().min(i32::MAX as u128) as u64;
    let timeout = Timespec::try_from(Duration::from_millis(ms)).ok();
    let ready = poll(&mut fds, timeout.as_ref()).unwrap_or(0);
    ready > 0
        && fds[0]
            .revents()
            .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_stops_past_the_limit() {
        let mut flood = std::io::repeat(b'x');
        let (mut into, mut buf) = (Vec::new(), vec![0u8; CHUNK]);
        drain(&mut flood, &mut into, &mut buf, 100_000).unwrap();
        assert!(into.len() > 100_000 && into.len() <= 100_000 + CHUNK);
    }

    #[test]
    fn signals_map_to_shell_status_numbers() {
        assert_eq!(128 + signal_number("KILL"), 137);
        assert_eq!(128 + signal_number("SIGTERM"), 143);
        assert_eq!(signal_number("WEIRD"), 0);
    }
}
