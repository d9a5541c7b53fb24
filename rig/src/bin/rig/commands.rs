//! What each subcommand does, on top of the library.

use crate::args::*;
use crate::failure::{Context, Infra, Result};
use crate::workflows::{matrix, soak};
use crate::{events_for, InputFile};
use rig::guest::transport::Via;
use rig::guest::{Guest, GuestOptions};
use rig::host::artifacts::RunDir;
use rig::host::board::{Arch, Board};
use rig::host::cache::Cache;
use rig::host::exit;
use rig::host::text::terminal_safe;
use rig::machine::accel::AccelChoice;
use std::path::PathBuf;

/// Prints human text made from data rig does not control (guest output, kernel logs, scenario
/// and bundle contents) with its control characters shown, never acted on by the terminal.
pub(crate) fn print_text(text: &str) -> Result<(), StdoutError> {
    write_stdout(&terminal_safe(text))
}

/// Prints a verdict that was already decided: a stdout that cannot take it (a full disk, a
/// closed pipe) is said on stderr and the verdict's exit code stands.
pub(crate) fn print_verdict(text: &str) {
    if let Err(e) = print_text(text) {
        eprintln!("rig: warning: {e}; the verdict is in the exit code and the run's artifacts");
    }
}

/// Stdout refused what rig printed: a full disk behind a redirect, or a reader that went away.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout")]
pub(crate) struct StdoutError(#[source] pub(crate) std::io::Error);

impl StdoutError {
    /// The reader went away (`rig report | head`): not an error worth a message.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

pub(crate) fn write_stdout(text: &str) -> Result<(), StdoutError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// `println!` that returns an error instead of panicking when stdout cannot be written.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::commands::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

pub(crate) fn run(cli: Cli) -> Result<i32> {
    rig::machine::timeouts::env_timeout_scale()?;
    let cache = cli
        .cache_dir
        .clone()
        .map(Cache::at)
        .unwrap_or_else(Cache::from_env);
    match cli.command {
        Cmd::Doctor { reprobe } => doctor(&cache, reprobe),
        Cmd::Setup { kbuild, tests } => {
            let mut needs = vec![
                rig::host::doctor::Need::Core,
                rig::host::doctor::Need::Optional,
            ];
            if kbuild {
                needs.push(rig::host::doctor::Need::Kbuild);
            }
            if tests {
                needs.push(rig::host::doctor::Need::Tests);
            }
            let missing =
                rig::host::doctor::missing_packages(&rig::host::doctor::check_all(), &needs);
            if missing.is_empty() {
                eprintln!("rig: nothing to install");
            } else {
                eprintln!("rig: installing {}", missing.join(" "));
                let log = rig::guest::setup_log(&cache);
                for r in rig::host::doctor::install(&missing, &log)? {
                    eprintln!("rig: {r}");
                }
                eprintln!("rig: installed; apt's transcript: {}", log.display());
            }
            Ok(exit::PASS)
        }
        Cmd::Boot {
            target,
            transport,
            timeout,
            cmd,
        } => {
            let run_dir = RunDir::create(&format!("boot-{}", target.board))?;
            let events = events_for(cli.verbose, Some(&run_dir));
            let mut opts = target.guest_options();
            opts.ssh = transport == Via::Ssh;
            let mut guest = Guest::start(&opts, &cache, &run_dir, &events)
                .with_context(|| format!("booting {} on {}", target.kernel, target.board))?;
            let command = rig::host::process::shell_line(&cmd);
            let out = guest.run(&command, timeout, transport);
            guest.shutdown();
            let out = out.with_context(|| format!("running `{command}` in the guest"))?;
            write_stdout(&out.stdout)?;
            if let Some(err) = &out.stderr {
                eprint!("{err}");
            }
            eprintln!("rig: artifacts: {}", run_dir.path().display());
            Ok(out.status)
        }
        Cmd::Console { target } => {
            let run_dir = RunDir::create(&format!("console-{}", target.board))?;
            let events = events_for(cli.verbose, Some(&run_dir));
            let mut guest = Guest::start(&target.guest_options(), &cache, &run_dir, &events)?;
            eprintln!("rig: console attached; Ctrl-] quits");
            let r = guest.vm.interact();
            guest.shutdown();
            r?;
            eprintln!("rig: artifacts: {}", run_dir.path().display());
            Ok(exit::PASS)
        }
        Cmd::Fetch { target } => {
            let events = events_for(cli.verbose, None);
            let opts = target.guest_options();
            rig::guest::ensure_host_tools(
                &rig::guest::needs_for_kernel(&opts.kernel),
                opts.auto_setup,
                &cache,
                &events,
            )?;
            let img =
                rig::provision::boot_image(&opts.kernel, target.board.arch(), &cache, &events)?;
            outln!("kernel  {}", img.kernel.image.display())?;
            outln!("release {}", img.kernel.release)?;
            outln!("initrd  {}", img.initrd.display())?;
            for (k, v) in &img.kernel.provenance {
                outln!("{k:<7} {v}")?;
            }
            Ok(exit::PASS)
        }
        Cmd::Run {
            scenario,
            target,
            repeat,
            json,
            seed,
            snapshot,
        } => {
            let sc = rig::scenario::load(&scenario, &rig::repo_root().join("overlays"))?;
            let run_dir = RunDir::create(&format!("run-{}-{}", sc.name, target.board))?;
            let events = events_for(cli.verbose, Some(&run_dir));
            let mut opts = run_options(&target);
            opts.repeat = repeat;
            opts.seed = seed;
            opts.snapshot = snapshot;
            let result = rig::run::run_scenario(&sc, &opts, &cache, &run_dir, &events)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&result).infra()?)?;
            } else {
                print_verdict(&result.render());
            }
            Ok(result.verdict.exit_code())
        }
        Cmd::Analyze {
            log,
            json,
            explain,
            vmlinux,
            arch,
        } => {
            let bytes = std::fs::read(&log).map_err(|source| InputFile {
                path: log.clone(),
                source,
            })?;
            let mut reports = rig::dmesg::analyze(&String::from_utf8_lossy(&bytes));
            if let Some(v) = vmlinux {
                rig::dmesg::symbolize(&mut reports, &v, arch.cross_compile())?;
            }
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&rig::dmesg::render_json(&reports)).infra()?
                )?;
            } else if explain {
                print_text(&rig::dmesg::render_explain(&reports))?;
            } else if reports.is_empty() {
                outln!("no kernel reports in {}", log.display())?;
            } else {
                print_text(&rig::dmesg::render_text(&reports))?;
            }
            Ok(exit::PASS)
        }
        Cmd::Check { files } => {
            let overlays = rig::repo_root().join("overlays");
            let mut bad = 0;
            for f in &files {
                if f.file_name().is_some_and(|n| n == rig::matrix::MATRIX_FILE) {
                    match rig::matrix::load(f, &overlays) {
                        Ok((m, _)) => outln!("ok    {} ({} sets)", f.display(), m.sets.len())?,
                        Err(e) => {
                            print_text(&format!("error {e}\n"))?;
                            bad += 1;
                        }
                    }
                    continue;
                }
                match rig::scenario::load(f, &overlays) {
                    Ok(sc) => outln!("ok    {} ({} steps)", f.display(), sc.all_steps().len())?,
                    Err(e) => {
                        print_text(&format!("error {e}\n"))?;
                        bad += 1;
                    }
                }
            }
            Ok(if bad == 0 {
                exit::PASS
            } else {
                exit::BAD_INPUT
            })
        }
        Cmd::Bisect {
            tree,
            good,
            bad,
            scenario,
            board,
            flavor,
            runs,
            title,
            resume,
            verify_revert,
            min_confidence,
            accel,
        } => {
            let sc = rig::scenario::load(&scenario, &rig::repo_root().join("overlays"))?;
            rig::provision::kbuild::flavor(&flavor)?;
            let events = events_for(cli.verbose, None);
            rig::guest::ensure_host_tools(
                &[
                    rig::host::doctor::Need::Core,
                    rig::host::doctor::Need::Kbuild,
                ],
                true,
                &cache,
                &events,
            )?;
            let run_dir = RunDir::create(&format!("bisect-{}-{board}", sc.name))?;
            let req = rig::bisect::Request {
                tree,
                good,
                bad,
                scenario: &sc,
                board,
                flavor,
                accel,
                runs,
                title,
                resume,
                verify_revert,
                min_confidence,
            };
            match rig::bisect::run(&req, &cache, &run_dir, &events) {
                Ok(r) => {
                    print_verdict(&format!(
                        "{}artifacts: {}\n",
                        r.render(),
                        run_dir.path().display()
                    ));
                    Ok(r.exit_code())
                }
                Err(e) => {
                    eprint!("{}", terminal_safe(&format!("rig: error: {e}\n")));
                    eprintln!("rig: artifacts: {}", run_dir.path().display());
                    Ok(e.exit_code())
                }
            }
        }
        Cmd::Matrix { what } => matrix(what, &cache, cli.verbose),
        Cmd::Reproduce {
            path,
            repeat,
            tree,
            bundle,
            no_setup,
        } => {
            if let Some(out) = bundle {
                let b = rig::reproduce::bundle(&path, &out, &cache)?;
                for why in &b.left_out {
                    eprintln!("rig: warning: not in the bundle: {why}");
                }
                eprintln!("rig: bundle holds {}", b.held.join(" "));
                outln!("{}", out.display())?;
                return Ok(exit::PASS);
            }
            let base = std::env::var_os("RIG_ARTIFACTS")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("rig-runs"));
            let recorded = rig::reproduce::open(&path, &base)?;
            let r = &recorded.record;
            let run_dir = RunDir::create(&format!("reproduce-{}-{}", r.scenario.name, r.board))?;
            let events = events_for(cli.verbose, Some(&run_dir));
            eprintln!(
                "rig: reproducing {} on {} with {} (seed {})",
                r.scenario.name, r.board, r.kernel.name, r.seed
            );
            if let Some(problem) = &recorded.report_problem {
                eprintln!(
                    "rig: warning: {problem}: replaying without the original titles to compare \
                     with"
                );
            }
            let opts = rig::reproduce::ReplayOptions {
                repeat,
                tree,
                auto_setup: !no_setup,
            };
            let replay = rig::reproduce::replay(recorded, &opts, &cache, &run_dir, &events)?;
            print_verdict(&replay.render());
            Ok(replay.exit_code())
        }
        Cmd::Report {
            dirs,
            markdown,
            json,
            html,
            junit,
            baseline,
        } => {
            let mut summary = rig::report::collect(&dirs)?;
            if let Some(b) = baseline {
                summary.compare(&rig::report::read_baseline(&b)?);
            }
            if let Some(path) = html {
                let page = rig::report::render_html(&summary, "rig report");
                std::fs::write(&path, page)
                    .infra_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = junit {
                std::fs::write(&path, rig::report::render_junit(&summary, "rig"))
                    .infra_context(|| format!("writing {}", path.display()))?;
            }
            if json {
                outln!("{}", serde_json::to_string_pretty(&summary).infra()?)?;
            } else if markdown {
                print_text(&rig::report::render_markdown(&summary))?;
            } else {
                print_text(&rig::report::render_text(&summary))?;
            }
            Ok(exit::PASS)
        }
        Cmd::Kernel { what } => match what {
            KernelCmd::Flavors => {
                for f in rig::provision::kbuild::CATALOGUE {
                    let name = rig::provision::kbuild::kernel_name(f.name);
                    outln!("{name:<32} {}", f.about)?;
                }
                Ok(exit::PASS)
            }
            KernelCmd::Build {
                arch,
                source,
                flavor,
                no_setup,
            } => {
                let events = events_for(cli.verbose, None);
                rig::provision::kbuild::flavor(&flavor)?;
                rig::guest::ensure_host_tools(
                    &[
                        rig::host::doctor::Need::Core,
                        rig::host::doctor::Need::Kbuild,
                    ],
                    !no_setup,
                    &cache,
                    &events,
                )?;
                let req = rig::provision::kbuild::BuildRequest {
                    arch,
                    source: rig::provision::kbuild::Source::parse(&source),
                    flavor,
                };
                let k = rig::provision::kbuild::build(&req, &cache, &events)?;
                outln!("kernel  {} ({})", k.name, k.release)?;
                outln!("image   {}", k.image.display())?;
                outln!("config  {}", k.config.display())?;
                if let Some(v) = &k.vmlinux {
                    outln!("vmlinux {}", v.display())?;
                }
                Ok(exit::PASS)
            }
        },
        Cmd::Soak(args) => soak(args, &cache, cli.verbose),
        Cmd::Bench { what } => match what {
            BenchCmd::Command {
                target,
                transport,
                runs,
                json,
            } => {
                let events = events_for(cli.verbose, None);
                let run_dir = RunDir::create(&format!("bench-command-{}", target.board))?;
                let opts = target.guest_options();
                let r = rig::bench::command(&opts, transport, runs, &cache, &run_dir, &events)?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&r).infra()?)?;
                } else {
                    outln!("{r}")?;
                }
                Ok(exit::PASS)
            }
            BenchCmd::Run {
                scenario,
                target,
                runs,
                json,
                snapshot,
            } => {
                let sc = rig::scenario::load(&scenario, &rig::repo_root().join("overlays"))?;
                let run_dir = RunDir::create(&format!("bench-run-{}-{}", sc.name, target.board))?;
                let events = events_for(cli.verbose, Some(&run_dir));
                let mut opts = run_options(&target);
                opts.snapshot = snapshot;
                let r = rig::bench::scenario_runs(&sc, &opts, runs, &cache, &run_dir, &events)?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&r).infra()?)?;
                } else {
                    outln!("{r}")?;
                }
                Ok(exit::PASS)
            }
            BenchCmd::Matrix { set } => {
                let events = events_for(cli.verbose, None);
                let (m, scenarios) = rig::matrix::load_default()?;
                let b = rig::matrix::bench::bench(m.set(&set)?, &scenarios, &cache, &events)?;
                outln!("{b}")?;
                Ok(exit::PASS)
            }
            BenchCmd::Bisect { runs } => {
                let events = events_for(cli.verbose, None);
                let started = std::time::Instant::now();
                let history = rig::bisect::fixture::linux_history(&cache, &events)?;
                let prepared = started.elapsed();
                let sc = rig::scenario::load(
                    &rig::repo_root().join("scenarios/overlay-devlink-teardown.yaml"),
                    &rig::repo_root().join("overlays"),
                )?;
                let run_dir = RunDir::create("bench-bisect")?;
                let req = rig::bisect::Request {
                    tree: history.repo.clone(),
                    good: history.good().into(),
                    bad: history.bad().into(),
                    scenario: &sc,
                    board: Board::Arm64Virt,
                    flavor: String::new(),
                    accel: AccelChoice::Auto,
                    runs: Some(runs),
                    title: None,
                    resume: false,
                    verify_revert: false,
                    min_confidence: 0.9,
                };
                let t = std::time::Instant::now();
                let r = rig::bisect::run(&req, &cache, &run_dir, &events)?;
                let (builds, build_s, boots) = r.cost();
                outln!(
                    "bisect of {} commits: {builds} kernels built in {build_s:.0}s, {boots} boots, \
                     {:.0}s wall (fixture {:.0}s); culprit {}",
                    history.commits.len() - 1,
                    t.elapsed().as_secs_f64(),
                    prepared.as_secs_f64(),
                    r.culprit
                        .as_ref()
                        .map(|c| c.subject.as_str())
                        .unwrap_or("none")
                )?;
                Ok(exit::PASS)
            }
            BenchCmd::Kbuild { arch } => {
                let arches = if arch.is_empty() {
                    vec![Arch::X86_64, Arch::Arm64]
                } else {
                    arch
                };
                let events = events_for(cli.verbose, None);
                for a in arches {
                    let b = rig::provision::kbuild::bench(a, &cache, &events)?;
                    outln!(
                        "{a:<7} clean {:>6.1}s  incremental {:>5.1}s  (-j{}, {})",
                        b.clean.as_secs_f64(),
                        b.incremental.as_secs_f64(),
                        b.jobs,
                        b.toolchain
                    )?;
                }
                Ok(exit::PASS)
            }
            BenchCmd::Boot {
                board,
                kernel,
                runs,
                accel,
            } => {
                let boards = if board.is_empty() {
                    Board::ALL.to_vec()
                } else {
                    board
                };
                let events = events_for(cli.verbose, None);
                let run_dir = RunDir::create("bench-boot")?;
                for b in boards {
                    let mut opts = GuestOptions::new(b, &kernel);
                    opts.accel = accel;
                    let r = rig::bench::boot(&opts, runs, &cache, &run_dir, &events)?;
                    outln!("{r}")?;
                }
                Ok(exit::PASS)
            }
        },
    }
}

