//! `Vm::boot`'s branches and QEMU's teardown against a fake QEMU ([`fake_qemu`]): no VM, no
//! kernel, milliseconds to a few seconds each.
//!
//! This binary is also the fake: `main` runs it when invoked as `qemu-system-fake` (a link each
//! test makes to this binary), and the tests otherwise (libtest-mimic, so `main` is ours).

mod fake_qemu;

use fake_qemu::Mode;
use libtest_mimic::{Arguments, Failed, Trial};
use rig::host::artifacts::RunDir;
use rig::host::board::{Arch, Board};
use rig::host::events::{Event, EventSink, Events};
use rig::host::exit::{Classify, ExitClass};
use rig::machine::qemu::Accel;
use rig::machine::qmp::QmpError;
use rig::machine::spec::MachineSpec;
use rig::machine::state::{BootStall, MachineState};
use rig::machine::timeouts::Timeouts;
use rig::machine::vm::{ExitCause, Vm, VmError};
use rig::machine::vm_config::VmConfig;
use rig::provision::kernel::Kernel;
use rig::provision::BootImage;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    fake_qemu::main_if_invoked();
    let args = Arguments::from_args();
    let tests: [(&str, Test); 9] = [
        ("qemu_that_exits_at_once", qemu_that_exits_at_once),
        ("qmp_that_never_greets", qmp_that_never_greets),
        (
            "qmp_closed_before_its_greeting",
            qmp_closed_before_its_greeting,
        ),
        ("guest_that_prints_nothing", guest_that_prints_nothing),
        ("kernel_that_hangs_at_boot", kernel_that_hangs_at_boot),
        ("init_that_fails", init_that_fails),
        (
            "guest_that_ends_qemu_during_boot",
            guest_that_ends_qemu_during_boot,
        ),
        ("good_boot_and_shutdown", good_boot_and_shutdown),
        (
            "qemu_deaf_to_sigterm_is_killed",
            qemu_deaf_to_sigterm_is_killed,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, f)| Trial::test(name, f))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

type Test = fn() -> Result<(), Failed>;

/// Records the fake's pid and whether the boot said it was ready.
#[derive(Default)]
struct Seen {
    pid: Mutex<Option<u32>>,
    ready: Mutex<bool>,
}

impl EventSink for Seen {
    fn emit(&self, event: &Event) {
        match event {
            Event::QemuSpawned { pid, .. } => *self.pid.lock().unwrap() = Some(*pid),
            Event::BootReady { .. } => *self.ready.lock().unwrap() = true,
            _ => {}
        }
    }
}

/// One boot of the fake: its folder (kernel, initrd, the link, the run's artifacts), what the
/// events said and how long `Vm::boot` took.
struct Boot {
    dir: tempfile::TempDir,
    run_dir: RunDir,
    seen: Arc<Seen>,
    took: Duration,
}

impl Boot {
    fn pid(&self) -> u32 {
        self.seen.pid.lock().unwrap().expect("no QemuSpawned event")
    }
}

/// [`boot`] that must fail: its error.
fn boot_err(mode: Mode, timeouts: Timeouts) -> (VmError, Boot) {
    match boot(mode, timeouts) {
        (b, Ok(_)) => panic!(
            "the boot succeeded (artifacts: {})",
            b.run_dir.path().display()
        ),
        (b, Err(e)) => (e, b),
    }
}

/// Boots the fake in `mode` with these deadlines.
fn boot(mode: Mode, timeouts: Timeouts) -> (Boot, Result<Vm, VmError>) {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, b"").unwrap();
        p
    };
    let kernel = Kernel {
        name: "fake".into(),
        arch: Arch::X86_64,
        release: fake_qemu::RELEASE.into(),
        image: file("bzImage"),
        modules_root: dir.path().to_path_buf(),
        config: file("config"),
        vmlinux: None,
        provenance: Default::default(),
    };
    let image = BootImage {
        kernel,
        initrd: file("initrd"),
    };
    // x86: the board that needs no device tree (an arm64 boot would dump one with real QEMU).
    let mut spec = MachineSpec::new(Board::X86_64Q35, "fake");
    spec.cmdline = vec![mode.param()];
    let mut cfg = VmConfig::new(spec, Accel::Tcg, image);
    cfg.timeouts = timeouts;
    cfg.qemu_program = Some(fake_qemu::link(dir.path()));
    let run_dir = RunDir::create_in(&dir.path().join("runs"), mode.name()).unwrap();
    let seen = Arc::new(Seen::default());
    let events = Events::none().with(seen.clone());
    let start = Instant::now();
    let result = Vm::boot(&cfg, &run_dir, &events);
    let took = start.elapsed();
    let b = Boot {
        dir,
        run_dir,
        seen,
        took,
    };
    (b, result)
}

