//! Text (terminal) and Markdown (`$GITHUB_STEP_SUMMARY`) renderings of a [`Summary`].

use super::{Outcome, Row, Summary};

fn counts(s: &Summary) -> String {
    s.counts()
}

/// `title (k of N)` for each title of a row (`no reports in N runs` without any).
fn titles(r: &Row) -> Vec<String> {
    if r.titles.is_empty() {
        let s = if r.runs == 1 { "" } else { "s" };
        return vec![format!("no reports in {} run{s}", r.runs)];
    }
    r.titles
        .iter()
        .map(|t| {
            let mark = if t.class == "unexpected" { "" } else { " [" };
            let end = if t.class == "unexpected" {
                String::new()
            } else {
                format!("{}]", t.class)
            };
            format!("{}{mark}{end} ({} of {})", t.title, t.runs, r.runs)
        })
        .collect()
}

pub fn render_text(s: &Summary) -> String {
    let mut out = String::new();
    let width = s.rows.iter().map(|r| r.cell.len()).max().unwrap_or(0);
    for r in &s.rows {
        let what = match r.outcome {
            Outcome::Skip | Outcome::Error => r.notes.join("; "),
            _ => titles(r).join("; "),
        };
        let line = format!("{:<5}  {:<width$}  {what}", r.outcome.word(), r.cell);
        out.push_str(line.trim_end());
        out.push('\n');
        if matches!(r.outcome, Outcome::Fail | Outcome::Infra) {
            for n in &r.notes {
                out.push_str(&format!("       {n}\n"));
            }
            if let Some(cmd) = &r.reproduce {
                out.push_str(&format!("       reproduce: {cmd}\n"));
            }
        }
    }
    if let Some(new) = &s.new_failures {
        if new.is_empty() {
            out.push_str("no new failures since the baseline\n");
        } else {
            out.push_str("new failures since the baseline:\n");
            for f in new {
                out.push_str(&format!("  {}: {}\n", f.cell, f.title));
            }
        }
    }
    for d in &s.damaged {
        out.push_str(&format!(
            "damaged, left out: {}: {}\n",
            d.path.display(),
            d.message
        ));
    }
    out.push_str(&counts(s));
    out.push('\n');
    out
}

/// `|` and newlines break a Markdown table cell.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render_markdown(s: &Summary) -> String {
    let mut out = format!("## rig: {}\n\n", counts(s));
    if let Some(new) = &s.new_failures {
        if new.is_empty() {
            out.push_str("No new failures since the baseline.\n\n");
        } else {
            out.push_str("### New failures since the baseline\n\n");
            for f in new {
                out.push_str(&format!("- `{}`: {}\n", f.cell, md(&f.title)));
            }
            out.push('\n');
        }
    }
    out.push_str("| verdict | board | kernel | scenario | titles (k of N runs) |\n");
    out.push_str("|---|---|---|---|---|\n");
    for r in &s.rows {
        let what = match r.outcome {
            Outcome::Skip | Outcome::Error => r.notes.join("; "),
            _ => titles(r).join("<br>"),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.outcome.word(),
            r.board,
            md(&r.kernel),
            r.scenario,
            md(&what)
        ));
    }
    for r in s
        .rows
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Fail | Outcome::Infra))
    {
        out.push_str(&format!("\n### {} `{}`\n\n", r.outcome.word(), r.cell));
        for n in &r.notes {
            out.push_str(&format!("- {}\n", md(n)));
        }
        if let Some(cmd) = &r.reproduce {
            out.push_str(&format!("\nReproduce: `{cmd}`\n"));
        }
        for t in &r.titles {
            out.push_str(&format!(
                "\n<details><summary>{} ({} of {})</summary>\n\n```\n{}\n```\n\n</details>\n",
                md(&t.title),
                t.runs,
                r.runs,
                t.excerpt.replace("```", "'''")
            ));
        }
    }
    if !s.damaged.is_empty() {
        out.push_str("\n### Damaged files, left out\n\n");
        for d in &s.damaged {
            out.push_str(&format!("- `{}`: {}\n", d.path.display(), md(&d.message)));
        }
    }
    out
}
