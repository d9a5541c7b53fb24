//! One running VM: QEMU under supervision, its serial console and its QMP connection.
//!
//! [`Vm::boot`] writes the argv to the run's artifacts folder, spawns QEMU in its own process
//! group, connects the kernel console and the command shell's virtio console (QEMU waits for
//! both before starting the guest, so no output is lost) and QMP, and waits for init's
//! `RIG-READY` marker on both. Every wait also watches QEMU: if it exits, the error says so at
//! once, with its stderr and the console's last lines.

use crate::host::artifacts::RunDir;
use crate::host::board::Board;
use crate::host::events::{Event, Events};
use crate::host::process::{describe_status, ProcessError, Supervised};
use crate::machine::channel::ShellPair;
use crate::machine::console::{Console, ConsoleError, ReadyFail};
pub use crate::machine::exit::{ExitCause, QemuExit};
use crate::machine::qemu::{self, Accel, QemuConfig};
use crate::machine::qmp::{Qmp, QmpError};
use crate::machine::snapshot;
use crate::machine::state::{boot_stall, never_ready_message, BootStall, MachineState};
use crate::machine::timeouts::Timeouts;
pub use crate::machine::vm_config::{boot_params, VmConfig};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Cmdline(#[from] qemu::CmdlineError),
    #[error("cannot write {path}")]
    Artifact {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    QemuExited(Box<QemuExit>),
    #[error("{step} failed (artifacts: {artifacts})")]
    Console {
        step: String,
        artifacts: PathBuf,
        #[source]
        source: ConsoleError,
    },
    #[error("{0}")]
    Snapshot(String),
    #[error("the guest's init failed: {reason}\nconsole showed last:\n{console}\nartifacts: {artifacts}")]
    InitFailed {
        reason: String,
        console: String,
        artifacts: PathBuf,
    },
    #[error("{step} failed (artifacts: {artifacts})")]
    Qmp {
        step: String,
        artifacts: PathBuf,
        #[source]
        source: QmpError,
    },
    #[error("{}", never_ready_message(.stall, .waited, .state, .console, .artifacts))]
    NeverReady {
        stall: BootStall,
        waited: Duration,
        state: MachineState,
        console: String,
        artifacts: PathBuf,
    },
    #[error("QEMU did not open its {what} socket {path} within {timeout:?}; QEMU said:\n{stderr}")]
    SocketTimeout {
        what: &'static str,
        path: PathBuf,
        timeout: Duration,
        stderr: String,
    },
}

/// Boot timings, written to `timings.json`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    /// From spawning QEMU to `RIG-READY`.
    pub boot_to_ready_s: f64,
    pub kernel_release: String,
}

pub struct Vm {
    pub board: Board,
    pub accel: Accel,
    pub timeouts: Timeouts,
    qemu: Supervised,
    console: Console,
    qmp: Qmp,
    run_dir: RunDir,
    timings: Timings,
    events: Events,
    // Holds the sockets' directory until the VM is gone (unix socket paths must stay short).
    sockets: crate::host::cleanup::TempDir,
}

