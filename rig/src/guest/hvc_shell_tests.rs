use super::*;
use std::io::Write;
use std::process::{Command, Stdio};

const T: &str = "0123456789abcdef0123456789abcdef";

fn frame(token: &str, body: &[u8], status: &str) -> Vec<u8> {
    let mut v = format!("\u{1e}S{token}\n").into_bytes();
    v.extend_from_slice(body);
    v.extend_from_slice(format!("\n\u{1e}E{token} {status}\n").as_bytes());
    v
}

fn feed_all(p: &mut FrameParser, data: &[u8]) -> Option<Frame> {
    p.feed(data)
}

#[test]
fn output_comes_back_byte_for_byte_with_its_status() {
    let mut p = FrameParser::new(T);
    let body = b"hello\nworld\n[    1.000000] not kernel text\n\0\x1e binary";
    assert_eq!(
        feed_all(&mut p, &frame(T, body, "3")),
        Some(Frame::Done {
            output: body.to_vec(),
            status: 3
        })
    );
    // Output without a final newline keeps it that way.
    let mut p = FrameParser::new(T);
    assert_eq!(
        p.feed(&frame(T, b"no newline", "0")),
        Some(Frame::Done {
            output: b"no newline".to_vec(),
            status: 0
        })
    );
}

#[test]
fn any_split_of_the_stream_gives_the_same_frame() {
    let mut stream = b"leftover of an earlier command\n\x1eE00 0\n".to_vec();
    stream.extend(frame(T, b"out\n", "17"));
    stream.extend_from_slice(b"trailing noise");
    let want = Some(Frame::Done {
        output: b"out\n".to_vec(),
        status: 17,
    });
    for cut in 0..stream.len() {
        let mut p = FrameParser::new(T);
        let first = p.feed(&stream[..cut]);
        let got = first.or_else(|| p.feed(&stream[cut..]));
        assert_eq!(got, want, "cut at {cut}");
    }
    // Byte by byte.
    let mut p = FrameParser::new(T);
    let got = stream.iter().find_map(|b| p.feed(std::slice::from_ref(b)));
    assert_eq!(got, want);
}

#[test]
fn forged_and_stale_markers_do_not_end_the_command() {
    let other = "ffffffffffffffffffffffffffffffff";
    // The command prints an end marker of another token, this token's marker without the
    // newline before it, and a start marker of its own: none of it ends the frame.
    let body = format!("a\n\u{1e}E{other} 0\nx\u{1e}E{T} 0\n\u{1e}S{T}\nb");
    let mut p = FrameParser::new(T);
    let mut stream = frame(other, b"stale", "0");
    stream.extend(frame(T, body.as_bytes(), "1"));
    assert_eq!(
        p.feed(&stream),
        Some(Frame::Done {
            output: body.into_bytes(),
            status: 1
        })
    );
    // Even the real token (which the command cannot know) followed by anything but a status
    // and a newline makes the command fail, never pass.
    let mut p = FrameParser::new(T);
    let forged = format!("\u{1e}S{T}\nok\n\u{1e}E{T} 0 and more\n");
    assert!(matches!(p.feed(forged.as_bytes()), Some(Frame::Garbled(_))));
}

#[test]
fn a_status_that_is_no_number_is_refused() {
    for bad in ["x", "1234", "", "-1"] {
        let mut p = FrameParser::new(T);
        assert!(
            matches!(p.feed(&frame(T, b"", bad)), Some(Frame::Garbled(_))),
            "{bad:?}"
        );
    }
    // A status that never ends is refused without waiting for megabytes.
    let mut p = FrameParser::new(T);
    let mut s = format!("\u{1e}S{T}\nout\n\u{1e}E{T} ").into_bytes();
    s.extend_from_slice(b"99999");
    assert!(matches!(p.feed(&s), Some(Frame::Garbled(_))));
}

