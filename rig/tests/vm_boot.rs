//! VM tests: real QEMU, real Debian kernels, through rig's own boot path.

mod common;

use common::*;
use rig::guest::transport::Via;
use rig::host::board::Board;
use std::time::{Duration, Instant};

#[test]
fn both_boards_boot_debian_and_report_their_arch() {
    for board in Board::ALL {
        let mut g = boot(board, "debian-6.1", "uname");
        let pid = g.vm.qemu_pid();
        assert_eq!(
            sh(&mut g, "uname -m").trim(),
            board.arch().uname(),
            "{board}"
        );
        // Exit status and stdout come back per command; stderr is merged on hvc.
        let out = g
            .run("echo out; echo err >&2; exit 7", CMD, Via::Hvc)
            .unwrap();
        assert_eq!(out.status, 7);
        assert_eq!(out.stdout, "out\nerr\n");
        // Output that itself looks like kernel lines is not mistaken for console noise.
        let fake = "[    1.000000] Linux version 6.1.0 (fake)\n[    1.000001] second line\n";
        assert_eq!(
            sh(&mut g, &format!("printf '{}'", fake.replace('\n', "\\n"))),
            fake
        );
        // ...and neither is real kernel output.
        assert!(
            sh(&mut g, "dmesg | tail -3").contains(']'),
            "{board}: dmesg came back empty"
        );
        let run_dir = g.vm.run_dir().path().to_path_buf();
        g.shutdown();
        assert!(!alive(pid), "{board}: QEMU {pid} survived shutdown");
        for f in ["console.log", "qmp.jsonl", "qemu.argv", "timings.json"] {
            assert!(run_dir.join(f).exists(), "{board}: artifact {f} missing");
        }
        let log = std::fs::read_to_string(run_dir.join("console.log")).unwrap();
        assert!(
            log.contains("RIG-READY"),
            "{board}: console.log lacks the boot"
        );
    }
}

/// Waits in the guest until the PCI device `vendor:device` is present (`want`) or gone.
fn wait_pci(g: &mut rig::guest::Guest, id: &str, want: bool) {
    let (v, d) = id.split_once(':').unwrap();
    let test = format!(
        "for f in /sys/bus/pci/devices/*; do [ \"$(cat $f/vendor)\" = 0x{v} ] && [ \"$(cat $f/device)\" = 0x{d} ] && exit 0; done; exit 1"
    );
    let cond = if want { "" } else { "!" };
    let script = format!(
        "i=0; while [ $i -lt 300 ]; do if {cond} sh -c '{test}'; then exit 0; fi; i=$((i+1)); sleep 0.1; done; exit 1"
    );
    let out = g.run(&script, CMD, Via::Hvc).unwrap();
    let state = if want { "appear" } else { "go" };
    assert_eq!(
        out.status, 0,
        "PCI device {id} did not {state} in the guest"
    );
}

#[test]
fn pcie_nic_hot_add_and_remove_on_both_boards() {
    for board in Board::ALL {
        let mut g = boot(board, "debian-6.1", "pcie-hotplug");
        wait_pci(&mut g, "8086:10d3", false);
        g.vm.pci_add("e1000e", "nic1", 0).unwrap();
        wait_pci(&mut g, "8086:10d3", true);
        // The driver bound and made a netdev (e1000e is preloaded; no udev in the guest).
        let ifs = sh(&mut g, "i=0; while [ $i -lt 100 ]; do ls /sys/class/net | grep -v -e lo -e eth0 && exit 0; i=$((i+1)); sleep 0.1; done; exit 1");
        assert!(
            !ifs.trim().is_empty(),
            "{board}: no netdev for the hot-added NIC"
        );
        let start = Instant::now();
        g.vm.device_del("nic1").unwrap();
        let took = start.elapsed();
        wait_pci(&mut g, "8086:10d3", false);
        // The QMP transcript has the DEVICE_DELETED event for it.
        let t = rig::machine::qmp::read_transcript(&g.vm.run_dir().qmp_transcript()).unwrap();
        assert!(
            t.iter()
                .any(|e| e["msg"]["event"] == "DEVICE_DELETED"
                    && e["msg"]["data"]["device"] == "nic1"),
            "{board}: no DEVICE_DELETED for nic1 in the transcript"
        );
        eprintln!("{board}: unplug took {took:?}");
        g.shutdown();
    }
}

