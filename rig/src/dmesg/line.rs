//! One console line: printk prefix stripping, mid-line splice splitting, stack-frame parsing.

use regex::Regex;
use std::sync::LazyLock;

/// A console line with its printk prefix taken apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line<'a> {
    /// `[   12.345678]` as seconds.
    pub ts: Option<f64>,
    /// `[T123]` / `[C1]` caller tag, without brackets or padding.
    pub caller: Option<&'a str>,
    /// The message: everything after the prefix and the one space the kernel puts after it.
    pub msg: &'a str,
}

/// Parses `[  <secs>.<frac>]` at the start of `s`; returns the seconds and the rest.
fn parse_timestamp(s: &str) -> Option<(f64, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = b.iter().take(24).position(|&c| c == b']')?;
    let inner = s[1..close].trim_start_matches(' ');
    let (int, frac) = inner.split_once('.')?;
    if int.is_empty()
        || frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let secs: f64 = inner.parse().ok()?;
    Some((secs, &s[close + 1..]))
}

/// Parses a `[T123]` / `[    C1]` caller tag at the start of `s`.
fn parse_caller(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return None;
    }
    let close = b.iter().take(16).position(|&c| c == b']')?;
    let inner = s[1..close].trim_start_matches(' ');
    let ib = inner.as_bytes();
    if ib.len() >= 2 && (ib[0] == b'T' || ib[0] == b'C') && ib[1..].iter().all(u8::is_ascii_digit) {
        Some((inner, &s[close + 1..]))
    } else {
        None
    }
}

/// `dmesg -T` (`[Sat Nov 21 10:00:00 2026] `) and `journalctl -k` / syslog
/// (`Nov 21 10:00:00 host kernel: `) prefixes, which carry no printk timestamp.
static WALLCLOCK_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\] ?|[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ kernel: )",
    )
    .expect("static regex")
});

/// Splits a raw console line (no newline) into timestamp, caller tag and message.
/// Accepts an optional `<N>` syslog level first (raw `/dev/kmsg`-style output), and the
/// wall-clock prefixes of `dmesg -T` and `journalctl -k`.
pub(crate) fn parse_line(raw: &str) -> Line<'_> {
    let mut s = raw.trim_end_matches('\r');
    if s.len() > 16 && s.as_bytes()[0] != b' ' && s.as_bytes()[0] != b'<' {
        if let Some(m) = WALLCLOCK_PREFIX.find(s) {
            s = &s[m.end()..];
        }
    }
    if let Some(rest) = s.strip_prefix('<') {
        if let Some(end) = rest.find('>') {
            if end > 0 && end <= 3 && rest[..end].bytes().all(|c| c.is_ascii_digit()) {
                s = &rest[end + 1..];
            }
        }
    }
    let mut ts = None;
    let mut caller = None;
    let mut had_prefix = false;
    if let Some((t, rest)) = parse_timestamp(s) {
        ts = Some(t);
        s = rest;
        had_prefix = true;
    }
    let probe = if had_prefix {
        s.strip_prefix(' ').unwrap_or(s)
    } else {
        s
    };
    if let Some((c, rest)) = parse_caller(probe) {
        caller = Some(c);
        s = rest;
        had_prefix = true;
    }
    if had_prefix {
        s = s.strip_prefix(' ').unwrap_or(s);
    }
    Line { ts, caller, msg: s }
}

/// True when `s` begins with a printk timestamp with microseconds (`[ 12.345678]`), the
/// shape used to find a kernel line spliced into the middle of another line.
fn is_embedded_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'[') {
        return false;
    }
    let mut i = 1;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == start || i >= b.len() || b[i] != b'.' {
        return false;
    }
    i += 1;
    let fs = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i - fs == 6 && i < b.len() && b[i] == b']'
}

