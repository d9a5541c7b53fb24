//! The scenario file as written: strict serde types (`deny_unknown_fields`), one per mapping.
//! Values that can be checked on their own (durations, sizes, regexes, boards, features) are
//! parsed here or in `crate::steps` (the steps' raw forms, durations, sizes), so their errors
//! point at the scalar; cross-field checks are in `validate`.

use super::{Feature, RawStep, TitlePattern, Via};
use crate::host::board::Board;
use serde::de::{self, Deserializer};
use serde::Deserialize;

pub use crate::steps::{HumanDuration, Size};

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// A board name, checked against [`Board::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardName(pub Board);

impl<'de> Deserialize<'de> for BoardName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Board>().map(BoardName).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for TitlePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TitlePattern::parse(&s).map_err(de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a scenario: a mapping with `steps` and optionally name, description, boards, requires, cmdline, timeout, transport, expect, allow, devices, trace"
)]
pub struct RawScenario {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub boards: Option<Vec<BoardName>>,
    #[serde(default)]
    pub requires: Vec<Feature>,
    #[serde(default)]
    pub cmdline: Vec<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub transport: Option<Via>,
    #[serde(default)]
    pub expect: Vec<TitlePattern>,
    #[serde(default)]
    pub allow: Vec<TitlePattern>,
    #[serde(default)]
    pub devices: Vec<RawDevice>,
    #[serde(default)]
    pub trace: Option<crate::steps::trace::RawTrace>,
    pub steps: Vec<RawStep>,
}

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
