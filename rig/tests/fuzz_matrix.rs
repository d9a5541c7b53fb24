//! Structure-aware fuzzing of matrix files (`scenarios/matrix.yaml`'s format), for a fixed budget
//! (`RIG_MATRIX_FUZZ` cases, default 2000): sets and cell groups built from the schema with
//! hostile values — unknown kernels and boards, globs, huge repeats, deep nesting, long strings,
//! shell metacharacters — and the shipped file mutated, plus files that are not UTF-8. Every one
//! gives a matrix or exactly one error with file, line and column; never a panic.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rig::matrix::MatrixError;
use rig::scenario::{Scenario, ScenarioError};
use std::path::PathBuf;

fn repo() -> PathBuf {
    rig::repo_root()
}

fn scenarios() -> Vec<Scenario> {
    rig::scenario::load_dir(&repo().join("scenarios"), &repo().join("overlays")).unwrap()
}

const VALUES: &[&str] = &[
    "debian-6.1",
    "rig-6.12",
    "rig-6.12-kasan",
    "rig-6.12-nope",
    "tree:/nonexistent#x",
    "x86_64-q35",
    "arm64-virt",
    "riscv",
    "'*'",
    "'[a-'",
    "pci-*",
    "fake-warning",
    "no-such-scenario",
    "'$(reboot)'",
    "'; rm -rf /'",
    "../../etc",
    "0",
    "-1",
    "4294967296",
    "99999999999999999999",
    "~",
    "true",
    "'\\u001b[2J'",
    "[]",
    "{}",
];

const GROUP_KEYS: &[&str] = &[
    "kernels",
    "boards",
    "scenarios",
    "exclude",
    "repeat",
    "kernel",
];

fn value(rng: &mut ChaCha8Rng, depth: usize) -> String {
    match rng.gen_range(0..10) {
        0 if depth < 70 => format!("[{}]", value(rng, depth + 1)),
        1 if depth < 70 => format!("{{a: {}}}", value(rng, depth + 1)),
        2 => format!("'{}'", "s".repeat(rng.gen_range(1..20_000))),
        _ => VALUES[rng.gen_range(0..VALUES.len())].to_string(),
    }
}

fn list(rng: &mut ChaCha8Rng) -> String {
    let n = rng.gen_range(0..4);
    let items: Vec<String> = (0..n).map(|_| value(rng, 0)).collect();
    format!("[{}]", items.join(", "))
}

fn document(rng: &mut ChaCha8Rng) -> String {
    let mut doc = String::from("sets:\n");
    for s in 0..rng.gen_range(0..4) {
        let name = if rng.gen_range(0..6) == 0 {
            value(rng, 0)
        } else {
            format!("set{s}")
        };
        doc.push_str(&format!("  {name}:\n"));
        if rng.gen_bool(0.5) {
            doc.push_str(&format!("    description: {}\n", value(rng, 0)));
        }
        doc.push_str("    cells:\n");
        for _ in 0..rng.gen_range(0..4) {
            let mut kv = Vec::new();
            for k in GROUP_KEYS {
                if rng.gen_range(0..3) != 0 {
                    let v = if *k == "repeat" {
                        value(rng, 0)
                    } else {
                        list(rng)
                    };
                    kv.push(format!("{k}: {v}"));
                }
            }
            doc.push_str(&format!("      - {{{}}}\n", kv.join(", ")));
        }
    }
    doc
}

fn check(
    text: &str,
    label: &str,
    r: std::thread::Result<Result<rig::matrix::Matrix, MatrixError>>,
) {
    let r = r.unwrap_or_else(|_| {
        panic!(
            "panicked on:\n{}",
            text.chars().take(2000).collect::<String>()
        )
    });
    match r {
        Ok(_) => {}
        Err(MatrixError::Invalid(ScenarioError::Invalid {
            file,
            line,
            column,
            message,
            ..
        })) => {
            assert_eq!(file, label);
            assert!(
                line >= 1 && line <= text.lines().count() + 1,
                "line {line}: {message}"
            );
            assert!(column >= 1 && !message.trim().is_empty(), "{message}");
        }
        Err(other) => panic!("an error without a location: {other}\n{text}"),
    }
}

#[test]
fn matrix_fuzzing_gives_a_matrix_or_one_located_error() {
    let sc = scenarios();
    let budget: usize = std::env::var("RIG_MATRIX_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut rng = ChaCha8Rng::seed_from_u64(0x6d61_7472_6978);
    let shipped = std::fs::read_to_string(repo().join("scenarios/matrix.yaml")).unwrap();
    for i in 0..budget {
        let text = if i % 2 == 0 {
            document(&mut rng)
        } else {
            // The shipped file with one line replaced by a hostile value at the same indent.
            let mut lines: Vec<String> = shipped.lines().map(String::from).collect();
            let at = rng.gen_range(0..lines.len());
            let indent = lines[at].len() - lines[at].trim_start().len();
            let key = lines[at]
                .trim_start()
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            lines[at] = format!("{}{key}: {}", " ".repeat(indent), value(&mut rng, 0));
            lines.join("\n")
        };
        let r = std::panic::catch_unwind(|| rig::matrix::parse_str(&text, "m.yaml", &sc));
        check(&text, "m.yaml", r);
    }
    // The shipped file itself is valid.
    rig::matrix::parse_str(&shipped, "m.yaml", &sc).unwrap();
}

#[test]
fn a_matrix_file_that_is_not_utf8_is_one_located_error() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("scenarios");
    std::fs::create_dir(&dir).unwrap();
    let f = dir.join("matrix.yaml");
    std::fs::write(
        &f,
        b"sets:\n  smoke: {cells: [{kernels: [debian-\xff], scenarios: []}]}\n",
    )
    .unwrap();
    let e = rig::matrix::load(&f, &repo().join("overlays"))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("matrix.yaml:2:37: not UTF-8 text (byte 0xff)"),
        "{e}"
    );
}
