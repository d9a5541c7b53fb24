use super::*;
use std::time::Instant;

/// A named pipe at `path` (mode 0600).
fn mkfifo(path: &Path) {
    let mode = rustix::fs::Mode::from_raw_mode(0o600);
    rustix::fs::mkfifoat(rustix::fs::CWD, path, mode).unwrap();
}

fn need_dtc() {
    crate::host::doctor::require("dtc").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn overlays_compile_without_symbols_and_garbage_fails() {
    need_dtc();
    let d = tempfile::tempdir().unwrap();
    let repo = crate::repo_root();
    for name in ["clock-provider-consumer", "simple-node"] {
        let out = d.path().join(format!("{name}.dtbo"));
        compile(&repo.join(format!("overlays/{name}.dtso")), &out).unwrap();
        let blob = fs::read(&out).unwrap();
        assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        let needle = b"__symbols__";
        assert!(!blob.windows(needle.len()).any(|w| w == needle), "{name}");
    }
    let bad = d.path().join("bad.dtso");
    fs::write(&bad, "/dts-v1/;\n/ { oops").unwrap();
    let out = d.path().join("bad.dtbo");
    let e = compile(&bad, &out).unwrap_err();
    assert!(matches!(e, OverlayError::Dtc { .. }), "{e}");
    assert!(!out.exists());
}

const HEAD: &str = "/dts-v1/;\n/plugin/;\n";

/// An overlay whose node `n` has property `p` = `value`.
fn overlay_with(value: &str) -> String {
    format!("{HEAD}/ {{\n\tfragment@0 {{\n\t\ttarget-path = \"/\";\n\t\t__overlay__ {{\n\t\t\tn {{ p = {value}; }};\n\t\t}};\n\t}};\n}};\n")
}

/// Sources that would make dtc read a host file are refused before dtc runs, naming the file,
/// line and column of the directive; nothing is written.
#[test]
fn a_source_naming_a_host_file_is_refused_before_dtc_runs() {
    need_dtc();
    let d = tempfile::tempdir().unwrap();
    let secret = d.path().join("secret");
    fs::write(&secret, "rig-secret-4711").unwrap();
    let cases = [
        (
            overlay_with(&format!("/incbin/(\"{}\")", secret.display())),
            (7, 12, "/incbin/"),
        ),
        (
            overlay_with("/incbin/(\"/proc/self/environ\")"),
            (7, 12, "/incbin/"),
        ),
        // Never ends under dtc: it reads /dev/zero until memory runs out.
        (overlay_with("/incbin/(\"/dev/zero\")"), (7, 12, "/incbin/")),
        (
            format!("{HEAD}/include/ \"{}\"\n", secret.display()),
            (3, 1, "/include/"),
        ),
        (
            format!("{HEAD}  #  include \"{}\"\n", secret.display()),
            (3, 3, "#include"),
        ),
    ];
    for (i, (text, (line, column, directive))) in cases.into_iter().enumerate() {
        let src = d.path().join(format!("evil{i}.dtso"));
        fs::write(&src, &text).unwrap();
        let out = d.path().join(format!("evil{i}.dtbo"));
        let started = Instant::now();
        let e = compile(&src, &out).expect_err(&text);
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        let want = format!("{}:{line}:{column}: `{directive}` ", src.display());
        assert!(e.to_string().starts_with(&want), "{e}\nwant: {want}");
        assert!(
            e.to_string().contains("overlays may not include files"),
            "{e}"
        );
        assert!(!out.exists());
    }
}

/// A source that is a FIFO (or names one) is refused at once instead of blocking dtc for good.
#[test]
fn a_fifo_is_never_waited_for() {
    need_dtc();
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pipe.dtso");
    mkfifo(&fifo);
    let started = Instant::now();
    let e = compile(&fifo, &d.path().join("o.dtbo")).unwrap_err();
    assert!(matches!(e, OverlayError::NotAFile { .. }), "{e}");
    let src = d.path().join("names-fifo.dtso");
    fs::write(&src, overlay_with("/incbin/(\"pipe.dtso\")")).unwrap();
    let e = compile(&src, &d.path().join("o.dtbo")).unwrap_err();
    assert!(matches!(e, OverlayError::Directive { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The deadline: dtc stuck (here on a FIFO nobody writes, which the directive check would have
/// refused) is killed and reaped when it runs out, and the error names the overlay and the
/// timeout.
#[test]
fn dtc_past_its_deadline_is_killed_and_reaped() {
    need_dtc();
    let d = tempfile::tempdir().unwrap();
    mkfifo(&d.path().join("pipe"));
    fs::write(d.path().join(SEALED), overlay_with("/incbin/(\"pipe\")")).unwrap();
    let started = Instant::now();
    let e = run_dtc(
        d.path(),
        Path::new("overlays/stuck.dtso"),
        Duration::from_millis(300),
    )
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(
        e.to_string(),
        "dtc did not finish compiling overlay overlays/stuck.dtso within 300ms: killed"
    );
    // SIGTERM ends dtc at once; the grace before SIGKILL is 3 s.
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Reaped: no process of this test still runs in the folder.
    let dir = d.path().canonicalize().unwrap();
    for p in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cwd) = fs::read_link(p.path().join("cwd")) {
            assert_ne!(cwd, dir, "{:?} still runs in the folder", p.path());
        }
    }
}

/// A good overlay compiles from its copy: the blob lands whole (no `.part` left) and nothing
/// else appears beside the source; a source over the size bound is refused.
#[test]
fn the_blob_is_written_whole_and_sources_are_bounded() {
    need_dtc();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("ok.dtso");
    fs::write(&src, overlay_with("<1 2>")).unwrap();
    let out = d.path().join("ok.dtbo");
    compile(&src, &out).unwrap();
    assert_eq!(&fs::read(&out).unwrap()[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
    assert!(!d.path().join("ok.dtbo.part").exists());
    let names: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let big = d.path().join("big.dtso");
    fs::write(&big, vec![b' '; MAX_SOURCE_BYTES as usize + 1]).unwrap();
    let e = compile(&big, &out).unwrap_err();
    assert!(matches!(e, OverlayError::TooLarge { .. }), "{e}");
}

#[test]
fn directives_are_found_anywhere_and_only_there() {
    let find = |s: &str| forbidden_directive(s.as_bytes());
    assert_eq!(find(&overlay_with("<1>")), None);
    assert_eq!(find("/dts-v1/;\n#address-cells = <1>;\n"), None);
    assert_eq!(
        find("/* x */ /incbin/(\"a\")"),
        Some((1, 9, Forbidden::Incbin))
    );
    assert_eq!(
        find("a\n\nb = \"é /include/\";"),
        Some((3, 8, Forbidden::Include))
    );
    assert_eq!(
        find("x\n#include <a.h>"),
        Some((2, 1, Forbidden::CppInclude))
    );
    assert_eq!(find("\u{0}\u{ff}/incbin/"), Some((1, 3, Forbidden::Incbin)));
}
