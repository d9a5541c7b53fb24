//! What a VM boots and how ([`VmConfig`]), and the kernel parameters a boot adds.

use crate::host::board::Board;
use crate::machine::qemu::{self, Accel};
use crate::machine::snapshot::Snapshot;
use crate::machine::timeouts::Timeouts;
use crate::provision::BootImage;
use std::path::PathBuf;

/// What to boot and how.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub board: Board,
    pub accel: Accel,
    pub image: BootImage,
    /// Boot this initrd instead of `image.initrd` (per-run additions such as ssh keys).
    pub initrd_override: Option<PathBuf>,
    pub extra_cmdline: Vec<String>,
    pub memory_mib: u64,
    pub smp: u32,
    pub ssh_forward_port: Option<u16>,
    pub timeouts: Timeouts,
    /// Devices a scenario adds to the board.
    pub devices: Vec<qemu::ExtraDevice>,
    /// Start from this saved post-boot state instead of booting ([`super::snapshot`]).
    pub restore: Option<Snapshot>,
    /// Free PCIe root ports for hot-plug ([`qemu::QemuConfig::hotplug_root_ports`]).
    pub hotplug_root_ports: usize,
    /// [`qemu::QemuConfig::outbound_network`].
    pub outbound_network: bool,
    /// Run this program with QEMU's argv instead of the board's `qemu-system-*`: the seam for
    /// the tests' fake QEMU (`rig/tests/fake_qemu/`). Neither the CLI nor a scenario sets it.
    pub qemu_program: Option<PathBuf>,
}

impl VmConfig {
    pub fn new(board: Board, accel: Accel, image: BootImage) -> Self {
        VmConfig {
            board,
            accel,
            image,
            initrd_override: None,
            extra_cmdline: Vec::new(),
            memory_mib: crate::host::board::DEFAULT_MEMORY_MIB,
            smp: 2,
            ssh_forward_port: None,
            timeouts: Timeouts::for_machine(accel, board),
            devices: Vec::new(),
            restore: None,
            hotplug_root_ports: crate::host::board::HOTPLUG_ROOT_PORTS,
            outbound_network: false,
            qemu_program: None,
        }
    }
}

/// The kernel parameters a boot of `image` adds to rig's own: those its config calls for
/// ([`qemu::kernel_config_params`]; a config rig cannot read gets none, and init does their work),
/// then `extra`.
pub fn boot_params(image: &BootImage, extra: &[String]) -> Vec<String> {
    let config = image.kernel.config_options().unwrap_or_default();
    let mut params = qemu::kernel_config_params(&config);
    params.extend(extra.iter().cloned());
    params
}
