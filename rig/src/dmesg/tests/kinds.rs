//! One fixture per report kind and arch: title, kind and guilty frame.

use super::*;

// ---- one fixture per kind and arch ----

#[test]
fn refcount_underflow_x86_64() {
    let r = check(
        fixture!("refcount_of_node_put_x86_64_6.12.log"),
        "WARNING: refcount bug in of_node_put",
        ReportKind::Refcount,
        Some("of_node_put"),
    );
    assert_eq!(
        &r.stack[..4],
        [
            "refcount_warn_saturate",
            "kobject_put",
            "of_node_put",
            "rig_of_test_remove"
        ]
    );
    assert!(r.text.starts_with("------------[ cut here ]------------\nrefcount_t: underflow; use-after-free.\nWARNING: CPU: 1 PID: 245"));
    assert!(r.text.ends_with("---[ end trace 0000000000000000 ]---"));
    assert!(!r.text.contains("[    "), "timestamps must be stripped");
    assert!(r.timestamp.is_some());
    assert_eq!(r.line, 27);
}

#[test]
fn refcount_underflow_arm64_with_caller_tags() {
    let r = check(
        fixture!("refcount_of_node_put_arm64_6.12.log"),
        "WARNING: refcount bug in of_node_put",
        ReportKind::Refcount,
        Some("of_node_put"),
    );
    assert_eq!(r.stack[0], "refcount_warn_saturate");
    assert!(
        r.stack.contains(&"el0_svc_common".to_string()),
        "clone suffix stripped: {:?}",
        r.stack
    );
    assert!(!r.text.contains("T231"), "caller tags must be stripped");
}

#[test]
fn refcount_addition_on_zero_x86_64_6_1() {
    check(
        fixture!("refcount_kref_get_x86_64_6.1.log"),
        "WARNING: refcount bug in rig_port_get",
        ReportKind::Refcount,
        Some("rig_port_get"),
    );
}

#[test]
fn of_error_overlay_leaks() {
    assert_eq!(
        summary(fixture!("of_error_overlay_leak_x86_64_6.12.log")),
        vec![
            s(
                "OF: ERROR: memory leak in /soc/rig-bus@N/rig-dev@N",
                ReportKind::OfError,
                None
            ),
            s(
                "OF: ERROR: memory leak in /soc/rig-bus@N",
                ReportKind::OfError,
                None
            ),
        ]
    );
}

#[test]
fn of_error_bad_put_with_stack_x86_64_6_12() {
    let r = check(
        fixture!("of_error_bad_put_dump_x86_64_6.12.log"),
        "OF: ERROR: bad of_node_put() in /soc/rig-bus@N/rig-dev@N",
        ReportKind::OfError,
        Some("rig_dev_unbind"),
    );
    assert!(r
        .text
        .ends_with("will result in a kobject warning 'refcount_t: underflow; use-after-free.'"));
}

#[test]
fn of_error_bad_put_arm64_6_1() {
    check(
        fixture!("of_error_bad_put_arm64_6.1.log"),
        "OF: ERROR: bad of_node_put() in /soc/rig-bus@N/rig-dev@N",
        ReportKind::OfError,
        Some("rig_dev_unbind"),
    );
}

#[test]
fn lockdep_circular_x86_64() {
    let r = check(
        fixture!("lockdep_circular_x86_64_6.12.log"),
        "possible deadlock in rig_bus_remove",
        ReportKind::Lockdep,
        Some("rig_bus_remove"),
    );
    assert!(r.text.contains("*** DEADLOCK ***"));
    assert_eq!(r.stack[0], "dump_stack_lvl");
}

#[test]
fn lockdep_recursive_arm64() {
    check(
        fixture!("lockdep_recursive_arm64_6.1.log"),
        "possible deadlock in rig_port_flush",
        ReportKind::Lockdep,
        Some("rig_port_flush"),
    );
}

#[test]
fn lockdep_inconsistent_x86_64() {
    check(
        fixture!("lockdep_inconsistent_x86_64_6.1.log"),
        "inconsistent lock state in rig_irq_detach",
        ReportKind::Lockdep,
        Some("rig_irq_detach"),
    );
}

