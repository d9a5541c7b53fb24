//! One repetition of a scenario ([`run_once`]): a fresh boot, the console watched, the steps
//! run, the guest stopped, and what it all showed turned into the repetition's verdict.

use super::result::{Repetition, StepFailure};
use super::verdict::{console_log_lost, finish, keep_reports, Finish, Incomplete};
use super::{seed, Prepared};
use crate::dmesg::{Analyzer, Report, ReportKind};
use crate::guest::transport::Via;
use crate::guest::{Guest, GuestError};
use crate::host::artifacts::RunDir;
use crate::host::events::{Event, Events};
use crate::host::text::error_chain;
use crate::machine::console::LogState;
use crate::machine::vm::ExitCause;
use crate::scenario::{BoardDevice, Scenario};
use crate::steps::engine::log::KernelLog;
use crate::steps::engine::Engine;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One repetition, on a fresh boot, to its verdict. The list of its phases; each phase is a
/// function below, in order. Evidence (console.log, dmesg.txt) is written as it comes.
pub(super) fn run_once(
    scenario: &Scenario,
    prepared: &Prepared,
    (seed, index): (u64, u32),
    dir: &RunDir,
    events: &Events,
) -> Repetition {
    let start = Instant::now();
    let done = Finish {
        scenario,
        kernel: &prepared.machine.image.kernel,
        index,
        dir,
        start,
        incomplete: None,
    };
    let (guest, booted) = boot(scenario, prepared, dir, events);
    let mut guest = match guest {
        Ok(g) => g,
        Err((failure, cause)) => {
            return finish(done, vec![failure], None, cause, (booted, booted));
        }
    };
    let watch = watch_console(&mut guest, (scenario, prepared), dir, events);
    let steps = run_steps(
        scenario,
        &mut guest,
        &watch,
        prepared,
        (seed, index),
        dir,
        events,
    );
    let mut failures = steps.failures;
    let last_step = Instant::now();
    let (dmesg_text, gone) = pull_dmesg(&mut guest, steps.console_dead, steps.machine_stuck, dir);
    // Only a guest that still runs and has a dump monitor or a trace needs to know (the guest's
    // dmesg is analyzed once more for it; the verdict analyzes everything later anyway).
    let evidence = guest.vm.vmcore().is_some() || scenario.trace.is_some();
    let failing = (evidence && !steps.machine_stuck && !gone)
        .then(|| failing(&failures, (&watch, dmesg_text.as_deref()), scenario))
        .flatten();
    if let Some(why) = &failing {
        if let Some(w) = guest.vm.vmcore() {
            w.dump_and_wait(why);
        }
        if scenario.trace.is_some() && !steps.console_dead {
            keep_trace(&mut guest, dir, events);
        }
    }
    let vmcore = guest.vm.take_vmcore();
    let cause = stop_guest(guest, gone, steps.machine_stuck);
    let vmcore = vmcore.map(crate::machine::vmcore::Watch::finish);
    let done = Finish {
        incomplete: close_watch(&watch, dir, &scenario.file, &mut failures, events),
        ..done
    };
    let stepped = Instant::now();
    let mut rep = finish(done, failures, dmesg_text, cause, (booted, stepped));
    rep.teardown_seconds = stepped.duration_since(last_step).as_secs_f64();
    if let Some(outcome) = vmcore {
        keep_vmcore(&mut rep, outcome, prepared, dir, events);
    }
    rep
}

/// Phase 1: boots the guest, and says when the boot ended. A boot that failed is the failed
/// step `boot`, with how QEMU ended if it did.
fn boot(
    scenario: &Scenario,
    prepared: &Prepared,
    dir: &RunDir,
    events: &Events,
) -> (Result<Guest, (StepFailure, Option<ExitCause>)>, Instant) {
    let guest = Guest::boot(&prepared.machine, dir, events);
    let booted = Instant::now();
    let guest = guest.map_err(|e| {
        let vm_error = match &e {
            GuestError::Vm(v) => Some(&**v),
            _ => None,
        };
        let cause = match vm_error {
            Some(crate::machine::vm::VmError::QemuExited(q)) => Some(q.cause.clone()),
            _ => None,
        };
        // The boot rule: a kernel that printed and then hung while QEMU ran it failed; no
        // output at all, a slow but progressing boot or a QEMU the host held is rig's.
        let hang = vm_error.is_some_and(|v| v.is_boot_hang());
        let failure = StepFailure {
            step: "boot".into(),
            at: scenario.file.clone(),
            message: error_chain(&e),
            infra: !hang,
        };
        (failure, cause)
    });
    (guest, booted)
}

