//! Turning a finished report into its kind, guilty frame and stable title.

use super::analyzer::{Open, Phase};
use super::classify::{Fault, Header, OfClass, WarnMsg};
use super::frames::guilty;
use super::{Report, ReportKind};

/// Replaces numbers in a title: decimal runs, `0x` hex, and bare hex words of 8+ digits
/// (addresses) become `N`. Words are `[A-Za-z0-9_]` runs, so `i2c` or `ext4_fill_super` stay.
pub fn normalize_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let w = &s[st..i];
            if is_number_word(w) {
                out.push('N');
            } else {
                out.push_str(w);
            }
        } else {
            // keep multi-byte characters intact
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + ch_len]);
            i += ch_len;
        }
    }
    out
}

fn is_number_word(w: &str) -> bool {
    if w.bytes().all(|c| c.is_ascii_digit()) {
        return true;
    }
    if let Some(h) = w.strip_prefix("0x") {
        return !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit());
    }
    w.len() >= 8
        && w.bytes().all(|c| c.is_ascii_hexdigit())
        && w.bytes().any(|c| c.is_ascii_digit())
}

/// The descriptive part of a `BUG: <desc>` line, cut before the first variable detail.
fn cut_desc(desc: &str) -> &str {
    let seps = [":", " - ", "!", " in process ", " [", " (", ",", " at "];
    let end = seps
        .iter()
        .filter_map(|s| desc.find(s))
        .min()
        .unwrap_or(desc.len());
    desc[..end].trim()
}

fn with_guilty(base: String, g: &Option<String>) -> String {
    match g {
        Some(f) => format!("{base} in {f}"),
        None => base,
    }
}

fn of_title(class: OfClass, path: &str, raw: &str) -> String {
    let p = if path.is_empty() { "?" } else { path };
    let what = match class {
        OfClass::BadPut => "bad of_node_put()",
        OfClass::RefcountLeak => "memory leak",
        OfClass::LeakBeforeFree => "memory leak before free overlay changeset",
        OfClass::UnexpectedProperties => "unexpected properties",
        OfClass::UnexpectedChildren => "unexpected children",
        OfClass::Other => return format!("OF: ERROR: {raw}"),
    };
    format!("OF: ERROR: {what} in {p}")
}