#[test]
fn hung_task_arm64() {
    let r = check(
        fixture!("hung_task_arm64_6.12.log"),
        "INFO: task hung in rig_hotplug_work",
        ReportKind::HungTask,
        Some("rig_hotplug_work"),
    );
    assert!(!r.text.contains("Showing all locks"));
}

#[test]
fn hung_task_x86_64() {
    check(
        fixture!("hung_task_x86_64_6.1.log"),
        // __flush_work is workqueue machinery: the caller names the hang.
        "INFO: task hung in devlink_reload",
        ReportKind::HungTask,
        Some("devlink_reload"),
    );
}

#[test]
fn sleep_in_atomic_both_arches() {
    check(
        fixture!("sleep_in_atomic_x86_64_6.12.log"),
        "BUG: sleeping function called from invalid context in rig_reset_store",
        ReportKind::SleepInAtomic,
        Some("rig_reset_store"),
    );
    check(
        fixture!("sleep_in_atomic_arm64_6.1.log"),
        "BUG: sleeping function called from invalid context in rig_timer_fn",
        ReportKind::SleepInAtomic,
        Some("rig_timer_fn"),
    );
}

#[test]
fn kasan_both_arches() {
    let r = check(
        fixture!("kasan_slab_uaf_x86_64_6.12.log"),
        "KASAN: slab-use-after-free Read in rig_port_release",
        ReportKind::Kasan,
        Some("rig_port_release"),
    );
    assert!(r.text.contains("Freed by task 274:"));
    assert!(r
        .text
        .ends_with("=================================================================="));
    assert!(
        !r.stack.contains(&"kasan_save_stack".to_string()),
        "only the main stack"
    );
    check(
        fixture!("kasan_uaf_write_arm64_6.1.log"),
        "KASAN: use-after-free Write in rig_port_release",
        ReportKind::Kasan,
        Some("rig_port_release"),
    );
}

#[test]
fn list_corruption_bug_then_panic_x86_64() {
    let all = analyze(fixture!("list_del_corruption_bug_x86_64_6.12.log"));
    let got: Vec<_> = all
        .iter()
        .map(|r| (r.title.as_str(), r.kind, r.guilty_frame.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "BUG: corrupted list in rig_port_unlink",
                ReportKind::ListCorruption,
                Some("rig_port_unlink")
            ),
            ("kernel panic: Fatal exception", ReportKind::Panic, None),
        ]
    );
    assert!(all[0].text.starts_with("list_del corruption, "));
    assert!(all[0].text.contains("kernel BUG at lib/list_debug.c:56!"));
}

#[test]
fn list_corruption_warn_arm64() {
    check(
        fixture!("list_add_corruption_warn_arm64_6.12.log"),
        // Without CONFIG_BUG_ON_DATA_CORRUPTION the check is a plain WARN: syzbot's title
        // is the WARNING's.
        "WARNING in rig_port_link",
        ReportKind::Warning,
        Some("rig_port_link"),
    );
}

#[test]
fn generic_warnings() {
    check(
        fixture!("warning_generic_arm64_6.12.log"),
        "WARNING in rig_dev_remove",
        ReportKind::Warning,
        Some("rig_dev_remove"),
    );
    check(
        fixture!("warning_generic_x86_64_6.1.log"),
        "WARNING in devm_kfree",
        ReportKind::Warning,
        Some("devm_kfree"),
    );
}

#[test]
fn general_protection_fault_x86_64() {
    let r = check(
        fixture!("gpf_kasan_null_x86_64_6.12.log"),
        "general protection fault in rig_port_stats",
        ReportKind::GeneralProtection,
        Some("rig_port_stats"),
    );
    assert_eq!(&r.stack[..2], ["rig_port_stats", "rig_stats_show"]);
}

