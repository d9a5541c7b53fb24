//! The kernel features and board abilities a scenario can require (`requires:`); step kinds
//! imply some ([`super::kind::RawKind::implied_feature`]).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Kernel features and board abilities a scenario can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// DT overlays applied through configfs: `CONFIG_OF_OVERLAY`, configfs, and a device tree
    /// to apply them to: the board's (arm64-virt) or the kernel's own empty one (Linux 6.9+
    /// with `CONFIG_OF_FLATTREE`, on x86_64-q35).
    OfOverlay,
    /// Device-tree nodes for PCI bridges and devices (`CONFIG_PCI_DYNAMIC_OF_NODES`), so an
    /// overlay can target a PCI device's node; on a board without a firmware tree, a kernel that
    /// makes its own.
    PciOfNodes,
    /// rig's `rig_pci_overlay` driver (built with every rig kernel), packed into the initramfs
    /// and loaded at boot: it binds every pci-testdev, applying an overlay on its node at probe
    /// and removing it at remove, as lan966x_pci does.
    PciOverlayDriver,
    Netdevsim,
    Devlink,
    PciHotplug,
    MemoryHotplug,
    Lockdep,
    Kasan,
    /// virtio-mem memory hot-(un)plug: `CONFIG_VIRTIO_MEM`, on any board.
    VirtioMem,
    /// CONFIG_OF_UNITTEST, run at boot against a live device tree (arm64-virt).
    OfUnittest,
    /// netdevsim built as a module (`CONFIG_NETDEVSIM=m`), so a scenario can unload it.
    NetdevsimModule,
    /// The guest may open connections through QEMU's user-mode network to the host's own
    /// services and beyond. Without it the network is `restrict=on`: the guest reaches nothing
    /// outside itself (rig's ssh forward into the guest still works).
    OutboundNetwork,
}

impl Feature {
    pub const ALL: [Feature; 13] = [
        Feature::OfOverlay,
        Feature::PciOfNodes,
        Feature::PciOverlayDriver,
        Feature::Netdevsim,
        Feature::Devlink,
        Feature::PciHotplug,
        Feature::MemoryHotplug,
        Feature::Lockdep,
        Feature::Kasan,
        Feature::VirtioMem,
        Feature::OfUnittest,
        Feature::NetdevsimModule,
        Feature::OutboundNetwork,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::OfOverlay => "of_overlay",
            Feature::PciOfNodes => "pci_of_nodes",
            Feature::PciOverlayDriver => "pci_overlay_driver",
            Feature::Netdevsim => "netdevsim",
            Feature::Devlink => "devlink",
            Feature::PciHotplug => "pci_hotplug",
            Feature::MemoryHotplug => "memory_hotplug",
            Feature::Lockdep => "lockdep",
            Feature::Kasan => "kasan",
            Feature::VirtioMem => "virtio_mem",
            Feature::OfUnittest => "of_unittest",
            Feature::NetdevsimModule => "netdevsim_module",
            Feature::OutboundNetwork => "outbound_network",
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Feature {
    type Err = crate::host::board::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Feature::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| crate::host::board::UnknownName {
                what: "feature",
                given: s.into(),
                known: Feature::ALL.map(Feature::name).join(", "),
            })
    }
}

impl<'de> serde::Deserialize<'de> for Feature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Feature>().map_err(serde::de::Error::custom)
    }
}
