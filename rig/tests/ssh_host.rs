//! The ssh transport against a real dropbear on the host (no VM): the same server the guest runs.
//!
//! Needs root, `dropbear`/`dropbearkey` (Debian `dropbear-bin`) and `unshare`. Each test starts
//! its own dropbear on a reserved 127.0.0.1 port with a fresh host key, in a private mount
//! namespace where a temporary directory is bind-mounted over `/root`, so the generated client
//! key is root's only authorized key there and the host's real `/root/.ssh` is never touched.
//! (The guest hook that starts dropbear in the guest: tests/ssh_guest_hook.rs.)
//! dropbear is also the init of a private PID namespace: when it dies, the kernel kills every
//! command it started, so no test leaves processes behind.

mod ssh_support;

use rig::guest::ssh::{
    self, ClientKey, HostKey, PortReservation, SshError, SshOptions, SshTransport,
};
use rig::guest::transport::{Transport, TransportError};
use rig::host::process::Supervised;
use rustix::process::{Pid, Signal};
use sha2::{Digest, Sha256};
use ssh_support::{require_tools, set_mode, LOCALHOST};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Server {
    dir: tempfile::TempDir,
    port: PortReservation,
    host_key: HostKey,
    client: ClientKey,
    dropbear: Option<Supervised>,
}

impl Server {
    fn start() -> Server {
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        set_mode(&home, 0o700);
        set_mode(&home.join(".ssh"), 0o700);
        let client = ClientKey::generate().unwrap();
        let ak = home.join(".ssh/authorized_keys");
        std::fs::write(&ak, client.authorized_keys()).unwrap();
        set_mode(&ak, 0o600);

        let hostkey = dir.path().join("hostkey");
        let gen = Command::new("dropbearkey")
            .args(["-t", "ed25519", "-f"])
            .arg(&hostkey)
            .output()
            .unwrap();
        assert!(
            gen.status.success(),
            "{}",
            String::from_utf8_lossy(&gen.stderr)
        );
        let public = Command::new("dropbearkey")
            .arg("-y")
            .arg("-f")
            .arg(&hostkey)
            .output()
            .unwrap();
        let public = String::from_utf8(public.stdout).unwrap();
        let line = public
            .lines()
            .find(|l| l.starts_with("ssh-"))
            .unwrap()
            .to_owned();
        // As the guest hook would print it, read back as rig reads the console.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let console = format!(
            "[ 1.0] eth0: up\nRIG-SSH-HOSTKEY {} {}\nRIG-READY\n",
            fields[0], fields[1]
        );
        let host_key = HostKey::from_console(&console).unwrap();

        let port = ssh::reserve_port().unwrap();
        let mut server = Server {
            dir,
            port,
            host_key,
            client,
            dropbear: None,
        };
        server.spawn();
        server
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("dropbear.log")
    }

    fn spawn(&mut self) {
        let script = format!(
            "mount --bind {home} /root && exec dropbear -F -E -s -r {key} -p 127.0.0.1:{port} -P {pid}",
            home = self.dir.path().join("home").display(),
            key = self.dir.path().join("hostkey").display(),
            port = self.port.port(),
            pid = self.dir.path().join("dropbear.pid").display(),
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "sh",
            "-c",
            &script,
        ]);
        self.dropbear = Some(Supervised::spawn(cmd, Some(&self.log())).unwrap());
    }

    /// The dropbear log stands in for the guest console.
    fn console_tail(&self) -> impl Fn() -> String + Send + 'static {
        let log = self.log();
        move || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "{}\n[console-tail]",
                lines[lines.len().saturating_sub(5)..].join("\n")
            )
        }
    }

    fn connect_with(
        &self,
        opts: SshOptions,
        key: &ClientKey,
        pinned: &HostKey,
    ) -> Result<SshTransport, SshError> {
        self.connect_within(Duration::from_secs(20), opts, key, pinned)
    }

    fn connect_within(
        &self,
        within: Duration,
        opts: SshOptions,
        key: &ClientKey,
        pinned: &HostKey,
    ) -> Result<SshTransport, SshError> {
        ssh::connect_with(
            opts,
            LOCALHOST,
            self.port.port(),
            key,
            pinned,
            Instant::now() + within,
            self.console_tail(),
            || None,
        )
    }

    fn connect(&self) -> SshTransport {
        self.connect_with(SshOptions::default(), &self.client, &self.host_key)
            .unwrap()
    }

    /// The listener and everything below it. dropbear puts each connection's process (and the
    /// commands it runs) into a session of its own, so the listener's process group is not enough.
    /// (Killing the namespace's init would do, but freezing needs every process.)
    fn processes(&self) -> Vec<i32> {
        match &self.dropbear {
            Some(d) => tree(d.pid() as i32),
            None => Vec::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal_all(&self.processes(), Signal::KILL);
    }
}

