//! The title table: per report kind, the header it starts with, the lines that must follow,
//! the title's shape and where its function comes from ([`FrameSpec`]).
//!
//! The titles are syzbot's (google/syzkaller `pkg/report`), so that a rig report reads like
//! the bug a kernel developer already knows; rig's own kinds (OF errors, sysfs/kobject
//! errors) live in [`super::title`]. Entries are tried in order; the first whose `title`
//! matches the header line and whose `report` lines all follow (each on a later line) wins.
//! `fmt` placeholders: `{1}`, `{2}`... are the groups of `report` (of `title` when there is
//! no `report`), `{frame}` the function found by `stack`. Each entry's justification is a
//! fixture under `rig/tests/fixtures/logs/real/` (see its MANIFEST.tsv).

use super::stack::{Compiled, FrameSpec, Part, Pick};
use super::ReportKind;
use regex::Regex;
use std::sync::LazyLock;

pub(crate) struct Format {
    pub kind: ReportKind,
    pub title: &'static str,
    pub report: &'static [&'static str],
    pub fmt: &'static str,
    pub stack: Option<&'static FrameSpec>,
    /// The kind is a report without a stack trace of its own (no stack check).
    pub no_stack: bool,
    /// syzbot files these as corrupted whatever they hold (a panic whose cause scrolled by).
    pub corrupted: bool,
}

const fn spec(parts: &'static [Part], skip: &'static [&'static str], pick: Pick) -> FrameSpec {
    FrameSpec {
        parts,
        alt: &[],
        skip,
        pick,
    }
}

/// WARNINGs: the faulting `RIP:`/`pc :` function, else the first frame of the Call Trace.
const fn warn(skip: &'static [&'static str]) -> FrameSpec {
    FrameSpec {
        parts: &[Part::Rip, Part::Stack],
        alt: &[Part::CallTrace, Part::Stack],
        skip,
        pick: Pick::First,
    }
}

use Part::{CallTrace, Line, Rip, Stack};