/// Splits a physical line where another printk record starts in its middle (a console line
/// cut by a later record, or user output without a newline before a kernel line).
pub(crate) fn split_splices(raw: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut search = raw.chars().next().map_or(1, char::len_utf8);
    while let Some(off) = raw.get(search..).and_then(|s| s.find('[')) {
        let at = search + off;
        if is_embedded_timestamp(&raw[at..]) {
            parts.push(&raw[start..at]);
            start = at;
        }
        search = at + 1;
    }
    parts.push(&raw[start..]);
    parts
}

/// A parsed stack frame: `func+0xoff/0xsize [module]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub func: &'a str,
    pub offset: &'a str,
    pub size: &'a str,
    pub module: Option<&'a str>,
    /// `? ` frames on x86 (unreliable, not used for the stack).
    pub unreliable: bool,
}

fn is_sym_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'.' || c == b'$'
}

fn is_sym(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'$'
}

fn hex_run(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_hexdigit() {
        i += 1;
    }
    i
}

/// Parses `func+0x1a/0x40` at the start of `s` (after optional spaces); returns the frame
/// pieces and the index after them.
pub(crate) fn parse_symbol(s: &str) -> Option<(&str, &str, &str, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let fs = i;
    if i >= b.len() || !is_sym_start(b[i]) {
        return None;
    }
    while i < b.len() && is_sym(b[i]) {
        i += 1;
    }
    let fe = i;
    if !s[i..].starts_with("+0x") {
        return None;
    }
    i += 3;
    let os = i;
    i = hex_run(b, i);
    if i == os || !s[i..].starts_with("/0x") {
        return None;
    }
    let oe = i;
    i += 3;
    let ss = i;
    i = hex_run(b, i);
    if i == ss {
        return None;
    }
    Some((&s[fs..fe], &s[os..oe], &s[ss..i], i))
}

/// `arch/x86/entry/entry_64.S:244`, `fs/ext4/inode.c:-1`: a symbolizer's file:line.
fn is_source_location(tok: &str) -> bool {
    tok.rsplit_once(':').is_some_and(|(file, line)| {
        file.contains('.')
            && !line.is_empty()
            && line
                .trim_start_matches('-')
                .bytes()
                .all(|c| c.is_ascii_digit())
    })
}

/// Parses a stack-trace line: ` func+0x1a/0x40`, ` ? func+0x1a/0x40 [mod]`,
/// ` [<ffffffff81234567>] func+0x1a/0x40`, arm64 ` func+0x1a/0x40 (P)`.
pub(crate) fn parse_frame(msg: &str) -> Option<Frame<'_>> {
    let mut s = msg.trim_start();
    let mut unreliable = false;
    if let Some(r) = s.strip_prefix("? ") {
        unreliable = true;
        s = r.trim_start();
    }
    if let Some(r) = s.strip_prefix("[<") {
        let end = r.find(">]")?;
        if !r[..end].bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        s = r[end + 2..].trim_start();
        if let Some(r) = s.strip_prefix("? ") {
            unreliable = true;
            s = r.trim_start();
        }
    }
    let (func, offset, size, end) = parse_symbol(s)?;
    let rest = s[end..].trim();
    let module = if let Some(r) = rest.strip_prefix('[') {
        r.find(']').map(|e| r[..e].split(' ').next().unwrap_or(""))
    } else {
        None
    };
    // Anything else after the symbol must look like trace decoration, not prose.
    let tail_ok = rest.is_empty()
        || rest.starts_with('[')
        || rest.starts_with('(')
        || rest.ends_with("[inline]")
        || rest.contains(".c:")
        || rest.contains(".h:")
        || is_source_location(rest.split(' ').next().unwrap_or(""));
    if !tail_ok {
        return None;
    }
    Some(Frame {
        func,
        offset,
        size,
        module,
        unreliable,
    })
}

