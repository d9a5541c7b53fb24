//! Every verdict in its class, on real guests (debian-6.1, arm64-virt, the fast board under TCG
//! here): a host that stops QEMU, a broken ssh channel, a slow boot, rig's own overhead and a
//! long wait are never filed as the kernel's failure; a kernel that hangs at boot is; a guest
//! reaches no host service through its network; a killed run keeps the repetitions it finished;
//! a failed command's escape sequences never reach the user's terminal.

mod common;

use common::*;
use rig::host::board::Board;
use rig::host::events::{Event, EventSink, Events};
use rig::run::{run_scenario, RunOptions, ScenarioResult, Verdict};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BOARD: Board = Board::Arm64Virt;
const KERNEL: &str = "debian-6.1";

/// A scenario text in a file of its own (for the `rig` binary).
fn scenario_file(label: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(format!("{label}.yaml"));
    std::fs::write(&p, text).unwrap();
    (d, p)
}

/// Runs a scenario text in this process, events going to `sink`.
fn run_text(text: &str, label: &str, sink: Option<Arc<dyn EventSink>>) -> ScenarioResult {
    let sc = rig::scenario::parse_str(text, label, &rig::repo_root().join("overlays"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut opts = RunOptions::new(BOARD, KERNEL);
    opts.auto_setup = false;
    let rd = run_dir(&format!("verdict-{label}"));
    let events = match sink {
        Some(s) => Events::none().with(s),
        None => Events::none(),
    };
    run_scenario(&sc, &opts, &cache(), &rd, &events).unwrap_or_else(|e| panic!("{e}"))
}

fn failures(r: &ScenarioResult) -> String {
    r.render()
}

/// A guest command that prints an OSC 52 sequence (which sets the terminal's clipboard) and
/// fails: `rig run` says so with the sequence shown as text, and no escape byte on stdout or
/// stderr.
#[test]
fn a_failed_commands_escape_sequences_never_reach_the_terminal() {
    let (_d, file) = scenario_file(
        "osc52",
        "name: osc52\nsteps:\n  - guest: {run: \"printf '\\\\033]52;c;aGk=\\\\007\\\\033[2J'; exit 3\"}\n",
    );
    let out = rig_run_output(&file, BOARD, KERNEL, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !bytes.contains(&0x1b) && !bytes.contains(&0x07),
            "{name} carries raw control bytes: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\\x1b]52;c;aGk="), "{stdout}");
}

/// A listener this test opens on the host's 127.0.0.1 is what QEMU's user network shows the
/// guest as 10.0.2.2: without `requires: [outbound_network]` the guest cannot reach it; with
/// it, it can (so the test can see a connection when there is one).
#[test]
fn the_guest_reaches_no_host_service_unless_the_scenario_asks() {
    for outbound in [false, true] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requires = if outbound {
            "requires: [outbound_network]\n"
        } else {
            ""
        };
        let text = format!(
            "name: net-{outbound}\n{requires}steps:\n  - guest:\n      run: \"echo hello | \
             timeout 10 nc 10.0.2.2 {port}; echo nc=$?\"\n      timeout: 60s\n"
        );
        let r = run_text(&text, &format!("net-{outbound}"), None);
        assert_eq!(r.verdict, Verdict::Pass, "{}", failures(&r));
        let connected = listener.accept().is_ok();
        assert_eq!(
            connected,
            outbound,
            "outbound_network {outbound}: the host listener was{} reached",
            if connected { "" } else { " not" }
        );
    }
}

/// The scenario's timeout is its steps': a boot of several seconds under TCG does not cut a
/// command that fits in it, and the run passes.
#[test]
fn a_slow_boot_does_not_eat_the_scenarios_time() {
    let r = run_text(
        "name: boot-eats\ntimeout: 9s\nsteps:\n  - guest: {run: sleep 6, timeout: 60s}\n",
        "boot-eats",
        None,
    );
    assert_eq!(r.verdict, Verdict::Pass, "{}", failures(&r));
    assert!(r.repetitions[0].boot_seconds > 1.0);
}

