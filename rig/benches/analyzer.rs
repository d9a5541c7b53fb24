//! Throughput of `rig::dmesg` over large logs (plain harness: prints MB/s).
//!
//! `cargo bench --bench analyzer` builds ~64 MiB logs from the clean-boot fixtures (x86_64
//! without caller tags, arm64 with them), once report-free and once with a splat every ~2000
//! lines, and measures `analyze()` on the whole text and `Analyzer::feed` in 4 KiB chunks
//! (how the console reader delivers it). Best of three runs each.

use rig::dmesg::{analyze, Analyzer};
use std::hint::black_box;
use std::time::Instant;

const TARGET_BYTES: usize = 64 << 20;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/logs/",
            $name
        ))
    };
}

/// Kernel lines only (shell prompts dropped), so repeated boots read as one long log.
fn kernel_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.starts_with('['))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn build(with_reports: bool) -> (String, usize) {
    let noise = [
        kernel_lines(fixture!("boot_clean_x86_64.log")),
        kernel_lines(fixture!("boot_clean_arm64.log")),
    ];
    let splats = [
        fixture!("refcount_of_node_put_x86_64_6.12.log"),
        fixture!("lockdep_circular_x86_64_6.12.log"),
        fixture!("kasan_uaf_write_arm64_6.1.log"),
        fixture!("of_error_bad_put_arm64_6.1.log"),
        fixture!("hung_task_arm64_6.12.log"),
        fixture!("null_deref_panic_x86_64_6.12.log"),
    ];
    let mut s = String::with_capacity(TARGET_BYTES + (1 << 20));
    let mut i = 0;
    let mut inserted = 0;
    while s.len() < TARGET_BYTES {
        s.push_str(&noise[i % 2]);
        if with_reports && i % 10 == 9 {
            s.push_str(splats[inserted % splats.len()]);
            inserted += 1;
        }
        i += 1;
    }
    (s, inserted)
}

fn measure(label: &str, bytes: usize, mut f: impl FnMut() -> usize) -> usize {
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..3 {
        let t = Instant::now();
        n = black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    let mb = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "{label:<44} {mb:7.1} MiB  {:8.3} s  {:8.1} MiB/s  {n} reports",
        best,
        mb / best
    );
    n
}

fn main() {
    // Under `cargo test --benches` / `--all-targets` (a debug build): a 1 MiB smoke run only.
    let quick = cfg!(debug_assertions) || std::env::args().any(|a| a == "--test");
    for with_reports in [false, true] {
        let (mut log, inserted) = build(with_reports);
        if quick {
            log.truncate(log[..1 << 20].rfind('\n').map_or(0, |i| i + 1));
        }
        let what = if with_reports {
            "with reports"
        } else {
            "report-free"
        };
        let n = measure(&format!("analyze, {what}"), log.len(), || {
            analyze(&log).len()
        });
        let m = measure(
            &format!("feed 4 KiB chunks + finish, {what}"),
            log.len(),
            || {
                let mut a = Analyzer::new();
                let mut count = 0;
                let b = log.as_bytes();
                let mut i = 0;
                while i < b.len() {
                    let mut j = (i + 4096).min(b.len());
                    while !log.is_char_boundary(j) {
                        j += 1;
                    }
                    count += a.feed(&log[i..j]).len();
                    i = j;
                }
                count + a.finish().len()
            },
        );
        assert_eq!(n, m, "feed and analyze disagree");
        if !with_reports {
            assert_eq!(n, 0, "boot noise must yield no reports");
        } else if !quick {
            // null_deref_panic holds two reports (the oops and the panic).
            assert!(n >= inserted, "{n} reports for {inserted} splats");
        }
    }
}
