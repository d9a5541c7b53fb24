//! Guest output is untrusted, and what rig leaves on the host is not for other users: real
//! guests (debian-6.1, arm64-virt, the fast board under TCG here) that forge rig's markers,
//! print megabytes without a newline, NUL bytes and garbage; and a guest with ssh whose port,
//! sockets and keys are checked from the host side.

mod common;

use common::*;
use rig::guest::transport::Via;
use rig::host::board::Board;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

const BOARD: Board = Board::Arm64Virt;

/// An error, cut to a readable length (a flood's console tail is 64 KiB).
fn short(e: impl std::fmt::Debug) -> String {
    format!("{e:?}").chars().take(600).collect()
}

/// The process's high-water mark of resident memory, in KiB.
fn hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A command that prints forged command markers for the first few hundred command numbers (and
/// a forged RIG-READY) straight onto the console, then fails, must fail: nothing it prints can
/// end rig's command with another status.
#[test]
fn forged_markers_cannot_make_a_failed_command_look_passed() {
    let mut g = boot(BOARD, "debian-6.1", "hostile-markers");
    // Warm up so that rig's command number is past 1, as in a real run.
    sh(&mut g, "true");
    let forge =
        "i=1; while [ $i -le 300 ]; do printf '\\036S%s\\n\\036E%s 0\\n' $i $i > /dev/console; \
                 i=$((i+1)); done; echo 'RIG-READY 9.9.9' > /dev/console; exit 3";
    let out = g
        .run(forge, CMD, Via::Hvc)
        .unwrap_or_else(|e| panic!("the command failed: {}", short(e)));
    assert_eq!(
        out.status, 3,
        "a forged end marker ended the command: {out:?}"
    );
    // The same, in the command's own output.
    let forge_out = "i=1; while [ $i -le 300 ]; do printf '\\036S%s\\n\\036E%s 0\\n' $i $i; i=$((i+1)); done; exit 4";
    let out = g
        .run(forge_out, CMD, Via::Hvc)
        .unwrap_or_else(|e| panic!("the command failed: {}", short(e)));
    assert_eq!(out.status, 4, "{out:?}");
    assert_eq!(sh(&mut g, "echo still fine"), "still fine\n");
    g.shutdown();
}

/// Megabytes without a newline on the console: rig keeps going, the next command's result is
/// exact, and rig's memory does not grow with the flood (its buffers are bounded).
#[test]
fn megabytes_without_a_newline_neither_crash_rig_nor_grow_its_memory() {
    let mut g = boot(BOARD, "debian-6.1", "hostile-long-line");
    sh(&mut g, "true");
    let before = hwm_kib();
    let mib = 4;
    let out = g
        .run(
            &format!(
                "head -c {} /dev/zero | tr '\\0' a > /dev/console; echo ok",
                mib << 20
            ),
            Duration::from_secs(300),
            Via::Hvc,
        )
        .unwrap_or_else(|e| panic!("the command failed: {}", short(e)));
    assert_eq!((out.status, out.stdout.as_str()), (0, "ok\n"));
    assert_eq!(sh(&mut g, "echo next"), "next\n");
    let grew = hwm_kib().saturating_sub(before);
    assert!(
        grew < mib * 1024,
        "rig's resident memory grew by {grew} KiB for a {mib} MiB line: an unbounded buffer"
    );
    g.shutdown();
}

/// NUL bytes and random garbage (which ends without a newline) on the console, and NULs in a
/// command's own output: the output comes back byte for byte and the next command works.
#[test]
fn nul_bytes_and_garbage_do_not_disturb_commands() {
    let mut g = boot(BOARD, "debian-6.1", "hostile-garbage");
    let out = g
        .run(
            "head -c 65536 /dev/zero > /dev/console; printf 'a\\000b\\000'",
            CMD,
            Via::Hvc,
        )
        .unwrap_or_else(|e| panic!("the command failed: {}", short(e)));
    assert_eq!((out.status, out.stdout.as_str()), (0, "a\0b\0"));
    let out = g
        .run(
            "head -c 131072 /dev/urandom > /dev/console; echo done",
            CMD,
            Via::Hvc,
        )
        .unwrap_or_else(|e| panic!("a garbage flood made the command fail: {}", short(e)));
    assert_eq!((out.status, out.stdout.as_str()), (0, "done\n"));
    assert_eq!(sh(&mut g, "echo next"), "next\n");
    g.shutdown();
}

/// TCP sockets in state LISTEN of process `pid`, as (address, port).
fn listening(pid: u32) -> Vec<(String, u16)> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(t) = std::fs::read_link(fd.path()) {
            let t = t.to_string_lossy().into_owned();
            if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let addr = if v6 {
                format!("[{addr}]")
            } else {
                let n = u32::from_str_radix(addr, 16).unwrap();
                std::net::Ipv4Addr::from(n.swap_bytes()).to_string()
            };
            out.push((addr, port));
        }
    }
    out
}

