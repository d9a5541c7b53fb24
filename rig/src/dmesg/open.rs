//! A report in progress: the lines collected so far and the state that decides which of the
//! next lines still belong to it.

use super::classify::{Header, WarnMsg};

/// Lines from other contexts after which a report in progress is given up as complete.
const OTHER_BUDGET: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `cut here` or a WARN message seen; the header that fixes the kind is still to come.
    Preamble,
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trace {
    NotStarted,
    In {
        depth: u32,
        frames: usize,
        idle: usize,
    },
    Done,
}

/// A report in progress.
#[derive(Debug)]
pub(crate) struct Open {
    pub ctx: String,
    pub first_line: usize,
    pub ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub lines: Vec<String>,
    pub phase: Phase,
    pub main: Option<Header>,
    pub warn_msg: Option<WarnMsg>,
    pub oops: Option<String>,
    pub pc_func: Option<String>,
    pub access: Option<&'static str>,
    pub stack: Vec<String>,
    pub trace: Trace,
    pub other: usize,
    pub expected: bool,
    /// Index in `lines` of the line that fixed the kind (the WARNING after `cut here`, ...).
    pub header_idx: usize,
    /// 1-based log line of that line.
    pub header_line: usize,
    /// 1-based log line of the report's last line.
    pub last_line: usize,
    /// Why the report ended (for `--explain`).
    pub end: &'static str,
    /// A record of another caller was cut into one of its lines and left out.
    pub spliced: bool,
    /// `Sending NMI from CPU` was printed: the CPUs' backtraces, printed under their own
    /// `[Cn]` caller tags, belong to this report.
    pub nmi: bool,
    /// A later trace of a multi-part dump is being read (its frames stay out of `stack`).
    pub more_traces: bool,
    /// Lines that are not frames, held back inside a trace of an untagged console until
    /// the trace goes on: (text, log line, timestamp).
    pub gap: Vec<(String, usize, Option<f64>)>,
    /// Why lines from elsewhere or after the first stack belong to it (`--explain`).
    pub notes: Vec<String>,
}

impl Open {
    pub(crate) fn pending_single(&self) -> bool {
        self.phase == Phase::Body
            && self.trace == Trace::NotStarted
            && self.main.as_ref().is_some_and(Header::is_single_line)
    }

    pub(crate) fn budget(&self) -> usize {
        if self.pending_single() {
            2
        } else {
            OTHER_BUDGET
        }
    }

    pub(crate) fn body_cap(&self) -> usize {
        match self.main {
            Some(Header::Lockdep { .. }) | Some(Header::RcuStall) => 3000,
            // A stack overflow's recursion (`BUG: stack guard page was hit`) or a soft
            // lockup's trace can run to hundreds of frames before the syscall or work
            // dispatcher their title is read above.
            _ => 2000,
        }
    }

    /// Kinds whose dump holds several stack traces, all read for the title (see
    /// [`super::dump`]).
    pub(crate) fn takes_more_traces(&self) -> bool {
        matches!(self.main, Some(Header::RcuStall))
    }

    pub(crate) fn accepts_after_stack(&self, msg: &str) -> bool {
        let m = msg.trim_start();
        match &self.main {
            Some(Header::Kasan { .. } | Header::Panic { .. } | Header::Sanitizer) => true,
            Some(Header::OfError { .. }) => m.starts_with("OF: ERROR: next of_node_put()"),
            Some(Header::SysfsDup) | Some(Header::KobjectError { .. }) => {
                m.starts_with("kobject") || m.contains("kobject_add_internal failed")
            }
            Some(Header::Warning { .. })
            | Some(Header::RustPanic)
            | Some(Header::KernelBug { .. })
            | Some(Header::Bug { .. })
            | Some(Header::Gpf)
            | Some(Header::PageFault(_))
            | Some(Header::OopsLine { .. }) => {
                m.starts_with("Modules linked in")
                    || m.starts_with("irq event stamp")
                    || m.starts_with("hardirqs last")
                    || m.starts_with("softirqs last")
                    || m.starts_with("CR2: ")
                    || m.starts_with("Code: ")
                    || m.starts_with("---[ end trace")
                    || m.starts_with("Kernel Offset:")
                    || m.starts_with("Rebooting in")
            }
            _ => false,
        }
    }
}

pub(crate) fn is_terminator(o: &Open, msg: &str) -> bool {
    let m = msg.trim();
    if m.starts_with("---[ end trace") || m.starts_with("---[ end Kernel panic") {
        return true;
    }
    matches!(
        o.main,
        Some(Header::Kasan { .. } | Header::Sanitizer | Header::Ubsan { .. })
    ) && m.len() >= 40
        && m.bytes().all(|c| c == b'=')
        && o.lines.len() > 1
}

pub(crate) fn starts_trace(o: &Open, msg: &str) -> bool {
    let m = msg.trim_start();
    if matches!(o.main, Some(Header::KmemleakObject)) {
        return m.starts_with("backtrace");
    }
    // arch/arm/kernel/traps.c `dump_backtrace()` (32-bit arm) opens with `Backtrace:`.
    m.starts_with("Call Trace:") || m.starts_with("Call trace:") || m.starts_with("Backtrace:")
}
