//! The incremental analyzer: a per-context state machine over console lines.
//!
//! A *context* is where a line came from: its printk caller tag (`[T123]`/`[C1]`) when the
//! kernel prints them, and whether it carries a printk timestamp (kernel) or not (user output
//! on the same console). Each context has at most one report in progress, so reports printed
//! by two CPUs at once, or cut by shell output, are kept apart.

use super::classify::{classify, Header, PREFILTER};
use super::expect::Expectations;
use super::frames::normalize_func;
use super::line::{parse_frame, parse_line, parse_symbol, split_splices, Line};
use super::open::{is_terminator, starts_trace, Open, Phase, Trace};
use super::report::build;
use super::Report;

/// A report closes when the kernel clock moved this far past its last line.
const TS_GAP_SECS: f64 = 10.0;
/// The first lines of a log are checked for printk timestamps (see `Analyzer::saw_ts`).
const TS_PROBE_LINES: usize = 1000;
/// Lines after which a `cut here` without a WARNING/BUG header is dropped.
const PREAMBLE_CAP: usize = 24;

enum Verdict {
    Keep,
    KeepAndClose,
    /// The line is not part of the report, which is complete.
    Close,
}

/// The incremental kernel-log analyzer. Feed it console output as it arrives.
#[derive(Debug, Default)]
pub struct Analyzer {
    /// An incomplete last line.
    buf: String,
    /// An incomplete UTF-8 sequence from [`Analyzer::feed_bytes`].
    pending_bytes: Vec<u8>,
    /// Physical lines consumed so far.
    line_no: usize,
    open: Vec<Open>,
    expect: Expectations,
    out: Vec<Report>,
    /// One of the first [`TS_PROBE_LINES`] lines, or a header line, carried a printk
    /// timestamp: untimestamped lines are then user output (a shell echoing a command that
    /// holds `WARNING: ...`, a script's messages), and only kmemleak records (printed by
    /// `cat`) start reports there. Decided from line positions only, so chunking cannot
    /// change it.
    saw_ts: bool,
}

