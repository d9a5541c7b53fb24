//! Interleaved, spliced, truncated and mangled logs; the incremental (chunked) path.

use super::*;

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
