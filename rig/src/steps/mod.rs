//! Step kinds: each family of kinds is one module here that holds the kind's raw form (as the
//! file writes it), its validation into the engine type, the feature it implies, where it runs
//! (a guest job, the host, ssh) and how it executes. This file is the one dispatch: the table
//! of kinds (`step_kinds!`) that makes the [`RawStep`] and [`StepKind`] enums and maps each
//! variant to its family. What a family implements is [`kind::RawKind`] and [`kind::Kind`].
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
pub mod trace;
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

/// Defines [`RawStep`] and [`StepKind`] from one table, `Variant(RawForm, EngineType) = "key"`,
/// and the dispatch from each variant to its family's [`kind::RawKind`] and [`kind::Kind`].
macro_rules! step_kinds {
    ($($variant:ident($raw:ty, $engine:ty) = $key:literal,)*) => {
        /// A step as the file writes it: the key names the kind (`guest:`, `memory_add:`, …).
        #[derive(Debug, Deserialize)]
        pub enum RawStep {
            $(#[serde(rename = $key)] $variant($raw),)*
        }

        /// A validated step's kind, with what the engine needs to run it.
        #[derive(Debug, Clone)]
        pub enum StepKind {
            $($variant($engine),)*
        }

        impl RawStep {
            /// The key the file uses for this kind.
            pub(crate) fn kind_name(&self) -> &'static str {
                match self {
                    $(RawStep::$variant(_) => $key,)*
                }
            }

            /// Everything the dispatch asks of a raw step, as its family's [`kind::RawKind`].
            pub(crate) fn as_kind(&self) -> &dyn kind::RawKind {
                match self {
                    $(RawStep::$variant(x) => x as &dyn kind::RawKind,)*
                }
            }

            /// Raw → engine kind (the family's checks; errors point into the file at `kp`, the
            /// kind's key). Returns the step's name and kind.
            pub(crate) fn validate(
                self,
                cx: &check::Check,
                kp: &rig_yaml::Path,
                within: Within,
            ) -> check::R<(Option<String>, StepKind)> {
                match self {
                    $(RawStep::$variant(x) => kind::RawKind::validate(x, cx, kp, within),)*
                }
            }
        }

        impl StepKind {
            /// The key the file uses for this kind.
            pub fn name(&self) -> &'static str {
                match self {
                    $(StepKind::$variant(_) => $key,)*
                }
            }

            /// Everything the engine asks of a step, as its family's [`kind::Kind`].
            pub(crate) fn as_kind(&self) -> &dyn kind::Kind {
                match self {
                    $(StepKind::$variant(x) => x as &dyn kind::Kind,)*
                }
            }

            fn as_kind_mut(&mut self) -> &mut dyn kind::Kind {
                match self {
                    $(StepKind::$variant(x) => x as &mut dyn kind::Kind,)*
                }
            }
        }
    };
}

// The kinds, each with its raw form, its engine type and its key in the file.
step_kinds! {
    Guest(RawGuest, GuestStep) = "guest",
    Qmp(RawQmp, QmpStep) = "qmp",
    PciHotplug(RawPciHotplug, PciHotplugStep) = "pci_hotplug",
    PciUnplug(RawPciUnplug, PciUnplugStep) = "pci_unplug",
    OverlayLoad(RawOverlayLoad, OverlayLoadStep) = "overlay_load",
    OverlayUnload(RawOverlayUnload, OverlayUnloadStep) = "overlay_unload",
    MemoryAdd(RawMemoryAdd, MemoryAddStep) = "memory_add",
    MemoryRemove(RawMemoryRemove, MemoryRemoveStep) = "memory_remove",
    MemoryOnline(RawMemoryOnline, MemoryOnlineStep) = "memory_online",
    MemoryOffline(RawMemoryOffline, MemoryOfflineStep) = "memory_offline",
    DevlinkReload(RawDevlinkReload, DevlinkReloadStep) = "devlink_reload",
    NetdevsimNew(RawNetdevsimNew, NetdevsimNewStep) = "netdevsim_new",
    NetdevsimDel(RawNetdevsimDel, NetdevsimDelStep) = "netdevsim_del",
    Parallel(RawParallel, ParallelStep) = "parallel",
    Repeat(RawRepeat, RepeatStep) = "repeat",
    WaitLog(RawWaitLog, WaitLogStep) = "wait_log",
    Sleep(RawSleep, Duration) = "sleep",
    MemoryResize(RawMemoryResize, MemoryResizeStep) = "memory_resize",
    OfUnittest(RawOfUnittest, OfUnittestStep) = "of_unittest",
}

impl StepKind {
    /// The step's own timeout, for the kinds that have one (not `parallel`'s deadline, `repeat`
    /// or `sleep`).
    pub fn timeout_mut(&mut self) -> Option<&mut Duration> {
        self.as_kind_mut().timeout_mut()
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
        self.as_kind_mut().children_mut()
    }

    /// Whether the step talks to the guest over ssh (the guest then needs its ssh server).
    pub fn over_ssh(&self) -> bool {
        self.as_kind()
            .shell_command()
            .is_some_and(|c| c.via == crate::guest::transport::Via::Ssh)
    }
}
