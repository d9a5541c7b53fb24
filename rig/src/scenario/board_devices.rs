//! What a scenario adds to the board (`devices:`), and the steps that drive those devices.

use super::JsonMap;
use std::time::Duration;

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

/// Sets a virtio-mem device's `requested-size`; with `wait`, waits until the device reports
/// that much plugged (and, outside `parallel`, until the guest has exactly the memory blocks
/// that covers).
#[derive(Debug, Clone)]
pub struct MemoryResizeStep {
    pub id: String,
    pub size_bytes: u64,
    pub wait: bool,
    pub timeout: Duration,
}

/// The verdict of CONFIG_OF_UNITTEST, which runs while the kernel boots: waits for
/// `### dt-test ### end of unittest - N passed, M failed` and fails when M > 0.
#[derive(Debug, Clone)]
pub struct OfUnittestStep {
    pub timeout: Duration,
}
