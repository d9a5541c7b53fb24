//! The lines of a report after its header: which belong to it, where its stack trace starts
//! and ends, and when the report is complete.

use super::classify::Header;
use super::dump::continues_dump;
use super::frames::{arm_frame, normalize_func};
use super::line::{is_register_dump, parse_frame, parse_symbol, Line};
use super::open::{is_terminator, starts_trace, Open, Phase, Trace};

/// Lines after which a `cut here` without a WARNING/BUG header is dropped.
const PREAMBLE_CAP: usize = 24;

/// Lines that are not frames tolerated inside a stack trace when the console prints no
/// caller tags: there, another CPU's messages land between the frames of a trace, and the
/// frames after them are still the trace's (syzbot reads such a report up to the next
/// report's first line; google/syzkaller `pkg/report/linux.go` `findReport`).
const UNTAGGED_GAP: usize = 6;

pub(crate) enum Verdict {
    Keep,
    KeepAndClose,
    /// The line is not part of the report, which is complete.
    Close,
}

fn keep(o: &mut Open, msg: &str, line: &Line<'_>, n: usize) {
    o.lines.push(msg.to_string());
    o.last_line = n;
    if line.ts.is_some() {
        o.last_ts = line.ts;
    }
}

/// Moves lines held back inside a trace into the report (the trace went on after them).
fn flush_gap(o: &mut Open) {
    let gap = std::mem::take(&mut o.gap);
    if let (Some(first), Some(last)) = (gap.first(), gap.last()) {
        o.notes.push(format!(
            "lines {}-{}: {} line(s) of other CPUs inside its stack trace, which goes on after \
             them (the console prints no caller tags)",
            first.1,
            last.1,
            gap.len()
        ));
    }
    for (l, n, ts) in gap {
        o.lines.push(l);
        o.last_line = n;
        if ts.is_some() {
            o.last_ts = ts;
        }
    }
}

/// Decides about one line of the report's context (or, after `Sending NMI from CPU`, of a
/// CPU context) that is not a header.
pub(crate) fn body_line(o: &mut Open, line: &Line<'_>, n: usize) -> Verdict {
    let msg = line.msg.trim_end();
    if o.phase == Phase::Preamble {
        if o.lines.len() >= PREAMBLE_CAP {
            return Verdict::Close;
        }
        keep(o, msg, line, n);
        return Verdict::Keep;
    }
    if o.lines.len() >= o.body_cap() {
        return Verdict::Close;
    }
    let m = msg.trim_start();
    if o.pending_single() {
        let dump = m.starts_with("CPU: ")
            || m.starts_with("Hardware name:")
            || m.starts_with("Tainted:")
            || m.starts_with("Workqueue:")
            || m.starts_with("Call Trace:")
            || m.starts_with("Call trace:");
        if !dump {
            return Verdict::Close;
        }
    }
    // lib/nmi_backtrace.c: the CPUs asked for a backtrace print it in NMI (or IPI) context,
    // under their own `[Cn]` caller tag.
    if m.starts_with("Sending NMI from CPU") && !o.nmi {
        o.nmi = true;
        o.notes.push(format!(
            "line {n}: `Sending NMI from CPU`: the CPUs' backtraces, under their own [Cn] \
             caller tags, belong to this report"
        ));
    }
    if let Trace::In { .. } = o.trace {
        match in_trace(o, msg, line, n) {
            InTrace::Keep => {
                keep(o, msg, line, n);
                return Verdict::Keep;
            }
            InTrace::Held => return Verdict::Keep,
            InTrace::GaveUp => return Verdict::Close,
            InTrace::Ended => {}
        }
    }
    if o.trace == Trace::Done {
        if is_terminator(o, msg) {
            keep(o, msg, line, n);
            return Verdict::KeepAndClose;
        }
        if o.takes_more_traces() && starts_trace(o, msg) {
            // A later part of a multi-part dump (an RCU stall's NMI backtraces): its frames
            // are read for the title but are not the report's main stack.
            o.trace = Trace::In {
                depth: 0,
                frames: 0,
                idle: 0,
            };
            o.more_traces = true;
            o.notes.push(format!(
                "line {n}: a further stack trace of its dump, read for the title"
            ));
            keep(o, msg, line, n);
            return Verdict::Keep;
        }
        if o.accepts_after_stack(msg) || continues_dump(o, msg) {
            keep(o, msg, line, n);
            return Verdict::Keep;
        }
        return Verdict::Close;
    }
    // Before the stack.
    if is_terminator(o, msg) {
        keep(o, msg, line, n);
        return Verdict::KeepAndClose;
    }
    if starts_trace(o, msg) {
        o.trace = Trace::In {
            depth: 0,
            frames: 0,
            idle: 0,
        };
    } else if let Some(sym) = m.strip_prefix("RIP: ").or_else(|| m.strip_prefix("pc : ")) {
        if o.pc_func.is_none() {
            let sym = sym.split_once(':').map_or(sym, |(seg, rest)| {
                if seg.len() == 4 && seg.bytes().all(|c| c.is_ascii_hexdigit()) {
                    rest
                } else {
                    sym
                }
            });
            o.pc_func = parse_symbol(sym).map(|(f, ..)| normalize_func(f));
        }
    } else if o.access.is_none() && matches!(o.main, Some(Header::Kasan { .. })) {
        if m.starts_with("Read of size") {
            o.access = Some("Read");
        } else if m.starts_with("Write of size") {
            o.access = Some("Write");
        }
    }
    keep(o, msg, line, n);
    Verdict::Keep
}

