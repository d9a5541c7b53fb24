//! The scenario engine: boots a guest for each repetition, runs the scenario's steps, watches the
//! console with the kernel-log analyzer as it streams, and turns what it saw into a verdict.
//!
//! Verdicts: **pass** (no unexpected report, every `expect` seen, every step as asked), **fail**
//! (the kernel showed an unexpected report, missed an expected one, or did not do what a step
//! asked: a device that never appeared or never went, a guest command with the wrong status, a
//! deadline missed), **infra** (rig could not run it: boot failed, QEMU died without any kernel
//! report, a QMP command was refused). Kernel evidence wins: if QEMU died and the log holds a
//! panic, the verdict is fail.
//!
//! `parallel` runs its children at once: guest-side children (shell commands, sysfs memory
//! online/offline, devlink and netdevsim steps, repeats of those) become background jobs of the
//! guest shell (or concurrent ssh channels for `via: ssh`), while host-side children (QMP, PCI
//! and DIMM plug/unplug) run on the host meanwhile; then everything is joined with the deadline.

use crate::dmesg::{Analyzer, Report};
use crate::guest::transport::Via;
use crate::guest::{self, Guest, GuestError, GuestOptions};
use crate::host::artifacts::RunDir;
use crate::host::board::Board;
use crate::host::cache::Cache;
use crate::host::events::{Event, Events};
use crate::machine::accel::AccelChoice;
use crate::scenario::{Scenario, StepKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod boot_extras;
mod compiled_overlay;
mod exec;
mod hotplug;
mod log;
mod mem_blocks;
mod of_unittest;
mod overlays;
mod parallel;
pub mod phase;
pub mod record;
pub mod requirements;
mod result;
mod schema_rules;
pub mod seed;
mod shell;
mod verdict;
mod virtio_mem;

pub use exec::error_chain;
use exec::Exec;
pub use result::{
    Repetition, ScenarioResult, StepFailure, TriageSummary, Verdict, REPORT_SCHEMA_VERSION,
};
use verdict::{
    console_log_lost, finish, keep_reports, write_report, Finish, Incomplete, ResultHeader,
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Unsupported(#[from] requirements::Unsupported),
    #[error("cannot prepare the guest")]
    Prepare(#[source] GuestError),
    #[error(transparent)]
    Artifacts(#[from] crate::host::artifacts::ArtifactsError),
    #[error("no repetitions asked for")]
    NoRuns,
    #[error("cannot pack the modules {modules} into the initramfs")]
    Modules {
        modules: String,
        #[source]
        source: Box<crate::provision::image::ImageError>,
    },
    #[error("cannot write the run's report {path}")]
    Report {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot save the booted guest's state for --snapshot")]
    Snapshot(#[source] Box<GuestError>),
    #[error("--snapshot restores guests over hvc only; this scenario uses ssh")]
    SnapshotNeedsHvc,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub board: Board,
    pub kernel: String,
    pub accel: AccelChoice,
    pub repeat: u32,
    pub auto_setup: bool,
    pub memory_mib: u64,
    /// Kernel command-line parameters added after the scenario's own (`rig run --cmdline`).
    pub extra_cmdline: Vec<String>,
    /// Drives everything random in the run (`stagger` delays); `None`: a fresh one, recorded.
    pub seed: Option<u64>,
    /// Boot once, save the guest's state at its ready shell, and start every repetition from
    /// that state instead of booting ([`crate::machine::snapshot`]; scenarios that use hvc only).
    pub snapshot: bool,
}

impl RunOptions {
    pub fn new(board: Board, kernel: &str) -> Self {
        RunOptions {
            board,
            kernel: kernel.into(),
            accel: AccelChoice::Auto,
            repeat: 1,
            auto_setup: true,
            memory_mib: crate::host::board::DEFAULT_MEMORY_MIB,
            extra_cmdline: Vec::new(),
            seed: None,
            snapshot: false,
        }
    }
}

/// Whether any step talks to the guest over ssh.
fn uses_ssh(scenario: &Scenario) -> bool {
    scenario.all_steps().iter().any(|s| match &s.kind {
        StepKind::Guest(g) => g.via == Via::Ssh,
        StepKind::DevlinkReload(d) => d.via == Via::Ssh,
        StepKind::NetdevsimNew(n) => n.via == Via::Ssh,
        StepKind::NetdevsimDel(n) => n.via == Via::Ssh,
        _ => false,
    })
}

/// Runs `scenario` `opts.repeat` times, each on a fresh boot; writes `report.json`.
pub fn run_scenario(
    scenario: &Scenario,
    opts: &RunOptions,
    cache: &Cache,
    run_dir: &RunDir,
    events: &Events,
) -> Result<ScenarioResult, RunError> {
    if opts.repeat == 0 {
        return Err(RunError::NoRuns);
    }
    let mut gopts = GuestOptions::new(opts.board, &opts.kernel);
    gopts.accel = opts.accel;
    gopts.auto_setup = opts.auto_setup;
    gopts.memory_mib = opts.memory_mib;
    gopts.extra_cmdline = scenario.cmdline.clone();
    gopts
        .extra_cmdline
        .extend(opts.extra_cmdline.iter().cloned());
    gopts.ssh = uses_ssh(scenario);
    gopts.devices = boot_extras::extra_devices(&scenario.devices);
    gopts.outbound_network = scenario
        .requires
        .iter()
        .any(|r| r.feature == crate::scenario::Feature::OutboundNetwork);
    if !boot_extras::hot_plugs_pci(scenario) {
        gopts.hotplug_root_ports = 0;
    }
    let (mut image, verdict) = guest::prepare(&gopts, cache, events).map_err(RunError::Prepare)?;
    requirements::check_kernel(scenario, opts.board, &image.kernel)?;
    let config = image.kernel.config_options().unwrap_or_default();
    let modules = boot_extras::needed_modules(&scenario.devices, &config);
    if let Some(param) =
        boot_extras::add_modules(&mut image, &modules, cache, events).map_err(|source| {
            RunError::Modules {
                modules: modules.join(","),
                source: Box::new(source),
            }
        })?
    {
        gopts.extra_cmdline.push(param);
    }
    // Timeouts the file left to their defaults are for native speed: scale them to this machine.
    let timeout_scale = crate::machine::timeouts::timeout_scale(verdict.accel, opts.board);
    let scaled = scenario.with_default_timeouts_scaled(timeout_scale);
    let scenario = &scaled;
    let seed = opts.seed.unwrap_or_else(seed::fresh_seed);
    record::write(
        run_dir,
        &record::Inputs {
            scenario,
            opts,
            seed,
            kernel: &image.kernel,
            accel_used: verdict.accel.name(),
        },
    );

    let saved = if opts.snapshot {
        if gopts.ssh {
            return Err(RunError::SnapshotNeedsHvc);
        }
        let s = save_boot(&gopts, &image, &verdict, run_dir, events)?;
        gopts.restore = Some(s.clone());
        Some(s)
    } else {
        None
    };

    let header = ResultHeader {
        seed,
        scenario,
        opts,
        kernel_release: image.kernel.release.clone(),
        kernel_provenance: image.kernel.provenance.clone(),
        accel: verdict.accel.name().into(),
        artifacts: run_dir.path().to_path_buf(),
    };
    let mut reps = Vec::new();
    let mut written = Ok(());
    for index in 1..=opts.repeat {
        let dir = if opts.repeat == 1 {
            run_dir.clone()
        } else {
            run_dir.child(&format!("run-{index}"))?
        };
        if opts.repeat > 1 {
            events.emit(Event::StepProgress {
                step: "run".into(),
                message: format!("repetition {index} of {}", opts.repeat),
                fraction: Some((index - 1) as f64 / opts.repeat as f64),
            });
        }
        let rep = run_once(
            scenario,
            &gopts,
            &image,
            &verdict,
            timeout_scale,
            (seed, index),
            &dir,
            events,
        );
        let line = format!(
            "run {index}: {:?} ({} reports)",
            rep.verdict,
            rep.reports.len()
        );
        events.emit(Event::Verdict {
            verdict: format!("{:?}", rep.verdict).to_lowercase(),
            detail: line,
        });
        reps.push(rep);
        // Evidence first: every finished repetition is on disk before the next one starts, so
        // a kill, a crash or a full disk later loses at most the repetition under way.
        let so_far = header.result(reps.clone(), index == opts.repeat);
        written = write_report(run_dir, &so_far);
        if let Err(e) = &written {
            events.emit(Event::Warning {
                message: error_chain(e),
            });
        }
    }

    if let Some(s) = &saved {
        // Tens of MiB that no one needs once the runs are done.
        let _ = std::fs::remove_file(&s.state);
    }

    let mut result = header.result(reps, true);
    if let Err(e) = written {
        // The verdict stands on what the runs saw; only a pass cannot stand without its
        // evidence on disk (rig could not keep what it would be judged by).
        if result.verdict == Verdict::Pass {
            result.verdict = Verdict::Infra;
        }
        result.report_error = Some(error_chain(&e));
    }
    Ok(result)
}

/// Boots the guest once (in `saved-boot/`) and saves its state at the ready shell.
fn save_boot(
    gopts: &GuestOptions,
    image: &crate::provision::BootImage,
    verdict: &crate::machine::accel::AccelDecision,
    run_dir: &RunDir,
    events: &Events,
) -> Result<crate::machine::snapshot::Snapshot, RunError> {
    let dir = run_dir.child("saved-boot")?;
    events.emit(Event::StepProgress {
        step: "run".into(),
        message: "booting once to save the guest's state (--snapshot)".into(),
        fraction: None,
    });
    let mut g = Guest::boot(gopts, image.clone(), verdict.clone(), &dir, events)
        .map_err(|e| RunError::Snapshot(Box::new(e)))?;
    let saved = g.vm.save_snapshot(&dir.file("state.bin"));
    g.shutdown();
    saved.map_err(|e| RunError::Snapshot(Box::new(e.into())))
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    scenario: &Scenario,
    gopts: &GuestOptions,
    image: &crate::provision::BootImage,
    verdict: &crate::machine::accel::AccelDecision,
    timeout_scale: f64,
    (seed, index): (u64, u32),
    dir: &RunDir,
    events: &Events,
) -> Repetition {
    let start = Instant::now();
    let done = Finish {
        scenario,
        kernel: &image.kernel,
        index,
        dir,
        start,
        incomplete: None,
    };
    let mut failures = Vec::new();
    let guest = Guest::boot(gopts, image.clone(), verdict.clone(), dir, events);
    let booted = Instant::now();
    let mut guest = match guest {
        Ok(g) => g,
        Err(e) => {
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
            failures.push(StepFailure {
                step: "boot".into(),
                at: scenario.file.clone(),
                message: error_chain(&e),
                infra: !hang,
            });
            return finish(done, failures, None, cause, (booted, booted));
        }
    };

    // The console feeds the live analyzer and a text buffer for `wait_log`, which starts with
    // everything printed since QEMU started (`since: boot`).
    let boot_log = std::fs::read(dir.console_log()).unwrap_or_default();
    let log = Arc::new(log::KernelLog::default());
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
    // What the live analyzer found: the verdict's source for what a capped console.log lacks.
    let live: Arc<Mutex<Vec<Report>>> = Arc::default();
    {
        let log = log.clone();
        let analyzer = analyzer.clone();
        let ev = events.clone();
        let live = live.clone();
        guest.vm.console().add_tap(Box::new(move |data| {
            log.push(data);
            if let Ok(mut a) = analyzer.lock() {
                let found = a.feed_bytes(data);
                keep_reports(&ev, &live, found);
            }
        }));
    }

    // The scenario's time is its steps': a slow boot (which has its own timeout) cannot eat it and
    // make a command look hung.
    let deadline = Instant::now() + scenario.timeout;
    let mut exec = Exec {
        guest: &mut guest,
        log,
        events: events.clone(),
        deadline,
        ports: HashMap::new(),
        dimms: HashMap::new(),
        virtio: HashMap::new(),
        unplugging: Default::default(),
        overlays: HashMap::new(),
        dir: dir.clone(),
        failures: Vec::new(),
        par_seq: 0,
        timeout_scale,
        console_dead: false,
        machine_stuck: false,
        rng: seed::repetition_rng(seed, index),
    };
    if let Err(e) = exec.init_virtio_mem(&scenario.devices) {
        exec.fail_setup("virtio-mem devices", e);
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        events.emit(Event::ScenarioStep {
            index: i + 1,
            name: step.label(),
        });
        let stop = exec.step(step);
        // Reports without an end marker (lockdep, OF errors, hung tasks) come out on a flush.
        if let Ok(mut a) = analyzer.lock() {
            let found = a.flush();
            keep_reports(events, &live, found);
        }
        if stop {
            break;
        }
    }
    failures.append(&mut exec.failures);
    let console_dead = exec.console_dead;
    let machine_stuck = exec.machine_stuck;
    let last_step = Instant::now();

    // Pull the kernel's own log as well (messages below the console loglevel).
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
    // QEMU ended before rig stopped it: the guest reset, panicked or powered off, or the host
    // ended it. Only the QMP SHUTDOWN event tells which.
    let cause = (gone || guest.vm.exited().is_some()).then(|| guest.vm.exit_cause());
    if machine_stuck {
        // No polite QMP `quit` to a QEMU that does not answer: stop it (SIGTERM, then SIGKILL).
        drop(guest);
    } else {
        guest.shutdown();
    }
    let logged = log_state.lock().map(|s| *s).unwrap_or_default();
    if let Some(f) = console_log_lost(dir, ready_lost, logged, &scenario.file) {
        failures.push(f);
    }
    if let Ok(mut a) = analyzer.lock() {
        let found = a.flush();
        keep_reports(events, &live, found);
    }
    let done = Finish {
        // console.log lacks part of the stream (capped, or the filesystem refused it): what
        // the live analyzer found there counts too.
        incomplete: (logged.truncated || logged.failed).then(|| Incomplete {
            truncated_at: logged.truncated.then_some(logged.written),
            live: live.lock().map(|l| l.clone()).unwrap_or_default(),
        }),
        ..done
    };
    let stepped = Instant::now();
    let mut rep = finish(done, failures, dmesg_text, cause, (booted, stepped));
    rep.teardown_seconds = stepped.duration_since(last_step).as_secs_f64();
    rep
}
