//! The raw schema of what the seed scenarios added to the format: devices a scenario gives the
//! board (`devices:`), virtio-mem resizing (`memory_resize`) and the OF unit tests' verdict
//! (`of_unittest`). Same rules as [`super::raw`]: strict, one type per mapping.

use super::raw_scalars::{HumanDuration, Size};
use serde::Deserialize;

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// One entry of `devices:`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawDevice {
    /// Any QEMU device on the board's root bus: `- qemu: {driver: pci-testdev}`.
    Qemu(RawQemuDevice),
    /// A virtio-mem device with nothing plugged at boot: `- virtio_mem: {id: vmem0, size: 1G}`.
    VirtioMem(RawVirtioMem),
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a QEMU device: {driver: NAME, id, props}"
)]
pub struct RawQemuDevice {
    pub driver: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub props: Option<JsonMap>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a virtio-mem device: {id: …, size: 1G}"
)]
pub struct RawVirtioMem {
    pub id: String,
    pub size: Size,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_resize step: {id: …, size: 512M, wait, timeout, may_fail, name}"
)]
pub struct RawMemoryResize {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    pub size: Size,
    #[serde(default)]
    pub wait: Option<bool>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an of_unittest step: {timeout, name}"
)]
pub struct RawOfUnittest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
}
