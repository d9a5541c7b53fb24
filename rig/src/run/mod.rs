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

use crate::guest::{Guest, GuestError};
use crate::host::artifacts::RunDir;
use crate::host::board::Board;
use crate::host::cache::Cache;
use crate::host::events::{Event, Events};
use crate::machine::spec::{MachineSpec, PreparedMachine, SpecError};
use crate::prepare::{self, PrepareError};
use crate::provision::BootImage;
use crate::scenario::Scenario;

mod boot_extras;
pub mod phase;
pub mod record;
mod repetition;
pub mod requirements;
mod result;
mod schema_rules;
pub mod seed;
mod verdict;

pub use crate::host::text::error_chain;
use repetition::run_once;
pub use result::{
    Repetition, ScenarioResult, StepFailure, TriageSummary, Verdict, VmcoreRecord,
    REPORT_SCHEMA_VERSION,
};
use verdict::{write_report, ResultHeader};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Unsupported(#[from] requirements::Unsupported),
    #[error("cannot prepare the guest")]
    Prepare(#[source] PrepareError),
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
    #[error("the machine asked for cannot run this scenario")]
    Machine(#[source] SpecError),
}

/// A run's choices: the machine as the command line asked for it, and how the run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Board, kernel, accelerator, memory and `--cmdline`; the run adds the scenario's part
    /// (its `cmdline:` before these, its devices, ssh, root ports, network).
    pub machine: MachineSpec,
    pub repeat: u32,
    /// Install missing host tools with apt when possible (Debian/Ubuntu as root or with sudo).
    pub auto_setup: bool,
    /// Drives everything random in the run (`stagger` delays); `None`: a fresh one, recorded.
    pub seed: Option<u64>,
    /// Boot once, save the guest's state at its ready shell, and start every repetition from
    /// that state instead of booting ([`crate::machine::snapshot`]; scenarios that use hvc only).
    pub snapshot: bool,
    /// Keep the guest's memory of a failed repetition ([`crate::machine::vmcore`]).
    pub vmcore: Vmcore,
}

/// `--vmcore`: when a repetition keeps the guest's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Vmcore {
    /// When the repetition fails (`rig run` and `rig reproduce` by default): dumped at the
    /// guest's panic, its first unexpected report, or the end of a failed run.
    OnFailure,
    /// Never (the library's and `rig matrix run`'s default: a core is ~512 MiB before
    /// compression).
    #[default]
    Never,
}

impl RunOptions {
    pub fn new(board: Board, kernel: &str) -> Self {
        RunOptions {
            machine: MachineSpec::new(board, kernel),
            repeat: 1,
            auto_setup: true,
            seed: None,
            snapshot: false,
            vmcore: Vmcore::Never,
        }
    }
}

/// Whether any step talks to the guest over ssh.
fn uses_ssh(scenario: &Scenario) -> bool {
    scenario.all_steps().iter().any(|s| s.kind.over_ssh())
}

/// Runs `scenario` `opts.repeat` times, each on a fresh boot; writes `report.json`. The list of
/// its phases; each phase is a function below, in order: cheap refusals first, then the kernel
/// provisioned and checked, the accelerator chosen, and the boots.
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
    let spec = machine_spec(scenario, opts)?;
    let (spec, image) = provision(scenario, opts, spec, cache, events)?;
    let mut prepared = choose_accel(spec, image, cache, events);
    // Timeouts the file left to their defaults are for native speed: scale them to this machine.
    let scaled = scenario.with_default_timeouts_scaled(prepared.timeout_scale);
    let scenario = &scaled;
    let seed = opts.seed.unwrap_or_else(seed::fresh_seed);
    record_inputs(run_dir, scenario, opts, seed, &prepared);
    let saved = snapshot_if_asked(opts, &mut prepared, run_dir, events)?;
    let header = result_header(scenario, opts, seed, &prepared, run_dir);
    let (reps, written) = run_repetitions(&header, &prepared, run_dir, events)?;
    if let Some(s) = &saved {
        // Tens of MiB that no one needs once the runs are done.
        let _ = std::fs::remove_file(&s.state);
    }
    Ok(final_result(header, reps, written))
}

