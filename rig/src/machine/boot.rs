//! [`Vm::boot`]: from a [`VmConfig`] to a VM whose guest reached rig's ready marker (see
//! [`super::vm`]).

use super::vm::{qemu_gone, qemu_said, Timings, Vm, VmError};
use crate::host::artifacts::RunDir;
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
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

impl Vm {
    pub fn boot(cfg: &VmConfig, run_dir: &RunDir, events: &Events) -> Result<Vm, VmError> {
        // The sockets live in a fresh 0700 directory inside the user's private one, so no other
        // local user can connect to the console or QMP, or plant anything at their paths.
        let vm_dirs =
            crate::host::userdir::private_subdir("vm").map_err(|e| VmError::Artifact {
                path: std::env::temp_dir(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let sockets = crate::host::cleanup::TempDir::new(|| {
            tempfile::Builder::new()
                .prefix("vm-")
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .tempdir_in(&vm_dirs)
        })
        .map_err(|source| VmError::Artifact {
            path: vm_dirs.clone(),
            source,
        })?;
        let console_sock = sockets.path().join("con");
        let qmp_sock = sockets.path().join("qmp");

        let mut qc = QemuConfig::new(cfg.board, cfg.accel, console_sock.clone(), qmp_sock.clone());
        let shell_pair = ShellPair::new().map_err(|source| VmError::Artifact {
            path: "shell channel (socketpair)".into(),
            source,
        })?;
        qc.shell_fd = Some(shell_pair.qemu_fd());
        qc.incoming_defer = cfg.restore.is_some();
        qc.kernel = Some(cfg.image.kernel.image.clone());
        qc.initrd = Some(
            cfg.initrd_override
                .clone()
                .unwrap_or(cfg.image.initrd.clone()),
        );
        qc.cmdline = qemu::kernel_cmdline(cfg.board, &boot_params(&cfg.image, &cfg.extra_cmdline))?;
        qc.memory_mib = cfg.memory_mib;
        qc.smp = cfg.smp;
        qc.ssh_forward_port = cfg.ssh_forward_port;
        qc.devices = cfg.devices.clone();
        qc.hotplug_root_ports = cfg.hotplug_root_ports;
        qc.outbound_network = cfg.outbound_network;
        qc.dtb = super::dtb::for_boot(&qc, events);
        let argv = qemu::argv(&qc);
        // console.log exists from before QEMU starts: whatever ends the run, its folder has one.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(run_dir.console_log())
            .map_err(|source| VmError::Artifact {
                path: run_dir.console_log(),
                source,
            })?;
        let argv_path = run_dir.file("qemu.argv");
        std::fs::write(&argv_path, crate::host::shell::shell_line(&argv) + "\n").map_err(
            |source| VmError::Artifact {
                path: argv_path,
                source,
            },
        )?;

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        shell_pair.pass_to(&mut cmd);
        let start = Instant::now();
        let mut qemu = Supervised::spawn(cmd, Some(&run_dir.file("qemu.stderr")))?;
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
            argv: argv.clone(),
        });

        let artifacts = run_dir.path().to_path_buf();
        let exited = |qemu: &mut Supervised, step: &str, console: String, cause: ExitCause| {
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
                artifacts: artifacts.clone(),
            }))
        };

        let con_stream = connect_socket(&mut qemu, &console_sock, "console", cfg.timeouts.qmp)
            .map_err(|e| match e {
                ConnectFail::Exited => exited(
                    &mut qemu,
                    "connecting the console",
                    String::new(),
                    ExitCause::Unknown,
                ),
                ConnectFail::Timeout(err) => *err,
            })?;
        if let Some(snap) = &cfg.restore {
            let log = run_dir.console_log();
            snapshot::seed_console_log(snap, &log)
                .map_err(|source| VmError::Artifact { path: log, source })?;
        }
        let console = Console::new(
            con_stream,
            shell_stream,
            &run_dir.console_log(),
            &run_dir.file("shell.log"),
        )
        .map_err(|source| VmError::Console {
            step: "opening the console".into(),
            artifacts: artifacts.clone(),
            source,
        })?;
        let qmp_stream =
            connect_socket(&mut qemu, &qmp_sock, "QMP", cfg.timeouts.qmp).map_err(|e| match e {
                ConnectFail::Exited => exited(
                    &mut qemu,
                    "connecting QMP",
                    console.tail().last_lines(30),
                    ExitCause::Unknown,
                ),
                ConnectFail::Timeout(err) => *err,
            })?;
        let qmp = match Qmp::from_stream(qmp_stream, &run_dir.qmp_transcript(), cfg.timeouts.qmp) {
            Ok(q) => q,
            Err(source) => {
                // A handshake that breaks off usually means QEMU died: say that, with its stderr.
                if qemu.wait_timeout(Duration::from_millis(500))?.is_some() {
                    return Err(exited(
                        &mut qemu,
                        "QMP handshake",
                        console.tail().last_lines(30),
                        ExitCause::Unknown,
                    ));
                }
                return Err(VmError::Qmp {
                    step: "QMP handshake".into(),
                    artifacts: artifacts.clone(),
                    source,
                });
            }
        };

        let mut vm = Vm {
            board: cfg.board,
            accel: cfg.accel,
            timeouts: cfg.timeouts,
            qemu,
            console,
            qmp,
            run_dir: run_dir.clone(),
            timings: Timings::default(),
            events: events.clone(),
            sockets,
        };
        if let Some(snap) = &cfg.restore {
            vm.load_snapshot(snap)?;
            let elapsed = start.elapsed();
            vm.timings.boot_to_ready_s = elapsed.as_secs_f64();
            vm.timings.kernel_release = snap.kernel_release.clone();
            vm.write_timings();
            events.emit(Event::BootReady { elapsed });
            return Ok(vm);
        }
        let ready = {
            let Vm { console, qemu, .. } = &mut vm;
            console.wait_ready(cfg.timeouts.boot, &mut || qemu_gone(qemu))
        };
        match ready {
            Ok(release) => {
                let elapsed = start.elapsed();
                vm.timings.boot_to_ready_s = elapsed.as_secs_f64();
                vm.timings.kernel_release = release;
                vm.write_timings();
                events.emit(Event::BootReady { elapsed });
                Ok(vm)
            }
            Err(ReadyFail::InitFailed(reason)) => {
                let tail = vm.console.tail().last_lines(40);
                Err(VmError::InitFailed {
                    reason,
                    console: tail,
                    artifacts: vm.run_dir.path().to_path_buf(),
                })
            }
            Err(ReadyFail::Console(source)) => {
                if vm.qemu.try_wait().ok().flatten().is_some() {
                    let tail = vm.console.tail().last_lines(40);
                    let cause = vm.exit_cause();
                    return Err(exited(&mut vm.qemu, "boot", tail, cause));
                }
                if matches!(source, ConsoleError::Timeout { .. }) {
                    let logged = vm.console.log_state();
                    let quiet = logged.last_at.map(|t| t.elapsed());
                    let stall = boot_stall(quiet, cfg.timeouts.boot);
                    return Err(VmError::NeverReady {
                        stall,
                        waited: cfg.timeouts.boot,
                        state: vm.machine_state(),
                        console: vm.console.tail().last_lines(40),
                        artifacts: vm.run_dir.path().to_path_buf(),
                    });
                }
                Err(VmError::Console {
                    step: "waiting for the guest's init (RIG-READY)".into(),
                    artifacts: vm.run_dir.path().to_path_buf(),
                    source,
                })
            }
        }
    }
}

enum ConnectFail {
    Exited,
    Timeout(Box<VmError>),
}

/// Connects to a socket QEMU creates, retrying until it exists, QEMU exits, or the deadline.
fn connect_socket(
    qemu: &mut Supervised,
    path: &Path,
    what: &'static str,
    timeout: Duration,
) -> Result<UnixStream, ConnectFail> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            return Ok(s);
        }
        if qemu.try_wait().ok().flatten().is_some() {
            return Err(ConnectFail::Exited);
        }
        if Instant::now() >= deadline {
            return Err(ConnectFail::Timeout(Box::new(VmError::SocketTimeout {
                what,
                path: path.to_path_buf(),
                timeout,
                stderr: qemu.stderr_tail(20),
            })));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
