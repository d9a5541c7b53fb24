//! `rig boot` and `rig console`: one guest, a command or a person at its console.

use super::Ctx;
use crate::args::{BootArgs, Target};
use crate::failure::{Context, Result};
use crate::stdout::write_stdout;
use rig::guest::transport::Via;
use rig::guest::Guest;
use rig::host::artifacts::RunDir;
use rig::host::exit;

/// `rig boot`: boots, runs the command, prints its output; the exit code is the command's.
pub(crate) fn boot(cx: &Ctx, a: BootArgs) -> Result<i32> {
    let BootArgs {
        target,
        transport,
        timeout,
        cmd,
    } = a;
    let run_dir = RunDir::create(&format!("boot-{}", target.board))?;
    let events = cx.events(Some(&run_dir));
    let transport = transport.via(&events);
    let mut spec = target.machine_spec();
    spec.set_ssh(transport == Via::Ssh)?;
    let booting = || format!("booting {} on {}", target.kernel, target.board);
    let machine = rig::prepare::prepare(spec, target.auto_setup(), &cx.cache, &events)
        .with_context(booting)?;
    let mut guest = Guest::boot(&machine, &run_dir, &events).with_context(booting)?;
    let command = rig::host::shell::shell_line(&cmd);
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

/// `rig console`: boots and hands the console to the terminal until Ctrl-].
pub(crate) fn console(cx: &Ctx, target: &Target) -> Result<i32> {
    let run_dir = RunDir::create(&format!("console-{}", target.board))?;
    let events = cx.events(Some(&run_dir));
    let machine = rig::prepare::prepare(
        target.machine_spec(),
        target.auto_setup(),
        &cx.cache,
        &events,
    )?;
    let mut guest = Guest::boot(&machine, &run_dir, &events)?;
    eprintln!("rig: console attached; Ctrl-] quits");
    let r = guest.vm.interact();
    guest.shutdown();
    r?;
    eprintln!("rig: artifacts: {}", run_dir.path().display());
    Ok(exit::PASS)
}
