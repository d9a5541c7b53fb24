//! A finished report's kind, title and guilty frame: syzbot's titles from the table in
//! [`super::formats`], rig's own for the OF/sysfs/kobject reports syzkaller does not know.

use super::classify::{Header, OfClass, WarnMsg};
use super::formats::{CompiledFormat, COMPILED};
use super::frames::{is_generic_frame, strip_syscall_prefix};
use super::open::Open;
use super::stack::select;
use super::ReportKind;
use regex::Regex;
use std::sync::LazyLock;

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

/// What [`derive`] decides about a report.
#[derive(Debug, Clone)]
pub(crate) struct Titled {
    pub kind: ReportKind,
    pub title: String,
    pub frame: Option<String>,
    pub corrupted: Option<String>,
    /// How the title came about, for `rig analyze --explain`.
    pub trail: Vec<String>,
}

/// syzbot's clean-up of titles: addresses, line numbers, offsets, CPU and other numbers.
static REPLACEMENTS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"syz-executor\.?[0-9]+((/|:)[0-9]+)?", "syz-executor"),
        (r"syzkaller[0-9]+((/|:)[0-9]+)?", "syzkaller"),
        (r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}", "${1}ADDR"),
        (r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", "IP"),
        (r"(\.\w+)(:[0-9]+)+", "${1}:LINE"),
        (r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+", "${1}"),
        (r"CPU#[0-9]+", "CPU"),
        (r"(\W)(\d+)(\W|$)", "${1}NUM${3}"),
        (r"(\d+){7,}", "NUM"),
    ]
    .into_iter()
    .map(|(p, r)| (Regex::new(p).expect("static regex"), r))
    .collect()
});

static TIMESTAMP_IN_TITLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[ *[0-9]+\.[0-9]+\]").expect("static regex"));