#[test]
fn output_over_the_limit_is_refused_and_memory_stays_bounded() {
    let mut p = FrameParser::with_limit(T, 1000);
    assert_eq!(p.feed(format!("\u{1e}S{T}\n").as_bytes()), None);
    for _ in 0..1000 {
        assert_eq!(p.feed(&[b'x'; 1000]), None);
        assert!(p.output.len() <= 1000 + 2 * p.end.len() + 1000);
    }
    assert_eq!(
        p.feed(format!("\n\u{1e}E{T} 0\n").as_bytes()),
        Some(Frame::TooLarge { limit: 1000 })
    );
    // Before the start marker, too, only a marker's length is kept.
    let mut p = FrameParser::new(T);
    for _ in 0..100 {
        p.feed(&[b'y'; 10_000]);
    }
    assert!(p.pending.len() < 64);
}

#[test]
fn tokens_are_fresh_and_long() {
    let a = new_token();
    let b = new_token();
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn plain_simple_commands_are_recognised() {
    for yes in [
        "uname -r",
        "cat /proc/version",
        "rmdir /sys/kernel/config/x",
        " dmesg ",
    ] {
        assert!(is_plain_simple_command(yes), "{yes}");
    }
    for no in [
        "echo hi",
        "cd /",
        "exit 3",
        "a=b",
        "A=1 env",
        "cat x > y",
        "a; b",
        "a && b",
        "echo $x",
        "ls *",
        "sh -c 'x'",
        "true",
        "if",
        "",
        "x # comment",
    ] {
        assert!(!is_plain_simple_command(no), "{no}");
    }
}

/// Runs what rig sends through a real non-interactive POSIX shell reading stdin (bash here:
/// the host has no busybox; the VM tests run the same through the guest's ash) and parses the
/// answer with the frame parser.
fn through_shell(command: &str) -> (Vec<u8>, i32) {
    let token = new_token();
    let text = command_text(&token, command).unwrap();
    for line in text.split('\n') {
        assert!(line.len() < MAX_LINE, "line of {} bytes", line.len());
    }
    let mut child = Command::new("bash")
        .arg("--posix")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.write_all(b"echo console-shell-alive\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.stdout.ends_with(b"console-shell-alive\n"),
        "the console shell did not survive `{command}`: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    match FrameParser::new(&token).feed(&out.stdout) {
        Some(Frame::Done { output, status }) => (output, status),
        other => panic!("{command}: {other:?}"),
    }
}

#[test]
fn commands_survive_quoting_exit_syntax_errors_and_long_lines() {
    assert_eq!(
        through_shell("echo 'a \"b\"' \"it's\"; exit 3"),
        (b"a \"b\" it's\n".to_vec(), 3)
    );
    assert_eq!(through_shell("uname -s").0, b"Linux\n");
    assert_eq!(through_shell("echo out; echo err >&2").0, b"out\nerr\n");
    // A syntax error fails the command, not the shell.
    assert_ne!(through_shell("echo 'unterminated").1, 0);
    assert_ne!(through_shell("if then fi").1, 0);
    // cd and variables stay in the subshell.
    assert_eq!(through_shell("cd /; X=1; pwd").0, b"/\n");
    // Control characters and DEL travel as escapes and arrive as they were.
    let ctl: String = (1u8..32).chain([127]).map(char::from).collect();
    let (out, st) = through_shell(&format!("printf %s '{ctl}'"));
    assert_eq!((out, st), (ctl.clone().into_bytes(), 0));
    // Lines far over the tty's limit, and many lines.
    let long = "y".repeat(20_000);
    assert_eq!(
        through_shell(&format!("echo {long}")).0,
        format!("{long}\n").into_bytes()
    );
    let many = "echo x; ".repeat(2_000);
    assert_eq!(through_shell(&many).0.len(), 4_000);
    let quotes = "'".repeat(5000);
    assert_eq!(
        through_shell(&format!("printf %s \"{quotes}\"")).0,
        quotes.into_bytes()
    );
    // Non-ASCII text.
    assert_eq!(through_shell("echo grüße").0, "grüße\n".as_bytes());
    assert!(command_text("t", "a\0b").is_err());
}
