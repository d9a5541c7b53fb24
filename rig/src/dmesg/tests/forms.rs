//! Report forms the held-out check found no report in (issue #30, second pass), each
//! written from the kernel code that prints it, in syzbot's console shape, with the title
//! syzkaller's rules (google/syzkaller `pkg/report/linux.go`) give it.

use super::*;

/// Console lines as syzbot's console shows them: a printk timestamp (`[%5lu.%06lu]`,
/// kernel/printk/printk.c print_time()) 1 µs apart from `t0` and the caller tag `ctx`
/// (`[%6s]`, printk_caller_id()) on each line; a line starting with `|` is user output (the
/// fuzzer's), printed as it is.
pub(super) fn console(t0: f64, ctx: &str, lines: &str) -> String {
    let mut s = String::new();
    for (i, l) in lines.lines().enumerate() {
        if let Some(user) = l.strip_prefix('|') {
            s.push_str(user);
        } else {
            let t = t0 + i as f64 * 0.000_001;
            s.push_str(&format!("[{t:>12.6}][{ctx:>6}] {l}"));
        }
        s.push('\n');
    }
    s
}

/// (title, kind, corrupted) of every report, first one first.
fn found(log: &str) -> Vec<(String, ReportKind, bool)> {
    analyze(log)
        .into_iter()
        .map(|r| (r.title, r.kind, r.corrupted))
        .collect()
}

fn gp(t: &str) -> (String, ReportKind, bool) {
    (t.to_string(), ReportKind::GeneralProtection, false)
}

/// What __die_body() (show_regs(), print_modules()) and oops_end() print after the
/// header, for a fault in foo_bar called from an ioctl.
const GPF_BODY: &str = "CPU: 0 PID: 5123 Comm: syz.0.17 Not tainted 6.1.0-syzkaller #0\n\
     Hardware name: Google Google Compute Engine/Google Compute Engine, BIOS Google 01/01/2024\n\
     RIP: 0010:foo_bar+0x4f/0x90\n\
     Code: 48 89 fa 48 c1 ea 03 80 3c 02 00 75 4c 48 8b 5b 08 48 85 db 74 0a e8 00 00 00 00 <48> 8b 03\n\
     RSP: 0018:ffffc90003f7f8f8 EFLAGS: 00010246\n\
     RAX: dffffc0000000000 RBX: 0000000000000000 RCX: ffffffff81234567\n\
     Call Trace:\n \
     <TASK>\n \
     baz_ioctl+0x12/0x30\n \
     __x64_sys_ioctl+0x7f/0xa0\n \
     do_syscall_64+0xcd/0x250\n \
     entry_SYSCALL_64_after_hwframe+0x77/0x7f\n \
     </TASK>\n\
     Modules linked in:\n\
     ---[ end trace 0000000000000000 ]---\n\
     RIP: 0010:foo_bar+0x4f/0x90\n\
     Kernel panic - not syncing: Fatal exception\n\
     Kernel Offset: disabled\n\
     Rebooting in 86400 seconds..\n";

#[test]
fn general_protection_fault_in_every_x86_form() {
    // arch/x86/kernel/traps.c exc_general_protection() names the fault; die_addr() ->
    // __die_header() (arch/x86/kernel/dumpstack.c) prints `%s: %04lx [#%d]...`, with
    // `Oops: ` first since 6.9, then kasan_non_canonical_hook() (mm/kasan/report.c) its
    // `KASAN: ... in range` line for a non-canonical address, then __die_body().
    let headers = [
        // Before 5.7 (KASAN's die notifier spoke first).
        "kasan: CONFIG_KASAN_INLINE enabled\n\
         kasan: GPF could be caused by NULL-ptr deref or user memory access\n\
         general protection fault: 0000 [#1] PREEMPT SMP KASAN\n",
        "general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] PREEMPT SMP KASAN\n\
         KASAN: null-ptr-deref in range [0x0000000000000010-0x0000000000000017]\n",
        "general protection fault, maybe for address 0xffff888012345678: 0000 [#1] PREEMPT SMP KASAN NOPTI\n",
        // A non-zero error code (a bad segment selector): no address hint.
        "segment-related general protection fault: 0000 [#1] PREEMPT SMP KASAN\n",
        "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] SMP KASAN NOPTI\n\
         KASAN: null-ptr-deref in range [0x0000000000000008-0x000000000000000f]\n",
        "Oops: segment-related general protection fault: 0000 [#1] SMP KASAN PTI\n",
    ];
    for h in headers {
        let log = console(100.0, "T5123", &format!("{h}{GPF_BODY}"));
        assert_eq!(
            found(&log),
            vec![
                gp("general protection fault in foo_bar"),
                (
                    "kernel panic: Fatal exception".into(),
                    ReportKind::Panic,
                    true
                ),
            ],
            "{h}"
        );
    }
    // A user-space fault is show_signal()'s one line, no report (syzkaller suppresses it).
    let user = console(
        7.0,
        "T5123",
        "traps: syz.0.17[5123] general protection fault ip:7f3a1b2c3d4e sp:7ffc12345678 error:0 in libc.so.6[7f3a1b200000+155000]\n",
    );
    assert!(analyze(&user).is_empty());
}

