//! The engine types a validated scenario's steps are made of.

use super::board_devices::{MemoryResizeStep, OfUnittestStep};
use super::{JsonMap, Location};
use crate::guest::transport::Via;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The zone `memory_online` puts a block into: the value written to its `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    /// `online_movable`: the block can be offlined and removed again.
    #[default]
    Movable,
    /// `online_kernel`: kernel allocations may pin it.
    Kernel,
    /// `online`: the kernel's default policy.
    Auto,
}

impl Zone {
    /// What to write to `/sys/devices/system/memory/memoryN/state`.
    pub fn state_value(self) -> &'static str {
        match self {
            Zone::Movable => "online_movable",
            Zone::Kernel => "online_kernel",
            Zone::Auto => "online",
        }
    }
}

/// `devlink dev reload ... action ACTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReloadAction {
    #[default]
    DriverReinit,
    FwActivate,
}

impl ReloadAction {
    pub fn devlink_name(self) -> &'static str {
        match self {
            ReloadAction::DriverReinit => "driver_reinit",
            ReloadAction::FwActivate => "fw_activate",
        }
    }
}

/// Which kernel-log lines `wait_log` considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Since {
    /// Lines printed after the step starts.
    #[default]
    Step,
    /// Every line since boot.
    Boot,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: Option<String>,
    /// A failure of this step (error status, QMP error, write refused) is expected in races and
    /// does not fail the run. Guest steps say this with `expect_status` instead.
    pub may_fail: bool,
    /// The file left this step's timeout to its default ([`super::defaults`]): the engine scales it
    /// for the machine's speed ([`super::Scenario::with_default_timeouts_scaled`]).
    pub default_timeout: bool,
    /// Where the step's kind key is, with the step's path (`steps[2].repeat.steps[0]`).
    pub at: Location,
    pub kind: StepKind,
}

impl Step {
    /// The name given, or `kind at path`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("{} ({})", self.kind.name(), self.at.path),
        }
    }
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Guest(GuestStep),
    Qmp(QmpStep),
    PciHotplug(PciHotplugStep),
    PciUnplug(PciUnplugStep),
    OverlayLoad(OverlayLoadStep),
    OverlayUnload(OverlayUnloadStep),
    MemoryAdd(MemoryAddStep),
    MemoryRemove(MemoryRemoveStep),
    MemoryOnline(MemoryOnlineStep),
    MemoryOffline(MemoryOfflineStep),
    DevlinkReload(DevlinkReloadStep),
    NetdevsimNew(NetdevsimNewStep),
    NetdevsimDel(NetdevsimDelStep),
    Parallel(ParallelStep),
    Repeat(RepeatStep),
    WaitLog(WaitLogStep),
    Sleep(Duration),
    MemoryResize(MemoryResizeStep),
    OfUnittest(OfUnittestStep),
}

impl StepKind {
    /// The key the file uses for this kind.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Guest(_) => "guest",
            StepKind::Qmp(_) => "qmp",
            StepKind::PciHotplug(_) => "pci_hotplug",
            StepKind::PciUnplug(_) => "pci_unplug",
            StepKind::OverlayLoad(_) => "overlay_load",
            StepKind::OverlayUnload(_) => "overlay_unload",
            StepKind::MemoryAdd(_) => "memory_add",
            StepKind::MemoryRemove(_) => "memory_remove",
            StepKind::MemoryOnline(_) => "memory_online",
            StepKind::MemoryOffline(_) => "memory_offline",
            StepKind::DevlinkReload(_) => "devlink_reload",
            StepKind::NetdevsimNew(_) => "netdevsim_new",
            StepKind::NetdevsimDel(_) => "netdevsim_del",
            StepKind::Parallel(_) => "parallel",
            StepKind::Repeat(_) => "repeat",
            StepKind::WaitLog(_) => "wait_log",
            StepKind::Sleep(_) => "sleep",
            StepKind::MemoryResize(_) => "memory_resize",
            StepKind::OfUnittest(_) => "of_unittest",
        }
    }
}

