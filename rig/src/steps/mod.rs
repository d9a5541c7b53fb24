//! Step kinds: each family of kinds is one module here that holds the kind's raw form (as the
//! file writes it), its validation into the engine type, the feature it implies, where it runs
//! (a guest job, the host, ssh) and how it executes. This file is the one dispatch: the
//! [`RawStep`] and [`StepKind`] enums and the place that maps each variant to its family
//! ([`each_raw!`], [`each_kind!`]). What a family implements is [`kind::RawKind`] and
//! [`kind::Kind`].
//!
//! Direction of use: `scenario` and `run` use `steps`; `steps` uses neither (the leaf types both
//! share, like [`Location`], [`ScenarioError`] and [`Feature`], live here and are re-exported
//! by `scenario`). Adding a kind: docs/architecture.md, "Adding a step kind".

pub(crate) mod check;
pub(crate) mod engine;
pub(crate) mod kind;

pub(crate) mod control;
mod feature;
mod guest;
mod mem_blocks;
mod memory;
mod memory_state;
mod netdev;
mod of_unittest;
mod overlay;
mod parallel;
mod pci;
mod qmp;
mod scalars;
pub(crate) mod virtio_mem;
mod wait;

pub use check::{Location, ScenarioError};
pub(crate) use control::Within;
pub use control::{RawRepeat, RepeatCount, RepeatStep};
pub use engine::Failure;
pub use feature::Feature;
pub use guest::{GuestStep, RawGuest, RawStatus};
pub use kind::ExpectStatus;
pub use memory::{MemoryAddStep, MemoryRemoveStep, RawMemoryAdd, RawMemoryRemove};
pub use memory_state::{
    MemoryOfflineStep, MemoryOnlineStep, RawMemoryOffline, RawMemoryOnline, Zone,
};
pub use netdev::{
    DevlinkReloadStep, NetdevsimDelStep, NetdevsimNewStep, RawDevlinkReload, RawNetdevsimDel,
    RawNetdevsimNew, ReloadAction,
};
pub use of_unittest::{OfUnittestStep, RawOfUnittest};
pub use overlay::{OverlayLoadStep, OverlayUnloadStep, RawOverlayLoad, RawOverlayUnload};
pub use parallel::{ParallelStep, RawParallel};
pub use pci::{PciHotplugStep, PciUnplugStep, RawPciHotplug, RawPciUnplug};
pub use qmp::{EventWait, QmpStep, RawEventWait, RawQmp};
pub(crate) use scalars::compile_regex;
pub use scalars::{stagger_delays, HumanDuration, Regex, Size, Stagger, StaggerRange};
pub use virtio_mem::{MemoryResizeStep, RawMemoryResize};
pub use wait::{RawSleep, RawWaitLog, Since, WaitLogStep};

use serde::Deserialize;
use std::time::Duration;

pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// Each kind's default timeout, at native (KVM) speed (`scenario::defaults` has them too).
pub mod defaults {
    pub use super::guest::GUEST_TIMEOUT;
    pub use super::memory::MEMORY_TIMEOUT;
    pub use super::netdev::{DEVLINK_TIMEOUT, NETDEVSIM_TIMEOUT};
    pub use super::overlay::OVERLAY_TIMEOUT;
    pub use super::pci::PCI_TIMEOUT;
    pub use super::qmp::QMP_TIMEOUT;
    pub use super::wait::WAIT_LOG_TIMEOUT;
}

/// A step of a validated scenario.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: Option<String>,
    /// A failure of this step (error status, QMP error, write refused) is expected in races and
    /// does not fail the run. Guest steps say this with `expect_status` instead.
    pub may_fail: bool,
    /// The file left this step's timeout to its kind's default: the engine scales it for the
    /// machine's speed (`Scenario::with_default_timeouts_scaled`).
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

/// A step as the file writes it: the key names the kind (`guest:`, `memory_add:`, …).
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
    Sleep(RawSleep),
    MemoryResize(RawMemoryResize),
    OfUnittest(RawOfUnittest),
}

/// A validated step's kind, with what the engine needs to run it.
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

