//! QMP over the `qapi` crate: capabilities handshake, typed commands, any command by name, events,
//! and a transcript of every message in both directions (`qmp.jsonl`).
//!
//! Events are collected whenever a response is read; waiting for one (`DEVICE_DELETED`) sleeps in
//! poll(2) until the socket is readable, then reads with a cheap `query-version` (its response
//! comes after every event QEMU sent before it), until the event shows up or the deadline
//! passes. The caller passes an abort check so a wait ends the moment QEMU exits.

use qapi::qmp;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot connect to QMP socket {path}")]
    Connect {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open QMP transcript {path}")]
    Transcript {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("QMP handshake failed: {0}")]
    Handshake(String),
    #[error("QMP `{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("QMP `{command}`: no answer ({source})")]
    Io {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("waited {timeout:?} for QMP event {event}{detail}")]
    EventTimeout {
        event: String,
        detail: String,
        timeout: Duration,
    },
    #[error("stopped waiting for QMP event {event}: {reason}")]
    Aborted { event: String, reason: String },
}

/// Appends QMP traffic to the transcript, one JSON object per message:
/// `{"t": seconds since connect, "dir": "out"|"in", "msg": ...}`.
#[derive(Clone)]
struct Transcript {
    file: Arc<Mutex<File>>,
    start: Instant,
}

impl Transcript {
    fn record(&self, dir: &str, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let msg: Value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()));
        let entry = json!({"t": self.start.elapsed().as_secs_f64(), "dir": dir, "msg": msg});
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{entry}");
        }
    }
}

/// Splits the byte stream into lines for the transcript.
struct LineRecorder {
    transcript: Transcript,
    dir: &'static str,
    partial: Vec<u8>,
}

impl LineRecorder {
    fn push(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                self.transcript.record(self.dir, &self.partial);
                self.partial.clear();
            } else {
                self.partial.push(b);
            }
        }
    }
}

pub struct TeeRead {
    inner: UnixStream,
    rec: LineRecorder,
}

impl Read for TeeRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.rec.push(&buf[..n]);
        Ok(n)
    }
}

/// Collects a command and sends it in one write on `flush`. QEMU acts on a command as soon as
/// its braces balance, so a command serialized straight into the socket in pieces lets QEMU
/// answer `quit` and exit before the last piece (the newline) is written: EPIPE on a quit
/// that worked.
pub struct TeeWrite {
    inner: UnixStream,
    rec: LineRecorder,
    pending: Vec<u8>,
}

impl Write for TeeWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        let data = std::mem::take(&mut self.pending);
        self.rec.push(&data);
        self.inner.write_all(&data)?;
        self.inner.flush()
    }
}

type Stream = qapi::Stream<BufReader<TeeRead>, TeeWrite>;

/// A command sent by name with free-form arguments (scenario `qmp` steps, `object-add`).
#[derive(serde::Serialize)]
struct RawCommand {
    execute: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<Value>,
}

/// Lets qapi read a response whose type rig does not know statically.
#[derive(serde::Serialize)]
struct AnyResponse;
impl qapi::Command for AnyResponse {
    type Ok = Value;
    const NAME: &'static str = "";
    const ALLOW_OOB: bool = false;
}

/// Between `device_del` attempts while a slot is busy (see [`Qmp::device_del`]).
const SLOT_BUSY_RETRY: Duration = Duration::from_millis(50);

/// Called while waiting; `Some(reason)` aborts (QEMU exited).
pub type AbortCheck<'a> = &'a mut dyn FnMut() -> Option<String>;

pub struct Qmp {
    inner: qapi::Qmp<Stream>,
    events: Vec<Value>,
    timeout: Duration,
}