/// What watches the booted guest's console: the kernel log `wait_log` reads, the live analyzer
/// and what it found, and whether console.log keeps everything.
struct Watch {
    log: Arc<KernelLog>,
    analyzer: Arc<Mutex<Analyzer>>,
    /// What the live analyzer found: the verdict's source for what a capped console.log lacks.
    live: Arc<Mutex<Vec<Report>>>,
    /// console.log lacks the RIG-READY the console showed.
    ready_lost: bool,
    log_state: Arc<Mutex<LogState>>,
    dump: Option<Arc<DumpOnReport>>,
}

/// Phase 2: taps the console. It feeds the live analyzer and a text buffer for `wait_log`, which
/// starts with everything printed since QEMU started (`since: boot`).
fn watch_console(
    guest: &mut Guest,
    (scenario, prepared): (&Scenario, &Prepared),
    dir: &RunDir,
    events: &Events,
) -> Watch {
    let boot_log = std::fs::read(dir.console_log()).unwrap_or_default();
    let log = Arc::new(KernelLog::default());
    if !boot_log.is_empty() {
        // (An empty chunk would say the console closed.)
        log.push(&boot_log);
    }
    let analyzer = Arc::new(Mutex::new(Analyzer::new()));
    // Whether console.log kept everything: it must hold the RIG-READY the console showed, and
    // every byte the console prints from here on.
    let ready_lost = guest
        .vm
        .console()
        .tail()
        .last_lines(400)
        .contains("RIG-READY")
        && !boot_log.windows(9).any(|w| w == b"RIG-READY");
    let log_state = guest.vm.console().log_state_handle();
    let live: Arc<Mutex<Vec<Report>>> = Arc::default();
    // With a vmcore asked for: the first unexpected report dumps the guest at once.
    let dump = guest.vm.vmcore().map(|w| {
        Arc::new(DumpOnReport {
            trigger: w.trigger(),
            scenario: scenario.clone(),
            asked: AtomicBool::new(false),
            pause: PanicPause::of(prepared),
        })
    });
    {
        let log = log.clone();
        let analyzer = analyzer.clone();
        let ev = events.clone();
        let live = live.clone();
        let dump = dump.clone();
        guest.vm.console().add_tap(Box::new(move |data| {
            log.push(data);
            if let Ok(mut a) = analyzer.lock() {
                let found = a.feed_bytes(data);
                dump_on_report(dump.as_deref(), &found);
                keep_reports(&ev, &live, found);
            }
        }));
    }
    Watch {
        log,
        analyzer,
        live,
        ready_lost,
        log_state,
        dump,
    }
}

/// The live analyzer's side of the vmcore: the first report the scenario does not expect or
/// allow asks for a dump, once; unless the kernel will panic on it into QEMU's pause, where the
/// dump monitor takes it with every CPU stopped.
struct DumpOnReport {
    trigger: crate::machine::vmcore::Trigger,
    scenario: Scenario,
    asked: AtomicBool,
    pause: PanicPause,
}

/// Which reports end in a panic that pauses the guest: rig boots every kernel with
/// `oops=panic`; `panic_on_warn=1` on the command line makes warnings and the sanitizers'
/// reports panic too; the pause needs the board's pvpanic driver built in.
#[derive(Debug, Clone, Copy)]
struct PanicPause {
    pvpanic: bool,
    panic_on_warn: bool,
}

impl PanicPause {
    fn of(prepared: &Prepared) -> PanicPause {
        let m = &prepared.machine;
        let driver = match m.spec.board {
            crate::host::board::Board::X86_64Q35 => "CONFIG_PVPANIC_MMIO",
            crate::host::board::Board::Arm64Virt => "CONFIG_PVPANIC_PCI",
        };
        let config = m.image.kernel.config_options().unwrap_or_default();
        PanicPause {
            pvpanic: config.get(driver).is_some_and(|v| v == "y"),
            panic_on_warn: m.spec.cmdline.iter().any(|p| p == "panic_on_warn=1"),
        }
    }

    fn pauses_on(self, kind: ReportKind) -> bool {
        use ReportKind::*;
        let oops = matches!(
            kind,
            KernelBug | Bug | GeneralProtection | PageFault | Oops | Panic | ListCorruption
        );
        let warns = matches!(
            kind,
            Warning | Refcount | Kasan | Ubsan | Kfence | Kmsan | Kcsan
        );
        self.pvpanic && (oops || (self.panic_on_warn && warns))
    }
}

fn dump_on_report(dump: Option<&DumpOnReport>, found: &[Report]) {
    let Some(d) = dump else { return };
    if d.asked.load(Ordering::Relaxed) {
        return;
    }
    let triage = d.scenario.triage(found.iter().map(|r| r.title.as_str()));
    let Some(title) = triage.unexpected.first() else {
        return;
    };
    d.asked.store(true, Ordering::Relaxed);
    let kind = found.iter().find(|r| &r.title == title).map(|r| r.kind);
    if !kind.is_some_and(|k| d.pause.pauses_on(k)) {
        d.trigger.dump(title);
    }
}

