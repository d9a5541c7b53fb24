//! The scenario file as written: strict serde types (`deny_unknown_fields`), one per mapping.
//! Values that can be checked on their own (durations, sizes, regexes, boards, features) are
//! parsed here (durations, stagger ranges and sizes in `raw_scalars`), so their errors point at
//! the scalar; cross-field checks are in `validate`.

use super::{Feature, ReloadAction, Since, TitlePattern, Via, Zone};
use crate::host::board::Board;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

pub use super::raw_scalars::{HumanDuration, Size, StaggerRange};

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

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Feature>().map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for TitlePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TitlePattern::parse(&s).map_err(de::Error::custom)
    }
}

/// A compiled regex (for `wait_log`).
#[derive(Debug, Clone)]
pub struct Regex(pub regex::Regex);

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        super::compile_regex(&s)
            .map(Regex)
            .map_err(de::Error::custom)
    }
}

/// `expect_status`: a status, a list of statuses, or `any`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStatus {
    Any,
    OneOf(Vec<i64>),
}

impl<'de> Deserialize<'de> for RawStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawStatus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an exit status (0-255), a list of them, or `any`")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawStatus, E> {
                Ok(RawStatus::OneOf(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawStatus, E> {
                Ok(RawStatus::OneOf(vec![i64::try_from(v).unwrap_or(i64::MAX)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawStatus, E> {
                if v == "any" {
                    Ok(RawStatus::Any)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawStatus, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<i64>()? {
                    v.push(s);
                }
                Ok(RawStatus::OneOf(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a scenario: a mapping with `steps` and optionally name, description, boards, requires, cmdline, timeout, transport, expect, allow, devices"
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
    pub devices: Vec<super::raw_board_devices::RawDevice>,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStep {
    Guest(RawGuest),
    Qmp(RawQmp),
    PciHotplug(RawPciHotplug),
    PciUnplug(RawPciUnplug),
    OverlayLoad(RawOverlayLoad),
    OverlayUnload(RawOverlayUnload),
    MemoryAdd(RawMemoryAdd),
    MemoryRemove(RawMemoryRemove),
    MemoryOnline(RawMemoryOnline),
    MemoryOffline(RawMemoryOffline),
    DevlinkReload(RawDevlinkReload),
    NetdevsimNew(RawNetdevsimNew),
    NetdevsimDel(RawNetdevsimDel),
    Parallel(RawParallel),
    Repeat(RawRepeat),
    WaitLog(RawWaitLog),
    Sleep(HumanDuration),
    MemoryResize(super::raw_board_devices::RawMemoryResize),
    OfUnittest(super::raw_board_devices::RawOfUnittest),
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a guest step: {run: …, timeout, expect_status, via, name}"
)]
pub struct RawGuest {
    #[serde(default)]
    pub name: Option<String>,
    pub run: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub expect_status: Option<RawStatus>,
    #[serde(default)]
    pub via: Option<Via>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a QMP event to wait for: {event: NAME, data: {…}}"
)]
pub struct RawEventWait {
    pub event: String,
    #[serde(default)]
    pub data: Option<JsonMap>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a qmp step: {execute: …, arguments, wait_event, timeout, may_fail, name}"
)]
pub struct RawQmp {
    #[serde(default)]
    pub name: Option<String>,
    pub execute: String,
    #[serde(default)]
    pub arguments: Option<JsonMap>,
    #[serde(default)]
    pub wait_event: Option<RawEventWait>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a pci_hotplug step: {id: …, driver: …, port, props, timeout, may_fail, name}"
)]
pub struct RawPciHotplug {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    pub driver: String,
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default)]
    pub props: Option<JsonMap>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a pci_unplug step: {id: …, timeout, may_fail, name}"
)]
pub struct RawPciUnplug {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an overlay_load step: {file: NAME.dtso, id, under_pci, timeout, may_fail, name}"
)]
pub struct RawOverlayLoad {
    #[serde(default)]
    pub name: Option<String>,
    pub file: String,
    #[serde(default)]
    pub id: Option<String>,
    /// Apply under the DT node the kernel made for this hot-plugged PCI device.
    #[serde(default)]
    pub under_pci: Option<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an overlay_unload step: {id: …, timeout, may_fail, name}"
)]
pub struct RawOverlayUnload {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_add step: {id: …, size: 256M, timeout, may_fail, name}"
)]
pub struct RawMemoryAdd {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    pub size: Size,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_remove step: {id: …, wait, timeout, may_fail, name}"
)]
pub struct RawMemoryRemove {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
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
    expecting = "a memory_online step: {id: …, zone, timeout, may_fail, name}"
)]
pub struct RawMemoryOnline {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub zone: Option<Zone>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a memory_offline step: {id: …, timeout, may_fail, name}"
)]
pub struct RawMemoryOffline {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a devlink_reload step: {dev: BUS/NAME, action, via, timeout, may_fail, name}"
)]
pub struct RawDevlinkReload {
    #[serde(default)]
    pub name: Option<String>,
    pub dev: String,
    #[serde(default)]
    pub action: Option<ReloadAction>,
    #[serde(default)]
    pub via: Option<Via>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a netdevsim_new step: {id: N, ports, via, timeout, may_fail, name}"
)]
pub struct RawNetdevsimNew {
    #[serde(default)]
    pub name: Option<String>,
    pub id: u32,
    #[serde(default)]
    pub ports: Option<u32>,
    #[serde(default)]
    pub via: Option<Via>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a netdevsim_del step: {id: N, via, timeout, may_fail, name}"
)]
pub struct RawNetdevsimDel {
    #[serde(default)]
    pub name: Option<String>,
    pub id: u32,
    #[serde(default)]
    pub via: Option<Via>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a parallel step: {deadline: …, steps: […], stagger, name}"
)]
pub struct RawParallel {
    #[serde(default)]
    pub name: Option<String>,
    pub deadline: HumanDuration,
    #[serde(default)]
    pub stagger: Option<StaggerRange>,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a repeat step: {times: N or for: DURATION, steps: […], name}"
)]
pub struct RawRepeat {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default, rename = "for")]
    pub for_: Option<HumanDuration>,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a wait_log step: {regex: …, timeout, since, name}"
)]
pub struct RawWaitLog {
    #[serde(default)]
    pub name: Option<String>,
    pub regex: Regex,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub since: Option<Since>,
}

