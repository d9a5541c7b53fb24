//! [`Vm::boot`]: from a [`VmConfig`] to a VM whose guest reached rig's ready marker (see
//! [`super::vm`]). `boot` is the list of its phases; each phase is a function below, in order.

use super::vm::{qemu_gone, qemu_said, Timings, Vm, VmError};
use crate::host::artifacts::RunDir;
use crate::host::cleanup::TempDir;
use crate::host::events::{Event, Events};
use crate::host::process::{describe_status, Supervised};
use crate::machine::channel::ShellPair;
use crate::machine::console::{Console, ConsoleError, ReadyFail};
use crate::machine::exit::{ExitCause, QemuExit};
use crate::machine::qemu::{self, QemuConfig};
use crate::machine::qmp::Qmp;
use crate::machine::snapshot;
use crate::machine::state::boot_stall;
use crate::machine::vm_config::{boot_params, VmConfig};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

impl Vm {
    pub fn boot(cfg: &VmConfig, run_dir: &RunDir, events: &Events) -> Result<Vm, VmError> {
        let sockets = Sockets::create()?;
        let shell_pair = ShellPair::new().map_err(|source| VmError::Artifact {
            path: "shell channel (socketpair)".into(),
            source,
        })?;
        let argv = qemu_argv(cfg, &sockets, &shell_pair, events)?;
        write_run_files(run_dir, &argv)?;
        let start = Instant::now();
        let (mut qemu, shell) = spawn_qemu(&argv, shell_pair, run_dir, events)?;
        let console = open_console(&mut qemu, &sockets.console, shell, cfg, run_dir)?;
        let qmp = qmp_handshake(&mut qemu, &sockets.qmp, &console, cfg, run_dir)?;
        let vmcore = start_vmcore_watch(cfg, &sockets, run_dir)?;
        let mut vm = Vm {
            board: cfg.spec.board,
            accel: cfg.accel,
            timeouts: cfg.timeouts,
            qemu,
            console,
            qmp,
            run_dir: run_dir.clone(),
            timings: Timings::default(),
            events: events.clone(),
            sockets: sockets.dir,
            vmcore,
        };
        let kernel_release = match cfg.spec.restore() {
            Some(snap) => {
                vm.load_snapshot(snap)?;
                snap.kernel_release.clone()
            }
            None => vm.wait_guest_ready()?,
        };
        vm.record_ready(start, kernel_release);
        Ok(vm)
    }
}

/// The VM's private sockets folder and the two sockets QEMU serves in it.
struct Sockets {
    dir: TempDir,
    console: PathBuf,
    qmp: PathBuf,
    /// The dump monitor ([`crate::machine::vmcore`]), served when the spec asks for a vmcore.
    dump: PathBuf,
}