/// What every repetition boots: the machine prepared (the spec, its boot image with the
/// scenario's modules, the accelerator chosen), and the scale of the default timeouts on it.
struct Prepared {
    machine: PreparedMachine,
    timeout_scale: f64,
}

/// Phase 1, before anything is fetched or built: the machine the scenario runs on (the run's
/// spec with the scenario's part added), checked. `--snapshot` with a scenario that talks over
/// ssh is refused, and so is a board the scenario cannot run on.
fn machine_spec(scenario: &Scenario, opts: &RunOptions) -> Result<MachineSpec, RunError> {
    let mut spec = opts.machine.clone();
    spec.cmdline = scenario.cmdline.clone();
    if scenario.trace.is_some() {
        // The kernel prints the trace buffer on an oops, where rig cannot read it back.
        spec.cmdline.insert(0, "ftrace_dump_on_oops".into());
    }
    spec.cmdline.extend(opts.machine.cmdline.iter().cloned());
    spec.devices
        .extend(boot_extras::extra_devices(&scenario.devices));
    spec.vmcore = opts.vmcore == Vmcore::OnFailure;
    spec.outbound_network |= scenario
        .requires
        .iter()
        .any(|r| r.feature == crate::scenario::Feature::OutboundNetwork);
    if !boot_extras::hot_plugs_pci(scenario) {
        spec.hotplug_root_ports = 0;
    }
    let ssh = spec.ssh() || uses_ssh(scenario);
    spec.set_ssh(ssh).map_err(RunError::Machine)?;
    if opts.snapshot {
        // The spec's one rule, said for the run: it will restore what it saves.
        spec.check_restorable()
            .map_err(|_| RunError::SnapshotNeedsHvc)?;
    }
    requirements::check_board(scenario, spec.board)?;
    Ok(spec)
}

/// Phase 2: the kernel and initramfs ready (fetched or built), the kernel checked against what
/// the scenario requires of its `.config`, and the modules its devices need packed into the
/// initramfs (init told to load them on the spec's command line).
fn provision(
    scenario: &Scenario,
    opts: &RunOptions,
    mut spec: MachineSpec,
    cache: &Cache,
    events: &Events,
) -> Result<(MachineSpec, BootImage), RunError> {
    let mut image =
        prepare::provision(&spec, opts.auto_setup, cache, events).map_err(RunError::Prepare)?;
    requirements::check_kernel(scenario, spec.board, &image.kernel)?;
    let config = image.kernel.config_options().unwrap_or_default();
    let modules = boot_extras::needed_modules(scenario, &config);
    if let Some(param) =
        boot_extras::add_modules(&mut image, &modules, cache, events).map_err(|source| {
            RunError::Modules {
                modules: modules.join(","),
                source: Box::new(source),
            }
        })?
    {
        spec.cmdline.push(param);
    }
    Ok((spec, image))
}

/// Phase 3: the accelerator chosen ([`prepare::choose_accel`]), and the timeout scale it sets.
fn choose_accel(spec: MachineSpec, image: BootImage, cache: &Cache, events: &Events) -> Prepared {
    let machine = prepare::choose_accel(spec, image, cache, events);
    let timeout_scale =
        crate::machine::timeouts::timeout_scale(machine.accel.accel, machine.spec.board);
    Prepared {
        machine,
        timeout_scale,
    }
}

/// Phase 4: what `rig reproduce` needs to run it again, in the run folder.
fn record_inputs(
    run_dir: &RunDir,
    scenario: &Scenario,
    opts: &RunOptions,
    seed: u64,
    prepared: &Prepared,
) {
    record::write(
        run_dir,
        &record::Inputs {
            scenario,
            opts,
            seed,
            kernel: &prepared.machine.image.kernel,
            accel_used: prepared.machine.accel.accel.name(),
        },
    );
}

