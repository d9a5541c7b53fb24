//! Turning a finished report into the public [`Report`].

use super::open::Open;
use super::title::derive;
use super::Report;

/// Builds the public report, or `None` for noise (expected dt-test output, a bare `cut here`).
pub(crate) fn build(mut o: Open) -> Option<Report> {
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
    Some(Report {
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
    })
}