static WARN: FrameSpec = warn(&[]);
static WARN_ODEBUG: FrameSpec = warn(&[
    "debug_",
    "rcu",
    "hrtimer_",
    "timer_",
    "work_",
    "percpu_",
    "vunmap",
    "vfree",
    "__free_",
    "debug_check",
    "kobject_",
]);
static WARN_USERCOPY: FrameSpec = warn(&["usercopy", "__check"]);
static WARN_KOBJECT: FrameSpec = warn(&["kobject_"]);
static WARN_PROC: FrameSpec = warn(&["proc_"]);
static WARN_REFCOUNT: FrameSpec = warn(&["refcount", "kobject_"]);
static WARN_LOCKING: FrameSpec = warn(&["lock_sock", "release_sock"]);
static WARN_KMALLOC: FrameSpec = warn(&["kmalloc", "krealloc", "slab", "kmem"]);
const USB: &[&str] = &[
    "usb_submit_urb",
    "usb_start_wait_urb",
    "usb_bulk_msg",
    "usb_interrupt_msg",
    "usb_control_msg",
];
static WARN_USB: FrameSpec = warn(USB);
static KASAN: FrameSpec = spec(
    &[
        Line(r"BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}"),
        CallTrace,
        Stack,
    ],
    &["kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_"],
    Pick::First,
);
static KASAN_FREE: FrameSpec = spec(
    &[
        Line(r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}"),
        CallTrace,
        Stack,
    ],
    &["slab_", "kfree", "vunmap", "vfree"],
    Pick::First,
);
static KMSAN: FrameSpec = spec(
    &[
        Stack,
        Line("(?:Local variable .* created at:|Uninit was created at:)"),
        Stack,
    ],
    &[
        "alloc_skb",
        "netlink_ack",
        "netlink_rcv_skb",
        "_encrypt$",
        "^(?:crypto|cipher|drbg|rng)_",
    ],
    Pick::First,
);
static KMSAN_USB: FrameSpec = spec(
    &[
        Stack,
        Line("(?:Local variable .* created at:|Uninit was created at:)"),
        Stack,
    ],
    &[
        "alloc_skb",
        "usb_submit_urb",
        "usb_start_wait_urb",
        "usb_bulk_msg",
        "usb_interrupt_msg",
        "usb_control_msg",
    ],
    Pick::First,
);
static KFENCE: FrameSpec = spec(
    &[Line(r"BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}"), Stack],
    &[],
    Pick::First,
);
static FAULT: FrameSpec = spec(&[Rip, CallTrace, Stack], &[], Pick::First);
static RIP_ONLY: FrameSpec = spec(&[Rip], &[], Pick::First);
static TRACE: FrameSpec = spec(&[CallTrace, Stack], &[], Pick::First);
static SPINLOCK: FrameSpec = spec(
    &[CallTrace, Stack],
    &["spin_", "_lock", "_unlock"],
    Pick::First,
);
static LOCKUP: FrameSpec = spec(&[Rip, CallTrace, Stack], &[], Pick::Stall);
static SCHED_ATOMIC: FrameSpec = spec(&[CallTrace, Stack], &["schedule"], Pick::First);
static BAD_UNLOCK: FrameSpec = spec(
    &[Line("{{PC}} +{{FUNC}}"), CallTrace, Stack],
    &[],
    Pick::First,
);
static BAD_PAGE: FrameSpec = spec(
    &[Line("page last allocated"), Stack],
    &[
        "(free|put|get|update|release)_page",
        "free_unref",
        "^_*folio",
        "truncate_inode_pages",
        "page_frag_free",
        "alloc",
        "vmap",
        "page_owner",
    ],
    Pick::First,
);
static PREEMPTIBLE: FrameSpec = spec(
    &[CallTrace, Stack],
    &[
        "dump_stack",
        "preemption",
        "preempt",
        "debug_",
        "processor_id",
        "this_cpu",
    ],
    Pick::First,
);
static MEMLEAK: FrameSpec = spec(
    &[Line(r"backtrace(?: \(crc [0-9a-fA-F]*\))?:"), Stack],
    &[
        "kmemleak",
        "mmap",
        "kmem",
        "slab",
        "alloc",
        "create_object",
        "idr_get",
        "list_lru_init",
        "kasprintf",
        "kvasprintf",
        "pcpu_create",
        "strdup",
        "strndup",
        "memdup",
    ],
    Pick::First,
);
static LOCKING_TRACE: FrameSpec = spec(
    &[CallTrace, Stack],
    &["lock_sock", "release_sock"],
    Pick::First,
);
static CIRCULAR: FrameSpec = spec(
    &[
        Line("at: (?:{{PC}} +)?{{FUNC}}"),
        Line("at: (?:{{PC}} +)?{{FUNC}}"),
        Stack,
    ],
    &[
        "process_one_work",
        "flush_workqueue",
        "drain_workqueue",
        "destroy_workqueue",
    ],
    Pick::First,
);
static SAFE_UNSAFE: FrameSpec = spec(&[Line("which became (?:.*) at:"), Stack], &[], Pick::First);
static RCU_USAGE: FrameSpec = spec(&[CallTrace, Stack], &["rcu", "kmem", "slab"], Pick::First);
static RCU_STALL: FrameSpec = FrameSpec {
    parts: &[Line("apic_timer_interrupt"), Rip, Stack],
    alt: &[
        Line("(?:apic_timer_interrupt|Exception stack|el1h_64_irq)"),
        Stack,
    ],
    skip: &["apic_timer_interrupt", "rcu"],
    pick: Pick::Stall,
};
static NON_STATIC_KEY: FrameSpec =
    spec(&[CallTrace, Stack], &["stack", "lock", "IRQ"], Pick::First);
