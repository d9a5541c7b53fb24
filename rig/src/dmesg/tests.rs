//! Analyzer tests over the log fixtures in rig/tests/fixtures/logs (see its README).

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/logs/",
            $name
        ))
    };
}

/// (title, kind, guilty frame) of every report, in log order.
fn summary(log: &str) -> Vec<(String, ReportKind, Option<String>)> {
    analyze(log)
        .into_iter()
        .map(|r| (r.title, r.kind, r.guilty_frame))
        .collect()
}

fn one(log: &str) -> Report {
    let r = analyze(log);
    assert_eq!(
        r.len(),
        1,
        "expected one report, got {:#?}",
        r.iter().map(|r| &r.title).collect::<Vec<_>>()
    );
    r.into_iter().next().unwrap()
}

fn check(log: &str, title: &str, kind: ReportKind, guilty: Option<&str>) -> Report {
    let r = one(log);
    assert_eq!(r.title, title);
    assert_eq!(r.kind, kind);
    assert_eq!(r.guilty_frame.as_deref(), guilty);
    r
}

fn s(t: &str, k: ReportKind, g: Option<&str>) -> (String, ReportKind, Option<String>) {
    (t.to_string(), k, g.map(str::to_string))
}

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

// ---- interleaving, splices, truncation, dt-test ----

#[test]
fn interleaved_by_caller_tag() {
    let all = analyze(fixture!(
        "interleaved_two_warnings_caller_tags_x86_64_6.12.log"
    ));
    let titles: Vec<_> = all.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "WARNING: refcount bug in of_node_put",
            "WARNING in devm_kfree"
        ]
    );
    // Each report holds exactly its own lines.
    assert!(!all[0].text.contains("devm_kfree"));
    assert!(!all[1].text.contains("refcount"));
    assert_eq!(
        all[0].text,
        one(fixture!("refcount_of_node_put_x86_64_6.12.log")).text
    );
    assert_eq!(
        all[1].text,
        one(fixture!("warning_generic_x86_64_6.1.log")).text
    );
}

#[test]
fn user_output_and_one_line_report_inside_others() {
    let all = analyze(fixture!(
        "interleaved_user_output_and_of_error_arm64_6.12.log"
    ));
    let got: Vec<_> = all.iter().map(|r| (r.title.as_str(), r.kind)).collect();
    assert_eq!(
        got,
        vec![
            ("INFO: task hung in rig_hotplug_work", ReportKind::HungTask),
            ("WARNING in rig_dev_remove", ReportKind::Warning),
            (
                "OF: ERROR: memory leak before free overlay changeset in /soc/rig-bus@N/rig-dev@N",
                ReportKind::OfError
            ),
        ]
    );
    assert!(!all[0].text.contains("PING") && !all[0].text.contains("root@rig"));
    assert!(all[0].text.contains("rig_hotplug_work+0x44/0x120"));
    assert!(!all[1].text.contains("OF: ERROR"));
    assert!(all[1].stack.contains(&"device_remove".to_string()));
    assert!(all[1]
        .text
        .ends_with("---[ end trace 0000000000000000 ]---"));
}

#[test]
fn mid_line_splices() {
    let r = check(
        fixture!("mid_line_splice_x86_64_6.12.log"),
        "WARNING: refcount bug in of_node_put",
        ReportKind::Refcount,
        Some("of_node_put"),
    );
    assert!(r.text.starts_with("------------[ cut here ]------------"));
    assert!(!r.text.contains("root@rig") && !r.text.contains("crng"));
    assert!(r.text.contains("Modules linked in: rig_of_test rig_\n"));
}

#[test]
fn truncated_report_still_reported() {
    let r = check(
        fixture!("truncated_kasan_x86_64_6.12.log"),
        "KASAN: slab-use-after-free Read in rig_port_release",
        ReportKind::Kasan,
        Some("rig_port_release"),
    );
    assert!(r.text.ends_with(" vfs_wr"));
}

#[test]
fn dt_test_expected_messages_are_not_reports() {
    assert_eq!(
        summary(fixture!("of_unittest_expect_arm64_6.12.log")),
        vec![s(
            "OF: ERROR: memory leak in /soc/rig-bus@N/rig-dev@N",
            ReportKind::OfError,
            None
        )]
    );
}

