//! `rig soak`: real runs under injected faults, each checked for its exit class, leaks and
//! evidence.

use super::Ctx;
use crate::args::SoakArgs;
use crate::failure::{Infra, Result};
use crate::stdout::print_verdict;
use rig::host::artifacts::RunDir;
use rig::host::exit;

/// `rig soak`: prints the table; exit 1 on any misfiled verdict, leak or missing evidence.
pub(crate) fn soak(cx: &Ctx, a: SoakArgs) -> Result<i32> {
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
        accel: a.accel.name().into(),
        rig: match a.child_rig {
            Some(p) => p,
            None => std::env::current_exe().infra_context(|| "locating the rig binary")?,
        },
        dir: dir.path().to_path_buf(),
        cache: cx.cache.root().to_path_buf(),
    };
    eprintln!(
        "rig: soak of {} runs, seed {seed}, in {}",
        opts.runs,
        dir.path().display()
    );
    let report = rig::soak::soak(&opts, &cx.events(Some(&dir)))?;
    print_verdict(&format!(
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