/// Waits end at the deadline that contains them: a QMP event wait of an hour in a scenario of
/// 10 s, and a host-side sleep of 90 s in a `parallel` of 3 s.
#[test]
fn no_wait_outlives_its_deadline() {
    let start = Instant::now();
    let r = run_text(
        "name: long-waits\ntimeout: 10s\nsteps:\n  - parallel:\n      deadline: 3s\n      steps:\n\
         \x20       - sleep: 90s\n        - guest: {run: \"true\"}\n  - qmp:\n      execute: query-status\n      wait_event: {event: \
         RIG_NEVER}\n      timeout: 1h\n      may_fail: true\n",
        "long-waits",
        None,
    );
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(80),
        "took {took:?}:\n{}",
        failures(&r)
    );
}

/// rig's own work around a `parallel` (launching the guest jobs, joining them, collecting
/// their statuses: several guest commands under TCG) does not count against its deadline:
/// children that finish inside it pass.
#[test]
fn parallel_counts_only_its_children_against_the_deadline() {
    let mut text = String::from(
        "name: par-overhead\nsteps:\n  - parallel:\n      deadline: 3s\n      steps:\n",
    );
    for _ in 0..6 {
        text.push_str("        - guest: {run: sleep 2.5}\n");
    }
    text.push_str("        - sleep: 2.5s\n");
    for round in 0..3 {
        let r = run_text(&text, &format!("par-overhead-{round}"), None);
        assert_eq!(r.verdict, Verdict::Pass, "round {round}:\n{}", failures(&r));
    }
}

/// A kernel that prints and then hangs at boot (here: init is busybox's `cat`, reading its
/// console forever: `rdinit=/bin/busybox -- cat`) never reaches rig's ready marker while QEMU
/// runs it: the kernel's failure (exit 1), so `git bisect run` marks it bad instead of skipping
/// it.
#[test]
fn a_kernel_that_hangs_at_boot_is_a_kernel_failure() {
    let (_d, file) = scenario_file(
        "boot-hang",
        "name: boot-hang\nsteps:\n  - guest: {run: true}\n",
    );
    let scenario = file.clone();
    let dir = run_dir("run-boot-hang");
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_ARTIFACTS", dir.path())
        // A boot deadline of ~18 s on arm64 under TCG: the kernel runs /init within a few.
        .env("RIG_TIMEOUT_SCALE", "0.15")
        .args([
            "run",
            &scenario.display().to_string(),
            "--board",
            "arm64-virt",
        ])
        .args([
            "--kernel",
            KERNEL,
            "--no-setup",
            "--cmdline",
            "rdinit=/bin/busybox",
        ])
        .args(["--cmdline=--", "--cmdline=cat"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the kernel hung at boot"), "{stdout}");
}

/// Records the QEMU pid and SIGSTOPs it once a `device_del` went out (QEMU answers it at once;
/// `DEVICE_DELETED` comes ~5 s later, after pciehp's attention button).
struct StopOnUnplug {
    pid: Mutex<Option<u32>>,
    stopped: Mutex<Option<u32>>,
}

impl EventSink for StopOnUnplug {
    fn emit(&self, event: &Event) {
        match event {
            Event::QemuSpawned { pid, .. } => *self.pid.lock().unwrap() = Some(*pid),
            Event::QmpCommand { command } if command.starts_with("device_del") => {
                let Some(pid) = *self.pid.lock().unwrap() else {
                    return;
                };
                *self.stopped.lock().unwrap() = Some(pid);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(500));
                    let _ = Command::new("kill")
                        .args(["-STOP", &pid.to_string()])
                        .status();
                });
            }
            _ => {}
        }
    }
}