#[test]
fn clean_boots_have_no_reports() {
    for log in [
        fixture!("boot_clean_x86_64.log"),
        fixture!("boot_clean_arm64.log"),
    ] {
        assert!(log.lines().count() >= 100);
        assert_eq!(analyze(log), vec![]);
    }
}

#[test]
fn titles_are_stable_across_runs() {
    // Same bug, different addresses, offsets, PIDs, CPUs and timestamps.
    let a = fixture!("refcount_of_node_put_x86_64_6.12.log");
    let b = a
        .replace("+0x3c/0x60", "+0x44/0x70")
        .replace("PID: 245", "PID: 912")
        .replace("CPU: 1", "CPU: 0")
        .replace("ffff888", "ffff999")
        .replace("[    3.", "[   97.");
    assert_eq!(one(a).title, one(&b).title);
}

// ---- incremental path ----

fn all_fixtures() -> Vec<&'static str> {
    vec![
        fixture!("refcount_of_node_put_x86_64_6.12.log"),
        fixture!("interleaved_two_warnings_caller_tags_x86_64_6.12.log"),
        fixture!("interleaved_user_output_and_of_error_arm64_6.12.log"),
        fixture!("mid_line_splice_x86_64_6.12.log"),
        fixture!("truncated_kasan_x86_64_6.12.log"),
        fixture!("of_unittest_expect_arm64_6.12.log"),
        fixture!("kmemleak_cat_x86_64_6.12.log"),
        fixture!("list_del_corruption_bug_x86_64_6.12.log"),
        fixture!("null_deref_panic_arm64_6.12.log"),
        fixture!("lockdep_circular_x86_64_6.12.log"),
        fixture!("of_error_bad_put_dump_x86_64_6.12.log"),
        fixture!("hung_task_x86_64_6.1.log"),
    ]
}

/// A tiny deterministic PRNG (xorshift) so the test needs no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn incremental_chunks_give_the_same_reports() {
    let whole: String = all_fixtures().concat();
    let expected = analyze(&whole);
    assert!(expected.len() >= 15, "{}", expected.len());
    for seed in [1u64, 7, 42, 1234, 99991] {
        let mut rng = Rng(seed);
        let mut a = Analyzer::new();
        let mut got = Vec::new();
        let b = whole.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let mut j = (i + 1 + (rng.next() % 97) as usize).min(b.len());
            while !whole.is_char_boundary(j) {
                j += 1;
            }
            got.extend(a.feed(&whole[i..j]));
            i = j;
        }
        got.extend(a.finish());
        got.sort_by_key(|r| r.line);
        assert_eq!(got, expected, "seed {seed}");
    }
}

#[test]
fn warning_reported_the_moment_it_ends() {
    let log = fixture!("refcount_of_node_put_arm64_6.12.log");
    let end = log.find("---[ end trace").unwrap();
    let nl = end + log[end..].find('\n').unwrap() + 1;
    let mut a = Analyzer::new();
    assert!(a.feed(&log[..end]).is_empty());
    let got = a.feed(&log[end..nl]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, ReportKind::Refcount);
}

#[test]
fn flush_closes_open_reports() {
    let log = fixture!("of_error_overlay_leak_x86_64_6.12.log");
    let cut = log
        .find("attach overlay node /soc/rig-bus@10000\n")
        .unwrap();
    let mut a = Analyzer::new();
    let first = a.feed(&log[..cut + 40]);
    assert_eq!(
        first.len(),
        1,
        "the first OF error closed when the second began"
    );
    let flushed = a.flush();
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].title, "OF: ERROR: memory leak in /soc/rig-bus@N");
    assert!(a.finish().is_empty());
}

// ---- rendering and matching ----

