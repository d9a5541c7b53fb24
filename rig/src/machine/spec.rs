//! The machine a run boots, stated once: [`MachineSpec`] (what the CLI and the scenario ask
//! for, each default said here) and [`PreparedMachine`] (the spec with its kernel and initramfs
//! provisioned and its accelerator chosen: what a boot takes). The CLI builds the spec from its
//! flags, the scenario engine adds the scenario's part, and the boot consumes it; nothing copies
//! its fields into another options type on the way.

use crate::host::board::{Board, DEFAULT_MEMORY_MIB, HOTPLUG_ROOT_PORTS};
use crate::machine::qemu::{Accel, ExtraDevice};
use crate::machine::snapshot::Snapshot;
use crate::provision::BootImage;
use std::str::FromStr;

/// A machine to boot: board, kernel (by name), accelerator, memory, kernel parameters, devices,
/// free root ports, network, and how rig reaches it. `ssh` and `restore` are set through
/// [`MachineSpec::set_ssh`] and [`MachineSpec::restore_from`], which keep the one rule between
/// them ([`MachineSpec::check_restorable`]).
#[derive(Debug, Clone)]
pub struct MachineSpec {
    pub board: Board,
    /// The kernel as named (`debian-6.1`, `rig-6.12[-FLAVOR]`, `tree:PATH[#FLAVOR]`): the
    /// provision phase turns it into files ([`PreparedMachine::image`]).
    pub kernel: String,
    pub accel: AccelChoice,
    pub memory_mib: u64,
    /// Kernel command-line parameters after rig's own, in order (a scenario's `cmdline:`, then
    /// `--cmdline`, then what provisioning adds such as `rig.modules=`).
    pub cmdline: Vec<String>,
    /// Devices added to the board (a scenario's `devices:`).
    pub devices: Vec<ExtraDevice>,
    /// Free PCIe root ports on the board for hot-plug (`rp0`..): all of them by default; a
    /// scenario that hot-plugs nothing boots without (each costs boot time: pciehp probes it).
    pub hotplug_root_ports: usize,
    /// Let the guest reach the host's network ([`crate::scenario::Feature::OutboundNetwork`]);
    /// off: QEMU's user-mode network is `restrict=on`.
    pub outbound_network: bool,
    /// Make the guest's memory dumpable at the moment it goes wrong ([`crate::machine::vmcore`]):
    /// QEMU's pvpanic device with `-action panic=pause`, and a second QMP monitor for the dump.
    pub vmcore: bool,
    /// Also bring up ssh (dropbear in the guest, a forwarded loopback port, per-run keys).
    ssh: bool,
    /// Start from this saved post-boot state instead of booting ([`crate::machine::snapshot`]).
    restore: Option<Snapshot>,
}

/// What the user asked for with `--accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl FromStr for AccelChoice {
    type Err = crate::host::board::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            _ => Err(crate::host::board::UnknownName {
                what: "accelerator",
                given: s.into(),
                known: "auto, kvm, tcg".into(),
            }),
        }
    }
}

impl AccelChoice {
    /// The spelling `--accel` takes (what [`FromStr`] reads back).
    pub fn name(self) -> &'static str {
        match self {
            AccelChoice::Auto => "auto",
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
        }
    }
}

/// The accelerator chosen for a machine, and why ([`crate::machine::accel::choose`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AccelDecision {
    pub accel: Accel,
    pub reason: String,
}

/// A spec whose parts cannot go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "a guest restored from a saved state is reached over hvc only (its ssh host key would \
         be shared by every run)"
    )]
    RestoreNeedsHvc,
}

impl MachineSpec {
    /// `kernel` on `board` with every default: the accelerator probed, [`DEFAULT_MEMORY_MIB`],
    /// no extra parameters or devices, all [`HOTPLUG_ROOT_PORTS`], no outbound network, hvc only,
    /// a fresh boot.
    pub fn new(board: Board, kernel: &str) -> Self {
        MachineSpec {
            board,
            kernel: kernel.into(),
            accel: AccelChoice::Auto,
            memory_mib: DEFAULT_MEMORY_MIB,
            cmdline: Vec::new(),
            devices: Vec::new(),
            hotplug_root_ports: HOTPLUG_ROOT_PORTS,
            outbound_network: false,
            vmcore: false,
            ssh: false,
            restore: None,
        }
    }

    pub fn ssh(&self) -> bool {
        self.ssh
    }

    pub fn restore(&self) -> Option<&Snapshot> {
        self.restore.as_ref()
    }

    /// The one rule between how a guest is reached and how it starts: a guest that starts from
    /// a saved state is reached over hvc only. Asked before anything is provisioned by a run
    /// that will save and restore (`--snapshot`), and by [`Self::set_ssh`] and
    /// [`Self::restore_from`].
    pub fn check_restorable(&self) -> Result<(), SpecError> {
        if self.ssh {
            return Err(SpecError::RestoreNeedsHvc);
        }
        Ok(())
    }

    /// Turns ssh on or off; on is refused for a guest restored from a saved state.
    pub fn set_ssh(&mut self, on: bool) -> Result<(), SpecError> {
        if on && self.restore.is_some() {
            return Err(SpecError::RestoreNeedsHvc);
        }
        self.ssh = on;
        Ok(())
    }

    /// Starts the machine from `snapshot` instead of booting it; refused when it uses ssh.
    pub fn restore_from(&mut self, snapshot: Snapshot) -> Result<(), SpecError> {
        self.check_restorable()?;
        self.restore = Some(snapshot);
        Ok(())
    }
}

/// A [`MachineSpec`] ready to boot: its kernel and initramfs provisioned, its accelerator
/// chosen (see `crate::prepare`).
#[derive(Debug, Clone)]
pub struct PreparedMachine {
    pub spec: MachineSpec,
    pub image: BootImage,
    /// Which accelerator runs the guest, and why.
    pub accel: AccelDecision,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_with_ssh_cannot_be_restored() {
        let mut spec = MachineSpec::new(Board::Arm64Virt, "debian-6.1");
        spec.check_restorable().unwrap();
        spec.set_ssh(true).unwrap();
        assert_eq!(spec.check_restorable(), Err(SpecError::RestoreNeedsHvc));
        spec.set_ssh(false).unwrap();
        spec.check_restorable().unwrap();
        assert!(!spec.ssh());
    }

    #[test]
    fn a_restored_spec_refuses_ssh_and_an_ssh_spec_refuses_a_restore() {
        let dir = tempfile::tempdir().unwrap();
        let snap = Snapshot::unsaved(&dir.path().join("state.bin"));
        let mut restored = MachineSpec::new(Board::Arm64Virt, "debian-6.1");
        restored.restore_from(snap.clone()).unwrap();
        assert_eq!(restored.set_ssh(true), Err(SpecError::RestoreNeedsHvc));
        assert!(!restored.ssh());
        restored.set_ssh(false).unwrap();
        assert!(restored.restore().is_some());

        let mut with_ssh = MachineSpec::new(Board::Arm64Virt, "debian-6.1");
        with_ssh.set_ssh(true).unwrap();
        assert_eq!(with_ssh.restore_from(snap), Err(SpecError::RestoreNeedsHvc));
        assert!(with_ssh.restore().is_none());
    }
}
