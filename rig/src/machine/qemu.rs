//! QEMU command lines and kernel command lines, as small pure functions.
//!
//! [`argv`] turns a [`QemuConfig`] into the full argument vector (logged to the run's `qemu.argv`
//! before spawning); [`kernel_cmdline`] builds and checks the kernel command line.

use crate::host::board::{Board, DEFAULT_MEMORY_MIB, DIMM_SLOTS};
use std::path::PathBuf;

/// The accelerator a VM runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Everything that determines a QEMU invocation.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub board: Board,
    pub accel: Accel,
    /// `None`: no kernel (a paused `-S` machine for QMP tests).
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub memory_mib: u64,
    /// Upper bound for hot-plugged memory (`maxmem`).
    pub max_memory_mib: u64,
    pub smp: u32,
    /// The serial console's unix socket (QEMU is the server; rig connects). `None`: QEMU's
    /// stdio (bare QEMU in benchmarks).
    pub console_socket: Option<PathBuf>,
    /// The command shell's virtio console (the guest's `/dev/hvc0`) on a connected socket QEMU
    /// inherits as this descriptor ([`super::channel`]). `None`: the device is there, its
    /// output discarded (bare QEMU in benchmarks boots the same hardware).
    pub shell_fd: Option<i32>,
    /// `None`: no QMP monitor.
    pub qmp_socket: Option<PathBuf>,
    /// Host port on 127.0.0.1 forwarded to the guest's port 22.
    pub ssh_forward_port: Option<u16>,
    /// PCIe root ports left free for hot-plug.
    pub hotplug_root_ports: usize,
    /// Let the guest open connections through the user-mode network (to the host's own
    /// services and beyond). Off: `restrict=on`, the guest reaches nothing outside itself;
    /// `hostfwd` (rig's ssh into the guest) still works.
    pub outbound_network: bool,
    /// Confine QEMU with seccomp ([`SANDBOX`]).
    pub sandbox: bool,
    /// Start paused (`-S`).
    pub paused: bool,
    /// Devices a scenario adds to the board.
    pub devices: Vec<ExtraDevice>,
    /// `-name`: the run's marker (`rig-<run id>`), so leak checks can tell this run's QEMU from
    /// any other. Letters, digits, `.`, `_`, `-` only.
    pub name: Option<String>,
    /// Wait for a migration stream (`-incoming defer`, then QMP `migrate-incoming`).
    pub incoming_defer: bool,
    /// `-dtb`: the device tree to boot with instead of QEMU's own ([`super::dtb`]).
    pub dtb: Option<PathBuf>,
    /// The dump monitor's socket ([`super::vmcore`]): with it, QEMU also gets the board's
    /// pvpanic device and pauses a panicked guest instead of resetting it.
    pub vmcore_socket: Option<PathBuf>,
}

/// A device a scenario adds to the board, present from boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraDevice {
    /// `-device DRIVER[,id=ID][,KEY=VALUE…]` on the root bus.
    Device {
        driver: String,
        id: Option<String>,
        props: Vec<(String, String)>,
    },
    /// A RAM backend `mem-ID` of `size_mib` and `-device virtio-mem-pci,id=ID` over it, with
    /// nothing plugged (`requested-size=0`): QMP `qom-set` of `requested-size` plugs memory.
    VirtioMem { id: String, size_mib: u64 },
}

impl ExtraDevice {
    /// The argv words for this device.
    pub fn args(&self) -> Vec<String> {
        match self {
            ExtraDevice::Device { driver, id, props } => {
                let mut d = driver.clone();
                if let Some(id) = id {
                    d.push_str(&format!(",id={id}"));
                }
                for (k, v) in props {
                    d.push_str(&format!(",{k}={v}"));
                }
                vec!["-device".into(), d]
            }
            ExtraDevice::VirtioMem { id, size_mib } => vec![
                "-object".into(),
                format!("memory-backend-ram,id=mem-{id},size={size_mib}M"),
                "-device".into(),
                format!("virtio-mem-pci,id={id},memdev=mem-{id},requested-size=0"),
            ],
        }
    }
}

impl QemuConfig {
    /// Defaults for `board`: [`DEFAULT_MEMORY_MIB`], room for 4 DIMMs up to 4 GiB, 2 vCPUs, 4 free root ports,
    /// named after this process's run ([`crate::host::artifacts::run_id`]).
    pub fn new(board: Board, accel: Accel, console_socket: PathBuf, qmp_socket: PathBuf) -> Self {
        QemuConfig {
            board,
            accel,
            kernel: None,
            initrd: None,
            cmdline: String::new(),
            memory_mib: DEFAULT_MEMORY_MIB,
            max_memory_mib: crate::host::board::MAX_MEMORY_MIB,
            smp: 2,
            console_socket: Some(console_socket),
            shell_fd: None,
            qmp_socket: Some(qmp_socket),
            ssh_forward_port: None,
            hotplug_root_ports: crate::host::board::HOTPLUG_ROOT_PORTS,
            outbound_network: false,
            sandbox: true,
            paused: false,
            devices: Vec::new(),
            name: Some(crate::host::artifacts::qemu_name(
                &crate::host::artifacts::run_id(),
            )),
            incoming_defer: false,
            dtb: None,
            vmcore_socket: None,
        }
    }
}

