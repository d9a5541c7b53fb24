//! The step executor: runs one step at a time against the booted guest and records what did not
//! happen as asked.

use super::result::StepFailure;
use super::shell::{overlay_remove_cmd, poll_script};
use crate::guest::transport::{CommandOutput, Via};
use crate::guest::{Guest, GuestError};
use crate::host::artifacts::RunDir;
use crate::host::events::{Event, Events};
use crate::scenario::{self, Since, Step, StepKind};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A guest command that did not finish in time (as opposed to a guest that died).
fn is_timeout(e: &GuestError) -> bool {
    use crate::guest::transport::TransportError;
    matches!(e, GuestError::Transport { source, .. } if matches!(**source, TransportError::Timeout { .. }))
}

/// An error and its sources, one line (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// Why a step failed.
pub(super) enum StepError {
    /// The kernel did not do what the step asked.
    Kernel(String),
    /// Rig could not carry the step out.
    Rig(String),
}

impl From<crate::machine::vm::VmError> for StepError {
    fn from(e: crate::machine::vm::VmError) -> Self {
        match &e {
            // A guest command that never finished or a guest that died: the kernel's doing,
            // unless proven otherwise (the verdict still needs kernel evidence or a failed step).
            crate::machine::vm::VmError::Qmp {
                source: crate::machine::qmp::QmpError::EventTimeout { .. },
                ..
            } => StepError::Kernel(error_chain(&e)),
            _ => StepError::Rig(error_chain(&e)),
        }
    }
}

impl From<GuestError> for StepError {
    fn from(e: GuestError) -> Self {
        match e {
            GuestError::Vm(v) => (*v).into(),
            GuestError::Transport { ref source, .. }
                if matches!(
                    **source,
                    crate::guest::transport::TransportError::Timeout { .. }
                ) =>
            {
                StepError::Kernel(error_chain(&e))
            }
            other => StepError::Rig(error_chain(&other)),
        }
    }
}

pub(super) struct Exec<'a> {
    pub(super) guest: &'a mut Guest,
    pub(super) log: Arc<Mutex<String>>,
    pub(super) events: Events,
    pub(super) deadline: Instant,
    /// PCI device id → root port it sits on.
    pub(super) ports: HashMap<String, String>,
    /// DIMM id → its memory block numbers in the guest.
    pub(super) dimms: HashMap<String, Vec<u64>>,
    /// virtio-mem device id → the guest memory blocks its region spans.
    pub(super) virtio: HashMap<String, super::virtio_mem::BlockRange>,
    /// DIMMs whose `device_del` went out without waiting: their `DEVICE_DELETED` is pending.
    pub(super) unplugging: std::collections::HashSet<String>,
    /// Overlay file → compiled overlay, and whether this boot's guest has it.
    pub(super) overlays: HashMap<PathBuf, super::overlays::CompiledOverlay>,
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

    /// A failure of something the engine sets up itself (not a step of the file).
    pub(super) fn fail_setup(&mut self, what: &str, e: StepError) {
        let (message, infra) = match e {
            StepError::Kernel(m) => (m, false),
            StepError::Rig(m) => (m, true),
        };
        self.failures.push(StepFailure {
            step: what.into(),
            at: String::new(),
            message,
            infra,
        });
    }

    pub(super) fn fail(&mut self, step: &Step, e: StepError) {
        let (message, infra) = match e {
            StepError::Kernel(m) => (m, false),
            StepError::Rig(m) => (m, true),
        };
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
        match self.guest.run(cmd, t, via) {
            Ok(out) => Ok(out),
            Err(e) if is_timeout(&e) => Err(self.diagnose_timeout(&e)),
            Err(e) => Err(e.into()),
        }
    }

    /// A guest command ran out of time: asks whether the guest still answers on the console
    /// (then the kernel or the command hangs: a kernel failure), or QEMU still answers QMP with
    /// the console dead (the guest stopped answering: a kernel failure too), or neither (QEMU
    /// itself is stuck: host-side, infra).
    fn diagnose_timeout(&mut self, e: &GuestError) -> StepError {
        let probe = Duration::from_secs(5).mul_f64(self.timeout_scale);
        let what = error_chain(e);
        if self.guest.run("true", probe, Via::Serial).is_ok() {
            self.console_dead = false;
            return StepError::Kernel(format!(
                "{what}\n(the guest still answers on the console: the command or the kernel hangs)"
            ));
        }
        self.console_dead = true;
        match self.guest.vm.qmp_raw("query-status", None) {
            Ok(status) if status["status"] == "running" => StepError::Kernel(format!(
                "{what}\n(the console is dead too, while QEMU runs the guest: the guest stopped \
                 answering)"
            )),
            Ok(status) => {
                self.machine_stuck = true;
                StepError::Rig(format!(
                    "{what}\n(QEMU is not running the guest: status {})",
                    status["status"]
                ))
            }
            Err(q) => {
                self.machine_stuck = true;
                StepError::Rig(format!(
                    "{what}\n(neither the console nor QMP answers: QEMU itself is stuck: {})",
                    error_chain(&q)
                ))
            }
        }
    }

    /// Runs a guest command and requires status 0.
    pub(super) fn sh_ok(
        &mut self,
        cmd: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<String, StepError> {
        let out = self.sh(cmd, timeout, Via::Serial)?;
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
                    .map_err(|e| StepError::Rig(error_chain(&e)))?;
                if let Some(w) = &q.wait_event {
                    let w = w.clone();
                    let pred = move |e: &Value| {
                        w.matches(
                            e.get("event").and_then(Value::as_str).unwrap_or_default(),
                            e.get("data").unwrap_or(&Value::Null),
                        )
                    };
                    let name = q
                        .wait_event
                        .as_ref()
                        .map(|w| w.event.clone())
                        .unwrap_or_default();
                    self.guest
                        .vm
                        .wait_qmp_event_matching(&name, &pred, q.timeout)?;
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
                    Since::Step => self.log.lock().map(|l| l.len()).unwrap_or(0),
                };
                let deadline = Instant::now() + w.timeout.min(self.remaining());
                loop {
                    let found = self
                        .log
                        .lock()
                        .map(|l| {
                            l.get(from..)
                                .is_some_and(|t| w.regex.is_match(&t.replace('\r', "")))
                        })
                        .unwrap_or(false);
                    if found {
                        return Ok(());
                    }
                    if let Some(reason) = self.guest.vm.exited() {
                        return Err(StepError::Rig(reason));
                    }
                    if Instant::now() >= deadline {
                        return Err(StepError::Kernel(format!(
                            "kernel log never matched /{}/ within {:?}",
                            w.regex.as_str(),
                            w.timeout
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
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
