//! The step executor: runs one step at a time against the booted guest and records what did not
//! happen as asked.

use super::log::{KernelLog, Waited};
use super::result::StepFailure;
use super::shell::{overlay_remove_cmd, poll_script};
use crate::guest::transport::{CommandOutput, Via};
use crate::guest::{Guest, GuestError};
use crate::host::artifacts::RunDir;
use crate::host::events::{Event, Events};
use crate::machine::state::MachineState;
use crate::scenario::{self, Since, Step, StepKind};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A guest command that did not finish in time (as opposed to a guest that died).
fn is_timeout(e: &GuestError) -> bool {
    use crate::guest::transport::TransportError;
    matches!(e, GuestError::Transport { source, .. } if matches!(**source, TransportError::Timeout { .. }))
}

pub use crate::host::text::error_chain;

/// Why a step failed. The last three are decided when the failure is recorded
/// ([`Exec::resolve`]), by asking whether QEMU still runs the guest and whether the guest still
/// answers: a host that stopped QEMU or a broken ssh channel is rig's failure, not the kernel's.
pub(super) enum StepError {
    /// The kernel did not do what the step asked.
    Kernel(String),
    /// Rig could not carry the step out.
    Rig(String),
    /// Something the guest had to do in time did not happen (a QMP event such as
    /// `DEVICE_DELETED` never came): the kernel's failure if QEMU runs the guest.
    NotDone(String),
    /// A guest command did not finish in time: the kernel's (the command or the kernel hangs)
    /// if the guest still answers or QEMU runs it with its console dead; rig's if QEMU does not.
    Hung(String),
    /// rig's channel into the guest (ssh) broke: rig's failure while the guest still answers on
    /// its console; the kernel's when the whole guest stopped answering while QEMU runs it.
    ChannelLost(String),
    /// QEMU did not answer a QMP command: rig's failure always; what QEMU is doing says why
    /// (stopped on the host, stuck) and whether the run can go on.
    QemuSilent(String),
}

impl From<crate::machine::vm::VmError> for StepError {
    fn from(e: crate::machine::vm::VmError) -> Self {
        match &e {
            crate::machine::vm::VmError::Qmp {
                source: crate::machine::qmp::QmpError::EventTimeout { .. },
                ..
            } => StepError::NotDone(error_chain(&e)),
            crate::machine::vm::VmError::Qmp {
                source: crate::machine::qmp::QmpError::Io { .. },
                ..
            } => StepError::QemuSilent(error_chain(&e)),
            _ => StepError::Rig(error_chain(&e)),
        }
    }
}

impl From<crate::machine::qmp::QmpError> for StepError {
    fn from(e: crate::machine::qmp::QmpError) -> Self {
        use crate::machine::qmp::QmpError;
        match e {
            QmpError::EventTimeout { .. } => StepError::NotDone(error_chain(&e)),
            QmpError::Io { .. } => StepError::QemuSilent(error_chain(&e)),
            _ => StepError::Rig(error_chain(&e)),
        }
    }
}

impl From<GuestError> for StepError {
    fn from(e: GuestError) -> Self {
        use crate::guest::transport::TransportError;
        match e {
            GuestError::Vm(v) => (*v).into(),
            GuestError::Transport { ref source, .. } => match **source {
                TransportError::Timeout { .. } => StepError::Hung(error_chain(&e)),
                TransportError::Disconnected { .. } => StepError::ChannelLost(error_chain(&e)),
                _ => StepError::Rig(error_chain(&e)),
            },
            other => StepError::Rig(error_chain(&other)),
        }
    }
}

impl StepError {
    /// A guest command over ssh that failed: by how it failed.
    pub(super) fn from_transport(e: &crate::guest::transport::TransportError) -> Self {
        use crate::guest::transport::TransportError;
        match e {
            TransportError::Timeout { .. } => StepError::Hung(error_chain(e)),
            TransportError::Disconnected { .. } => StepError::ChannelLost(error_chain(e)),
            TransportError::GuestDied { .. } | TransportError::Other { .. } => {
                StepError::Rig(error_chain(e))
            }
        }
    }
}

/// What a probe of a guest that did not answer found.
enum Probe {
    /// The guest's console shell answers.
    Answers,
    /// The console is dead; what QEMU is doing with the guest.
    Silent(MachineState),
}

