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
    /// 1-based log line of the report's last line.
    pub last_line: usize,
    /// Why the report ended (for `--explain`).
    pub end: &'static str,
    /// A record of another caller was cut into one of its lines and left out.
    pub spliced: bool,
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
            Some(Header::Lockdep { .. }) => 3000,
            Some(Header::Kasan { .. }) | Some(Header::Panic { .. }) => 800,
            _ => 500,
        }
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
    m.starts_with("Call Trace:") || m.starts_with("Call trace:")
}
