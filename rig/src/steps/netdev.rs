//! `devlink_reload`, `netdevsim_new` and `netdevsim_del`: steps that are one guest shell
//! command each (over hvc or ssh). Guest-side: a background job or an ssh channel inside
//! `parallel`.

use super::check::{list, Check, Ids, R};
use super::engine::{Engine, StepError};
use super::kind::{ExpectStatus, InParallel, Kind, RawKind, ShellCommand};
use super::scalars::HumanDuration;
use super::{Feature, Step, StepKind, Within};
use crate::guest::transport::Via;
use rig_yaml::Path;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The default `timeout` of `devlink_reload`.
pub const DEVLINK_TIMEOUT: Duration = Duration::from_secs(20);
/// The default `timeout` of the netdevsim steps.
pub const NETDEVSIM_TIMEOUT: Duration = Duration::from_secs(10);

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

impl RawKind for RawDevlinkReload {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::Devlink)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let d = self;
        let ok = d.dev.split('/').count() == 2
            && d.dev.split('/').all(|p| !p.is_empty())
            && !d
                .dev
                .chars()
                .any(|c| c.is_whitespace() || c == '\'' || c == '"');
        if !ok {
            return Err(cx.err(
                &kp.key("dev"),
                format!(
                    "invalid devlink handle `{}` (write BUS/NAME, e.g. netdevsim/netdevsim10)",
                    d.dev
                ),
            ));
        }
        Ok((
            cx.name(d.name, kp)?,
            StepKind::DevlinkReload(DevlinkReloadStep {
                dev: d.dev,
                action: d.action.unwrap_or_default(),
                via: cx.via(d.via, &kp.key("via")),
                timeout: cx.timeout(d.timeout, DEVLINK_TIMEOUT, kp)?,
            }),
        ))
    }
}

impl RawKind for RawNetdevsimNew {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::Netdevsim)
    }

    fn collect_ids(&self, ids: &mut Ids) {
        ids.netdevsim.insert(self.id);
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let n = self;
        let ports = n.ports.unwrap_or(1);
        if ports == 0 {
            return Err(cx.err(&kp.key("ports"), "a netdevsim device needs at least 1 port"));
        }
        Ok((
            cx.name(n.name, kp)?,
            StepKind::NetdevsimNew(NetdevsimNewStep {
                id: n.id,
                ports,
                via: cx.via(n.via, &kp.key("via")),
                timeout: cx.timeout(n.timeout, NETDEVSIM_TIMEOUT, kp)?,
            }),
        ))
    }
}

impl RawKind for RawNetdevsimDel {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::Netdevsim)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let n = self;
        if !cx.ids.netdevsim.contains(&n.id) {
            return Err(cx.err(
                &kp.key("id"),
                format!(
                    "no netdevsim_new step creates device {} (created: {})",
                    n.id,
                    list(&cx.ids.netdevsim)
                ),
            ));
        }
        Ok((
            cx.name(n.name, kp)?,
            StepKind::NetdevsimDel(NetdevsimDelStep {
                id: n.id,
                via: cx.via(n.via, &kp.key("via")),
                timeout: cx.timeout(n.timeout, NETDEVSIM_TIMEOUT, kp)?,
            }),
        ))
    }
}

/// Runs a step that is one guest command (status 0 passes).
fn exec_command(e: &mut Engine<'_>, c: ShellCommand, timeout: Duration) -> Result<(), StepError> {
    let out = e.sh(&c.cmd, timeout, c.via)?;
    if out.status != 0 {
        return Err(StepError::Kernel(format!(
            "`{}` exit status {}: {}{}",
            c.cmd,
            out.status,
            out.stdout.trim(),
            out.stderr.as_deref().unwrap_or_default().trim()
        )));
    }
    Ok(())
}

/// A command whose status 0 passes.
fn command(cmd: String, via: Via) -> Option<ShellCommand> {
    Some(ShellCommand {
        cmd,
        via,
        expect: ExpectStatus::OneOf(vec![0]),
    })
}

impl Kind for DevlinkReloadStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn shell_command(&self) -> Option<ShellCommand> {
        command(
            format!(
                "devlink dev reload {} action {}",
                self.dev,
                self.action.devlink_name()
            ),
            self.via,
        )
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let c = self
            .shell_command()
            .ok_or_else(|| StepError::Rig("no command".into()))?;
        exec_command(e, c, self.timeout)
    }
}

impl Kind for NetdevsimNewStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn shell_command(&self) -> Option<ShellCommand> {
        command(
            format!(
                "echo '{} {}' > /sys/bus/netdevsim/new_device",
                self.id, self.ports
            ),
            self.via,
        )
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let c = self
            .shell_command()
            .ok_or_else(|| StepError::Rig("no command".into()))?;
        exec_command(e, c, self.timeout)
    }
}

impl Kind for NetdevsimDelStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn shell_command(&self) -> Option<ShellCommand> {
        command(
            format!("echo {} > /sys/bus/netdevsim/del_device", self.id),
            self.via,
        )
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let c = self
            .shell_command()
            .ok_or_else(|| StepError::Rig("no command".into()))?;
        exec_command(e, c, self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell_command(kind: &StepKind) -> Option<(String, Via)> {
        kind.as_kind().shell_command().map(|c| (c.cmd, c.via))
    }

    #[test]
    fn shell_like_steps_become_one_command_each() {
        let t = Duration::from_secs(1);
        let new = StepKind::NetdevsimNew(NetdevsimNewStep {
            id: 10,
            ports: 1,
            via: Via::Ssh,
            timeout: t,
        });
        assert_eq!(
            shell_command(&new),
            Some((
                "echo '10 1' > /sys/bus/netdevsim/new_device".into(),
                Via::Ssh
            ))
        );
        let reload = StepKind::DevlinkReload(DevlinkReloadStep {
            dev: "netdevsim/netdevsim10".into(),
            action: ReloadAction::FwActivate,
            via: Via::Hvc,
            timeout: t,
        });
        assert_eq!(
            shell_command(&reload).unwrap().0,
            "devlink dev reload netdevsim/netdevsim10 action fw_activate"
        );
        let del = StepKind::NetdevsimDel(NetdevsimDelStep {
            id: 10,
            via: Via::Hvc,
            timeout: t,
        });
        assert_eq!(
            shell_command(&del).unwrap().0,
            "echo 10 > /sys/bus/netdevsim/del_device"
        );
        assert_eq!(shell_command(&StepKind::Sleep(t)), None);
    }
}
