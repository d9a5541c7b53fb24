//! Recognizing the lines that start (or shape) a report.

pub(crate) use super::header::{Fault, Header, OfClass, WarnMsg, PREFILTER};
use regex::Regex;
use std::sync::LazyLock;

static WARNING_AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^WARNING: CPU: \d+ PID: \d+ at (?:(\S+):\d+ )?(\S+)").expect("static regex")
});
/// lib/bug.c report_bug(): `kernel BUG at %s:%u!`, or without CONFIG_DEBUG_BUGVERBOSE
/// `kernel BUG at %pB [verbose debug info unavailable]` (`Kernel BUG at ...` in older
/// kernels; syzkaller's `kernel BUG` and `Kernel BUG` entries).
static KERNEL_BUG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[kK]ernel BUG at ([^:\s]+)(?::\d+!| \[verbose debug info unavailable\])")
        .expect("static regex")
});
static KASAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^BUG: KASAN: ([\w-]+(?: or [\w-]+)?) in (\S+)").expect("static regex")
});
static OOPS_X86: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:Oops: )?(.+?): [0-9a-f]{4} \[#\d+\]").expect("static regex"));
/// arch/arm64/kernel/traps.c and arch/arm/kernel/traps.c __die(): `Internal error: %s: %016lx
/// [#%d] ...` (`%08x` on arm); arm_notify_die() passes an empty `%s` (`Internal error: : 1b`).
static ARM64_INTERNAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Internal error: (.*?): [0-9a-f]+ \[#\d+\]").expect("static regex")
});
/// `Unable to handle kernel %s at virtual address %016lx`: arch/arm64/mm/fault.c
/// die_kernel_fault() (`paging request`, `NULL pointer dereference`, `access to user memory
/// outside uaccess routines`, `write to read-only memory`, ...), arch/arm/mm/fault.c
/// __do_kernel_fault() (`... %08lx when %s`), arch/riscv/mm/fault.c; older powerpc wrote
/// `... paging request for data at address 0x%08lx`. syzkaller's entry is the phrase alone.
static ARM64_FAULT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Unable to handle kernel (.+?)(?: at virtual address.*)?$").expect("static regex")
});
/// kernel/hung_task.c `check_hung_task()` (`hung_task_info()` since 6.16): `INFO: task
/// %s:%d blocked for more than %ld seconds.`, since 6.x with ` in I/O wait` after
/// `blocked` for a task in io_schedule(); the comm may be empty (`prctl(PR_SET_NAME, "")`)
/// or hold spaces and colons.
static HUNG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^INFO: task .*:\d+ (?:blocked(?: in I/O wait)?|can't die) for more than \d+ seconds",
    )
    .expect("static regex")
});
/// The WARNING line of kernel/panic.c `__warn()` since 6.19: `WARNING: fs/x.c:12 at
/// func+0x1/0x2, CPU#0: comm/123`, with the failed condition first when the architecture
/// records it (`WARNING: [ptr == 0 && 1] kernel/sched/core.c:8511 at sched_init+0x20/0x410
/// CPU#0: swapper/0`), or without file and line (`WARNING: at func+0x1/0x2, CPU#0: comm/1`).
static WARNING_SRC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^WARNING: (?:\[.*\] )?\S+:\d+ at ").expect("static regex"));
static WARNING_NO_SRC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^WARNING: at (\S+?),? CPU#\d+").expect("static regex"));
/// `BUG: ...`, also behind a `pr_fmt()` prefix: `watchdog: BUG: soft lockup - ...`
/// (kernel/watchdog.c), `NMI watchdog: BUG: soft lockup - ...` (before 4.17).
static GENERIC_BUG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:[^:]{1,40}: )?BUG: (.+)$").expect("static regex"));
/// kernel/rcu/tree_stall.h: `INFO: %s detected stalls on CPUs/tasks:`, `INFO: %s
/// self-detected stall on CPU`, `INFO: %s detected stall, but suppressed full report ...`;
/// kernel/rcu/tree_exp.h: `INFO: %s detected expedited stalls on CPUs/tasks: {`; `rcu: `
/// is their pr_fmt since 4.20.
static RCU_STALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stalls?")
        .expect("static regex")
});
static LIST_CORRUPTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:list_(?:add|del) corruption|list_add double add|hlist_\w+ corruption)")
        .expect("static regex")
});
static UBSAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^UBSAN: (.+?) in \S+:\d+:\d+").expect("static regex"));
static OF_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:on|for|in|node|changeset,)\s+(/\S*)\s*$").expect("static regex")
});