pub(super) struct Exec<'a> {
    pub(super) guest: &'a mut Guest,
    /// The kernel console's lines since QEMU started.
    pub(super) log: Arc<KernelLog>,
    pub(super) events: Events,
    pub(super) deadline: Instant,
    /// PCI device id → root port it sits on.
    pub(super) ports: HashMap<String, String>,
    /// DIMM id → its memory block numbers in the guest.
    pub(super) dimms: HashMap<String, Vec<u64>>,
    /// virtio-mem device id → the guest memory blocks its region spans.
    pub(super) virtio: HashMap<String, super::mem_blocks::BlockRange>,
    /// DIMMs whose `device_del` went out without waiting: their `DEVICE_DELETED` is pending.
    pub(super) unplugging: std::collections::HashSet<String>,
    /// Overlay file → compiled overlay, and whether this boot's guest has it.
    pub(super) overlays: HashMap<PathBuf, super::compiled_overlay::CompiledOverlay>,
    pub(super) dir: RunDir,
    pub(super) failures: Vec<StepFailure>,
    pub(super) par_seq: u32,
    /// The machine's timeout scale (see [`crate::machine::timeouts::timeout_scale`]).
    pub(super) timeout_scale: f64,
    /// The console stopped answering (a probe after a command timeout got nothing back).
    pub(super) console_dead: bool,
    /// QEMU is not running the guest or does not answer QMP: nothing more can be done with it.
    pub(super) machine_stuck: bool,
    /// This repetition's random stream (see [`super::seed`]).
    pub(super) rng: rand_chacha::ChaCha8Rng,
}

