//! `repeat`, and what the steps that hold steps share: the walk that validates a list of steps
//! through the dispatch, and what may stand where ([`Within`]). `parallel` is
//! [`super::parallel`].

use super::check::{Check, Ids, R};
use super::engine::{Engine, StepError};
use super::kind::{InParallel, Kind, RawKind};
use super::scalars::HumanDuration;
use super::{RawStep, Step, StepKind};
use crate::host::events::Event;
use rig_yaml::Path;
use serde::Deserialize;
use std::time::{Duration, Instant};

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

/// Validates a list of steps (at `path`, standing `within`).
pub(crate) fn steps(cx: &Check, raw: Vec<RawStep>, path: &Path, within: Within) -> R<Vec<Step>> {
    if raw.is_empty() {
        return Err(cx.err(path, "needs at least one step"));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| step(cx, s, &path.index(i), within))
        .collect()
}

/// Validates one step: what every kind shares (where it may stand, the feature it implies, its
/// position), then its family's checks.
fn step(cx: &Check, raw: RawStep, path: &Path, within: Within) -> R<Step> {
    let kind_name = raw.kind_name();
    let kp = path.key(kind_name);
    let k = raw.as_kind();
    if let Some(why) = within.refuses(kind_name, k.in_parallel()) {
        return Err(cx.err_key(&kp, why));
    }
    let mut at = cx.location(&kp, true);
    at.path = path.to_string();
    if let Some(f) = k.implied_feature(&cx.ids) {
        if !cx.requires.contains(&f) {
            return Err(cx.err_key(
                &kp,
                format!("`{kind_name}` steps need `{f}` in the scenario's `requires`"),
            ));
        }
    }
    let may_fail = k.may_fail();
    let default_timeout = !k.timeout_given();
    let (name, kind) = raw.validate(cx, &kp, within)?;
    Ok(Step {
        name,
        may_fail,
        default_timeout,
        at,
        kind,
    })
}

/// Notes the ids `steps` (and the steps inside them) create, before any is validated.
pub(crate) fn collect_ids(steps: &[RawStep], ids: &mut Ids) {
    for s in steps {
        let k = s.as_kind();
        k.collect_ids(ids);
        collect_ids(k.children(), ids);
    }
}

/// Where a step sits, for what may run there. Inside `parallel`, guest-side children become
/// background jobs of the guest shell and host-side ones (QMP, removals, sleeps) run on a host
/// thread; steps that set something up and wait for the guest to agree cannot race there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Within {
    Top,
    /// A direct child of `parallel`.
    Parallel,
    /// Inside a `repeat` inside `parallel`: one guest background job loops over these.
    GuestJob,
}

impl Within {
    pub(super) fn repeat(self) -> Within {
        match self {
            Within::Top => Within::Top,
            Within::Parallel | Within::GuestJob => Within::GuestJob,
        }
    }

    /// Why a step of kind `kind` (which stands `role` inside `parallel`) cannot be here.
    fn refuses(self, kind: &str, role: InParallel) -> Option<String> {
        match self {
            Within::Top => None,
            _ if role == InParallel::Parallel => Some(
                "`parallel` cannot nest inside another `parallel`; list all racing steps in one"
                    .into(),
            ),
            _ if role == InParallel::Never => Some(format!(
                "`{kind}` cannot run inside `parallel`: it sets something up and waits for the \
                 guest; put it before the `parallel`"
            )),
            Within::GuestJob if role == InParallel::Host => Some(format!(
                "`{kind}` runs on the host and cannot be repeated inside a guest job; inside \
                 `parallel`, `repeat` may only hold guest-side steps (guest, memory_online, \
                 memory_offline, devlink_reload, netdevsim_new, netdevsim_del, overlay_unload, \
                 sleep)"
            )),
            _ => None,
        }
    }
}

impl RawKind for RawRepeat {
    fn timeout_given(&self) -> bool {
        true
    }

    fn children(&self) -> &[RawStep] {
        &self.steps
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, within: Within) -> R<(Option<String>, StepKind)> {
        let r = self;
        let count = match (r.times, r.for_) {
            (Some(_), Some(_)) => {
                return Err(cx.err_key(&kp.key("for"), "give either `times` or `for`, not both"))
            }
            (None, None) => {
                return Err(cx.err(kp, "needs `times: N` or `for: DURATION`"));
            }
            (Some(0), None) => {
                return Err(cx.err(&kp.key("times"), "must be at least 1"));
            }
            (Some(n), None) => RepeatCount::Times(n),
            (None, Some(d)) => {
                RepeatCount::For(cx.duration(Some(d), Duration::ZERO, &kp.key("for"))?)
            }
        };
        Ok((
            cx.name(r.name, kp)?,
            StepKind::Repeat(RepeatStep {
                count,
                steps: steps(cx, r.steps, &kp.key("steps"), within.repeat())?,
            }),
        ))
    }
}

impl Kind for RepeatStep {
    /// No bound of its own: the scenario timeout holds.
    fn timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        None
    }

    fn children(&self) -> &[Step] {
        &self.steps
    }

    fn children_mut(&mut self) -> &mut [Step] {
        &mut self.steps
    }

    fn exec(&self, step: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let r = self;
        let start = Instant::now();
        let mut n = 0u32;
        loop {
            let more = match r.count {
                RepeatCount::Times(t) => n < t,
                RepeatCount::For(d) => start.elapsed() < d,
            };
            if !more {
                break;
            }
            n += 1;
            e.events().emit(Event::StepProgress {
                step: step.label(),
                message: format!("round {n}"),
                fraction: match r.count {
                    RepeatCount::Times(t) => Some(n as f64 / t as f64),
                    RepeatCount::For(_) => None,
                },
            });
            let last_round = match r.count {
                RepeatCount::Times(t) => n >= t,
                RepeatCount::For(d) => start.elapsed() >= d,
            };
            for (j, child) in r.steps.iter().enumerate() {
                // After the last child comes the next round's first.
                let next = r
                    .steps
                    .get(j + 1)
                    .or(r.steps.first().filter(|_| !last_round));
                if e.step_before(child, next) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// One guest job loops over the children's scripts.
    fn job_script(&self, _: &Step, e: &Engine<'_>) -> Option<Result<String, StepError>> {
        let mut body = Vec::new();
        for c in &self.steps {
            match c.kind.as_kind().job_script(c, e)? {
                Ok(s) => body.push(format!("{{ {s}; }} || exit $?")),
                Err(err) => return Some(Err(err)),
            }
        }
        Some(Ok(match self.count {
            RepeatCount::Times(t) => format!(
                "n=0; while [ $n -lt {t} ]; do n=$((n+1)); {}; done",
                body.join("; ")
            ),
            RepeatCount::For(d) => format!(
                "end=$(($(date +%s) + {})); while [ $(date +%s) -lt $end ]; do {}; done",
                d.as_secs().max(1),
                body.join("; ")
            ),
        }))
    }
}