impl RawStep {
    pub(super) fn kind_name(&self) -> &'static str {
        match self {
            RawStep::Guest(_) => "guest",
            RawStep::Qmp(_) => "qmp",
            RawStep::PciHotplug(_) => "pci_hotplug",
            RawStep::PciUnplug(_) => "pci_unplug",
            RawStep::OverlayLoad(_) => "overlay_load",
            RawStep::OverlayUnload(_) => "overlay_unload",
            RawStep::MemoryAdd(_) => "memory_add",
            RawStep::MemoryRemove(_) => "memory_remove",
            RawStep::MemoryOnline(_) => "memory_online",
            RawStep::MemoryOffline(_) => "memory_offline",
            RawStep::DevlinkReload(_) => "devlink_reload",
            RawStep::NetdevsimNew(_) => "netdevsim_new",
            RawStep::NetdevsimDel(_) => "netdevsim_del",
            RawStep::Parallel(_) => "parallel",
            RawStep::Repeat(_) => "repeat",
            RawStep::WaitLog(_) => "wait_log",
            RawStep::Sleep(_) => "sleep",
            RawStep::MemoryResize(_) => "memory_resize",
            RawStep::OfUnittest(_) => "of_unittest",
        }
    }

    /// The feature a step of this kind cannot run without.
    pub(super) fn implied_feature(&self) -> Option<Feature> {
        match self {
            RawStep::PciHotplug(_) | RawStep::PciUnplug(_) => Some(Feature::PciHotplug),
            RawStep::OverlayLoad(_) | RawStep::OverlayUnload(_) => Some(Feature::OfOverlay),
            RawStep::MemoryAdd(_)
            | RawStep::MemoryRemove(_)
            | RawStep::MemoryOnline(_)
            | RawStep::MemoryOffline(_) => Some(Feature::MemoryHotplug),
            RawStep::DevlinkReload(_) => Some(Feature::Devlink),
            RawStep::NetdevsimNew(_) | RawStep::NetdevsimDel(_) => Some(Feature::Netdevsim),
            RawStep::MemoryResize(_) => Some(Feature::VirtioMem),
            RawStep::OfUnittest(_) => Some(Feature::OfUnittest),
            _ => None,
        }
    }

    /// Whether the file gave this step a timeout (steps without one have none to give).
    pub(super) fn timeout_given(&self) -> bool {
        match self {
            RawStep::Guest(x) => x.timeout.is_some(),
            RawStep::Qmp(x) => x.timeout.is_some(),
            RawStep::PciHotplug(x) => x.timeout.is_some(),
            RawStep::PciUnplug(x) => x.timeout.is_some(),
            RawStep::OverlayLoad(x) => x.timeout.is_some(),
            RawStep::OverlayUnload(x) => x.timeout.is_some(),
            RawStep::MemoryAdd(x) => x.timeout.is_some(),
            RawStep::MemoryRemove(x) => x.timeout.is_some(),
            RawStep::MemoryOnline(x) => x.timeout.is_some(),
            RawStep::MemoryOffline(x) => x.timeout.is_some(),
            RawStep::DevlinkReload(x) => x.timeout.is_some(),
            RawStep::NetdevsimNew(x) => x.timeout.is_some(),
            RawStep::NetdevsimDel(x) => x.timeout.is_some(),
            RawStep::WaitLog(x) => x.timeout.is_some(),
            RawStep::MemoryResize(x) => x.timeout.is_some(),
            RawStep::OfUnittest(x) => x.timeout.is_some(),
            RawStep::Parallel(_) | RawStep::Repeat(_) | RawStep::Sleep(_) => true,
        }
    }

    pub(super) fn children(&self) -> &[RawStep] {
        match self {
            RawStep::Parallel(p) => &p.steps,
            RawStep::Repeat(r) => &r.steps,
            _ => &[],
        }
    }
}
