//! The step engine: runs one step at a time against the booted guest, keeps what the step
//! kinds share ([`Engine`]), and records what did not happen as asked.

mod error;
pub(crate) mod log;
pub(crate) mod shell;

use super::Step;
use crate::guest::transport::{CommandOutput, Via};
use crate::guest::Guest;
use crate::host::artifacts::RunDir;
use crate::host::events::Events;
use crate::machine::state::MachineState;
use crate::machine::vm::Vm;
use error::is_timeout;
pub use error::Failure;
pub(crate) use error::StepError;
use log::KernelLog;
use shell::poll_script;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a probe of a guest that did not answer found.
enum Probe {
    /// The guest's console shell answers.
    Answers,
    /// The console is dead; what QEMU is doing with the guest.
    Silent(MachineState),
}

/// The engine that runs one repetition's steps against its booted guest, and the state the
/// step kinds share: the guest, the kernel log, the scenario's deadline, what failed, whether
/// the guest still answers, and each family's own state ([`Engine::kept`]).
pub(crate) struct Engine<'a> {
    guest: &'a mut Guest,
    /// The kernel console's lines since QEMU started.
    log: Arc<KernelLog>,
    events: Events,
    deadline: Instant,
    dir: RunDir,
    failures: Vec<Failure>,
    /// How many `parallel` steps ran (each gets its own guest folder).
    par_seq: u32,
    /// The machine's timeout scale (see [`crate::machine::timeouts::timeout_scale`]).
    timeout_scale: f64,
    /// The console stopped answering (a probe after a command timeout got nothing back).
    console_dead: bool,
    /// QEMU is not running the guest or does not answer QMP: nothing more can be done with it.
    machine_stuck: bool,
    /// This repetition's random stream (`run::seed`).
    rng: rand_chacha::ChaCha8Rng,
    /// What the families keep between steps of this boot (the root port each hot-plugged PCI
    /// device sits on, a DIMM's memory blocks, compiled overlays, …), one value per type.
    kept: HashMap<TypeId, Box<dyn Any>>,
}

/// What the steps left: their failures, and whether the guest can still be asked anything.
pub(crate) struct Outcome {
    pub(crate) failures: Vec<Failure>,
    pub(crate) console_dead: bool,
    pub(crate) machine_stuck: bool,
}

impl<'a> Engine<'a> {
    /// An engine for the booted `guest`; the steps must end by `deadline`.
    pub(crate) fn new(
        guest: &'a mut Guest,
        log: Arc<KernelLog>,
        events: Events,
        deadline: Instant,
        dir: RunDir,
        timeout_scale: f64,
        rng: rand_chacha::ChaCha8Rng,
    ) -> Self {
        Engine {
            guest,
            log,
            events,
            deadline,
            dir,
            failures: Vec::new(),
            par_seq: 0,
            timeout_scale,
            console_dead: false,
            machine_stuck: false,
            rng,
            kept: HashMap::new(),
        }
    }

    /// The failures and the guest's state once the steps are done.
    pub(crate) fn finish(self) -> Outcome {
        Outcome {
            failures: self.failures,
            console_dead: self.console_dead,
            machine_stuck: self.machine_stuck,
        }
    }
}

/// How long a step waits for QEMU's process to end once QEMU has closed the console.
const QEMU_EXIT_GRACE: Duration = Duration::from_secs(5);