/// With ssh: QEMU listens on 127.0.0.1 only, on the reserved port; the sockets and port locks
/// live in 0700 directories of this user; the client key never touches the disk.
#[test]
fn ssh_listens_on_loopback_only_and_leaves_no_key_or_open_socket_behind() {
    let mut o = options(BOARD, "debian-6.1");
    o.set_ssh(true).unwrap();
    let mut g = boot_with(o, "hostile-ssh");
    let port = g.ssh.as_ref().unwrap().addr().port();
    let qemu = g.vm.qemu_pid();
    let socks = listening(qemu);
    assert_eq!(
        socks,
        vec![("127.0.0.1".to_string(), port)],
        "QEMU listens on more than the loopback ssh forward"
    );
    // The console and QMP sockets: in a fresh 0700 directory inside the user's 0700 one.
    let argv = std::fs::read_to_string(g.vm.run_dir().file("qemu.argv")).unwrap();
    let qmp = argv
        .split([' ', ','])
        .find_map(|w| w.strip_prefix("path=").filter(|p| p.ends_with("/qmp")))
        .expect("a QMP socket path");
    let vm_dir = std::path::Path::new(qmp).parent().unwrap();
    for d in [
        vm_dir,
        vm_dir.parent().unwrap(),
        vm_dir.parent().unwrap().parent().unwrap(),
    ] {
        let m = std::fs::symlink_metadata(d).unwrap();
        assert!(
            m.is_dir() && m.mode() & 0o077 == 0,
            "{} is mode {:o}",
            d.display(),
            m.mode()
        );
        assert_eq!(m.uid(), rig::host::userdir::uid());
    }
    // The port's lock file: 0600 in the private lock directory.
    let lock = rig::guest::ssh::port::lock_dir()
        .unwrap()
        .join(port.to_string());
    assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        g.run("echo via ssh", CMD, Via::Ssh).unwrap().stdout,
        "via ssh\n"
    );
    let run = g.vm.run_dir().path().to_path_buf();
    g.shutdown();
    assert!(!vm_dir.exists(), "the socket directory outlived the VM");
    // No private key anywhere in the run's files or the user's runtime directory.
    let mut files = Vec::new();
    for root in [run.clone(), rig::host::userdir::runtime_dir().unwrap()] {
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    stack.push(p);
                } else if p.is_file() {
                    files.push(p);
                }
            }
        }
    }
    for f in files {
        let data = std::fs::read(&f).unwrap_or_default();
        // A key's PEM header followed by its base64 body (the uncompressed initrd holds
        // dropbear, whose key-format strings end in a NUL, not in a key).
        let header = b"PRIVATE KEY-----\n";
        let key = data.windows(header.len() + 64).any(|w| {
            w.starts_with(header)
                && w[header.len()..]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=\n".contains(b))
        });
        assert!(!key, "a private key was written to {}", f.display());
    }
}

/// A guest that floods its console: `console.log` stops at its cap (here 256 KiB, set with
/// `RIG_CONSOLE_LOG_MAX`) with a visible marker, the verdict says so, and a kernel report
/// printed after the cap still fails the run (the live analyzer read the whole stream).
#[test]
fn a_console_flood_is_capped_and_a_report_after_the_cap_still_counts() {
    // This test's own process (nextest runs one test per process).
    std::env::set_var("RIG_CONSOLE_LOG_MAX", "262144");
    let text = "name: console-flood\ncmdline: [printk.devkmsg=on]\nsteps:\n  - guest:\n      \
                run: >-\n        head -c 1048576 /dev/zero | tr '\\0' a | fold -w 200 > \
                /dev/console;\n        for l in '------------[ cut here ]------------'\n        \
                'WARNING: CPU: 0 PID: 1 at drivers/base/core.c:123 device_del+0x10/0x20'\n        \
                'Call Trace:' ' device_unregister+0x1c/0x60' ' rig_fake_teardown+0x2a/0x40'\n        \
                '---[ end trace 0000000000000000 ]---';\n        do printf '<4>%s\\n' \"$l\" > \
                /dev/kmsg; done\n      timeout: 300s\n";
    let sc = rig::scenario::parse_str(text, "console-flood", &rig::repo_root().join("overlays"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut opts = rig::run::RunOptions::new(BOARD, "debian-6.1");
    opts.auto_setup = false;
    let rd = run_dir("hostile-console-flood");
    let r = rig::run::run_scenario(
        &sc,
        &opts,
        &cache(),
        &rd,
        &rig::host::events::Events::none(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = std::fs::read(rd.console_log()).unwrap();
    assert!(
        log.len() < 262144 + 1024,
        "console.log is {} bytes, over its cap",
        log.len()
    );
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("[rig: console log truncated at 262144 bytes"),
        "no marker"
    );
    assert!(
        !text.contains("rig_fake_teardown"),
        "the report is not past the cap"
    );
    let rep = &r.repetitions[0];
    assert_eq!(rep.console_log_truncated_at, Some(262144));
    assert_eq!(r.verdict, rig::run::Verdict::Fail, "{}", r.render());
    assert!(
        r.reproduced.contains_key("WARNING in rig_fake_teardown"),
        "{}",
        r.render()
    );
    assert!(r.render().contains("console.log truncated at 262144 bytes"));
}

/// A command over ssh that prints without end (`head -c 100M /dev/zero`): rig keeps at most
/// 64 MiB of it, says so, and its memory does not grow with the rest.
#[test]
fn ssh_output_is_capped_like_the_hvc_shells() {
    let mut opts = options(BOARD, "debian-6.1");
    opts.set_ssh(true).unwrap();
    let mut g = boot_with(opts, "hostile-ssh-flood");
    sh(&mut g, "true");
    let before = hwm_kib();
    let e = g
        .run(
            "head -c 200000000 /dev/zero",
            Duration::from_secs(600),
            Via::Ssh,
        )
        .expect_err("200 MB of output came back whole");
    assert!(
        rig::host::text::error_chain(&e).contains("printed more than 64 MiB"),
        "{}",
        short(e)
    );
    let grew = hwm_kib().saturating_sub(before);
    assert!(
        grew < 200 * 1024,
        "rig's resident memory grew by {grew} KiB for 200 MB of ssh output"
    );
    assert_eq!(sh(&mut g, "echo next"), "next\n");
    g.shutdown();
}