/// Applies syzbot's replacements (each until nothing changes) and trims the title to at
/// most 120 printable characters with single spaces.
pub(crate) fn clean(title: &str) -> String {
    let mut s = title.to_string();
    for (re, with) in REPLACEMENTS.iter() {
        for _ in 0..8 {
            let next = re.replace_all(&s, *with).into_owned();
            if next == s {
                break;
            }
            s = next;
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars().take(120) {
        let c = if c == '\t' { ' ' } else { c };
        if c.is_control() || (c == ' ' && prev == ' ') {
            continue;
        }
        out.push(c);
        prev = c;
    }
    out.trim().to_string()
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

/// Helpers that never name the bug in rig's own kinds (devicetree and sysfs reports).
static RIG_SKIP: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^of_node_|^__of_|sysfs_|kernfs_").expect("static regex"));

/// The first frame of the main stack that is not generic machinery (rig's own kinds).
fn first_real_frame(o: &Open) -> Option<String> {
    o.stack
        .iter()
        .find(|f| !is_generic_frame(f) && !RIG_SKIP.is_match(f))
        .map(|f| strip_syscall_prefix(f).to_string())
}

/// x86 prints unreliable frames as ` ? func+0x1/0x2`; syzbot reads reports without them.
static UNRELIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*(?:\[<?[0-9a-f]+>?\] ?)?\? ").expect("static regex"));

fn with_frame(base: &str, f: &Option<String>) -> String {
    match f {
        Some(f) => format!("{base} in {f}"),
        None => base.to_string(),
    }
}

/// rig's own report kinds; `None` for the kinds syzbot titles.
fn rig_kind(o: &Open) -> Option<Titled> {
    let g = first_real_frame(o);
    let (kind, title) = match &o.main {
        Some(Header::OfError { class, path, raw }) => {
            (ReportKind::OfError, of_title(*class, path, raw))
        }
        Some(Header::SysfsDup) => (
            ReportKind::Kobject,
            with_frame("sysfs: cannot create duplicate filename", &g),
        ),
        Some(Header::KobjectError { what }) => (
            ReportKind::Kobject,
            with_frame(&format!("kobject: {what}"), &g),
        ),
        Some(Header::KmemleakSummary) => (
            ReportKind::Kmemleak,
            "kmemleak: new suspected memory leaks".to_string(),
        ),
        None => {
            // A WARN message whose WARNING line never came (a cut log).
            let (kind, base) = match o.warn_msg? {
                WarnMsg::Refcount => (ReportKind::Refcount, "WARNING: refcount bug"),
                WarnMsg::Odebug => (ReportKind::Warning, "WARNING: ODEBUG bug"),
                WarnMsg::Kobject => (ReportKind::Kobject, "WARNING: kobject bug"),
                WarnMsg::ListCorruption => (ReportKind::ListCorruption, "BUG: corrupted list"),
            };
            (kind, with_frame(base, &g))
        }
        _ => return None,
    };
    let keep_numbers = matches!(kind, ReportKind::OfError);
    Some(Titled {
        kind,
        title: if keep_numbers {
            normalize_numbers(&title)
        } else {
            clean(&title)
        },
        frame: g,
        corrupted: None,
        trail: vec!["  a rig-specific kind (not in syzbot's table)".into()],
    })
}

/// Groups of the `report` lines (of the `title` match when there are none), and the index
/// of the line where the frame search starts; `None` when a required line is missing.
fn report_groups(
    cf: &CompiledFormat,
    lines: &[&str],
    header: usize,
) -> Option<(Vec<String>, usize)> {
    let mut groups = Vec::new();
    if cf.report.is_empty() {
        let c = cf.title.captures(lines[header])?;
        groups.extend(
            c.iter()
                .skip(1)
                .map(|m| m.map_or("", |m| m.as_str()).to_string()),
        );
        return Some((groups, header));
    }
    let mut pos = header;
    let mut start = None;
    for re in &cf.report {
        let (i, c) = lines[pos..]
            .iter()
            .enumerate()
            .find_map(|(i, l)| re.captures(l).map(|c| (pos + i, c)))?;
        start.get_or_insert(i);
        groups.extend(
            c.iter()
                .skip(1)
                .map(|m| m.map_or("", |m| m.as_str()).to_string()),
        );
        pos = i + 1;
        if pos > lines.len() {
            return None;
        }
    }
    Some((groups, start.unwrap_or(header)))
}

fn fill(fmt: &str, groups: &[String], frame: &str) -> String {
    let mut s = fmt.replace("{frame}", frame);
    for (i, g) in groups.iter().enumerate().rev() {
        s = s.replace(&format!("{{{}}}", i + 1), g);
    }
    s
}

/// Kind, title, frame and corruption of a finished report.
pub(crate) fn derive(o: &Open, explain: bool) -> Option<Titled> {
    if let Some(t) = rig_kind(o) {
        return Some(t);
    }
    // Unreliable frames become empty lines, so that indexes stay log positions.
    let lines: Vec<&str> = o
        .lines
        .iter()
        .map(|l| {
            if UNRELIABLE.is_match(l) {
                ""
            } else {
                l.as_str()
            }
        })
        .collect();
    let header = o.header_idx.min(lines.len().saturating_sub(1));
    let head = *lines.get(header)?;
    let mut trail = Vec::new();
    let mut title_only = None;
    // Symbolization repeats a header line per inlined function: the header is the first
    // of the run of lines that start like it, and a format matches the first it can.
    let word = head.split_once(": ").map_or(head, |(w, _)| w);
    let run = lines[header..]
        .iter()
        .take_while(|l| l.starts_with(word))
        .count()
        .max(1);
    let mut order: Vec<(usize, usize)> = COMPILED
        .iter()
        .enumerate()
        .filter_map(|(i, cf)| {
            (header..header + run)
                .find(|&l| cf.title.is_match(lines[l]))
                .map(|l| (l, i))
        })
        .collect();
    order.sort();
    for (at, i) in order {
        let cf = &COMPILED[i];
        let Some((groups, start)) = report_groups(cf, &lines, at) else {
            title_only.get_or_insert(cf.f.kind);
            if explain {
                trail.push(format!(
                    "  `{}` matches the header but its other lines are missing",
                    cf.f.title
                ));
            }
            continue;
        };
        if explain {
            trail.push(format!("  format `{}` -> `{}`", cf.f.title, cf.f.fmt));
        }
        let mut corrupted = None;
        let mut frame = None;
        if let Some(spec) = &cf.stack {
            let sel = select(spec, &lines, start, o.first_line - 1, explain);
            trail.extend(sel.trail);
            frame = sel.frame;
            corrupted = sel.corrupted;
        }
        let title = clean(&fill(
            cf.f.fmt,
            &groups,
            frame.as_deref().unwrap_or("corrupted"),
        ));
        if frame.is_none() {
            // `... in {N}`: the function is a group of the report's lines.
            frame =
                cf.f.fmt
                    .rsplit_once(" in {")
                    .and_then(|(_, n)| n.trim_end_matches('}').parse::<usize>().ok())
                    .and_then(|n| groups.get(n.wrapping_sub(1)))
                    .filter(|g| !g.is_empty())
                    .cloned();
        }
        if !cf.f.fmt.contains("{frame}") && !cf.f.fmt.contains(" in {") {
            // The title names no function (a panic message): the guilty frame is still the
            // first real frame of the stack.
            frame = first_real_frame(o);
        }
        if cf.f.corrupted {
            corrupted.get_or_insert_with(|| "syzbot files this kind as corrupted".into());
        }
        if TIMESTAMP_IN_TITLE.is_match(&title) {
            corrupted.get_or_insert_with(|| "a timestamp is spliced into the title".into());
        }
        if cf.f.stack.is_some() && !cf.f.no_stack && corrupted.is_none() {
            corrupted = super::corrupt::missing_stack(&lines[header..]).map(str::to_string);
        }
        if o.spliced && explain {
            // syzbot reads such a line as it comes; the record that cut into it was left out
            // of this report and does not make it corrupted.
            trail.push("  a record of another caller cut into one of its lines (left out)".into());
        }
        return Some(Titled {
            kind: cf.f.kind,
            title,
            frame,
            corrupted,
            trail,
        });
    }
    // No format took it: the header line is the title (syzbot does the same).
    let kind = title_only.unwrap_or(match &o.main {
        Some(Header::Warning { .. } | Header::WarnLine) => ReportKind::Warning,
        Some(Header::Lockdep { .. }) => ReportKind::Lockdep,
        Some(Header::Panic { .. }) => ReportKind::Panic,
        _ => ReportKind::Bug,
    });
    let mut title = head.trim().to_string();
    if let (Some(Header::Warning { func: Some(f), .. }), None) = (&o.main, title_only) {
        // A WARNING line without file:line (no CONFIG_DEBUG_BUGVERBOSE).
        title = format!("WARNING in {f}");
    }
    trail.push("  no title format matched: the header line is the title".into());
    Some(Titled {
        kind,
        title: clean(&title),
        frame: None,
        corrupted: title_only.map(|_| "matched title but not report regexp".to_string()),
        trail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_cleaned_like_syzbot() {
        assert_eq!(
            clean("kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)"),
            "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
        );
        assert_eq!(
            clean("BUG: spinlock bad magic on CPU#1, syz-executor.3/1234"),
            "BUG: spinlock bad magic on CPU, syz-executor"
        );
        assert_eq!(clean("WARNING in foo+0x1/0x2"), "WARNING in foo");
        assert_eq!(
            clean("KCSAN: data-race in a  /\tb"),
            "KCSAN: data-race in a / b"
        );
        assert_eq!(clean("WARNING in cfg80211_foo"), "WARNING in cfg80211_foo");
    }

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
}
