use super::*;

#[test]
fn tail_keeps_last_lines() {
    let t = ConsoleTail::default();
    t.push(b"a\r\nb\r\n\x1eS1\r\nc\n");
    assert_eq!(t.last_lines(2), "S1\nc");
}

struct Fake {
    console: Console,
    kernel: UnixStream,
    shell: UnixStream,
    dir: tempfile::TempDir,
}

fn fake() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let (k_ours, kernel) = UnixStream::pair().unwrap();
    let (s_ours, shell) = UnixStream::pair().unwrap();
    let console = Console::new(
        k_ours,
        s_ours,
        &dir.path().join("console.log"),
        &dir.path().join("shell.log"),
    )
    .unwrap();
    Fake {
        console,
        kernel,
        shell,
        dir,
    }
}

#[test]
fn kernel_text_is_logged_tapped_and_waited_for() {
    let mut f = fake();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    f.console
        .add_tap(Box::new(move |d| s.lock().unwrap().extend_from_slice(d)));
    let first = b"[    1.0] boot\r\nRIG-READY 6.12";
    f.kernel.write_all(first).unwrap();
    let k = f.kernel.try_clone().unwrap();
    let watch = f.console.kernel.taken_watch();
    let late = std::thread::spawn(move || {
        // Only once the wait below took the first part: the marker is split for certain.
        let deadline = Instant::now() + Duration::from_secs(10);
        assert!(
            watch.wait_taken(first.len() as u64, deadline),
            "the wait never took the first part"
        );
        (&k).write_all(b".1-rig\r\n").unwrap();
    });
    // A marker split across reads is matched whole, up to its line end.
    let m = f
        .console
        .wait_for(r"RIG-READY \S+\r?\n", Duration::from_secs(10), &mut || None)
        .unwrap();
    late.join().unwrap();
    assert_eq!(m.trim(), "RIG-READY 6.12.1-rig");
    let log = std::fs::read_to_string(f.dir.path().join("console.log")).unwrap();
    assert!(log.starts_with("[    1.0] boot"), "{log}");
    assert!(String::from_utf8_lossy(&seen.lock().unwrap()).contains("RIG-READY"));
}

#[test]
fn ready_needs_both_markers_and_init_failures_are_reported() {
    let mut f = fake();
    f.kernel
        .write_all(b"[ 1.0] Run /init\r\nRIG-READY 6.12.1-rig\r\n")
        .unwrap();
    f.shell.write_all(b"RIG-READY 6.12.1-rig\n").unwrap();
    let r = f.console.wait_ready(Duration::from_secs(10), &mut || None);
    assert_eq!(r.unwrap(), "6.12.1-rig");
    let mut f = fake();
    f.kernel
        .write_all(b"RIG-INIT-FAILED cannot mount /proc\r\n")
        .unwrap();
    match f.console.wait_ready(Duration::from_secs(10), &mut || None) {
        Err(ReadyFail::InitFailed(r)) => assert_eq!(r, "cannot mount /proc"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn qemu_going_away_ends_a_shell_wait_at_once_with_the_reason() {
    let mut f = fake();
    f.kernel
        .write_all(b"Kernel panic - not syncing\r\n")
        .unwrap();
    drop(f.kernel);
    drop(f.shell);
    let start = Instant::now();
    let far = start + Duration::from_secs(60);
    let err = f
        .console
        .shell_output("the end", Duration::from_secs(60), far, &mut || {
            Some("QEMU exited (exit code 0)".into())
        })
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    match err {
        ConsoleError::Aborted { reason, last, .. } => {
            assert!(reason.contains("QEMU exited"));
            assert!(last.contains("Kernel panic"), "{last}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn shell_bytes_arrive_as_sent_and_commands_go_out() {
    let mut f = fake();
    f.console.send_line("echo hi").unwrap();
    let mut buf = [0u8; 8];
    f.shell.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"echo hi\n");
    f.shell.write_all(b"hi\n\0\x1e").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 5 {
        got.extend(
            f.console
                .shell_output("x", Duration::from_secs(10), deadline, &mut || None)
                .unwrap(),
        );
    }
    assert_eq!(got, b"hi\n\0\x1e");
    // The shell's stream is logged apart from the kernel's.
    drop(f.shell);
    drop(f.kernel);
    f.console.finish(Duration::from_secs(5));
    let log = std::fs::read(f.dir.path().join("shell.log")).unwrap();
    assert_eq!(log, b"hi\n\0\x1e");
    assert!(std::fs::read(f.dir.path().join("console.log"))
        .unwrap()
        .is_empty());
}

#[test]
fn a_silent_shell_times_out_at_the_deadline() {
    let mut f = fake();
    let t = Instant::now();
    let err = f
        .console
        .shell_output(
            "marker",
            Duration::from_millis(50),
            t + Duration::from_millis(50),
            &mut || None,
        )
        .unwrap_err();
    assert!(matches!(err, ConsoleError::Timeout { .. }), "{err:?}");
    assert!(t.elapsed() >= Duration::from_millis(50));
    let _ = (&f.kernel, &f.shell);
}