/// `RIP: 0010:...`, `Code: ...`, `RSP: ...`, `R10: ...`, `CR2: ...`, arm64 `pc : `/`x29: `.
pub(crate) fn is_register_dump(t: &str) -> bool {
    let Some((reg, _)) = t.split_once(':') else {
        return false;
    };
    let reg = reg.trim_end();
    reg == "Code"
        || (2..=6).contains(&reg.len())
            && reg
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && reg.bytes().next().is_some_and(|c| c.is_ascii_uppercase())
        || matches!(reg, "pc" | "lr" | "sp" | "pstate")
        || (reg.len() <= 3 && reg.starts_with('x') && reg[1..].bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_timestamp_and_caller() {
        let l = parse_line("[   12.345678][    T123] WARNING: CPU: 0 PID: 1 at x");
        assert_eq!(l.ts, Some(12.345678));
        assert_eq!(l.caller, Some("T123"));
        assert_eq!(l.msg, "WARNING: CPU: 0 PID: 1 at x");
        let l = parse_line("[    1.000000] [C1]  foo+0x1/0x2\r");
        assert_eq!(l.caller, Some("C1"));
        assert_eq!(l.msg, " foo+0x1/0x2");
        let l = parse_line("<4>[    3.5] hello");
        assert_eq!(l.ts, Some(3.5));
        assert_eq!(l.msg, "hello");
        let l = parse_line("root@rig:~# ls");
        assert_eq!(l.ts, None);
        assert_eq!(l.msg, "root@rig:~# ls");
        let l = parse_line("[Sat Nov 21 10:00:03 2026] WARNING: CPU: 0 PID: 1 at x");
        assert_eq!((l.ts, l.msg), (None, "WARNING: CPU: 0 PID: 1 at x"));
        let l = parse_line("Nov 21 10:00:03 rig kernel: refcount_t: underflow; use-after-free.");
        assert_eq!(l.msg, "refcount_t: underflow; use-after-free.");
        let l = parse_line("Nov 21 10:00:03 rig kernel:  kobject_put+0x1/0x2\r\r");
        assert_eq!(l.msg, " kobject_put+0x1/0x2");
        let l = parse_line("[T55] x");
        assert_eq!((l.ts, l.caller, l.msg), (None, Some("T55"), "x"));
        let l = parse_line("[0000000000000000] pgd=0000000000000000");
        assert_eq!(l.ts, None);
    }

    #[test]
    fn splits_mid_line_records() {
        let p = split_splices("root@rig:~# echo 1 >[   12.345678] BUG: x");
        assert_eq!(p, vec!["root@rig:~# echo 1 >", "[   12.345678] BUG: x"]);
        let p = split_splices("[    1.000000] Modules linked in:[    1.000001] random: crng");
        assert_eq!(p.len(), 2);
        let p = split_splices("\u{2502} output[    1.000000] BUG: x");
        assert_eq!(p, vec!["\u{2502} output", "[    1.000000] BUG: x"]);
        let p = split_splices("[    1.000000] freed region [ffff888005a1c800, ffff)");
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn parses_frames() {
        let f = parse_frame(" ? refcount_warn_saturate+0xbe/0x110").unwrap();
        assert!(f.unreliable);
        assert_eq!(f.func, "refcount_warn_saturate");
        let f = parse_frame(" foo_remove.isra.0+0x2a/0x90 [foo_mod]").unwrap();
        assert_eq!(f.module, Some("foo_mod"));
        assert_eq!(f.offset, "2a");
        let f = parse_frame(" [<ffffffff81234567>] bar+0x1/0x2").unwrap();
        assert_eq!(f.func, "bar");
        assert!(parse_frame(" el0t_64_sync+0x190/0x198 (P)").is_some());
        assert!(parse_frame("Call Trace:").is_none());
        assert!(parse_frame("WARNING: CPU: 0 PID: 1 at foo+0x1/0x2").is_none());
        assert!(parse_frame(" foo+0x1/0x2 and then some prose").is_none());
    }
}
