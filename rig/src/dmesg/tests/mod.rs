//! Analyzer tests over the hand-written log fixtures in rig/tests/fixtures/logs (see its
//! README), by theme: one report of each kind, streaming and damaged input, rendering.

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/logs/",
            $name
        ))
    };
}

/// (title, kind, guilty frame) of every report, in log order.
fn summary(log: &str) -> Vec<(String, ReportKind, Option<String>)> {
    analyze(log)
        .into_iter()
        .map(|r| (r.title, r.kind, r.guilty_frame))
        .collect()
}

fn one(log: &str) -> Report {
    let r = analyze(log);
    assert_eq!(
        r.len(),
        1,
        "expected one report, got {:#?}",
        r.iter().map(|r| &r.title).collect::<Vec<_>>()
    );
    r.into_iter().next().unwrap()
}

fn check(log: &str, title: &str, kind: ReportKind, guilty: Option<&str>) -> Report {
    let r = one(log);
    assert_eq!(r.title, title);
    assert_eq!(r.kind, kind);
    assert_eq!(r.guilty_frame.as_deref(), guilty);
    r
}

fn s(t: &str, k: ReportKind, g: Option<&str>) -> (String, ReportKind, Option<String>) {
    (t.to_string(), k, g.map(str::to_string))
}

mod forms;
mod kinds;
mod order;
mod render;
mod stream;
mod syzbot;
