//! Boards: the emulated machines rig boots. A board fixes the QEMU binary, machine type, CPU,
//! console device, and the hot-plug resources it offers (PCIe root ports, DIMM slots).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The kernel's `ARCH=` name.
    pub fn kernel(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::Arm64 => "arm64",
        }
    }

    /// What `uname -m` prints in the guest.
    pub fn uname(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The cross-compiler prefix for kernel builds on an x86_64 host (`None`: native).
    pub fn cross_compile(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::Arm64 => Some("aarch64-linux-gnu-"),
        }
    }

    /// The kernel image file inside a build tree, relative to `arch/<kernel>/boot/`.
    pub fn boot_image(self) -> &'static str {
        match self {
            Arch::X86_64 => "bzImage",
            Arch::Arm64 => "Image",
        }
    }

    /// The architecture of the machine rig runs on.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown {what} `{given}` (known: {known})")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub known: String,
}

impl FromStr for Arch {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" | "x86" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => Err(UnknownName {
                what: "arch",
                given: s.into(),
                known: "x86_64, arm64".into(),
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Board {
    #[serde(rename = "x86_64-q35")]
    X86_64Q35,
    #[serde(rename = "arm64-virt")]
    Arm64Virt,
}

/// PCIe root ports each board gets, free for hot-plug: `rp0` .. `rp{N-1}`.
pub const HOTPLUG_ROOT_PORTS: usize = 4;
/// DIMM slots for memory hot-plug.
pub const DIMM_SLOTS: u32 = 4;
/// Guest memory at boot, MiB, unless a run asks for more (`--memory`). Hot-plugged memory
/// (DIMMs, virtio-mem) comes on top. Every boot pays for its size: under TCG an arm64 rig-6.12
/// guest with 1 GiB reached ready ~0.3 s (wall) later than with 512 MiB (docs/benchmarks.md).
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// The boards' `maxmem`, MiB: booted plus hot-plugged memory (DIMMs, virtio-mem) stays below it.
pub const MAX_MEMORY_MIB: u64 = 4096;

impl Board {
    pub const ALL: [Board; 2] = [Board::X86_64Q35, Board::Arm64Virt];

    pub fn name(self) -> &'static str {
        match self {
            Board::X86_64Q35 => "x86_64-q35",
            Board::Arm64Virt => "arm64-virt",
        }
    }

    pub fn arch(self) -> Arch {
        match self {
            Board::X86_64Q35 => Arch::X86_64,
            Board::Arm64Virt => Arch::Arm64,
        }
    }

    pub fn qemu_binary(self) -> &'static str {
        match self {
            Board::X86_64Q35 => "qemu-system-x86_64",
            Board::Arm64Virt => "qemu-system-aarch64",
        }
    }

    /// The guest's serial console device, for `console=`.
    pub fn console_device(self) -> &'static str {
        match self {
            Board::X86_64Q35 => "ttyS0",
            Board::Arm64Virt => "ttyAMA0",
        }
    }

    /// The CPU model under TCG. cortex-a57 boots arm64 several times faster than `max` under TCG.
    pub fn tcg_cpu(self) -> &'static str {
        match self {
            Board::X86_64Q35 => "max",
            Board::Arm64Virt => "cortex-a57",
        }
    }

    /// The firmware QEMU runs before the kernel (`-bios`; a name QEMU finds in its data
    /// directory), `None` for QEMU's default. x86 q35 boots with qboot (Debian's
    /// qemu-system-data, a dependency of qemu-system-x86): it loads the `-kernel` straight from
    /// fw_cfg and hands the guest QEMU's ACPI tables, as SeaBIOS does, but skips SeaBIOS's
    /// device scan and boot menu: ~0.2 s of every TCG boot here (bare QEMU, rig-6.12, 5
    /// interleaved boots each: median 1.77 s to init's ready line against 1.97 s). Linux
    /// assigns the hot-plug root ports' windows itself. arm64 virt has no firmware with
    /// `-kernel`.
    pub fn firmware(self) -> Option<&'static str> {
        match self {
            Board::X86_64Q35 => Some("qboot.rom"),
            Board::Arm64Virt => None,
        }
    }

    /// Whether the board hands the kernel a device tree (QEMU generates one for arm64 virt);
    /// x86 q35 describes itself through ACPI only, so its kernel has a device tree only if it
    /// makes its own (an empty root, Linux 6.9+).
    pub fn firmware_device_tree(self) -> bool {
        matches!(self, Board::Arm64Virt)
    }

    /// Whether the board's guest learns of DIMM hot-plug. x86 q35 signals it through ACPI.
    /// arm64 virt needs ACPI (UEFI boot) for that in QEMU 7.2; rig boots arm64 with a DT, where
    /// QEMU accepts the DIMM but the guest is never told.
    pub fn supports_dimm_hotplug(self) -> bool {
        matches!(self, Board::X86_64Q35)
    }

    /// Memory block size in the guest, which DIMM sizes must be a multiple of.
    pub fn memory_block_mib(self) -> u64 {
        128
    }

    /// The name of the `n`th hot-plug root port.
    pub fn root_port_id(n: usize) -> String {
        format!("rp{n}")
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Board {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Board::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownName {
                what: "board",
                given: s.into(),
                known: Board::ALL.map(|b| b.name()).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_parse_by_name_and_reject_others() {
        for b in Board::ALL {
            assert_eq!(b.name().parse::<Board>().unwrap(), b);
        }
        let e = "riscv-virt".parse::<Board>().unwrap_err().to_string();
        assert!(e.contains("riscv-virt") && e.contains("arm64-virt"), "{e}");
    }

    #[test]
    fn arch_names() {
        assert_eq!(Board::Arm64Virt.arch().uname(), "aarch64");
        assert_eq!(Board::X86_64Q35.arch().debian(), "amd64");
        assert_eq!("aarch64".parse::<Arch>().unwrap(), Arch::Arm64);
    }
}
