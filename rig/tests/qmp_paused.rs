//! The QMP client against a real QEMU started paused (`-S`, no kernel): it answers at once.

use rig::host::artifacts::RunDir;
use rig::host::board::Board;
use rig::host::process::Supervised;
use rig::machine::qemu::{self, Accel, QemuConfig};
use rig::machine::qmp::{read_transcript, Qmp, QmpError};
use serde_json::json;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

struct Paused {
    qemu: Supervised,
    qmp: Qmp,
    run: RunDir,
    _dir: tempfile::TempDir,
}

fn start(board: Board) -> Paused {
    start_with(board, |_| {})
}

fn start_with(board: Board, adjust: impl FnOnce(&mut QemuConfig)) -> Paused {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create_in(dir.path(), "qmp").unwrap();
    let mut cfg = QemuConfig::new(
        board,
        Accel::Tcg,
        dir.path().join("con"),
        dir.path().join("qmp"),
    );
    cfg.paused = true;
    adjust(&mut cfg);
    let argv = qemu::argv(&cfg);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let mut qemu = Supervised::spawn(cmd, Some(&run.file("qemu.stderr"))).unwrap();
    // The console socket waits for a client before QEMU goes on; connect it first.
    let deadline = Instant::now() + Duration::from_secs(20);
    let connect = |p: &std::path::Path, qemu: &mut Supervised| loop {
        if let Ok(s) = UnixStream::connect(p) {
            return s;
        }
        assert!(
            qemu.try_wait().unwrap().is_none(),
            "QEMU exited: {}",
            qemu.stderr_tail(10)
        );
        assert!(
            Instant::now() < deadline,
            "socket {} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _console = connect(&dir.path().join("con"), &mut qemu);
    let qmp_stream = connect(&dir.path().join("qmp"), &mut qemu);
    let qmp = Qmp::from_stream(qmp_stream, &run.qmp_transcript(), Duration::from_secs(10)).unwrap();
    std::mem::forget(_console);
    Paused {
        qemu,
        qmp,
        run,
        _dir: dir,
    }
}

#[test]
fn handshake_status_and_transcript_on_both_boards() {
    for board in Board::ALL {
        let mut p = start(board);
        let st = p.qmp.query_status().unwrap();
        assert!(!st.running, "{board}: a -S machine must be paused");
        let v = p.qmp.execute_raw("query-version", None).unwrap();
        assert!(v["qemu"]["major"].as_u64().is_some(), "{v}");
        p.qmp.quit().unwrap();
        let st = p.qemu.wait_timeout(Duration::from_secs(10)).unwrap();
        assert!(st.is_some(), "{board}: QEMU did not exit after quit");
        let t = read_transcript(&p.run.qmp_transcript()).unwrap();
        let outs: Vec<&str> = t
            .iter()
            .filter(|e| e["dir"] == "out")
            .filter_map(|e| e["msg"]["execute"].as_str())
            .collect();
        assert_eq!(
            outs,
            ["qmp_capabilities", "query-status", "query-version", "quit"]
        );
        assert!(
            t.iter()
                .any(|e| e["dir"] == "in" && e["msg"].get("QMP").is_some()),
            "greeting recorded"
        );
    }
}

#[test]
fn device_add_and_del_on_a_root_port_waits_for_device_deleted() {
    // With the guest paused, hot-unplug from a PCIe root port needs the guest's cooperation and
    // never completes: device_del must time out cleanly, not hang. (The full cycle with a guest
    // that cooperates is in the VM tests.)
    let mut p = start(Board::X86_64Q35);
    p.qmp
        .device_add(
            "e1000e",
            "nic1",
            &[("bus", json!("rp0")), ("romfile", json!(""))],
        )
        .unwrap();
    let devs = p
        .qmp
        .execute_raw("qom-list", Some(json!({"path": "/machine/peripheral"})))
        .unwrap();
    assert!(
        devs.to_string().contains("\"nic1\""),
        "nic1 not plugged: {devs}"
    );
    let r = p
        .qmp
        .device_del("nic1", Duration::from_secs(2), &mut || None);
    assert!(matches!(r, Err(QmpError::EventTimeout { .. })), "{r:?}");
    let e = p
        .qmp
        .device_add("e1000e", "nic1", &[("bus", json!("rp1"))])
        .unwrap_err();
    assert!(
        e.to_string().contains("nic1"),
        "duplicate id must be refused: {e}"
    );
}

#[test]
fn object_add_del_and_unknown_command_errors() {
    let mut p = start(Board::X86_64Q35);
    p.qmp
        .object_add("memory-backend-ram", "mem1", json!({"size": 128u64 << 20}))
        .unwrap();
    let objs = p
        .qmp
        .execute_raw("qom-list", Some(json!({"path": "/objects"})))
        .unwrap();
    assert!(objs.to_string().contains("mem1"), "{objs}");
    p.qmp.object_del("mem1").unwrap();
    let e = p.qmp.execute_raw("no-such-command", None).unwrap_err();
    assert!(matches!(e, QmpError::Command { .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-command"), "{e}");
}

#[test]
fn wait_event_ends_when_the_abort_check_fires() {
    let mut p = start(Board::Arm64Virt);
    let mut polls = 0;
    let r = p
        .qmp
        .wait_event("DEVICE_DELETED", None, Duration::from_secs(30), &mut || {
            polls += 1;
            (polls > 2).then(|| "QEMU exited".to_string())
        });
    assert!(matches!(r, Err(QmpError::Aborted { .. })), "{r:?}");
}

/// QEMU runs under `-sandbox … spawn=deny`: nothing it is asked to do can start a host program.
/// `migrate` to an `exec:` URI (which makes QEMU run `sh -c` on the host) is refused and the
/// command never runs; the same QEMU without the sandbox runs it (so the test can see it).
#[test]
fn the_sandbox_keeps_qemu_from_starting_host_programs() {
    for sandbox in [true, false] {
        let marker = tempfile::tempdir().unwrap();
        let touched = marker.path().join("touched");
        let mut p = if sandbox {
            start(Board::X86_64Q35)
        } else {
            start_with(Board::X86_64Q35, |c| c.sandbox = false)
        };
        let uri = format!("exec:touch {}", touched.display());
        let r = p.qmp.execute_raw("migrate", Some(json!({ "uri": uri })));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !touched.exists() && Instant::now() < deadline && !sandbox {
            std::thread::sleep(Duration::from_millis(50));
        }
        if sandbox {
            // QEMU refuses the command, or seccomp ends the process that tried: either way
            // nothing ran.
            std::thread::sleep(Duration::from_secs(2));
            assert!(
                !touched.exists(),
                "a sandboxed QEMU ran a host command ({r:?})"
            );
        } else {
            assert!(
                touched.exists(),
                "without the sandbox the command runs ({r:?})"
            );
        }
        p.qemu.terminate();
    }
}
