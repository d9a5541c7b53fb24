//! A guest to talk to: a prepared machine ([`crate::machine::spec::PreparedMachine`], see
//! [`crate::prepare`]) booted, its transports connected, shut down. The CLI, the scenario engine,
//! the benchmarks and the VM tests all boot guests through [`Guest::boot`].
//!
//! Ways in: the command protocol over the command shell on the virtio console hvc0 ([`hvc_shell`]) is always there,
//! also when the network is gone; ssh ([`ssh`]) adds separate stderr, concurrency and uploads.
//! Both implement [`transport::Transport`].

pub mod hvc_shell;
pub mod ssh;
pub mod transport;

use crate::host::artifacts::RunDir;
use crate::host::board::Board;
use crate::host::events::{Event, Events};
use crate::machine::spec::PreparedMachine;
use crate::machine::vm::{Vm, VmError};
use crate::machine::vm_config::VmConfig;
use crate::provision::image::ImageError;
use crate::provision::{BootImage, ProvisionError};
use hvc_shell::HvcTransport;
use std::time::Duration;
use transport::{CommandOutput, Transport, TransportError, Via};

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The boot's own addition to the initramfs (ssh's key) failed.
    #[error("cannot provision kernel `{kernel}` for {board}")]
    Image {
        kernel: String,
        board: Board,
        #[source]
        source: Box<ProvisionError>,
    },
    #[error(transparent)]
    Vm(Box<VmError>),
    #[error("ssh setup failed (artifacts: {artifacts})")]
    Ssh {
        artifacts: std::path::PathBuf,
        #[source]
        source: Box<ssh::SshError>,
    },
    #[error("guest command failed (artifacts: {artifacts})")]
    Transport {
        artifacts: std::path::PathBuf,
        #[source]
        source: Box<TransportError>,
    },
    #[error("--transport ssh was asked for but the guest was booted without ssh")]
    NoSsh,
}

impl From<VmError> for GuestError {
    fn from(e: VmError) -> Self {
        GuestError::Vm(Box::new(e))
    }
}

pub struct Guest {
    pub vm: Vm,
    pub ssh: Option<ssh::SshTransport>,
    // Keeps the forwarded port reserved for as long as the VM lives.
    _port: Option<ssh::PortReservation>,
}

impl Guest {
    /// Boots `machine` (or restores it, when its spec says so) and connects its transports.
    pub fn boot(
        machine: &PreparedMachine,
        run_dir: &RunDir,
        events: &Events,
    ) -> Result<Guest, GuestError> {
        let spec = &machine.spec;
        let mut cfg = VmConfig::new(spec.clone(), machine.accel.accel, machine.image.clone());
        let ssh_err = |source| GuestError::Ssh {
            artifacts: run_dir.path().to_path_buf(),
            source: Box::new(source),
        };
        let ssh_setup = if spec.ssh() {
            Some(
                SshSetup::prepare(&machine.image, run_dir).map_err(|e| match e {
                    SetupFail::Ssh(e) => ssh_err(e),
                    SetupFail::Image(source) => GuestError::Image {
                        kernel: spec.kernel.clone(),
                        board: spec.board,
                        source: Box::new(source.into()),
                    },
                })?,
            )
        } else {
            None
        };
        if let Some(s) = &ssh_setup {
            cfg.ssh_forward_port = Some(s.port.port());
            cfg.initrd_override = Some(s.initrd.clone());
            cfg.spec.cmdline.push("rig.ssh=1".into());
        }
        let mut vm = Vm::boot(&cfg, run_dir, events)?;
        if spec.restore().is_some() {
            reseed_restored(&mut vm).map_err(|source| GuestError::Transport {
                artifacts: run_dir.path().to_path_buf(),
                source: Box::new(source),
            })?;
        }
        let (ssh, port) = match ssh_setup {
            None => (None, None),
            Some(s) => {
                let t = s.connect(&mut vm).map_err(ssh_err)?;
                (Some(t), Some(s.port))
            }
        };
        Ok(Guest {
            vm,
            ssh,
            _port: port,
        })
    }