static HUNG: FrameSpec = spec(&[CallTrace, Stack], &[], Pick::Hung);
static CANT_DIE: FrameSpec = spec(&[CallTrace, Stack], &["schedule"], Pick::First);
static STACK_CHK: FrameSpec = spec(&[CallTrace, Stack], &["stack_chk"], Pick::First);
static STACK_END: FrameSpec = spec(
    &[CallTrace, Stack],
    &["schedule", "retint_kernel"],
    Pick::Stall,
);
static STACK_OVERFLOW: FrameSpec = spec(&[CallTrace, Stack], &["bad_stack"], Pick::Stall);
static BUG_USERCOPY: FrameSpec = spec(&[CallTrace, Stack], &["usercopy", "__check"], Pick::First);
static KERNEL_BUG: FrameSpec = spec(&[Rip, CallTrace, Stack], &["^skb_"], Pick::First);
static UBSAN: FrameSpec = spec(&[CallTrace, Stack], &["ubsan", "overflow"], Pick::First);
/// rust/kernel/lib.rs `panic()`: the trace starts in the panic runtime (`rust_begin_unwind`,
/// `core::panicking::*`, which the generic `panic` group skips).
static RUST_PANIC: FrameSpec = spec(&[CallTrace, Stack], &["rust_begin_unwind"], Pick::First);

macro_rules! f {
    ($kind:ident, $title:expr, $report:expr, $fmt:expr, $stack:expr) => {
        Format {
            kind: ReportKind::$kind,
            title: $title,
            report: $report,
            fmt: $fmt,
            stack: $stack,
            no_stack: false,
            corrupted: false,
        }
    };
    ($kind:ident, $title:expr, $report:expr, $fmt:expr, $stack:expr, no_stack) => {
        Format {
            no_stack: true,
            ..f!($kind, $title, $report, $fmt, $stack)
        }
    };
    ($kind:ident, $title:expr, $report:expr, $fmt:expr, $stack:expr, corrupted) => {
        Format {
            corrupted: true,
            ..f!($kind, $title, $report, $fmt, $stack)
        }
    };
}

const NONE: &[&str] = &[];
const LOCK_AT: &str = "at: (?:{{PC}} +)?{{FUNC}}";

