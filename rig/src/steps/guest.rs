//! `guest`: a shell command in the guest, over the console (hvc) or ssh.

use super::check::{Check, R};
use super::engine::{Engine, StepError};
use super::kind::{ExpectStatus, InParallel, Kind, RawKind, ShellCommand};
use super::scalars::HumanDuration;
use super::{Step, StepKind, Within};
use crate::guest::transport::Via;
use rig_yaml::Path;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// The default `timeout`.
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(20);

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

/// A shell command in the guest.
#[derive(Debug, Clone)]
pub struct GuestStep {
    pub run: String,
    pub timeout: Duration,
    pub expect_status: ExpectStatus,
    pub via: Via,
}

impl RawKind for RawGuest {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let g = self;
        if g.run.trim().is_empty() {
            return Err(cx.err(&kp.key("run"), "empty command"));
        }
        let expect_status = match g.expect_status {
            None => ExpectStatus::OneOf(vec![0]),
            Some(RawStatus::Any) => ExpectStatus::Any,
            Some(RawStatus::OneOf(v)) => {
                let sp = kp.key("expect_status");
                if v.is_empty() {
                    return Err(cx.err(&sp, "empty list of exit statuses"));
                }
                let mut out = Vec::new();
                for s in v {
                    match i32::try_from(s) {
                        Ok(s) if (0..=255).contains(&s) => out.push(s),
                        _ => return Err(cx.err(&sp, format!("exit status {s} is outside 0-255"))),
                    }
                }
                ExpectStatus::OneOf(out)
            }
        };
        Ok((
            cx.name(g.name, kp)?,
            StepKind::Guest(GuestStep {
                run: g.run,
                timeout: cx.timeout(g.timeout, GUEST_TIMEOUT, kp)?,
                expect_status,
                via: cx.via(g.via, &kp.key("via")),
            }),
        ))
    }
}

impl Kind for GuestStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn shell_command(&self) -> Option<ShellCommand> {
        Some(ShellCommand {
            cmd: self.run.clone(),
            via: self.via,
            expect: self.expect_status.clone(),
        })
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let out = e.sh(&self.run, self.timeout, self.via)?;
        if !self.expect_status.accepts(out.status) {
            let mut msg = format!("exit status {}", out.status);
            let text = format!(
                "{}{}",
                out.stdout,
                out.stderr.as_deref().unwrap_or_default()
            );
            if !text.trim().is_empty() {
                msg.push_str(&format!(": {}", text.trim()));
            }
            return Err(StepError::Kernel(msg));
        }
        Ok(())
    }
}
