//! The kernel log as a run's steps see it (`wait_log`, `of_unittest`): the console's lines,
//! bounded, with waits that wake when a line arrives or the console closes — never on a timer,
//! and each line looked at once, however long the log grows.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The newest bytes of complete lines kept (older lines are dropped; `console.log` keeps them).
const WINDOW: usize = 16 * 1024 * 1024;
/// The longest line kept whole; a longer one is cut (the kernel's own lines are ≤ 1 KiB).
const LINE_MAX: usize = 64 * 1024;

#[derive(Default)]
struct State {
    lines: VecDeque<String>,
    /// The number of the line at `lines[0]` (lines count from the start of the console).
    first: u64,
    bytes: usize,
    /// The line still being printed.
    partial: Vec<u8>,
    closed: bool,
}

/// The lines of the kernel console, fed by the console's reader thread.
#[derive(Default)]
pub(crate) struct KernelLog {
    state: Mutex<State>,
    changed: Condvar,
}

/// How a [`KernelLog::wait`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waited<T> {
    Found(T),
    Timeout,
    /// The console closed (QEMU exited) without the line.
    Closed,
}

impl KernelLog {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds console bytes; an empty chunk means the console closed.
    pub(crate) fn push(&self, data: &[u8]) {
        let mut st = self.lock();
        if data.is_empty() {
            st.closed = true;
        }
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let mut line = std::mem::take(&mut st.partial);
            line.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let text = String::from_utf8_lossy(&line).replace('\r', "");
            st.bytes += text.len();
            st.lines.push_back(text);
            while st.bytes > WINDOW {
                let Some(old) = st.lines.pop_front() else {
                    break;
                };
                st.bytes -= old.len();
                st.first += 1;
            }
        }
        let room = LINE_MAX.saturating_sub(st.partial.len());
        st.partial.extend_from_slice(&rest[..rest.len().min(room)]);
        drop(st);
        self.changed.notify_all();
    }

    /// The number of the next line to arrive: `since: step` waits from here.
    pub(crate) fn mark(&self) -> u64 {
        let st = self.lock();
        st.first + st.lines.len() as u64
    }

    /// Calls `check` on each line from line `from` on (or from the oldest kept), in order and
    /// once each, until it returns `Some`, the console closes, or `deadline` passes.
    pub(crate) fn wait<T>(
        &self,
        from: u64,
        deadline: Instant,
        mut check: impl FnMut(&str) -> Option<T>,
    ) -> Waited<T> {
        let mut next = from;
        let mut st = self.lock();
        loop {
            next = next.max(st.first);
            let end = st.first + st.lines.len() as u64;
            while next < end {
                if let Some(found) = check(&st.lines[(next - st.first) as usize]) {
                    return Waited::Found(found);
                }
                next += 1;
            }
            if st.closed {
                return Waited::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Timeout;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn lines_are_split_across_chunks_and_carriage_returns_dropped() {
        let log = KernelLog::default();
        log.push(b"[ 1.0] first\r\n[ 2.0] sec");
        log.push(b"ond\r\n[ 3.0] par");
        let mut seen = Vec::new();
        let r = log.wait(0, Instant::now(), |l| {
            seen.push(l.to_string());
            None::<()>
        });
        assert_eq!(r, Waited::Timeout);
        assert_eq!(seen, ["[ 1.0] first", "[ 2.0] second"]);
        assert_eq!(log.mark(), 2);
    }

    #[test]
    fn a_wait_wakes_on_the_line_not_on_a_timer_and_from_its_mark() {
        let log = Arc::new(KernelLog::default());
        log.push(b"OF: ERROR: before the step\n");
        let from = log.mark();
        let feeder = {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.push(format!("noise {i}\n").as_bytes());
                }
                log.push(b"OF: ERROR: after\n");
            })
        };
        let start = Instant::now();
        let mut looked = 0;
        let r = log.wait(from, start + Duration::from_secs(30), |l| {
            looked += 1;
            l.starts_with("OF: ERROR").then(|| l.to_string())
        });
        feeder.join().unwrap();
        assert_eq!(r, Waited::Found("OF: ERROR: after".to_string()));
        assert_eq!(looked, 51, "each line once, none before the mark");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_closed_console_ends_the_wait_and_memory_stays_bounded() {
        let log = Arc::new(KernelLog::default());
        let line = vec![b'x'; 1023];
        for _ in 0..(WINDOW / 1024 + 1000) {
            log.push(&line);
            log.push(b"\n");
        }
        // A line without an end is cut, not grown.
        log.push(&vec![b'y'; 2 * LINE_MAX]);
        {
            let st = log.lock();
            assert!(st.bytes <= WINDOW);
            assert!(st.first >= 500, "{} lines dropped", st.first);
            assert_eq!(st.partial.len(), LINE_MAX);
        }
        let closer = {
            let log = log.clone();
            std::thread::spawn(move || log.push(b""))
        };
        let r = log.wait(log.mark(), Instant::now() + Duration::from_secs(30), |_| {
            Some(())
        });
        closer.join().unwrap();
        assert_eq!(r, Waited::Closed);
    }
}