impl Qmp {
    /// Connects to QEMU's QMP socket, records traffic to `transcript`, and negotiates capabilities.
    pub fn connect(socket: &Path, transcript: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let stream = UnixStream::connect(socket).map_err(|source| QmpError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
        Self::from_stream(stream, transcript, timeout)
    }

    pub fn from_stream(
        stream: UnixStream,
        transcript: &Path,
        timeout: Duration,
    ) -> Result<Self, QmpError> {
        let connect_err = |source| QmpError::Connect {
            path: transcript.to_path_buf(),
            source,
        };
        stream
            .set_read_timeout(Some(timeout))
            .map_err(connect_err)?;
        let file = File::options()
            .create(true)
            .append(true)
            .open(transcript)
            .map_err(|source| QmpError::Transcript {
                path: transcript.to_path_buf(),
                source,
            })?;
        let t = Transcript {
            file: Arc::new(Mutex::new(file)),
            start: Instant::now(),
        };
        let rec = |dir| LineRecorder {
            transcript: t.clone(),
            dir,
            partial: Vec::new(),
        };
        let reader = TeeRead {
            inner: stream.try_clone().map_err(connect_err)?,
            rec: rec("in"),
        };
        let writer = TeeWrite {
            inner: stream,
            rec: rec("out"),
            pending: Vec::new(),
        };
        let mut inner = qapi::Qmp::new(qapi::Stream::new(BufReader::new(reader), writer));
        // qapi panics on a socket that ends before the greeting (`expect("unexpected eof")`):
        // QEMU going down just then is an error, so see the greeting's first bytes here.
        let greeting = inner.inner_mut().get_mut_read().fill_buf();
        match greeting {
            Err(e) => return Err(QmpError::Handshake(e.to_string())),
            Ok([]) => {
                return Err(QmpError::Handshake(
                    "QMP closed before QEMU's greeting".into(),
                ))
            }
            Ok(_) => {}
        }
        inner
            .handshake()
            .map_err(|e| QmpError::Handshake(e.to_string()))?;
        Ok(Qmp {
            inner,
            events: Vec::new(),
            timeout,
        })
    }

    /// Blocks until the socket has data to read (or data is already buffered), at most `limit`.
    fn wait_readable(&self, limit: Duration) {
        let reader = self.inner.inner().get_ref_read();
        if !reader.buffer().is_empty() {
            return;
        }
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&reader.get_ref().inner, PollFlags::IN)];
        let ms = limit.as_millis().min(i32::MAX as u128) as u64;
        let timeout = Timespec::try_from(Duration::from_millis(ms)).ok();
        // An error or a signal only ends the wait early; the caller reads (or times out) either
        // way.
        let _ = poll(&mut fds, timeout.as_ref());
    }

    fn collect_events(&mut self) {
        for e in self.inner.events() {
            if let Ok(v) = serde_json::to_value(&e) {
                self.events.push(v);
            }
        }
    }

    fn map_err(command: &str, e: qapi::ExecuteError) -> QmpError {
        match e {
            qapi::ExecuteError::Qapi(e) => QmpError::Command {
                command: command.into(),
                message: e.desc,
            },
            qapi::ExecuteError::Io(source) => QmpError::Io {
                command: command.into(),
                source,
            },
        }
    }

    /// Runs a typed qapi command.
    pub fn execute<C: qapi::Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        let r = self.inner.execute(command);
        self.collect_events();
        r.map_err(|e| Self::map_err(C::NAME, e))
    }

    /// Runs any command by name with JSON arguments; returns the `return` value.
    pub fn execute_raw(&mut self, name: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let cmd = RawCommand {
            execute: name.into(),
            arguments,
        };
        let line = serde_json::to_vec(&cmd).map_err(|e| QmpError::Command {
            command: name.into(),
            message: e.to_string(),
        })?;
        let io_err = |source| QmpError::Io {
            command: name.into(),
            source,
        };
        let w = self.inner.inner_mut();
        w.write_all(&line).map_err(io_err)?;
        w.write_all(b"\n").map_err(io_err)?;
        w.flush().map_err(io_err)?;
        let r = self.inner.read_response::<AnyResponse>();
        self.collect_events();
        r.map_err(|e| Self::map_err(name, e))
    }

    pub fn query_status(&mut self) -> Result<qmp::StatusInfo, QmpError> {
        self.execute(&qmp::query_status {})
    }

    /// `device_add` with `driver`, `id` and extra properties (e.g. `bus`).
    pub fn device_add(
        &mut self,
        driver: &str,
        id: &str,
        props: &[(&str, Value)],
    ) -> Result<(), QmpError> {
        let mut arguments = qapi::Dictionary::new();
        let mut bus = None;
        for (k, v) in props {
            if *k == "bus" {
                bus = v.as_str().map(String::from);
            } else {
                arguments.insert((*k).to_string(), v.clone());
            }
        }
        self.execute(&qmp::device_add {
            driver: driver.into(),
            id: Some(id.into()),
            bus,
            arguments,
        })
        .map(drop)
    }

    /// `device_del` and wait until QEMU reports `DEVICE_DELETED` for it (the guest must
    /// cooperate: pciehp takes ~5 s after the attention button, ACPI ejects memory).
    pub fn device_del(
        &mut self,
        id: &str,
        timeout: Duration,
        abort: AbortCheck<'_>,
    ) -> Result<(), QmpError> {
        self.events.retain(|e| !is_device_deleted(e, id));
        let deadline = Instant::now() + timeout;
        // A PCIe slot refuses the unplug while its power indicator blinks: the guest's pciehp is
        // still bringing the slot up (it lists the function before it turns the indicator on).
        // QEMU sends no event when it stops, so retry briefly until the deadline.
        loop {
            match self.execute(&qmp::device_del { id: id.into() }) {
                Err(QmpError::Command { message, .. })
                    if message.contains("power indicator blinking")
                        && Instant::now() + SLOT_BUSY_RETRY < deadline =>
                {
                    if let Some(reason) = abort() {
                        return Err(QmpError::Aborted {
                            event: "DEVICE_DELETED".into(),
                            reason,
                        });
                    }
                    std::thread::sleep(SLOT_BUSY_RETRY);
                }
                r => break r.map(drop)?,
            };
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        self.wait_event("DEVICE_DELETED", Some(("device", id)), timeout, abort)
            .map(drop)
    }

    pub fn object_add(&mut self, qom_type: &str, id: &str, props: Value) -> Result<(), QmpError> {
        let mut args = json!({"qom-type": qom_type, "id": id});
        if let (Some(a), Some(p)) = (args.as_object_mut(), props.as_object()) {
            a.extend(p.clone());
        }
        self.execute_raw("object-add", Some(args)).map(drop)
    }

    pub fn object_del(&mut self, id: &str) -> Result<(), QmpError> {
        self.execute_raw("object-del", Some(json!({ "id": id })))
            .map(drop)
    }

    /// Asks QEMU to exit.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        self.execute(&qmp::quit {}).map(drop)
    }

    /// Once QEMU has exited: reads what it still sent before closing the socket (to EOF, or
    /// `limit` at most) and returns every event not consumed by a wait, the last `SHUTDOWN`
    /// among them. Every line also lands in the transcript.
    pub fn final_events(&mut self, limit: Duration) -> Vec<Value> {
        self.collect_events();
        let reader = self.inner.inner_mut().get_mut_read();
        let _ = reader.get_ref().inner.set_read_timeout(Some(limit));
        let deadline = Instant::now() + limit;
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v.get("event").is_some() {
                            self.events.push(v);
                        }
                    }
                }
            }
        }
        std::mem::take(&mut self.events)
    }

    /// Events seen so far and not yet consumed by a wait.
    pub fn take_events(&mut self) -> Vec<Value> {
        self.collect_events();
        std::mem::take(&mut self.events)
    }

    /// Waits for event `name` whose `data.<field>` equals the value given (if any); returns it.
    pub fn wait_event(
        &mut self,
        name: &str,
        data_match: Option<(&str, &str)>,
        timeout: Duration,
        abort: AbortCheck<'_>,
    ) -> Result<Value, QmpError> {
        let detail = data_match
            .map(|(k, v)| format!(" with {k}={v}"))
            .unwrap_or_default();
        let matches = |e: &Value| {
            e.get("event").and_then(Value::as_str) == Some(name)
                && data_match.is_none_or(|(k, v)| {
                    e.get("data").and_then(|d| d.get(k)).and_then(Value::as_str) == Some(v)
                })
        };
        self.wait_event_matching(name, &detail, &matches, timeout, abort)
    }

    /// Waits for an event for which `matches` holds; `name` and `detail` describe it in errors.
    pub fn wait_event_matching(
        &mut self,
        name: &str,
        detail: &str,
        matches: &dyn Fn(&Value) -> bool,
        timeout: Duration,
        abort: AbortCheck<'_>,
    ) -> Result<Value, QmpError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.collect_events();
            if let Some(pos) = self.events.iter().position(matches) {
                return Ok(self.events.remove(pos));
            }
            if let Some(reason) = abort() {
                return Err(QmpError::Aborted {
                    event: name.into(),
                    reason,
                });
            }
            if Instant::now() >= deadline {
                return Err(QmpError::EventTimeout {
                    event: name.into(),
                    detail: detail.into(),
                    timeout,
                });
            }
            // Wake when QEMU sends something (an event), at the latest after a beat for the
            // abort check; reading the response to a no-op then reads every event before it.
            let beat =
                Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now()));
            self.wait_readable(beat);
            self.inner.nop().map_err(|source| QmpError::Io {
                command: "query-version".into(),
                source,
            })?;
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Waits for an event `matches` accepts, or for `wake` to become readable, at most `timeout`.
    /// Reads from QEMU only when it sent something, so an idle wait sends no command.
    pub fn wait_event_or_wake(
        &mut self,
        matches: &dyn Fn(&Value) -> bool,
        wake: std::os::fd::BorrowedFd<'_>,
        timeout: Duration,
    ) -> Result<Woken, QmpError> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let deadline = Instant::now() + timeout;
        loop {
            self.collect_events();
            if let Some(pos) = self.events.iter().position(matches) {
                return Ok(Woken::Event(self.events.remove(pos)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Woken::Timeout);
            }
            let reader = self.inner.inner().get_ref_read();
            let buffered = !reader.buffer().is_empty();
            let (qemu_said, woken) = {
                let mut fds = [
                    PollFd::new(&reader.get_ref().inner, PollFlags::IN),
                    PollFd::new(&wake, PollFlags::IN),
                ];
                let limit = Timespec::try_from(left.min(Duration::from_secs(3600))).ok();
                if !buffered {
                    let _ = poll(&mut fds, limit.as_ref());
                }
                (
                    buffered || !fds[0].revents().is_empty(),
                    !fds[1].revents().is_empty(),
                )
            };
            if woken {
                return Ok(Woken::Wake);
            }
            if qemu_said {
                // The answer to a no-op comes after every event QEMU sent before it.
                self.inner.nop().map_err(|source| QmpError::Io {
                    command: "query-version".into(),
                    source,
                })?;
            }
        }
    }
}