#[test]
fn kcsan_forms_of_report_c() {
    // kernel/kcsan/report.c print_report(): `BUG: KCSAN: %s in %ps / %ps` when both
    // accesses were seen (sorted), `BUG: KCSAN: %s in %pS` for a race of unknown origin;
    // get_bug_type(): `assert: race` for ASSERT_EXCLUSIVE_*(), else `data-race`. syzkaller's
    // `BUG: KCSAN: (.*)` keeps the header's text, offsets replaced.
    let report = |header: &str, ctx: &str| {
        console(
            50.0,
            ctx,
            &format!(
                "==================================================================\n\
                 {header}\n\
                 \n\
                 write to 0xffff888104f0a0c8 of 8 bytes by task 3091 on cpu 1:\n \
                 tcp_add_backlog+0x4a0/0xcc0\n \
                 tcp_v4_rcv+0x1aba/0x1bf0\n\
                 \n\
                 read to 0xffff888104f0a0c8 of 8 bytes by interrupt on cpu 0:\n \
                 tcp_grow_window.isra.0+0x51/0x360\n \
                 tcp_event_data_recv+0x2e1/0x8a0\n\
                 \n\
                 value changed: 0x00000000000015a8 -> 0x0000000000001b78\n\
                 \n\
                 Reported by Kernel Concurrency Sanitizer on:\n\
                 CPU: 0 UID: 0 PID: 3091 Comm: syz.0.17 Not tainted 6.12.0-syzkaller #0\n\
                 Hardware name: Google Google Compute Engine/Google Compute Engine, BIOS Google 09/13/2024\n\
                 =================================================================="
            ),
        )
    };
    let cases = [
        (
            "BUG: KCSAN: data-race in tcp_add_backlog / tcp_grow_window.isra.0",
            // syzkaller's `(\W)(\d+)(\W|$)` -> `NUM` replacement reaches the suffix.
            "KCSAN: data-race in tcp_add_backlog / tcp_grow_window.isra.NUM",
        ),
        (
            "BUG: KCSAN: data-race in ktime_get_coarse_ts64+0x1f/0x60",
            "KCSAN: data-race in ktime_get_coarse_ts64",
        ),
        (
            "BUG: KCSAN: assert: race in dequeue_entities / enqueue_task_fair",
            "KCSAN: assert: race in dequeue_entities / enqueue_task_fair",
        ),
        (
            "BUG: KCSAN: assert: race in dequeue_entities+0x3a1/0x8b0",
            "KCSAN: assert: race in dequeue_entities",
        ),
        (
            "BUG: KCSAN: data-race in __execlists_submission_tasklet [i915] / execlists_dequeue [i915]",
            "KCSAN: data-race in __execlists_submission_tasklet [i915] / execlists_dequeue [i915]",
        ),
    ];
    for (header, title) in cases {
        for ctx in ["T3091", "C0"] {
            let r = one(&report(header, ctx));
            assert_eq!(r.title, title, "{header} [{ctx}]");
            assert_eq!(r.kind, ReportKind::Kcsan);
            assert!(!r.corrupted, "{:?}", r.corrupted_reason);
            assert!(r.text.ends_with("======"), "ends at the closing line");
        }
    }
}