fn timeouts(boot: Duration, qmp: Duration) -> Timeouts {
    Timeouts {
        boot,
        qmp,
        ..Timeouts::NATIVE
    }
}

const LONG: Duration = Duration::from_secs(20);

/// True while a process with this pid exists (zombies count as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}

/// The error with its sources, for failure messages.
fn chain(e: &VmError) -> String {
    let mut s = format!("{e}");
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!("\n  caused by: {c}"));
        src = c.source();
    }
    s
}

/// QEMU that cannot start: rig says so at once (not after the socket deadline), with what
/// QEMU said and its exit status; rig's failure.
fn qemu_that_exits_at_once() -> Result<(), Failed> {
    let (e, b) = boot_err(Mode::Exit, timeouts(LONG, LONG));
    let VmError::QemuExited(q) = &e else {
        return Err(format!("not QemuExited: {}", chain(&e)).into());
    };
    assert_eq!(q.step, "connecting the console");
    assert_eq!(q.status, "exit code 1");
    assert_eq!(q.cause, ExitCause::Unknown);
    assert!(q.stderr.contains(fake_qemu::STARTUP_ERROR), "{}", q.stderr);
    assert!(e.to_string().contains(fake_qemu::STARTUP_ERROR), "{e}");
    assert_eq!(e.exit_class(), ExitClass::Infra);
    assert!(
        b.took < LONG / 2,
        "noticed the exit only after {:?}",
        b.took
    );
    assert!(!alive(b.pid()));
    Ok(())
}

/// `e` is the QMP handshake's error (not QEMU's exit, not a panic).
fn handshake_error(e: &VmError) -> Result<(), Failed> {
    match e {
        VmError::Qmp {
            step,
            source: QmpError::Handshake(_),
            ..
        } if step == "QMP handshake" => Ok(()),
        _ => Err(format!("not a QMP handshake error: {}", chain(e)).into()),
    }
}

/// A QMP socket that accepts and never greets: the handshake's deadline, QEMU still running,
/// so the QMP error (not an exit); QEMU is gone once `boot` returns.
fn qmp_that_never_greets() -> Result<(), Failed> {
    let qmp = Duration::from_millis(300);
    let (e, b) = boot_err(Mode::NoGreeting, timeouts(LONG, qmp));
    handshake_error(&e)?;
    assert_eq!(e.exit_class(), ExitClass::Infra);
    assert!(b.took >= qmp && b.took < LONG / 2, "{:?}", b.took);
    assert!(!alive(b.pid()), "QEMU outlived the failed boot");
    Ok(())
}

/// A QMP socket closed before the greeting (QEMU going down) is a QMP error, not a panic.
fn qmp_closed_before_its_greeting() -> Result<(), Failed> {
    let (e, b) = boot_err(Mode::CloseQmp, timeouts(LONG, LONG));
    handshake_error(&e)?;
    assert!(b.took < LONG / 2, "{:?}", b.took);
    assert!(!alive(b.pid()));
    Ok(())
}

/// A console that shows nothing until the boot deadline: the kernel never ran, rig's failure
/// (not a boot hang); QEMU is gone once `boot` returns.
fn guest_that_prints_nothing() -> Result<(), Failed> {
    let deadline = Duration::from_millis(300);
    let (e, b) = boot_err(Mode::Silent, timeouts(deadline, LONG));
    let VmError::NeverReady {
        stall,
        waited,
        state,
        ..
    } = &e
    else {
        return Err(format!("not NeverReady: {}", chain(&e)).into());
    };
    assert_eq!(*stall, BootStall::NoOutput);
    assert_eq!(*waited, deadline);
    assert_eq!(*state, MachineState::Running);
    assert!(!e.is_boot_hang());
    assert_eq!(e.exit_class(), ExitClass::Infra);
    assert!(e.to_string().contains("showed nothing"), "{e}");
    assert!(!alive(b.pid()), "QEMU outlived the failed boot");
    Ok(())
}

