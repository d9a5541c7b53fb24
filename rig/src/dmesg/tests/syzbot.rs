//! Reports in the shapes syzbot's console logs show them, written from the kernel code that
//! prints them (each test names it), with the title syzbot's rules give them.

use super::*;

fn title_of(log: &str) -> (String, bool) {
    let r = analyze(log);
    let first = r.first().unwrap_or_else(|| panic!("no report in:\n{log}"));
    (first.title.clone(), first.corrupted)
}

#[test]
fn rcu_stall_backtrace_of_another_cpu_under_its_caller_tag() {
    // kernel/rcu/tree_stall.h print_other_cpu_stall() on CPU 0 (timer interrupt: `[C0]`),
    // lib/nmi_backtrace.c: CPU 1 prints its backtrace from NMI under `[C1]`; the stalled
    // task is in the interrupted context after asm_sysvec_apic_timer_interrupt.
    let log = fixture!("syzbot/rcu_stall_nmi_backtrace_caller_tags_x86_64_5.10.log");
    let r = one(log);
    assert_eq!(r.title, "INFO: rcu detected stall in rtnl_newlink");
    assert_eq!(r.kind, ReportKind::RcuStall);
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    assert!(r.text.contains("NMI backtrace for cpu 1"));
    assert!(!r.text.contains("netdevsim"), "other tasks' lines stay out");
    let why = crate::dmesg::render_explain(std::slice::from_ref(&r));
    assert!(why.contains("`Sending NMI from CPU`"), "{why}");
    assert!(why.contains("chose rtnl_newlink"), "{why}");
}

#[test]
fn rcu_stall_goes_on_after_the_kthread_stack() {
    // tree_stall.h print_cpu_stall() -> rcu_check_gp_kthread_starvation() prints the GP
    // kthread's stack first; rcu_dump_cpu_stacks() then the stalled CPU's (5.2).
    let log = "rcu: INFO: rcu_sched self-detected stall on CPU\n\
               rcu: \t0-...!: (10499 ticks this GP) idle=5fa/1/0x4000000000000002 softirq=4/4 fqs=15\n\
               \t(t=10501 jiffies g=63393 q=282)\n\
               rcu: rcu_sched kthread starved for 10470 jiffies! g63393 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x402 ->cpu=1\n\
               rcu: RCU grace-period kthread stack dump:\n\
               rcu_sched       I29056    10      2 0x80004000\n\
               Call Trace:\n \
               __schedule+0x7cb/0x1560\n \
               schedule+0xa8/0x260\n \
               rcu_gp_kthread+0x9b2/0x18b0\n \
               kthread+0x354/0x420\n \
               ret_from_fork+0x24/0x30\n\
               NMI backtrace for cpu 0\n\
               CPU: 0 PID: 25729 Comm: syz-executor.0 Not tainted 5.2.0-rc2+ #9\n\
               Call Trace:\n \
               <IRQ>\n \
               dump_stack+0x172/0x1f0\n \
               nmi_cpu_backtrace.cold+0x63/0xa4\n \
               rcu_sched_clock_irq.cold+0x4d1/0xbfd\n \
               smp_apic_timer_interrupt+0x111/0x550\n \
               apic_timer_interrupt+0xf/0x20\n \
               </IRQ>\n\
               RIP: 0010:__sanitizer_cov_trace_pc+0x11/0x50\n\
               RSP: 0018:ffff888062d17c00 EFLAGS: 00000297 ORIG_RAX: ffffffffffffff13\n \
               rose_find_socket+0x54/0x120\n \
               rose_connect+0x3b8/0x1510\n \
               __sys_connect+0x264/0x330\n \
               __x64_sys_connect+0x73/0xb0\n \
               do_syscall_64+0xfd/0x680\n";
    assert_eq!(
        title_of(log),
        ("INFO: rcu detected stall in rose_connect".into(), false)
    );
}

