//! Frame selection: where in a report the search for the title's function starts, which
//! frames it passes over, and which one it takes.
//!
//! A [`FrameSpec`] is data: a list of [`Part`]s matched in order over the report's lines
//! (find the faulting `RIP:`/`pc :` line, then the `Call Trace:`, then walk the frames...),
//! a fallback list tried when the first finds no usable frame, the kind's own skip patterns
//! (on top of the generic ones in [`super::frames`]) and how to pick among the candidates.
//! The specs themselves live in [`super::formats`], next to the titles that use them.

use super::demangle::demangle;
use super::frames::{frame_funcs, generic_reason, is_stall_anchor, strip_syscall_prefix};
use regex::{Regex, RegexSet};
use std::sync::LazyLock;

/// One step of a frame search.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    /// The next `RIP:`/`IP:`/`pc :`/`PC is at` line; the function it names is a candidate.
    Rip,
    /// The next `Call Trace:`/`Call trace:`/`Backtrace:` line.
    CallTrace,
    /// Every frame from here until the next stack trace starts (`Call Trace`, `Allocated by`,
    /// `Freed by`, `backtrace:`), or until a line matching the next part.
    Stack,
    /// The next line matching this regex (`{{FUNC}}`/`{{PC}}` expand); its first group, if
    /// any, is a candidate.
    Line(&'static str),
}

/// How the title's frame is picked among the candidates that survived skipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The first one.
    First,
    /// CPU stalls loop somewhere random: the frame just above the first dispatch/syscall
    /// anchor (`process_one_work`, `do_syscall_64`, `vfs_write`, ...).
    Stall,
    /// Hung tasks: `rtnl_lock`/`synchronize_rcu` waits are grouped under those names; else
    /// the first frame that is not scheduler, lock, wait or completion code.
    Hung,
}

/// Where a report kind looks for its title's function.
#[derive(Debug)]
pub(crate) struct FrameSpec {
    pub parts: &'static [Part],
    /// Tried when `parts` yields no frame.
    pub alt: &'static [Part],
    /// Kind-specific skip patterns (regexes searched in the function name).
    pub skip: &'static [&'static str],
    pub pick: Pick,
}

pub(crate) const PC: &str = r"\[<?(?:0x)?[0-9a-f]+>?\]";
pub(crate) const FUNC: &str = r"([a-zA-Z0-9_]+)(?:\.|\+)";

/// Expands `{{FUNC}}`, `{{PC}}`, `{{SRC}}` in a pattern.
pub(crate) fn expand(pat: &str) -> String {
    pat.replace("{{FUNC}}", FUNC)
        .replace("{{PC}}", PC)
        .replace("{{SRC}}", r"([a-zA-Z0-9-_/.]+\.[a-z]+:[0-9]+)")
}

static RIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&expand(
        r"(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))",
    ))
    .expect("static regex")
});
static CALL_TRACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Call (?:T|t)race:|Backtrace:").expect("static regex"));
/// Lines that start a new stack trace (and so end the one being walked).
static STACK_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"Call (?:T|t)race|Allocated:|Allocated by task [0-9]+:|Freed:|Freed by task [0-9]+:|[^k] backtrace(?: \(crc [0-9a-fA-F]*\))?:|Backtrace:|Uninit was stored to memory at",
    )
    .expect("static regex")
});
/// Fault-injection stacks interleave with real reports: seeing one makes the report corrupted.
static FAULT_INJECTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^( \[<?(?:0x)?[0-9a-f]+>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x")
        .expect("static regex")
});

/// Hung-task frames that never say what hung.
const HUNG_SKIP: &[&str] = &[
    "sched",
    "_lock",
    "_slowlock",
    "down",
    "rwsem",
    "completion",
    "kthread",
    "wait",
    "synchronize",
    "context_switch",
    "__switch_to",
    "cancel_delayed_work",
    "rcu_barrier",
];

/// A spec with its regexes compiled.
#[derive(Debug)]
pub(crate) struct Compiled {
    parts: Vec<CPart>,
    alt: Vec<CPart>,
    skip: RegexSet,
    skip_src: &'static [&'static str],
    pick: Pick,
}

#[derive(Debug)]
enum CPart {
    Rip,
    CallTrace,
    Stack,
    Line(Regex),
}

impl Compiled {
    pub(crate) fn new(spec: &FrameSpec) -> Self {
        let conv = |ps: &[Part]| -> Vec<CPart> {
            ps.iter()
                .map(|p| match p {
                    Part::Rip => CPart::Rip,
                    Part::CallTrace => CPart::CallTrace,
                    Part::Stack => CPart::Stack,
                    Part::Line(s) => CPart::Line(Regex::new(&expand(s)).expect("format regex")),
                })
                .collect()
        };
        Compiled {
            parts: conv(spec.parts),
            alt: conv(spec.alt),
            skip: RegexSet::new(spec.skip).expect("skip regex"),
            skip_src: spec.skip,
            pick: spec.pick,
        }
    }
}