impl Analyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk of console output (any byte boundary; a split line waits for its
    /// end) and returns the reports that became complete.
    pub fn feed(&mut self, chunk: &str) -> Vec<Report> {
        if self.buf.is_empty() {
            match chunk.rfind('\n') {
                Some(nl) => {
                    self.process_text(&chunk[..=nl]);
                    self.buf.push_str(&chunk[nl + 1..]);
                }
                None => self.buf.push_str(chunk),
            }
        } else if let Some(nl) = chunk.rfind('\n') {
            let mut text = std::mem::take(&mut self.buf);
            text.push_str(&chunk[..=nl]);
            self.process_text(&text);
            self.buf.push_str(&chunk[nl + 1..]);
        } else {
            self.buf.push_str(chunk);
        }
        std::mem::take(&mut self.out)
    }

    /// Like [`feed`](Self::feed) for raw console bytes: a UTF-8 sequence split across chunks
    /// is joined, invalid bytes become U+FFFD.
    pub fn feed_bytes(&mut self, chunk: &[u8]) -> Vec<Report> {
        self.pending_bytes.extend_from_slice(chunk);
        let b = &self.pending_bytes;
        // Keep back an incomplete multi-byte sequence at the end.
        let mut cut = b.len();
        for back in 1..=3.min(b.len()) {
            let c = b[b.len() - back];
            if c & 0xC0 == 0x80 {
                continue; // continuation byte: look further back
            }
            let need = match c {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            if need > back {
                cut = b.len() - back;
            }
            break;
        }
        let text = String::from_utf8_lossy(&b[..cut]).into_owned();
        self.pending_bytes.drain(..cut);
        self.feed(&text)
    }

    /// Nothing more is coming soon: closes every report in progress and returns them.
    /// An incomplete last line stays buffered.
    pub fn flush(&mut self) -> Vec<Report> {
        self.close_all();
        std::mem::take(&mut self.out)
    }

    /// The log ended: processes an incomplete last line and closes everything.
    pub fn finish(mut self) -> Vec<Report> {
        if !self.pending_bytes.is_empty() {
            let rest =
                String::from_utf8_lossy(&std::mem::take(&mut self.pending_bytes)).into_owned();
            self.buf.push_str(&rest);
        }
        if !self.buf.is_empty() {
            let mut last = std::mem::take(&mut self.buf);
            last.push('\n');
            self.process_text(&last);
        }
        self.close_all();
        self.out
    }

    fn close_all(&mut self) {
        let mut open = std::mem::take(&mut self.open);
        open.sort_by_key(|o| o.first_line);
        for o in open {
            self.emit(o, "the log ended (or flush)");
        }
    }

    fn emit(&mut self, mut o: Open, why: &'static str) {
        o.end = why;
        if let Some(r) = build(o) {
            self.out.push(r);
        }
    }

    /// `text` is whole lines, ending with a newline.
    fn process_text(&mut self, text: &str) {
        let mut pos = 0;
        while pos < text.len() {
            let probing = !self.saw_ts && self.line_no < TS_PROBE_LINES;
            if self.open.is_empty() && !probing {
                // Fast path: nothing in progress, so only prefilter hits matter.
                let Some(m) = PREFILTER.find_at(text, pos) else {
                    self.line_no += count_newlines(&text[pos..]);
                    return;
                };
                let ls = text[..m.start()].rfind('\n').map_or(0, |i| i + 1).max(pos);
                self.line_no += count_newlines(&text[pos..ls]);
                let le = text[ls..].find('\n').map_or(text.len(), |i| ls + i);
                self.line_no += 1;
                self.process_line(&text[ls..le]);
                pos = le + 1;
            } else {
                let le = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
                self.line_no += 1;
                self.process_line(&text[pos..le]);
                pos = le + 1;
            }
        }
    }

    fn process_line(&mut self, raw: &str) {
        if !self.saw_ts && self.line_no <= TS_PROBE_LINES && parse_line(raw).ts.is_some() {
            self.saw_ts = true;
        }
        if self.open.is_empty() && !PREFILTER.is_match(raw) {
            return;
        }
        let mut seen: Vec<String> = Vec::new();
        for seg in split_splices(raw) {
            let line = parse_line(seg);
            // A record that cut into a line of the same context comes from another caller.
            let key = context_key(&line);
            let cut_in = seen.contains(&key);
            seen.push(key);
            self.process_segment(line, cut_in);
        }
    }

    fn process_segment(&mut self, line: Line<'_>, cut_in: bool) {
        let n = self.line_no;
        // Reports whose kernel clock has moved on are complete.
        if let Some(t) = line.ts {
            let mut i = 0;
            while i < self.open.len() {
                if self.open[i].last_ts.is_some_and(|lt| t - lt > TS_GAP_SECS) {
                    let o = self.open.remove(i);
                    self.emit(o, "the kernel clock moved 10 s past it");
                } else {
                    i += 1;
                }
            }
        }
        let ctx = context_key(&line);
        // Everyone else's line counts against the other open reports' patience.
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].ctx != ctx {
                self.open[i].other += 1;
                if self.open[i].other > self.open[i].budget() {
                    let o = self.open.remove(i);
                    self.emit(o, "too many lines of other contexts went by");
                    continue;
                }
            }
            i += 1;
        }

        let header = classify(line.msg);
        match &header {
            Some(Header::ExpectBegin(t)) => {
                self.expect.begin(t);
                return;
            }
            Some(Header::ExpectEnd(t)) => {
                self.expect.end(t);
                return;
            }
            _ => {}
        }
        let header = header
            // Lines without a timestamp in a timestamped log are user space's, except kmemleak
            // records and the decompressor's `Booting the kernel` (it prints before printk).
            .filter(|h| {
                !(self.saw_ts && line.ts.is_none())
                    || matches!(h, Header::KmemleakObject | Header::OneLine { reboot: true })
            })
            // The kernel booting is a reboot only once it had been running.
            .filter(|h| !matches!(h, Header::OneLine { reboot: true }) || self.saw_ts);
        if header.is_some() && line.ts.is_some() {
            self.saw_ts = true;
        }

        let idx = self.open.iter().position(|o| o.ctx == ctx);
        let Some(i) = idx else {
            if let Some(h) = header {
                self.start(ctx, n, &line, h);
            }
            return;
        };

        if let Some(h) = header {
            if self.absorbs(i, &h, &line) {
                return;
            }
            if h.is_single_line() && !self.open[i].pending_single() {
                // A one-line report interrupting a longer one: report it on its own.
                let mut o = self.new_open(String::new(), n, &line, h);
                o.trace = Trace::Done;
                self.emit(o, "it is one line");
                return;
            }
            let o = self.open.remove(i);
            self.emit(o, "another report started in its context");
            self.start(ctx, n, &line, h);
            return;
        }

        if cut_in {
            // Not a header, and not this report's next line: leave it out.
            self.open[i].spliced = true;
            return;
        }
        match self.body_line(i, &line, n) {
            Verdict::Keep => {}
            Verdict::KeepAndClose => {
                let o = self.open.remove(i);
                self.emit(o, "its terminator line");
            }
            Verdict::Close => {
                let o = self.open.remove(i);
                self.emit(o, "the next line of its context is not part of it");
            }
        }
    }

    fn new_open(&self, ctx: String, n: usize, line: &Line<'_>, h: Header) -> Open {
        let phase = match h {
            Header::CutHere | Header::WarnMessage(_) => Phase::Preamble,
            _ => Phase::Body,
        };
        let expected = !matches!(h, Header::CutHere) && self.expect.matches(line.msg.trim_end());
        let mut o = Open {
            ctx,
            first_line: n,
            ts: line.ts,
            last_ts: line.ts,
            lines: vec![line.msg.trim_end().to_string()],
            phase,
            main: None,
            warn_msg: None,
            oops: None,
            pc_func: None,
            access: None,
            stack: Vec::new(),
            trace: Trace::NotStarted,
            other: 0,
            expected,
            header_idx: 0,
            last_line: n,
            end: "",
            spliced: false,
        };
        match h {
            Header::CutHere => {}
            Header::WarnMessage(w) => o.warn_msg = Some(w),
            h => o.main = Some(h),
        }
        o
    }

    fn start(&mut self, ctx: String, n: usize, line: &Line<'_>, h: Header) {
        let single_now = matches!(
            h,
            Header::KmemleakSummary | Header::NetdevLeak | Header::OneLine { .. }
        );
        let o = self.new_open(ctx, n, line, h);
        if single_now {
            self.emit(o, "it is one line");
        } else {
            self.open.push(o);
        }
    }

    /// A header line that belongs to the report in progress (the WARNING after `cut here`,
    /// the `Oops:` line after a page-fault line, ...).
    fn absorbs(&mut self, i: usize, h: &Header, line: &Line<'_>) -> bool {
        let expected_now = self.expect.matches(line.msg.trim_end());
        let n = self.line_no;
        let o = &mut self.open[i];
        let symbolized_again = o
            .lines
            .last()
            .is_some_and(|l| names_inlined_fn(l) && is_same_header(o, h));
        let take = symbolized_again
            || match o.phase {
                Phase::Preamble => match h {
                    Header::CutHere => true,
                    Header::WarnMessage(w) => {
                        o.warn_msg.get_or_insert(*w);
                        true
                    }
                    Header::Warning { .. } | Header::KernelBug { .. } | Header::Ubsan { .. } => {
                        o.main = Some(h.clone());
                        o.header_idx = o.lines.len();
                        o.phase = Phase::Body;
                        true
                    }
                    _ => false,
                },
                Phase::Body => match (&o.main, h) {
                    // `BUG: memory leak` (syzkaller's line) names the kmemleak record after it.
                    (Some(Header::KmemleakObject), Header::KmemleakObject)
                        if o.lines.len() == 1 && o.lines[0].starts_with("BUG: memory leak") =>
                    {
                        true
                    }
                    // With panic_on_warn, older kernels print the panic before the WARNING's
                    // stack: that stack is the report's.
                    (
                        Some(
                            Header::Warning { .. }
                            | Header::Kasan { .. }
                            | Header::Ubsan { .. }
                            | Header::Bug { .. }
                            | Header::Sanitizer
                            | Header::Lockdep { .. },
                        ),
                        Header::Panic { .. },
                    ) if o.trace == Trace::NotStarted && o.pc_func.is_none() => true,
                    (
                        Some(
                            Header::PageFault(_)
                            | Header::Gpf
                            | Header::KernelBug { .. }
                            | Header::Bug { .. },
                        ),
                        Header::OopsLine { desc },
                    ) if o.oops.is_none() && o.trace == Trace::NotStarted => {
                        o.oops = Some(desc.clone());
                        true
                    }
                    _ => false,
                },
            };
        if take {
            if !matches!(h, Header::CutHere) && expected_now {
                o.expected = true;
            }
            o.lines.push(line.msg.trim_end().to_string());
            o.last_line = n;
            if line.ts.is_some() {
                o.last_ts = line.ts;
            }
        }
        take
    }

    fn body_line(&mut self, i: usize, line: &Line<'_>, n: usize) -> Verdict {
        let o = &mut self.open[i];
        let msg = line.msg.trim_end();
        let keep = |o: &mut Open| {
            o.lines.push(msg.to_string());
            o.last_line = n;
            if line.ts.is_some() {
                o.last_ts = line.ts;
            }
        };
        if o.phase == Phase::Preamble {
            if o.lines.len() >= PREAMBLE_CAP {
                return Verdict::Close;
            }
            keep(o);
            return Verdict::Keep;
        }
        if o.lines.len() >= o.body_cap() {
            return Verdict::Close;
        }
        if o.pending_single() {
            let m = msg.trim_start();
            let dump = m.starts_with("CPU: ")
                || m.starts_with("Hardware name:")
                || m.starts_with("Tainted:")
                || m.starts_with("Workqueue:")
                || m.starts_with("Call Trace:")
                || m.starts_with("Call trace:");
            if !dump {
                return Verdict::Close;
            }
        }
        if let Trace::In {
            depth,
            frames,
            idle,
        } = o.trace
        {
            let t = msg.trim();
            let mut consumed = true;
            let mut next = Trace::In {
                depth,
                frames,
                idle,
            };
            if t == "</TASK>" {
                next = Trace::Done;
            } else if t.starts_with("</") && t.ends_with('>') {
                next = Trace::In {
                    depth: depth.saturating_sub(1),
                    frames,
                    idle,
                };
            } else if t.starts_with('<') && t.ends_with('>') && !t.contains(' ') {
                next = Trace::In {
                    depth: depth + 1,
                    frames,
                    idle,
                };
            } else if let Some(f) = parse_frame(msg) {
                if !f.unreliable {
                    let name = normalize_func(f.func);
                    if o.stack.last() != Some(&name) {
                        o.stack.push(name);
                    }
                }
                next = Trace::In {
                    depth,
                    frames: frames + 1,
                    idle: 0,
                };
            } else if t.ends_with("[inline]") {
                // An inlined caller added by symbolization (`func file.h:12 [inline]`).
            } else if depth > 0 || is_register_dump(t) {
                // Registers: user space's inside <TASK>, or the trap frame's after an
                // exception stack (older kernels print `invalid_op`, then `RIP:`).
            } else if frames > 0 || idle >= 3 {
                next = Trace::Done;
                consumed = false;
            } else {
                next = Trace::In {
                    depth,
                    frames,
                    idle: idle + 1,
                };
            }
            o.trace = next;
            if consumed {
                keep(o);
                return Verdict::Keep;
            }
        }
        if o.trace == Trace::Done {
            if is_terminator(o, msg) {
                keep(o);
                return Verdict::KeepAndClose;
            }
            if o.accepts_after_stack(msg) {
                keep(o);
                return Verdict::Keep;
            }
            return Verdict::Close;
        }
        // Before the stack.
        if is_terminator(o, msg) {
            keep(o);
            return Verdict::KeepAndClose;
        }
        let m = msg.trim_start();
        if starts_trace(o, msg) {
            o.trace = Trace::In {
                depth: 0,
                frames: 0,
                idle: 0,
            };
        } else if let Some(sym) = m.strip_prefix("RIP: ").or_else(|| m.strip_prefix("pc : ")) {
            if o.pc_func.is_none() {
                let sym = sym.split_once(':').map_or(sym, |(seg, rest)| {
                    if seg.len() == 4 && seg.bytes().all(|c| c.is_ascii_hexdigit()) {
                        rest
                    } else {
                        sym
                    }
                });
                o.pc_func = parse_symbol(sym).map(|(f, ..)| normalize_func(f));
            }
        } else if o.access.is_none() && matches!(o.main, Some(Header::Kasan { .. })) {
            if m.starts_with("Read of size") {
                o.access = Some("Read");
            } else if m.starts_with("Write of size") {
                o.access = Some("Write");
            }
        }
        keep(o);
        Verdict::Keep
    }
}

