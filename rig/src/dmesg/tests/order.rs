//! Which report comes first: the one syzkaller would report (google/syzkaller
//! `pkg/report/linux.go` findFirstOops(): the first line holding a header of its
//! `linuxOopses` table), then every other report in log order. rig's own kinds still count.

use super::forms::console;
use super::*;

fn titles(reports: &[Report]) -> Vec<&str> {
    reports.iter().map(|r| r.title.as_str()).collect()
}

/// fs/sysfs/dir.c sysfs_warn_dup(): pr_warn() and dump_stack(); lib/kobject.c then
/// kobject_add_internal()'s error line. No line holds a header of syzkaller's table.
fn sysfs_dup(t0: f64, ctx: &str) -> String {
    console(
        t0,
        ctx,
        "sysfs: cannot create duplicate filename '/devices/virtual/net/bond0/bonding'\n\
         CPU: 1 UID: 0 PID: 812 Comm: syz.2.33 Not tainted 6.12.0-syzkaller #0\n\
         Hardware name: Google Google Compute Engine/Google Compute Engine, BIOS Google 09/13/2024\n\
         Call Trace:\n \
         <TASK>\n \
         dump_stack_lvl+0x116/0x1f0\n \
         sysfs_warn_dup+0x7f/0xa0\n \
         sysfs_create_dir_ns+0x24b/0x2b0\n \
         kobject_add_internal+0x2a3/0x930\n \
         kobject_add+0x16e/0x240\n \
         bond_create_sysfs+0x4e/0x90\n \
         </TASK>\n\
         kobject: kobject_add_internal failed for bonding with -EEXIST, don't try to register things with the same name in the same directory.\n",
    )
}

/// A general protection fault (arch/x86/kernel/traps.c, dumpstack.c) and its panic.
fn gpf(t0: f64, ctx: &str) -> String {
    console(
        t0,
        ctx,
        "Oops: general protection fault, probably for non-canonical address 0xdffffc0000000002: 0000 [#1] SMP KASAN NOPTI\n\
         KASAN: null-ptr-deref in range [0x0000000000000010-0x0000000000000017]\n\
         CPU: 0 UID: 0 PID: 900 Comm: syz.1.20 Not tainted 6.12.0-syzkaller #0\n\
         RIP: 0010:bond_sysfs_slave_add+0x3e/0x190\n\
         RSP: 0018:ffffc90003f7f8f8 EFLAGS: 00010246\n\
         Call Trace:\n \
         <TASK>\n \
         bond_enslave+0x2f1a/0x5e40\n \
         do_set_master+0x1c8/0x220\n \
         </TASK>\n\
         Modules linked in:\n\
         ---[ end trace 0000000000000000 ]---\n\
         Kernel panic - not syncing: Fatal exception\n",
    )
}

#[test]
fn syzkallers_report_comes_before_rigs_own_kinds() {
    let log = sysfs_dup(100.0, "T812") + &gpf(101.0, "T900");
    let r = analyze(&log);
    assert_eq!(
        titles(&r),
        vec![
            "general protection fault in bond_sysfs_slave_add",
            "sysfs: cannot create duplicate filename in bond_create_sysfs",
            "kernel panic: Fatal exception",
        ]
    );
    assert_eq!(r[1].kind, ReportKind::Kobject);
    let why = render_explain(&r);
    assert!(
        why.contains("syzkaller would stop at its line 14 (`general protection fault`"),
        "{why}"
    );
    assert!(
        why.contains("no line of it holds a header of syzkaller's linuxOopses table"),
        "{why}"
    );
    // The live analyzer returns the same reports (in the order they completed).
    let mut a = Analyzer::new();
    let mut live = a.feed(&log);
    live.extend(a.finish());
    live.sort_by_key(|x| x.line);
    let mut whole = r.clone();
    whole.sort_by_key(|x| x.line);
    assert_eq!(live, whole);
}

