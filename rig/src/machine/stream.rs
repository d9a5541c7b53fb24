//! One byte stream from QEMU (a chardev on a unix socket), read by a thread of its own.
//!
//! The thread blocks in `read(2)` and hands every chunk first to a sink (the console log, the
//! tail, the live analyzer) and then to a bounded buffer that waiters take from. A waiter sleeps on
//! a condition variable until bytes arrive, the stream closes or its deadline passes: it wakes on
//! data, never on a timer, and QEMU's exit is seen at once because the socket reaches end of file
//! when QEMU's process goes away.
//!
//! The buffer is bounded either way: a stream nobody must lose bytes of (the command shell)
//! makes the reader wait for the waiter when it is full, so a guest that floods the channel is
//! slowed down instead of growing rig's memory; a stream that must always be drained (the kernel
//! console, where a stalled reader would stall printk in the guest) keeps only its newest bytes.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the reader does when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the oldest unread bytes (the stream must always be drained).
    DropOldest,
    /// Wait until a waiter takes some (no byte may be lost).
    Wait,
}

/// Gets every chunk the stream delivers, on the reader thread, before any waiter sees it; then
/// one empty chunk when the stream ends (QEMU closed it).
pub type Sink = Box<dyn FnMut(&[u8]) + Send>;

/// The outcome of [`Stream::take`].
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Bytes that arrived (everything unread, in order).
    Data(Vec<u8>),
    /// End of file: QEMU closed the socket (it exited) and nothing is left unread.
    Closed,
    /// The deadline passed with nothing unread.
    Timeout,
    /// [`Waker::wake`] was called.
    Woken,
}