/// A kernel that printed, then nothing for longer than the hang rule's minimum (5 s,
/// `machine::state::STALL_MIN`) while QEMU ran it: the kernel's failure.
fn kernel_that_hangs_at_boot() -> Result<(), Failed> {
    let deadline = Duration::from_millis(5_500);
    let (e, b) = boot_err(Mode::Hang, timeouts(deadline, LONG));
    let VmError::NeverReady { stall, console, .. } = &e else {
        return Err(format!("not NeverReady: {}", chain(&e)).into());
    };
    assert!(matches!(stall, BootStall::Silent(_)), "{stall:?}");
    assert!(console.contains("Run /init as init process"), "{console}");
    assert!(e.is_boot_hang(), "{e}");
    assert_eq!(e.exit_class(), ExitClass::Kernel);
    assert!(e.to_string().contains("the kernel hung at boot"), "{e}");
    assert!(!alive(b.pid()));
    Ok(())
}

/// Init's `RIG-INIT-FAILED` marker: the reason, rig's failure.
fn init_that_fails() -> Result<(), Failed> {
    let (e, _b) = boot_err(Mode::InitFailed, timeouts(LONG, LONG));
    let VmError::InitFailed { reason, .. } = &e else {
        return Err(format!("not InitFailed: {}", chain(&e)).into());
    };
    assert_eq!(reason, "cannot mount /proc");
    assert_eq!(e.exit_class(), ExitClass::Infra);
    Ok(())
}

/// A guest that ends QEMU before it is ready (a panic under `-no-reboot`): QEMU's exit, with
/// the guest's reason from QMP and the console's last lines.
fn guest_that_ends_qemu_during_boot() -> Result<(), Failed> {
    let (e, b) = boot_err(Mode::Panic, timeouts(LONG, LONG));
    let VmError::QemuExited(q) = &e else {
        return Err(format!("not QemuExited: {}", chain(&e)).into());
    };
    assert_eq!(q.step, "boot");
    assert_eq!(q.status, "exit code 0");
    assert_eq!(q.cause, ExitCause::Guest("guest-reset".into()));
    assert!(q.console.contains("Kernel panic"), "{}", q.console);
    assert!(b.took < LONG / 2, "{:?}", b.took);
    Ok(())
}

/// A boot that reaches ready: the release, timings and events; QMP works; the artifacts are
/// there; `shutdown` quits QEMU and leaves no process.
fn good_boot_and_shutdown() -> Result<(), Failed> {
    let (b, vm) = boot(Mode::Ready, timeouts(LONG, LONG));
    let pid = b.pid();
    let mut vm = vm.map_err(|e| chain(&e))?;
    assert_eq!(vm.timings().kernel_release, fake_qemu::RELEASE);
    assert!(*b.seen.ready.lock().unwrap(), "no BootReady event");
    assert_eq!(vm.qemu_pid(), pid);
    assert_eq!(vm.machine_state(), MachineState::Running);
    let argv = std::fs::read_to_string(b.run_dir.file("qemu.argv"))?;
    assert!(argv.starts_with(&*b.dir.path().to_string_lossy()), "{argv}");
    assert!(argv.contains(&Mode::Ready.param()), "{argv}");
    vm.shutdown();
    assert!(!alive(pid), "QEMU {pid} survived shutdown");
    let log = std::fs::read_to_string(b.run_dir.console_log())?;
    assert!(log.contains("RIG-READY"), "{log}");
    let qmp = std::fs::read_to_string(b.run_dir.qmp_transcript())?;
    // rig asked QEMU to quit (nothing reads QMP after that: its SHUTDOWN event may be missing).
    assert!(qmp.contains(r#""execute":"quit""#), "{qmp}");
    assert!(b.run_dir.file("timings.json").exists());
    Ok(())
}

/// A QEMU that ignores SIGTERM is still gone once its VM is dropped (SIGKILL after the grace).
fn qemu_deaf_to_sigterm_is_killed() -> Result<(), Failed> {
    let (b, vm) = boot(Mode::ReadyDeaf, timeouts(LONG, LONG));
    let pid = b.pid();
    let vm = vm.map_err(|e| chain(&e))?;
    let start = Instant::now();
    // Dropped on a thread of its own: a teardown that never ends fails here instead of hanging.
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(vm);
        let _ = done.send(());
    });
    if dropped.recv_timeout(LONG).is_err() {
        return Err(format!("dropping the VM did not end within {LONG:?}").into());
    }
    assert!(!alive(pid), "QEMU {pid} survived its VM");
    // SIGTERM did not end it: the grace period passed before SIGKILL did.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}