impl StepKind {
    /// The step's own timeout, for the kinds that have one (not `parallel`'s deadline, `repeat`
    /// or `sleep`).
    pub fn timeout_mut(&mut self) -> Option<&mut Duration> {
        match self {
            StepKind::Guest(g) => Some(&mut g.timeout),
            StepKind::DevlinkReload(d) => Some(&mut d.timeout),
            StepKind::NetdevsimNew(n) => Some(&mut n.timeout),
            StepKind::NetdevsimDel(n) => Some(&mut n.timeout),
            StepKind::MemoryOnline(m) => Some(&mut m.timeout),
            StepKind::MemoryOffline(m) => Some(&mut m.timeout),
            StepKind::MemoryAdd(m) => Some(&mut m.timeout),
            StepKind::MemoryRemove(m) => Some(&mut m.timeout),
            StepKind::PciHotplug(p) => Some(&mut p.timeout),
            StepKind::PciUnplug(p) => Some(&mut p.timeout),
            StepKind::OverlayLoad(o) => Some(&mut o.timeout),
            StepKind::OverlayUnload(o) => Some(&mut o.timeout),
            StepKind::Qmp(q) => Some(&mut q.timeout),
            StepKind::WaitLog(w) => Some(&mut w.timeout),
            StepKind::MemoryResize(m) => Some(&mut m.timeout),
            StepKind::OfUnittest(u) => Some(&mut u.timeout),
            StepKind::Parallel(_) | StepKind::Repeat(_) | StepKind::Sleep(_) => None,
        }
    }

    /// How long the step may take (for `repeat`: no bound of its own; the scenario timeout holds).
    pub fn timeout(&self) -> Duration {
        match self {
            StepKind::Guest(g) => g.timeout,
            StepKind::DevlinkReload(d) => d.timeout,
            StepKind::NetdevsimNew(n) => n.timeout,
            StepKind::NetdevsimDel(n) => n.timeout,
            StepKind::MemoryOnline(m) => m.timeout,
            StepKind::MemoryOffline(m) => m.timeout,
            StepKind::MemoryAdd(m) => m.timeout,
            StepKind::MemoryRemove(m) => m.timeout,
            StepKind::PciHotplug(p) => p.timeout,
            StepKind::PciUnplug(p) => p.timeout,
            StepKind::OverlayLoad(o) => o.timeout,
            StepKind::OverlayUnload(o) => o.timeout,
            StepKind::Qmp(q) => q.timeout,
            StepKind::WaitLog(w) => w.timeout,
            StepKind::MemoryResize(m) => m.timeout,
            StepKind::OfUnittest(u) => u.timeout,
            StepKind::Parallel(p) => p.deadline,
            StepKind::Sleep(d) => *d,
            StepKind::Repeat(_) => Duration::from_secs(3600),
        }
    }
}