/// QEMU stopped on the host (SIGSTOP) while rig waits for `DEVICE_DELETED`: the wait runs out,
/// and that is rig's failure (infra), not the kernel's.
#[test]
fn qemu_stopped_during_an_unplug_is_an_infra_error() {
    let sink = Arc::new(StopOnUnplug {
        pid: Mutex::new(None),
        stopped: Mutex::new(None),
    });
    let r = run_text(
        "name: stopped-unplug\nrequires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: nic1, \
         driver: e1000e}\n  - pci_unplug: {id: nic1, timeout: 15s}\n",
        "stopped-unplug",
        Some(sink.clone()),
    );
    let stopped = sink
        .stopped
        .lock()
        .unwrap()
        .expect("no device_del went out");
    assert!(!alive(stopped), "QEMU {stopped} outlived the run");
    assert_eq!(r.verdict, Verdict::Infra, "{}", failures(&r));
    assert!(
        failures(&r).contains("stopped on the host"),
        "{}",
        failures(&r)
    );
}

/// The guest's ssh server killed while an ssh command of a `parallel` runs: rig's channel
/// broke while the guest still answers on its console, so the run is an infra error, not a
/// kernel failure.
#[test]
fn a_broken_ssh_channel_inside_parallel_is_an_infra_error() {
    let r = run_text(
        "name: ssh-killed\nsteps:\n  - parallel:\n      deadline: 60s\n      steps:\n\
         \x20       - guest: {run: sleep 8, via: ssh, timeout: 40s}\n\
         \x20       - guest: {run: \"sleep 2; killall dropbear\", via: hvc}\n",
        "ssh-killed",
        None,
    );
    assert_eq!(r.verdict, Verdict::Infra, "{}", failures(&r));
    assert!(
        failures(&r).contains("ssh channel broke"),
        "{}",
        failures(&r)
    );
}

/// `rig run --repeat 5` killed (SIGKILL: no chance to clean up) after its second repetition:
/// `report.json` holds the two finished verdicts and says the run is incomplete.
#[test]
fn a_killed_run_keeps_the_repetitions_it_finished() {
    let (_d, file) = scenario_file(
        "killed",
        "name: killed\nsteps:\n  - guest: {run: sleep 1}\n",
    );
    let dir = run_dir("run-killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_ARTIFACTS", dir.path())
        .args(["run", &file.display().to_string(), "--board", "arm64-virt"])
        .args(["--kernel", KERNEL, "--no-setup", "--repeat", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let report = loop {
        let found = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path().join("report.json"))
            .find(|p| p.is_file());
        if let Some(p) = found {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            if v["repetitions"].as_array().map_or(0, Vec::len) >= 2 {
                child.kill().unwrap();
                child.wait().unwrap();
                break p;
            }
        }
        assert!(Instant::now() < deadline, "no report with 2 repetitions");
        assert!(child.try_wait().unwrap().is_none(), "rig ended early");
        std::thread::sleep(Duration::from_millis(100));
    };
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let reps = v["repetitions"].as_array().unwrap();
    assert!((2..5).contains(&reps.len()), "{v}");
    assert_eq!(v["complete"], false, "{v}");
    assert_eq!(v["repeat"], 5);
    assert!(reps.iter().all(|r| r["verdict"] == "pass"), "{v}");
    let mut out = std::io::stderr();
    let _ = writeln!(out, "kept {} of 5 repetitions", reps.len());
}

/// Fills the artifacts filesystem once the first step starts.
struct FillOnFirstStep {
    dir: PathBuf,
    filled: Mutex<bool>,
}

impl EventSink for FillOnFirstStep {
    fn emit(&self, event: &Event) {
        if let Event::ScenarioStep { .. } = event {
            let mut filled = self.filled.lock().unwrap();
            if !*filled {
                *filled = true;
                // Write until the filesystem refuses: ENOSPC ends it.
                let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
                let chunk = vec![0u8; 64 * 1024];
                while f.write_all(&chunk).is_ok() {}
            }
        }
    }
}

/// The artifacts filesystem fills up while the scenario runs (a small tmpfs): `console.log` and
/// `report.json` cannot be written, but the kernel report the live analyzer saw stands: the
/// verdict is FAIL with its title (exit 1), not an infra error without one.
#[test]
fn a_full_disk_keeps_a_computed_fail_with_its_titles() {
    let mnt = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "rig-test-full"])
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "this test mounts a tmpfs (root, as CI runs)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.path().to_path_buf());
    let sc = rig::scenario::load(
        &rig::repo_root().join("scenarios/fake-warning.yaml"),
        &rig::repo_root().join("overlays"),
    )
    .unwrap();
    let mut opts = RunOptions::new(BOARD, KERNEL);
    opts.auto_setup = false;
    let rd = rig::host::artifacts::RunDir::create_in(mnt.path(), "full").unwrap();
    let sink = Arc::new(FillOnFirstStep {
        dir: mnt.path().to_path_buf(),
        filled: Mutex::new(false),
    });
    let r = run_scenario(&sc, &opts, &cache(), &rd, &Events::none().with(sink))
        .unwrap_or_else(|e| panic!("a full disk lost the verdict: {e}"));
    assert_eq!(r.verdict, Verdict::Fail, "{}", r.render());
    assert!(
        r.reproduced.contains_key("WARNING in rig_fake_teardown"),
        "{}",
        r.render()
    );
    assert!(r.report_error.is_some(), "{}", r.render());
    assert_eq!(r.verdict.exit_code(), 1);
}

