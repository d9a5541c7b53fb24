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
use crate::machine::console::{Console, ConsoleError};
pub use crate::machine::exit::{ExitCause, QemuExit};
use crate::machine::qemu::{self, Accel};
use crate::machine::qmp::{Qmp, QmpError};
use crate::machine::state::{never_ready_message, process_stopped, BootStall, MachineState};
use crate::machine::timeouts::Timeouts;
use std::path::PathBuf;
use std::time::Duration;

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

impl VmError {
    /// The kernel ran and then hung at boot while QEMU ran the guest: the kernel's failure.
    pub fn is_boot_hang(&self) -> bool {
        matches!(
            self,
            VmError::NeverReady {
                stall: BootStall::Silent(_),
                state: MachineState::Running,
                ..
            }
        )
    }
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
    pub(super) qemu: Supervised,
    pub(super) console: Console,
    pub(super) qmp: Qmp,
    pub(super) run_dir: RunDir,
    pub(super) timings: Timings,
    pub(super) events: Events,
    // Holds the sockets' directory until the VM is gone (unix socket paths must stay short).
    pub(super) sockets: crate::host::cleanup::TempDir,
    /// The dump monitor's watch, for a machine that can be dumped. After `qemu`: dropping the
    /// VM ends QEMU first, which ends the watch's thread.
    pub(super) vmcore: Option<super::vmcore::Watch>,
}

/// The last lines QEMU wrote to stderr, without its notice that it waits for a socket client
/// (`info: QEMU waiting for connection on …`: every boot prints it; it explains nothing).
pub(super) fn qemu_said(qemu: &Supervised, max_lines: usize) -> String {
    let said = qemu.stderr_tail(max_lines + 2);
    let lines: Vec<&str> = said.lines().filter(|l| !is_socket_wait_notice(l)).collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// QEMU's `-chardev socket,server=on,wait=on` notice.
pub(crate) fn is_socket_wait_notice(line: &str) -> bool {
    line.contains("info: QEMU waiting for connection on")
}

/// `Some(reason)` once QEMU has exited: the abort check for every wait.
pub(super) fn qemu_gone(qemu: &mut Supervised) -> Option<String> {
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
    pub(super) fn write_timings(&self) {
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

    /// The dump monitor's watch, when the machine can be dumped.
    pub fn vmcore(&self) -> Option<&super::vmcore::Watch> {
        self.vmcore.as_ref()
    }

    /// The dump monitor's watch, taken out so that it can be finished after QEMU is stopped.
    pub fn take_vmcore(&mut self) -> Option<super::vmcore::Watch> {
        self.vmcore.take()
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

    /// QEMU closed the console: it is exiting (or, rarely, stuck on the way out).
    pub fn console_hung_up(&self) -> bool {
        self.console.hung_up()
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

impl Vm {
    /// What QEMU is doing with the guest now; never waits longer than a QMP command's timeout
    /// (and not at all for a stopped process).
    pub fn machine_state(&mut self) -> MachineState {
        if let Some(why) = self.exited() {
            return MachineState::Gone(why);
        }
        if process_stopped(self.qemu_pid()) {
            return MachineState::ProcessStopped;
        }
        match self.qmp_raw("query-status", None) {
            Ok(s) if s["status"] == "running" => MachineState::Running,
            Ok(s) => MachineState::NotRunning(s["status"].to_string()),
            Err(e) => MachineState::Unresponsive(crate::host::text::error_chain(&e)),
        }
    }
}