/// How [`Qmp::wait_event_or_wake`] ended.
#[derive(Debug)]
pub enum Woken {
    Event(Value),
    Wake,
    Timeout,
}

fn is_device_deleted(e: &Value, id: &str) -> bool {
    e.get("event").and_then(Value::as_str) == Some("DEVICE_DELETED")
        && e.get("data")
            .and_then(|d| d.get("device"))
            .and_then(Value::as_str)
            == Some(id)
}

/// Reads a QMP transcript back (tests, reports).
pub fn read_transcript(path: &Path) -> io::Result<Vec<Value>> {
    let f = File::open(path)?;
    BufReader::new(f)
        .lines()
        .map(|l| l.and_then(|l| serde_json::from_str(&l).map_err(io::Error::other)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_reaches_the_socket_whole_on_flush_and_lands_in_the_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.jsonl");
        let transcript = Transcript {
            file: Arc::new(Mutex::new(File::create(&path).unwrap())),
            start: Instant::now(),
        };
        let (ours, mut qemu) = UnixStream::pair().unwrap();
        qemu.set_nonblocking(true).unwrap();
        let mut w = TeeWrite {
            inner: ours,
            rec: LineRecorder {
                transcript,
                dir: "out",
                partial: Vec::new(),
            },
            pending: Vec::new(),
        };
        // The pieces serde_json writes: none may reach QEMU before the newline does.
        w.write_all(br#"{"execute":"#).unwrap();
        w.write_all(br#""quit"}"#).unwrap();
        w.write_all(b"\n").unwrap();
        let mut buf = [0u8; 64];
        let early = qemu.read(&mut buf);
        assert_eq!(
            early.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::WouldBlock),
            "bytes reached the socket before flush"
        );
        w.flush().unwrap();
        let n = qemu.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"{\"execute\":\"quit\"}\n");
        let text = std::fs::read_to_string(&path).unwrap();
        let entry: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(entry["dir"], "out");
        assert_eq!(entry["msg"]["execute"], "quit");
    }
}
