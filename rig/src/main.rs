//! The `rig` command: parses arguments, sets up progress output, turns errors into exit codes.
//! Everything else lives in the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rig::guest::transport::Via;
use rig::guest::{Guest, GuestOptions};
use rig::host::artifacts::RunDir;
use rig::host::board::{Arch, Board};
use rig::host::cache::Cache;
use rig::host::events::{Events, JsonLines, StderrProgress};
use rig::host::exit;
use rig::machine::accel::AccelChoice;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "rig",
    version,
    about = "Boot Linux kernels on QEMU boards and drive teardown paths until they break"
)]
struct Cli {
    /// Cache directory (default: $RIG_CACHE_DIR, else $XDG_CACHE_HOME/rig, else ~/.cache/rig).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// More progress detail (QEMU argv, guest commands, QMP commands).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// Board: x86_64-q35 or arm64-virt.
    #[arg(long)]
    board: Board,
    /// Kernel: debian-6.1, rig-6.12, rig-6.12-FLAVOR.
    #[arg(long, default_value = "debian-6.1")]
    kernel: String,
    /// Accelerator: auto (probe KVM, fall back to TCG), kvm, tcg.
    #[arg(long, default_value = "auto")]
    accel: AccelChoice,
    /// Extra kernel command-line parameters (repeatable).
    #[arg(long = "cmdline")]
    cmdline: Vec<String>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u64,
    /// Never install missing host packages; fail instead.
    #[arg(long)]
    no_setup: bool,
}