#[test]
fn x86_dimm_hot_add_online_offline_remove() {
    let mut g = boot(Board::X86_64Q35, "debian-6.1", "dimm");
    let before = sh(&mut g, "ls /sys/devices/system/memory | grep -c '^memory'");
    g.vm.qmp()
        .object_add(
            "memory-backend-ram",
            "mem1",
            serde_json::json!({"size": 256u64 << 20}),
        )
        .unwrap();
    g.vm.qmp()
        .device_add("pc-dimm", "dimm1", &[("memdev", serde_json::json!("mem1"))])
        .unwrap();
    // 256 MiB = two 128 MiB blocks, which arrive offline (memhp_default_state=offline).
    let blocks = sh(
        &mut g,
        &format!(
            "i=0; while [ $i -lt 300 ]; do n=$(ls /sys/devices/system/memory | grep -c '^memory'); \
             [ $n -ge $(({} + 2)) ] && break; i=$((i+1)); sleep 0.1; done; \
             for b in /sys/devices/system/memory/memory*; do [ \"$(cat $b/state)\" = offline ] && basename $b; done; true",
            before.trim()
        ),
    );
    let blocks: Vec<&str> = blocks.split_whitespace().collect();
    assert_eq!(
        blocks.len(),
        2,
        "expected two new offline blocks, got {blocks:?}"
    );
    let free_before: u64 = sh(&mut g, "awk '/MemTotal/ {print $2}' /proc/meminfo")
        .trim()
        .parse()
        .unwrap();
    for b in &blocks {
        sh(
            &mut g,
            &format!("echo online_movable > /sys/devices/system/memory/{b}/state"),
        );
        assert_eq!(
            sh(&mut g, &format!("cat /sys/devices/system/memory/{b}/state")).trim(),
            "online"
        );
    }
    let free_online: u64 = sh(&mut g, "awk '/MemTotal/ {print $2}' /proc/meminfo")
        .trim()
        .parse()
        .unwrap();
    assert!(
        free_online >= free_before + 250 * 1024,
        "MemTotal did not grow: {free_before} -> {free_online}"
    );
    for b in &blocks {
        sh(
            &mut g,
            &format!("echo offline > /sys/devices/system/memory/{b}/state"),
        );
        assert_eq!(
            sh(&mut g, &format!("cat /sys/devices/system/memory/{b}/state")).trim(),
            "offline"
        );
    }
    g.vm.device_del("dimm1").unwrap();
    g.vm.qmp().object_del("mem1").unwrap();
    let after = sh(&mut g, "ls /sys/devices/system/memory | grep -c '^memory'");
    assert_eq!(
        after.trim(),
        before.trim(),
        "memory blocks not removed after unplug"
    );
    g.shutdown();
}

#[test]
fn qemu_that_exits_early_is_reported_at_once_with_its_stderr() {
    let mut opts = options(Board::X86_64Q35, "debian-6.1");
    opts.memory_mib = 8192; // more than maxmem: QEMU refuses to start
    let rd = run_dir("early-exit");
    let start = Instant::now();
    let machine = prepare(opts);
    let err = match rig::guest::Guest::boot(&machine, &rd, &rig::host::events::Events::none()) {
        Ok(_) => panic!("boot with memory > maxmem must fail"),
        Err(e) => e,
    };
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    let msg = err.to_string();
    assert!(msg.contains("QEMU exited"), "{msg}");
    assert!(
        msg.contains("maxmem") || msg.contains("ram size"),
        "QEMU's own words missing: {msg}"
    );
    assert!(
        msg.contains(&rd.path().display().to_string()),
        "artifacts not named: {msg}"
    );
}

#[test]
fn guest_panic_ends_the_command_with_the_console_tail() {
    for board in Board::ALL {
        let mut g = boot(board, "debian-6.1", "panic");
        let pid = g.vm.qemu_pid();
        let start = Instant::now();
        let err = g
            .run("echo c > /proc/sysrq-trigger; sleep 100", CMD, Via::Hvc)
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{board}: took {:?}",
            start.elapsed()
        );
        let msg = format!("{err:?}");
        assert!(
            msg.contains("Kernel panic") || msg.contains("sysrq"),
            "{board}: {msg}"
        );
        let log = std::fs::read_to_string(g.vm.run_dir().console_log()).unwrap();
        assert!(
            log.contains("Kernel panic - not syncing"),
            "{board}: no panic in console.log"
        );
        g.shutdown();
        assert!(!alive(pid));
    }
}

