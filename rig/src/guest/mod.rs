//! A booted guest, end to end: host tools present, kernel and initramfs provisioned, accelerator
//! chosen, VM booted, transports connected. The CLI, the scenario engine, the benchmarks and the
//! VM tests all start guests through [`Guest::start`].
//!
//! Ways in: the command protocol over the command shell on the virtio console hvc0 ([`hvc_shell`]) is always there,
//! also when the network is gone; ssh ([`ssh`]) adds separate stderr, concurrency and uploads.
//! Both implement [`transport::Transport`].

pub mod hvc_shell;
pub mod ssh;
pub mod transport;

use crate::host::artifacts::RunDir;
use crate::host::board::Board;
use crate::host::cache::Cache;
use crate::host::doctor::{self, Need, SetupError};
use crate::host::events::{Event, Events};
use crate::machine::accel::{self, AccelChoice, AccelDecision};
use crate::machine::vm::{Vm, VmError};
use crate::machine::vm_config::VmConfig;
use crate::provision::image::ImageError;
use crate::provision::{self, BootImage, ProvisionError};
use hvc_shell::HvcTransport;
use std::time::Duration;
use transport::{CommandOutput, Transport, TransportError, Via};

#[derive(Debug, Clone)]
pub struct GuestOptions {
    pub board: Board,
    pub kernel: String,
    pub accel: AccelChoice,
    /// Also bring up ssh (dropbear in the guest, a forwarded loopback port, per-run keys).
    pub ssh: bool,
    pub extra_cmdline: Vec<String>,
    pub memory_mib: u64,
    /// Install missing host tools with apt when possible (Debian/Ubuntu as root or with sudo).
    pub auto_setup: bool,
    /// Devices added to the board (a scenario's `devices:`).
    pub devices: Vec<crate::machine::qemu::ExtraDevice>,
    /// Start from this saved post-boot state instead of booting (hvc only: `ssh` must be
    /// off). See [`crate::machine::snapshot`].
    pub restore: Option<crate::machine::snapshot::Snapshot>,
    /// Free PCIe root ports on the board for hot-plug (`rp0`..): all of them by default; a
    /// scenario that hot-plugs nothing boots without (each costs boot time: pciehp probes it).
    pub hotplug_root_ports: usize,
    /// Let the guest reach the host's network ([`crate::scenario::Feature::OutboundNetwork`]);
    /// off: QEMU's user-mode network is `restrict=on`.
    pub outbound_network: bool,
}

