//! Bad input never panics: truncated, mangled and randomly mutated scenario files give a
//! scenario or an error.

use super::tests::fixture_overlays;
use super::tests_validated::FULL;
use super::*;

/// Never a panic: every prefix of a valid file, and some mangled ones, give Ok or an error.
#[test]
fn truncated_and_mangled_input_never_panics() {
    let mut inputs: Vec<String> = Vec::new();
    let root = crate::repo_root();
    let mut texts = vec![FULL.to_string()];
    for e in std::fs::read_dir(root.join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            texts.push(std::fs::read_to_string(p).unwrap());
        }
    }
    for text in &texts {
        let chars: Vec<char> = text.chars().collect();
        for n in 0..chars.len() {
            inputs.push(chars[..n].iter().collect());
        }
        // Drop one line at a time; swap indentation for tabs.
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let mut l = lines.clone();
            l.remove(i);
            inputs.push(l.join("\n"));
        }
        inputs.push(text.replace("  ", "\t"));
        inputs.push(text.replace(':', ""));
        inputs.push(text.replace('{', "["));
    }
    inputs.extend(
        [
            "[",
            "{",
            "]",
            "}",
            "- -",
            ": :",
            "&a [*a]",
            "!!str x",
            "? x",
            "%YAML 1.2\n---\n",
            "steps: *x",
            "\u{feff}steps: []",
            "steps:\n\t- sleep: 1s",
            "'",
            "\"\\u12",
        ]
        .map(String::from),
    );
    inputs.push("[".repeat(10_000));
    inputs.push("- ".repeat(5_000));
    inputs.push(format!(
        "steps: [{}]",
        "{repeat: {times: 1, steps: [".repeat(100)
    ));
    let mut ok = 0;
    for input in &inputs {
        if parse_str(input, "t.yaml", &fixture_overlays()).is_ok() {
            ok += 1;
        }
    }
    // The untouched files are among them and are valid.
    assert!(ok >= texts.len(), "{ok} of {} valid", inputs.len());
}

/// Random byte-level mutations of a valid file (deterministic seed): never a panic.
#[test]
fn mutated_input_never_panics() {
    let n: usize = std::env::var("RIG_SCENARIO_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b" \t\n-:{}[],'\"#&*!?|>%@`\\0123456789abcxyz.";
    let base = FULL.as_bytes();
    for _ in 0..n {
        let mut b = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % b.len();
            let c = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => b[at] = c,
                1 => b.insert(at, c),
                _ => {
                    b.remove(at);
                }
            }
        }
        let text = String::from_utf8_lossy(&b);
        let _ = parse_str(&text, "t.yaml", &fixture_overlays());
    }
}