/// A scenario run's options from the common target flags.
pub(crate) fn run_options(target: &Target) -> rig::run::RunOptions {
    let mut opts = rig::run::RunOptions::new(target.board, &target.kernel);
    opts.accel = target.accel;
    opts.auto_setup = !target.no_setup;
    opts.memory_mib = target.memory;
    opts.extra_cmdline = target.cmdline.clone();
    opts
}

pub(crate) fn doctor(cache: &Cache, reprobe: bool) -> Result<i32> {
    if reprobe {
        rig::machine::accel::forget_decisions(cache).infra_context(|| {
            format!("clearing cached KVM verdicts in {}", cache.root().display())
        })?;
        outln!("info     cached KVM verdicts cleared: the next `--accel auto` run probes again")?;
    }
    let statuses = rig::host::doctor::check_all();
    for s in &statuses {
        let need = serde_json::to_value(s.need)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        match &s.version {
            Some(v) => outln!("ok       {:<28} {:<9} {v}", s.name, need),
            None => outln!("MISSING  {:<28} {:<9} (apt: {})", s.name, need, s.package),
        }?;
    }
    let kvm = rig::machine::accel::kvm_precondition(Board::X86_64Q35, Arch::host());
    match kvm {
        Ok(()) => {
            outln!("info     /dev/kvm usable; `auto` probes it with a short boot (verdict cached)")
        }
        Err(e) => outln!("info     KVM unavailable ({e}); guests run under TCG"),
    }?;
    for board in Board::ALL {
        match rig::machine::accel::cached_decision(board, cache) {
            Some(d) => outln!(
                "info     {board}: cached verdict {} ({}); `rig doctor --reprobe` forgets it",
                d.accel.name(),
                d.reason
            ),
            None => outln!("info     {board}: no cached KVM verdict for this host and access"),
        }?;
    }
    outln!("info     cache: {}", cache.root().display())?;
    let missing = rig::host::doctor::missing_packages(
        &statuses,
        &[
            rig::host::doctor::Need::Core,
            rig::host::doctor::Need::Kbuild,
        ],
    );
    Ok(if missing.is_empty() {
        0
    } else {
        outln!(
            "\nmissing packages: {} (`rig setup --kbuild` installs them)",
            missing.join(" ")
        )?;
        1
    })
}

impl rig::host::exit::Classify for StdoutError {
    fn exit_class(&self) -> rig::host::exit::ExitClass {
        rig::host::exit::ExitClass::Infra
    }
}
