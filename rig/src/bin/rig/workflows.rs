//! `rig soak` and `rig matrix`: the long-running workflows.

use crate::args::*;
use crate::events_for;
use crate::failure::{Infra, Result};
use rig::host::artifacts::RunDir;
use rig::host::cache::Cache;
use rig::host::exit;
use rig::machine::accel::AccelChoice;
use std::path::PathBuf;

pub(crate) fn soak(a: SoakArgs, cache: &Cache, verbose: bool) -> Result<i32> {
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
        rig: match a.child_rig {
            Some(p) => p,
            None => std::env::current_exe().infra_context(|| "locating the rig binary")?,
        },
        dir: dir.path().to_path_buf(),
        cache: cache.root().to_path_buf(),
    };
    eprintln!(
        "rig: soak of {} runs, seed {seed}, in {}",
        opts.runs,
        dir.path().display()
    );
    let report = rig::soak::soak(&opts, &events_for(verbose, Some(&dir)))?;
    crate::commands::print_verdict(&format!(
        "{}seed {seed}; runs in {}\n",
        report.table(),
        dir.path().display()
    ));
    Ok(if report.ok() {
        exit::PASS
    } else {
        exit::KERNEL_FAILURE
    })
}

pub(crate) fn matrix(what: MatrixCmd, cache: &Cache, verbose: bool) -> Result<i32> {
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
                crate::commands::outln!("{}", serde_json::to_string_pretty(&v).infra()?)?;
            } else {
                crate::commands::write_stdout(&rig::matrix::render_list(&planned))?;
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
                        eprint!("{}", rig::host::text::terminal_safe(&o.render()));
                    }
                })?;
            crate::commands::print_verdict(&format!(
                "{}matrix folder: {}\n",
                rig::report::render_text(&run.summary),
                run.dir.display()
            ));
            Ok(run.exit_code())
        }
    }
}
