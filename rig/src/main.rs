//! The `rig` command: parses arguments, sets up progress output, turns errors into exit codes.
//! Everything else lives in the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rig::accel::AccelChoice;
use rig::artifacts::RunDir;
use rig::board::{Arch, Board};
use rig::cache::Cache;
use rig::events::{Events, JsonLines, StderrProgress};
use rig::exit;
use rig::guest::{Guest, GuestOptions, Via};
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
    /// Report the host tools rig needs, with versions, and what is missing.
    Doctor,
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
        /// The command (joined with spaces and run by the guest's sh).
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
    /// Kernel builds.
    Kernel {
        #[command(subcommand)]
        what: KernelCmd,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
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
        /// Flavor: default (empty), kasan, kobject-release, known-bad-devlink-wait.
        #[arg(long, default_value = "")]
        flavor: String,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
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
    /// Clean and incremental (one touched file) kernel build times per arch.
    Kbuild {
        /// Arches (default: both).
        #[arg(long)]
        arch: Vec<Arch>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = rig::process::install_signal_handlers() {
        eprintln!("rig: warning: cannot install signal handlers: {e}");
    }
    let result = run(cli);
    if let Some(sig) = rig::process::caught_signal() {
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

/// Bad input (names, files, flags) is exit 2; everything else the rig could not do is 125.
fn error_code(e: &anyhow::Error) -> i32 {
    let bad_input = e.chain().any(|c| {
        c.downcast_ref::<rig::board::UnknownName>().is_some()
            || c.downcast_ref::<rig::qemu::CmdlineError>().is_some()
            || c.downcast_ref::<rig::scenario::ScenarioError>().is_some()
            || c.downcast_ref::<rig::scenario::Unsupported>().is_some()
            || matches!(
                c.downcast_ref::<rig::image::ImageError>(),
                Some(rig::image::ImageError::UnknownKernel { .. })
            )
            || matches!(
                c.downcast_ref::<rig::kbuild::KbuildError>(),
                Some(
                    rig::kbuild::KbuildError::UnknownKernel { .. }
                        | rig::kbuild::KbuildError::UnknownFlavor { .. }
                )
            )
    });
    if bad_input {
        exit::BAD_INPUT
    } else {
        exit::INFRA
    }
}

fn events_for(verbose: bool, run_dir: Option<&RunDir>) -> Events {
    let mut ev = Events::none().with(Arc::new(StderrProgress { verbose }));
    if let Some(r) = run_dir {
        if let Ok(j) = JsonLines::create(&r.file("events.jsonl")) {
            ev = ev.with(Arc::new(j));
        }
    }
    ev
}

fn run(cli: Cli) -> Result<i32> {
    let cache = cli
        .cache_dir
        .clone()
        .map(Cache::at)
        .unwrap_or_else(Cache::from_env);
    match cli.command {
        Cmd::Doctor => Ok(doctor()),
        Cmd::Setup { kbuild, tests } => {
            let mut needs = vec![rig::doctor::Need::Core, rig::doctor::Need::Optional];
            if kbuild {
                needs.push(rig::doctor::Need::Kbuild);
            }
            if tests {
                needs.push(rig::doctor::Need::Tests);
            }
            let missing = rig::doctor::missing_packages(&rig::doctor::check_all(), &needs);
            if missing.is_empty() {
                eprintln!("rig: nothing to install");
            } else {
                eprintln!("rig: installing {}", missing.join(" "));
                rig::doctor::install(&missing)?;
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
            let command = cmd.join(" ");
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
                &events,
            )?;
            let img = rig::image::boot_image(&opts.kernel, target.board.arch(), &cache, &events)?;
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
        } => {
            let sc = rig::scenario::load(&scenario, &rig::repo_root().join("overlays"))?;
            let run_dir = RunDir::create(&format!("run-{}-{}", sc.name, target.board))?;
            let events = events_for(cli.verbose, Some(&run_dir));
            let mut opts = rig::run::RunOptions::new(target.board, &target.kernel);
            opts.accel = target.accel;
            opts.repeat = repeat;
            opts.auto_setup = !target.no_setup;
            opts.memory_mib = target.memory;
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
            let bytes =
                std::fs::read(&log).with_context(|| format!("reading {}", log.display()))?;
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
        Cmd::Kernel { what } => match what {
            KernelCmd::Build {
                arch,
                source,
                flavor,
            } => {
                let events = events_for(cli.verbose, None);
                rig::guest::ensure_host_tools(
                    &[rig::doctor::Need::Core, rig::doctor::Need::Kbuild],
                    true,
                    &events,
                )?;
                let req = rig::kbuild::BuildRequest {
                    arch,
                    source: rig::kbuild::Source::parse(&source),
                    flavor,
                };
                let k = rig::kbuild::build(&req, &cache, &events)?;
                println!("kernel  {} ({})", k.name, k.release);
                println!("image   {}", k.image.display());
                println!("config  {}", k.config.display());
                if let Some(v) = &k.vmlinux {
                    println!("vmlinux {}", v.display());
                }
                Ok(exit::PASS)
            }
        },
        Cmd::Bench { what } => match what {
            BenchCmd::Kbuild { arch } => {
                let arches = if arch.is_empty() {
                    vec![Arch::X86_64, Arch::Arm64]
                } else {
                    arch
                };
                let events = events_for(cli.verbose, None);
                for a in arches {
                    let b = rig::kbuild::bench(a, &cache, &events)?;
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

fn doctor() -> i32 {
    let statuses = rig::doctor::check_all();
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
    let kvm = rig::accel::kvm_precondition(Board::X86_64Q35, Arch::host());
    match kvm {
        Ok(()) => println!(
            "info     /dev/kvm usable; `auto` probes it with a short boot (verdict cached)"
        ),
        Err(e) => println!("info     KVM unavailable ({e}); guests run under TCG"),
    }
    println!("info     cache: {}", Cache::from_env().root().display());
    let missing = rig::doctor::missing_packages(
        &statuses,
        &[rig::doctor::Need::Core, rig::doctor::Need::Kbuild],
    );
    if missing.is_empty() {
        0
    } else {
        println!(
            "\nmissing packages: {} (`rig setup --kbuild` installs them)",
            missing.join(" ")
        );
        1
    }
}
