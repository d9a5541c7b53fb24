//! Turning a finished report into the public [`Report`].

use super::open::Open;
use super::primary::{syzkaller_header, Found};
use super::title::derive;
use super::Report;

/// The log line syzkaller's parser would stop at for this report: the first of the lines
/// that started or shaped it (up to its header line) holding a header of syzkaller's table.
/// The header line's own log line is kept in [`Open`]; a line before it (a `cut here`, a
/// WARN message) is counted from the report's first line, exact unless another context
/// printed in between.
fn syzkaller_line(o: &Open) -> Option<(usize, &'static str)> {
    let upto = o.header_idx.min(o.lines.len().saturating_sub(1));
    o.lines
        .iter()
        .take(upto + 1)
        .enumerate()
        .find_map(|(i, l)| syzkaller_header(l).map(|h| (i, h)))
        .map(|(i, h)| {
            let line = if i == upto {
                o.header_line
            } else {
                o.first_line + i
            };
            (line, h)
        })
}

/// Builds the public report, or `None` for noise (expected dt-test output, a bare `cut here`).
pub(crate) fn build(mut o: Open) -> Option<Found> {
    if o.expected || (o.main.is_none() && o.warn_msg.is_none()) {
        // A `cut here` line whose WARNING/BUG never came says nothing by itself.
        return None;
    }
    if let Some(pc) = o.pc_func.clone() {
        if o.stack.first() != Some(&pc) {
            o.stack.insert(0, pc);
        }
    }
    let t = derive(&o, true)?;
    let mut trail = vec![
        format!(
            "started at line {}: {}",
            o.first_line,
            o.lines.first().map_or("", String::as_str)
        ),
        format!("ended at line {}: {}", o.last_line, o.end),
        format!(
            "header (line {}): {}",
            o.first_line + o.header_idx,
            o.lines.get(o.header_idx).map_or("", String::as_str)
        ),
    ];
    trail.append(&mut o.notes);
    trail.extend(t.trail);
    trail.push(match &t.frame {
        Some(f) => format!("guilty frame: {f}"),
        None => "guilty frame: none".to_string(),
    });
    if let Some(c) = &t.corrupted {
        trail.push(format!("corrupted: {c}"));
    }
    let syz = syzkaller_line(&o);
    trail.push(match syz {
        Some((line, h)) => format!(
            "syzkaller would stop at its line {line} (`{h}`, pkg/report/linux.go \
             findFirstOops); the report with the earliest such line is listed first"
        ),
        None => "no line of it holds a header of syzkaller's linuxOopses table (a kind \
                 syzkaller does not report): listed after the report syzkaller would report"
            .into(),
    });
    let report = Report {
        title: t.title,
        kind: t.kind,
        guilty_frame: t.frame,
        text: o.lines.join("\n"),
        stack: o.stack,
        line: o.first_line,
        end_line: o.last_line,
        timestamp: o.ts,
        corrupted: t.corrupted.is_some(),
        corrupted_reason: t.corrupted,
        trail,
    };
    Some(Found { report, syz })
}