/// `RIP: 0010:...`, `Code: ...`, `RSP: ...`, `R10: ...`, `CR2: ...`, arm64 `pc : `/`x29: `.
fn is_register_dump(t: &str) -> bool {
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

/// A header line naming an inlined function: `... file.h:12 [inline]`, or, in the WARNING
/// format of 6.18+, `WARNING: file.h:12 at fn file.h:12 [inline], CPU#0: comm/pid`.
fn names_inlined_fn(l: &str) -> bool {
    l.ends_with("[inline]") || l.contains(" [inline], CPU#")
}

/// A header line repeated by symbolization (`BUG: KASAN: ... in inlined_fn file.h:12
/// [inline]` followed by the same header naming the caller).
fn is_same_header(o: &Open, h: &Header) -> bool {
    match (&o.main, h) {
        (Some(Header::Kasan { bug: a, .. }), Header::Kasan { bug: b, .. }) => a == b,
        (Some(Header::Warning { .. }), Header::Warning { .. }) => true,
        (Some(a), b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        (None, _) => false,
    }
}

fn context_key(line: &Line<'_>) -> String {
    let mut k = String::with_capacity(8);
    k.push(if line.ts.is_some() { 'k' } else { 'u' });
    if let Some(c) = line.caller {
        k.push_str(c);
    }
    k
}

fn count_newlines(s: &str) -> usize {
    s.as_bytes().iter().filter(|&&b| b == b'\n').count()
}