impl Target {
    fn guest_options(&self) -> GuestOptions {
        let mut o = GuestOptions::new(self.board, &self.kernel);
        o.accel = self.accel;
        o.extra_cmdline = self.cmdline.clone();
        o.memory_mib = self.memory;
        o.auto_setup = !self.no_setup;
        o
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Report the host tools rig needs, with versions, what is missing, and the cached KVM verdict.
    Doctor {
        /// Forget the cached KVM verdicts: the next `--accel auto` run probes KVM again.
        #[arg(long)]
        reprobe: bool,
    },
    /// Install missing host tools with apt (Debian/Ubuntu, root or sudo).
    Setup {
        /// Also the tools for building kernels.
        #[arg(long)]
        kbuild: bool,
        /// Also the test suite's tools.
        #[arg(long)]
        tests: bool,
    },
    /// Boot, run CMD in the guest, print its output and return its exit status.
    Boot {
        #[command(flatten)]
        target: Target,
        /// How to reach the guest: serial or ssh.
        #[arg(long, default_value = "serial")]
        transport: Via,
        /// Timeout for CMD.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// The command and its arguments, run exactly as this argv (each argument stays one word;
        /// use `-- sh -c '…'` for shell syntax).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Boot and attach an interactive console (Ctrl-] quits).
    Console {
        #[command(flatten)]
        target: Target,
    },
    /// Provision a kernel and its initramfs without booting (prints where they are).
    Fetch {
        #[command(flatten)]
        target: Target,
    },
    /// Run a scenario: boot, run its steps, analyze the kernel log, print a verdict.
    /// Exit 0 pass, 1 kernel failure, 2 bad input (incl. a kernel that lacks what it requires),
    /// 125 rig could not run it.
    Run {
        /// The scenario file (scenarios/*.yaml).
        scenario: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Repeat N times, each on a fresh boot; prints "reproduced in k of N runs" per title.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Print the result as JSON (report.json is written either way).
        #[arg(long)]
        json: bool,
        /// The seed for everything random in the run (`stagger` delays); default: a fresh one,
        /// printed and kept in the run folder.
        #[arg(long)]
        seed: Option<u64>,
        /// Boot once, save the guest's state at its ready shell (QEMU migration to a file) and
        /// start every repetition from it instead of booting. Serial-only scenarios.
        #[arg(long)]
        snapshot: bool,
    },
    /// Find kernel reports (splats) in a saved console log or dmesg and give each a stable title.
    Analyze {
        log: PathBuf,
        /// One JSON object with a `reports` array.
        #[arg(long)]
        json: bool,
        /// Per report: the lines that started and ended it, the frames skipped and why, the
        /// frame chosen for the title.
        #[arg(long, conflicts_with = "json")]
        explain: bool,
        /// Symbolize frames with this vmlinux (addr2line); `--arch` picks the toolchain.
        #[arg(long)]
        vmlinux: Option<PathBuf>,
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
    },
    /// Validate scenario files (strict: file:line:column and field path for every error).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Find the first bad kernel commit for a scenario: endpoints checked, runs per commit from
    /// the measured reproduction rate, build failures skipped, a confidence figure.
    /// Exit 0 culprit found, 1 inconclusive, 2 bad input, 125 infra.
    Bisect {
        /// The kernel git tree (never modified: rig bisects in a worktree of its own).
        #[arg(long)]
        tree: PathBuf,
        #[arg(long)]
        good: String,
        #[arg(long)]
        bad: String,
        /// The scenario file.
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        board: Board,
        /// Kernel flavor (fragments and patches) for every build.
        #[arg(long, default_value = "")]
        flavor: String,
        /// Runs per commit (default: enough that a bad commit is missed with probability ≤ 1 %
        /// at the bad endpoint's measured rate).
        #[arg(long)]
        runs: Option<u32>,
        /// The report title that makes a commit bad (default: the bad endpoint's most frequent).
        #[arg(long)]
        title: Option<String>,
        /// Continue an interrupted bisect from its log.
        #[arg(long)]
        resume: bool,
        /// Revert the culprit on top of --bad and show the title is gone.
        #[arg(long)]
        verify_revert: bool,
        /// Below this confidence the result is inconclusive (exit 1).
        #[arg(long, default_value_t = 0.9)]
        min_confidence: f64,
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
    },
    /// The test matrix (scenarios/matrix.yaml): board × kernel × scenario cells of a named set.
    Matrix {
        #[command(subcommand)]
        what: MatrixCmd,
    },
    /// Re-run a recorded run (a run folder or a bundle) with the same scenario, kernel and seed.
    /// Prints `reproduced: <title> in k of N runs` or `did not reproduce in N runs`.
    /// Exit 1 when the original failure reproduced, 0 when it did not, 2 bad input, 125 infra.
    Reproduce {
        /// A run folder (`rig-runs/…`) or a bundle (`*.tar.gz`).
        path: PathBuf,
        /// Runs, each on a fresh boot (default: as many as the recorded run had).
        #[arg(long)]
        repeat: Option<u32>,
        /// Write a self-contained bundle of the run instead of running it.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Never install missing host packages; fail instead.
        #[arg(long)]
        no_setup: bool,
    },
    /// Summarize runs and matrices: one row per cell, failures first, with console excerpts.
    Report {
        /// Run folders, matrix folders, or folders holding them (searched recursively).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Markdown (for CI summaries) instead of text.
        #[arg(long)]
        markdown: bool,
        /// JSON instead of text (the input of --baseline).
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Also write one static HTML page here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Also write JUnit XML here (skipped cells carry their reason).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// A previous `rig report --json`: list the failures it did not have.
        #[arg(long)]
        baseline: Option<PathBuf>,
    },
    /// Kernel builds.
    Kernel {
        #[command(subcommand)]
        what: KernelCmd,
    },
    /// Soak: real boots of short scenarios, one fault per run at a seeded random moment; checks
    /// the exit code class, leaked processes, artifacts and cache. Prints the table; exit 1 on
    /// any misfiled verdict, leak or missing evidence.
    Soak(SoakArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(clap::Args)]
struct SoakArgs {
    #[arg(long, default_value_t = 15)]
    runs: usize,
    /// Faults, comma-separated, or `all`: qemu-kill, qemu-stop, guest-panic, guest-hang,
    /// console-silent, garbage-flood, printk-flood, qmp-socket-gone, ssh-port-taken,
    /// dropbear-killed, artifacts-full, sigint, sigterm, two-rigs-empty-cache,
    /// kill-during-cache-build.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Runs at once.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Seed of every random choice (default: from the clock; printed, and in soak.jsonl).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value = "arm64-virt")]
    board: Board,
    #[arg(long, default_value = "debian-6.1")]
    kernel: String,
    #[arg(long, default_value = "auto")]
    accel: String,
}

#[derive(Subcommand)]
enum KernelCmd {
    /// Build a kernel (cached by source, config, patches and toolchain).
    Build {
        #[arg(long)]
        arch: Arch,
        /// `debian-6.12` (Debian's linux-source-6.12) or a path to a kernel tree / git worktree.
        #[arg(long, default_value = "debian-6.12")]
        source: String,
        /// Flavor: default (empty) or a name from `rig kernel flavors`.
        #[arg(long, default_value = "")]
        flavor: String,
        /// Never install missing host packages; fail instead.
        #[arg(long)]
        no_setup: bool,
    },
    /// List the kernel flavors rig can build.
    Flavors,
}

#[derive(clap::Args, Clone)]
struct SetArg {
    /// The set (default: $RIG_MATRIX, else smoke).
    #[arg(long)]
    set: Option<String>,
    /// Never install missing host packages; fail instead.
    #[arg(long)]
    no_setup: bool,
}

#[derive(Subcommand)]
enum MatrixCmd {
    /// Every cell of the set and what happens to it: run, or skip and why.
    List {
        #[command(flatten)]
        set: SetArg,
        #[arg(long)]
        json: bool,
    },
    /// Provision everything the set boots (kernels, initramfs), once, before any cell runs.
    Provision {
        #[command(flatten)]
        set: SetArg,
    },
    /// Run the set's cells one after another (no nextest needed) into one folder with a summary.
    /// Exit 1 when a cell failed, 125 when one hit an infra error, else 0.
    Run {
        #[command(flatten)]
        set: SetArg,
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Cells per hour of a matrix set on this host, and where the time goes (provisioning,
    /// boot, steps, analysis).
    Matrix {
        #[arg(long, default_value = "smoke")]
        set: String,
    },
    /// Median boot-to-ready time per board through rig and through bare QEMU.
    Boot {
        /// Boards (default: both).
        #[arg(long)]
        board: Vec<Board>,
        #[arg(long, default_value = "debian-6.1")]
        kernel: String,
        /// Boots per board and mode.
        #[arg(short = 'n', long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value = "auto")]
        accel: AccelChoice,
    },
    /// Round trip of one guest command through rig vs a bare baseline on the same guest.
    Command {
        #[command(flatten)]
        target: Target,
        /// serial (the guest's command shell) or ssh.
        #[arg(long, default_value = "serial")]
        transport: Via,
        /// Timed rounds (each: one bare, one through rig).
        #[arg(short = 'n', long, default_value_t = 30)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Runs per hour of a scenario, and where a run's time goes (boot, steps, teardown, analysis).
    Run {
        scenario: PathBuf,
        #[command(flatten)]
        target: Target,
        /// Repetitions, each on a fresh boot (or restored, with --snapshot).
        #[arg(short = 'n', long, default_value_t = 10)]
        runs: u32,
        #[arg(long)]
        json: bool,
        /// Boot once, save the guest's state at its ready shell (QEMU migration to a file) and
        /// start every repetition from it instead of booting. Serial-only scenarios.
        #[arg(long)]
        snapshot: bool,
    },
    /// The suite's real bisect (rig::bisect::fixture: seven commits on linux-source-6.12, the
    /// overlay scenario on arm64-virt): kernels built, build time, boots, wall time.
    Bisect {
        /// Runs per commit.
        #[arg(long, default_value_t = 2)]
        runs: u32,
    },
    /// Clean and incremental (one touched file) kernel build times per arch.
    Kbuild {
        /// Arches (default: both).
        #[arg(long)]
        arch: Vec<Arch>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = rig::host::process::install_signal_handlers() {
        eprintln!("rig: warning: cannot install signal handlers: {e}");
    }
    let result = run(cli);
    if let Some(sig) = rig::host::process::caught_signal() {
        // The signal handler is stopping QEMU and exits with 128+signal.
        std::process::exit(128 + sig);
    }
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "rig: error: {e}");
            for cause in e.chain().skip(1) {
                let _ = writeln!(err, "  caused by: {cause}");
            }
            error_code(&e)
        }
    };
    std::process::exit(code);
}

/// A file named on the command line that cannot be read (bad input).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
struct InputFile {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Bad input (names, files, flags) is exit 2; everything else the rig could not do is 125.
fn error_code(e: &anyhow::Error) -> i32 {
    // Library errors box some sources; a boxed error's `source()` skips the box's content, so
    // look at each link both as itself and as a `Box` of it.
    fn find<'a, T: std::error::Error + 'static>(
        c: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a T> {
        c.downcast_ref::<T>()
            .or_else(|| c.downcast_ref::<Box<T>>().map(|b| &**b))
    }
    let bad_input = e.chain().any(|c| {
        find::<rig::host::board::UnknownName>(c).is_some()
            || find::<InputFile>(c).is_some()
            || find::<rig::machine::timeouts::BadTimeoutScale>(c).is_some()
            || find::<rig::machine::qemu::CmdlineError>(c).is_some()
            || find::<rig::scenario::ScenarioError>(c).is_some()
            || find::<rig::run::requirements::Unsupported>(c).is_some()
            || find::<rig::soak::fault::UnknownFault>(c).is_some()
            || find::<rig::matrix::MatrixError>(c).is_some_and(|m| m.is_bad_input())
            || find::<rig::reproduce::ReproduceError>(c).is_some_and(|r| r.is_bad_input())
            || find::<rig::report::ReportError>(c).is_some()
            || find::<rig::provision::ProvisionError>(c).is_some_and(|p| p.is_unknown_name())
            || find::<rig::provision::kbuild::KbuildError>(c).is_some_and(|k| {
                matches!(
                    k,
                    rig::provision::kbuild::KbuildError::UnknownKernel { .. }
                        | rig::provision::kbuild::KbuildError::UnknownFlavor { .. }
                )
            })
    });
    if bad_input {
        exit::BAD_INPUT
    } else {
        exit::INFRA
    }
}

fn events_for(verbose: bool, run_dir: Option<&RunDir>) -> Events {
    let mut ev = Events::none().with(Arc::new(StderrProgress::new(verbose)));
    if let Some(r) = run_dir {
        if let Ok(j) = JsonLines::create(&r.file("events.jsonl")) {
            ev = ev.with(Arc::new(j));
        }
    }
    ev
}

fn run(cli: Cli) -> Result<i32> {
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
                rig::host::doctor::install(&missing, &log)?;
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
            print!("{}", out.stdout);
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
            println!("kernel  {}", img.kernel.image.display());
            println!("release {}", img.kernel.release);
            println!("initrd  {}", img.initrd.display());
            for (k, v) in &img.kernel.provenance {
                println!("{k:<7} {v}");
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
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                print!("{}", result.render());
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
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rig::dmesg::render_json(&reports))?
                );
            } else if explain {
                print!("{}", rig::dmesg::render_explain(&reports));
            } else if reports.is_empty() {
                println!("no kernel reports in {}", log.display());
            } else {
                print!("{}", rig::dmesg::render_text(&reports));
            }
            Ok(exit::PASS)
        }
        Cmd::Check { files } => {
            let overlays = rig::repo_root().join("overlays");
            let mut bad = 0;
            for f in &files {
                if f.file_name().is_some_and(|n| n == rig::matrix::MATRIX_FILE) {
                    match rig::matrix::load(f, &overlays) {
                        Ok((m, _)) => println!("ok    {} ({} sets)", f.display(), m.sets.len()),
                        Err(e) => {
                            println!("error {e}");
                            bad += 1;
                        }
                    }
                    continue;
                }
                match rig::scenario::load(f, &overlays) {
                    Ok(sc) => println!("ok    {} ({} steps)", f.display(), sc.all_steps().len()),
                    Err(e) => {
                        println!("error {e}");
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
                    print!("{}", r.render());
                    println!("artifacts: {}", run_dir.path().display());
                    Ok(r.exit_code())
                }
                Err(e) => {
                    eprintln!("rig: error: {e}");
                    eprintln!("rig: artifacts: {}", run_dir.path().display());
                    Ok(e.exit_code())
                }
            }
        }
        Cmd::Matrix { what } => matrix(what, &cache, cli.verbose),
        Cmd::Reproduce {
            path,
            repeat,
            bundle,
            no_setup,
        } => {
            if let Some(out) = bundle {
                let held = rig::reproduce::bundle(&path, &out)?;
                eprintln!("rig: bundle holds {}", held.join(" "));
                println!("{}", out.display());
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
            let replay =
                rig::reproduce::replay(recorded, repeat, !no_setup, &cache, &run_dir, &events)?;
            print!("{}", replay.render());
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
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = junit {
                std::fs::write(&path, rig::report::render_junit(&summary, "rig"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else if markdown {
                print!("{}", rig::report::render_markdown(&summary));
            } else {
                print!("{}", rig::report::render_text(&summary));
            }
            Ok(exit::PASS)
        }
        Cmd::Kernel { what } => match what {
            KernelCmd::Flavors => {
                for f in rig::provision::kbuild::CATALOGUE {
                    let name = rig::provision::kbuild::kernel_name(f.name);
                    println!("{name:<32} {}", f.about);
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
                println!("kernel  {} ({})", k.name, k.release);
                println!("image   {}", k.image.display());
                println!("config  {}", k.config.display());
                if let Some(v) = &k.vmlinux {
                    println!("vmlinux {}", v.display());
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
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!("{r}");
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
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!("{r}");
                }
                Ok(exit::PASS)
            }
            BenchCmd::Matrix { set } => {
                let events = events_for(cli.verbose, None);
                let (m, scenarios) = rig::matrix::load_default()?;
                let b = rig::matrix::bench::bench(m.set(&set)?, &scenarios, &cache, &events)?;
                println!("{b}");
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
                println!(
                    "bisect of {} commits: {builds} kernels built in {build_s:.0}s, {boots} boots, \
                     {:.0}s wall (fixture {:.0}s); culprit {}",
                    history.commits.len() - 1,
                    t.elapsed().as_secs_f64(),
                    prepared.as_secs_f64(),
                    r.culprit
                        .as_ref()
                        .map(|c| c.subject.as_str())
                        .unwrap_or("none")
                );
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
                    println!(
                        "{a:<7} clean {:>6.1}s  incremental {:>5.1}s  (-j{}, {})",
                        b.clean.as_secs_f64(),
                        b.incremental.as_secs_f64(),
                        b.jobs,
                        b.toolchain
                    );
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
                    println!("{r}");
                }
                Ok(exit::PASS)
            }
        },
    }
}

/// A scenario run's options from the common target flags.
fn run_options(target: &Target) -> rig::run::RunOptions {
    let mut opts = rig::run::RunOptions::new(target.board, &target.kernel);
    opts.accel = target.accel;
    opts.auto_setup = !target.no_setup;
    opts.memory_mib = target.memory;
    opts.extra_cmdline = target.cmdline.clone();
    opts
}

fn soak(a: SoakArgs, cache: &Cache, verbose: bool) -> Result<i32> {
    a.accel.parse::<AccelChoice>()?;
    let faults = rig::soak::fault::Fault::parse_list(&a.faults)?;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let dir = RunDir::create("soak")?;
    let opts = rig::soak::SoakOptions {
        faults,
        runs: a.runs,
        parallel: a.parallel,
        seed,
        board: a.board,
        kernel: a.kernel,
        accel: a.accel,
        rig: std::env::current_exe().context("locating the rig binary")?,
        dir: dir.path().to_path_buf(),
        cache: cache.root().to_path_buf(),
    };
    eprintln!(
        "rig: soak of {} runs, seed {seed}, in {}",
        opts.runs,
        dir.path().display()
    );
    let report = rig::soak::soak(&opts, &events_for(verbose, Some(&dir)))?;
    print!("{}", report.table());
    println!("seed {seed}; runs in {}", dir.path().display());
    Ok(if report.ok() {
        exit::PASS
    } else {
        exit::KERNEL_FAILURE
    })
}

fn matrix(what: MatrixCmd, cache: &Cache, verbose: bool) -> Result<i32> {
    let (m, scenarios) = rig::matrix::load_default()?;
    let (MatrixCmd::List { set, .. } | MatrixCmd::Provision { set } | MatrixCmd::Run { set, .. }) =
        &what;
    let set_name = set.set.clone().unwrap_or_else(rig::matrix::set_from_env);
    let auto_setup = !set.no_setup;
    let s = m.set(&set_name)?;
    let events = events_for(verbose, None);
    match what {
        MatrixCmd::Provision { .. } => {
            rig::matrix::provision(s, cache, &events, auto_setup)?;
            eprintln!("rig: set {set_name} provisioned");
            Ok(exit::PASS)
        }
        MatrixCmd::List { json, .. } => {
            let planned = rig::matrix::plan_here(s.cells(&scenarios), cache, &events, auto_setup);
            if json {
                let v = rig::matrix::planned_json(&set_name, &planned);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", rig::matrix::render_list(&planned));
            }
            Ok(exit::PASS)
        }
        MatrixCmd::Run { accel, .. } => {
            rig::matrix::provision(s, cache, &events, auto_setup)?;
            let planned = rig::matrix::plan_here(s.cells(&scenarios), cache, &events, false);
            let opts = rig::matrix::CellOptions {
                accel,
                auto_setup: false,
                artifacts: std::env::var_os("RIG_ARTIFACTS")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("rig-runs")),
            };
            let run =
                rig::matrix::run_planned(&set_name, &planned, &opts, cache, &events, &mut |o| {
                    eprintln!("rig: {} {:?} ({:.0}s)", o.name, o.verdict, o.seconds);
                    if o.verdict != rig::run::Verdict::Pass {
                        eprint!("{}", o.render());
                    }
                })?;
            print!("{}", rig::report::render_text(&run.summary));
            println!("matrix folder: {}", run.dir.display());
            Ok(run.exit_code())
        }
    }
}

fn doctor(cache: &Cache, reprobe: bool) -> Result<i32> {
    if reprobe {
        rig::machine::accel::forget_decisions(cache).with_context(|| {
            format!("clearing cached KVM verdicts in {}", cache.root().display())
        })?;
        println!("info     cached KVM verdicts cleared: the next `--accel auto` run probes again");
    }
    let statuses = rig::host::doctor::check_all();
    for s in &statuses {
        let need = serde_json::to_value(s.need)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        match &s.version {
            Some(v) => println!("ok       {:<28} {:<9} {v}", s.name, need),
            None => println!("MISSING  {:<28} {:<9} (apt: {})", s.name, need, s.package),
        }
    }
    let kvm = rig::machine::accel::kvm_precondition(Board::X86_64Q35, Arch::host());
    match kvm {
        Ok(()) => println!(
            "info     /dev/kvm usable; `auto` probes it with a short boot (verdict cached)"
        ),
        Err(e) => println!("info     KVM unavailable ({e}); guests run under TCG"),
    }
    for board in Board::ALL {
        match rig::machine::accel::cached_decision(board, cache) {
            Some(d) => println!(
                "info     {board}: cached verdict {} ({}); `rig doctor --reprobe` forgets it",
                d.accel.name(),
                d.reason
            ),
            None => println!("info     {board}: no cached KVM verdict for this host and access"),
        }
    }
    println!("info     cache: {}", cache.root().display());
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
        println!(
            "\nmissing packages: {} (`rig setup --kbuild` installs them)",
            missing.join(" ")
        );
        1
    })
}