#[test]
fn lockdep_still_has_locks_held_before_4_14() {
    // kernel/locking/lockdep.c print_held_locks_bug() before 4.14 wrote its header in
    // brackets: `[ BUG: %s/%d still has locks held! ]`.
    let log = "=====================================\n\
               [ BUG: syz-executor5/5370 still has locks held! ]\n\
               4.13.0-rc6+ #50 Not tainted\n\
               -------------------------------------\n\
               1 lock held by syz-executor5/5370:\n \
               #0:  (&pipe->mutex/1){+.+.}, at: [<ffffffff81a7b8c6>] pipe_lock+0x56/0x70\n\
               \n\
               stack backtrace:\n\
               CPU: 1 PID: 5370 Comm: syz-executor5 Not tainted 4.13.0-rc6+ #50\n\
               Call Trace:\n \
               dump_stack+0x194/0x257\n \
               debug_check_no_locks_held+0x1c0/0x1d0\n \
               do_exit+0x1b1c/0x2b60\n";
    assert_eq!(
        title_of(log),
        ("BUG: still has locks held in pipe_lock".into(), false)
    );
}

#[test]
fn unwinder_warnings_are_reports() {
    // arch/x86/kernel/unwind_frame.c unwind_next_frame(): printk_deferred_once() of a
    // `WARNING: ...` line, then unwind_dump()'s lines; no stack trace of their own.
    let regs = "[  512.283112][ T9611] WARNING: kernel stack regs at 00000000d1a2b6c1 in syz-executor.3:9611 has bad 'bp' value 0000000000000001\n\
                [  512.291720][ T9611] unwind stack type:0 next_sp:0000000000000000 mask:0x2 graph_idx:0\n\
                [  512.299011][ T9611] 00000000ba1c9c35: ffffc90016487a48 (0xffffc90016487a48)\n";
    assert_eq!(
        title_of(regs),
        (
            "WARNING: kernel stack regs has bad 'bp' value".into(),
            false
        )
    );
    let fp = "WARNING: kernel stack frame pointer at 00000000a1b2c3d4 in kworker/1:2:3127 has bad value 0000000000000001\n\
              unwind stack type:0 next_sp:0000000000000000 mask:0x2 graph_idx:0\n";
    assert_eq!(
        title_of(fp),
        (
            "WARNING: kernel stack frame pointer has bad value".into(),
            false
        )
    );
    // arch/x86/kernel/dumpstack_64.c get_stack_info(): any other `WARNING: <text>` line is
    // titled by its text, numbers replaced.
    let rec = "[  73.012345][ T5021] WARNING: stack recursion on stack type 1\n";
    let r = one(rec);
    assert_eq!(r.title, "WARNING: stack recursion on stack type NUM");
    assert_eq!(r.kind, ReportKind::Warning);
    // Configuration notices that start the same way are no bug (kernel/workqueue.c).
    assert!(
        analyze("[ 0.1] WARNING: workqueue cpumask: online intersect > possible intersect\n")
            .is_empty()
    );
}

#[test]
fn warning_line_formats_of_6_19() {
    // kernel/panic.c __warn() since 6.19: `WARNING: %s:%d at %pS, CPU#%d: %s/%d`, with the
    // failed condition in brackets where the architecture records it, or `WARNING: at
    // %pS, ...` without file and line.
    let cond = "------------[ cut here ]------------\n\
                WARNING: [ptr == 0 && 1] kernel/sched/core.c:8511 at sched_init+0x20/0x410, CPU#0: swapper/0\n\
                Modules linked in:\n\
                RIP: 0010:sched_init+0x20/0x410\n\
                Call Trace:\n \
                <TASK>\n \
                start_kernel+0x1a4/0x420\n \
                </TASK>\n";
    assert_eq!(title_of(cond), ("WARNING in sched_init".into(), false));
    let nofile = "WARNING: at foo_remove+0x1c/0x30, CPU#0: syz.0.17/5333\n\
                  Modules linked in:\n\
                  RIP: 0010:foo_remove+0x1c/0x30\n\
                  Call Trace:\n \
                  <TASK>\n \
                  bar_release+0x10/0x20\n \
                  </TASK>\n";
    assert_eq!(title_of(nofile), ("WARNING in foo_remove".into(), false));
}

