//! The kernel features and board abilities a scenario can require (`requires:`); step kinds
//! imply some ([`super::kind::RawKind::implied_feature`]).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// Kernel features and board abilities a scenario can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// DT overlays applied through configfs: `CONFIG_OF_OVERLAY`, configfs, and a board booted
    /// with a device tree (arm64-virt).
    OfOverlay,
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
    pub const ALL: [Feature; 11] = [
        Feature::OfOverlay,
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