/// QEMU's seccomp filter (`-sandbox`, QEMU 7.2): no obsolete system calls, no setuid/setgid
/// (privileges cannot be raised), no fork/exec (nothing a guest or a QMP command makes QEMU do
/// can start a host program: migration goes through a unix socket rig serves, never `exec:`),
/// no scheduler or CPU affinity changes.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// The board's pvpanic device: the ISA one (found through ACPI) on q35; on virt the PCI one, in
/// the last slot of the root bus so the slots other devices get stay as they were.
pub fn pvpanic_device(board: Board) -> &'static str {
    match board {
        Board::X86_64Q35 => "pvpanic",
        Board::Arm64Virt => "pvpanic-pci,bus=pcie.0,addr=0x1f",
    }
}

/// The full QEMU argument vector (program first).
pub fn argv(cfg: &QemuConfig) -> Vec<String> {
    let mut a: Vec<String> = vec![cfg.board.qemu_binary().into()];
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    if let Some(name) = &cfg.name {
        push(&["-name", name]);
    }
    // A guest panic (panic=-1) reboots, and -no-reboot turns that into a QEMU exit.
    push(&["-no-reboot"]);
    if cfg.sandbox {
        push(&["-sandbox", SANDBOX]);
    }
    match cfg.board {
        Board::X86_64Q35 => push(&["-machine", "q35"]),
        Board::Arm64Virt => push(&["-machine", "virt"]),
    }
    if let Some(firmware) = cfg.board.firmware() {
        push(&["-bios", firmware]);
    }
    let cpu = match cfg.accel {
        Accel::Kvm => "host",
        Accel::Tcg => cfg.board.tcg_cpu(),
    };
    let accel = match cfg.accel {
        Accel::Kvm => "kvm".to_string(),
        Accel::Tcg => "tcg,thread=multi".to_string(),
    };
    push(&["-accel", &accel, "-cpu", cpu]);
    let smp = cfg.smp.to_string();
    push(&["-smp", &smp]);
    let mem = format!(
        "{}M,slots={},maxmem={}M",
        cfg.memory_mib, DIMM_SLOTS, cfg.max_memory_mib
    );
    push(&["-m", &mem]);

    let console = match &cfg.console_socket {
        Some(p) => format!("socket,id=con0,path={},server=on,wait=on", p.display()),
        None => "stdio,id=con0,signal=off".to_string(),
    };
    push(&["-chardev", &console, "-serial", "chardev:con0"]);
    if let Some(q) = &cfg.qmp_socket {
        let qmp = format!("socket,id=qmp0,path={},server=on,wait=off", q.display());
        push(&["-chardev", &qmp, "-mon", "chardev=qmp0,mode=control"]);
    }
    if let Some(d) = &cfg.vmcore_socket {
        let qmp = format!("socket,id=qmp1,path={},server=on,wait=off", d.display());
        push(&["-chardev", &qmp, "-mon", "chardev=qmp1,mode=control"]);
        push(&[
            "-device",
            pvpanic_device(cfg.board),
            "-action",
            "panic=pause",
        ]);
    }

    for n in 0..cfg.hotplug_root_ports {
        let id = Board::root_port_id(n);
        let dev = format!("pcie-root-port,id={id},bus=pcie.0,chassis={},slot=0", n + 1);
        push(&["-device", &dev]);
    }

    let mut netdev = "user,id=net0".to_string();
    if !cfg.outbound_network {
        netdev.push_str(",restrict=on");
    }
    if let Some(port) = cfg.ssh_forward_port {
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{port}-:22"));
    }
    push(&["-netdev", &netdev]);
    // No option ROM: rig boots with -kernel, so iPXE is not needed.
    push(&["-device", "virtio-net-pci,netdev=net0,romfile="]);
    push(&["-device", "virtio-rng-pci"]);
    // The command shell's channel, last so the devices above keep their PCI addresses. No
    // kernel message goes there: the kernel's console is the UART (`console=` names it).
    // `ioeventfd=off`: under TCG an ioeventfd defers every queue notification to QEMU's main
    // loop, and the guest's hvc driver spins after each write until it is handled (127 KB of
    // `dmesg`, written line by line, took 5.2 s on a loaded host; 0.8 s without).
    let shell = match cfg.shell_fd {
        Some(fd) => format!("socket,id=shell0,fd={fd}"),
        None => "null,id=shell0".to_string(),
    };
    push(&["-device", "virtio-serial-pci,id=vser0,ioeventfd=off"]);
    push(&[
        "-chardev",
        &shell,
        "-device",
        "virtconsole,chardev=shell0,bus=vser0.0",
    ]);
    // A scenario's devices, after rig's own, so those keep their PCI addresses.
    for d in &cfg.devices {
        a.extend(d.args());
    }
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));

    if let Some(k) = &cfg.kernel {
        let k = k.display().to_string();
        push(&["-kernel", &k]);
        if let Some(i) = &cfg.initrd {
            let i = i.display().to_string();
            push(&["-initrd", &i]);
        }
        push(&["-append", &cfg.cmdline]);
        if let Some(d) = &cfg.dtb {
            let d = d.display().to_string();
            push(&["-dtb", &d]);
        }
    }
    if cfg.paused {
        push(&["-S"]);
    }
    if cfg.incoming_defer {
        push(&["-incoming", "defer"]);
    }
    a
}

