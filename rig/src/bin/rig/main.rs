//! The `rig` command: parses arguments, sets up progress output, turns errors into exit codes.
//! Everything else lives in the library.

mod args;
mod commands;
mod workflows;

use args::Cli;
use clap::Parser;
use commands::run;
use rig::host::artifacts::RunDir;
use rig::host::events::{Events, JsonLines, StderrProgress};
use rig::host::exit;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = rig::host::process::install_signal_handlers() {
        eprintln!("rig: warning: cannot install signal handlers: {e}");
    }
    let result = run(cli);
    if rig::host::process::caught_signal().is_some() {
        // The signal handler is stopping QEMU, cleaning up, and exits with 128+signal.
        rig::host::process::finish_signal_exit();
    }
    let code = match result {
        Ok(code) => code,
        // The reader of rig's stdout went away (`rig report | head`): end as a tool killed by
        // SIGPIPE would, without a message.
        Err(e)
            if e.chain()
                .filter_map(|c| c.downcast_ref::<commands::StdoutError>())
                .any(|s| s.is_broken_pipe()) =>
        {
            128 + 13
        }
        Err(e) => {
            let mut err = std::io::stderr().lock();
            // Errors carry guest output and file contents: shown, never acted on by the terminal.
            let safe = |t: String| rig::host::text::terminal_safe(&t).into_owned();
            let _ = writeln!(err, "rig: error: {}", safe(e.to_string()));
            for cause in e.chain().skip(1) {
                let _ = writeln!(err, "  caused by: {}", safe(cause.to_string()));
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
            || find::<rig::run::RunError>(c).is_some_and(|r| r.is_bad_input())
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
    // A kernel that hung at boot (`rig boot`, `rig console`): the kernel's failure.
    let boot_hang = e
        .chain()
        .any(|c| find::<rig::machine::vm::VmError>(c).is_some_and(|v| v.is_boot_hang()));
    if bad_input {
        exit::BAD_INPUT
    } else if boot_hang {
        exit::KERNEL_FAILURE
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