#[test]
fn ctrl_c_on_rig_leaves_no_qemu_behind() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args([
            "-v",
            "boot",
            "--board",
            "arm64-virt",
            "--kernel",
            "debian-6.1",
            "--no-setup",
            "--",
            "sleep",
            "300",
        ])
        .env("RIG_ARTIFACTS", runs_dir())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut qemu_pid = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("rig: qemu pid ") {
            qemu_pid = rest.split(':').next().and_then(|p| p.parse::<u32>().ok());
        }
        if line.contains("guest ready") {
            break;
        }
    }
    let qemu_pid = qemu_pid.expect("rig -v prints the QEMU pid");
    assert!(alive(qemu_pid));
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("a pid"),
        rustix::process::Signal::INT,
    );
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130), "rig should exit 128+SIGINT");
    assert!(!alive(qemu_pid), "QEMU {qemu_pid} survived Ctrl-C");
}

#[test]
fn background_jobs_outliving_their_command_leave_the_console_alive() {
    // Orphaned jobs are reparented to PID 1; if the console shell were PID 1 their SIGCHLD
    // would end its read of the console and the guest would panic ("Attempted to kill init").
    let mut g = boot(Board::X86_64Q35, "debian-6.1", "orphans");
    for round in 0..3 {
        sh(
            &mut g,
            "for i in 1 2 3; do (sleep 0.2; exit 1) </dev/null >/dev/null 2>&1 & done",
        );
        let out = sh(&mut g, "sleep 1; echo alive");
        assert_eq!(out, "alive\n", "round {round}");
    }
    g.shutdown();
}

#[test]
fn a_timed_out_command_leaves_the_console_usable() {
    let mut g = boot(Board::Arm64Virt, "debian-6.1", "cmd-timeout");
    let start = Instant::now();
    let err = g
        .run("echo started; sleep 100", Duration::from_secs(3), Via::Hvc)
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    assert!(format!("{err:?}").contains("Timeout"), "{err:?}");
    // rig interrupted it; the next command runs normally and its output is its own.
    assert_eq!(sh(&mut g, "echo next"), "next\n");
    assert_eq!(sh(&mut g, "echo again; exit 0"), "again\n");
    g.shutdown();
}

/// `rig boot --no-setup --board arm64-virt --kernel debian-6.1 ARGS…` through the built binary.
fn rig_boot_arm64(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rig"))
        .args([
            "boot",
            "--no-setup",
            "--board",
            "arm64-virt",
            "--kernel",
            "debian-6.1",
        ])
        .args(args)
        .env("RIG_ARTIFACTS", runs_dir())
        .output()
        .unwrap()
}

/// `rig boot -- CMD ARGS…` runs exactly that argv in the guest, over hvc and ssh alike: each
/// argument stays one word, the guest command's status is rig's, and stdout is its output only.
#[test]
fn rig_boot_runs_the_argv_as_given_and_returns_its_status() {
    for transport in ["hvc", "ssh"] {
        let out = rig_boot_arm64(&[
            "--transport",
            transport,
            "--",
            "sh",
            "-c",
            "echo OUT \"$0\"; exit 3",
            "it's one word",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{transport}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "OUT it's one word\n",
            "{transport}: stdout must hold the command's output only; stderr: {stderr}"
        );
    }
}

/// arm64 virt boots with QEMU's own device tree minus its 32 virtio-mmio transports (rig's
/// devices are all PCI): the guest sees none of them, and still the rest of the machine and what
/// QEMU writes into the tree at load (`/chosen`: the command line rig gave).
#[test]
fn arm64_boots_without_qemus_virtio_mmio_transports() {
    let out = rig_boot_arm64(&[
        "--",
        "sh",
        "-c",
        "ls -1 /proc/device-tree; tr '\\0' '\\n' </proc/device-tree/chosen/bootargs",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let nodes: Vec<&str> = stdout.lines().collect();
    assert!(
        !nodes.iter().any(|n| n.starts_with("virtio_mmio")),
        "virtio_mmio nodes left: {stdout}"
    );
    for kept in ["pl011@", "pcie@", "memory@", "chosen", "cpus"] {
        assert!(
            nodes.iter().any(|n| n.starts_with(kept)),
            "{kept} missing: {stdout}"
        );
    }
    assert!(stdout.contains("console=ttyAMA0"), "bootargs: {stdout}");
    assert!(!stderr.contains("own device tree"), "fell back: {stderr}");
}