/// QEMU's user-mode network set up by the kernel's own IP autoconfiguration (`CONFIG_IP_PNP`),
/// before /init runs: lo and eth0 up, 10.0.2.15/24, default route via 10.0.2.2. Without `ip=`
/// on its command line, init sets up the same itself with iproute2's `ip -batch`, a dynamic
/// binary whose one exec took 0.12 s of every TCG boot.
pub const KERNEL_IP_CONFIG: &str = "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off";

/// The parameters rig adds for what the kernel's `.config` (`CONFIG_X` → value) offers, before
/// the scenario's and the user's own (which override them).
pub fn kernel_config_params(config: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let has = |option: &str| config.get(option).is_some_and(|v| v == "y");
    let mut params = Vec::new();
    if has("CONFIG_IP_PNP") {
        params.push(KERNEL_IP_CONFIG.to_string());
    }
    params
}

/// The kernel command line limit shared by x86 and arm64 (COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("kernel parameter `{param}` is malformed: {why}")]
    Malformed { param: String, why: &'static str },
    #[error("kernel command line is {len} bytes, over the limit of {max}")]
    TooLong { len: usize, max: usize },
}

/// rig's kernel command line for `board`, plus `extra` parameters (scenario or user additions).
///
/// Parameters are checked as the line is built: no whitespace or control characters outside
/// double quotes, balanced quotes, no empty parameter. A later duplicate key overrides an earlier one.
pub fn kernel_cmdline(board: Board, extra: &[String]) -> Result<String, CmdlineError> {
    let base = [
        format!("console={}", board.console_device()),
        "panic=-1".into(),
        "oops=panic".into(),
        "printk.time=1".into(),
        "loglevel=7".into(),
        "rdinit=/init".into(),
        // 256 legacy BSD pty pairs nobody uses: registering them took 0.3 s (x86) to 1.7 s
        // (arm64) of every TCG boot of rig's debug kernels (`initcall_debug`).
        "pty.legacy_count=0".into(),
        // New DIMMs stay offline until a scenario onlines them (movable or not).
        "memhp_default_state=offline".into(),
    ];
    let mut params: Vec<String> = Vec::new();
    for p in base.iter().chain(extra.iter()) {
        check_param(p)?;
        let key = p.split('=').next().unwrap_or(p);
        params.retain(|q| q.split('=').next().unwrap_or(q) != key);
        params.push(p.clone());
    }
    let line = params.join(" ");
    if line.len() >= CMDLINE_MAX {
        return Err(CmdlineError::TooLong {
            len: line.len(),
            max: CMDLINE_MAX,
        });
    }
    Ok(line)
}

fn check_param(p: &str) -> Result<(), CmdlineError> {
    let bad = |why| {
        Err(CmdlineError::Malformed {
            param: p.to_string(),
            why,
        })
    };
    if p.is_empty() {
        return bad("empty parameter");
    }
    if p.starts_with('=') {
        return bad("no name before `=`");
    }
    // The kernel echoes its command line on the console while it boots: a parameter holding
    // one of rig's console markers (`RIG-READY …`) would forge it.
    if p.contains("RIG-") {
        return bad("holds a rig console marker (`RIG-…`)");
    }
    let mut in_quotes = false;
    for c in p.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c.is_control() => return bad("control character"),
            c if c.is_whitespace() && !in_quotes => return bad("whitespace outside double quotes"),
            _ => {}
        }
    }
    if in_quotes {
        return bad("unbalanced double quote");
    }
    Ok(())
}

#[cfg(test)]
#[path = "qemu_tests.rs"]
pub(crate) mod tests;