#[test]
fn soft_lockup_behind_the_4_x_nmi_watchdog_prefix() {
    // kernel/watchdog.c before 4.17: pr_fmt "NMI watchdog: " ahead of `BUG: soft lockup`.
    let log = "NMI watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [syz-executor6:7781]\n\
               Modules linked in:\n\
               CPU: 0 PID: 7781 Comm: syz-executor6 Not tainted 4.14.0-rc1+ #80\n\
               RIP: 0010:snd_seq_oss_write+0x2b7/0x8a0\n\
               RSP: 0018:ffff8801c534fd38 EFLAGS: 00000246 ORIG_RAX: ffffffffffffff10\n\
               Call Trace:\n \
               odev_write+0x4e/0x70\n \
               __vfs_write+0xef/0x970\n \
               vfs_write+0x189/0x510\n \
               SyS_write+0xef/0x220\n \
               entry_SYSCALL_64_fastpath+0x1f/0xbe\n";
    assert_eq!(
        title_of(log),
        ("BUG: soft lockup in odev_write".into(), false)
    );
}

#[test]
fn arm32_unhandled_fault_and_its_backtrace() {
    // arch/arm/mm/fault.c do_DataAbort(): `Unhandled fault: %s (0x%03x) at 0x%08lx`, then
    // arm_notify_die() -> die(): `Internal error: : 1b [#1] SMP ARM`, `PC is at %pS`, and
    // arch/arm/kernel/traps.c dump_backtrace_entry(): `[<%08lx>] (%ps) from [<%08lx>] (%pS)`.
    let log = "8<--- cut here ---\n\
               Unhandled fault: page domain fault (0x01b) at 0x00000ff0\n\
               [00000ff0] *pgd=84a2c003, *pmd=fe000000\n\
               Internal error: : 1b [#1] SMP ARM\n\
               Modules linked in:\n\
               CPU: 1 PID: 3115 Comm: syz-executor.1 Not tainted 6.1.0-syzkaller #0\n\
               Hardware name: ARM-Versatile Express\n\
               PC is at __copy_to_user_std+0x4c/0x3c4\n\
               LR is at 0x0\n\
               pc : [<8160fbf0>]    lr : [<00000000>]    psr: 20000013\n\
               sp : df9f5e08  ip : 00000008  fp : df9f5e3c\n\
               Process syz-executor.1 (pid: 3115, stack limit = 0xdf9f4000)\n\
               Backtrace: \n\
               [<8160fba4>] (__copy_to_user_std) from [<8161b3e8>] (arm_copy_to_user+0x14/0x18)\n\
               [<8161b3d4>] (arm_copy_to_user) from [<80b4e2d4>] (sock_ioctl+0x2a0/0x4c4)\n\
               [<80b4e034>] (sock_ioctl) from [<8052a1c0>] (sys_ioctl+0x4f8/0x9c4)\n\
               [<80529cc8>] (sys_ioctl) from [<80200060>] (ret_fast_syscall+0x0/0x1c)\n\
               Code: f5d1f05c f5d1f07c e8b100f8 e2522020 (e8a000f8)\n\
               ---[ end trace 0000000000000000 ]---\n";
    let r = one(log);
    assert_eq!(r.title, "Unhandled fault in sock_ioctl");
    assert_eq!(r.kind, ReportKind::Oops);
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
}