/// The verdict's stdout is a file on a full disk (`rig run … > out.txt` when the disk filled):
/// rig says so on stderr and the verdict's exit code stands (1: the kernel's WARNING), never a
/// panic (exit 101) that a bisect or the matrix would take for "rig broke".
#[test]
fn a_stdout_on_a_full_disk_keeps_the_verdicts_exit_code() {
    let dir = run_dir("run-stdout-full");
    let out = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args([
            "run",
            "scenarios/fake-warning.yaml",
            "--board",
            BOARD.name(),
        ])
        .args(["--kernel", KERNEL, "--no-setup"])
        .current_dir(rig::repo_root())
        .env("RIG_ARTIFACTS", dir.path())
        .stdout(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `rig boot ARGS -- true` through the built binary, artifacts under the test runs folder.
fn rig_boot_output(label: &str, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let dir = run_dir(label);
    Command::new(env!("CARGO_BIN_EXE_rig"))
        .env("RIG_ARTIFACTS", dir.path())
        .envs(env.iter().copied())
        .args([
            "boot",
            "--board",
            "arm64-virt",
            "--kernel",
            KERNEL,
            "--no-setup",
        ])
        .args(args)
        .args(["--", "true"])
        .output()
        .unwrap()
}

/// `rig boot` of a kernel that prints and then hangs (as in the test above) exits 1 like
/// `rig run`: the class is the boot error's own, seen through the guest error that wraps it.
#[test]
fn rig_boot_of_a_kernel_that_hangs_is_a_kernel_failure() {
    let out = rig_boot_output(
        "boot-hang-cli",
        &[("RIG_TIMEOUT_SCALE", "0.15")],
        &[
            "--cmdline",
            "rdinit=/bin/busybox",
            "--cmdline=--",
            "--cmdline=cat",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the kernel hung at boot"), "{stderr}");
}

/// A malformed `--cmdline` parameter is bad input (exit 2) for `rig boot`, refused before
/// QEMU starts, though the error comes out of the VM's start wrapped in the guest's.
#[test]
fn rig_boot_with_a_malformed_cmdline_is_bad_input() {
    let out = rig_boot_output("boot-bad-cmdline", &[], &["--cmdline", "a b"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kernel parameter `a b` is malformed"),
        "{stderr}"
    );
}