/// Phase 5, with `--snapshot`: boots once and saves the guest's state, which every repetition
/// then starts from.
fn snapshot_if_asked(
    opts: &RunOptions,
    prepared: &mut Prepared,
    run_dir: &RunDir,
    events: &Events,
) -> Result<Option<crate::machine::snapshot::Snapshot>, RunError> {
    if !opts.snapshot {
        return Ok(None);
    }
    let s = save_boot(&prepared.machine, run_dir, events)?;
    // Phase 1 checked that this spec can be restored.
    prepared
        .machine
        .spec
        .restore_from(s.clone())
        .map_err(RunError::Machine)?;
    Ok(Some(s))
}

/// Boots the guest once (in `saved-boot/`) and saves its state at the ready shell.
fn save_boot(
    machine: &PreparedMachine,
    run_dir: &RunDir,
    events: &Events,
) -> Result<crate::machine::snapshot::Snapshot, RunError> {
    let dir = run_dir.child("saved-boot")?;
    events.emit(Event::StepProgress {
        step: "run".into(),
        message: "booting once to save the guest's state (--snapshot)".into(),
        fraction: None,
    });
    let mut g = Guest::boot(machine, &dir, events).map_err(|e| RunError::Snapshot(Box::new(e)))?;
    let saved = g.vm.save_snapshot(&dir.file("state.bin"));
    g.shutdown();
    saved.map_err(|e| RunError::Snapshot(Box::new(e.into())))
}

/// Phase 6: what every version of `report.json` says about the run as a whole.
fn result_header<'a>(
    scenario: &'a Scenario,
    opts: &'a RunOptions,
    seed: u64,
    prepared: &Prepared,
    run_dir: &RunDir,
) -> ResultHeader<'a> {
    ResultHeader {
        seed,
        scenario,
        opts,
        kernel_release: prepared.machine.image.kernel.release.clone(),
        kernel_provenance: prepared.machine.image.kernel.provenance.clone(),
        accel: prepared.machine.accel.accel.name().into(),
        artifacts: run_dir.path().to_path_buf(),
    }
}