/// The last lines QEMU wrote to stderr, without its notice that it waits for a socket client
/// (`info: QEMU waiting for connection on …`: every boot prints it; it explains nothing).
fn qemu_said(qemu: &Supervised, max_lines: usize) -> String {
    let said = qemu.stderr_tail(max_lines + 2);
    let lines: Vec<&str> = said.lines().filter(|l| !is_socket_wait_notice(l)).collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// QEMU's `-chardev socket,server=on,wait=on` notice.
pub(crate) fn is_socket_wait_notice(line: &str) -> bool {
    line.contains("info: QEMU waiting for connection on")
}

/// `Some(reason)` once QEMU has exited: the abort check for every wait.
fn qemu_gone(qemu: &mut Supervised) -> Option<String> {
    match qemu.try_wait() {
        Ok(Some(st)) => Some(match qemu_said(qemu, 10) {
            said if said.trim().is_empty() => format!("QEMU exited ({})", describe_status(&st)),
            said => format!("QEMU exited ({}); QEMU said: {said}", describe_status(&st)),
        }),
        Ok(None) => None,
        Err(e) => Some(e.to_string()),
    }
}

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
        std::fs::write(&argv_path, crate::host::process::shell_line(&argv) + "\n").map_err(
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

    fn write_timings(&self) {
        if let Ok(s) = serde_json::to_string_pretty(&self.timings) {
            let _ = std::fs::write(self.run_dir.file("timings.json"), s + "\n");
        }
    }

    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    pub fn run_dir(&self) -> &RunDir {
        &self.run_dir
    }

    /// A path for another socket of this VM, in its private 0700 sockets folder.
    pub(super) fn socket_path(&self, name: &str) -> std::path::PathBuf {
        self.sockets.path().join(name)
    }

    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    pub fn qemu_pid(&self) -> u32 {
        self.qemu.pid()
    }

    /// `Some(reason)` once QEMU has exited.
    pub fn exited(&mut self) -> Option<String> {
        qemu_gone(&mut self.qemu)
    }

    /// Like [`Vm::exited`], but once QEMU has closed the console (its sockets close just before
    /// the process ends) waits up to `grace` for the process, so the exit is not missed by a
    /// few milliseconds.
    pub fn exited_settled(&mut self, grace: Duration) -> Option<String> {
        if self.console.hung_up() {
            let _ = self.qemu.wait_timeout(grace);
        }
        self.exited()
    }

    /// Why QEMU stopped; meaningful once [`Vm::exited`] says it has.
    pub fn exit_cause(&mut self) -> ExitCause {
        ExitCause::from_events(&self.qmp.final_events(Duration::from_secs(2)))
    }

    /// Attaches the user's terminal to the console (`rig console`).
    pub fn interact(&mut self) -> Result<(), VmError> {
        let r = {
            let Vm { console, qemu, .. } = self;
            console.interact(&mut || qemu_gone(qemu))
        };
        r.map_err(|source| VmError::Console {
            step: "interactive console".into(),
            artifacts: self.run_dir.path().to_path_buf(),
            source,
        })
    }

    /// The console with an abort check that fires once QEMU has exited: what every wait on the
    /// console needs.
    pub fn console_watched(&mut self) -> (&mut Console, impl FnMut() -> Option<String> + '_) {
        let Vm { console, qemu, .. } = self;
        (console, move || qemu_gone(qemu))
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    fn qmp_err(&self, step: &str, source: QmpError) -> VmError {
        VmError::Qmp {
            step: step.into(),
            artifacts: self.run_dir.path().to_path_buf(),
            source,
        }
    }

    /// Waits for a QMP event while watching QEMU.
    pub fn wait_qmp_event(
        &mut self,
        name: &str,
        data_match: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<serde_json::Value, VmError> {
        let r = {
            let Vm { qmp, qemu, .. } = self;
            qmp.wait_event(name, data_match, timeout, &mut || qemu_gone(qemu))
        };
        r.map_err(|e| self.qmp_err(&format!("waiting for {name}"), e))
    }

    /// Waits for a QMP event for which `matches` holds, while watching QEMU.
    pub fn wait_qmp_event_matching(
        &mut self,
        name: &str,
        matches: &dyn Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<serde_json::Value, VmError> {
        let r = {
            let Vm { qmp, qemu, .. } = self;
            qmp.wait_event_matching(name, "", matches, timeout, &mut || qemu_gone(qemu))
        };
        r.map_err(|e| self.qmp_err(&format!("waiting for {name}"), e))
    }

    /// Runs any QMP command by name.
    pub fn qmp_raw(
        &mut self,
        name: &str,
        arguments: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, VmError> {
        self.events.emit(Event::QmpCommand {
            command: name.into(),
        });
        self.qmp
            .execute_raw(name, arguments)
            .map_err(|e| self.qmp_err(name, e))
    }

    /// `device_del` with an explicit deadline for `DEVICE_DELETED`.
    pub fn device_del_within(&mut self, id: &str, timeout: Duration) -> Result<(), VmError> {
        self.events.emit(Event::QmpCommand {
            command: format!("device_del {id}"),
        });
        let r = {
            let Vm { qmp, qemu, .. } = self;
            qmp.device_del(id, timeout, &mut || qemu_gone(qemu))
        };
        r.map_err(|e| self.qmp_err(&format!("device_del {id}"), e))
    }

    /// Hot-plugs a PCIe device (`driver`, `id`) onto root port `rpN`.
    pub fn pci_add(&mut self, driver: &str, id: &str, root_port: usize) -> Result<(), VmError> {
        self.pci_add_with(driver, id, &Board::root_port_id(root_port), &[])
    }

    /// Hot-plugs a device onto the named bus with extra properties.
    pub fn pci_add_with(
        &mut self,
        driver: &str,
        id: &str,
        bus: &str,
        extra: &[(&str, serde_json::Value)],
    ) -> Result<(), VmError> {
        self.events.emit(Event::QmpCommand {
            command: format!("device_add {driver} id={id} bus={bus}"),
        });
        let mut props = vec![("bus", serde_json::Value::String(bus.into()))];
        props.extend(extra.iter().cloned());
        if driver.contains("e1000") || driver.contains("virtio-net") {
            // No boot ROM needed for hot-plugged NICs.
            props.push(("romfile", serde_json::Value::String(String::new())));
        }
        self.qmp
            .device_add(driver, id, &props)
            .map_err(|e| self.qmp_err(&format!("device_add {id}"), e))
    }

    /// `device_del` and wait for `DEVICE_DELETED`.
    pub fn device_del(&mut self, id: &str) -> Result<(), VmError> {
        self.events.emit(Event::QmpCommand {
            command: format!("device_del {id}"),
        });
        let timeout = self.timeouts.unplug;
        let r = {
            let Vm { qmp, qemu, .. } = self;
            qmp.device_del(id, timeout, &mut || qemu_gone(qemu))
        };
        r.map_err(|e| self.qmp_err(&format!("device_del {id}"), e))
    }

    /// Asks QEMU to quit, waits briefly, then makes sure it is gone; `console.log` then holds
    /// everything the guest printed. Artifacts stay.
    pub fn shutdown(mut self) {
        if self.exited().is_none() {
            let _ = self.qmp.quit();
            let _ = self.qemu.wait_timeout(Duration::from_secs(5));
        }
        self.qemu.terminate();
        self.console.finish(Duration::from_secs(2));
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