impl Sockets {
    /// Phase 1: a fresh 0700 folder inside the user's private one, so no other local user can
    /// connect to the console or QMP, or plant anything at their paths.
    fn create() -> Result<Sockets, VmError> {
        let vm_dirs =
            crate::host::userdir::private_subdir("vm").map_err(|e| VmError::Artifact {
                path: std::env::temp_dir(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let dir = TempDir::new(|| {
            tempfile::Builder::new()
                .prefix("vm-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir_in(&vm_dirs)
        })
        .map_err(|source| VmError::Artifact {
            path: vm_dirs.clone(),
            source,
        })?;
        let console = dir.path().join("con");
        let qmp = dir.path().join("qmp");
        let dump = dir.path().join("dump");
        Ok(Sockets {
            dir,
            console,
            qmp,
            dump,
        })
    }
}

/// Phase 2: QEMU's argv for `cfg` (checked kernel command line, the board's device tree), run
/// as [`VmConfig::qemu_program`] when that is set.
fn qemu_argv(
    cfg: &VmConfig,
    sockets: &Sockets,
    shell_pair: &ShellPair,
    events: &Events,
) -> Result<Vec<String>, VmError> {
    let mut qc = QemuConfig::new(
        cfg.spec.board,
        cfg.accel,
        sockets.console.clone(),
        sockets.qmp.clone(),
    );
    qc.shell_fd = Some(shell_pair.qemu_fd());
    qc.incoming_defer = cfg.spec.restore().is_some();
    qc.kernel = Some(cfg.image.kernel.image.clone());
    qc.initrd = Some(
        cfg.initrd_override
            .clone()
            .unwrap_or(cfg.image.initrd.clone()),
    );
    qc.cmdline = qemu::kernel_cmdline(cfg.spec.board, &boot_params(&cfg.image, &cfg.spec.cmdline))?;
    qc.memory_mib = cfg.spec.memory_mib;
    qc.ssh_forward_port = cfg.ssh_forward_port;
    qc.devices = cfg.spec.devices.clone();
    qc.hotplug_root_ports = cfg.spec.hotplug_root_ports;
    qc.outbound_network = cfg.spec.outbound_network;
    qc.dtb = super::dtb::for_boot(&qc, events);
    qc.vmcore_socket = cfg.spec.vmcore.then(|| sockets.dump.clone());
    let mut argv = qemu::argv(&qc);
    if let Some(program) = &cfg.qemu_program {
        argv[0] = program.display().to_string();
    }
    Ok(argv)
}

/// Phase 3: the run folder's files from before QEMU starts: `console.log` (whatever ends the
/// run, its folder has one) and `qemu.argv`.
fn write_run_files(run_dir: &RunDir, argv: &[String]) -> Result<(), VmError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.console_log())
        .map_err(|source| VmError::Artifact {
            path: run_dir.console_log(),
            source,
        })?;
    let argv_path = run_dir.file("qemu.argv");
    std::fs::write(&argv_path, crate::host::shell::shell_line(argv) + "\n").map_err(|source| {
        VmError::Artifact {
            path: argv_path,
            source,
        }
    })
}

/// Phase 4: QEMU, supervised in its own process group (stdout and stderr to `qemu.stderr`),
/// holding its end of the shell channel; returns it and rig's end.
fn spawn_qemu(
    argv: &[String],
    shell_pair: ShellPair,
    run_dir: &RunDir,
    events: &Events,
) -> Result<(Supervised, UnixStream), VmError> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    shell_pair.pass_to(&mut cmd);
    let qemu = Supervised::spawn(cmd, Some(&run_dir.file("qemu.stderr")))?;
    let ShellPair {
        ours: shell_stream,
        qemu: qemu_end,
        send_buffer,
    } = shell_pair;
    drop(qemu_end);
    if send_buffer < 1 << 20 {
        // Without CAP_NET_ADMIN: QEMU's virtconsole drops what a full buffer cannot take.
        events.emit(Event::Warning {
            message: format!(
                "the command shell's channel got a {} KiB send buffer (a larger one needs \
                 CAP_NET_ADMIN): command output written while rig cannot read can be lost",
                send_buffer / 1024
            ),
        });
    }
    events.emit(Event::QemuSpawned {
        pid: qemu.pid(),
        argv: argv.to_vec(),
    });
    Ok((qemu, shell_stream))
}

/// Phase 5: connects the kernel console (QEMU waits for it before it starts the guest),
/// seeds `console.log` with a restored snapshot's boot, and starts reading both streams.
fn open_console(
    qemu: &mut Supervised,
    console_sock: &Path,
    shell: UnixStream,
    cfg: &VmConfig,
    run_dir: &RunDir,
) -> Result<Console, VmError> {
    let con_stream = connect_socket(
        qemu,
        console_sock,
        "console",
        cfg.timeouts.qmp,
        ("connecting the console", String::new),
        run_dir,
    )?;
    if let Some(snap) = cfg.spec.restore() {
        let log = run_dir.console_log();
        snapshot::seed_console_log(snap, &log)
            .map_err(|source| VmError::Artifact { path: log, source })?;
    }
    Console::new(
        con_stream,
        shell,
        &run_dir.console_log(),
        &run_dir.file("shell.log"),
    )
    .map_err(|source| VmError::Console {
        step: "opening the console".into(),
        artifacts: run_dir.path().to_path_buf(),
        source,
    })
}

/// Phase 6: connects QMP and negotiates capabilities. A handshake that breaks off usually
/// means QEMU died: then the error says that, with its stderr.
fn qmp_handshake(
    qemu: &mut Supervised,
    qmp_sock: &Path,
    console: &Console,
    cfg: &VmConfig,
    run_dir: &RunDir,
) -> Result<Qmp, VmError> {
    let qmp_stream = connect_socket(
        qemu,
        qmp_sock,
        "QMP",
        cfg.timeouts.qmp,
        ("connecting QMP", || console.tail().last_lines(30)),
        run_dir,
    )?;
    match Qmp::from_stream(qmp_stream, &run_dir.qmp_transcript(), cfg.timeouts.qmp) {
        Ok(q) => Ok(q),
        Err(source) => {
            if qemu.wait_timeout(Duration::from_millis(500))?.is_some() {
                return Err(qemu_exited(
                    qemu,
                    "QMP handshake",
                    console.tail().last_lines(30),
                    ExitCause::Unknown,
                    run_dir,
                ));
            }
            Err(VmError::Qmp {
                step: "QMP handshake".into(),
                artifacts: run_dir.path().to_path_buf(),
                source,
            })
        }
    }
}

/// Phase 6b, for a machine that can be dumped: the dump monitor connected and watched. QEMU
/// pauses a panicked guest for it, so a machine without it is refused rather than left to hang.
fn start_vmcore_watch(
    cfg: &VmConfig,
    sockets: &Sockets,
    run_dir: &RunDir,
) -> Result<Option<super::vmcore::Watch>, VmError> {
    if !cfg.spec.vmcore {
        return Ok(None);
    }
    super::vmcore::Watch::start(
        &sockets.dump,
        &run_dir.file("qmp-vmcore.jsonl"),
        run_dir.path(),
        cfg.spec.board,
    )
    .map(Some)
    .map_err(|source| VmError::Qmp {
        step: "connecting the dump monitor".into(),
        artifacts: run_dir.path().to_path_buf(),
        source,
    })
}

impl Vm {
    /// Phase 7 (a boot, not a restore): waits for init's ready marker on both streams; returns
    /// the kernel release. When it does not come, the error tells a QEMU that exited, a failed
    /// init, a kernel that hung ([`boot_stall`]) and a boot too slow for the deadline apart.
    fn wait_guest_ready(&mut self) -> Result<String, VmError> {
        let boot_timeout = self.timeouts.boot;
        let ready = {
            let Vm { console, qemu, .. } = self;
            console.wait_ready(boot_timeout, &mut || qemu_gone(qemu))
        };
        let source = match ready {
            Ok(release) => return Ok(release),
            Err(ReadyFail::InitFailed(reason)) => {
                return Err(VmError::InitFailed {
                    reason,
                    console: self.console.tail().last_lines(40),
                    artifacts: self.run_dir.path().to_path_buf(),
                })
            }
            Err(ReadyFail::Console(source)) => source,
        };
        // QEMU's sockets close a moment before its exit can be seen: a console that hung up
        // gives it that moment (as [`Vm::exited_settled`] does), or a guest that ended QEMU
        // would be reported as a closed console, without its exit and why.
        if self.console.hung_up() {
            let _ = self.qemu.wait_timeout(EXIT_SETTLE);
        }
        if self.qemu.try_wait().ok().flatten().is_some() {
            let tail = self.console.tail().last_lines(40);
            let cause = self.exit_cause();
            return Err(qemu_exited(
                &mut self.qemu,
                "boot",
                tail,
                cause,
                &self.run_dir,
            ));
        }
        if matches!(source, ConsoleError::Timeout { .. }) {
            let quiet = self.console.log_state().last_at.map(|t| t.elapsed());
            let stall = boot_stall(quiet, boot_timeout);
            return Err(VmError::NeverReady {
                stall,
                waited: boot_timeout,
                state: self.machine_state(),
                console: self.console.tail().last_lines(40),
                artifacts: self.run_dir.path().to_path_buf(),
            });
        }
        Err(VmError::Console {
            step: "waiting for the guest's init (RIG-READY)".into(),
            artifacts: self.run_dir.path().to_path_buf(),
            source,
        })
    }