enum InTrace {
    /// Part of the trace.
    Keep,
    /// Not a frame, held back until the trace goes on (untagged consoles).
    Held,
    /// Too many lines without a frame: the trace and the report are over.
    GaveUp,
    /// The trace is over; the line is looked at as a line after it.
    Ended,
}

fn in_trace(o: &mut Open, msg: &str, line: &Line<'_>, n: usize) -> InTrace {
    let Trace::In {
        depth,
        frames,
        idle,
    } = o.trace
    else {
        return InTrace::Ended;
    };
    let t = msg.trim();
    let mut next = Trace::In {
        depth,
        frames,
        idle,
    };
    if t == "</TASK>" {
        next = Trace::Done;
    } else if t.starts_with("</") && t.ends_with('>') {
        next = Trace::In {
            depth: depth.saturating_sub(1),
            frames,
            idle,
        };
    } else if t.starts_with('<') && t.ends_with('>') && !t.contains(' ') {
        next = Trace::In {
            depth: depth + 1,
            frames,
            idle,
        };
    } else if let Some(f) = parse_frame(msg) {
        if !f.unreliable && !o.more_traces {
            let name = normalize_func(f.func);
            if o.stack.last() != Some(&name) {
                o.stack.push(name);
            }
        }
        next = Trace::In {
            depth,
            frames: frames + 1,
            idle: 0,
        };
    } else if let Some((f, _)) = arm_frame(msg) {
        if !o.more_traces {
            let name = normalize_func(f);
            if o.stack.last() != Some(&name) {
                o.stack.push(name);
            }
        }
        next = Trace::In {
            depth,
            frames: frames + 1,
            idle: 0,
        };
    } else if t.ends_with("[inline]") {
        // An inlined caller added by symbolization (`func file.h:12 [inline]`).
    } else if depth > 0 || is_register_dump(t) {
        // Registers: user space's inside <TASK>, or the trap frame's after an exception
        // stack (older kernels print `invalid_op`, then `RIP:`).
    } else if frames > 0 || idle >= 3 {
        let foreign = line.caller.is_none()
            && frames > 0
            && !is_terminator(o, msg)
            && !o.accepts_after_stack(msg)
            && !starts_trace(o, msg);
        if foreign && o.gap.len() < UNTAGGED_GAP {
            o.gap.push((msg.to_string(), n, line.ts));
            return InTrace::Held;
        }
        o.gap.clear();
        o.trace = Trace::Done;
        return if foreign {
            InTrace::GaveUp
        } else {
            InTrace::Ended
        };
    } else {
        next = Trace::In {
            depth,
            frames,
            idle: idle + 1,
        };
    }
    flush_gap(o);
    o.trace = next;
    InTrace::Keep
}