impl Engine<'_> {
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// A step's own timeout, cut to what is left of the scenario's: no wait outlives the run.
    pub(crate) fn clamp(&self, timeout: Duration) -> Duration {
        timeout.min(self.remaining())
    }

    /// A failure's message, and whether it is rig's (infra) rather than the kernel's: decided
    /// now for the failures that depend on the machine's state (see [`StepError`]).
    pub(crate) fn resolve(&mut self, e: StepError) -> (String, bool) {
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

    /// A failure decided by [`Engine::probe`]: while the guest answers on its console, `answers`
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
    pub(crate) fn fail_setup(&mut self, what: &str, e: StepError) {
        let (message, infra) = self.resolve(e);
        self.failures.push(Failure {
            step: what.into(),
            at: String::new(),
            message,
            infra,
        });
    }

    pub(crate) fn fail(&mut self, step: &Step, e: StepError) {
        let (message, infra) = self.resolve(e);
        self.failures.push(Failure {
            step: step.label(),
            at: format!("{}:{}:{}", step.at.file, step.at.line, step.at.column),
            message,
            infra,
        });
    }

    /// The run stopped before `next` although the step that stopped it recorded no failure (a
    /// `qmp: {execute: quit}`, a guest that died right after a step succeeded, the scenario's
    /// time used up): `next`, and so every step after it, did not run. Whose failure that is
    /// follows from why: QEMU's exit is rig's unless the guest ended itself (the verdict asks
    /// QEMU), a used-up scenario time is the kernel's, as for a step that starts too late.
    fn not_run(&mut self, next: &Step) {
        let e = if let Some(exit) = self.guest.vm.exited() {
            StepError::Rig(format!("not run, nor any step after it: {exit}"))
        } else if self.remaining().is_zero() {
            StepError::Kernel("scenario timeout reached before this step".into())
        } else {
            StepError::Rig("not run, nor any step after it: the guest's console is gone".into())
        };
        self.fail(next, e);
    }

    /// Runs `step` like [`Engine::step`], `next` being the step that would run after it: when
    /// the run stops there without `step` having failed, `next` is recorded as not run.
    pub(crate) fn step_before(&mut self, step: &Step, next: Option<&Step>) -> bool {
        let failed_before = self.failures.len();
        let stop = self.step(step);
        if let (true, Some(next)) = (stop && self.failures.len() == failed_before, next) {
            self.not_run(next);
        }
        stop
    }

    /// Runs one step (its family's [`super::kind::Kind::exec`]); returns true when the run
    /// must stop (QEMU gone, scenario timeout, or the console dead: every later guest command
    /// would wait out its timeout and probe again).
    pub(crate) fn step(&mut self, step: &Step) -> bool {
        if self.remaining().is_zero() {
            self.fail(
                step,
                StepError::Kernel("scenario timeout reached before this step".into()),
            );
            return true;
        }
        let r = step.kind.as_kind().exec(step, self);
        if let Err(e) = r {
            // `may_fail` covers the errors a race may give, not a console the step left dead.
            if !step.may_fail || self.console_dead {
                self.fail(step, e);
            }
        }
        // QEMU closes the console a moment before its process ends: a step that failed on the
        // closed console must not let the next ones run (each would fail at once on the dead
        // console, once per round of a `repeat`), so the exit is waited for, briefly, then.
        self.guest.vm.exited_settled(QEMU_EXIT_GRACE).is_some()
            || self.guest.vm.console_hung_up()
            || self.remaining().is_zero()
            || self.machine_stuck
            || self.console_dead
    }

    pub(crate) fn sh(
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
    pub(crate) fn console_closed(&mut self) -> StepError {
        match self.guest.vm.exited_settled(QEMU_EXIT_GRACE) {
            Some(reason) => StepError::Rig(reason),
            None => StepError::Rig("the kernel console closed while QEMU still runs".into()),
        }
    }

    /// Runs a guest command and requires status 0.
    pub(crate) fn sh_ok(
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
    pub(crate) fn wait_guest(
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
}

impl Engine<'_> {
    pub(crate) fn guest(&mut self) -> &mut Guest {
        self.guest
    }

    pub(crate) fn vm(&mut self) -> &mut Vm {
        &mut self.guest.vm
    }

    /// The kernel console's lines since QEMU started.
    pub(crate) fn log(&self) -> &KernelLog {
        &self.log
    }

    pub(crate) fn events(&self) -> &Events {
        &self.events
    }

    /// The scenario's deadline.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The run's folder (compiled overlays go there).
    pub(crate) fn dir(&self) -> &RunDir {
        &self.dir
    }

    /// This repetition's random stream.
    pub(crate) fn rng(&mut self) -> &mut rand_chacha::ChaCha8Rng {
        &mut self.rng
    }

    /// A new number for a `parallel` step (its guest folder's).
    pub(crate) fn next_parallel(&mut self) -> u32 {
        self.par_seq += 1;
        self.par_seq
    }

    /// The state a family keeps of type `T` for this boot (made with `T::default()` on first
    /// use): one value per type, so a family's state is its own type in its own module.
    pub(crate) fn kept<T: Default + 'static>(&mut self) -> &mut T {
        self.kept
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("kept state is stored under its own type")
    }

    /// [`Engine::kept`] without making it: `None` before the family kept anything.
    pub(crate) fn kept_ref<T: 'static>(&self) -> Option<&T> {
        self.kept.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }
}