#[test]
fn null_deref_same_title_on_both_arches() {
    let want = vec![
        s(
            "BUG: unable to handle kernel NULL pointer dereference in rig_port_name",
            ReportKind::PageFault,
            Some("rig_port_name"),
        ),
        s(
            "kernel panic: Attempted to kill init!",
            ReportKind::Panic,
            None,
        ),
    ];
    assert_eq!(summary(fixture!("null_deref_panic_x86_64_6.12.log")), want);
    assert_eq!(summary(fixture!("null_deref_panic_arm64_6.12.log")), want);
}

#[test]
fn paging_request_arm64() {
    check(
        fixture!("paging_request_arm64_6.1.log"),
        "BUG: unable to handle kernel paging request in rig_port_unlink",
        ReportKind::PageFault,
        Some("rig_port_unlink"),
    );
}

#[test]
fn kernel_bug_both_arches() {
    for log in [
        fixture!("kernel_bug_arm64_6.12.log"),
        fixture!("kernel_bug_x86_64_6.1.log"),
    ] {
        check(
            log,
            "kernel BUG in rig_bus_check_state",
            ReportKind::KernelBug,
            Some("rig_bus_check_state"),
        );
    }
}

#[test]
fn kobject_and_sysfs() {
    check(
        fixture!("kobject_put_uninitialized_x86_64_6.12.log"),
        "WARNING: kobject bug in rig_bus_remove_port",
        ReportKind::Kobject,
        Some("rig_bus_remove_port"),
    );
    let r = check(
        fixture!("sysfs_duplicate_arm64_6.12.log"),
        "sysfs: cannot create duplicate filename in rig_bus_add_port",
        ReportKind::Kobject,
        Some("rig_bus_add_port"),
    );
    assert!(r.text.ends_with("in the same directory."));
}

#[test]
fn panic_without_oops() {
    let r = check(
        fixture!("panic_no_rootfs_x86_64_6.12.log"),
        "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)",
        ReportKind::Panic,
        Some("mount_root_generic"),
    );
    assert!(r.text.ends_with("]---"));
}

#[test]
fn rcu_stall() {
    // Every IRQ-path frame is printed unreliable (`? `), and syzbot reads reports without
    // those: no interrupt entry to start from, so the title says the stack is corrupted.
    let r = check(
        fixture!("rcu_stall_x86_64_6.12.log"),
        "INFO: rcu detected stall in corrupted",
        ReportKind::RcuStall,
        None,
    );
    assert!(r.corrupted);
}

#[test]
fn kmemleak_records_from_cat() {
    assert_eq!(
        summary(fixture!("kmemleak_cat_x86_64_6.12.log")),
        vec![
            s(
                "kmemleak: new suspected memory leaks",
                ReportKind::Kmemleak,
                None
            ),
            s(
                "memory leak in rig_bus_add_port",
                ReportKind::Kmemleak,
                Some("rig_bus_add_port")
            ),
            // syzbot names the kobject name allocation after its caller, dev_set_name.
            s(
                "memory leak in dev_set_name",
                ReportKind::Kmemleak,
                Some("dev_set_name")
            ),
        ]
    );
    let r = one(fixture!("kmemleak_cat_no_timestamps_arm64_6.1.log"));
    assert_eq!(r.title, "memory leak in rig_bus_probe");
    assert_eq!(r.timestamp, None);
}

#[test]
fn ubsan() {
    let r = check(
        fixture!("ubsan_array_index_x86_64_6.12.log"),
        "UBSAN: array-index-out-of-bounds in rig_bus_port_by_index",
        ReportKind::Ubsan,
        Some("rig_bus_port_by_index"),
    );
    assert!(r.text.ends_with("---[ end trace ]---"));
}

