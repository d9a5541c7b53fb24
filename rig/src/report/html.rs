//! One static HTML file for a [`Summary`]: inline style, no script, no external assets, so it
//! opens from a CI artifact as it is.

use super::Summary;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;\
text-align:left;vertical-align:top}th{background:#f3f3f3}\
.fail,.error{background:#fde2e2}.infra{background:#fff2cc}.pass{background:#e6f4e6}\
.skip{color:#777}pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}\
code{font-size:12px}";

pub fn render_html(s: &Summary, title: &str) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
    h.push_str(&format!("<p id=\"counts\">{}</p>\n", esc(&s.counts())));
    if let Some(new) = &s.new_failures {
        h.push_str("<h2>New failures since the baseline</h2>\n<ul id=\"new-failures\">\n");
        for f in new {
            h.push_str(&format!(
                "<li><code>{}</code>: {}</li>\n",
                esc(&f.cell),
                esc(&f.title)
            ));
        }
        h.push_str("</ul>\n");
    }
    h.push_str(
        "<table id=\"cells\">\n<thead><tr><th>verdict</th><th>board</th><th>kernel</th>\
         <th>scenario</th><th>titles (k of N runs)</th><th>notes</th></tr></thead>\n<tbody>\n",
    );
    for r in &s.rows {
        let class = r.outcome.word().to_lowercase();
        let titles: Vec<String> = r
            .titles
            .iter()
            .map(|t| {
                format!(
                    "<details><summary>{} <small>[{}]</small> ({} of {})</summary>\
                     <pre>{}</pre></details>",
                    esc(&t.title),
                    esc(&t.class),
                    t.runs,
                    r.runs,
                    esc(&t.excerpt)
                )
            })
            .collect();
        let mut notes: Vec<String> = r.notes.iter().map(|n| esc(n)).collect();
        if let Some(cmd) = &r.reproduce {
            notes.push(format!("reproduce: <code>{}</code>", esc(cmd)));
        }
        h.push_str(&format!(
            "<tr class=\"cell {class}\" data-cell=\"{}\"><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&r.cell),
            r.outcome.word(),
            esc(&r.board),
            esc(&r.kernel),
            esc(&r.scenario),
            titles.join(""),
            notes.join("<br>")
        ));
    }
    h.push_str("</tbody>\n</table>\n");
    if !s.damaged.is_empty() {
        h.push_str("<h2>Damaged files, left out</h2>\n<ul id=\"damaged\">\n");
        for d in &s.damaged {
            h.push_str(&format!(
                "<li><code>{}</code>: {}</li>\n",
                esc(&d.path.display().to_string()),
                esc(&d.message)
            ));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}