#[test]
fn soft_lockup_forms_of_watchdog_c() {
    // kernel/watchdog.c watchdog_timer_fn() (pr_fmt `watchdog: `), in the timer interrupt
    // (`[Cn]`): `BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]`, report_cpu_status()
    // (6.x), print_modules(), print_irqtrace_events(), show_regs(); with
    // softlockup_all_cpu_backtrace the other CPUs' NMI backtraces, with softlockup_panic
    // `panic("softlockup: hung tasks")`. The title's frame is the one above the first
    // dispatch/syscall anchor of the interrupted stack (linuxStallFrameExtractor).
    let x86 = console(
        200.0,
        "C1",
        "watchdog: BUG: soft lockup - CPU#1 stuck for 143s! [syz.2.1234:5678]\n\
         CPU#1 Utilization every 4000ms during lockup:\n\
         \t#1:   0% system,\t100% softirq,\t  1% hardirq,\t  0% idle\n\
         Modules linked in:\n\
         irq event stamp: 12345\n\
         hardirqs last  enabled at (12344): [<ffffffff8a3b0b8b>] irqentry_exit+0x3b/0x90\n\
         hardirqs last disabled at (12345): [<ffffffff8a3ae96e>] sysvec_apic_timer_interrupt+0xe/0xb0\n\
         CPU: 1 UID: 0 PID: 5678 Comm: syz.2.1234 Not tainted 6.12.0-syzkaller #0\n\
         Tainted: [L]=SOFTLOCKUP\n\
         Hardware name: Google Google Compute Engine/Google Compute Engine, BIOS Google 09/13/2024\n\
         RIP: 0010:__sanitizer_cov_trace_pc+0x0/0x70\n\
         Code: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n\
         RSP: 0018:ffffc9000a1b7c58 EFLAGS: 00000246\n\
         Call Trace:\n \
         <IRQ>\n \
         ? show_regs+0x8c/0xa0\n \
         ? watchdog_timer_fn+0x53c/0x6d0\n \
         </IRQ>\n \
         <TASK>\n \
         ? asm_sysvec_apic_timer_interrupt+0x1a/0x20\n \
         foo_loop+0x11/0x50\n \
         bar_ioctl+0x22/0x90\n \
         __x64_sys_ioctl+0x7f/0xa0\n \
         do_syscall_64+0xcd/0x250\n \
         entry_SYSCALL_64_after_hwframe+0x77/0x7f\n \
         </TASK>\n\
         Sending NMI from CPU 1 to CPUs 0:\n",
    ) + &console(
        200.1,
        "C0",
        "NMI backtrace for cpu 0 skipped: idling at native_safe_halt+0xf/0x20\n",
    ) + &console(
        200.2,
        "C1",
        "Kernel panic - not syncing: softlockup: hung tasks\n",
    );
    let r = analyze(&x86);
    assert_eq!(r[0].title, "BUG: soft lockup in bar_ioctl");
    assert_eq!(r[0].kind, ReportKind::Bug);
    assert!(!r[0].corrupted, "{:?}", r[0].corrupted_reason);
    assert_eq!(r[1].title, "kernel panic: softlockup: hung tasks");
    // arm64: show_regs() prints `pc : `, the registers and a `Call trace:` without markers.
    let arm64 = console(
        90.0,
        "C0",
        "watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [syz-executor:1234]\n\
         Modules linked in:\n\
         CPU: 0 PID: 1234 Comm: syz-executor Not tainted 6.1.0-syzkaller #0\n\
         Hardware name: linux,dummy-virt (DT)\n\
         pstate: 80400005 (Nzcv daif +PAN -UAO -TCO -DIT -SSBS BTYPE=--)\n\
         pc : foo_loop+0x20/0x60\n\
         lr : foo_loop+0x14/0x60\n\
         sp : ffff80000a1b3c90\n\
         x29: ffff80000a1b3c90 x28: ffff0000c1a9a280 x27: 0000000000000000\n\
         Call trace:\n \
         foo_loop+0x20/0x60\n \
         bar_write+0x40/0x90\n \
         vfs_write+0x1a0/0x6a0\n \
         ksys_write+0x100/0x1e0\n \
         __arm64_sys_write+0x24/0x30\n \
         invoke_syscall+0x48/0x110\n \
         el0_svc+0x30/0xcc\n",
    );
    assert_eq!(
        found(&arm64),
        vec![(
            "BUG: soft lockup in bar_write".into(),
            ReportKind::Bug,
            false
        )]
    );
}