    /// Runs a guest command over the chosen transport.
    pub fn run(
        &mut self,
        command: &str,
        timeout: Duration,
        via: Via,
    ) -> Result<CommandOutput, GuestError> {
        let artifacts = self.vm.run_dir().path().to_path_buf();
        let events = self.vm.events().clone();
        events.emit(Event::GuestCommand {
            command: command.into(),
        });
        let start = std::time::Instant::now();
        let out = match via {
            Via::Hvc => HvcTransport::of(&mut self.vm).run(command, timeout),
            Via::Ssh => {
                let ssh = self.ssh.as_mut().ok_or(GuestError::NoSsh)?;
                ssh.run(command, timeout)
            }
        }
        .map_err(|source| GuestError::Transport {
            artifacts,
            source: Box::new(source),
        })?;
        events.emit(Event::GuestCommandDone {
            command: command.into(),
            status: out.status,
            elapsed: start.elapsed(),
        });
        Ok(out)
    }

    pub fn shutdown(self) {
        drop(self.ssh);
        self.vm.shutdown();
    }
}

/// Mixes fresh host entropy into a restored guest's pool (every restored run starts with the
/// saved CRNG state) and waits until the CRNG has reseeded from it
/// ([`crate::machine::snapshot::reseed_wait`]), proving on the way that the shell answers.
fn reseed_restored(vm: &mut Vm) -> Result<(), TransportError> {
    let noise = (0..4).map(|_| hvc_shell::new_token()).collect::<String>();
    let timeout = vm.timeouts.command;
    let fail = |what: &str, out: &transport::CommandOutput| TransportError::Other {
        transport: "hvc",
        message: format!(
            "{what} after the restore: status {}, output `{}`",
            out.status,
            out.stdout.trim()
        ),
    };
    let out = HvcTransport::of(vm).run(
        &format!("printf {noise} >/dev/urandom && cat /proc/uptime"),
        timeout,
    )?;
    let uptime = out
        .stdout
        .split_whitespace()
        .next()
        .and_then(|u| u.parse::<f64>().ok());
    let Some(uptime) = uptime.filter(|_| out.status == 0) else {
        return Err(fail("writing to /dev/urandom", &out));
    };
    // The kernel's schedule, not a poll: nothing in the guest tells when the CRNG reseeded.
    let wait = crate::machine::snapshot::reseed_wait(uptime);
    let out = HvcTransport::of(vm).run(
        &format!(
            "sleep {:.1} && head -c 1 /dev/urandom >/dev/null",
            wait.as_secs_f64()
        ),
        timeout + wait,
    )?;
    if out.status != 0 {
        return Err(fail("waiting for the CRNG's reseed", &out));
    }
    Ok(())
}

enum SetupFail {
    Ssh(ssh::SshError),
    Image(ImageError),
}

/// Per-run ssh material: a fresh client key, a reserved loopback port, and an initrd with the
/// public key added.
struct SshSetup {
    key: ssh::ClientKey,
    port: ssh::PortReservation,
    initrd: std::path::PathBuf,
}

impl SshSetup {
    fn prepare(image: &BootImage, run_dir: &RunDir) -> Result<SshSetup, SetupFail> {
        let key = ssh::ClientKey::generate().map_err(SetupFail::Ssh)?;
        let port = ssh::reserve_port().map_err(SetupFail::Ssh)?;
        let initrd = run_dir.file("initrd-ssh.img");
        let files = [crate::provision::image::initramfs::GuestFile {
            path: "/root/.ssh/authorized_keys".into(),
            contents: key.authorized_keys().into_bytes(),
            mode: 0o600,
        }];
        crate::provision::image::initramfs::append_files(&image.initrd, &files, &initrd)
            .map_err(SetupFail::Image)?;
        Ok(SshSetup { key, port, initrd })
    }

    /// Pins the host key the guest printed on the console and logs in.
    fn connect(&self, vm: &mut Vm) -> Result<ssh::SshTransport, ssh::SshError> {
        let console = std::fs::read(vm.run_dir().console_log()).unwrap_or_default();
        let pinned = ssh::HostKey::from_console_bytes(&console)?;
        let tail = vm.console().tail();
        let deadline = std::time::Instant::now() + vm.timeouts.boot;
        ssh::connect_with(
            ssh::SshOptions::default(),
            std::net::IpAddr::from([127, 0, 0, 1]),
            self.port.port(),
            &self.key,
            &pinned,
            deadline,
            move || tail.last_lines(30),
            || vm.exited(),
        )
    }
}