/// The outcome of a frame search, with a trail for `rig analyze --explain`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Selection {
    /// The title's function (syscall wrappers reduced), `None` when nothing qualified.
    pub frame: Option<String>,
    /// Set when the search saw a fault-injection stack or found no frame.
    pub corrupted: Option<String>,
    pub trail: Vec<String>,
}

impl CPart {
    /// `Some(candidate)` when the line matches this part.
    fn matches<'a>(&self, line: &'a str) -> Option<Option<&'a str>> {
        match self {
            CPart::Rip => RIP.captures(line).map(|c| c.get(1).map(|m| m.as_str())),
            CPart::CallTrace => CALL_TRACE.is_match(line).then_some(None),
            CPart::Stack => None,
            CPart::Line(re) => re.captures(line).map(|c| c.get(1).map(|m| m.as_str())),
        }
    }

    fn name(&self) -> String {
        match self {
            CPart::Rip => "the faulting RIP/pc line".into(),
            CPart::CallTrace => "the Call Trace".into(),
            CPart::Stack => "the stack".into(),
            CPart::Line(re) => format!("a line matching `{}`", re.as_str()),
        }
    }
}

struct Walk<'s> {
    spec: &'s Compiled,
    /// Added to line indexes in the trail (the report's first log line, minus one).
    base: usize,
    /// Candidates: (function, line index).
    cands: Vec<(String, usize)>,
    trail: Vec<String>,
    explain: bool,
}

impl Walk<'_> {
    fn offer(&mut self, func: &str, line: usize) {
        // Kernel Rust frames are mangled; syzbot reads (and skips, and titles) them
        // demangled.
        let demangled = demangle(func);
        let func = demangled.as_deref().unwrap_or(func);
        if let Some((group, pat)) = generic_reason(func) {
            if self.explain {
                self.trail.push(format!(
                    "  line {}: skip {func} ({group}: `{pat}`)",
                    self.base + line + 1
                ));
            }
            return;
        }
        if let Some(i) = self.spec.skip.matches(func).iter().next() {
            if self.explain {
                self.trail.push(format!(
                    "  line {}: skip {func} (this kind: `{}`)",
                    self.base + line + 1,
                    self.spec.skip_src[i]
                ));
            }
            return;
        }
        self.cands.push((func.to_string(), line));
    }

    fn pick(&mut self) -> Option<(String, usize)> {
        let cands = std::mem::take(&mut self.cands);
        let stripped: Vec<(&str, usize)> = cands
            .iter()
            .map(|(f, l)| (strip_syscall_prefix(f), *l))
            .collect();
        let (name, line) = match self.spec.pick {
            Pick::First => stripped.first().copied()?,
            Pick::Stall => {
                let mut prev = *stripped.first()?;
                let mut found = None;
                for &(f, l) in &stripped {
                    if is_stall_anchor(f) {
                        if f.contains("smp_call_function") {
                            prev = ("smp_call_function", l);
                        }
                        if self.explain {
                            self.trail.push(format!(
                                "  line {}: {f} is a stall anchor",
                                self.base + l + 1
                            ));
                        }
                        found = Some(prev);
                        break;
                    }
                    prev = (f, l);
                }
                found?
            }
            Pick::Hung => {
                let anchor = stripped.iter().find_map(|&(f, l)| {
                    if f.contains("rtnl_lock") {
                        Some((f, l))
                    } else if ["synchronize_rcu", "synchronize_srcu", "synchronize_net"]
                        .iter()
                        .chain(&["synchronize_sched"])
                        .any(|a| f.contains(a))
                    {
                        Some(("synchronize_rcu", l))
                    } else {
                        None
                    }
                });
                match anchor {
                    Some(a) => a,
                    None => *stripped
                        .iter()
                        .find(|(f, _)| !HUNG_SKIP.iter().any(|s| f.contains(s)))?,
                }
            }
        };
        Some((name.to_string(), line))
    }

    /// Runs one list of parts from `start`; returns the first group's pick and whether the
    /// walk was clean.
    fn run(&mut self, parts: &[CPart], lines: &[&str], start: usize) -> (Option<String>, bool) {
        let mut pos = start;
        let mut traces = 0;
        let mut first: Option<Option<String>> = None;
        let mut ok = true;
        let mut i = 0;
        loop {
            if i == parts.len() || (matches!(parts[i], CPart::Stack) && traces > 0) {
                let key = self.pick();
                if key.is_none() {
                    ok = false;
                }
                if first.is_none() {
                    if let (Some((f, l)), true) = (&key, self.explain) {
                        self.trail
                            .push(format!("  line {}: chose {f}", self.base + l + 1));
                    }
                    first = Some(key.map(|k| k.0));
                }
            }
            if i == parts.len() {
                break;
            }
            let part = &parts[i];
            if self.explain {
                self.trail.push(format!(
                    "  look for {} from line {}",
                    part.name(),
                    self.base + pos + 1
                ));
            }
            let stack = matches!(part, CPart::Stack);
            traces += usize::from(stack);
            // A line part ends at its line; a stack at the next stack trace or the next part.
            let (ender, advance) = if stack {
                (parts.get(i + 1), 1)
            } else {
                (Some(part), 0)
            };
            while pos < lines.len() {
                let ln = lines[pos];
                pos += 1;
                if FAULT_INJECTION.is_match(ln) {
                    ok = false;
                    break;
                }
                if stack && STACK_START.is_match(ln) {
                    break;
                }
                if let Some(c) = ender.and_then(|p| p.matches(ln)) {
                    if let Some(f) = c {
                        self.offer(f, pos - 1);
                    }
                    i += advance;
                    break;
                }
                if stack {
                    for f in frame_funcs(ln) {
                        self.offer(f, pos - 1);
                    }
                }
            }
            i += 1;
        }
        (first.flatten(), ok)
    }
}

