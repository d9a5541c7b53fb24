//! The analyzer against real-world kernel reports (rig/tests/fixtures/logs/real/, titles as
//! syzbot gave them, see MANIFEST.tsv there): crash/no-crash, exact-title and title-kind
//! agreement, printed per kind, and a failure below the goal (98 % crash/no-crash, 95 %
//! exact titles, 97 % title kinds: the targets of issue #30).

use std::collections::BTreeMap;
use std::path::PathBuf;

const CRASH_GOAL: f64 = 0.98;
const TITLE_GOAL: f64 = 0.95;
const KIND_GOAL: f64 = 0.97;

struct Entry {
    file: String,
    title: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs/real")
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(dir().join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 5, "bad manifest line: {l}");
            Entry {
                file: cols[0].to_string(),
                title: cols[1].to_string(),
            }
        })
        .collect()
}

/// A title's kind: the part before ` in ` (`KASAN: slab-use-after-free Read`, `WARNING`).
fn kind_of(title: &str) -> &str {
    title.split(" in ").next().unwrap_or(title)
}

/// The coarse group a title is counted under in the per-kind figures.
fn group(title: &str) -> String {
    let k = kind_of(title);
    for p in [
        "KASAN",
        "KMSAN",
        "KCSAN",
        "KFENCE",
        "UBSAN",
        "kernel panic",
        "WARNING: ",
        "BUG: ",
        "INFO: task",
    ] {
        if k.starts_with(p) {
            return p.trim_end_matches(": ").trim_end().to_string();
        }
    }
    k.to_string()
}

/// The classes a miss falls in, as issue #30 counts them.
const CLASSES: [&str; 5] = [
    "in corrupted where syzbot has a frame",
    "no report where there is one",
    "a report where there is none",
    "another kind of report",
    "wrong frame or line",
];

fn miss_class(want: &str, want_crash: bool, got: Option<&str>) -> &'static str {
    match got {
        None => CLASSES[1],
        Some(_) if !want_crash => CLASSES[2],
        Some(g) if g.ends_with(" in corrupted") && !want.ends_with(" in corrupted") => CLASSES[0],
        Some(g) if kind_of(g) != kind_of(want) => CLASSES[3],
        Some(_) => CLASSES[4],
    }
}

#[derive(Default)]
struct Tally {
    n: usize,
    crash: usize,
    exact: usize,
    kind: usize,
}

fn pct(a: usize, n: usize) -> f64 {
    if n == 0 {
        100.0
    } else {
        100.0 * a as f64 / n as f64
    }
}

#[test]
fn real_reports_get_syzbots_titles() {
    let entries = manifest();
    assert!(entries.len() >= 30, "{} real reports", entries.len());
    let mut total = Tally::default();
    let mut per: BTreeMap<String, Tally> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut by_class: BTreeMap<&'static str, usize> = BTreeMap::new();
    for e in &entries {
        let bytes =
            std::fs::read(dir().join(&e.file)).unwrap_or_else(|x| panic!("{}: {x}", e.file));
        let reports = rig::dmesg::analyze(&String::from_utf8_lossy(&bytes));
        let got = reports.first().map(|r| r.title.clone());
        let want_crash = !e.title.is_empty() && e.title != "-";
        let t = per.entry(group(&e.title)).or_default();
        for t in [&mut total, t] {
            t.n += 1;
            t.crash += usize::from(got.is_some() == want_crash);
            match &got {
                Some(g) if want_crash => {
                    t.exact += usize::from(*g == e.title);
                    t.kind += usize::from(kind_of(g) == kind_of(&e.title));
                }
                None if !want_crash => {
                    t.exact += 1;
                    t.kind += 1;
                }
                _ => {}
            }
        }
        if got.as_deref() != Some(e.title.as_str()) && (want_crash || got.is_some()) {
            let class = miss_class(&e.title, want_crash, got.as_deref());
            *by_class.entry(class).or_default() += 1;
            misses.push(format!(
                "  [{class}] {}: want {:?}, got {:?}",
                e.file,
                e.title,
                got.as_deref().unwrap_or("(no report)")
            ));
        }
    }
    println!("real-report corpus: {} logs", total.n);
    println!(
        "{:<40} {:>4} {:>8} {:>8} {:>8}",
        "kind", "n", "crash%", "exact%", "kind%"
    );
    for (k, t) in &per {
        println!(
            "{:<40} {:>4} {:>8.1} {:>8.1} {:>8.1}",
            k,
            t.n,
            pct(t.crash, t.n),
            pct(t.exact, t.n),
            pct(t.kind, t.n)
        );
    }
    println!(
        "{:<40} {:>4} {:>8.1} {:>8.1} {:>8.1}",
        "TOTAL",
        total.n,
        pct(total.crash, total.n),
        pct(total.exact, total.n),
        pct(total.kind, total.n)
    );
    println!("misses by class (issue #30's classes):");
    for class in CLASSES {
        println!(
            "  {:<44} {:>4}",
            class,
            by_class.get(class).copied().unwrap_or(0)
        );
    }
    for m in &misses {
        println!("{m}");
    }
    let crash = total.crash as f64 / total.n as f64;
    let exact = total.exact as f64 / total.n as f64;
    let kind = total.kind as f64 / total.n as f64;
    assert!(
        crash >= CRASH_GOAL && exact >= TITLE_GOAL && kind >= KIND_GOAL,
        "below the goal: crash/no-crash {:.1} % (goal {:.0} %), exact titles {:.1} % (goal {:.0} %), \
         title kinds {:.1} % (goal {:.0} %)",
        100.0 * crash,
        100.0 * CRASH_GOAL,
        100.0 * exact,
        100.0 * TITLE_GOAL,
        100.0 * kind,
        100.0 * KIND_GOAL
    );
}