/// Builds the public report, or `None` for noise (expected dt-test output, a bare `cut here`).
pub(crate) fn build(mut o: Open) -> Option<Report> {
    if o.expected {
        return None;
    }
    if let Some(pc) = o.pc_func.clone() {
        if o.stack.first() != Some(&pc) {
            o.stack.insert(0, pc);
        }
    }
    let stack_g = guilty(o.stack.iter());
    let header_g = |f: &Option<String>| guilty(f.iter().chain(o.stack.iter()));
    let (kind, title, g) = match (&o.main, o.phase) {
        (None, Phase::Preamble) | (None, Phase::Body) => {
            let kind = match o.warn_msg? {
                WarnMsg::Refcount => ReportKind::Refcount,
                WarnMsg::Odebug => ReportKind::Warning,
                WarnMsg::Kobject => ReportKind::Kobject,
                WarnMsg::ListCorruption => ReportKind::ListCorruption,
            };
            let base = match kind {
                ReportKind::Refcount => "WARNING: refcount bug",
                ReportKind::Warning => "WARNING: ODEBUG bug",
                ReportKind::Kobject => "WARNING: kobject bug",
                _ => "BUG: corrupted list",
            };
            (kind, with_guilty(base.into(), &stack_g), stack_g)
        }
        (Some(h), _) => match h {
            Header::Warning { file, func } => {
                let g = header_g(func);
                let file = file.as_deref().unwrap_or("");
                let (kind, base) = match (o.warn_msg, file) {
                    (Some(WarnMsg::Refcount), _) | (None, "lib/refcount.c") => {
                        (ReportKind::Refcount, "WARNING: refcount bug")
                    }
                    (Some(WarnMsg::Odebug), _) | (None, "lib/debugobjects.c") => {
                        (ReportKind::Warning, "WARNING: ODEBUG bug")
                    }
                    (Some(WarnMsg::Kobject), _) | (None, "lib/kobject.c") => {
                        (ReportKind::Kobject, "WARNING: kobject bug")
                    }
                    (Some(WarnMsg::ListCorruption), _) | (None, "lib/list_debug.c") => {
                        (ReportKind::ListCorruption, "BUG: corrupted list")
                    }
                    _ => (ReportKind::Warning, "WARNING"),
                };
                (kind, with_guilty(base.into(), &g), g)
            }
            Header::KernelBug { file } => {
                if o.warn_msg == Some(WarnMsg::ListCorruption) || file == "lib/list_debug.c" {
                    (
                        ReportKind::ListCorruption,
                        with_guilty("BUG: corrupted list".into(), &stack_g),
                        stack_g,
                    )
                } else {
                    (
                        ReportKind::KernelBug,
                        with_guilty("kernel BUG".into(), &stack_g),
                        stack_g,
                    )
                }
            }
            Header::Lockdep { what } => {
                let base = match what.as_str() {
                    "possible circular locking dependency detected"
                    | "possible recursive locking detected"
                    | "possible irq lock inversion dependency detected"
                    | "lock order detected" => "possible deadlock".to_string(),
                    "inconsistent lock state" => "inconsistent lock state".to_string(),
                    "trying to register non-static key" => {
                        "INFO: trying to register non-static key".to_string()
                    }
                    other => {
                        let w = other.trim_end_matches('!');
                        let w = w.strip_suffix(" detected").unwrap_or(w);
                        format!("WARNING: {w}")
                    }
                };
                (ReportKind::Lockdep, with_guilty(base, &stack_g), stack_g)
            }
            Header::HungTask => (
                ReportKind::HungTask,
                with_guilty("INFO: task hung".into(), &stack_g),
                stack_g,
            ),
            Header::SleepInAtomic => (
                ReportKind::SleepInAtomic,
                with_guilty(
                    "BUG: sleeping function called from invalid context".into(),
                    &stack_g,
                ),
                stack_g,
            ),
            Header::Bug { desc } => {
                let base = format!("BUG: {}", cut_desc(desc));
                (ReportKind::Bug, with_guilty(base, &stack_g), stack_g)
            }
            Header::Kasan { bug, func } => {
                let g = header_g(func);
                let base = match o.access {
                    Some(a) => format!("KASAN: {bug} {a}"),
                    None => format!("KASAN: {bug}"),
                };
                (ReportKind::Kasan, with_guilty(base, &g), g)
            }
            Header::PageFault(f) => {
                let base = match f {
                    Fault::Null => "BUG: unable to handle kernel NULL pointer dereference".into(),
                    Fault::Paging => "BUG: unable to handle kernel paging request".into(),
                    Fault::Other(w) => format!("BUG: unable to handle kernel {w}"),
                };
                (ReportKind::PageFault, with_guilty(base, &stack_g), stack_g)
            }
            Header::Gpf => (
                ReportKind::GeneralProtection,
                with_guilty("general protection fault".into(), &stack_g),
                stack_g,
            ),
            Header::OopsLine { desc } => (
                ReportKind::Oops,
                with_guilty(desc.clone(), &stack_g),
                stack_g,
            ),
            Header::Panic { msg } => (
                ReportKind::Panic,
                format!("kernel panic: {}", msg.trim()),
                stack_g,
            ),
            Header::OfError { class, path, raw } => {
                (ReportKind::OfError, of_title(*class, path, raw), stack_g)
            }
            Header::SysfsDup => (
                ReportKind::Kobject,
                with_guilty("sysfs: cannot create duplicate filename".into(), &stack_g),
                stack_g,
            ),
            Header::KobjectError { what } => (
                ReportKind::Kobject,
                with_guilty(format!("kobject: {what}"), &stack_g),
                stack_g,
            ),
            Header::KmemleakObject => (
                ReportKind::Kmemleak,
                with_guilty("memory leak".into(), &stack_g),
                stack_g,
            ),
            Header::KmemleakSummary => (
                ReportKind::Kmemleak,
                "kmemleak: new suspected memory leaks".into(),
                None,
            ),
            Header::RcuStall => (
                ReportKind::RcuStall,
                with_guilty("INFO: rcu detected stall".into(), &stack_g),
                stack_g,
            ),
            Header::NetdevLeak => (
                ReportKind::Refcount,
                "unregister_netdevice: waiting for DEV to become free".to_string(),
                None,
            ),
            Header::Ubsan { reason } => {
                let base = format!("UBSAN: {reason}");
                (ReportKind::Ubsan, with_guilty(base, &stack_g), stack_g)
            }
            Header::CutHere
            | Header::WarnMessage(_)
            | Header::ExpectBegin(_)
            | Header::ExpectEnd(_) => return None,
        },
    };
    Some(Report {
        title: normalize_numbers(&title),
        kind,
        guilty_frame: g,
        text: o.lines.join("\n"),
        stack: o.stack,
        line: o.first_line,
        timestamp: o.ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_normalized() {
        assert_eq!(
            normalize_numbers("kernel panic: Attempted to kill init! exitcode=0x0000000b"),
            "kernel panic: Attempted to kill init! exitcode=N"
        );
        assert_eq!(
            normalize_numbers("OF: ERROR: memory leak in /soc/i2c@40000/eeprom@50"),
            "OF: ERROR: memory leak in /soc/i2c@N/eeprom@N"
        );
        assert_eq!(
            normalize_numbers("WARNING in ext4_fill_super"),
            "WARNING in ext4_fill_super"
        );
        assert_eq!(
            normalize_numbers("BUG: spinlock bad magic on CPU#1"),
            "BUG: spinlock bad magic on CPU#N"
        );
    }

    #[test]
    fn bug_descriptions_cut() {
        assert_eq!(
            cut_desc("scheduling while atomic: sh/123/0x00000002"),
            "scheduling while atomic"
        );
        assert_eq!(
            cut_desc("soft lockup - CPU#0 stuck for 26s! [sh:123]"),
            "soft lockup"
        );
        assert_eq!(
            cut_desc("using smp_processor_id() in preemptible [00000000] code: sh/1"),
            "using smp_processor_id() in preemptible"
        );
        assert_eq!(
            cut_desc("Bad page state in process sh  pfn:05a1c"),
            "Bad page state"
        );
    }
}