/// The table, in matching order.
pub(crate) static FORMATS: &[Format] = &[
    // ---- BUG: ----
    f!(Kasan, "BUG: KASAN:", &[r"BUG: KASAN: ([a-z\-]+) in {{FUNC}}", r"(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)"], "KASAN: {1} {3} in {frame}", Some(&KASAN)),
    f!(Kasan, "BUG: KASAN:", &[r"BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}"], "KASAN: invalid-free in {frame}", Some(&KASAN_FREE)),
    f!(Kasan, r"BUG: KASAN: ([a-z\-]+) on address", &[r"BUG: KASAN: ([a-z\-]+) on address", r"(Read|Write) of size ([0-9]+)"], "KASAN: {1} {2}", None),
    f!(Kasan, "BUG: KASAN: (.*)", NONE, "KASAN: {1}", None, corrupted),
    f!(Kmsan, "BUG: KMSAN: kernel-usb-infoleak", &["BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}"], "KMSAN: kernel-usb-infoleak in {frame}", Some(&KMSAN_USB), no_stack),
    f!(Kmsan, "BUG: KMSAN:", &[r"BUG: KMSAN: ([a-z\-]+) in {{FUNC}}"], "KMSAN: {1} in {frame}", Some(&KMSAN), no_stack),
    f!(Kcsan, "BUG: KCSAN: (.*)", NONE, "KCSAN: {1}", None, no_stack),
    f!(Kfence, "BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}", NONE, "KFENCE: {1} {2} in {frame}", Some(&KFENCE)),
    f!(Kfence, "BUG: KFENCE: invalid free in {{FUNC}}", NONE, "KFENCE: invalid free in {frame}", Some(&KFENCE), no_stack),
    f!(Kfence, "BUG: KFENCE: invalid (read|write) in {{FUNC}}", NONE, "KFENCE: invalid {1} in {frame}", Some(&KFENCE)),
    f!(Kfence, "BUG: KFENCE: memory corruption in {{FUNC}}", NONE, "KFENCE: memory corruption in {frame}", Some(&KFENCE), no_stack),
    f!(PageFault, "BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)", NONE, "BUG: unable to handle kernel paging request in {frame}", Some(&FAULT)),
    f!(PageFault, "BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)", NONE, "BUG: unable to handle kernel NULL pointer dereference in {frame}", Some(&FAULT)),
    f!(PageFault, "BUG: (?:unable to handle kernel|Unable to handle kernel)", NONE, "BUG: unable to handle kernel", None, corrupted),
    f!(Bug, "BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)", NONE, "BUG: {1} {2} in {frame}", Some(&SPINLOCK)),
    f!(Bug, "BUG: soft lockup", NONE, "BUG: soft lockup in {frame}", Some(&LOCKUP)),
    f!(Lockdep, "BUG: .*still has locks held!", &["BUG: .*still has locks held!", "{{PC}} +{{FUNC}}"], "BUG: still has locks held in {1}", None),
    f!(Bug, "BUG: scheduling while atomic", NONE, "BUG: scheduling while atomic in {frame}", Some(&SCHED_ATOMIC)),
    f!(Lockdep, "BUG: lock held when returning to user space", &["BUG: lock held when returning to user space", "leaving the kernel with locks still held", LOCK_AT], "BUG: lock held when returning to user space in {1}", None, no_stack),
    f!(Lockdep, "BUG: bad unlock balance detected!", NONE, "BUG: bad unlock balance in {frame}", Some(&BAD_UNLOCK)),
    f!(Lockdep, "BUG: held lock freed!", &["BUG: held lock freed!", "{{PC}} +{{FUNC}}"], "BUG: held lock freed in {1}", None),
    f!(Bug, "BUG: Bad rss-counter state", NONE, "BUG: Bad rss-counter state", None, no_stack),
    f!(Bug, "BUG: non-zero nr_ptes on freeing mm", NONE, "BUG: non-zero nr_ptes on freeing mm", None, no_stack),
    f!(Bug, "BUG: non-zero nr_pmds on freeing mm", NONE, "BUG: non-zero nr_pmds on freeing mm", None, no_stack),
    f!(Bug, "BUG: Dentry .* still in use", &[r"BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]"], "BUG: Dentry still in use in {1}", None),
    f!(Bug, "BUG: Bad page (state|cache)", NONE, "BUG: Bad page {1} in {frame}", Some(&BAD_PAGE)),
    f!(Bug, "BUG: Bad page map", NONE, "BUG: Bad page map", None),
    f!(Bug, "BUG: workqueue lockup", NONE, "BUG: workqueue lockup", None, no_stack),
    f!(SleepInAtomic, "BUG: sleeping function called from invalid context at (.*)", NONE, "BUG: sleeping function called from invalid context in {frame}", Some(&TRACE)),
    f!(Bug, r"BUG: using ([a-z_]+)\(\) in preemptible", NONE, "BUG: using {1}() in preemptible code in {frame}", Some(&PREEMPTIBLE)),
    f!(Bug, "BUG: workqueue leaked lock or atomic", &["BUG: workqueue leaked lock or atomic", r"last function: ([a-zA-Z0-9_]+)$"], "BUG: workqueue leaked lock or atomic in {1}", None, no_stack),
    f!(Kmemleak, "BUG: memory leak", NONE, "memory leak in {frame}", Some(&MEMLEAK)),
    f!(Kmemleak, r"^unreferenced object 0x", NONE, "memory leak in {frame}", Some(&MEMLEAK)),
    f!(Bug, "BUG: .*stack guard page was hit at", NONE, "BUG: stack guard page was hit in {frame}", Some(&LOCKUP)),
    f!(Lockdep, "BUG: Invalid wait context", NONE, "WARNING: locking bug in {frame}", Some(&LOCKING_TRACE)),
    f!(Bug, r"BUG:\s*$", NONE, "BUG: corrupted", None, corrupted),
    // ---- WARNING: ----
    f!(Warning, r"WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)", NONE, "WARNING: ODEBUG bug in {frame}", Some(&WARN_ODEBUG)),
    f!(Warning, r"WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)", NONE, "WARNING: bad usercopy in {frame}", Some(&WARN_USERCOPY)),
    f!(Kobject, r"WARNING: .*lib/kobject\.c.* (?:kobject_|at)", NONE, "WARNING: kobject bug in {frame}", Some(&WARN_KOBJECT)),
    f!(Warning, r"WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)", NONE, "WARNING: proc registration bug in {frame}", Some(&WARN_PROC)),
    f!(Refcount, r"WARNING: .*lib/refcount\.c.* (?:refcount_|at)", NONE, "WARNING: refcount bug in {frame}", Some(&WARN_REFCOUNT)),
    f!(Lockdep, r"WARNING: .*kernel/locking/lockdep\.c.*lock_", NONE, "WARNING: locking bug in {frame}", Some(&WARN_LOCKING)),
    f!(Lockdep, "WARNING: .*still has locks held!", &["WARNING: .*still has locks held!", "at: {{FUNC}}"], "WARNING: still has locks held in {1}", None),
    f!(Lockdep, "WARNING: Nested lock was not taken", NONE, "WARNING: nested lock was not taken in {frame}", Some(&WARN)),
    f!(Lockdep, "WARNING: lock held when returning to user space", &["WARNING: lock held when returning to user space", "leaving the kernel with locks still held", LOCK_AT], "WARNING: lock held when returning to user space in {1}", None, no_stack),
    f!(Warning, r"WARNING: .*mm/.*\.c.* k?.?malloc", NONE, "WARNING: kmalloc bug in {frame}", Some(&WARN_KMALLOC)),
    f!(Warning, r"WARNING: .*mm/vmalloc.c.*__vmalloc_node", NONE, "WARNING: zero-size vmalloc in {frame}", Some(&WARN)),
    f!(Warning, "WARNING: .* usb_submit_urb", NONE, "WARNING in {frame}/usb_submit_urb", Some(&WARN_USB)),
    f!(Warning, r"WARNING: {{SRC}} at 0x\d+, CPU#\d+", NONE, "WARNING in {frame}", Some(&WARN)),
    f!(Warning, "WARNING: .* at {{SRC}} {{FUNC}}", NONE, "WARNING in {frame}", Some(&WARN)),
    f!(Warning, "WARNING: {{SRC}} at {{FUNC}}", NONE, "WARNING in {frame}", Some(&WARN)),
    f!(Warning, r"WARNING: \[.*\] {{SRC}} at {{FUNC}}.*", NONE, "WARNING in {frame}", Some(&WARN)),
    f!(Lockdep, "(?:WARNING|INFO): possible circular locking dependency detected", &["possible circular locking dependency detected", "is trying to acquire lock"], "possible deadlock in {frame}", Some(&CIRCULAR)),
    f!(Lockdep, "(?:WARNING|INFO): possible irq lock inversion dependency detected", &["possible irq lock inversion dependency detected", "just changed the state of lock", LOCK_AT], "possible deadlock in {1}", None),
    f!(Lockdep, "(?:WARNING|INFO): .*-safe -> .*-unsafe lock order detected", NONE, "possible deadlock in {frame}", Some(&SAFE_UNSAFE)),
    f!(Lockdep, "(?:WARNING|INFO): possible recursive locking detected", &["possible recursive locking detected", "is trying to acquire lock", LOCK_AT], "possible deadlock in {1}", None),
    f!(Lockdep, "(?:WARNING|INFO): inconsistent lock state", &["inconsistent lock state", "takes", LOCK_AT], "inconsistent lock state in {frame}", Some(&TRACE)),
    f!(Lockdep, "(WARNING|INFO): suspicious RCU usage", NONE, "{1}: suspicious RCU usage in {frame}", Some(&RCU_USAGE)),
    f!(Warning, "WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value", NONE, "WARNING: kernel stack regs has bad '{1}' value", None, no_stack),
    f!(Warning, "WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value", NONE, "WARNING: kernel stack frame pointer has bad value", None, no_stack),
    f!(Lockdep, "(?:WARNING|BUG): bad unlock balance detected!", NONE, "WARNING: bad unlock balance in {frame}", Some(&BAD_UNLOCK)),
    f!(Lockdep, "WARNING: held lock freed!", &["WARNING: held lock freed!", "at:(?: {{PC}})? +{{FUNC}}"], "WARNING: held lock freed in {1}", None),
    // arch/x86/kernel/unwind_frame.c, when the address does not print as hex (`(ptrval)`
    // before the pointer-hashing key is ready) or the comm holds a space.
    f!(Warning, "WARNING: kernel stack regs .* has bad 'bp' value", NONE, "WARNING: kernel stack regs has bad value", None, no_stack),
    f!(Warning, "WARNING: kernel stack frame pointer .* has bad value", NONE, "WARNING: kernel stack regs has bad value", None, no_stack),
    f!(Warning, r"WARNING:\s*$", NONE, "WARNING: corrupted", None, corrupted),
    // ---- INFO: ----
    f!(RcuStall, "INFO: rcu_(?:preempt|sched|bh) (?:self-)?detected(?: expedited)? stall", NONE, "INFO: rcu detected stall in {frame}", Some(&RCU_STALL)),
    f!(Lockdep, "INFO: trying to register non-static key", NONE, "INFO: trying to register non-static key in {frame}", Some(&NON_STATIC_KEY)),
    // kernel/hung_task.c prints ` in I/O wait` after `blocked` for a task in io_schedule()
    // (since 6.x); syzkaller's entry, as read, predates it: rig titles it the hung task it is.
    f!(HungTask, "INFO: task .* blocked(?: in I/O wait)? for more than [0-9]+ seconds", NONE, "INFO: task hung in {frame}", Some(&HUNG)),
    f!(HungTask, "INFO: task .* can't die for more than .* seconds", NONE, "INFO: task can't die in {frame}", Some(&CANT_DIE)),
    f!(Kasan, "INFO: (Freed|Allocated) in (.*)", NONE, "INFO: {1} in {2}", None, corrupted),
    f!(Bug, r"INFO:\s*$", NONE, "INFO: corrupted", None, corrupted),
    // ---- the rest ----
    f!(PageFault, "Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)", NONE, "BUG: unable to handle kernel {1} in {frame}", Some(&FAULT)),
    f!(GeneralProtection, "general protection fault.*:", NONE, "general protection fault in {frame}", Some(&FAULT)),
    f!(GeneralProtection, "stack segment: ", NONE, "stack segment fault in {frame}", Some(&FAULT)),
    f!(Panic, "Kernel panic - not syncing: stack-protector:", &["Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}"], "kernel panic: stack is corrupted in {1}", None, no_stack),
    f!(Panic, "Kernel panic - not syncing: stack-protector:", &["Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+"], "kernel panic: stack is corrupted in {frame}", Some(&STACK_CHK)),
    f!(Panic, "Kernel panic - not syncing: corrupted stack end", &["Kernel panic - not syncing: corrupted stack end detected inside scheduler"], "kernel panic: corrupted stack end in {frame}", Some(&STACK_END)),
    f!(Panic, "Kernel panic - not syncing: kernel stack overflow", NONE, "kernel stack overflow in {frame}", Some(&STACK_OVERFLOW)),
    f!(Panic, "Kernel panic - not syncing: Attempted to kill init!", NONE, "kernel panic: Attempted to kill init!", None),
    f!(Panic, "Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+", NONE, "kernel panic: Couldn't open N_TTY ldisc", None),
    f!(Panic, "Kernel panic - not syncing: Fatal exception", NONE, "kernel panic: Fatal exception", None, corrupted),
    f!(Panic, "Kernel panic - not syncing: panic_on_warn set", NONE, "kernel panic: panic_on_warn set", None, corrupted),
    f!(Panic, "Kernel panic - not syncing: hung_task: blocked tasks", NONE, "kernel panic: hung_task: blocked tasks", None, corrupted),
    f!(Panic, "Kernel panic - not syncing: (.*)", NONE, "kernel panic: {1}", None),
    f!(Oops, "PANIC: double fault", NONE, "PANIC: double fault in {frame}", Some(&RIP_ONLY)),
    f!(Bug, "kernel BUG at mm/usercopy.c", NONE, "BUG: bad usercopy in {frame}", Some(&BUG_USERCOPY)),
    f!(ListCorruption, "kernel BUG at lib/list_debug.c", NONE, "BUG: corrupted list in {frame}", Some(&TRACE)),
    f!(Bug, "rust_kernel: panicked", &["rust_kernel: panicked at ", "^(.+)$"], "{1} in {frame}", Some(&RUST_PANIC)),
    f!(KernelBug, "kernel BUG at (.*)", NONE, "kernel BUG in {frame}", Some(&KERNEL_BUG)),
    f!(KernelBug, "Kernel BUG (.*)", NONE, "kernel BUG {1}", None),
    f!(Bug, "BUG kmalloc-.*: Object already free", NONE, "BUG: Object already free", None),
    f!(Oops, "divide(?: |_)error: ", NONE, "divide error in {frame}", Some(&RIP_ONLY)),
    f!(Oops, "invalid opcode: ", NONE, "invalid opcode in {frame}", Some(&RIP_ONLY)),
    f!(Ubsan, "UBSAN:", &["UBSAN: Undefined behaviour in"], "UBSAN: undefined-behaviour in {frame}", Some(&UBSAN)),
    f!(Ubsan, "UBSAN: array-index-out-of-bounds in", NONE, "UBSAN: array-index-out-of-bounds in {frame}", Some(&UBSAN)),
    f!(Ubsan, "UBSAN:", &["UBSAN: (.*?) in"], "UBSAN: {1} in {frame}", Some(&UBSAN)),
    f!(Reboot, "^Booting the kernel", NONE, "unexpected kernel reboot", None, no_stack),
    f!(Refcount, "unregister_netdevice: waiting for (?:.*) to become free", NONE, "unregister_netdevice: waiting for DEV to become free", None, no_stack),
    f!(Bug, "VFS: Close: file count is 0", NONE, "VFS: Close: file count is zero (use-after-free)", None, no_stack),
    f!(Bug, "VFS: Busy inodes after unmount", NONE, "VFS: Busy inodes after unmount (use-after-free)", None, no_stack),
    f!(Oops, "Internal error:", NONE, "Internal error in {frame}", Some(&FAULT)),
    f!(Oops, "Unhandled fault:", NONE, "Unhandled fault in {frame}", Some(&FAULT)),
    f!(Oops, "Alignment trap:", NONE, "Alignment trap in {frame}", Some(&FAULT)),
];

/// A format with its regexes and frame search compiled.
pub(crate) struct CompiledFormat {
    pub f: &'static Format,
    pub title: Regex,
    pub report: Vec<Regex>,
    pub stack: Option<Compiled>,
}

pub(crate) static COMPILED: LazyLock<Vec<CompiledFormat>> = LazyLock::new(|| {
    FORMATS
        .iter()
        .map(|f| CompiledFormat {
            f,
            title: Regex::new(&super::stack::expand(f.title)).expect("title regex"),
            report: f
                .report
                .iter()
                .map(|r| Regex::new(&super::stack::expand(r)).expect("report regex"))
                .collect(),
            stack: f.stack.map(Compiled::new),
        })
        .collect()
});

#[cfg(test)]
mod tests {
    #[test]
    fn every_format_compiles() {
        assert!(super::COMPILED.len() > 80);
    }
}
