//! The decision logic of a bisect, apart from the build/boot machinery: how many runs make a
//! miss unlikely, what a tested commit's runs say, and how much to trust the result.
//!
//! Races are flaky: a bad commit shows its report only in some runs (rate `p`, measured on the
//! bad endpoint). A commit is **bad** as soon as one run shows the target title (same kind and
//! guilty frame: the title encodes both); **good** after `n` runs without it, which a bad commit
//! would pass with probability `(1 − p)^n`; **skipped** when it does not build or most of its
//! runs were infra errors. Other reports are noise: logged, never deciding.

use serde::{Deserialize, Serialize};

/// The most runs one commit gets (p very small would ask for hundreds).
pub const MAX_RUNS: u32 = 100;

/// The chance of missing a bad commit rig accepts when it picks the number of runs.
pub const MISS_PROBABILITY: f64 = 0.01;

/// The fewest runs `n` with `(1 − p)^n ≤ miss`: a bad commit reproducing at rate `p` is then
/// missed with probability at most `miss`. At least 1, at most [`MAX_RUNS`].
pub fn runs_for(p: f64, miss: f64) -> u32 {
    if p >= 1.0 {
        return 1;
    }
    if p <= 0.0 {
        return MAX_RUNS;
    }
    let n = (miss.ln() / (1.0 - p).ln()).ceil();
    (n as u32).clamp(1, MAX_RUNS)
}

/// The probability that `n` runs of a bad commit reproducing at rate `p` all miss.
pub fn miss_chance(p: f64, n: u32) -> f64 {
    (1.0 - p).max(0.0).powi(n as i32)
}

/// What the runs of one commit showed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Runs {
    /// Runs done (infra runs included).
    pub runs: u32,
    /// Runs that showed the target title.
    pub hits: u32,
    /// Runs rig could not carry out (exit 125).
    pub infra: u32,
    /// Titles of other reports seen (noise: logged, not deciding), one entry per run and title.
    pub noise: Vec<String>,
}

impl Runs {
    /// Runs that could have shown the target.
    pub fn valid(&self) -> u32 {
        self.runs.saturating_sub(self.infra)
    }
}

/// What a tested commit is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "verdict", content = "reason")]
pub enum Verdict {
    Good,
    Bad,
    Skip(String),
}

impl Verdict {
    /// The word `git bisect` takes.
    pub fn git_word(&self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip(_) => "skip",
        }
    }
}

/// The verdict on a commit that built, from its runs. One hit is enough for bad; a commit whose
/// runs were mostly infra errors is skipped, not called good.
pub fn judge(runs: &Runs) -> Verdict {
    if runs.hits > 0 {
        return Verdict::Bad;
    }
    if runs.runs == 0 || runs.infra * 2 > runs.runs {
        return Verdict::Skip(format!(
            "{} of {} runs were infra errors",
            runs.infra, runs.runs
        ));
    }
    Verdict::Good
}

/// The probability that every commit called good really is good, under the measured rate `p`:
/// the product over good verdicts of `1 − (1 − p)^n`.
pub fn confidence(p: f64, good_runs: impl IntoIterator<Item = u32>) -> f64 {
    good_runs
        .into_iter()
        .map(|n| 1.0 - miss_chance(p, n))
        .product()
}

/// The title a bisect chases when none is given: the one seen in the most runs of the bad
/// endpoint (ties: the first in name order, so the choice is stable).
pub fn target_title<'a>(titles_per_run: impl IntoIterator<Item = &'a [String]>) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, u32> = Default::default();
    for titles in titles_per_run {
        let mut seen: Vec<&str> = titles.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            *counts.entry(t).or_default() += 1;
        }
    }
    let best = counts.values().copied().max()?;
    counts
        .into_iter()
        .find(|(_, c)| *c == best)
        .map(|(t, _)| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_the_miss_chance_under_one_percent() {
        assert_eq!(runs_for(1.0, 0.01), 1);
        assert_eq!(runs_for(0.9, 0.01), 2);
        assert_eq!(runs_for(0.5, 0.01), 7);
        assert_eq!(runs_for(0.3, 0.01), 13);
        assert_eq!(runs_for(0.0, 0.01), MAX_RUNS);
        assert_eq!(runs_for(0.001, 0.01), MAX_RUNS);
        for p in [0.05, 0.1, 0.3, 0.5, 0.8] {
            let n = runs_for(p, 0.01);
            assert!(miss_chance(p, n) <= 0.01, "p={p} n={n}");
            assert!(
                miss_chance(p, n - 1) > 0.01 || n == 1,
                "p={p}: {n} is not the fewest"
            );
        }
    }

    #[test]
    fn one_hit_is_bad_mostly_infra_is_skip() {
        let r = |runs, hits, infra| Runs {
            runs,
            hits,
            infra,
            noise: vec![],
        };
        assert_eq!(judge(&r(1, 1, 0)), Verdict::Bad);
        assert_eq!(judge(&r(13, 0, 0)), Verdict::Good);
        assert_eq!(judge(&r(13, 0, 6)), Verdict::Good);
        assert!(matches!(judge(&r(13, 0, 7)), Verdict::Skip(_)));
        assert!(matches!(judge(&r(0, 0, 0)), Verdict::Skip(_)));
        // A hit wins even among infra errors.
        assert_eq!(judge(&r(5, 1, 4)), Verdict::Bad);
    }

    #[test]
    fn confidence_is_the_product_over_good_verdicts() {
        assert_eq!(confidence(0.5, []), 1.0);
        let c = confidence(0.5, [7, 7]);
        let one = 1.0 - 0.5f64.powi(7);
        assert!((c - one * one).abs() < 1e-12);
        assert!(confidence(0.3, [1]) < 0.31);
    }

    #[test]
    fn the_target_is_the_most_frequent_title() {
        let runs = [
            vec![
                "OF: ERROR: memory leak in /a".to_string(),
                "WARNING in x".to_string(),
            ],
            vec!["OF: ERROR: memory leak in /a".to_string()],
            vec![],
            vec!["WARNING in x".to_string(), "WARNING in x".to_string()],
        ];
        assert_eq!(
            target_title(runs.iter().map(|v| v.as_slice())).as_deref(),
            Some("OF: ERROR: memory leak in /a")
        );
        assert_eq!(target_title(std::iter::empty::<&[String]>()), None);
    }
}
