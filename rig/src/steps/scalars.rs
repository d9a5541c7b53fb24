//! The scenario file's scalars that parse on their own (durations, stagger ranges, sizes,
//! regexes), which the steps' raw forms and the scenario's top level both use.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::time::Duration;

/// A human duration: `30s`, `2m`, `1h 30m`, `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                let why = e.to_string();
                let why = why.split(", supported units").next().unwrap_or_default();
                de::Error::custom(format!(
                    "invalid duration `{s}`: {why} (write e.g. 500ms, 30s, 2m, 1h30m)"
                ))
            })
    }
}

/// `stagger: 0-50ms`: the range a `parallel` child's start delay is drawn from (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stagger {
    pub min: Duration,
    pub max: Duration,
}

/// Start delays for `n` children of a `parallel` with `stagger`: uniform in `[min, max]`,
/// microsecond resolution.
pub fn stagger_delays(rng: &mut impl rand::Rng, n: usize, stagger: &Stagger) -> Vec<Duration> {
    let lo = stagger.min.as_micros() as u64;
    let hi = stagger.max.as_micros() as u64;
    (0..n)
        .map(|_| Duration::from_micros(rng.gen_range(lo..=hi)))
        .collect()
}

/// `stagger: LO-HI`: two durations (`10ms-1s`), or two numbers sharing the unit written after
/// the second (`0-50ms`); LO ≤ HI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaggerRange(pub Stagger);

impl StaggerRange {
    pub fn parse(s: &str) -> Result<Stagger, String> {
        let bad = |why: &str| {
            format!("invalid stagger `{s}`: {why} (write a range such as 0-50ms or 10ms-1s)")
        };
        let (lo, hi) = s.trim().split_once('-').ok_or_else(|| bad("no `-`"))?;
        let (lo, hi) = (lo.trim(), hi.trim());
        let max = humantime::parse_duration(hi).map_err(|e| bad(&e.to_string()))?;
        let lo_text = if !lo.is_empty() && lo.chars().all(|c| c.is_ascii_digit()) {
            let unit = hi.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
            format!("{lo}{unit}")
        } else {
            lo.to_string()
        };
        let min = humantime::parse_duration(&lo_text).map_err(|e| bad(&e.to_string()))?;
        if min > max {
            return Err(bad("the low end is above the high end"));
        }
        if max.is_zero() {
            return Err(bad("the high end must be more than zero"));
        }
        Ok(Stagger { min, max })
    }
}

impl<'de> Deserialize<'de> for StaggerRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StaggerRange::parse(&s)
            .map(StaggerRange)
            .map_err(de::Error::custom)
    }
}

/// A memory size: `256M`, `1G`, `512MiB` (binary units); a bare number is bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(s: &str) -> Result<u64, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size `{s}` (write e.g. 256M, 1G)"))?;
        let shift = match unit.trim() {
            "" | "B" => 0,
            "K" | "KiB" | "k" => 10,
            "M" | "MiB" => 20,
            "G" | "GiB" => 30,
            other => {
                return Err(format!(
                    "invalid size `{s}`: unknown unit `{other}` (use K, M or G)"
                ))
            }
        };
        n.checked_mul(1u64 << shift)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Size::parse(&s).map(Size).map_err(de::Error::custom)
    }
}

/// Compiles a regex with a size limit; the error is one line.
pub(crate) fn compile_regex(s: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let text = e.to_string();
            let why = text
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .map(str::to_string)
                .unwrap_or_else(|| text.lines().collect::<Vec<_>>().join("; "));
            format!("invalid regex `{s}`: {why}")
        })
}

/// A compiled regex (for `wait_log`).
#[derive(Debug, Clone)]
pub struct Regex(pub regex::Regex);

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        compile_regex(&s).map(Regex).map_err(de::Error::custom)
    }
}
