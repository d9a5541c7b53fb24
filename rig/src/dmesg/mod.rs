//! Kernel-log analyzer: finds every splat in a console log or `dmesg` output and gives each a
//! stable, syzbot-style title.
//!
//! # What it reads
//! Console output of Linux 6.1 and 6.12 on x86_64 and arm64, with or without printk
//! timestamps (`[   12.345678]`) and caller tags (`[T123]`, `[C1]`), which are stripped from
//! the report text. Reports printed by different callers at once are kept apart by caller
//! tag; shell output (lines without a timestamp in a timestamped log) is left out of reports
//! and cannot start one, except kmemleak records (`cat /sys/kernel/debug/kmemleak`); a kernel
//! line spliced into the middle of another line is split off at its timestamp, and a record
//! that cut into a report's line is left out of the report. `dmesg -T` and `journalctl -k`
//! prefixes are stripped too. A log that ends mid-report still yields the report.
//!
//! # Titles
//! `X` is the guilty frame: the first frame, starting from the function named in the header
//! (WARNING's `at ... func`, KASAN's `in func`) or the faulting `RIP:`/`pc :`, then the main
//! stack trace, that is not generic machinery ([`is_generic_frame`]: WARN/BUG/oops and
//! exception entry, dump_stack, printk, refcount/kref/kobject/of_node_put helpers,
//! lock/mutex/rwsem/scheduler/wait helpers, `__might_sleep`, list helpers, KASAN/kmemleak/
//! allocator hooks, memcpy/string helpers). When no frame qualifies the ` in X` part is left
//! out. Numbers (decimal, `0x` hex, 8+-digit hex words) are replaced by `N` in every title.
//!
//! | kind | title |
//! |---|---|
//! | `warning` | `WARNING in X`; `WARNING: ODEBUG bug in X` for debugobjects warnings |
//! | `refcount` | `WARNING: refcount bug in X` (any `refcount_t:` warning); `unregister_netdevice: waiting for DEV to become free` (a leaked netdev reference) |
//! | `kobject` | `WARNING: kobject bug in X`, `sysfs: cannot create duplicate filename in X`, `kobject: tried to init an initialized object in X` |
//! | `of_error` | `OF: ERROR: <what> in <node path>`; what ∈ `bad of_node_put()`, `memory leak` (expected refcount ... unbalanced), `memory leak before free overlay changeset`, `unexpected properties`, `unexpected children`; other `OF: ERROR:` lines keep their text. The path is the node's (unit addresses become `@N`); the guilty frame, if a stack dump follows, is in `guilty_frame` but not in the title |
//! | `lockdep` | `possible deadlock in X` (circular, recursive, irq inversion, safe→unsafe), `inconsistent lock state in X`, `INFO: trying to register non-static key in X`, `WARNING: <lockdep header> in X` for the rest (e.g. `WARNING: suspicious RCU usage in X`) |
//! | `hung_task` | `INFO: task hung in X` |
//! | `sleep_in_atomic` | `BUG: sleeping function called from invalid context in X` |
//! | `kasan` | `KASAN: <bug type> <Read\|Write> in X` (`KASAN: double-free in X` when no access line) |
//! | `list_corruption` | `BUG: corrupted list in X` (list_add/list_del corruption, WARN or BUG flavour) |
//! | `kmemleak` | `memory leak in X`; the `kmemleak: N new suspected memory leaks` line alone: `kmemleak: new suspected memory leaks` |
//! | `kernel_bug` | `kernel BUG in X` |
//! | `bug` | `BUG: <description up to the first variable detail> in X` (e.g. `BUG: scheduling while atomic in X`, `BUG: soft lockup in X`) |
//! | `general_protection` | `general protection fault in X` |
//! | `page_fault` | `BUG: unable to handle kernel NULL pointer dereference in X`, `BUG: unable to handle kernel paging request in X` (x86 and arm64 alike) |
//! | `oops` | an Oops without a more specific header: `invalid opcode in X`, `Internal error: Oops - Undefined instruction in X` |
//! | `panic` | `kernel panic: <message>` |
//! | `rcu_stall` | `INFO: rcu detected stall in X` |
//! | `ubsan` | `UBSAN: <reason> in X` (e.g. `UBSAN: array-index-out-of-bounds in X`) |
//!
//! # dt-test expectations
//! While a CONFIG_OF_UNITTEST `### dt-test ### EXPECT \ : <text>` is open (until its
//! `EXPECT / : <text>`), a report whose header line matches `<text>` (with `<<int>>`,
//! `<<hex>>`, `<<all>>` placeholders) is expected noise and not reported.
//!
//! # When a report is complete
//! At its terminator (`---[ end trace ...]---`, `---[ end Kernel panic ...]---`, KASAN's
//! closing `====` line); or, after its main stack trace, at the first line of its context that
//! does not belong to it; or when another report starts in its context; or when the kernel
//! clock moved 10 s past it, 400 lines of other contexts went by, [`Analyzer::flush`] or
//! [`Analyzer::finish`]. Reports without a terminator (lockdep, hung task, sleeping in atomic,
//! OF errors, kmemleak) are therefore returned by `feed` only once a later line arrives: a
//! live reader should call `flush` when the console has been quiet for a second or two.

