//! VM tests for the ssh transport: real guests on both boards, dropbear in the guest, a pinned
//! host key read from the console, a forwarded loopback port.

mod common;

use common::*;
use rig::guest::transport::Via;
use rig::guest::transport::{Transport, TransportError};
use rig::host::board::Board;
use std::time::{Duration, Instant};

fn boot_ssh(board: Board, label: &str) -> rig::guest::Guest {
    let mut o = options(board, "debian-6.1");
    o.set_ssh(true).unwrap();
    boot_with(o, label)
}

#[test]
fn ssh_commands_uploads_and_concurrency_on_both_boards() {
    for board in Board::ALL {
        let mut g = boot_ssh(board, "ssh");
        // stdout and stderr apart, exit status through.
        let out = g
            .run("echo out; echo err >&2; exit 7", CMD, Via::Ssh)
            .unwrap();
        assert_eq!(out.stdout, "out\n", "{board}");
        assert_eq!(out.stderr.as_deref(), Some("err\n"), "{board}");
        assert_eq!(out.status, 7, "{board}");
        assert_eq!(
            g.run("uname -m", CMD, Via::Ssh).unwrap().stdout.trim(),
            board.arch().uname()
        );

        // Four 2 s sleeps at once take about as long as one.
        let ssh = g.ssh.as_ref().unwrap();
        let start = Instant::now();
        let cmds = vec![("sleep 2; echo done", Duration::from_secs(60)); 4];
        let results = ssh.run_concurrent(&cmds);
        let took = start.elapsed();
        assert_eq!(results.len(), 4);
        for r in &results {
            assert_eq!(r.as_ref().unwrap().stdout, "done\n", "{board}");
        }
        assert!(
            took < Duration::from_secs(6),
            "{board}: 4 concurrent sleeps took {took:?}"
        );

        // An upload arrives intact: checked independently over the command shell (hvc).
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("blob");
        let data: Vec<u8> = (0..512 * 1024u32)
            .map(|i| (i * 7 + i / 255) as u8)
            .collect();
        std::fs::write(&local, &data).unwrap();
        ssh.upload(&local, "/tmp/blob", 0o600).unwrap();
        let want = rig::host::cache::sha256_file(&local).unwrap();
        let got = sh(
            &mut g,
            "sha256sum /tmp/blob | cut -d' ' -f1; stat -c %a /tmp/blob",
        );
        assert_eq!(got, format!("{want}\n600\n"), "{board}");
        g.shutdown();
    }
}

#[test]
fn killing_dropbear_mid_command_is_a_clear_error_not_a_hang() {
    for board in Board::ALL {
        let mut g = boot_ssh(board, "ssh-kill");
        let start = Instant::now();
        let err = g
            .ssh
            .as_mut()
            .unwrap()
            .run(
                "sleep 1; kill -9 $(pidof dropbear); sleep 30",
                Duration::from_secs(90),
            )
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{board}: took {:?}",
            start.elapsed()
        );
        match &err {
            TransportError::Disconnected { last_console, .. } => assert!(
                last_console.contains("RIG-READY"),
                "{board}: console tail missing: {last_console}"
            ),
            other => panic!("{board}: expected a lost connection, got {other:?}"),
        }
        // The command shell (hvc) still works: the guest is fine, only its ssh server is gone.
        assert_eq!(sh(&mut g, "echo still here"), "still here\n");
        g.shutdown();
    }
}