/// Lockdep headers (after `WARNING: `) and whether they are a deadlock class.
const LOCKDEP: &[&str] = &[
    "possible circular locking dependency detected",
    "possible recursive locking detected",
    "inconsistent lock state",
    "possible irq lock inversion dependency detected",
    "bad unlock balance detected!",
    "suspicious RCU usage",
    "held lock freed!",
    "lock held when returning to user space!",
    "Nested lock was not taken",
    "bad contention detected!",
    "chain_key collision",
    "Invalid wait context",
];

fn classify_of(rest: &str) -> Header {
    let class =
        if rest.contains("detected bad of_node_put()") || rest.starts_with("Bad of_node_put()") {
            OfClass::BadPut
        } else if rest.contains("expected refcount") {
            OfClass::RefcountLeak
        } else if rest.contains("memory leak before free overlay changeset") {
            OfClass::LeakBeforeFree
        } else if rest.contains("unexpected properties") {
            OfClass::UnexpectedProperties
        } else if rest.contains("unexpected children") {
            OfClass::UnexpectedChildren
        } else {
            OfClass::Other
        };
    let path = OF_PATH
        .captures(rest)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    Header::OfError {
        class,
        path,
        raw: rest.to_string(),
    }
}

/// Strips a frame string `func+0x1/0x2` to `func`.
fn func_of(sym: &str) -> Option<String> {
    crate::dmesg::line::parse_symbol(sym).map(|(f, ..)| crate::dmesg::frames::normalize_func(f))
}

/// Lockdep headers in their pre-4.14 spelling (`[ INFO: possible circular locking dependency
/// detected ]`, `[ BUG: bad unlock balance detected! ]`) and as `INFO:` lines.
fn lockdep_header(m: &str) -> Option<&'static str> {
    let inner = m
        .strip_prefix("[ ")
        .map(|r| r.trim_end().trim_end_matches(']').trim_end())
        .unwrap_or(m);
    let rest = inner.strip_prefix("INFO: ").or_else(|| {
        m.starts_with("[ ")
            .then(|| inner.strip_prefix("BUG: "))
            .flatten()
    })?;
    let rest = rest.trim_end_matches('.');
    LOCKDEP
        .iter()
        .find(|l| rest.starts_with(l.trim_end_matches('!')))
        .copied()
        .or_else(|| {
            rest.contains("lock order detected")
                .then_some("lock order detected")
        })
        // kernel/locking/lockdep.c `print_held_locks_bug()` before 4.14:
        // `[ BUG: syz-executor0/4565 still has locks held! ]`.
        .or_else(|| {
            rest.ends_with("still has locks held!")
                .then_some("still has locks held!")
        })
}

/// `WARNING: ` lines that the kernel prints about its configuration or a deprecated
/// interface, not about a bug (google/syzkaller `pkg/report/linux.go` lists them too):
/// kernel/workqueue.c `workqueue_init_early()`, fs/namespace.c (the `mand` mount option),
/// arch/x86/kernel/cpu/bugs.c (eIBRS + unprivileged eBPF, SRSO, mitigation hints),
/// drivers/video/fbdev/core/fbcon.c (screen size), and ld.so's (user space) `DT_FLAGS_1`.
const NOT_BUGS: &[&str] = &[
    "workqueue cpumask: online intersect > possible intersect",
    "The mand mount option",
    "the mand mount option",
    "Unsupported flag value(s) of",
    "Unprivileged eBPF is enabled with eIBRS",
    "kernel not compiled with CPU_SRSO",
    "fbcon: Driver '",
    "/etc/ssh/moduli does not exist",
    // arch/x86/kernel/cpu/bugs.c SRSO_NOTICE.
    "See https://",
];