#[test]
fn rigs_own_kinds_keep_log_order_after_the_first() {
    // drivers/of/dynamic.c (OF refcount errors), mm/kmemleak.c's summary line,
    // lib/kobject.c kobject_init() (`tried to init an initialized object`, dump_stack()),
    // then a KASAN report (mm/kasan/report.c).
    let log = console(
        10.0,
        "T1",
        "OF: ERROR: memory leak, expected refcount 1 instead of 2, of_node_get()/of_node_put() unbalanced - destroy cset entry: attach overlay node /testcase-data/overlay-node/test-bus@0\n",
    ) + &console(
        11.0,
        "T300",
        "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n",
    ) + &console(
        12.0,
        "T5",
        "kobject (ffff888012345678): tried to init an initialized object, something is seriously wrong.\n\
         CPU: 0 UID: 0 PID: 5 Comm: kworker/0:0 Not tainted 6.12.0 #1\n\
         Call Trace:\n \
         <TASK>\n \
         dump_stack_lvl+0x116/0x1f0\n \
         kobject_init+0x15e/0x1e0\n \
         foo_register+0x40/0x90\n \
         </TASK>\n",
    ) + &console(
        13.0,
        "T6",
        "==================================================================\n\
         BUG: KASAN: slab-use-after-free in foo_remove+0x2a/0x90\n\
         Read of size 8 at addr ffff888012345678 by task syz.0.1/6\n\
         \n\
         CPU: 0 UID: 0 PID: 6 Comm: syz.0.1 Not tainted 6.12.0 #1\n\
         Call Trace:\n \
         <TASK>\n \
         foo_remove+0x2a/0x90\n \
         bar_release+0x10/0x20\n \
         </TASK>\n\
         ==================================================================\n",
    );
    let r = analyze(&log);
    assert_eq!(
        titles(&r),
        vec![
            "KASAN: slab-use-after-free Read in foo_remove",
            "OF: ERROR: memory leak in /testcase-data/overlay-node/test-bus@N",
            "kmemleak: new suspected memory leaks",
            "kobject: tried to init an initialized object in foo_register",
        ]
    );
    // Without a report syzkaller would find, log order throughout.
    let only_rigs = log[..log.find("=====").unwrap()].to_string();
    let r = analyze(&only_rigs);
    assert_eq!(r.len(), 3);
    assert!(r.windows(2).all(|w| w[0].line < w[1].line));
}

#[test]
fn the_header_line_decides_between_interleaved_reports() {
    // A WARNING whose `cut here` (lib/bug.c) came before another task's fault, its header
    // after it: syzkaller stops at the fault's line first.
    let mut log = console(20.0, "T1", "------------[ cut here ]------------\n");
    log += &console(
        20.1,
        "T2",
        "BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
         #PF: supervisor read access in kernel mode\n\
         Oops: Oops: 0000 [#1] SMP NOPTI\n\
         RIP: 0010:qux_open+0x10/0x40\n\
         Call Trace:\n \
         <TASK>\n \
         do_dentry_open+0x1/0x2\n \
         </TASK>\n",
    );
    log += &console(
        20.2,
        "T1",
        "WARNING: CPU: 0 PID: 1 at drivers/foo/foo.c:12 foo_probe+0x1/0x2\n\
         RIP: 0010:foo_probe+0x1/0x2\n\
         Call Trace:\n \
         <TASK>\n \
         really_probe+0x1/0x2\n \
         </TASK>\n\
         ---[ end trace 0000000000000000 ]---\n",
    );
    assert_eq!(
        titles(&analyze(&log)),
        vec![
            "BUG: unable to handle kernel NULL pointer dereference in qux_open",
            "WARNING in foo_probe",
        ]
    );
}

#[test]
fn syzkallers_memory_leak_line_makes_a_leak_its_report() {
    // syzkaller's executor prints `BUG: memory leak` before the records it read from
    // /sys/kernel/debug/kmemleak (user output); rig's own `cat` of that file prints none.
    let record = "unreferenced object 0xffff888109e1c400 (size 64):\n  \
                  comm \"syz.0.1\", pid 5000, jiffies 4294944312\n  \
                  backtrace (crc 9b8f3c2e):\n    \
                  kmemleak_alloc+0x1/0x2\n    \
                  __kmalloc_noprof+0x1/0x2\n    \
                  foo_create+0x1/0x2\n";
    let warning = console(
        600.0,
        "T7",
        "------------[ cut here ]------------\n\
         WARNING: CPU: 0 PID: 7 at drivers/foo/foo.c:12 foo_probe+0x1/0x2\n\
         RIP: 0010:foo_probe+0x1/0x2\n\
         Call Trace:\n \
         <TASK>\n \
         really_probe+0x1/0x2\n \
         </TASK>\n\
         ---[ end trace 0000000000000000 ]---\n",
    );
    let cat = format!("{}{record}{warning}", console(599.0, "T1", "rig: step 1\n"));
    assert_eq!(
        titles(&analyze(&cat)),
        vec!["WARNING in foo_probe", "memory leak in foo_create"]
    );
    let syz = format!(
        "{}BUG: memory leak\n{record}{warning}",
        console(599.0, "T1", "rig: step 1\n")
    );
    assert_eq!(
        titles(&analyze(&syz)),
        vec!["memory leak in foo_create", "WARNING in foo_probe"]
    );
}
