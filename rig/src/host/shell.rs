//! Quoting for POSIX sh, in one place: which words need no quoting, and how a word is
//! single-quoted. Used for the command lines rig logs and runs (`qemu.argv`, `rig reproduce …`,
//! ssh's remote commands) and, under the tty encoding of [`crate::guest::hvc_shell`], for the
//! commands rig types into the guest's console shell.

use std::borrow::Cow;

/// Whether `word` means itself to sh unquoted: not empty, and only characters that no shell
/// expands, splits, globs or treats as an operator.
pub fn is_plain_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=,./:+@%".contains(&b))
}

/// `c` as written inside a single-quoted word: itself, except `'`, which closes the quote,
/// adds an escaped quote and opens it again.
pub fn in_single_quotes(c: char) -> Cow<'static, str> {
    match c {
        '\'' => Cow::Borrowed("'\\''"),
        c => Cow::Owned(c.to_string()),
    }
}

/// `text` as one single-quoted sh word (every byte literal, newlines included).
pub fn single_quoted(text: &str) -> String {
    let mut w = String::with_capacity(text.len() + 2);
    w.push('\'');
    for c in text.chars() {
        w.push_str(&in_single_quotes(c));
    }
    w.push('\'');
    w
}

/// `text` as one sh word: as it is when [plain](is_plain_word), else single-quoted.
pub fn quote(text: &str) -> Cow<'_, str> {
    if is_plain_word(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(single_quoted(text))
    }
}

/// One shell word per argument, quoted only where needed: the command line `sh` splits back into
/// exactly `argv` (for `qemu.argv`, logs, and running an argv in the guest's shell).
pub fn shell_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|s| quote(s.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn shell_line_quotes_what_needs_it_and_sh_splits_it_back() {
        let l = shell_line(&["qemu", "-append", "a b", "romfile="]);
        assert_eq!(l, "qemu -append 'a b' romfile=");
        let argv = ["printf", "%s|", "it's", "", "$HOME", "a\nb", "*"];
        let out = Command::new("sh")
            .arg("-c")
            .arg(shell_line(&argv))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's||$HOME|a\nb|*|");
    }

    #[test]
    fn plain_words_are_left_alone_and_the_rest_is_quoted() {
        for w in [
            "qemu",
            "-m",
            "size=1G,x=y",
            "/a/b.c",
            "user@host:1",
            "%s",
            "+1",
        ] {
            assert!(is_plain_word(w), "{w}");
            assert_eq!(quote(w), w);
        }
        for w in [
            "", "a b", "$x", "*", "~", "a;b", "a|b", "it's", "(x)", "a\tb", "é",
        ] {
            assert!(!is_plain_word(w), "{w:?}");
            assert!(quote(w).starts_with('\''), "{w:?}");
        }
        assert_eq!(single_quoted("it's"), "'it'\\''s'");
        // Every word comes back from sh as it went in, plain or quoted.
        let words = [
            "%s", "a=b", "it's", "'", "''", "a\nb", "$(x)", "`x`", "\\", "\"", "!",
        ];
        let mut argv = vec!["printf", "%s\\0"];
        argv.extend(words);
        let out = Command::new("sh")
            .arg("-c")
            .arg(shell_line(&argv))
            .output()
            .unwrap();
        assert!(out.status.success());
        let back: Vec<&[u8]> = out.stdout.split(|b| *b == 0).collect();
        let want: Vec<&[u8]> = words
            .iter()
            .map(|w| w.as_bytes())
            .chain([&b""[..]])
            .collect();
        assert_eq!(back, want);
    }
}
