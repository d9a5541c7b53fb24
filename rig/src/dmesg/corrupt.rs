//! When a report counts as corrupted because its stack trace is missing or empty.
//!
//! syzbot files a report of a kind that carries a stack trace as corrupted when none of the
//! lines that open a stack trace is there (`no stack trace in report`), or when the first of
//! them is not followed by a frame within a few lines (`no frames in a stack trace`), or when
//! the report stops right after it (`call trace is missed`); google/syzkaller
//! `pkg/report/linux.go` `isCorrupted`. Each opening line is looked at once, at its first
//! occurrence: a later `Call Trace:` without frames (an NMI backtrace whose frames are all
//! unreliable, a second task's dump) does not make a report corrupted. Unreliable frames
//! (x86's ` ? func+0x1/0x2`, which `arch/x86/kernel/dumpstack.c` prints for every text
//! address on the stack the unwinder did not vouch for) are not lines of the report at
//! all, so a `Call Trace:` followed by twenty of them and then a real frame has its frame.

use super::frames::frame_funcs;
use regex::RegexSet;
use std::sync::LazyLock;

/// The lines that open a stack trace, one regex per kind of opening; the last is riscv's
/// `show_regs()` (arch/riscv/kernel/process.c), after which the frames follow without a
/// `Call Trace:` line: its frames count when there, their absence does not make the report
/// corrupted.
static OPENERS: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new([
        r"Call (?:T|t)race",
        r"Allocated:",
        r"Allocated by task [0-9]+:",
        r"Freed:",
        r"Freed by task [0-9]+:",
        r"[^k] backtrace(?: \(crc [0-9a-fA-F]*\))?:",
        r"Backtrace:",
        r"Uninit was stored to memory at",
        r"status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}",
    ])
    .expect("static regex set")
});

/// Index of riscv's `show_regs()` line in [`OPENERS`].
const RISCV_REGS: usize = 8;

/// How many lines after an opening line are searched for a frame.
const FRAME_WINDOW: usize = 15;

fn is_opener(l: &str) -> bool {
    OPENERS.is_match(l)
}

/// Why a report of a kind with a stack trace is corrupted, if it is. `lines` are the
/// report's lines from its header on; unreliable frames are empty strings and are skipped.
pub(crate) fn missing_stack(lines: &[&str]) -> Option<&'static str> {
    let lines: Vec<&str> = lines.iter().copied().filter(|l| !l.is_empty()).collect();
    // The first line of each kind of opening, in one pass.
    let mut first: Vec<Option<usize>> = vec![None; OPENERS.len()];
    for (i, l) in lines.iter().enumerate() {
        for k in OPENERS.matches(l).iter() {
            first[k].get_or_insert(i);
        }
    }
    let mut seen = false;
    for (k, at) in first.iter().enumerate() {
        let Some(at) = *at else {
            continue;
        };
        let rest = &lines[at..];
        if rest.len() < 4 {
            return Some("call trace is missed");
        }
        let framed = rest[1..]
            .iter()
            .take(FRAME_WINDOW)
            .take_while(|l| !is_opener(l))
            .any(|l| l.contains("(stack is not available)") || frame_funcs(l).next().is_some());
        if framed {
            seen = true;
        } else if k != RISCV_REGS {
            return Some("no frames in a stack trace");
        }
    }
    (!seen).then_some("no stack trace in report")
}

#[cfg(test)]
mod tests {
    use super::missing_stack;

    #[test]
    fn first_opening_line_of_each_kind_only() {
        let ok = [
            "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2",
            "Call Trace:",
            " <TASK>",
            " f+0x1/0x2",
            " g+0x1/0x2",
            " </TASK>",
            "Call Trace:",
            " <NMI>",
            " </NMI>",
            "x",
        ];
        assert_eq!(missing_stack(&ok), None);
        assert_eq!(
            missing_stack(&["WARNING: x", "Modules linked in:"]),
            Some("no stack trace in report")
        );
        assert_eq!(
            missing_stack(&["WARNING: x", "Call Trace:", " <TASK>"]),
            Some("call trace is missed")
        );
    }

    #[test]
    fn unreliable_frames_are_not_lines() {
        let mut lines = vec!["BUG: x", "Call Trace:", " <TASK>"];
        lines.extend(std::iter::repeat_n("", 20));
        lines.extend([" real_frame+0x1/0x2", " </TASK>"]);
        assert_eq!(missing_stack(&lines), None);
        let mut none = vec!["BUG: x", "Call Trace:"];
        none.extend(std::iter::repeat_n(" <IRQ>", 16));
        none.push(" late+0x1/0x2");
        assert_eq!(missing_stack(&none), Some("no frames in a stack trace"));
    }
}
