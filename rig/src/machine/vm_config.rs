//! What a VM boots and how ([`VmConfig`]): a [`MachineSpec`] and what only the boot adds; and
//! the kernel parameters a boot adds.

use crate::machine::qemu::{self, Accel};
use crate::machine::spec::MachineSpec;
use crate::machine::timeouts::Timeouts;
use crate::provision::BootImage;
use std::path::PathBuf;

/// What to boot and how: the machine as specified, and what the boot itself decides.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Board, memory, kernel parameters (the boot may add some, such as `rig.ssh=1`), devices,
    /// root ports, network, restore.
    pub spec: MachineSpec,
    pub accel: Accel,
    pub image: BootImage,
    /// Boot this initrd instead of `image.initrd` (per-run additions such as ssh keys).
    pub initrd_override: Option<PathBuf>,
    pub ssh_forward_port: Option<u16>,
    pub timeouts: Timeouts,
    /// Run this program with QEMU's argv instead of the board's `qemu-system-*`: the seam for
    /// the tests' fake QEMU (`rig/tests/fake_qemu/`). Neither the CLI nor a scenario sets it.
    pub qemu_program: Option<PathBuf>,
}

impl VmConfig {
    pub fn new(spec: MachineSpec, accel: Accel, image: BootImage) -> Self {
        VmConfig {
            timeouts: Timeouts::for_machine(accel, spec.board),
            spec,
            accel,
            image,
            initrd_override: None,
            ssh_forward_port: None,
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
