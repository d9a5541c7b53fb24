//! What a scenario adds to the board (`devices:`); the steps that drive those devices are
//! `crate::steps`'.

use super::JsonMap;

/// A device the board gets for this scenario, present from boot.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardDevice {
    /// `-device DRIVER[,id=ID][,PROP=VALUE…]` on the root bus (e.g. `pci-testdev`, which the
    /// OF unit tests look for).
    Qemu {
        driver: String,
        id: Option<String>,
        /// Scalar properties.
        props: JsonMap,
    },
    /// A `virtio-mem-pci` device `id` backed by `size_bytes` of RAM, nothing plugged at boot;
    /// `memory_resize` plugs and unplugs its memory.
    VirtioMem { id: String, size_bytes: u64 },
}

impl BoardDevice {
    pub fn id(&self) -> Option<&str> {
        match self {
            BoardDevice::Qemu { id, .. } => id.as_deref(),
            BoardDevice::VirtioMem { id, .. } => Some(id),
        }
    }
}
