//! Reports that go on after their first stack trace: the rest of a multi-part dump.
//!
//! An RCU CPU stall warning is not one stack trace but a dump in parts, and the stalled
//! code is often only in a later part: kernel/rcu/tree_stall.h `print_other_cpu_stall()` /
//! `print_cpu_stall()` print the stall summary (`rcu: \t0-...!: (...)`, `\t(detected by 1,
//! t=10502 jiffies, ...)`), the tasks blocking the grace period (`sched_show_task()`:
//! `task:... state:R ...` or, before 5.7, `comm  R  running task  ...`, then a `Call
//! Trace:`), `rcu_check_gp_kthread_starvation()` (`rcu_preempt kthread starved for N
//! jiffies!`, `RCU grace-period kthread stack dump:` with the kthread's stack, `Stack dump
//! where RCU GP kthread last ran:`), and `rcu_dump_cpu_stacks()` / `dump_cpu_task()`, which
//! asks every stalled CPU for a backtrace (lib/nmi_backtrace.c: `Sending NMI from CPU 1 to
//! CPUs 0:`, then each CPU's `NMI backtrace for cpu 0` with `show_regs()` or `dump_stack()`
//! output: `CPU:`, `Hardware name:`, `RIP:`/`pc :`, registers, `Call Trace:`), or prints
//! `Task dump for CPU 0:`. syzbot reads all of it (google/syzkaller `pkg/report/linux.go`:
//! the report runs on, and after `Sending NMI from CPU` it takes every CPU context's
//! lines), and takes the stalled function from the first part that has the timer interrupt
//! in it. Here the report goes on while its lines are of that vocabulary.

use super::classify::Header;
use super::line::is_register_dump;
use super::open::Open;
use regex::Regex;
use std::sync::LazyLock;

/// `sched_show_task()` before 5.7 (kernel/sched/core.c): `"%-15.15s %c"`, optionally
/// `"  running task    "`, then `"%5lu %5d %6d 0x%08lx"` (free stack, pid, ppid, flags).
static OLD_SHOW_TASK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^.{15} [A-Za-z](?:  running task    )?\s*\d+\s+\d+\s+\d+ 0x[0-9a-f]+$")
        .expect("static regex")
});

/// Line starts of the parts of a stall dump (see the module docs for where each comes from).
const STALL_PARTS: &[&str] = &[
    "rcu: ",
    "rcu:\t",
    "Sending NMI from CPU",
    "NMI backtrace for cpu",
    "Task dump for CPU",
    "task:",
    "CPU: ",
    "Hardware name:",
    "Workqueue:",
    "Modules linked in",
    "Call Trace:",
    "Call trace:",
    "Exception stack",
    "irq event stamp:",
    "hardirqs last",
    "softirqs last",
    "Offline CPU",
    "All QSes seen",
];

/// Phrases of the stall dump that older kernels print without the `rcu: ` prefix.
const STALL_PHRASES: &[&str] = &[
    "kthread starved for",
    "kthread gets sufficient CPU time",
    "kthread timer wakeup didn't happen",
    "Possible timer handling issue",
    "RCU grace-period kthread stack dump:",
    "Stack dump where RCU GP kthread last ran:",
    "blocking current GP",
    "detected by ",
];

/// True when `msg`, a line after the report's first stack trace, is a further part of the
/// report's dump.
pub(crate) fn continues_dump(o: &Open, msg: &str) -> bool {
    if !matches!(o.main, Some(Header::RcuStall)) {
        return false;
    }
    if msg.starts_with('\t') {
        return true;
    }
    let m = msg.trim_start();
    STALL_PARTS.iter().any(|p| m.starts_with(p))
        || STALL_PHRASES.iter().any(|p| m.contains(p))
        || is_register_dump(m)
        || OLD_SHOW_TASK.is_match(msg)
}

#[cfg(test)]
mod tests {
    use super::OLD_SHOW_TASK;

    #[test]
    fn old_sched_show_task_line() {
        assert!(OLD_SHOW_TASK.is_match("rcu_preempt     I29056    10      2 0x80004000"));
        assert!(OLD_SHOW_TASK
            .is_match("syz-executor0   R  running task    26888  7781   4575 0x00000004"));
        assert!(!OLD_SHOW_TASK.is_match("loop0: detected capacity change from 0 to 1024"));
    }
}
