//! The incremental analyzer: a per-context state machine over console lines.
//!
//! A *context* is where a line came from: its printk caller tag (`[T123]`/`[C1]`) when the
//! kernel prints them, and whether it carries a printk timestamp (kernel) or not (user output
//! on the same console). Each context has at most one report in progress, so reports printed
//! by two CPUs at once, or cut by shell output, are kept apart.

use super::body::{body_line, Verdict};
use super::classify::{classify, Header, PREFILTER};
use super::expect::Expectations;
use super::line::{parse_line, split_splices, Line};
use super::open::{Open, Phase, Trace};
use super::primary::Found;
use super::report::build;
use super::Report;
use regex::Regex;
use std::sync::LazyLock;

/// A report closes when the kernel clock moved this far past its last line.
const TS_GAP_SECS: f64 = 10.0;
/// The first lines of a log are checked for printk timestamps (see `Analyzer::saw_ts`).
const TS_PROBE_LINES: usize = 1000;

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
    out: Vec<Found>,
    /// One of the first [`TS_PROBE_LINES`] lines, or a header line, carried a printk
    /// timestamp: untimestamped lines are then user output (a shell echoing a command that
    /// holds `WARNING: ...`, a script's messages), and only kmemleak records (printed by
    /// `cat`) start reports there. Decided from line positions only, so chunking cannot
    /// change it.
    saw_ts: bool,
    /// Some line before this one carried a printk timestamp: a kernel has been running, so
    /// the x86 decompressor's `Booting the kernel` is a reboot. Unlike `saw_ts` this looks
    /// at every line (the first kernel line may come after thousands of lines of a
    /// fuzzer's programs), and it too depends on line positions only.
    kernel_ran: bool,
}

/// A line that starts with a printk timestamp (kernel/printk/printk.c `print_time()`).
static TS_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(?:<\d{1,3}>)?\[ *\d+\.\d+\]").expect("static regex"));

impl Analyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk of console output (any byte boundary; a split line waits for its
    /// end) and returns the reports that became complete, in the order they did.
    pub fn feed(&mut self, chunk: &str) -> Vec<Report> {
        reports(self.feed_found(chunk))
    }

    /// [`feed`](Self::feed) with what [`super::primary::order`] needs to know.
    pub(crate) fn feed_found(&mut self, chunk: &str) -> Vec<Found> {
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
        reports(std::mem::take(&mut self.out))
    }

    /// The log ended: processes an incomplete last line and closes everything.
    pub fn finish(self) -> Vec<Report> {
        reports(self.finish_found())
    }

    /// [`finish`](Self::finish) with what [`super::primary::order`] needs to know.
    pub(crate) fn finish_found(mut self) -> Vec<Found> {
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
                    if !self.kernel_ran && TS_LINE.is_match(&text[pos..]) {
                        self.kernel_ran = true;
                    }
                    self.line_no += count_newlines(&text[pos..]);
                    return;
                };
                let ls = text[..m.start()].rfind('\n').map_or(0, |i| i + 1).max(pos);
                if !self.kernel_ran && TS_LINE.is_match(&text[pos..ls]) {
                    self.kernel_ran = true;
                }
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
        self.process_line_inner(raw);
        if !self.kernel_ran && TS_LINE.is_match(raw) {
            self.kernel_ran = true;
        }
    }

    fn process_line_inner(&mut self, raw: &str) {
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
        let cpu_ctx = is_cpu_context(&line);
        // Everyone else's line counts against the other open reports' patience.
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].ctx != ctx && !(cpu_ctx && self.open[i].nmi) {
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
            .filter(|h| !matches!(h, Header::OneLine { reboot: true }) || self.kernel_ran);
        if header.is_some() && line.ts.is_some() {
            self.saw_ts = true;
        }

        // A CPU's backtrace asked for by a report in progress (`Sending NMI from CPU`) is
        // that report's, unless it starts a report of its own.
        let idx = self.open.iter().position(|o| o.ctx == ctx).or_else(|| {
            (cpu_ctx && header.is_none())
                .then(|| self.open.iter().position(|o| o.nmi))
                .flatten()
        });
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
        match body_line(&mut self.open[i], &line, n) {
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
            header_line: n,
            last_line: n,
            end: "",
            spliced: false,
            nmi: false,
            more_traces: false,
            gap: Vec::new(),
            notes: Vec::new(),
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
                    // lib/bug.c report_bug() prints `cut here` before BUG/WARN; since 6.18 the
                    // Rust panic handler's BUG() prints it before `rust_kernel: panicked`.
                    Header::Warning { .. }
                    | Header::KernelBug { .. }
                    | Header::Ubsan { .. }
                    | Header::RustPanic => {
                        o.main = Some(h.clone());
                        o.header_idx = o.lines.len();
                        o.header_line = n;
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
                    // arch/*/kernel/traps.c `die()` prints `Internal error: ...` (arm,
                    // arm64) or the x86 `Oops:` line after the fault's own message; syzbot
                    // reads it as part of the report it follows (google/syzkaller
                    // `pkg/report/linux.go` `reportStartIgnores`).
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
                    // kernel/hung_task.c debug_show_blocker(): `INFO: task %s:%d is blocked
                    // on a mutex likely owned by task %s:%d.` (semaphore and rw-semaphore
                    // forms alike) names whom the hung task waits for.
                    (Some(Header::HungTask), Header::InfoLine)
                        if line.msg.starts_with("INFO: task ") =>
                    {
                        true
                    }
                    // kernel/rcu/tree_stall.h `INFO: Stall ended during stack backtracing.`,
                    // tree_exp.h `INFO: Expedited stall ended before state dump start`.
                    (Some(Header::RcuStall), Header::InfoLine)
                        if line.msg.contains("tall ended") =>
                    {
                        true
                    }
                    // rust/kernel/lib.rs `panic()` ends in BUG(): its `cut here`, `kernel BUG
                    // at rust/helpers/bug.c`, `Oops:` and stack are the panic's.
                    (
                        Some(Header::RustPanic),
                        Header::CutHere | Header::KernelBug { .. } | Header::OopsLine { .. },
                    ) if o.trace == Trace::NotStarted => true,
                    // arch/arm/mm/fault.c `do_DataAbort()`: `Unhandled fault: ...`, then
                    // `arm_notify_die()` -> `die()`: `Internal error: ...`.
                    (Some(Header::OopsLine { desc: first }), Header::OopsLine { desc })
                        if o.oops.is_none()
                            && o.trace == Trace::NotStarted
                            && (first == "Unhandled fault" || first == "Alignment trap")
                            && desc.starts_with("Internal error") =>
                    {
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

/// A line printed in interrupt or NMI context: printk's caller tag is `[Cn]` there
/// (kernel/printk/printk.c `printk_caller_id()`), `[Tpid]` in task context.
fn is_cpu_context(line: &Line<'_>) -> bool {
    line.ts.is_some() && line.caller.is_some_and(|c| c.starts_with('C'))
}

fn context_key(line: &Line<'_>) -> String {
    let mut k = String::with_capacity(8);
    k.push(if line.ts.is_some() { 'k' } else { 'u' });
    if let Some(c) = line.caller {
        k.push_str(c);
    }
    k
}

fn reports(found: Vec<Found>) -> Vec<Report> {
    found.into_iter().map(|f| f.report).collect()
}

fn count_newlines(s: &str) -> usize {
    s.as_bytes().iter().filter(|&&b| b == b'\n').count()
}
