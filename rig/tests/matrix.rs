//! The matrix as tests: one per board × kernel × scenario cell of the set `RIG_MATRIX` names
//! (default `smoke`), named `BOARD::KERNEL::SCENARIO`. A cell the board or kernel cannot run is
//! an ignored test (`rig matrix list` shows why). A failed cell ends its output with its
//! artifacts folder and, last, the `rig reproduce` line.
//!
//! Listing provisions the kernels of the set (to read their `.config`): a cached kernel costs
//! nothing; `RIG_NO_SETUP=1` keeps it from installing host packages.

use libtest_mimic::{Arguments, Failed, Trial};
use rig::host::cache::Cache;
use rig::host::events::{Events, StderrProgress};
use rig::matrix::{self, CellOptions, Plan};
use std::sync::Arc;

fn artifacts() -> std::path::PathBuf {
    std::env::var_os("RIG_ARTIFACTS")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target/rig-matrix")
        })
}

fn trials(args: &Arguments) -> Result<Vec<Trial>, String> {
    let set_name = matrix::set_from_env();
    let (m, scenarios) = matrix::load_default().map_err(|e| e.to_string())?;
    let set = m.set(&set_name).map_err(|e| e.to_string())?;
    let mut cells = set.cells(&scenarios);
    // nextest runs each test as `matrix --exact NAME`: plan only that cell.
    if let (true, Some(name)) = (args.exact, &args.filter) {
        cells.retain(|c| &c.name() == name);
    }
    let cache = Cache::from_env();
    let events = Events::none().with(Arc::new(StderrProgress::new(false)));
    let auto_setup = std::env::var_os("RIG_NO_SETUP").is_none();
    let planned = matrix::plan_here(cells, &cache, &events, auto_setup);
    Ok(planned
        .into_iter()
        .map(|p| {
            let name = p.cell.name();
            match p.plan {
                Plan::Skip(_) => Trial::test(name, || Ok(())).with_ignored_flag(true),
                Plan::Error(why) => Trial::test(name, move || Err(Failed::from(why))),
                Plan::Run => {
                    let cell = p.cell;
                    Trial::test(name, move || {
                        let opts = CellOptions {
                            accel: rig::machine::spec::AccelChoice::Auto,
                            auto_setup: false,
                            artifacts: artifacts(),
                            vmcore: rig::run::Vmcore::Never,
                        };
                        let cache = Cache::from_env();
                        let events = Events::none().with(Arc::new(StderrProgress::new(false)));
                        let out = matrix::run_cell(&cell, &opts, &cache, &events);
                        let text = rig::host::text::terminal_safe(&out.render()).into_owned();
                        // On stderr too, so the reproduce line is the last thing the cell prints.
                        eprint!("{text}");
                        if out.verdict == rig::run::Verdict::Pass {
                            Ok(())
                        } else {
                            Err(Failed::from(text.trim_end()))
                        }
                    })
                }
            }
        })
        .collect())
}

fn main() {
    rig::host::process::install_signal_handlers().ok();
    let args = Arguments::from_args();
    let trials = trials(&args).unwrap_or_else(|e| {
        // A broken matrix file is a failing test, never an empty list.
        vec![Trial::test("matrix-file", move || Err(Failed::from(e)))]
    });
    libtest_mimic::run(&args, trials).exit();
}