impl Exec<'_> {
    pub(super) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// A step's own timeout, cut to what is left of the scenario's: no wait outlives the run.
    pub(super) fn clamp(&self, timeout: Duration) -> Duration {
        timeout.min(self.remaining())
    }

    /// A failure's message, and whether it is rig's (infra) rather than the kernel's: decided
    /// now for the failures that depend on the machine's state (see [`StepError`]).
    pub(super) fn resolve(&mut self, e: StepError) -> (String, bool) {
        match e {
            StepError::Kernel(m) => (m, false),
            StepError::Rig(m) => (m, true),
            StepError::QemuSilent(m) => {
                let state = self.guest.vm.machine_state();
                self.machine_stuck |= state.is_stuck() && !matches!(state, MachineState::Gone(_));
                (format!("{m}\n({state})"), true)
            }
            StepError::NotDone(m) => match self.guest.vm.machine_state() {
                MachineState::Running => (m, false),
                other => {
                    self.machine_stuck |= !matches!(other, MachineState::Gone(_));
                    (format!("{m}\n({other})"), true)
                }
            },
            StepError::Hung(m) => self.by_probe(
                m,
                "the guest still answers on the console: the command or the kernel hangs",
                false,
            ),
            StepError::ChannelLost(m) => self.by_probe(
                m,
                "the guest still answers on its console: rig's ssh channel broke, not the kernel",
                true,
            ),
        }
    }

    /// A failure decided by [`Exec::probe`]: while the guest answers on its console, `answers`
    /// says why and `answers_infra` whose it is; a dead console while QEMU runs the guest is the
    /// kernel's; anything else is the host's.
    fn by_probe(&mut self, m: String, answers: &str, answers_infra: bool) -> (String, bool) {
        match self.probe() {
            Probe::Answers => (format!("{m}\n({answers})"), answers_infra),
            Probe::Silent(MachineState::Running) => (
                format!(
                    "{m}\n(the console is dead too, while QEMU runs the guest: the guest stopped \
                     answering)"
                ),
                false,
            ),
            Probe::Silent(other) => (format!("{m}\n({other})"), true),
        }
    }

    /// Asks whether the guest still answers on the console, and if not, what QEMU is doing:
    /// sets `console_dead` and `machine_stuck` from what it finds.
    fn probe(&mut self) -> Probe {
        if self.console_dead && self.machine_stuck {
            return Probe::Silent(self.guest.vm.machine_state());
        }
        // A stopped QEMU would let the probe wait out its whole timeout: ask the host first.
        let state = self.guest.vm.machine_state();
        if state != MachineState::Running {
            self.console_dead = true;
            self.machine_stuck |= !matches!(state, MachineState::Gone(_));
            return Probe::Silent(state);
        }
        let probe = Duration::from_secs(5).mul_f64(self.timeout_scale);
        if self.guest.run("true", probe, Via::Hvc).is_ok() {
            self.console_dead = false;
            return Probe::Answers;
        }
        self.console_dead = true;
        let state = self.guest.vm.machine_state();
        self.machine_stuck |= state.is_stuck() && !matches!(state, MachineState::Gone(_));
        Probe::Silent(state)
    }

    /// A failure of something the engine sets up itself (not a step of the file).
    pub(super) fn fail_setup(&mut self, what: &str, e: StepError) {
        let (message, infra) = self.resolve(e);
        self.failures.push(StepFailure {
            step: what.into(),
            at: String::new(),
            message,
            infra,
        });
    }

    pub(super) fn fail(&mut self, step: &Step, e: StepError) {
        let (message, infra) = self.resolve(e);
        self.failures.push(StepFailure {
            step: step.label(),
            at: format!("{}:{}:{}", step.at.file, step.at.line, step.at.column),
            message,
            infra,
        });
    }

    /// Runs one step; returns true when the run must stop (QEMU gone, scenario timeout, or the
    /// console dead: every later guest command would wait out its timeout and probe again).
    pub(super) fn step(&mut self, step: &Step) -> bool {
        if self.remaining().is_zero() {
            self.fail(
                step,
                StepError::Kernel("scenario timeout reached before this step".into()),
            );
            return true;
        }
        let r = self.exec(step);
        if let Err(e) = r {
            // `may_fail` covers the errors a race may give, not a console the step left dead.
            if !step.may_fail || self.console_dead {
                self.fail(step, e);
            }
        }
        self.guest.vm.exited().is_some()
            || self.remaining().is_zero()
            || self.machine_stuck
            || self.console_dead
    }

    pub(super) fn sh(
        &mut self,
        cmd: &str,
        timeout: Duration,
        via: Via,
    ) -> Result<CommandOutput, StepError> {
        let t = timeout.min(self.remaining().max(Duration::from_secs(1)));
        self.guest.run(cmd, t, via).map_err(|e| {
            let hung = is_timeout(&e);
            let e = StepError::from(e);
            if hung {
                // Decided now: the next command must know whether the console still answers.
                let (m, infra) = self.resolve(e);
                if infra {
                    StepError::Rig(m)
                } else {
                    StepError::Kernel(m)
                }
            } else {
                e
            }
        })
    }

    /// The console closed while a step waited on the kernel log: QEMU exited. Why (a guest
    /// panic or reset is the kernel's, and its report decides the verdict) is QEMU's to say.
    pub(super) fn console_closed(&mut self) -> StepError {
        match self.guest.vm.exited_settled(Duration::from_secs(5)) {
            Some(reason) => StepError::Rig(reason),
            None => StepError::Rig("the kernel console closed while QEMU still runs".into()),
        }
    }

    /// Runs a guest command and requires status 0.
    pub(super) fn sh_ok(
        &mut self,
        cmd: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<String, StepError> {
        let out = self.sh(cmd, timeout, Via::Hvc)?;
        if out.status != 0 {
            return Err(StepError::Kernel(format!(
                "{what}: exit status {}: {}",
                out.status,
                out.stdout.trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Waits in the guest until the shell condition `cond` holds; `what` names the failure.
    pub(super) fn wait_guest(
        &mut self,
        cond: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<(), StepError> {
        // The console deadline leaves room for the guest's own loop to give up first.
        self.sh_ok(
            &poll_script(cond, timeout),
            timeout + Duration::from_secs(30),
            what,
        )
        .map(drop)
    }

    pub(super) fn exec(&mut self, step: &Step) -> Result<(), StepError> {
        match &step.kind {
            StepKind::Guest(g) => {
                let out = self.sh(&g.run, g.timeout, g.via)?;
                if !g.expect_status.accepts(out.status) {
                    let mut msg = format!("exit status {}", out.status);
                    let text = format!(
                        "{}{}",
                        out.stdout,
                        out.stderr.as_deref().unwrap_or_default()
                    );
                    if !text.trim().is_empty() {
                        msg.push_str(&format!(": {}", text.trim()));
                    }
                    return Err(StepError::Kernel(msg));
                }
                Ok(())
            }
            StepKind::DevlinkReload(_) | StepKind::NetdevsimNew(_) | StepKind::NetdevsimDel(_) => {
                let (cmd, via) = super::shell::shell_command(&step.kind).expect("shell step");
                let timeout = step.kind.timeout();
                let out = self.sh(&cmd, timeout, via)?;
                if out.status != 0 {
                    return Err(StepError::Kernel(format!(
                        "`{cmd}` exit status {}: {}{}",
                        out.status,
                        out.stdout.trim(),
                        out.stderr.as_deref().unwrap_or_default().trim()
                    )));
                }
                Ok(())
            }
            StepKind::Qmp(q) => {
                let args = (!q.arguments.is_empty()).then(|| Value::Object(q.arguments.clone()));
                self.guest
                    .vm
                    .qmp_raw(&q.execute, args)
                    .map_err(StepError::from)?;
                if let Some(w) = &q.wait_event {
                    let w = w.clone();
                    let pred = move |e: &Value| {
                        w.matches(
                            e.get("event").and_then(Value::as_str).unwrap_or_default(),
                            e.get("data").unwrap_or(&Value::Null),
                        )
                    };
                    let t = self.clamp(q.timeout);
                    let name = q
                        .wait_event
                        .as_ref()
                        .map(|w| w.event.clone())
                        .unwrap_or_default();
                    self.guest.vm.wait_qmp_event_matching(&name, &pred, t)?;
                }
                Ok(())
            }
            StepKind::PciHotplug(p) => self.pci_hotplug(p),
            StepKind::PciUnplug(u) => self.pci_unplug(u),
            StepKind::OverlayLoad(o) => self.overlay_load(o),
            StepKind::OverlayUnload(o) => self
                .sh_ok(
                    &overlay_remove_cmd(&o.id),
                    o.timeout,
                    &format!("removing overlay {}", o.id),
                )
                .map(drop),
            StepKind::MemoryAdd(m) => self.memory_add(m),
            StepKind::MemoryOnline(_) | StepKind::MemoryOffline(_) => {
                let cmd = self.memory_state_cmd(&step.kind)?;
                self.sh_ok(&cmd, step.kind.timeout(), "changing memory block state")
                    .map(drop)
            }
            StepKind::MemoryRemove(m) => self.memory_remove(m),
            StepKind::Parallel(p) => self.parallel(step, p),
            StepKind::Repeat(r) => {
                let start = Instant::now();
                let mut n = 0u32;
                loop {
                    let more = match r.count {
                        scenario::RepeatCount::Times(t) => n < t,
                        scenario::RepeatCount::For(d) => start.elapsed() < d,
                    };
                    if !more {
                        break;
                    }
                    n += 1;
                    self.events.emit(Event::StepProgress {
                        step: step.label(),
                        message: format!("round {n}"),
                        fraction: match r.count {
                            scenario::RepeatCount::Times(t) => Some(n as f64 / t as f64),
                            scenario::RepeatCount::For(_) => None,
                        },
                    });
                    for child in &r.steps {
                        if self.step(child) {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }
            StepKind::WaitLog(w) => {
                let from = match w.since {
                    Since::Boot => 0,
                    Since::Step => self.log.mark(),
                };
                let deadline = Instant::now() + w.timeout.min(self.remaining());
                match self
                    .log
                    .wait(from, deadline, |l| w.regex.is_match(l).then_some(()))
                {
                    Waited::Found(()) => Ok(()),
                    Waited::Closed => Err(self.console_closed()),
                    Waited::Timeout => Err(StepError::Kernel(format!(
                        "kernel log never matched /{}/ within {:?}",
                        w.regex.as_str(),
                        w.timeout
                    ))),
                }
            }
            StepKind::Sleep(d) => {
                std::thread::sleep((*d).min(self.remaining()));
                Ok(())
            }
            StepKind::MemoryResize(m) => self.memory_resize(m),
            StepKind::OfUnittest(u) => self.of_unittest(u),
        }
    }
}
