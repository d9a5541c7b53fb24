//! Kernel-log analyzer: finds every splat in a console log or `dmesg` output and gives each
//! the title syzbot would give it, so that a rig report can be searched for on the kernel
//! lists and the syzbot dashboard.
//!
//! # What it reads
//! Console output of Linux 4.x to 7.0 on x86_64, arm64 (and riscv64 as far as their reports
//! look alike), with or without printk timestamps (`[   12.345678]`) and caller tags
//! (`[T123]`, `[C1]`), which are stripped from the report text. Reports printed by different
//! callers at once are kept apart by caller tag; shell output (lines without a timestamp in a
//! timestamped log) is left out of reports and cannot start one, except kmemleak records
//! (`cat /sys/kernel/debug/kmemleak`); a kernel line spliced into the middle of another line
//! is split off at its timestamp, and a record that cut into a report's line is left out of
//! the report. `dmesg -T` and `journalctl -k` prefixes are stripped too. A log that ends
//! mid-report still yields the report. Reading is a pure function of the bytes.
//!
//! # Titles
//! `formats.rs` holds a table, kept as data, of syzbot's title formats (header regex, the lines
//! the title's groups come from, the format, and where its function is searched), one or more
//! per kind; the first format, in header-line order, whose lines are all there titles the
//! report. Its frame search (a `FrameSpec`, also data) says where to start (the
//! faulting `RIP:`/`pc :`, the `Call Trace:`, a kind-specific line such as kmemleak's
//! `backtrace:` or Bad page state's `page last allocated`), which frames to pass over (the
//! generic groups in `skip.rs`: panic/WARN/BUG/oops machinery, exception entry, dump_stack,
//! printk, sanitizer runtimes, allocator hooks, lock/refcount/list helpers, ...; `? `
//! unreliable frames; plus the kind's own list) and how to pick (the first frame left; for
//! CPU stalls the frame above the first dispatch or syscall anchor; for hung tasks the first
//! frame that is not scheduler/lock/wait code, with `rtnl_lock` and `synchronize_rcu` waits
//! grouped). Syscall wrappers (`__x64_sys_`, `__arm64_sys_`, `__se_sys_`, `__do_sys_`,
//! `ksys_`, ...) are reduced to `sys_X`; mangled Rust symbols are demangled (`demangle.rs`). Numbers, addresses and line numbers in titles
//! become `NUM`, `ADDR` and `LINE` as syzbot writes them. Kinds, and the titles' shapes:
//!
//! | kind | title |
//! |---|---|
//! | `warning` | `WARNING in X`, `WARNING: ODEBUG bug in X`, `WARNING: kmalloc bug in X`, `WARNING: proc registration bug in X`, `WARNING: suspicious RCU usage in X`, `WARNING: bad unlock balance in X`, `WARNING: held lock freed in X`, `WARNING: kernel stack regs has bad 'bp' value`, any other `WARNING: <text>` line by its text, ... |
//! | `refcount` | `WARNING: refcount bug in X`; `unregister_netdevice: waiting for DEV to become free` |
//! | `kobject` | `WARNING: kobject bug in X`, `sysfs: cannot create duplicate filename in X`, `kobject: tried to init an initialized object in X` |
//! | `of_error` | rig's own: `OF: ERROR: <what> in <node path>` (`bad of_node_put()`, `memory leak`, `memory leak before free overlay changeset`, `unexpected properties`, `unexpected children`); unit addresses become `@N`; the guilty frame, if a stack follows, is in `guilty_frame` only |
//! | `lockdep` | `possible deadlock in X` (circular, recursive, irq inversion, safe→unsafe), `inconsistent lock state in X`, `WARNING: locking bug in X`, `INFO: trying to register non-static key in X`, ... |
//! | `hung_task` | `INFO: task hung in X`, `INFO: task can't die in X` |
//! | `sleep_in_atomic` | `BUG: sleeping function called from invalid context in X`, `BUG: scheduling while atomic in X` |
//! | `kasan` | `KASAN: <bug> <Read\|Write> in X`; `null-ptr-deref`, `wild-memory-access`, `invalid-free`, `double-free`, `invalid-access` (arm64 MTE) |
//! | `kmsan`, `kcsan`, `kfence` | `KMSAN: uninit-value in X`, `KMSAN: kernel-infoleak in X`, `KCSAN: data-race in X / Y`, `KFENCE: use-after-free read in X` |
//! | `list_corruption` | `BUG: corrupted list in X` |
//! | `kmemleak` | `memory leak in X` (the first caller outside the allocator); the `kmemleak: N new suspected memory leaks` line alone: `kmemleak: new suspected memory leaks` |
//! | `kernel_bug` | `kernel BUG in X` (X the BUG's function, not the header's file) |
//! | `bug` | any other `INFO: <text>` line by its text, `BUG: soft lockup in X`, `BUG: Bad page state in X`, `BUG: unable to handle ...`, `BUG: stack guard page was hit in X`, `BUG: MAX_LOCKDEP_KEYS too low!`, `VFS: Busy inodes after unmount (use-after-free)`, a Rust panic's `<message> in X` (`attempt to add with overflow in <T>::f`), ... |
//! | `general_protection` | `general protection fault in X`, `stack segment fault in X` |
//! | `page_fault` | `BUG: unable to handle kernel NULL pointer dereference in X`, `BUG: unable to handle kernel paging request in X` (x86 and arm64 alike) |
//! | `oops` | `divide error in X`, `PANIC: double fault in X`, `Internal error in X`, `Unhandled fault in X` (arm), `invalid opcode in X` |
//! | `panic` | `kernel panic: <message>` (`kernel panic: Attempted to kill init!`, `kernel panic: stack is corrupted in X`, the message of a panic that follows no other report) |
//! | `rcu_stall` | `INFO: rcu detected stall in X` (the stalled task's stack, not the NMI backtrace machinery) |
//! | `ubsan` | `UBSAN: <reason> in X` |
//! | `reboot` | `unexpected kernel reboot` (the kernel booted again while it had been running) |
//!
//! A report is `corrupted` (with a `corrupted_reason`) when no frame of its stack trace
//! qualifies, a fault-injection stack is mixed into it, the first line of some kind that
//! opens a stack trace (`Call Trace:`, `Allocated by task`, ...) is not followed by a frame
//! (unreliable `? ` frames do not count as lines), or syzbot files its kind as corrupted;
//! its title then ends `in corrupted` where the frame would be, as syzbot's does (the rules:
//! `corrupt.rs`; docs/analyzer.md). [`explain`] (`rig analyze --explain LOG`) shows, per report,
//! the lines that started and ended it, the format that matched, each frame passed over and
//! why, and the frame chosen.
//!
//! # Which report comes first
//! [`analyze`] returns first the report syzkaller would report: the one whose header line
//! its parser stops at first (google/syzkaller `pkg/report/linux.go` findFirstOops(): the
//! first line holding a header of its `linuxOopses` table that no suppression of the entry
//! matches; `primary.rs`). Every other report follows in log order, rig's own kinds (OF
//! errors, sysfs/kobject errors, the kmemleak summary) among them: they still fail a run.
//! [`Analyzer::feed`] returns reports as they complete.
//!
//! # Measured
//! docs/analyzer.md has the figures: agreement with syzbot's titles over the project's own
//! real reports (`rig/tests/fixtures/logs/real/`, `tests/analyzer_corpus.rs`, which also
//! counts misses by the classes of issue #30) and throughput (`cargo bench --bench
//! analyzer`).
//!
//! # dt-test expectations
//! While a CONFIG_OF_UNITTEST `### dt-test ### EXPECT \ : <text>` is open (until its
//! `EXPECT / : <text>`), a report whose header line matches `<text>` (with `<<int>>`,
//! `<<hex>>`, `<<all>>` placeholders) is expected noise and not reported.
//!
//! # When a report is complete
//! At its terminator (`---[ end trace ...]---`, `---[ end Kernel panic ...]---`, KASAN's
//! closing `====` line); or, after its main stack trace, at the first line of its context that
//! does not belong to it (an RCU stall's dump goes on through its kthread and NMI backtraces,
//! `dump.rs`; after `Sending NMI from CPU` the `[Cn]` contexts' lines are the report's; on a
//! console without caller tags a trace goes on past up to six lines of other CPUs when frames
//! follow them); or when another report starts in its context; or when the kernel
//! clock moved 10 s past it, 400 lines of other contexts went by, [`Analyzer::flush`] or
//! [`Analyzer::finish`]. Reports without a terminator (lockdep, hung task, sleeping in atomic,
//! OF errors, kmemleak) are therefore returned by `feed` only once a later line arrives: a
//! live reader should call `flush` when the console has been quiet for a second or two.

mod analyzer;
mod body;
mod classify;
mod corrupt;
mod demangle;
mod dump;
mod expect;
mod explain;
mod formats;
mod frames;
mod header;
mod line;
mod open;
mod primary;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The kernel booted again while it had been running (the analyzer sees a second boot
    /// banner), or the guest reset or ended without a report (the engine, from QEMU's
    /// SHUTDOWN event): `unexpected kernel reboot`.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Analyzes a whole log. The first report is the one syzkaller would report (the first
/// whose header line its parser stops at, see `primary.rs`); every other report follows in
/// the order they began. With no such report, all are in the order they began.
pub fn analyze(text: &str) -> Vec<Report> {
    let mut a = Analyzer::new();
    let mut out = a.feed_found(text);
    out.extend(a.finish_found());
    primary::order(out)
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