#[test]
fn hung_task_forms_of_hung_task_c() {
    // kernel/hung_task.c check_hung_task() / hung_task_info(): the header, print_tainted()
    // with the release (`      Not tainted ...` / `      Tainted: G ...`), the `"echo 0 >
    // /proc/sys/kernel/hung_task_timeout_secs" disables this message.` line,
    // sched_show_task() (kernel/sched/core.c: `comm  D ...` before 5.7, `task:...` since),
    // since 6.16 debug_show_blocker()'s `INFO: task ... is blocked on a mutex likely owned
    // by task ...` and the owner's stack; then debug_show_all_locks() and, with
    // hung_task_panic, `panic("hung_task: blocked tasks")`.
    let stack = "Call Trace:\n \
                 __schedule+0x17fa/0x4bd0\n \
                 schedule+0x14b/0x320\n \
                 schedule_preempt_disabled+0x13/0x30\n \
                 __mutex_lock+0x6a4/0xd70\n \
                 tty_release+0x11d/0xde0\n \
                 __fput+0x3f7/0xb60\n";
    let forms = [
        // 4.x
        "INFO: task syz-executor3:4537 blocked for more than 140 seconds.\n      \
         Not tainted 4.15.0-rc8+ #263\n\
         \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
         syz-executor3   D23856  4537   4535 0x00000004\n"
            .to_string(),
        // 5.x, tainted
        "INFO: task syz-executor.3:8457 blocked for more than 143 seconds.\n      \
         Tainted: G        W         5.10.0-rc5-syzkaller #0\n\
         \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
         task:syz-executor.3  state:D stack:26232 pid: 8457 ppid:  8456 flags:0x00004004\n"
            .to_string(),
        // 6.x and 7.x, in I/O wait, with the blocker's line and stack after the task's.
        "INFO: task syz.0.17:5221 blocked in I/O wait for more than 143 seconds.\n      \
         Not tainted 7.0.0-syzkaller #0\n\
         \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
         task:syz.0.17        state:D stack:26704 pid:5221  tgid:5221  ppid:5206   task_flags:0x400140 flags:0x00004004\n"
            .to_string(),
    ];
    for (i, head) in forms.iter().enumerate() {
        let mut body = format!("{head}{stack}");
        if i == 2 {
            body.push_str(
                "INFO: task syz.0.17:5221 is blocked on a mutex likely owned by task syz.1.18:5230.\n\
                 task:syz.1.18        state:S stack:27048 pid:5230  tgid:5229  ppid:5206   task_flags:0x400140 flags:0x00004006\n\
                 Call Trace:\n \
                 __schedule+0x17fa/0x4bd0\n \
                 tty_lock+0x1f/0x40\n",
            );
        }
        body.push_str(
            "\n\
             Showing all locks held in the system:\n\
             1 lock held by khungtaskd/30:\n \
             #0: ffffffff8e3371a0 (rcu_read_lock){....}-{1:2}, at: debug_show_all_locks+0x55/0x2a0\n\
             INFO: lockdep is turned off.\n\
             \n\
             =============================================\n\
             \n\
             Kernel panic - not syncing: hung_task: blocked tasks\n",
        );
        let log = console(303.0, "T30", &body);
        let r = analyze(&log);
        let what: Vec<(&str, bool)> = r.iter().map(|r| (r.title.as_str(), r.corrupted)).collect();
        assert_eq!(
            what,
            vec![
                ("INFO: task hung in tty_release", false),
                ("kernel panic: hung_task: blocked tasks", true)
            ],
            "form {i}"
        );
        assert_eq!(r[0].kind, ReportKind::HungTask);
        if i == 2 {
            assert!(r[0].text.contains("likely owned by task syz.1.18:5230"));
        }
    }
}