/// `WARNING: <name>: ...`: a component's own notice behind its name (scripts/mod/modpost.c
/// `WARNING: modpost: ...`, drivers/video/fbdev/core/fbcon.c `WARNING: fbcon: ...`, the AMD
/// display core's `WARNING: DML_DLG: ...`, drivers/mtd/nand `WARNING: %s: the ECC used ...`).
/// The kernel's reports never start so: kernel/panic.c __warn() writes `WARNING: CPU: `
/// (read above) or a `file:line`, lockdep and the unwinders write sentences.
static PREFIXED_NOTICE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][\w.+/-]*: ").expect("static regex"));

/// `INFO: ` lines that are no report (google/syzkaller `pkg/report/linux.go`, the `INFO:`
/// entry's suppressions): kernel/locking/lockdep.c `INFO: lockdep is turned off.`,
/// kernel/rcu/tree_stall.h `INFO: Stall ended before state dump start`,
/// arch/x86/kernel/nmi.c `INFO: NMI handler (%ps) took too long to run`, ext4's `INFO:
/// recovery required on readonly filesystem`, and syzkaller's own host-probe lines.
static INFO_NOT_BUGS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^INFO: (?:lockdep is turned off|Stall ended before state dump start|NMI handler|recovery required on readonly filesystem|sys_.* is not present in /proc/kallsyms|no syscalls can create resource)|(?:handler|interrupt).*took too long",
    )
    .expect("static regex")
});

/// A line that starts `WARNING: `: kernel/panic.c `__warn()`'s header (three spellings
/// over the years), a lockdep report, `print_held_locks_bug()`, or any other message that
/// starts that way (the unwinders' `WARNING: kernel stack regs at %p in %s:%d has bad 'bp'
/// value %p`, arch/x86/kernel/unwind_frame.c; `WARNING: stack recursion on stack type %d`,
/// arch/x86/kernel/dumpstack_64.c), which syzbot reports under its own text.
fn warning(m: &str, rest: &str) -> Option<Header> {
    if WARNING_SRC.is_match(m) {
        return Some(Header::Warning {
            file: None,
            func: None,
        });
    }
    if let Some(c) = WARNING_AT.captures(m) {
        return Some(Header::Warning {
            file: c.get(1).map(|f| f.as_str().to_string()),
            func: c.get(2).and_then(|f| func_of(f.as_str())),
        });
    }
    if let Some(c) = WARNING_NO_SRC.captures(m) {
        return Some(Header::Warning {
            file: None,
            func: c.get(1).and_then(|f| func_of(f.as_str())),
        });
    }
    if let Some(l) = LOCKDEP.iter().find(|l| rest.starts_with(*l)) {
        return Some(Header::Lockdep {
            what: (*l).to_string(),
        });
    }
    if rest.contains("lock order detected") {
        return Some(Header::Lockdep {
            what: "lock order detected".into(),
        });
    }
    if rest.ends_with("still has locks held!") {
        return Some(Header::Lockdep {
            what: "still has locks held!".into(),
        });
    }
    if rest.trim().is_empty() || NOT_BUGS.iter().any(|p| rest.starts_with(p)) {
        return None;
    }
    if PREFIXED_NOTICE.is_match(rest) && !rest.starts_with("CPU: ") {
        return None;
    }
    Some(Header::WarnLine)
}