/// Runs `$body` with `$x` bound to the family type inside a [`RawStep`] (`$key`: the kind's
/// key in the file). One arm per kind: the only list of raw kinds besides the enum.
macro_rules! each_raw {
    ($raw:expr, $x:ident, $key:ident => $body:expr) => {
        match $raw {
            RawStep::Guest($x) => {
                let $key = "guest";
                $body
            }
            RawStep::Qmp($x) => {
                let $key = "qmp";
                $body
            }
            RawStep::PciHotplug($x) => {
                let $key = "pci_hotplug";
                $body
            }
            RawStep::PciUnplug($x) => {
                let $key = "pci_unplug";
                $body
            }
            RawStep::OverlayLoad($x) => {
                let $key = "overlay_load";
                $body
            }
            RawStep::OverlayUnload($x) => {
                let $key = "overlay_unload";
                $body
            }
            RawStep::MemoryAdd($x) => {
                let $key = "memory_add";
                $body
            }
            RawStep::MemoryRemove($x) => {
                let $key = "memory_remove";
                $body
            }
            RawStep::MemoryOnline($x) => {
                let $key = "memory_online";
                $body
            }
            RawStep::MemoryOffline($x) => {
                let $key = "memory_offline";
                $body
            }
            RawStep::DevlinkReload($x) => {
                let $key = "devlink_reload";
                $body
            }
            RawStep::NetdevsimNew($x) => {
                let $key = "netdevsim_new";
                $body
            }
            RawStep::NetdevsimDel($x) => {
                let $key = "netdevsim_del";
                $body
            }
            RawStep::Parallel($x) => {
                let $key = "parallel";
                $body
            }
            RawStep::Repeat($x) => {
                let $key = "repeat";
                $body
            }
            RawStep::WaitLog($x) => {
                let $key = "wait_log";
                $body
            }
            RawStep::Sleep($x) => {
                let $key = "sleep";
                $body
            }
            RawStep::MemoryResize($x) => {
                let $key = "memory_resize";
                $body
            }
            RawStep::OfUnittest($x) => {
                let $key = "of_unittest";
                $body
            }
        }
    };
}

/// Runs `$body` with `$x` bound to the engine type inside a [`StepKind`] (a [`kind::Kind`]).
macro_rules! each_kind {
    ($kind:expr, $x:ident => $body:expr) => {
        match $kind {
            StepKind::Guest($x) => $body,
            StepKind::Qmp($x) => $body,
            StepKind::PciHotplug($x) => $body,
            StepKind::PciUnplug($x) => $body,
            StepKind::OverlayLoad($x) => $body,
            StepKind::OverlayUnload($x) => $body,
            StepKind::MemoryAdd($x) => $body,
            StepKind::MemoryRemove($x) => $body,
            StepKind::MemoryOnline($x) => $body,
            StepKind::MemoryOffline($x) => $body,
            StepKind::DevlinkReload($x) => $body,
            StepKind::NetdevsimNew($x) => $body,
            StepKind::NetdevsimDel($x) => $body,
            StepKind::Parallel($x) => $body,
            StepKind::Repeat($x) => $body,
            StepKind::WaitLog($x) => $body,
            StepKind::Sleep($x) => $body,
            StepKind::MemoryResize($x) => $body,
            StepKind::OfUnittest($x) => $body,
        }
    };
}

impl RawStep {
    /// The key the file uses for this kind.
    pub(crate) fn kind_name(&self) -> &'static str {
        each_raw!(self, _x, key => key)
    }

    /// Everything the dispatch asks of a raw step, as its family's [`kind::RawKind`].
    pub(crate) fn as_kind(&self) -> &dyn kind::RawKind {
        each_raw!(self, x, _key => x as &dyn kind::RawKind)
    }

    /// Raw → engine kind (the family's checks; errors point into the file at `kp`, the kind's
    /// key). Returns the step's name and kind.
    pub(crate) fn validate(
        self,
        cx: &check::Check,
        kp: &rig_yaml::Path,
        within: Within,
    ) -> check::R<(Option<String>, StepKind)> {
        each_raw!(self, x, _key => kind::RawKind::validate(x, cx, kp, within))
    }
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

    /// Everything the engine asks of a step, as its family's [`kind::Kind`].
    pub(crate) fn as_kind(&self) -> &dyn kind::Kind {
        each_kind!(self, x => x as &dyn kind::Kind)
    }

    /// The step's own timeout, for the kinds that have one (not `parallel`'s deadline, `repeat`
    /// or `sleep`).
    pub fn timeout_mut(&mut self) -> Option<&mut Duration> {
        each_kind!(self, x => kind::Kind::timeout_mut(x))
    }

    /// How long the step may take (for `repeat`: no bound of its own; the scenario timeout holds).
    pub fn timeout(&self) -> Duration {
        self.as_kind().timeout()
    }

    /// The steps inside this one (`parallel`, `repeat`).
    pub fn children(&self) -> &[Step] {
        self.as_kind().children()
    }

    /// [`StepKind::children`], to change them.
    pub fn children_mut(&mut self) -> &mut [Step] {
        match self {
            StepKind::Parallel(p) => &mut p.steps,
            StepKind::Repeat(r) => &mut r.steps,
            _ => &mut [],
        }
    }

    /// Whether the step talks to the guest over ssh (the guest then needs its ssh server).
    pub fn over_ssh(&self) -> bool {
        self.as_kind()
            .shell_command()
            .is_some_and(|c| c.via == crate::guest::transport::Via::Ssh)
    }
}