#[test]
fn arm64_brk_handler_chain_is_skipped() {
    // arch/arm64/kernel/traps.c: WARN() traps through bug_handler() -> report_bug(); a
    // stack dumped from inside the handler shows that chain above the WARN site.
    let log = "------------[ cut here ]------------\n\
               WARNING: CPU: 1 PID: 3016 at fs/ext4/inode.c:3623 ext4_set_page_dirty+0x1c4/0x1f0\n\
               Modules linked in:\n\
               CPU: 1 PID: 3016 Comm: syz-executor.0 Not tainted 5.10.0-syzkaller #0\n\
               Hardware name: linux,dummy-virt (DT)\n\
               Call trace:\n \
               dump_backtrace+0x0/0x1b0\n \
               show_stack+0x18/0x24\n \
               dump_stack+0xd8/0x134\n \
               __warn+0xe0/0x1c0\n \
               report_bug+0xc8/0x184\n \
               bug_handler+0x28/0x70\n \
               call_break_hook+0x98/0xc0\n \
               brk_handler+0x20/0x64\n \
               do_debug_exception+0xbc/0x190\n \
               el1_dbg+0x28/0x4c\n \
               el1_sync_handler+0x8c/0xd0\n \
               el1_sync+0x7c/0x100\n \
               ext4_set_page_dirty+0x1c4/0x1f0\n \
               set_page_dirty+0x8c/0x134\n\
               ---[ end trace 2b7a07ab1bd7ba63 ]---\n";
    assert_eq!(
        title_of(log),
        ("WARNING in ext4_set_page_dirty".into(), false)
    );
}

#[test]
fn frames_named_after_linker_section_markers_are_skipped() {
    // arch/riscv/kernel/vmlinux.lds.S defines __rela_dyn_start at a section boundary; a
    // stack word that is no return address is printed under that name.
    let log = "INFO: task syz-executor.0:4125 blocked for more than 430 seconds.\n      \
               Not tainted 6.1.0-rc5-syzkaller #0\n\
               \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.\n\
               task:syz-executor.0  state:D stack:0     pid:4125  ppid:3039   flags:0x00000000\n\
               Call Trace:\n\
               [<ffffffff8447a4d6>] __schedule+0x6d2/0x1a12\n\
               [<ffffffff8447b8b0>] schedule+0x9c/0x1a2\n\
               [<ffffffff85000000>] __rela_dyn_start+0x1a5c8/0x2a000\n\
               [<ffffffff8122c2a4>] pipe_write+0x11c/0x9aa\n\
               [<ffffffff811f2b9c>] vfs_write+0x43c/0x5dc\n";
    assert_eq!(
        title_of(log),
        ("INFO: task hung in pipe_write".into(), false)
    );
}

#[test]
fn helpers_that_warn_about_their_caller_are_skipped() {
    // fs/buffer.c mark_buffer_dirty(): WARN_ON_ONCE(!buffer_uptodate(bh)).
    let log = "WARNING: CPU: 0 PID: 5190 at fs/buffer.c:1176 mark_buffer_dirty+0x3a6/0x470\n\
               Modules linked in:\n\
               RIP: 0010:mark_buffer_dirty+0x3a6/0x470\n\
               Call Trace:\n \
               <TASK>\n \
               fat_ent_write+0x1f2/0x280\n \
               fat_alloc_clusters+0x3f4/0x1010\n \
               </TASK>\n";
    assert_eq!(title_of(log), ("WARNING in fat_ent_write".into(), false));
}

#[test]
fn hung_task_with_an_empty_comm() {
    // kernel/hung_task.c check_hung_task(): `INFO: task %s:%d blocked ...`; a task may
    // set its comm to "" (prctl(PR_SET_NAME)).
    let log = "[  303.245017][   T30] INFO: task :5221 blocked for more than 143 seconds.\n\
               [  303.251815][   T30]       Not tainted 6.12.0-syzkaller #0\n\
               [  303.266390][   T30] task:                state:D stack:26704 pid:5221  tgid:5221  ppid:5206   flags:0x00004004\n\
               [  303.277890][   T30] Call Trace:\n\
               [  303.281184][   T30]  <TASK>\n\
               [  303.284120][   T30]  __schedule+0x17fa/0x4bd0\n\
               [  303.289003][   T30]  schedule+0x14b/0x320\n\
               [  303.293243][   T30]  io_schedule+0x8d/0x110\n\
               [  303.297666][   T30]  folio_wait_bit_common+0x839/0xee0\n\
               [  303.301102][   T30]  filemap_fault+0x1d5/0x1780\n\
               [  303.303044][   T30]  </TASK>\n";
    assert_eq!(
        title_of(log),
        ("INFO: task hung in filemap_fault".into(), false)
    );
}