/// Phase 7: the repetitions (the header's scenario, repeat count and seed), one after the other,
/// each in its own folder when there are several; `report.json` rewritten after each. Returns the
/// repetitions and how the last write of `report.json` went; an error only for a repetition's
/// folder that cannot be made.
fn run_repetitions(
    header: &ResultHeader<'_>,
    prepared: &Prepared,
    run_dir: &RunDir,
    events: &Events,
) -> Result<(Vec<Repetition>, Result<(), RunError>), RunError> {
    let repeat = header.opts.repeat;
    let mut reps = Vec::new();
    let mut written = Ok(());
    for index in 1..=repeat {
        let dir = if repeat == 1 {
            run_dir.clone()
        } else {
            run_dir.child(&format!("run-{index}"))?
        };
        if repeat > 1 {
            events.emit(Event::StepProgress {
                step: "run".into(),
                message: format!("repetition {index} of {repeat}"),
                fraction: Some((index - 1) as f64 / repeat as f64),
            });
        }
        let rep = run_once(
            header.scenario,
            prepared,
            (header.seed, index),
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
        let so_far = header.result(reps.clone(), index == repeat);
        written = write_report(run_dir, &so_far);
        if let Err(e) = &written {
            events.emit(Event::Warning {
                message: error_chain(e),
            });
        }
    }
    Ok((reps, written))
}

/// Phase 8: the run's result over all its repetitions.
fn final_result(
    header: ResultHeader<'_>,
    reps: Vec<Repetition>,
    written: Result<(), RunError>,
) -> ScenarioResult {
    let mut result = header.result(reps, true);
    if let Err(e) = written {
        // The verdict stands on what the runs saw; only a pass cannot stand without its
        // evidence on disk (rig could not keep what it would be judged by).
        if result.verdict == Verdict::Pass {
            result.verdict = Verdict::Infra;
        }
        result.report_error = Some(error_chain(&e));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Runs `text` with `opts` on an empty cache and an unknown kernel name, where the run must
    /// be refused before provisioning: its error, after checking that neither the cache nor the
    /// run folder was touched (a check made after provisioning would fail on the kernel name).
    fn refused_before_provisioning(text: &str, opts: &RunOptions) -> RunError {
        assert_eq!(opts.machine.kernel, "no-such-kernel");
        let scenario =
            crate::scenario::parse_str(text, "t.yaml", Path::new("/nonexistent")).unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let runs = tempfile::tempdir().unwrap();
        let run_dir = RunDir::create_in(runs.path(), "t").unwrap();
        let err = run_scenario(
            &scenario,
            opts,
            &Cache::at(cache_dir.path().to_path_buf()),
            &run_dir,
            &Events::none(),
        )
        .unwrap_err();
        let left: Vec<_> = std::fs::read_dir(cache_dir.path()).unwrap().collect();
        assert!(left.is_empty(), "the cache was touched: {left:?}");
        let in_run: Vec<_> = std::fs::read_dir(run_dir.path()).unwrap().collect();
        assert!(in_run.is_empty(), "the run folder got files: {in_run:?}");
        err
    }

    /// `--snapshot` with a scenario that talks over ssh is refused as bad input before anything
    /// is fetched or built.
    #[test]
    fn snapshot_with_ssh_is_refused_before_provisioning() {
        let mut opts = RunOptions::new(Board::Arm64Virt, "no-such-kernel");
        opts.snapshot = true;
        let err =
            refused_before_provisioning("steps:\n  - guest: {run: 'true', via: ssh}\n", &opts);
        assert!(matches!(err, RunError::SnapshotNeedsHvc), "{err:?}");
        use crate::host::exit::Classify;
        assert_eq!(err.exit_class(), crate::host::exit::ExitClass::BadInput);
    }

    /// The run's spec is the command line's with the scenario's part added: its `cmdline:`
    /// before `--cmdline`, its devices, ssh when a step uses it, root ports only when it
    /// hot-plugs PCI, the outbound network only when it requires it.
    #[test]
    fn the_scenario_adds_its_part_to_the_command_lines_machine() {
        let overlays = crate::repo_root().join("overlays");
        let parse = |text: &str| crate::scenario::parse_str(text, "t.yaml", &overlays).unwrap();
        let mut opts = RunOptions::new(Board::X86_64Q35, "debian-6.1");
        opts.machine.cmdline = vec!["from.cli=1".into()];
        opts.machine.memory_mib = 1024;
        let plain = parse("cmdline: [from.file=1]\nsteps:\n  - guest: {run: 'true'}\n");
        let spec = machine_spec(&plain, &opts).unwrap();
        assert_eq!(spec.cmdline, ["from.file=1", "from.cli=1"]);
        assert_eq!(spec.memory_mib, 1024);
        assert_eq!(spec.hotplug_root_ports, 0);
        assert!(!spec.ssh() && !spec.outbound_network && spec.devices.is_empty());

        let busy = parse(
            "requires: [pci_hotplug, outbound_network]\ndevices:\n  - qemu: {driver: pci-testdev}\n\
             steps:\n  - pci_hotplug: {id: nic1, driver: e1000e}\n  \
             - guest: {run: 'true', via: ssh}\n",
        );
        let spec = machine_spec(&busy, &opts).unwrap();
        assert_eq!(spec.cmdline, ["from.cli=1"]);
        assert_eq!(
            spec.hotplug_root_ports,
            crate::host::board::HOTPLUG_ROOT_PORTS
        );
        assert!(spec.ssh() && spec.outbound_network);
        assert_eq!(spec.devices.len(), 1);
        // The command line's own spec is left as it was.
        assert_eq!(opts.machine.cmdline, ["from.cli=1"]);
    }

    /// A board the scenario cannot run on is refused before provisioning too.
    #[test]
    fn a_board_the_scenario_cannot_use_is_refused_before_provisioning() {
        let opts = RunOptions::new(Board::X86_64Q35, "no-such-kernel");
        let err = refused_before_provisioning(
            "boards: [arm64-virt]\nsteps:\n  - guest: {run: 'true'}\n",
            &opts,
        );
        assert!(
            matches!(&err, RunError::Unsupported(u) if u.unmet[0].what == "boards"),
            "{err:?}"
        );
    }
}
