//! Benchmarks. Each measures rig against a bare baseline taken in the same run on the same
//! machine, so a loaded TCG host shows as slower numbers on both sides, not as a changed ratio:
//!
//! - `rig bench boot` ([`boot`]): boot to ready through rig vs bare QEMU to the same console
//!   marker;
//! - `rig bench command` ([`command`]): one guest command's round trip through rig's transport
//!   vs the same command written raw to the shell's socket (hvc) or run on a bare ssh
//!   channel (ssh);
//! - `rig bench run SCENARIO` ([`scenario_runs`]): runs per hour of a scenario and where each
//!   repetition's time goes (boot, steps, teardown, analysis).

mod boot;
mod command;
mod scenario;

pub use boot::{boot, BootBench};
pub use command::{command, CommandBench};
pub use scenario::{scenario_runs, RunBench};

use crate::guest::GuestError;
use crate::prepare::PrepareError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Machine(#[from] crate::machine::spec::SpecError),
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Run(#[from] Box<crate::run::RunError>),
    #[error("bare QEMU run {run} failed: {why}")]
    Bare { run: usize, why: String },
    #[error("{what} failed in round {round}: {why}")]
    Round {
        what: String,
        round: usize,
        why: String,
    },
    #[error("no runs asked for")]
    NoRuns,
}

/// The median of the samples (mean of the middle two for an even count).
pub fn median(samples: &mut [f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    Some(if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    })
}

/// Median, minimum and 90th percentile of a set of samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub p90: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Summary {
        let mut s = samples.to_vec();
        let Some(median) = median(&mut s) else {
            return Summary::default();
        };
        // `s` is sorted now.
        let p90 = s[((s.len() as f64 * 0.9).ceil() as usize).clamp(1, s.len()) - 1];
        Summary {
            median,
            min: s[0],
            p90,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn summaries() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(s.median, 5.5);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.p90, 9.0);
        assert_eq!(Summary::of(&[]), Summary::default());
        assert_eq!(Summary::of(&[2.0]).p90, 2.0);
    }
}