#[test]
fn reboot_after_a_long_fuzzer_log() {
    // arch/x86/boot/compressed/misc.c prints `Booting the kernel.` on every boot; a
    // kernel ran before it even when the first thousand lines are a fuzzer's programs.
    let mut log = String::new();
    for i in 0..1500 {
        log.push_str(&format!("executing program {i}\n"));
    }
    log.push_str("[  412.118231][ T8411] loop3: detected capacity change from 0 to 1024\n");
    log.push_str("executing program\nDecompressing Linux... Parsing ELF... done.\n");
    log.push_str("Booting the kernel.\n[    0.000000][    T0] Linux version 6.12.0\n");
    let r = one(&log);
    assert_eq!(r.title, "unexpected kernel reboot");
    let mut early = String::new();
    for i in 0..1500 {
        early.push_str(&format!("executing program {i}\n"));
    }
    early.push_str("Booting the kernel.\n");
    assert!(analyze(&early).is_empty(), "no kernel ran before");
}

#[test]
fn trace_of_an_untagged_console_goes_on_past_other_cpus_lines() {
    // Without caller tags another CPU's messages land between a trace's frames; syzbot
    // reads the frames after them as the trace's.
    let log = "[  100.100000] WARNING: CPU: 0 PID: 4821 at mm/slab_common.c:1076 kmalloc_slab+0x96/0xb0\n\
               [  100.100001] Modules linked in:\n\
               [  100.100002] RIP: 0010:kmalloc_slab+0x96/0xb0\n\
               [  100.100003] Call Trace:\n\
               [  100.100004]  __kmalloc+0x1e/0x2b0\n\
               [  100.100005] audit: type=1400 audit(1600000000.123:40): avc:  denied  { map } for  pid=4822\n\
               [  100.100006] loop1: detected capacity change from 0 to 1024\n\
               [  100.100007]  snd_seq_pool_init+0x5e/0x2b0\n\
               [  100.100008]  snd_seq_fifo_new+0x107/0x1c0\n\
               [  100.100009] ---[ end trace 41d1c6e5a94b7d1a ]---\n";
    let r = one(log);
    assert_eq!(r.title, "WARNING: kmalloc bug in snd_seq_pool_init");
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    let why = crate::dmesg::render_explain(std::slice::from_ref(&r));
    assert!(why.contains("lines 6-7: 2 line(s) of other CPUs"), "{why}");
}

#[test]
fn rust_panic_is_titled_by_its_message_and_demangled_frame() {
    // rust/kernel/lib.rs panic(): pr_emerg!("{}\n", info) -- `rust_kernel: panicked at
    // <file>:<line>:<col>:` and the message on its own line -- then BUG() through
    // rust/helpers/bug.c. kallsyms prints the v0-mangled names.
    let log = "[  123.456789][ T5123] rust_kernel: panicked at drivers/android/binder/thread.rs:1221:48:\n\
               [  123.456801][ T5123] attempt to add with overflow\n\
               [  123.456812][ T5123] ------------[ cut here ]------------\n\
               [  123.456820][ T5123] kernel BUG at rust/helpers/bug.c:7!\n\
               [  123.460312][ T5123] Oops: invalid opcode: 0000 [#1] SMP KASAN PTI\n\
               [  123.461002][ T5123] CPU: 0 UID: 0 PID: 5123 Comm: syz.1.17 Not tainted 6.16.0-syzkaller #0 PREEMPT(full)\n\
               [  123.463120][ T5123] RIP: 0010:rust_helper_BUG+0x8/0x10\n\
               [  123.465010][ T5123] RSP: 0018:ffffc90003f7f8f8 EFLAGS: 00010246\n\
               [  123.470020][ T5123] Call Trace:\n\
               [  123.470350][ T5123]  <TASK>\n\
               [  123.470650][ T5123]  _RNvCs5QGIMBoJjcK_7___rustc17rust_begin_unwind+0x22d/0x230\n\
               [  123.471410][ T5123]  _RNvNtCsgYyCbKxGsFR_4core9panicking9panic_fmt+0x80/0x90\n\
               [  123.472110][ T5123]  _RNvNtNtCsgYyCbKxGsFR_4core9panicking11panic_const24panic_const_add_overflow+0x4a/0x50\n\
               [  123.473020][ T5123]  _RNvMs5_NtCsbDqzXfLQacH_11rust_binder6threadNtB5_6Thread16translate_object+0x1d67/0x1d80\n\
               [  123.474010][ T5123]  _RNvMs5_NtCsbDqzXfLQacH_11rust_binder6threadNtB5_6Thread11transaction+0x9a1/0x1050\n\
               [  123.475010][ T5123]  </TASK>\n";
    let r = one(log);
    assert_eq!(
        r.title,
        "attempt to add with overflow in <rust_binder::thread::Thread>::translate_object"
    );
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
    // A WARNING in Rust code names the demangled function too.
    let warn = "WARNING: CPU: 1 PID: 77 at rust/kernel/list.rs:42 _RNvXs_NtCs1_6kernel4listINtB4_4ListpENtNtNtCs2_4core3ops4drop4Drop4drop+0x10/0x20\n\
                RIP: 0010:_RNvXs_NtCs1_6kernel4listINtB4_4ListpENtNtNtCs2_4core3ops4drop4Drop4drop+0x10/0x20\n\
                Call Trace:\n \
                <TASK>\n \
                foo+0x1/0x2\n \
                </TASK>\n";
    assert_eq!(
        title_of(warn).0,
        "WARNING in <kernel::list::List<_> as core::ops::drop::Drop>::drop"
    );
}