/// Searches `lines[start..]` for the title's function as `spec` says.
/// `base` is the log line number of `lines[0]` minus one (for the trail).
pub(crate) fn select(
    spec: &Compiled,
    lines: &[&str],
    start: usize,
    base: usize,
    explain: bool,
) -> Selection {
    let mut w = Walk {
        spec,
        base,
        cands: Vec::new(),
        trail: Vec::new(),
        explain,
    };
    let (mut frame, mut ok) = w.run(&spec.parts, lines, start);
    if (frame.is_none() || !ok) && !spec.alt.is_empty() {
        if explain {
            w.trail
                .push("  no frame there; trying the fallback search".into());
        }
        w.cands.clear();
        (frame, ok) = w.run(&spec.alt, lines, start);
    }
    let corrupted = if frame.is_none() {
        Some("no usable frame in the stack trace".to_string())
    } else if !ok {
        Some("a fault-injection stack is mixed into the report".to_string())
    } else {
        None
    };
    Selection {
        frame,
        corrupted,
        trail: w.trail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARN: FrameSpec = FrameSpec {
        parts: &[Part::Rip, Part::Stack],
        alt: &[Part::CallTrace, Part::Stack],
        skip: &["refcount"],
        pick: Pick::First,
    };

    #[test]
    fn rip_then_call_trace_fallback() {
        let c = Compiled::new(&WARN);
        let lines = [
            "WARNING: CPU: 0 PID: 1 at lib/refcount.c:25 refcount_warn_saturate+0x1/0x2",
            "RIP: 0010:refcount_warn_saturate+0x1/0x2 lib/refcount.c:25",
            "RSP: 0018:ffffc9000401f178 EFLAGS: 00010293",
            "Call Trace:",
            " <TASK>",
            " ? __warn+0x1/0x2",
            " __refcount_inc include/linux/refcount.h:241 [inline]",
            " __x64_sys_foo+0x1/0x2",
        ];
        let s = select(&c, &lines, 0, 0, true);
        assert_eq!(s.frame.as_deref(), Some("sys_foo"));
        assert!(s.corrupted.is_none());
        assert!(s
            .trail
            .iter()
            .any(|t| t.contains("skip refcount_warn_saturate")));
    }

    #[test]
    fn nothing_found_is_corrupted() {
        let c = Compiled::new(&WARN);
        let s = select(&c, &["WARNING: x", "Call Trace:", " <TASK>"], 0, 0, false);
        assert_eq!(s.frame, None);
        assert!(s.corrupted.is_some());
    }

    #[test]
    fn stall_anchor() {
        let spec = FrameSpec {
            parts: &[Part::CallTrace, Part::Stack],
            alt: &[],
            skip: &[],
            pick: Pick::Stall,
        };
        let c = Compiled::new(&spec);
        let lines = [
            "Call Trace:",
            " foo+0x1/0x2",
            " __x64_sys_bpf+0x1/0x2",
            " do_syscall_64+0x1/0x2",
        ];
        assert_eq!(
            select(&c, &lines, 0, 0, false).frame.as_deref(),
            Some("sys_bpf")
        );
    }
}
