//! The lines that start (or shape) a report, as types, and the prefilter that finds them.

use regex::Regex;
use std::sync::LazyLock;

/// The cheap prefilter: a line that contains none of these words can neither start a report
/// nor touch the dt-test EXPECT state, so an idle analyzer skips it without further work.
/// The regex crate compiles a pure literal alternation to a SIMD multi-substring search.
pub(crate) static PREFILTER: LazyLock<Regex> = LazyLock::new(|| {
    let words = [
        "cut here",
        "WARNING:",
        "BUG",
        "refcount_t:",
        "OF: ERROR",
        "kobject",
        // Here: the SIMD search puts literals in buckets by their first bytes, in this
        // order; placed elsewhere (after `Unhandled fault`, first, last) `panicked` shares a
        // busy bucket and costs the scan 5-40 % of its speed (regex 1.x, measured with
        // `cargo bench --bench analyzer`).
        "panicked",
        "duplicate filename",
        "INFO:",
        "KASAN",
        "divide error",
        "divide_error",
        "stack segment",
        "PANIC: double fault",
        "Unhandled fault",
        "Alignment trap",
        "VFS: Busy inodes",
        "VFS: Close",
        "Booting the kernel",
        "list_add",
        "list_del",
        "unreferenced object",
        "suspected memory leak",
        "general protection",
        "Oops",
        "invalid opcode",
        "Unable to handle kernel",
        "Kernel panic",
        "Internal error:",
        "dt-test ###",
        "detected stall",
        "self-detected stall",
        "UBSAN:",
        "ODEBUG:",
        "non-static key",
        "unregister_netdevice: waiting",
    ];
    let alt: Vec<String> = words.iter().map(|w| regex::escape(w)).collect();
    Regex::new(&alt.join("|")).expect("static regex")
});

/// What a WARN message line says about the warning that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WarnMsg {
    Refcount,
    Odebug,
    Kobject,
    ListCorruption,
}

/// Classes of OF (devicetree) node refcount errors from drivers/of/dynamic.c.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfClass {
    BadPut,
    RefcountLeak,
    LeakBeforeFree,
    UnexpectedProperties,
    UnexpectedChildren,
    Other,
}

/// Page-fault flavours, arch-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    Null,
    Paging,
    Other(String),
}

/// A line that starts a report or changes the shape of the one in progress.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Header {
    /// `------------[ cut here ]------------`
    CutHere,
    /// A WARN message printed before the `WARNING:` line.
    WarnMessage(WarnMsg),
    /// `WARNING: CPU: 0 PID: 1 at file:line func+0x../0x..`
    Warning {
        file: Option<String>,
        func: Option<String>,
    },
    /// A `WARNING: <text>` line that is no WARN() header and no lockdep report: the unwinder's
    /// `WARNING: kernel stack regs at ... has bad 'bp' value`, `WARNING: stack recursion on
    /// stack type 1`, ... A report of its own, titled by its text.
    WarnLine,
    /// Any other `INFO: <text>` line (not a hung task, RCU stall or lockdep report, and none
    /// of the notices syzkaller passes over): a report of its own, titled by its text.
    InfoLine,
    /// Lockdep: `WARNING: possible circular locking dependency detected` and friends.
    Lockdep { what: String },
    /// `kernel BUG at lib/list_debug.c:62!`
    KernelBug { file: String },
    /// x86 `Oops: ...` / `invalid opcode: ...` / arm64 `Internal error: ...`.
    OopsLine { desc: String },
    /// x86 general protection fault (6.1 and 6.12 spellings).
    Gpf,
    /// x86 `BUG: kernel NULL pointer dereference` / arm64 `Unable to handle kernel ...`.
    PageFault(Fault),
    /// `BUG: KASAN: slab-use-after-free in foo+0x..`
    Kasan { bug: String, func: Option<String> },
    /// `INFO: task X:123 blocked for more than N seconds.`
    HungTask,
    /// rust/kernel/lib.rs `panic()`: `rust_kernel: panicked at <file>:<line>:<col>:`, the
    /// panic message on the next line, then BUG().
    RustPanic,
    /// `BUG: sleeping function called from invalid context at ...`
    SleepInAtomic,
    /// Any other `BUG: ...`.
    Bug { desc: String },
    /// `Kernel panic - not syncing: ...`
    Panic { msg: String },
    /// `OF: ERROR: ...`
    OfError {
        class: OfClass,
        path: String,
        raw: String,
    },
    /// `sysfs: cannot create duplicate filename '...'` (followed by a stack dump).
    SysfsDup,
    /// `kobject (...): tried to init an initialized object` (pr_err + stack dump).
    KobjectError { what: String },
    /// `unreferenced object 0x... (size N):`
    KmemleakObject,
    /// `kmemleak: N new suspected memory leaks (see ...)`
    KmemleakSummary,
    /// `rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:`
    RcuStall,
    /// `unregister_netdevice: waiting for eth0 to become free. Usage count = 2`
    NetdevLeak,
    /// A report that is one line: `VFS: Busy inodes after unmount ...`, `Booting the kernel`
    /// (a reboot, when the kernel had already been running).
    OneLine { reboot: bool },
    /// `BUG: KMSAN: ...`, `BUG: KCSAN: ...`, `BUG: KFENCE: ...`: frames without a
    /// `Call Trace:` line, closed by a `====` line.
    Sanitizer,
    /// `UBSAN: array-index-out-of-bounds in drivers/x.c:12:5`
    Ubsan { reason: String },
    /// `### dt-test ### EXPECT \ : text`
    ExpectBegin(String),
    /// `### dt-test ### EXPECT / : text`
    ExpectEnd(String),
}

impl Header {
    /// Reports that are one line (plus an optional stack dump) and so can be emitted without
    /// disturbing a multi-line report they interrupt.
    pub(crate) fn is_single_line(&self) -> bool {
        matches!(
            self,
            Header::OfError { .. }
                | Header::WarnLine
                | Header::InfoLine
                | Header::KmemleakSummary
                | Header::NetdevLeak
                | Header::OneLine { .. }
        )
    }
}
