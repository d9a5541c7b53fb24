//! `rig bench command`: the round trip of one guest command through rig's transport against a
//! bare baseline measured in the same run on the same guest.
//!
//! - hvc: the baseline writes the command line raw to the shell's socket and waits for its
//!   output line, which is what a person typing it would wait for; rig's round trip adds the
//!   framing (markers, token, subshell) and the parsing.
//! - ssh: the baseline runs the command on a plain blocking channel of rig's own session; rig's
//!   round trip adds its non-blocking driver with deadlines and keepalives.
//!
//! The two are interleaved round by round (alternating which goes first), after a warm-up, so
//! host load hits both alike.

use super::{BenchError, Summary};
use crate::guest::transport::Via;
use crate::guest::Guest;
use crate::host::artifacts::RunDir;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::machine::spec::MachineSpec;
use std::fmt;
use std::time::{Duration, Instant};

/// The command measured: forks once (an applet of the guest's busybox, exec'd from `PATH`).
pub const COMMAND: &str = "uname -r";
const WARMUP: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, serde::Serialize)]
pub struct CommandBench {
    pub board: String,
    pub kernel: String,
    pub accel: String,
    pub transport: String,
    pub command: String,
    pub runs: usize,
    /// Milliseconds through rig's transport.
    pub rig_ms: Summary,
    /// Milliseconds for the bare baseline.
    pub bare_ms: Summary,
}

impl CommandBench {
    pub fn ratio(&self) -> f64 {
        self.rig_ms.median / self.bare_ms.median
    }
}

impl fmt::Display for CommandBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {:<12} {} {:<6} `{}` n={}: rig {:.1} ms (min {:.1}, p90 {:.1})  \
             bare {:.1} ms (min {:.1}, p90 {:.1})  ratio {:.2}",
            self.board,
            self.kernel,
            self.accel,
            self.transport,
            self.command,
            self.runs,
            self.rig_ms.median,
            self.rig_ms.min,
            self.rig_ms.p90,
            self.bare_ms.median,
            self.bare_ms.min,
            self.bare_ms.p90,
            self.ratio()
        )
    }
}

/// Boots `spec` (host tools installed first when `auto_setup`) and measures `runs` round trips
/// over `via`.
pub fn command(
    spec: &MachineSpec,
    auto_setup: bool,
    via: Via,
    runs: usize,
    cache: &Cache,
    run_dir: &RunDir,
    events: &Events,
) -> Result<CommandBench, BenchError> {
    if runs == 0 {
        return Err(BenchError::NoRuns);
    }
    let mut spec = spec.clone();
    spec.set_ssh(via == Via::Ssh)?;
    let machine = crate::prepare::prepare(spec, auto_setup, cache, events)?;
    let mut g = Guest::boot(&machine, run_dir, &Events::none())?;
    let result = measure(&mut g, via, runs);
    g.shutdown();
    let (rig, bare) = result?;
    Ok(CommandBench {
        board: machine.spec.board.to_string(),
        kernel: machine.spec.kernel.clone(),
        accel: machine.accel.accel.name().into(),
        transport: via.name().into(),
        command: COMMAND.into(),
        runs,
        rig_ms: Summary::of(&rig),
        bare_ms: Summary::of(&bare),
    })
}

fn measure(g: &mut Guest, via: Via, runs: usize) -> Result<(Vec<f64>, Vec<f64>), BenchError> {
    let want = format!("{}\n", g.vm.timings().kernel_release);
    let (mut rig, mut bare) = (Vec::new(), Vec::new());
    for round in 0..WARMUP + runs {
        let mut pair = [0.0; 2];
        for k in 0..2 {
            // Alternate which one goes first.
            let bare_turn = (round + k) % 2 == 0;
            pair[usize::from(bare_turn)] = if bare_turn {
                bare_round(g, via, &want, round)?
            } else {
                rig_round(g, via, &want, round)?
            };
        }
        if round >= WARMUP {
            rig.push(pair[0]);
            bare.push(pair[1]);
        }
    }
    Ok((rig, bare))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn rig_round(g: &mut Guest, via: Via, want: &str, round: usize) -> Result<f64, BenchError> {
    let fail = |why: String| BenchError::Round {
        what: format!("rig's {} round trip", via.name()),
        round,
        why,
    };
    let t = Instant::now();
    let out = g
        .run(COMMAND, TIMEOUT, via)
        .map_err(|e| fail(e.to_string()))?;
    let elapsed = ms(t);
    if out.status != 0 || out.stdout != want {
        return Err(fail(format!(
            "status {}, output {:?}, wanted {want:?}",
            out.status, out.stdout
        )));
    }
    Ok(elapsed)
}

fn bare_round(g: &mut Guest, via: Via, want: &str, round: usize) -> Result<f64, BenchError> {
    let fail = |why: String| BenchError::Round {
        what: format!("the bare {} baseline", via.name()),
        round,
        why,
    };
    match via {
        Via::Hvc => {
            let (console, mut abort) = g.vm.console_watched();
            console.discard_shell_output();
            let pattern = format!("(?m)^{}", regex::escape(want));
            let t = Instant::now();
            console
                .send_line(COMMAND)
                .map_err(|e| fail(e.to_string()))?;
            console
                .wait_shell_for(&pattern, TIMEOUT, &mut abort)
                .map_err(|e| fail(e.to_string()))?;
            Ok(ms(t))
        }
        Via::Ssh => {
            let ssh = g.ssh.as_ref().ok_or_else(|| fail("no ssh".into()))?;
            let t = Instant::now();
            let out = ssh
                .bare_exec(COMMAND, TIMEOUT)
                .map_err(|e| fail(e.to_string()))?;
            let elapsed = ms(t);
            if out != want {
                return Err(fail(format!("output {out:?}, wanted {want:?}")));
            }
            Ok(elapsed)
        }
    }
}
