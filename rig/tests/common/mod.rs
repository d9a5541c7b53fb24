//! Shared helpers for the VM tests: boot a real kernel on a real QEMU through rig's own path.
#![allow(dead_code)]

use rig::guest::transport::Via;
use rig::guest::{Guest, GuestOptions};
use rig::host::artifacts::RunDir;
use rig::host::board::Board;
use rig::host::cache::Cache;
use rig::host::events::Events;
use std::path::PathBuf;
use std::time::Duration;

/// Where VM tests keep their artifacts: `target/rig-test-runs/` (kept on failure for CI uploads).
pub fn runs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/rig-test-runs")
}

pub fn run_dir(label: &str) -> RunDir {
    RunDir::create_in(&runs_dir(), label).unwrap()
}

/// The same cache the CLI uses, so CI provisions each image once per machine.
pub fn cache() -> Cache {
    Cache::from_env()
}

pub fn options(board: Board, kernel: &str) -> GuestOptions {
    let mut o = GuestOptions::new(board, kernel);
    // Tests never install packages behind the user's back: .ci/run does that up front.
    o.auto_setup = false;
    o
}

pub fn boot(board: Board, kernel: &str, label: &str) -> Guest {
    boot_with(options(board, kernel), label)
}

pub fn boot_with(opts: GuestOptions, label: &str) -> Guest {
    let rd = run_dir(&format!("{label}-{}", opts.board));
    match Guest::start(&opts, &cache(), &rd, &Events::none()) {
        Ok(g) => g,
        Err(e) => {
            let mut msg = format!("boot failed: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!("\n  caused by: {s}"));
                src = s.source();
            }
            panic!("{msg}");
        }
    }
}

pub const CMD: Duration = Duration::from_secs(120);

/// Runs a command over serial and asserts it succeeded; returns stdout.
pub fn sh(g: &mut Guest, cmd: &str) -> String {
    let out = g
        .run(cmd, CMD, Via::Serial)
        .unwrap_or_else(|e| panic!("`{cmd}` failed: {e:?}"));
    assert_eq!(
        out.status, 0,
        "`{cmd}` exited {}: {}",
        out.status, out.stdout
    );
    out.stdout
}

/// True while a process with this pid exists (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}