#[test]
fn odebug_and_non_static_key() {
    let log = "[    5.0] ------------[ cut here ]------------\n\
               [    5.1] ODEBUG: free active (active state 0) object: ffff888004c2b0a8 object type: timer_list hint: rig_timer_fn+0x0/0x90\n\
               [    5.2] WARNING: CPU: 0 PID: 9 at lib/debugobjects.c:514 debug_print_object+0x7d/0xb0\n\
               [    5.3] Call Trace:\n\
               [    5.3]  <TASK>\n\
               [    5.3]  ? debug_print_object+0x7d/0xb0\n\
               [    5.3]  __debug_check_no_obj_freed+0x1b3/0x200\n\
               [    5.3]  kfree+0xd3/0x3b0\n\
               [    5.3]  rig_port_free+0x1e/0x40\n\
               [    5.3]  </TASK>\n\
               [    5.4] ---[ end trace 0000000000000000 ]---\n\
               [    6.0] INFO: trying to register non-static key.\n\
               [    6.0] The code is fine but needs lockdep annotation, or maybe\n\
               [    6.0] you didn't initialize this object before use?\n\
               [    6.0] turning off the locking correctness validator.\n\
               [    6.0] CPU: 0 UID: 0 PID: 9 Comm: sh Not tainted 6.12.9 #1\n\
               [    6.0] Call Trace:\n\
               [    6.0]  <TASK>\n\
               [    6.0]  dump_stack_lvl+0x5d/0x80\n\
               [    6.0]  register_lock_class+0x4a1/0x4b0\n\
               [    6.0]  __lock_acquire+0x8a/0x2510\n\
               [    6.0]  lock_acquire+0xc7/0x2f0\n\
               [    6.0]  _raw_spin_lock_irqsave+0x45/0x60\n\
               [    6.0]  rig_port_kick+0x22/0x70\n\
               [    6.0]  </TASK>\n";
    assert_eq!(
        summary(log),
        vec![
            s(
                "WARNING: ODEBUG bug in rig_port_free",
                ReportKind::Warning,
                Some("rig_port_free")
            ),
            s(
                "INFO: trying to register non-static key in rig_port_kick",
                ReportKind::Lockdep,
                Some("rig_port_kick")
            ),
        ]
    );
}

#[test]
fn leaked_netdev_reference() {
    let log = "[   40.000000] netdevsim netdevsim1 eth0: unset\n\
               [   50.123456] unregister_netdevice: waiting for eth0 to become free. Usage count = 2\n\
               [   60.123456] unregister_netdevice: waiting for eth0 to become free. Usage count = 2\n";
    let all = analyze(log);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(
        |r| r.title == "unregister_netdevice: waiting for DEV to become free"
            && r.kind == ReportKind::Refcount
    ));
    assert_eq!(all[0].line, 2);
    // Reported as soon as the line is complete.
    let mut a = Analyzer::new();
    assert_eq!(a.feed(&log[..log.find("free.").unwrap()]).len(), 0);
    assert_eq!(
        a.feed(&log[log.find("free.").unwrap()..log.find("[   60").unwrap()])
            .len(),
        1
    );
}

#[test]
fn old_kernel_register_dump_inside_an_irq_trace() {
    // 4.18: no <TASK> markers, so after </IRQ> the RIP/Code/register lines of the
    // interrupted task come at depth 0; they belong to the trace, and so does the task's
    // stack after them. (A real report; its 2018 title predates syzbot's stall anchors, so
    // it is not in the title corpus.)
    let log = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/logs/real/082_rcu_stall_4x.log"
    ));
    let r = &analyze(log)[0];
    assert_eq!(r.kind, ReportKind::RcuStall);
    assert!(
        r.stack.iter().any(|f| f == "snd_seq_oss_write"),
        "{:?}",
        r.stack
    );
    assert!(!r.corrupted, "{:?}", r.corrupted_reason);
}

#[test]
fn reboot_only_after_the_kernel_ran() {
    // The x86 decompressor's line opens every boot; it is a report (syzbot's "unexpected
    // kernel reboot") only when a running kernel printed before it.
    let boot = "Decompressing Linux... Parsing ELF... done.\nBooting the kernel.\n\
                [    0.000000] Linux version 6.12.0 (rig@build) #1 SMP\n";
    assert!(analyze(boot).is_empty());
    let again = format!("{boot}[    5.123456] rig_bus: probing\n{boot}");
    let r = one(&again);
    assert_eq!(r.title, "unexpected kernel reboot");
    assert_eq!(r.kind, ReportKind::Reboot);
}
