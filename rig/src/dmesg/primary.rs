//! Which report comes first: the one syzkaller would report.
//!
//! syzkaller reports one crash per log, the first it finds (google/syzkaller
//! `pkg/report/linux.go`: `Parse()` -> `findFirstOops()`): it reads the log line by line and
//! stops at the first line that holds the header of one of its `linuxOopses` entries
//! (`bytes.Index`, anywhere in the line) and none of that entry's suppressions
//! (`matchOops()` in `pkg/report/report.go`). The entry's order in the table only decides
//! which entry a line is read under; which report comes first is the line's position.
//!
//! rig finds more: its own kinds (OF refcount errors, `sysfs: cannot create duplicate
//! filename`, kobject init errors, the `kmemleak: N new suspected memory leaks` summary, a
//! kmemleak record read from debugfs without syzkaller's `BUG: memory leak` line) hold no
//! such header, and neither do x86 oopses other than the ones syzkaller names
//! (`Oops: int3: ...`). They still fail a run, but the held-out comparison and a reader
//! looking for the bug syzbot would file want syzkaller's report first. So [`order`] puts
//! first the report whose header line syzkaller would stop at first, and every other report
//! after it in log order; when no report has such a line, log order throughout.

use super::Report;
use regex::Regex;
use std::sync::LazyLock;

/// A finished report with what ordering needs to know about it.
#[derive(Debug)]
pub(crate) struct Found {
    pub report: Report,
    /// The log line syzkaller would stop at for this report and the header it matched
    /// there; `None` when no line that started or shaped the report holds one.
    pub syz: Option<(usize, &'static str)>,
}

/// `linuxOopses` (google/syzkaller `pkg/report/linux.go`): each entry's header and its
/// suppressions (regexes). Go runtime and syzkaller's own `SYZFAIL:`/`SYZFATAL:` entries
/// (`commonOopses`) are left out: rig reads kernel logs.
const OOPSES: &[(&str, &[&str])] = &[
    (
        "BUG:",
        &[
            "ODEBUG:",
            "Boot_DEBUG:",
            "xlog_status:",
            "DEBUG:",
            "BUG: no syscalls can create resource",
        ],
    ),
    (
        "WARNING:",
        &[
            "WARNING: /etc/ssh/moduli does not exist, using fixed modulus",
            "WARNING: workqueue cpumask: online intersect > possible intersect",
            "WARNING: [Tt]he mand mount option",
            r"WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1",
            "WARNING: Unprivileged eBPF is enabled with eIBRS",
            r"WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size",
            "WARNING: See https.* for mitigation options.",
            "WARNING: kernel not compiled with CPU_SRSO",
            r"EXT4-[Ff][Ss](?: \(.*\))?:",
            "(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)",
            r"XFS \(\w+\): WARNING",
        ],
    ),
    (
        "INFO:",
        &[
            "INFO: lockdep is turned off",
            "INFO: Stall ended before state dump start",
            "INFO: NMI handler",
            "INFO: recovery required on readonly filesystem",
            "(handler|interrupt).*took too long",
            "INFO: sys_.* is not present in /proc/kallsyms",
            "INFO: no syscalls can create resource",
            "rmt_storage:INFO:",
            "_INFO:",
        ],
    ),
    ("Unable to handle kernel", &[]),
    (
        "general protection fault",
        &[r"general protection fault .* error:\d+ in "],
    ),
    ("stack segment: ", &[]),
    ("Kernel panic", &[]),
    ("PANIC: double fault", &[]),
    ("rust_kernel: panicked", &[]),
    ("kernel BUG", &[]),
    ("Kernel BUG", &[]),
    ("BUG kmalloc-", &[]),
    ("divide error:", &[]),
    ("divide_error:", &[]),
    ("invalid opcode:", &[]),
    ("UBSAN:", &[]),
    (
        "Booting the kernel.",
        &["Parsing ELF|Decompressing Linux|Unknown parameter '"],
    ),
    ("unregister_netdevice: waiting for", &[]),
    ("VFS: Close: file count is 0", &[]),
    ("VFS: Busy inodes after unmount", &[]),
    ("Internal error:", &[]),
    ("Unhandled fault:", &[]),
    ("Alignment trap:", &[]),
    ("trusty: panic", &[]),
];

/// The table with its suppressions compiled (one regex per entry).
static COMPILED: LazyLock<Vec<(&'static str, Option<Regex>)>> = LazyLock::new(|| {
    OOPSES
        .iter()
        .map(|(h, sup)| {
            let re =
                (!sup.is_empty()).then(|| Regex::new(&alternation(sup)).expect("static regex"));
            (*h, re)
        })
        .collect()
});

/// `(?:a)|(?:b)|...`: each suppression keeps its own inline flags (`(?i)`).
fn alternation(res: &[&str]) -> String {
    let parts: Vec<String> = res.iter().map(|r| format!("(?:{r})")).collect();
    parts.join("|")
}

/// The header of the first `linuxOopses` entry that `line` holds and does not suppress.
pub(crate) fn syzkaller_header(line: &str) -> Option<&'static str> {
    COMPILED.iter().find_map(|(h, sup)| {
        (line.contains(h) && !sup.as_ref().is_some_and(|s| s.is_match(line))).then_some(*h)
    })
}

/// The reports with syzkaller's first one first, every other one after it in log order
/// (see the module docs). Each report's `--explain` trail already says whether and where
/// syzkaller would stop at it (`report.rs`), so a report reads the same from
/// [`super::Analyzer::feed`] and from [`super::analyze`].
pub(crate) fn order(mut found: Vec<Found>) -> Vec<Report> {
    found.sort_by_key(|f| f.report.line);
    let first = found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.syz.map(|(line, _)| (line, i)))
        .min();
    if let Some((_, i)) = first {
        let primary = found.remove(i);
        found.insert(0, primary);
    }
    found.into_iter().map(|f| f.report).collect()
}

#[cfg(test)]
mod tests {
    use super::syzkaller_header;

    #[test]
    fn headers_and_suppressions_of_syzkallers_table() {
        assert_eq!(
            syzkaller_header("segment-related general protection fault: 0000 [#1] SMP"),
            Some("general protection fault")
        );
        assert_eq!(
            syzkaller_header(
                "traps: syz-executor[123] general protection fault ip:4005d0 sp:7ffd error:0 in x[400000+1000]"
            ),
            None
        );
        assert_eq!(
            syzkaller_header("ODEBUG: free active (active state 0)"),
            None
        );
        assert_eq!(
            syzkaller_header("INFO: NMI handler (perf_event_nmi_handler) took too long to run"),
            None
        );
        assert_eq!(
            syzkaller_header("sysfs: cannot create duplicate filename '/a'"),
            None
        );
        assert_eq!(syzkaller_header("OF: ERROR: memory leak"), None);
        assert_eq!(syzkaller_header("Oops: int3: 0000 [#1] SMP"), None);
        assert_eq!(
            syzkaller_header("watchdog: BUG: soft lockup - CPU#0 stuck for 22s!"),
            Some("BUG:")
        );
    }
}
