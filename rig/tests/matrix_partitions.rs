//! Scale-out runs `--partition hash:K/N` of the matrix on N runners (ci/nightly.yml): two
//! partitions of the real nextest listing hold every cell exactly once.

use std::collections::BTreeMap;
use std::process::Command;

/// `cargo nextest list` of the matrix's cells (ignored ones too) in partition `k` of `n`.
fn partition(k: u32, n: u32) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("RIG_MATRIX", "smoke")
        .env("RIG_NO_SETUP", "1")
        .args([
            "nextest",
            "list",
            "--test",
            "matrix",
            "--run-ignored",
            "all",
        ])
        .arg(format!("--partition=hash:{k}/{n}"))
        .args(["--message-format", "json"])
        .output()
        .expect("running cargo nextest list");
    assert!(
        out.status.success(),
        "cargo nextest list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nextest's JSON");
    let mut cells = Vec::new();
    for suite in v["rust-suites"].as_object().unwrap().values() {
        for (name, t) in suite["testcases"].as_object().unwrap() {
            if t["filter-match"]["status"] == "matches" {
                cells.push(name.clone());
            }
        }
    }
    cells
}

#[test]
fn two_hash_partitions_cover_every_cell_exactly_once() {
    let (m, scenarios) = rig::matrix::load_default().unwrap();
    let all: Vec<String> = m
        .set("smoke")
        .unwrap()
        .cells(&scenarios)
        .iter()
        .map(|c| c.name())
        .collect();
    assert!(all.len() >= 8, "{all:?}");
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let (a, b) = (partition(1, 2), partition(2, 2));
    assert!(
        !a.is_empty() && !b.is_empty(),
        "one partition is empty: {a:?} {b:?}"
    );
    for c in a.iter().chain(&b) {
        *seen.entry(c.clone()).or_default() += 1;
    }
    for c in &all {
        assert_eq!(
            seen.get(c),
            Some(&1),
            "{c}: in {:?} partitions",
            seen.get(c)
        );
    }
    assert_eq!(
        seen.len(),
        all.len(),
        "partitions hold cells the set lacks: {seen:?}"
    );
}