#[test]
fn warning_forms_of_panic_c() {
    // kernel/panic.c __warn() before 6.19: `WARNING: CPU: %d PID: %d at %s:%d %pS`, or `...
    // at %pS` without CONFIG_DEBUG_BUGVERBOSE; %pS names a module function `f+0x1/0x2 [m]`.
    let warn = |line: &str| {
        console(
            10.0,
            "T1",
            &format!(
                "------------[ cut here ]------------\n\
                 {line}\n\
                 Modules linked in: foo\n\
                 CPU: 0 UID: 0 PID: 1 Comm: insmod Not tainted 6.12.0 #1\n\
                 RIP: 0010:foo_probe+0x1/0x2 [foo]\n\
                 Call Trace:\n \
                 <TASK>\n \
                 really_probe+0x1/0x2\n \
                 </TASK>\n\
                 ---[ end trace 0000000000000000 ]---\n"
            ),
        )
    };
    for line in [
        "WARNING: CPU: 0 PID: 1 at drivers/foo/foo.c:12 foo_probe+0x1/0x2 [foo]",
        "WARNING: CPU: 0 PID: 1 at foo_probe+0x1/0x2 [foo]",
        "WARNING: drivers/foo/foo.c:12 at foo_probe+0x1/0x2 [foo], CPU#0: insmod/1",
    ] {
        let r = one(&warn(line));
        assert_eq!(r.title, "WARNING in foo_probe", "{line}");
        assert_eq!(r.kind, ReportKind::Warning);
        assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    }
    // A component's notice behind its name is no report: scripts/mod/modpost.c,
    // fbcon, the AMD display core, mtd's ECC notice.
    for notice in [
        "WARNING: modpost: vmlinux: section mismatch in reference: foo (section: .text) -> bar (section: .init.text)",
        "WARNING: fbcon: Driver 'vkmsdrmfb' missed to adjust virtual screen size (0x0 vs. 64x48)",
        "WARNING: DML_DLG: dml_rq_dlg_get_dlg_params: vblank_start=10 vblank_end=12",
        "WARNING: nand0: the ECC used on your system is too weak compared to the one required by the NAND chip",
        "WARNING: See https://kernel.org/doc/html/latest/admin-guide/hw-vuln/srso.html for mitigation options.",
    ] {
        let log = console(1.0, "T1", notice);
        assert!(analyze(&log).is_empty(), "{notice}");
    }
}