/// arch/x86/kernel/traps.c exc_general_protection() names the fault `general protection
/// fault`, `general protection fault, probably for non-canonical address 0x%lx`, `...,
/// maybe for address 0x%lx` or, for a non-zero error code (a bad segment selector),
/// `segment-related general protection fault`; die_addr() -> __die_header()
/// (arch/x86/kernel/dumpstack.c) prints it as `%s: %04lx [#%d]...`, behind `Oops: ` since
/// 6.9. syzkaller's entry finds `general protection fault` anywhere in the line; a user-space
/// fault's show_signal() line (`traps: comm[pid] general protection fault ip:...`) does not
/// start this way.
fn is_gpf(m: &str) -> bool {
    let m = m.strip_prefix("Oops: ").unwrap_or(m);
    let m = m.strip_prefix("segment-related ").unwrap_or(m);
    m.strip_prefix("general protection fault")
        .is_some_and(|r| r.starts_with(':') || r.starts_with(','))
}

/// Classifies a message (printk prefix already stripped). Cheap rejections first.
pub(crate) fn classify(msg: &str) -> Option<Header> {
    if !PREFILTER.is_match(msg) {
        return None;
    }
    let m = msg.trim_end();
    if m.starts_with("------------[ cut here ]------------") {
        return Some(Header::CutHere);
    }
    if let Some(rest) = m.strip_prefix("### dt-test ### ") {
        if let Some(t) = rest.strip_prefix("EXPECT \\ : ") {
            return Some(Header::ExpectBegin(t.to_string()));
        }
        if let Some(t) = rest.strip_prefix("EXPECT / : ") {
            return Some(Header::ExpectEnd(t.to_string()));
        }
        return None;
    }
    if m.starts_with("refcount_t: ") {
        return Some(Header::WarnMessage(WarnMsg::Refcount));
    }
    if m.starts_with("ODEBUG: ") {
        return Some(Header::WarnMessage(WarnMsg::Odebug));
    }
    if m.starts_with("INFO: trying to register non-static key") {
        return Some(Header::Lockdep {
            what: "trying to register non-static key".into(),
        });
    }
    if LIST_CORRUPTION.is_match(m) {
        return Some(Header::WarnMessage(WarnMsg::ListCorruption));
    }
    if m.starts_with("kobject: ") && m.contains("is not initialized") {
        return Some(Header::WarnMessage(WarnMsg::Kobject));
    }
    if m.starts_with("kobject (") && m.contains("tried to init an initialized object") {
        return Some(Header::KobjectError {
            what: "tried to init an initialized object".into(),
        });
    }
    if m.starts_with("sysfs: cannot create duplicate filename") {
        return Some(Header::SysfsDup);
    }
    if let Some(rest) = m.strip_prefix("OF: ERROR: ") {
        if rest.starts_with("next of_node_put()") {
            return None;
        }
        return Some(classify_of(rest));
    }
    if let Some(what) = lockdep_header(m) {
        return Some(Header::Lockdep {
            what: what.to_string(),
        });
    }
    if m.starts_with("BUG: memory leak") {
        return Some(Header::KmemleakObject);
    }
    if m.starts_with("BUG: KMSAN:") || m.starts_with("BUG: KCSAN:") || m.starts_with("BUG: KFENCE:")
    {
        return Some(Header::Sanitizer);
    }
    if m.starts_with("BUG kmalloc-") {
        return Some(Header::Bug {
            desc: m[4..].to_string(),
        });
    }
    if m.starts_with("VFS: Busy inodes after unmount")
        || m.starts_with("VFS: Close: file count is 0")
    {
        return Some(Header::OneLine { reboot: false });
    }
    if m.starts_with("rust_kernel: panicked") {
        return Some(Header::RustPanic);
    }
    if m.starts_with("Booting the kernel") {
        return Some(Header::OneLine { reboot: true });
    }
    for desc in ["PANIC: double fault", "Unhandled fault:", "Alignment trap:"] {
        if m.starts_with(desc) {
            return Some(Header::OopsLine {
                desc: desc.trim_end_matches(':').to_string(),
            });
        }
    }
    if let Some(rest) = m.strip_prefix("WARNING: ") {
        return warning(m, rest);
    }
    if m == "WARNING:" {
        // A WARNING line cut right after its first word (syzbot: `WARNING: corrupted`).
        return Some(Header::WarnLine);
    }
    if m == "BUG:" {
        // The same for `BUG:` (syzbot: `BUG: corrupted`).
        return Some(Header::Bug {
            desc: String::new(),
        });
    }
    if let Some(c) = KERNEL_BUG.captures(m) {
        return Some(Header::KernelBug {
            file: c[1].to_string(),
        });
    }
    if m.starts_with("BUG: ") || m.contains(": BUG: ") {
        if let Some(c) = KASAN.captures(m) {
            return Some(Header::Kasan {
                bug: c[1].to_string(),
                func: func_of(&c[2]),
            });
        }
        if m.starts_with("BUG: kernel NULL pointer dereference")
            || m.starts_with("BUG: unable to handle kernel NULL pointer dereference")
        {
            return Some(Header::PageFault(Fault::Null));
        }
        if m.starts_with("BUG: unable to handle page fault")
            || m.starts_with("BUG: unable to handle kernel paging request")
        {
            return Some(Header::PageFault(Fault::Paging));
        }
        if m.starts_with("BUG: sleeping function called from invalid context") {
            return Some(Header::SleepInAtomic);
        }
        if let Some(c) = GENERIC_BUG.captures(m) {
            return Some(Header::Bug {
                desc: c[1].to_string(),
            });
        }
    }
    if let Some(c) = ARM64_FAULT.captures(m) {
        let what = &c[1];
        return Some(Header::PageFault(
            if what.starts_with("NULL pointer dereference") {
                Fault::Null
            } else if what.starts_with("paging request") {
                Fault::Paging
            } else {
                Fault::Other(what.to_string())
            },
        ));
    }
    if is_gpf(m) {
        return Some(Header::Gpf);
    }
    if let Some(c) = ARM64_INTERNAL.captures(m) {
        return Some(Header::OopsLine {
            desc: format!("Internal error: {}", &c[1]),
        });
    }
    if [
        "Oops: ",
        "invalid opcode: ",
        "divide error: ",
        "divide_error: ",
        "stack segment: ",
    ]
    .iter()
    .any(|p| m.starts_with(p))
    {
        if let Some(c) = OOPS_X86.captures(m) {
            return Some(Header::OopsLine {
                desc: c[1].to_string(),
            });
        }
    }
    if let Some(rest) = m.strip_prefix("Kernel panic - not syncing: ") {
        return Some(Header::Panic {
            msg: rest.to_string(),
        });
    }
    if HUNG.is_match(m) {
        return Some(Header::HungTask);
    }
    if m.starts_with("unreferenced object 0x") {
        return Some(Header::KmemleakObject);
    }
    if m.starts_with("kmemleak: ") && m.contains("new suspected memory leak") {
        return Some(Header::KmemleakSummary);
    }
    if RCU_STALL.is_match(m) {
        return Some(Header::RcuStall);
    }
    // Any other `INFO:` line: syzkaller's `INFO:` entry titles it by its text when none of
    // its formats matches (`INFO: corrupted` when nothing follows the word).
    if m.starts_with("INFO:") && !INFO_NOT_BUGS.is_match(m) {
        return Some(Header::InfoLine);
    }
    if m.starts_with("unregister_netdevice: waiting for ") {
        return Some(Header::NetdevLeak);
    }
    if let Some(c) = UBSAN.captures(m) {
        return Some(Header::Ubsan {
            reason: c[1].to_string(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_headers() {
        assert_eq!(
            classify("------------[ cut here ]------------"),
            Some(Header::CutHere)
        );
        assert_eq!(
            classify(
                "WARNING: CPU: 1 PID: 77 at lib/refcount.c:28 refcount_warn_saturate+0xbe/0x110"
            ),
            Some(Header::Warning {
                file: Some("lib/refcount.c".into()),
                func: Some("refcount_warn_saturate".into())
            })
        );
        assert_eq!(
            classify("WARNING: CPU: 0 PID: 1 at foo_probe.isra.0+0x1/0x2 [foo]"),
            Some(Header::Warning {
                file: None,
                func: Some("foo_probe".into())
            })
        );
        assert!(matches!(
            classify("WARNING: possible circular locking dependency detected"),
            Some(Header::Lockdep { .. })
        ));
        assert_eq!(
            classify("RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable"),
            None
        );
        assert!(matches!(
            classify("BUG: KASAN: slab-use-after-free in foo_remove+0x2a/0x90"),
            Some(Header::Kasan { ref bug, func: Some(ref f) }) if bug == "slab-use-after-free" && f == "foo_remove"
        ));
        assert_eq!(
            classify("Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN NOPTI"),
            Some(Header::Gpf)
        );
        assert_eq!(
            classify("Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"),
            Some(Header::OopsLine {
                desc: "invalid opcode".into()
            })
        );
        assert_eq!(
            classify("invalid opcode: 0000 [#1] PREEMPT SMP NOPTI"),
            Some(Header::OopsLine {
                desc: "invalid opcode".into()
            })
        );
        assert_eq!(
            classify("Internal error: Oops: 0000000096000045 [#1] PREEMPT SMP"),
            Some(Header::OopsLine {
                desc: "Internal error: Oops".into()
            })
        );
        assert_eq!(
            classify("Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008"),
            Some(Header::PageFault(Fault::Null))
        );
        assert_eq!(
            classify("watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [sh:123]"),
            Some(Header::Bug {
                desc: "soft lockup - CPU#0 stuck for 26s! [sh:123]".into()
            })
        );
        assert_eq!(
            classify("### dt-test ### EXPECT \\ : OF: ERROR: foo"),
            Some(Header::ExpectBegin("OF: ERROR: foo".into()))
        );
        assert_eq!(classify("OF: ERROR: next of_node_put() on this node will result in a kobject warning 'refcount_t: underflow; use-after-free.'"), None);
        assert!(matches!(
            classify("OF: ERROR: memory leak, expected refcount 1 instead of 2, of_node_get()/of_node_put() unbalanced - destroy cset entry: attach overlay node /testcase-data/overlay-node/test-bus@0"),
            Some(Header::OfError { class: OfClass::RefcountLeak, ref path, .. }) if path == "/testcase-data/overlay-node/test-bus@0"
        ));
        assert!(matches!(
            classify("OF: ERROR: Bad of_node_put() on /soc/i2c@40000"),
            Some(Header::OfError { class: OfClass::BadPut, ref path, .. }) if path == "/soc/i2c@40000"
        ));
        assert_eq!(
            classify("Booting Linux on physical CPU 0x0000000000 [0x000f0510]"),
            None
        );
    }

    #[test]
    fn classifies_the_forms_of_syzkallers_other_entries() {
        assert_eq!(
            classify("Unable to handle kernel paging request for data at address 0x00000008"),
            Some(Header::PageFault(Fault::Paging))
        );
        assert_eq!(
            classify("Unable to handle kernel write to read-only memory at virtual address ffff800081234000"),
            Some(Header::PageFault(Fault::Other("write to read-only memory".into())))
        );
        assert_eq!(
            classify("Internal error: : 1b [#1] SMP ARM"),
            Some(Header::OopsLine {
                desc: "Internal error: ".into()
            })
        );
        assert!(matches!(classify("BUG:"), Some(Header::Bug { .. })));
        assert_eq!(classify("INFO:"), Some(Header::InfoLine));
        assert_eq!(
            classify("kernel BUG at foo+0x12/0x30 [verbose debug info unavailable]"),
            Some(Header::KernelBug {
                file: "foo+0x12/0x30".into()
            })
        );
        assert_eq!(
            classify("rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-.... } 2653 jiffies s: 1229 root: 0x2/."),
            Some(Header::RcuStall)
        );
    }
}
