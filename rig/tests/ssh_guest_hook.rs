//! rig's guest ssh hook (`images/init/etc/rig/init.d/50-ssh.sh`) run on the host, as the guest's
//! init runs it, against the ssh transport. Needs what tests/ssh_host.rs needs (root, dropbear,
//! unshare).

mod ssh_support;

use rig::guest::ssh::{self, ClientKey, HostKey, PortReservation, SshError};
use rig::guest::transport::Transport;
use rig::host::process::Supervised;
use ssh_support::{require_tools, set_mode, LOCALHOST};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The guest hook `images/init/etc/rig/init.d/50-ssh.sh`, run on the host as the guest's init
/// would run it: in private mount and PID namespaces with temporary directories over `/root` and
/// `/run` and a fake `/proc/cmdline`, and a namespace init that outlives the hook like the guest's.
struct Hook {
    dir: tempfile::TempDir,
    port: PortReservation,
    _sandbox: Supervised,
}

impl Hook {
    /// `cmdline` is the fake kernel command line; `authorized_keys`, when given, is put in the
    /// fake `/root/.ssh/` beforehand (as `append_files` does for the real guest).
    fn run(cmdline: &str, authorized_keys: Option<&str>) -> Hook {
        require_tools();
        let hook =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/init/etc/rig/init.d/50-ssh.sh");
        assert!(hook.is_file(), "{} is missing", hook.display());
        let dir = tempfile::tempdir().unwrap();
        for d in ["root", "run"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        if let Some(ak) = authorized_keys {
            // As the initramfs appends it: directories 0755, file 0600.
            let ssh_dir = dir.path().join("root/.ssh");
            std::fs::create_dir(&ssh_dir).unwrap();
            set_mode(&ssh_dir, 0o755);
            std::fs::write(ssh_dir.join("authorized_keys"), ak).unwrap();
        }
        std::fs::write(dir.path().join("cmdline"), format!("{cmdline}\n")).unwrap();
        let port = ssh::reserve_port().unwrap();
        let d = dir.path().display();
        let script = format!(
            "mount --bind {d}/cmdline /proc/cmdline && mount --bind {d}/root /root && \
             mount --bind {d}/run /run && RIG_SSH_PORT={port} sh {hook}; echo \"HOOK-EXIT $?\"; \
             exec sleep 100000",
            port = port.port(),
            hook = hook.display(),
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
        let sandbox = Supervised::spawn(cmd, Some(&dir.path().join("console.log"))).unwrap();
        let hook = Hook {
            dir,
            port,
            _sandbox: sandbox,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !hook.console().contains("HOOK-EXIT") {
            assert!(
                Instant::now() < deadline,
                "the hook did not finish:\n{}",
                hook.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        hook
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

#[test]
fn guest_hook_with_a_cmdline_key_serves_ssh_and_announces_its_host_key() {
    let key = ClientKey::generate().unwrap();
    let hook = Hook::run(
        &format!("console=ttyS0 {} rig.ssh=1", key.kernel_cmdline_param()),
        None,
    );
    let console = hook.console();
    assert!(console.contains("HOOK-EXIT 0"), "{console}");
    let pinned = HostKey::from_console(&console).unwrap();
    assert_eq!(pinned.algorithm(), "ssh-ed25519");
    let log = hook.dir.path().join("console.log");
    let mut t = ssh::connect(
        LOCALHOST,
        hook.port.port(),
        &key,
        &pinned,
        Instant::now() + Duration::from_secs(20),
        move || std::fs::read_to_string(&log).unwrap_or_default(),
    )
    .unwrap();
    let out = t
        .run(
            "stat -c '%a' /root/.ssh /root/.ssh/authorized_keys",
            Duration::from_secs(20),
        )
        .unwrap();
    assert_eq!(out.stdout, "700\n600\n");
}

#[test]
fn guest_hook_with_an_appended_authorized_keys_file_serves_ssh() {
    let key = ClientKey::generate().unwrap();
    let hook = Hook::run("console=ttyS0 rig.ssh=1", Some(&key.authorized_keys()));
    let console = hook.console();
    let pinned = HostKey::from_console(&console).unwrap();
    let mut t = ssh::connect(
        LOCALHOST,
        hook.port.port(),
        &key,
        &pinned,
        Instant::now() + Duration::from_secs(20),
        String::new,
    )
    .unwrap();
    assert_eq!(
        t.run("echo ok", Duration::from_secs(20)).unwrap().stdout,
        "ok\n"
    );
    // Another client key is not let in.
    let stranger = ClientKey::generate().unwrap();
    let err = ssh::connect(
        LOCALHOST,
        hook.port.port(),
        &stranger,
        &pinned,
        Instant::now() + Duration::from_secs(20),
        String::new,
    )
    .unwrap_err();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{err}");
}

#[test]
fn guest_hook_does_nothing_unless_ssh_is_asked_for() {
    let hook = Hook::run("console=ttyS0 rig.ssh=1", None);
    let console = hook.console();
    assert!(console.contains("HOOK-EXIT 0"), "{console}");
    assert!(!console.contains("RIG-SSH"), "{console}");
    assert!(!hook.dir.path().join("run/rig-ssh").exists());
    let err = HostKey::from_console(&console).unwrap_err();
    assert!(matches!(err, SshError::NoHostKeyMarker { .. }), "{err}");
}