#[test]
fn arm64_faults_are_one_report_titled_by_the_fault() {
    // arch/arm64/mm/fault.c die_kernel_fault(): `Unable to handle kernel %s at virtual
    // address %016lx`, kasan_non_canonical_hook(), mem_abort_decode(), show_pte(), then
    // arch/arm64/kernel/traps.c die() -> __die(): `Internal error: %s: %016lx [#%d] ...`,
    // show_regs() (`pc : %pS`), the call trace. syzkaller's `Unable to handle kernel` entry
    // titles it, `Internal error:` is in its reportStartIgnores; the frame is `pc :`'s,
    // else the call trace's first.
    let fault = |msg: &str, pc: &str| {
        format!(
            "Unable to handle kernel {msg} at virtual address dfff800000000004\n\
             KASAN: null-ptr-deref in range [0x0000000000000020-0x0000000000000027]\n\
             Mem abort info:\n  \
             ESR = 0x0000000096000005\n  \
             EC = 0x25: DABT (current EL), IL = 32 bits\n  \
             SET = 0, FnV = 0\n  \
             EA = 0, S1PTW = 0\n  \
             FSC = 0x05: level 1 translation fault\n\
             Data abort info:\n  \
             ISV = 0, ISS = 0x00000005, ISS2 = 0x00000000\n  \
             CM = 0, WnR = 0, TnD = 0, TagAccess = 0\n\
             [dfff800000000004] address between user and kernel address ranges\n\
             Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP\n\
             Modules linked in:\n\
             CPU: 1 UID: 0 PID: 4321 Comm: syz.1.2 Not tainted 6.12.0-syzkaller #0\n\
             Hardware name: linux,dummy-virt (DT)\n\
             pstate: 80400005 (Nzcv daif +PAN -UAO -TCO -DIT -SSBS BTYPE=--)\n\
             pc : {pc}\n\
             lr : foo_read+0x30/0x100\n\
             sp : ffff80008f2b7a10\n\
             x29: ffff80008f2b7a10 x28: 0000000000000000 x27: 0000000000000000\n\
             Call trace:\n \
             foo_read+0x40/0x100 (P)\n \
             vfs_read+0x1a0/0x6a0\n \
             ksys_read+0x100/0x1e0\n\
             Code: 91008260 d343fc08 38e96908 34000068 (38e96908)\n\
             ---[ end trace 0000000000000000 ]---\n"
        )
    };
    let cases = [
        (
            "paging request",
            "foo_read+0x40/0x100",
            "BUG: unable to handle kernel paging request in foo_read",
        ),
        (
            "NULL pointer dereference",
            "foo_read+0x40/0x100",
            "BUG: unable to handle kernel NULL pointer dereference in foo_read",
        ),
        (
            "access to user memory outside uaccess routines",
            "foo_read+0x40/0x100",
            "BUG: unable to handle kernel access to user memory in foo_read",
        ),
        // A jump to NULL: `pc : 0x0` names no function, the call trace does.
        (
            "paging request",
            "0x0",
            "BUG: unable to handle kernel paging request in foo_read",
        ),
        (
            "paging request",
            "foo_read+0x40/0x100 [foo]",
            "BUG: unable to handle kernel paging request in foo_read",
        ),
    ];
    for (msg, pc, title) in cases {
        let text = fault(msg, pc);
        // With caller tags, and on a console without them where another CPU's lines land
        // between the fault's message and die()'s.
        let tagged = console(300.0, "T4321", &text);
        let mut untagged = String::new();
        for (i, l) in text.lines().enumerate() {
            untagged.push_str(&format!("[  300.{:06}] {l}\n", 2 * i));
            if i == 3 {
                untagged.push_str(&format!(
                    "[  300.{:06}] audit: type=1400 audit(1700000000.123:40): avc:  denied  {{ read }}\n",
                    2 * i + 1
                ));
            }
        }
        for log in [tagged, untagged] {
            let r = one(&log);
            assert_eq!(r.title, title, "{msg} / {pc}");
            assert_eq!(r.kind, ReportKind::PageFault);
            assert!(!r.corrupted, "{:?}", r.corrupted_reason);
            assert!(r.text.contains("Internal error: Oops"));
        }
    }
    // Before 5.x: show_pte() printed `pgd = ...` and `[addr] *pgd=...`.
    let old = "Unable to handle kernel paging request at virtual address ffff800012345678\n\
               pgd = ffff8000a1b2c000\n\
               [ffff800012345678] *pgd=00000000bfffe003, *pud=00000000bfffd003, *pmd=0000000000000000\n\
               Internal error: Oops: 96000006 [#1] PREEMPT SMP\n\
               Modules linked in:\n\
               CPU: 0 PID: 4321 Comm: syz-executor0 Not tainted 4.17.0-rc3+ #9\n\
               Hardware name: linux,dummy-virt (DT)\n\
               pstate: 80000005 (Nzcv daif -PAN -UAO)\n\
               pc : bar_write+0x2c/0x90\n\
               lr : bar_write+0x20/0x90\n\
               Call trace:\n \
               bar_write+0x2c/0x90\n \
               __vfs_write+0x48/0x90\n";
    assert_eq!(
        one(old).title,
        "BUG: unable to handle kernel paging request in bar_write"
    );
}

