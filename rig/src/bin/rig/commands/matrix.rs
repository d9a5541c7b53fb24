//! `rig matrix list | provision | run`: the cells of a set in scenarios/matrix.yaml.

use super::Ctx;
use crate::args::SetArg;
use crate::failure::{Infra, Result};
use crate::stdout::{outln, print_verdict, write_stdout};
use rig::host::artifacts::RunDir;
use rig::host::exit;
use rig::machine::spec::AccelChoice;

/// The set `--set` names, else $RIG_MATRIX's, else the default.
fn set_name(set: &SetArg) -> String {
    set.set.clone().unwrap_or_else(rig::matrix::set_from_env)
}

/// `rig matrix list`: every cell of the set and what happens to it here (run, or skip and why).
pub(crate) fn list(cx: &Ctx, set: &SetArg, json: bool) -> Result<i32> {
    let (m, scenarios) = rig::matrix::load_default()?;
    let set_name = set_name(set);
    let s = m.set(&set_name)?;
    let events = cx.events(None);
    let planned = rig::matrix::plan_here(s.cells(&scenarios), &cx.cache, &events, !set.no_setup);
    if json {
        let v = rig::matrix::planned_json(&set_name, &planned);
        outln!("{}", serde_json::to_string_pretty(&v).infra()?)?;
    } else {
        write_stdout(&rig::matrix::render_list(&planned))?;
    }
    Ok(exit::PASS)
}

/// `rig matrix provision`: every kernel and initramfs the set boots, provisioned once.
pub(crate) fn provision(cx: &Ctx, set: &SetArg) -> Result<i32> {
    let (m, _) = rig::matrix::load_default()?;
    let set_name = set_name(set);
    let s = m.set(&set_name)?;
    let events = cx.events(None);
    rig::matrix::provision(s, &cx.cache, &events, !set.no_setup)?;
    eprintln!("rig: set {set_name} provisioned");
    Ok(exit::PASS)
}

/// `rig matrix run`: the set provisioned, then its cells one after another into one folder;
/// the exit code is the worst cell's.
pub(crate) fn run(
    cx: &Ctx,
    set: &SetArg,
    accel: AccelChoice,
    vmcore: rig::run::Vmcore,
) -> Result<i32> {
    let (m, scenarios) = rig::matrix::load_default()?;
    let set_name = set_name(set);
    let s = m.set(&set_name)?;
    let events = cx.events(None);
    for sc in &scenarios {
        super::scenario_notices(sc, &events);
    }
    rig::matrix::provision(s, &cx.cache, &events, !set.no_setup)?;
    let planned = rig::matrix::plan_here(s.cells(&scenarios), &cx.cache, &events, false);
    let opts = rig::matrix::CellOptions {
        accel,
        auto_setup: false,
        artifacts: RunDir::base(),
        vmcore,
    };
    let run = rig::matrix::run_planned(&set_name, &planned, &opts, &cx.cache, &events, &mut |o| {
        eprintln!("rig: {} {:?} ({:.0}s)", o.name, o.verdict, o.seconds);
        if o.verdict != rig::run::Verdict::Pass {
            eprint!("{}", rig::host::text::terminal_safe(&o.render()));
        }
    })?;
    print_verdict(&format!(
        "{}matrix folder: {}\n",
        rig::report::render_text(&run.summary),
        run.dir.display()
    ));
    Ok(run.exit_code())
}
