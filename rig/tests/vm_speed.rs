//! VM tests for the fast paths: the command shell on its virtio console (framing that hostile
//! output and kernel floods cannot break), and repetitions restored from a saved post-boot state.

mod common;

use common::*;
use rig::guest::transport::{TransportError, Via};
use rig::guest::{Guest, GuestError};
use rig::host::board::Board;
use rig::host::events::Events;
use rig::run::{run_scenario, RunOptions, Verdict};
use std::time::Duration;

#[test]
fn the_command_shell_keeps_its_framing_whatever_the_guest_prints() {
    let mut g = boot(Board::Arm64Virt, RIG_KERNEL, "hostile-output");
    // Marker look-alikes (another token, a start marker) in the output change nothing.
    let out = g
        .run(
            "printf 'a\\n\\036E0123 0\\n\\036Sxyz\\n\\036E'; exit 3",
            CMD,
            Via::Hvc,
        )
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, "a\n\u{1e}E0123 0\n\u{1e}Sxyz\n\u{1e}E");
    // NUL and other bytes come back as printed, without a newline added.
    assert_eq!(sh(&mut g, "printf 'a\\000b\\001\\r\\n'"), "a\0b\u{1}\r\n");
    // Three megabytes without a newline.
    let big = sh(&mut g, "head -c 3000000 /dev/zero | tr '\\000' x");
    assert_eq!(big.len(), 3_000_000);
    assert!(big.bytes().all(|b| b == b'x'));
    // Bytes the terminal would act on (^C, ^D, ^U, ^\, DEL) travel inside the command.
    let ctl: String = [3u8, 4, 21, 28, 127, b'z']
        .iter()
        .map(|&b| char::from(b))
        .collect();
    assert_eq!(sh(&mut g, &format!("printf %s '{ctl}'")), ctl);
    // A command far over the terminal's line limit.
    let long = "y".repeat(20_000);
    assert_eq!(sh(&mut g, &format!("echo {long}")), format!("{long}\n"));
    // A syntax error fails the command, not the shell.
    let bad = g.run("echo 'unterminated", CMD, Via::Hvc).unwrap();
    assert_ne!(bad.status, 0);
    // Kernel messages printed while the command writes never mix into its output: they go to
    // the kernel console (and console.log), not to the shell's channel.
    let want: String = (1..=3000).map(|i| format!("{i}\n")).collect();
    let flood = sh(
        &mut g,
        "(i=0; while [ $i -lt 200 ]; do echo rig-flood-$i > /dev/kmsg; i=$((i+1)); done) & seq 1 3000; wait",
    );
    assert_eq!(flood, want);
    assert_eq!(sh(&mut g, "echo still here"), "still here\n");
    // A timeout interrupts the command; its late end marker (its own token) is never taken for
    // the next command's, whose output is its own.
    let err = g
        .run("echo started; sleep 100", Duration::from_secs(2), Via::Hvc)
        .unwrap_err();
    assert!(
        matches!(&err, GuestError::Transport { source, .. } if matches!(**source, TransportError::Timeout { .. })),
        "{err:?}"
    );
    assert_eq!(sh(&mut g, "echo next"), "next\n");
    let dir = g.vm.run_dir().path().to_path_buf();
    g.shutdown();
    let log = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert!(
        log.contains("rig-flood-199"),
        "the kernel console lost the flood"
    );
    let shell_log = std::fs::read(dir.join("shell.log")).unwrap();
    assert!(
        !String::from_utf8_lossy(&shell_log).contains("rig-flood"),
        "kernel text reached the shell's channel"
    );
}

#[test]
fn restored_guests_start_from_the_saved_state_every_time() {
    let machine = prepare(options(Board::Arm64Virt, RIG_KERNEL));
    let mut g0 = boot_prepared(&machine, "snapshot-template");
    sh(&mut g0, "echo saved > /tmp/base");
    let state = g0.vm.run_dir().file("state.bin");
    let snap = g0.vm.save_snapshot(&state).unwrap();
    let pid0 = g0.vm.qemu_pid();
    g0.shutdown();
    assert!(!alive(pid0));
    let mut restored = machine.clone();
    restored.spec.restore_from(snap.clone()).unwrap();
    let mut seen_random = Vec::new();
    for run in 1..=2 {
        let rd = run_dir(&format!("snapshot-restored-{run}"));
        let mut g = Guest::boot(&restored, &rd, &Events::none())
            .unwrap_or_else(|e| panic!("restore {run}: {e:?}"));
        // The saved guest's state, and nothing a previous restored run did.
        assert_eq!(sh(&mut g, "cat /tmp/base"), "saved\n");
        assert_eq!(
            sh(&mut g, "[ -e /tmp/from-a-run ] || echo clean"),
            "clean\n"
        );
        sh(&mut g, &format!("echo {run} > /tmp/from-a-run"));
        assert_eq!(g.run("exit 7", CMD, Via::Hvc).unwrap().status, 7);
        seen_random.push(sh(&mut g, "head -c 16 /dev/urandom | od -An -tx1"));
        let pid = g.vm.qemu_pid();
        g.shutdown();
        assert!(!alive(pid), "restored QEMU {pid} survived");
        let log = std::fs::read_to_string(rd.console_log()).unwrap();
        assert!(log.contains("Run /init"), "the saved boot's log is missing");
        assert!(log.contains("restored from the saved state"));
    }
    // Fresh entropy was mixed in after each restore and the CRNG reseeded from it: the runs do
    // not read the same bytes (without the reseed wait they did).
    assert_ne!(seen_random[0], seen_random[1]);
    // ssh is refused on restored guests, and a restore on guests with ssh.
    let mut with_ssh = restored.spec.clone();
    assert!(with_ssh.set_ssh(true).is_err());
    let mut with_ssh = machine.spec.clone();
    with_ssh.set_ssh(true).unwrap();
    assert!(with_ssh.restore_from(snap).is_err());
}

#[test]
fn the_positive_control_still_fails_every_restored_run() {
    let sc = rig::scenario::load(
        &rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml"),
        &rig::repo_root().join("overlays"),
    )
    .unwrap();
    let mut opts = RunOptions::new(Board::Arm64Virt, &rig_flavor("known-bad-devlink-wait"));
    opts.auto_setup = false;
    opts.repeat = 2;
    opts.snapshot = true;
    let rd = run_dir("snapshot-known-bad");
    let r = run_scenario(&sc, &opts, &cache(), &rd, &Events::none()).unwrap();
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.render());
    let leak = r
        .reproduced
        .iter()
        .find(|(t, _)| t.starts_with("OF: ERROR: memory leak in /"));
    assert_eq!(leak.map(|(_, n)| *n), Some(2), "{}", r.render());
    // Each repetition was restored (a boot of well under the full boot's time is not asserted:
    // timing is for benchmarks), and the saved state was removed afterwards.
    assert!(!rd.path().join("saved-boot/state.bin").exists());
}