impl GuestOptions {
    pub fn new(board: Board, kernel: &str) -> Self {
        GuestOptions {
            board,
            kernel: kernel.into(),
            accel: AccelChoice::Auto,
            ssh: false,
            extra_cmdline: Vec::new(),
            memory_mib: crate::host::board::DEFAULT_MEMORY_MIB,
            auto_setup: true,
            devices: Vec::new(),
            restore: None,
            hotplug_root_ports: crate::host::board::HOTPLUG_ROOT_PORTS,
            outbound_network: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("host tools missing: {missing}")]
    MissingTools {
        missing: String,
        #[source]
        source: SetupError,
    },
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

/// Makes sure the host tools for `needs` are there, installing them with apt when allowed.
pub fn ensure_host_tools(
    needs: &[Need],
    auto_setup: bool,
    cache: &Cache,
    events: &Events,
) -> Result<(), GuestError> {
    let statuses = doctor::check_all();
    let missing = doctor::missing_packages(&statuses, needs);
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !auto_setup {
        return Err(GuestError::MissingTools {
            missing: list.clone(),
            source: SetupError::NotRoot(missing),
        });
    }
    events.emit(Event::StepStarted {
        step: "setup".into(),
        detail: format!("installing missing host packages: {list}"),
    });
    let start = std::time::Instant::now();
    let replaced = doctor::install(&missing, &setup_log(cache)).map_err(|source| {
        GuestError::MissingTools {
            missing: list,
            source,
        }
    })?;
    for r in &replaced {
        events.emit(Event::Warning {
            message: r.to_string(),
        });
    }
    events.emit(Event::StepFinished {
        step: "setup".into(),
        elapsed: start.elapsed(),
        cached: false,
    });
    Ok(())
}

/// Where apt's transcript goes: a fresh file under the cache's `logs/`.
pub fn setup_log(cache: &Cache) -> std::path::PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    cache.root().join("logs").join(format!("setup-{stamp}.log"))
}

/// Host tool needs for booting `kernel`.
pub fn needs_for_kernel(kernel: &str) -> Vec<Need> {
    if provision::KernelSpec::parse(kernel).is_ok_and(|k| k.is_built()) {
        vec![Need::Core, Need::Kbuild]
    } else {
        vec![Need::Core]
    }
}

/// Provisions everything and chooses the accelerator, without booting.
pub fn prepare(
    opts: &GuestOptions,
    cache: &Cache,
    events: &Events,
) -> Result<(BootImage, AccelDecision), GuestError> {
    provision::check_kernel_name(&opts.kernel).map_err(|source| GuestError::Image {
        kernel: opts.kernel.clone(),
        board: opts.board,
        source: Box::new(source),
    })?;
    ensure_host_tools(
        &needs_for_kernel(&opts.kernel),
        opts.auto_setup,
        cache,
        events,
    )?;
    let image = provision::boot_image(&opts.kernel, opts.board.arch(), cache, events).map_err(
        |source| GuestError::Image {
            kernel: opts.kernel.clone(),
            board: opts.board,
            source: Box::new(source),
        },
    )?;
    let accel = accel::choose(opts.accel, opts.board, &image, cache, events);
    Ok((image, accel))
}

pub struct Guest {
    pub vm: Vm,
    pub image: BootImage,
    pub accel: AccelDecision,
    pub ssh: Option<ssh::SshTransport>,
    // Keeps the forwarded port reserved for as long as the VM lives.
    _port: Option<ssh::PortReservation>,
}

impl Guest {
    pub fn start(
        opts: &GuestOptions,
        cache: &Cache,
        run_dir: &RunDir,
        events: &Events,
    ) -> Result<Guest, GuestError> {
        let (image, accel) = prepare(opts, cache, events)?;
        Self::boot(opts, image, accel, run_dir, events)
    }

    /// Boots an already-provisioned image (benchmarks and repeats skip `prepare`).
    pub fn boot(
        opts: &GuestOptions,
        image: BootImage,
        accel: AccelDecision,
        run_dir: &RunDir,
        events: &Events,
    ) -> Result<Guest, GuestError> {
        let mut cfg = VmConfig::new(opts.board, accel.accel, image.clone());
        cfg.extra_cmdline = opts.extra_cmdline.clone();
        cfg.memory_mib = opts.memory_mib;
        cfg.devices = opts.devices.clone();
        cfg.hotplug_root_ports = opts.hotplug_root_ports;
        cfg.outbound_network = opts.outbound_network;
        let ssh_err = |source| GuestError::Ssh {
            artifacts: run_dir.path().to_path_buf(),
            source: Box::new(source),
        };
        let ssh_setup = if opts.ssh {
            Some(SshSetup::prepare(&image, run_dir).map_err(|e| match e {
                SetupFail::Ssh(e) => ssh_err(e),
                SetupFail::Image(source) => GuestError::Image {
                    kernel: opts.kernel.clone(),
                    board: opts.board,
                    source: Box::new(source.into()),
                },
            })?)
        } else {
            None
        };
        if let Some(s) = &ssh_setup {
            cfg.ssh_forward_port = Some(s.port.port());
            cfg.initrd_override = Some(s.initrd.clone());
            cfg.extra_cmdline.push("rig.ssh=1".into());
        }
        if opts.restore.is_some() && opts.ssh {
            return Err(GuestError::Vm(Box::new(VmError::Snapshot(
                "a guest restored from a saved state is reached over hvc only (its ssh host \
                 key would be shared by every run)"
                    .into(),
            ))));
        }
        cfg.restore = opts.restore.clone();
        let mut vm = Vm::boot(&cfg, run_dir, events)?;
        if cfg.restore.is_some() {
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
            image,
            accel,
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