/// What the steps left: their failures, and whether the guest can still be asked anything.
struct Stepped {
    failures: Vec<StepFailure>,
    console_dead: bool,
    machine_stuck: bool,
}

/// Phase 3: the scenario's devices set up and its steps run in order, until the end or a step
/// that stops the run; the analyzer flushed after each step.
fn run_steps(
    scenario: &Scenario,
    guest: &mut Guest,
    watch: &Watch,
    prepared: &Prepared,
    (seed, index): (u64, u32),
    dir: &RunDir,
    events: &Events,
) -> Stepped {
    // The scenario's time is its steps': a slow boot (which has its own timeout) cannot eat it and
    // make a command look hung.
    let deadline = Instant::now() + scenario.timeout;
    let mut exec = Engine::new(
        guest,
        watch.log.clone(),
        events.clone(),
        deadline,
        dir.clone(),
        prepared.timeout_scale,
        seed::repetition_rng(seed, index),
    );
    let virtio_mem: Vec<&str> = scenario
        .devices
        .iter()
        .filter_map(|d| match d {
            BoardDevice::VirtioMem { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    if let Err(e) = crate::steps::virtio_mem::init(&mut exec, &virtio_mem) {
        exec.fail_setup("virtio-mem devices", e);
    }
    if let Some(t) = &scenario.trace {
        match crate::steps::trace::start(&mut exec, &t.spec) {
            Ok(missing) if !missing.is_empty() => events.emit(Event::Warning {
                message: format!(
                    "{}: trace: not in this kernel, not traced: {}",
                    t.at,
                    missing.join(", ")
                ),
            }),
            Ok(_) => {}
            Err(e) => exec.fail_setup("trace", e),
        }
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        events.emit(Event::ScenarioStep {
            index: i + 1,
            name: step.label(),
        });
        // Steps left unrun are a failure even when the step that stopped the run is not.
        let stop = exec.step_before(step, scenario.steps.get(i + 1));
        // Reports without an end marker (lockdep, OF errors, hung tasks) come out on a flush.
        if let Ok(mut a) = watch.analyzer.lock() {
            let found = a.flush();
            dump_on_report(watch.dump.as_deref(), &found);
            keep_reports(events, &watch.live, found);
        }
        if stop {
            break;
        }
    }
    let outcome = exec.finish();
    Stepped {
        failures: outcome
            .failures
            .into_iter()
            .map(StepFailure::from)
            .collect(),
        console_dead: outcome.console_dead,
        machine_stuck: outcome.machine_stuck,
    }
}

/// Phase 4b: whether the repetition is failing, and why (the first unexpected report, from the
/// live analyzer or the guest's `dmesg`, which has what the console had not shown yet; else a
/// step the kernel did not do or an expected report missing): what the vmcore is dumped for
/// (one dumped already is kept: the first moment wins) and when the trace is kept.
fn failing(
    failures: &[StepFailure],
    (watch, dmesg_text): (&Watch, Option<&str>),
    scenario: &Scenario,
) -> Option<String> {
    let mut reports = watch.live.lock().map(|l| l.clone()).unwrap_or_default();
    reports.extend(dmesg_text.map(crate::dmesg::analyze).unwrap_or_default());
    let triage = scenario.triage(reports.iter().map(|r| r.title.as_str()));
    if let Some(title) = triage.unexpected.first() {
        Some(title.clone())
    } else if failures.iter().any(|f| !f.infra) || !triage.passed() {
        Some("the run failed".into())
    } else {
        None
    }
}

/// Phase 4c, for a failing repetition of a traced scenario whose guest still answers: the
/// trace buffer, read back into `trace.txt` (at most [`crate::steps::trace::TRACE_READ_MAX`]).
fn keep_trace(guest: &mut Guest, dir: &RunDir, events: &Events) {
    use crate::steps::trace;
    let read = guest.run(&trace::read_command(), Duration::from_secs(300), Via::Hvc);
    let kept = match read {
        Ok(o) => std::fs::write(dir.file(trace::TRACE_FILE), o.stdout).map_err(|e| e.to_string()),
        Err(e) => Err(error_chain(&e)),
    };
    if let Err(e) = kept {
        events.emit(Event::Warning {
            message: format!("no {}: {e}", trace::TRACE_FILE),
        });
    }
}

/// Phase 7, when the guest could be dumped: a failed repetition keeps its core (`vmcore.gz`,
/// with the command that opens it); any other discards it.
fn keep_vmcore(
    rep: &mut Repetition,
    outcome: crate::machine::vmcore::Outcome,
    prepared: &Prepared,
    dir: &RunDir,
    events: &Events,
) {
    use crate::machine::vmcore;
    if let Some(e) = &outcome.error {
        events.emit(Event::Warning {
            message: format!("no vmcore: {e}"),
        });
    }
    let taken = match (rep.verdict, outcome.taken) {
        (super::Verdict::Fail, Some(t)) => t,
        _ => return vmcore::discard(dir.path()),
    };
    let kernel = &prepared.machine.image.kernel;
    match vmcore::file::keep(&taken.raw, kernel, prepared.machine.spec.board) {
        Ok(kept) => {
            rep.vmcore = Some(super::VmcoreRecord {
                path: kept.path,
                command: kept.command,
                taken_at: taken.why,
                bytes: kept.bytes,
                dump_seconds: taken.seconds,
                write_seconds: kept.seconds,
                note: kept.note,
            })
        }
        Err(e) => {
            vmcore::discard(dir.path());
            events.emit(Event::Warning {
                message: format!("no vmcore: {}", error_chain(&e)),
            });
        }
    }
}

/// Phase 4: pulls the kernel's own log as well (messages below the console loglevel) from a
/// guest that still answers, into dmesg.txt at once. Also says whether QEMU is gone.
fn pull_dmesg(
    guest: &mut Guest,
    console_dead: bool,
    machine_stuck: bool,
    dir: &RunDir,
) -> (Option<String>, bool) {
    let gone = guest.vm.exited_settled(Duration::from_secs(5)).is_some();
    let dmesg_text = if !gone && !console_dead && !machine_stuck {
        guest
            .run("dmesg", Duration::from_secs(60), Via::Hvc)
            .ok()
            .map(|o| o.stdout)
    } else {
        None
    };
    if let Some(t) = &dmesg_text {
        let _ = std::fs::write(dir.file("dmesg.txt"), t);
    }
    (dmesg_text, gone)
}

/// Phase 5: stops the guest, and says how QEMU ended if it ended before rig stopped it.
fn stop_guest(mut guest: Guest, gone: bool, machine_stuck: bool) -> Option<ExitCause> {
    // QEMU ended before rig stopped it: the guest reset, panicked or powered off, or the host
    // ended it. Only the QMP SHUTDOWN event tells which.
    let cause = (gone || guest.vm.exited().is_some()).then(|| guest.vm.exit_cause());
    if machine_stuck {
        // No polite QMP `quit` to a QEMU that does not answer: stop it (SIGTERM, then SIGKILL).
        drop(guest);
    } else {
        guest.shutdown();
    }
    cause
}

/// Phase 6: once the console has closed, whether console.log kept the whole stream (a failure
/// if the filesystem refused part of it), the analyzer's last flush, and, where console.log is
/// incomplete, what the live analyzer found.
fn close_watch(
    watch: &Watch,
    dir: &RunDir,
    at: &str,
    failures: &mut Vec<StepFailure>,
    events: &Events,
) -> Option<Incomplete> {
    let logged = watch.log_state.lock().map(|s| *s).unwrap_or_default();
    if let Some(f) = console_log_lost(dir, watch.ready_lost, logged, at) {
        failures.push(f);
    }
    if let Ok(mut a) = watch.analyzer.lock() {
        let found = a.flush();
        keep_reports(events, &watch.live, found);
    }
    // console.log lacks part of the stream (capped, or the filesystem refused it): what the live
    // analyzer found there counts too.
    (logged.truncated || logged.failed).then(|| Incomplete {
        truncated_at: logged.truncated.then_some(logged.written),
        live: watch.live.lock().map(|l| l.clone()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live analyzer leaves to the panic pause the reports the kernel panics on, and only
    /// when the guest can pause: oopses always (rig's `oops=panic`), warnings and sanitizer
    /// reports with `panic_on_warn=1`; lockdep and OF errors never panic.
    #[test]
    fn reports_that_panic_into_the_pause_are_left_to_it() {
        let p = |pvpanic, panic_on_warn| PanicPause {
            pvpanic,
            panic_on_warn,
        };
        for k in [
            ReportKind::PageFault,
            ReportKind::KernelBug,
            ReportKind::Oops,
        ] {
            assert!(p(true, false).pauses_on(k), "{k}");
            assert!(!p(false, true).pauses_on(k), "{k} without pvpanic");
        }
        for k in [ReportKind::Warning, ReportKind::Refcount, ReportKind::Kasan] {
            assert!(!p(true, false).pauses_on(k), "{k}");
            assert!(p(true, true).pauses_on(k), "{k} with panic_on_warn");
        }
        for k in [
            ReportKind::Lockdep,
            ReportKind::OfError,
            ReportKind::HungTask,
        ] {
            assert!(!p(true, true).pauses_on(k), "{k}");
        }
    }
}
