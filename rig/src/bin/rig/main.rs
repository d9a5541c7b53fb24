//! The `rig` command: parses arguments, hands them to [`commands`] (one function per
//! subcommand), turns errors into exit codes. Everything else lives in the library.

mod args;
mod commands;
mod failure;
mod stdout;

use args::Cli;
use clap::Parser;
use commands::run;
use std::io::Write;

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
            if e.error
                .chain()
                .filter_map(|c| c.downcast_ref::<stdout::StdoutError>())
                .any(|s| s.is_broken_pipe()) =>
        {
            128 + 13
        }
        Err(e) => {
            let mut err = std::io::stderr().lock();
            // Errors carry guest output and file contents: shown, never acted on by the terminal.
            let safe = |t: String| rig::host::text::terminal_safe(&t).into_owned();
            let _ = writeln!(err, "rig: error: {}", safe(e.error.to_string()));
            for cause in e.error.chain().skip(1) {
                let _ = writeln!(err, "  caused by: {}", safe(cause.to_string()));
            }
            e.class.code()
        }
    };
    std::process::exit(code);
}