#[test]
fn json_and_text_rendering() {
    let reports = analyze(fixture!("gpf_kasan_null_x86_64_6.12.log"));
    let v = render_json(&reports);
    let r0 = &v["reports"][0];
    assert_eq!(r0["kind"], "general_protection");
    assert_eq!(r0["title"], "general protection fault in rig_port_stats");
    assert_eq!(r0["guilty_frame"], "rig_port_stats");
    assert!(r0["line"].as_u64().unwrap() > 0);
    assert!(r0["timestamp"].as_f64().unwrap() > 0.0);
    assert!(r0["stack"].as_array().unwrap().len() > 3);
    let t = render_text(&reports);
    assert!(t.contains("=== general protection fault in rig_port_stats\n"));
    assert!(t.contains("kind:   general_protection\n"));
    assert!(t.contains("guilty: rig_port_stats\n"));
    assert!(t.contains("    RIP: 0010:rig_port_stats+0x3a/0x120\n"));
    assert_eq!(render_text(&[]), "no reports\n");
}

#[test]
fn title_patterns() {
    assert!(title_matches("WARNING in foo", "WARNING in foo"));
    assert!(!title_matches("WARNING in foo", "WARNING in foo_bar"));
    assert!(title_matches(
        "/^OF: ERROR: memory leak in /testcase-data/",
        "OF: ERROR: memory leak in /testcase-data/x"
    ));
    assert!(title_matches(
        "/refcount bug/",
        "WARNING: refcount bug in x"
    ));
    assert!(!title_matches("/^refcount/", "WARNING: refcount bug in x"));
    assert!(!title_matches("/([/", "anything"));
    assert!(
        title_matches("/", "/"),
        "too short for a regex: exact match"
    );
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
fn dmesg_human_readable_time() {
    let r = check(
        fixture!("dmesg_human_time_refcount_arm64_6.12.log"),
        "WARNING: refcount bug in of_node_put",
        ReportKind::Refcount,
        Some("of_node_put"),
    );
    assert_eq!(r.timestamp, None);
    assert!(r
        .text
        .starts_with("------------[ cut here ]------------\nrefcount_t: underflow"));
}

#[test]
fn one_line_report_between_cut_here_and_warning() {
    let log = "[    5.000000] ------------[ cut here ]------------\n\
               [    5.000001] OF: ERROR: memory leak before free overlay changeset,  /a/b@1\n\
               [    5.000002] refcount_t: saturated; leaking memory.\n\
               [    5.000003] WARNING: CPU: 0 PID: 1 at lib/refcount.c:22 refcount_warn_saturate+0x1/0x2\n\
               [    5.000004] Call trace:\n\
               [    5.000005]  refcount_warn_saturate+0x1/0x2\n\
               [    5.000006]  kref_get+0x1/0x2\n\
               [    5.000007]  rig_get+0x1/0x2\n\
               [    5.000008] ---[ end trace 0000000000000000 ]---\n";
    assert_eq!(
        summary(log),
        vec![
            s(
                "WARNING: refcount bug in rig_get",
                ReportKind::Refcount,
                Some("rig_get")
            ),
            s(
                "OF: ERROR: memory leak before free overlay changeset in /a/b@N",
                ReportKind::OfError,
                None
            ),
        ]
    );
}

#[test]
fn user_output_cannot_fake_a_report_in_a_timestamped_log() {
    let log = "[    1.000000] ------------[ cut here ]------------\n\
               [    1.000001] WARNING: CPU: 0 PID: 1 at drivers/x.c:1 real_bug+0x1/0x2\n\
               [    1.000001] RIP: 0010:real_bug+0x1/0x2\n\
               [    1.000002] ---[ end trace 0000000000000000 ]---\n\
               BUG: this is just a script printing\n\
               Kernel panic - not syncing: also just text\n";
    assert_eq!(
        summary(log),
        vec![s(
            "WARNING in real_bug",
            ReportKind::Warning,
            Some("real_bug")
        )]
    );
}

#[test]
fn kernel_clock_gap_closes_a_report_without_terminator() {
    let log = "[   10.000000] INFO: task sh:1 blocked for more than 120 seconds.\n\
               [   10.000001] Call Trace:\n\
               [   10.000002]  <TASK>\n\
               [   10.000003]  __schedule+0x1/0x2\n\
               [   10.000004]  rig_hang+0x1/0x2\n";
    let mut a = Analyzer::new();
    assert!(a.feed(log).is_empty(), "still open: the stack may go on");
    let got = a.feed("[   25.000000] [drm] unrelated\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].title, "INFO: task hung in rig_hang");
}

#[test]
fn byte_chunks_with_split_utf8_and_invalid_bytes() {
    let mut log = String::from("[    1.000000] rig: caf\u{e9} \u{1F980} ready\n");
    log.push_str(fixture!("kasan_uaf_write_arm64_6.1.log"));
    let mut bytes = log.clone().into_bytes();
    bytes.extend_from_slice(b"[    9.000000] junk \xff\xfe here\n");
    let expected = analyze(&log);
    assert_eq!(expected.len(), 1);
    for step in [1usize, 2, 3, 5, 64] {
        let mut a = Analyzer::new();
        let mut got = Vec::new();
        for c in bytes.chunks(step) {
            got.extend(a.feed_bytes(c));
        }
        got.extend(a.finish());
        assert_eq!(got, expected, "chunk size {step}");
    }
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
fn never_panics_on_mangled_input() {
    let whole: String = all_fixtures().concat();
    let lines: Vec<&str> = whole.lines().collect();
    let mut rng = Rng(0x5eed);
    for _ in 0..40 {
        // Shuffled lines, some cut at random byte positions, some with noise spliced in.
        let mut s = Vec::new();
        for _ in 0..400 {
            let l = lines[(rng.next() as usize) % lines.len()].as_bytes();
            let cut = (rng.next() as usize) % (l.len() + 1);
            s.extend_from_slice(&l[..cut]);
            match rng.next() % 4 {
                0 => s.extend_from_slice(b"\xf0\x9f[  1.000000]\xc3"),
                1 => s.extend_from_slice(b"[T1]\r"),
                _ => {}
            }
            s.push(b'\n');
        }
        let mut a = Analyzer::new();
        for c in s.chunks(1 + (rng.next() as usize) % 300) {
            for r in a.feed_bytes(c) {
                assert!(!r.title.is_empty());
            }
        }
        let _ = a.flush();
        let _ = a.finish();
    }
}

#[test]
fn report_without_terminator_is_capped() {
    let kasan = fixture!("kasan_slab_uaf_x86_64_6.12.log");
    let cut = kasan.rfind("==================").unwrap();
    let mut log = kasan[..cut].to_string();
    for i in 0..5000 {
        log.push_str(&format!("[    4.{i:06}] rig: chatter {i}\n"));
    }
    let r = one(&log);
    assert!(r.title.starts_with("KASAN: slab-use-after-free Read"));
    assert!(r.text.lines().count() <= 800, "{}", r.text.lines().count());
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
fn shell_echo_of_a_fake_splat_is_not_a_report() {
    // scenarios/fake-warning.yaml types this loop on the serial console: the shell echoes the
    // command (user output), then the kernel prints the records written to /dev/kmsg.
    let echo = "root@rig:~# for l in '------------[ cut here ]------------' 'WARNING: CPU: 0 PID: 1 at drivers/base/core.c:123 device_del+0x10/0x20' 'kernel BUG at x.c:1!'; do printf '<4>%s\\n' \"$l\" > /dev/kmsg; done";
    let mut log = String::from("[    0.000000][    T0] Linux version 6.12.9\n");
    log.push_str(echo);
    log.push('\n');
    // Same text as a line of its own, without the prompt: still user output.
    log.push_str("WARNING: CPU: 0 PID: 1 at drivers/base/core.c:123 device_del+0x10/0x20\n");
    for (i, l) in [
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 1 at drivers/base/core.c:123 device_del+0x10/0x20",
        "Modules linked in:",
        "CPU: 0 UID: 0 PID: 1 Comm: sh Not tainted 6.12.0-rig #1",
        "RIP: 0010:device_del+0x10/0x20",
        "Call Trace:",
        " <TASK>",
        " device_unregister+0x1c/0x60",
        " rig_fake_teardown+0x2a/0x40",
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
    ]
    .iter()
    .enumerate()
    {
        log.push_str(&format!("[   12.{:06}][  T301] {l}\n", i * 13));
    }
    let r = one(&log);
    // device_del and device_unregister are device-model machinery.
    assert_eq!(r.title, "WARNING in rig_fake_teardown");
    assert_eq!(r.line, 4);
    assert_eq!(
        r.stack,
        ["device_del", "device_unregister", "rig_fake_teardown"]
    );
}