/// A shell command in the guest.
#[derive(Debug, Clone)]
pub struct GuestStep {
    pub run: String,
    pub timeout: Duration,
    pub expect_status: ExpectStatus,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectStatus {
    Any,
    /// One of these (non-empty, each 0..=255).
    OneOf(Vec<i32>),
}

impl ExpectStatus {
    pub fn accepts(&self, status: i32) -> bool {
        match self {
            ExpectStatus::Any => true,
            ExpectStatus::OneOf(v) => v.contains(&status),
        }
    }
}

/// Any QMP command; optionally waits for an event whose `data` contains `data`.
#[derive(Debug, Clone)]
pub struct QmpStep {
    pub execute: String,
    pub arguments: JsonMap,
    pub wait_event: Option<EventWait>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventWait {
    pub event: String,
    /// Members the event's `data` must have (with equal values); empty matches any.
    pub data: JsonMap,
}

impl EventWait {
    pub fn matches(&self, event: &str, data: &serde_json::Value) -> bool {
        event == self.event
            && self
                .data
                .iter()
                .all(|(k, v)| data.get(k).is_some_and(|d| d == v))
    }
}

/// `device_add` of `driver` with id `id` onto a free hot-plug root port (or `port`), then wait
/// until the guest lists the new PCI function.
#[derive(Debug, Clone)]
pub struct PciHotplugStep {
    pub id: String,
    pub driver: String,
    /// A root port id (`rp0`..); `None`: the first free one.
    pub port: Option<String>,
    /// Extra device properties (scalars).
    pub props: JsonMap,
    pub timeout: Duration,
}

/// `device_del`, then wait for `DEVICE_DELETED` and for the function to leave `/sys/bus/pci/devices`.
#[derive(Debug, Clone)]
pub struct PciUnplugStep {
    pub id: String,
    pub timeout: Duration,
}

/// Compile `file` with dtc and apply it through configfs as `/sys/kernel/config/device-tree/overlays/<id>`.
#[derive(Debug, Clone)]
pub struct OverlayLoadStep {
    /// The resolved, existing `.dtso` file.
    pub file: PathBuf,
    pub id: String,
    /// Apply under the DT node the kernel made for this hot-plugged PCI device (the overlay's
    /// `target-path = ""` is that node); `None`: paths are from the root.
    pub under_pci: Option<String>,
    pub timeout: Duration,
}

/// Remove the overlay applied as `id`.
#[derive(Debug, Clone)]
pub struct OverlayUnloadStep {
    pub id: String,
    pub timeout: Duration,
}

/// Plug a `pc-dimm` of `size_bytes` (a multiple of the memory block size) with id `id`, backed by
/// a new memory backend, and wait until the guest has its memory blocks.
#[derive(Debug, Clone)]
pub struct MemoryAddStep {
    pub id: String,
    pub size_bytes: u64,
    pub timeout: Duration,
}

/// `device_del` the DIMM; with `wait`, wait for `DEVICE_DELETED`.
#[derive(Debug, Clone)]
pub struct MemoryRemoveStep {
    pub id: String,
    pub wait: bool,
    pub timeout: Duration,
}

/// Online every memory block of DIMM `id` (or every present, offline block of virtio-mem
/// device `id`) through sysfs into `zone`.
#[derive(Debug, Clone)]
pub struct MemoryOnlineStep {
    pub id: String,
    pub zone: Zone,
    pub timeout: Duration,
}

/// Offline every memory block of DIMM `id` (or every present, online block of virtio-mem
/// device `id`) through sysfs.
#[derive(Debug, Clone)]
pub struct MemoryOfflineStep {
    pub id: String,
    pub timeout: Duration,
}

/// `devlink dev reload DEV action ACTION` in the guest.
#[derive(Debug, Clone)]
pub struct DevlinkReloadStep {
    /// `bus/name`, e.g. `netdevsim/netdevsim10`.
    pub dev: String,
    pub action: ReloadAction,
    pub via: Via,
    pub timeout: Duration,
}

/// `echo "ID PORTS" > /sys/bus/netdevsim/new_device`.
#[derive(Debug, Clone)]
pub struct NetdevsimNewStep {
    pub id: u32,
    pub ports: u32,
    pub via: Via,
    pub timeout: Duration,
}

/// `echo ID > /sys/bus/netdevsim/del_device`.
#[derive(Debug, Clone)]
pub struct NetdevsimDelStep {
    pub id: u32,
    pub via: Via,
    pub timeout: Duration,
}

/// Children run at once (at least two; no nested `parallel`); all must end by `deadline`.
#[derive(Debug, Clone)]
pub struct ParallelStep {
    pub deadline: Duration,
    /// Each child starts after a delay drawn from this range with the run's seed (`stagger:`).
    pub stagger: Option<Stagger>,
    pub steps: Vec<Step>,
}

/// `stagger: 0-50ms`: the range a `parallel` child's start delay is drawn from (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stagger {
    pub min: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone)]
pub struct RepeatStep {
    pub count: RepeatCount,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatCount {
    Times(u32),
    /// Start new iterations until this much time has passed.
    For(Duration),
}

/// Wait for a kernel-log line matching `regex`.
#[derive(Debug, Clone)]
pub struct WaitLogStep {
    pub regex: regex::Regex,
    pub timeout: Duration,
    pub since: Since,
}