/// `root` and all its descendants, from /proc.
fn tree(root: i32) -> Vec<i32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`; comm may contain spaces, so split after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(
            parent_of
                .iter()
                .filter(|&&(_, pp)| pp == p)
                .map(|&(c, _)| c),
        );
        i += 1;
    }
    out
}

fn signal_all(pids: &[i32], sig: Signal) {
    for pid in pids.iter().filter_map(|&p| Pid::from_raw(p)) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn wait_for(path: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stdout_stderr_and_exit_status_are_separate() {
    let server = Server::start();
    let mut t = server.connect();
    assert_eq!(t.name(), "ssh");
    let out = t
        .run(
            "echo out; echo err >&2; echo more; exit 3",
            Duration::from_secs(20),
        )
        .unwrap();
    assert_eq!(out.stdout, "out\nmore\n");
    assert_eq!(out.stderr.as_deref(), Some("err\n"));
    assert_eq!(out.status, 3);
    // Same session again, with a large output that spans many packets and windows.
    let out = t.run("seq 1 200000", Duration::from_secs(30)).unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout.lines().count(), 200_000);
    assert_eq!(out.stdout.lines().last(), Some("200000"));
    // The login is root in the namespace's /root.
    let out = t.run("id -u; echo $HOME", Duration::from_secs(20)).unwrap();
    assert_eq!(out.stdout, "0\n/root\n");
    // A command killed by a signal reports 128 + signal, like a shell.
    let out = t.run("kill -9 $$", Duration::from_secs(20)).unwrap();
    assert_eq!(out.status, 137, "{out:?}");
}

#[test]
fn concurrent_commands_overlap() {
    let server = Server::start();
    let t = server.connect();
    let cmds: Vec<String> = (0..4).map(|i| format!("sleep 2; echo {i}")).collect();
    let jobs: Vec<(&str, Duration)> = cmds
        .iter()
        .map(|c| (c.as_str(), Duration::from_secs(30)))
        .collect();
    let started = Instant::now();
    let results = t.run_concurrent(&jobs);
    let elapsed = started.elapsed();
    assert_eq!(results.len(), 4);
    for (i, r) in results.into_iter().enumerate() {
        let out = r.unwrap();
        assert_eq!(out.stdout, format!("{i}\n"));
        assert_eq!(out.status, 0);
    }
    // Sequentially this takes 8 s.
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(4500),
        "4 × sleep 2 took {elapsed:?}"
    );
}

#[test]
fn upload_lands_with_the_right_content_and_mode() {
    let server = Server::start();
    let t = server.connect();
    let local = server.dir.path().join("payload.bin");
    // 3 MiB of varied bytes (not a repeating pattern that would hide a dropped chunk).
    let mut data = Vec::with_capacity(3 << 20);
    let mut x: u32 = 0x1234_5678;
    while data.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&local, &data).unwrap();
    let remote = server.dir.path().join("uploaded it's.bin");
    t.upload(&local, remote.to_str().unwrap(), 0o750).unwrap();
    // dropbear runs on this host, so the guest's file is visible here.
    let got = std::fs::read(&remote).unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&got)),
        hex::encode(Sha256::digest(&data))
    );
    let mode = std::fs::metadata(&remote).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o750);
    // A failing upload is an error, not a silent success.
    let err = t.upload(&local, "/nonexistent-dir/x", 0o644).unwrap_err();
    assert!(matches!(err, TransportError::Other { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent-dir/x"), "{err}");
}

#[test]
fn killing_the_server_mid_command_is_a_prompt_disconnect() {
    let mut server = Server::start();
    let mut t = server.connect();
    let started_flag = server.dir.path().join("started");
    let mut dropbear = server.dropbear.take().unwrap();
    let flag = started_flag.clone();
    let killer = std::thread::spawn(move || {
        wait_for(&flag, Duration::from_secs(20));
        // The listener and the connection's process, like QEMU dying under the guest's sshd.
        signal_all(&tree(dropbear.pid() as i32), Signal::KILL);
        dropbear.terminate();
    });
    let started = Instant::now();
    let cmd = format!("touch {}; sleep 60", started_flag.display());
    let err = t.run(&cmd, Duration::from_secs(120)).unwrap_err();
    killer.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        TransportError::Disconnected {
            command,
            last_console,
            ..
        } => {
            assert_eq!(command, &cmd);
            assert!(last_console.contains("[console-tail]"), "{err}");
        }
        other => panic!("expected Disconnected, got {other}"),
    }
    // The next command tries to reconnect; a refused connection means the forwarder (QEMU)
    // is gone, so it fails at once instead of waiting for the reconnect timeout.
    let again = Instant::now();
    let err = t.run("true", Duration::from_secs(20)).unwrap_err();
    assert!(
        again.elapsed() < Duration::from_secs(5),
        "{:?}",
        again.elapsed()
    );
    match &err {
        TransportError::Disconnected { reason, .. } => {
            assert!(reason.contains("cannot reconnect"), "{err}");
            assert!(reason.contains("connection refused"), "{err}");
        }
        other => panic!("expected Disconnected, got {other}"),
    }
    // With the server gone, connecting says why it cannot.
    let err = server
        .connect_within(
            Duration::from_secs(1),
            SshOptions::default(),
            &server.client,
            &server.host_key,
        )
        .unwrap_err();
    assert!(matches!(err, SshError::NotReady { .. }), "{err}");
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(err.to_string().contains("[console-tail]"), "{err}");
}

#[test]
fn a_hung_server_is_detected_by_silence() {
    let server = Server::start();
    let opts = SshOptions {
        keepalive_interval: Duration::from_secs(1),
        silence_limit: Duration::from_secs(3),
        reconnect_timeout: Duration::from_secs(2),
        ..SshOptions::default()
    };
    let mut t = server
        .connect_with(opts, &server.client, &server.host_key)
        .unwrap();
    let flag = server.dir.path().join("started");
    let root = server.dropbear.as_ref().unwrap().pid() as i32;
    let f = flag.clone();
    let stopper = std::thread::spawn(move || {
        wait_for(&f, Duration::from_secs(20));
        // Freeze the server like a hung guest: the TCP connection stays open, nothing answers.
        let pids = tree(root);
        signal_all(&pids, Signal::STOP);
        pids
    });
    let started = Instant::now();
    let err = t
        .run(
            &format!("touch {}; sleep 60", flag.display()),
            Duration::from_secs(120),
        )
        .unwrap_err();
    let stopped = stopper.join().unwrap();
    let took = started.elapsed();
    signal_all(&stopped, Signal::CONT);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    match &err {
        TransportError::Disconnected { reason, .. } => {
            assert!(reason.contains("sent nothing"), "{err}")
        }
        other => panic!("expected Disconnected, got {other}"),
    }
}

#[test]
fn a_command_timeout_is_reported_and_the_transport_recovers() {
    let server = Server::start();
    let mut t = server.connect();
    let started = Instant::now();
    let err = t.run("sleep 30", Duration::from_secs(1)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    match &err {
        TransportError::Timeout {
            timeout, command, ..
        } => {
            assert_eq!(*timeout, Duration::from_secs(1));
            assert_eq!(command, "sleep 30");
        }
        other => panic!("expected Timeout, got {other}"),
    }
    let out = t.run("echo again", Duration::from_secs(20)).unwrap();
    assert_eq!(out.stdout, "again\n");
}

#[test]
fn a_host_key_mismatch_is_refused() {
    let server = Server::start();
    let other = HostKey::from_openssh(&ClientKey::generate().unwrap().authorized_keys()).unwrap();
    let started = Instant::now();
    let err = server
        .connect_with(SshOptions::default(), &server.client, &other)
        .unwrap_err();
    // Refused at once, not retried until the deadline.
    assert!(started.elapsed() < Duration::from_secs(10));
    match &err {
        SshError::HostKeyMismatch {
            expected, actual, ..
        } => {
            assert!(expected.contains(&other.fingerprint()), "{err}");
            assert!(actual.contains(&server.host_key.fingerprint()), "{err}");
        }
        e => panic!("expected HostKeyMismatch, got {e}"),
    }
}

#[test]
fn a_wrong_client_key_is_an_auth_failure() {
    let server = Server::start();
    let stranger = ClientKey::generate().unwrap();
    let err = server
        .connect_with(SshOptions::default(), &stranger, &server.host_key)
        .unwrap_err();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains(&stranger.fingerprint()), "{err}");
}
