//! Text from elsewhere made safe for a terminal. A guest, a kernel log or a bundle can hold any
//! byte; printed raw, an escape sequence (`ESC ] 52 ; c ; … BEL` sets the user's clipboard, others
//! retitle the window, move the cursor or hide what follows) acts on the user's terminal. Every
//! human rendering rig prints (results, reports, progress, errors) goes through
//! [`terminal_safe`]; JSON is escaped by its encoder; `rig boot` passes its guest command's
//! output through unchanged, as `ssh host command` does.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character except newline and tab shown as an escape (`\x1b`,
/// `\r`, `\u{9b}`): what the text said stays readable, and nothing in it reaches the terminal
/// as a control sequence. Unchanged text is not copied.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// C0 and C1 controls (C1 includes the 8-bit CSI, U+009B) and DEL, but not newline and tab;
/// also the bidirectional overrides, which reorder what a terminal shows.
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An error and its sources, one line (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_visible_text() {
        let osc52 = "exit status 3: \u{1b}]52;c;aGVsbG8=\u{7}done";
        let safe = terminal_safe(osc52);
        assert_eq!(safe, "exit status 3: \\x1b]52;c;aGVsbG8=\\x07done");
        assert!(!safe.chars().any(|c| c.is_control()));
        assert_eq!(terminal_safe("a\r\nb\u{9b}2J\u{7f}"), "a\\r\nb\\x9b2J\\x7f");
        assert_eq!(terminal_safe("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn plain_text_is_not_copied() {
        let s = "WARNING in foo\n\tbar: ü";
        assert!(matches!(terminal_safe(s), Cow::Borrowed(_)));
    }
}