#[test]
fn kernel_bug_without_bugverbose() {
    // lib/bug.c report_bug() without CONFIG_DEBUG_BUGVERBOSE: `kernel BUG at %pB [verbose
    // debug info unavailable]` (`Kernel BUG at %p [...]` before 5.x); syzkaller's `kernel
    // BUG at (.*)` titles the first by the faulting function, `Kernel BUG (.*)` by the line.
    let body = "Oops: invalid opcode: 0000 [#1] PREEMPT SMP\n\
                CPU: 0 PID: 77 Comm: syz.0.1 Not tainted 6.12.0 #1\n\
                RIP: 0010:foo_remove+0x12/0x30\n\
                RSP: 0018:ffffc90003f7f8f8 EFLAGS: 00010246\n\
                Call Trace:\n \
                <TASK>\n \
                bar_release+0x10/0x20\n \
                </TASK>\n\
                ---[ end trace 0000000000000000 ]---\n";
    let new = format!(
        "------------[ cut here ]------------\n\
         kernel BUG at foo_remove+0x12/0x30 [verbose debug info unavailable]\n{body}"
    );
    let r = one(&new);
    assert_eq!(r.title, "kernel BUG in foo_remove");
    assert_eq!(r.kind, ReportKind::KernelBug);
    let old = format!(
        "------------[ cut here ]------------\n\
         Kernel BUG at ffffffff81234567 [verbose debug info unavailable]\n{body}"
    );
    assert_eq!(
        one(&old).title,
        "kernel BUG at ADDR [verbose debug info unavailable]"
    );
}

#[test]
fn rcu_expedited_stall_is_a_stall() {
    // kernel/rcu/tree_exp.h synchronize_rcu_expedited_wait(): `INFO: %s detected expedited
    // stalls on CPUs/tasks: {`, the CPUs (pr_cont), `} %lu jiffies s: %lu root: ...`, then
    // the stalled CPUs' backtraces (dump_cpu_task()); syzkaller's `INFO: rcu_(?:preempt|sched
    // |bh) (?:self-)?detected(?: expedited)? stall` entry.
    let log = console(
        400.0,
        "T15",
        "rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-.... } 2653 jiffies s: 1229 root: 0x2/.\n\
         rcu: blocking rcu_node structures (internal RCU debug):\n\
         Sending NMI from CPU 0 to CPUs 1:\n",
    ) + &console(
        400.1,
        "C1",
        "NMI backtrace for cpu 1\n\
         CPU: 1 PID: 5210 Comm: syz.3.9 Not tainted 6.1.0-syzkaller #0\n\
         RIP: 0010:foo_spin+0x20/0x60\n\
         Call Trace:\n \
         <IRQ>\n \
         sysvec_apic_timer_interrupt+0x8e/0xc0\n \
         </IRQ>\n \
         <TASK>\n \
         asm_sysvec_apic_timer_interrupt+0x1a/0x20\n\
         RIP: 0010:foo_spin+0x20/0x60\n \
         foo_spin+0x20/0x60\n \
         foo_ioctl+0x40/0x90\n \
         __x64_sys_ioctl+0x7f/0xa0\n \
         do_syscall_64+0xcd/0x250\n \
         </TASK>\n",
    );
    let r = &analyze(&log)[0];
    assert_eq!(r.kind, ReportKind::RcuStall);
    assert_eq!(r.title, "INFO: rcu detected stall in foo_ioctl");
}

#[test]
fn other_info_lines_are_reports_titled_by_their_text() {
    // syzkaller's `INFO:` entry reports any such line it does not suppress, titled by the
    // line when no format matches: fs/fs-writeback.c wb_wait_for_completion_cb(). The
    // replacements are syzkaller's, in its order (`.33:812` reads as a file's line first).
    let log = console(
        500.0,
        "T812",
        "INFO: The task syz.2.33:812 has been waiting for writeback completion for more than 32 seconds.\n",
    );
    assert_eq!(
        found(&log),
        vec![(
            "INFO: The task syz.NUM.NUM:LINE has been waiting for writeback completion for more than NUM seconds."
                .into(),
            ReportKind::Bug,
            false
        )]
    );
    // A line cut right after the word: syzkaller's `INFO: corrupted` and `BUG: corrupted`.
    for (cut, title) in [("INFO:", "INFO: corrupted"), ("BUG:", "BUG: corrupted")] {
        let r = one(&console(2.0, "T1", cut));
        assert_eq!((r.title.as_str(), r.corrupted), (title, true));
    }
    // The notices it passes over: kernel/locking/lockdep.c, arch/x86/kernel/nmi.c.
    for notice in [
        "INFO: lockdep is turned off.",
        "INFO: NMI handler (perf_event_nmi_handler) took too long to run: 2.735 msecs",
    ] {
        assert!(analyze(&console(1.0, "T1", notice)).is_empty(), "{notice}");
    }
}