mod analyzer;
mod classify;
mod expect;
mod explain;
mod formats;
mod frames;
mod line;
mod open;
mod report;
mod skip;
mod stack;
mod symbolize;
mod title;

#[cfg(test)]
mod tests;

pub use analyzer::Analyzer;
pub use explain::{explain, render as render_explain};
pub use frames::{is_generic_frame, strip_syscall_prefix};
pub use symbolize::{symbolize, SymbolizeError};
pub use title::normalize_numbers;

use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of splat a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Warning,
    Refcount,
    Kobject,
    OfError,
    Lockdep,
    HungTask,
    SleepInAtomic,
    Kasan,
    ListCorruption,
    Kmemleak,
    KernelBug,
    Bug,
    GeneralProtection,
    PageFault,
    Oops,
    Panic,
    RcuStall,
    Ubsan,
    Kmsan,
    Kcsan,
    Kfence,
    /// The kernel booted again while it had been running.
    Reboot,
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

/// One splat found in a kernel log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Stable title (see the module docs).
    pub title: String,
    pub kind: ReportKind,
    /// The first non-generic frame, when one was found.
    pub guilty_frame: Option<String>,
    /// The report's lines, printk timestamps and caller tags stripped.
    pub text: String,
    /// Function names of the main stack trace (the faulting function first when a
    /// `RIP:`/`pc :` line named it), unreliable `? ` frames left out.
    pub stack: Vec<String>,
    /// 1-based line of the log where the report began.
    pub line: usize,
    /// 1-based line of the log where it ended.
    #[serde(default)]
    pub end_line: usize,
    /// printk timestamp of that line, in seconds.
    pub timestamp: Option<f64>,
    /// The report is not whole (another report or a fault-injection stack is mixed into it,
    /// its stack trace is missing) and its title may say so (`... in corrupted`).
    #[serde(default)]
    pub corrupted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupted_reason: Option<String>,
    /// How the report was cut and titled, line by line (see [`explain`]).
    #[serde(skip)]
    pub trail: Vec<String>,
}

/// Analyzes a whole log; reports in the order they began.
pub fn analyze(text: &str) -> Vec<Report> {
    let mut a = Analyzer::new();
    let mut out = a.feed(text);
    out.extend(a.finish());
    out.sort_by_key(|r| r.line);
    out
}

/// Human-readable rendering: per report its title, kind, guilty frame, and indented text.
pub fn render_text(reports: &[Report]) -> String {
    let mut s = String::new();
    if reports.is_empty() {
        s.push_str("no reports\n");
        return s;
    }
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("=== {}\n", r.title));
        s.push_str(&format!("kind:   {}\n", r.kind));
        s.push_str(&format!(
            "guilty: {}\n",
            r.guilty_frame.as_deref().unwrap_or("-")
        ));
        match r.timestamp {
            Some(t) => s.push_str(&format!("at:     line {} [{t:.6}]\n", r.line)),
            None => s.push_str(&format!("at:     line {}\n", r.line)),
        }
        for l in r.text.lines() {
            s.push_str("    ");
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}

/// `{"reports": [ {title, kind, guilty_frame, text, stack, line, timestamp}, ... ]}`.
pub fn render_json(reports: &[Report]) -> serde_json::Value {
    serde_json::json!({ "reports": reports })
}

/// Whether a scenario's `expect`/`allow` pattern matches a title: a pattern written as
/// `/regex/` is a regex searched in the title (anchor it with `^...$` for a full match; an
/// invalid regex matches nothing); anything else must equal the title exactly.
pub fn title_matches(pattern: &str, title: &str) -> bool {
    if pattern.len() >= 2 && pattern.starts_with('/') && pattern.ends_with('/') {
        let re = &pattern[1..pattern.len() - 1];
        return regex::Regex::new(re).is_ok_and(|r| r.is_match(title));
    }
    pattern == title
}