#[test]
fn rust_panic_of_a_real_binder_report() {
    // Real console output (6.12, syzkaller on Android, quoted in a kernel patch), `? `
    // frames and CFI stubs left out of the trace by the unwinder's reliability marks.
    let log = "rust_kernel: panicked at drivers/android/binder/node.rs:877:13:\n\
               attempt to subtract with overflow\n\
               ------------[ cut here ]------------\n\
               kernel BUG at rust/helpers/bug.c:7!\n\
               Oops: invalid opcode: 0000 [#1] PREEMPT SMP KASAN PTI\n\
               CPU: 0 UID: 0 PID: 298 Comm: syz-executor821 Not tainted 6.12.23-syzkaller-g30b14cdad458 #0\n\
               RIP: 0010:rust_helper_BUG+0x8/0x10\n\
               RSP: 0018:ffffc9000124dab0 EFLAGS: 00010246\n\
               Call Trace:\n \
               <TASK>\n \
               _RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind+0x15b/0x160\n \
               ? __cfi__RNvCscSpY9Juk0HT_7___rustc17rust_begin_unwind+0x10/0x10\n \
               ? _RNvMs0_NtCshgDM7dBCdno_11rust_binder4nodeNtB5_4Node22update_refcount_locked+0x401/0x810\n \
               _RNvNtCs9jEwPDbx20M_4core9panicking9panic_fmt+0x84/0x90\n \
               _RNvNtNtCs9jEwPDbx20M_4core9panicking11panic_const24panic_const_sub_overflow+0xb2/0xc0\n \
               _RNvMs3_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process10update_ref+0x17e5/0x1860\n \
               _RNvMs2_NtCshgDM7dBCdno_11rust_binder6threadNtB5_6Thread10write_read+0x27cf/0x96a0\n \
               _RNvMs5_NtCshgDM7dBCdno_11rust_binder7processNtB5_7Process5ioctl+0x411/0x2c20\n \
               _RNvCshgDM7dBCdno_11rust_binder26rust_binder_unlocked_ioctl+0xa0/0x100\n \
               __se_sys_ioctl+0x132/0x1b0\n \
               __x64_sys_ioctl+0x7f/0xa0\n \
               </TASK>\n";
    let r = one(log);
    assert_eq!(
        r.title,
        "attempt to subtract with overflow in <rust_binder::process::Process>::update_ref"
    );
    assert!(r.stack.iter().any(|f| f == "core::panicking::panic_fmt"));
    // Since 6.18 BUG() prints `cut here` ahead of the panic message.
    let cut_first = format!("------------[ cut here ]------------\n{log}");
    assert_eq!(one(&cut_first).title, r.title);
}