    /// Phase 8: the guest is ready (booted or restored) `start` after QEMU was spawned:
    /// `timings.json` and the [`Event::BootReady`] event.
    fn record_ready(&mut self, start: Instant, kernel_release: String) {
        let elapsed = start.elapsed();
        self.timings.boot_to_ready_s = elapsed.as_secs_f64();
        self.timings.kernel_release = kernel_release;
        self.write_timings();
        self.events.emit(Event::BootReady { elapsed });
    }
}

/// The error for a QEMU that exited during `step`: its status and stderr, why it stopped, the
/// console's last lines and the artifacts folder.
fn qemu_exited(
    qemu: &mut Supervised,
    step: &str,
    console: String,
    cause: ExitCause,
    run_dir: &RunDir,
) -> VmError {
    let status = qemu
        .try_wait()
        .ok()
        .flatten()
        .map(|s| describe_status(&s))
        .unwrap_or_else(|| "still running".into());
    VmError::QemuExited(Box::new(QemuExit {
        step: step.into(),
        status,
        cause,
        stderr: qemu_said(qemu, 20),
        console,
        artifacts: run_dir.path().to_path_buf(),
    }))
}

/// How long a boot whose console hung up waits for QEMU's exit to be seen.
const EXIT_SETTLE: Duration = Duration::from_secs(5);

/// Connects to a socket QEMU creates, retrying until it exists, QEMU exits (the error of
/// [`qemu_exited`] for `step`, with the console lines `console` gives then), or the deadline.
fn connect_socket(
    qemu: &mut Supervised,
    path: &Path,
    what: &'static str,
    timeout: Duration,
    (step, console): (&str, impl FnOnce() -> String),
    run_dir: &RunDir,
) -> Result<UnixStream, VmError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            return Ok(s);
        }
        if qemu.try_wait().ok().flatten().is_some() {
            return Err(qemu_exited(
                qemu,
                step,
                console(),
                ExitCause::Unknown,
                run_dir,
            ));
        }
        if Instant::now() >= deadline {
            return Err(VmError::SocketTimeout {
                what,
                path: path.to_path_buf(),
                timeout,
                stderr: qemu.stderr_tail(20),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