#[derive(Default)]
struct State {
    unread: VecDeque<u8>,
    closed: bool,
    /// The owner is going away: the reader never waits for room again.
    discard: bool,
    /// Bytes dropped by [`Overflow::DropOldest`] since the start.
    dropped: u64,
    /// Set by [`Waker::wake`], cleared by the `take` it ends.
    woken: bool,
    /// Bytes handed to waiters since the start ([`TakenWatch`]).
    #[cfg(test)]
    taken: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    cap: usize,
    overflow: Overflow,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking sink cannot leave the state half-updated: keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A chardev socket with its reader thread.
pub struct Stream {
    shared: Arc<Shared>,
    socket: UnixStream,
    reader: Option<JoinHandle<()>>,
}

/// How long a write may block (a guest that stopped reading its console input).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const CHUNK: usize = 64 * 1024;

impl Stream {
    /// Starts reading `socket` on a thread named `name`; at most `cap` bytes wait unread.
    pub fn spawn(
        name: &str,
        socket: UnixStream,
        cap: usize,
        overflow: Overflow,
        mut sink: Sink,
    ) -> io::Result<Stream> {
        let mut read_side = socket.try_clone()?;
        socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            changed: Condvar::new(),
            cap: cap.max(1),
            overflow,
        });
        let s = shared.clone();
        let reader = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = match read_side.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    sink(&buf[..n]);
                    push(&s, &buf[..n]);
                }
                sink(&[]);
                s.lock().closed = true;
                s.changed.notify_all();
            })?;
        Ok(Stream {
            shared,
            socket,
            reader: Some(reader),
        })
    }

    /// Writes all of `data` to QEMU (blocks at most [`WRITE_TIMEOUT`]).
    pub fn write_all(&self, data: &[u8]) -> io::Result<()> {
        (&self.socket).write_all(data)?;
        (&self.socket).flush()
    }

    /// Waits until there is something unread, the stream is closed, or `deadline`; returns
    /// everything unread.
    pub fn take(&self, deadline: Instant) -> Taken {
        let mut st = self.shared.lock();
        loop {
            if !st.unread.is_empty() {
                let data: Vec<u8> = st.unread.drain(..).collect();
                #[cfg(test)]
                {
                    st.taken += data.len() as u64;
                }
                drop(st);
                self.shared.changed.notify_all();
                return Taken::Data(data);
            }
            if st.closed {
                return Taken::Closed;
            }
            if std::mem::take(&mut st.woken) {
                return Taken::Woken;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Taken::Timeout;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Drops everything unread.
    pub fn clear(&self) {
        self.shared.lock().unread.clear();
        self.shared.changed.notify_all();
    }

    /// Ends the current or next [`Stream::take`] early, from another thread.
    pub fn waker(&self) -> Waker {
        Waker(self.shared.clone())
    }

    /// Another handle on the socket, for writing from another thread.
    pub fn writer(&self) -> io::Result<UnixStream> {
        self.socket.try_clone()
    }

    /// Waits until the reader reached end of file (QEMU exited), at most until `deadline`.
    /// Unread bytes are discarded from now on, so a full buffer cannot hold the reader back:
    /// only for a stream whose bytes nobody needs any more (or one that drops its oldest).
    pub fn wait_closed(&self, deadline: Instant) -> bool {
        let mut st = self.shared.lock();
        st.discard = true;
        self.shared.changed.notify_all();
        loop {
            st.unread.clear();
            if st.closed {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Bytes lost to [`Overflow::DropOldest`] so far.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

/// Wakes a waiter of one [`Stream`] from another thread.
#[derive(Clone)]
pub struct Waker(Arc<Shared>);

impl Waker {
    pub fn wake(&self) {
        self.0.lock().woken = true;
        self.0.changed.notify_all();
    }
}

/// Sees from another thread how many bytes waiters of one [`Stream`] took: a test sends the
/// rest of a message only once the first part was taken, so the message is split for certain.
#[cfg(test)]
pub(crate) struct TakenWatch(Arc<Shared>);

#[cfg(test)]
impl Stream {
    pub(crate) fn taken_watch(&self) -> TakenWatch {
        TakenWatch(self.shared.clone())
    }
}

#[cfg(test)]
impl TakenWatch {
    /// Waits until waiters took `n` bytes in all; `false` if `deadline` passed first.
    pub(crate) fn wait_taken(&self, n: u64, deadline: Instant) -> bool {
        let st = self.0.lock();
        let left = deadline.saturating_duration_since(Instant::now());
        let (st, _) = self
            .0
            .changed
            .wait_timeout_while(st, left, |st| st.taken < n)
            .unwrap_or_else(|p| p.into_inner());
        st.taken >= n
    }
}

/// Appends a chunk to the unread buffer under the overflow policy.
fn push(s: &Shared, data: &[u8]) {
    let mut st = s.lock();
    match s.overflow {
        Overflow::DropOldest => {
            st.unread.extend(data);
            let excess = st.unread.len().saturating_sub(s.cap);
            if excess > 0 {
                st.unread.drain(..excess);
                st.dropped += excess as u64;
            }
        }
        Overflow::Wait => {
            let mut rest = data;
            while !rest.is_empty() {
                if st.discard {
                    break;
                }
                let room = s.cap.saturating_sub(st.unread.len());
                if room == 0 {
                    st = s.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                    continue;
                }
                let (now, later) = rest.split_at(room.min(rest.len()));
                st.unread.extend(now);
                rest = later;
                s.changed.notify_all();
            }
        }
    }
    drop(st);
    s.changed.notify_all();
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.shared.lock().discard = true;
        self.shared.changed.notify_all();
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cap: usize, overflow: Overflow) -> (Stream, UnixStream, Arc<Mutex<Vec<u8>>>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let sink: Sink = Box::new(move |d| s2.lock().unwrap().extend_from_slice(d));
        (
            Stream::spawn("test", ours, cap, overflow, sink).unwrap(),
            theirs,
            seen,
        )
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn data_wakes_the_waiter_and_eof_is_seen_at_once() {
        let (s, mut peer, seen) = pair(1024, Overflow::Wait);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            peer.write_all(b"hello").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(peer);
        });
        let start = Instant::now();
        let mut got = Vec::new();
        loop {
            match s.take(soon()) {
                Taken::Data(d) => got.extend(d),
                Taken::Closed => break,
                Taken::Timeout | Taken::Woken => panic!("timed out"),
            }
        }
        writer.join().unwrap();
        assert_eq!(got, b"hello");
        assert_eq!(*seen.lock().unwrap(), b"hello");
        // Woken by the data and the hang-up, not by the 10 s deadline.
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(s.is_closed());
    }

    #[test]
    fn a_deadline_with_nothing_unread_times_out() {
        let (s, peer, _) = pair(16, Overflow::Wait);
        let t = Instant::now();
        assert_eq!(s.take(t + Duration::from_millis(30)), Taken::Timeout);
        assert!(t.elapsed() >= Duration::from_millis(30));
        drop(peer);
    }

    #[test]
    fn a_full_buffer_holds_the_reader_back_without_losing_bytes() {
        let (s, mut peer, seen) = pair(8, Overflow::Wait);
        let data: Vec<u8> = (0..200u8).collect();
        let d2 = data.clone();
        let writer = std::thread::spawn(move || {
            peer.write_all(&d2).unwrap();
        });
        // The sink saw at most one chunk beyond what the buffer can hold until we take.
        let mut got = Vec::new();
        while got.len() < data.len() {
            match s.take(soon()) {
                Taken::Data(d) => {
                    assert!(d.len() <= 8, "buffer grew to {}", d.len());
                    got.extend(d)
                }
                other => panic!("{other:?}"),
            }
        }
        writer.join().unwrap();
        assert_eq!(got, data);
        assert_eq!(seen.lock().unwrap().len(), data.len());
    }

    #[test]
    fn a_drained_stream_keeps_its_newest_bytes_and_counts_the_rest() {
        let (s, mut peer, seen) = pair(4, Overflow::DropOldest);
        peer.write_all(b"0123456789").unwrap();
        drop(peer);
        assert!(s.wait_closed(soon()));
        // The sink (console log) got everything; the buffer only the newest bytes.
        assert_eq!(*seen.lock().unwrap(), b"0123456789");
        assert_eq!(s.dropped(), 6);
    }

    #[test]
    fn dropping_a_stream_with_a_blocked_reader_does_not_hang() {
        use std::sync::mpsc;
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let (read_tx, read_rx) = mpsc::channel();
        let sink: Sink = Box::new(move |d| {
            let _ = read_tx.send(d.len());
        });
        let s = Stream::spawn("test", ours, 4, Overflow::Wait, sink).unwrap();
        let data = b"more than four bytes";
        peer.write_all(data).unwrap();
        // The reader has read it all (the sink saw it) and filled the buffer: with nobody
        // taking, it waits for room that never comes.
        let deadline = soon();
        let mut read = 0;
        while read < data.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            read += read_rx
                .recv_timeout(left)
                .expect("the reader never read it all");
        }
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let st = s.shared.lock();
            let (st, _) = s
                .shared
                .changed
                .wait_timeout_while(st, left, |st| st.unread.len() < 4)
                .unwrap();
            assert_eq!(st.unread.len(), 4, "the buffer never filled");
        }
        let (done_tx, done_rx) = mpsc::channel();
        std::thread::spawn(move || {
            drop(s);
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("dropping the stream hangs on its blocked reader");
    }

    #[test]
    fn a_waker_ends_a_wait_from_another_thread() {
        let (s, _peer, _) = pair(16, Overflow::Wait);
        let w = s.waker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            w.wake();
        });
        assert_eq!(s.take(soon()), Taken::Woken);
        t.join().unwrap();
    }

    #[test]
    fn writes_reach_the_peer() {
        let (s, mut peer, _) = pair(16, Overflow::Wait);
        s.write_all(b"echo hi\n").unwrap();
        let mut buf = [0u8; 8];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"echo hi\n");
    }
}
