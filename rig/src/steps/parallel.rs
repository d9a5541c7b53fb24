//! `parallel`: its raw form and validation, and its execution. Guest-side children become
//! background jobs of the guest shell (or concurrent ssh channels), host-side children (QMP,
//! PCI and DIMM removal, sleeps) run on a host thread meanwhile; then everything is joined
//! against the deadline.

use super::check::{Check, R};
use super::control::{steps, Within};
use super::engine::shell::{job_launch, kill_jobs, poll_script};
use super::engine::{Engine, StepError};
use super::kind::{ExpectStatus, InParallel, Kind, RawKind};
use super::scalars::{stagger_delays, HumanDuration, Stagger, StaggerRange};
use super::{RawStep, Step, StepKind};
use crate::guest::transport::Via;
use crate::host::events::Event;
use base64::Engine as _;
use rig_yaml::Path;
use serde::Deserialize;
use std::time::{Duration, Instant};

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

/// Children run at once (at least two; no nested `parallel`); all must end by `deadline`.
#[derive(Debug, Clone)]
pub struct ParallelStep {
    pub deadline: Duration,
    /// Each child starts after a delay drawn from this range with the run's seed (`stagger:`).
    pub stagger: Option<Stagger>,
    pub steps: Vec<Step>,
}

impl RawKind for RawParallel {
    fn timeout_given(&self) -> bool {
        true
    }

    fn children(&self) -> &[RawStep] {
        &self.steps
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Parallel
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let p = self;
        if p.steps.len() < 2 {
            return Err(cx.err(
                &kp.key("steps"),
                "`parallel` needs at least two steps to race",
            ));
        }
        let deadline = cx.duration(Some(p.deadline), Duration::ZERO, &kp.key("deadline"))?;
        if let Some(st) = p.stagger.filter(|s| s.0.max >= deadline) {
            return Err(cx.err(
                &kp.key("stagger"),
                format!(
                    "the stagger's high end ({:?}) must be below the deadline ({:?})",
                    st.0.max, deadline
                ),
            ));
        }
        Ok((
            cx.name(p.name, kp)?,
            StepKind::Parallel(ParallelStep {
                deadline,
                stagger: p.stagger.map(|s| s.0),
                steps: steps(cx, p.steps, &kp.key("steps"), Within::Parallel)?,
            }),
        ))
    }
}

impl Kind for ParallelStep {
    fn timeout(&self) -> Duration {
        self.deadline
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
        run(e, step, self)
    }
}

/// Runs `parallel` step `step` (`p`): its children at once, joined against its deadline.
pub(super) fn run(eng: &mut Engine<'_>, step: &Step, p: &ParallelStep) -> Result<(), StepError> {
    let dir = format!("/tmp/rig-par-{}", eng.next_parallel());
    let has_ssh = eng.guest().ssh.is_some();
    // `stagger`: each child's start delay, drawn from the run's seed.
    let delays = match &p.stagger {
        Some(st) => {
            let d = stagger_delays(eng.rng(), p.steps.len(), st);
            eng.events().emit(Event::StepProgress {
                step: step.label(),
                message: format!("stagger delays {d:?}"),
                fraction: None,
            });
            d
        }
        None => vec![Duration::ZERO; p.steps.len()],
    };
    let delayed = |i: usize, cmd: String| match delays.get(i) {
        Some(d) if !d.is_zero() => format!("sleep {:.6}; {cmd}", d.as_secs_f64()),
        _ => cmd,
    };

    // Sort children: guest background jobs, ssh channels, host-side steps.
    let mut jobs: Vec<(usize, String)> = Vec::new();
    let mut ssh_cmds: Vec<(usize, String, ExpectStatus, Duration)> = Vec::new();
    let mut host: Vec<&Step> = Vec::new();
    let mut host_delays: Vec<Duration> = Vec::new();
    for (i, child) in p.steps.iter().enumerate() {
        let k = child.kind.as_kind();
        let ssh_child = match k.shell_command() {
            Some(c) if c.via == Via::Ssh && has_ssh => Some((c.cmd, c.expect, k.timeout())),
            _ => None,
        };
        if let Some((cmd, expect, timeout)) = ssh_child {
            let expect = if child.may_fail {
                ExpectStatus::Any
            } else {
                expect
            };
            ssh_cmds.push((i, delayed(i, cmd), expect, timeout));
            continue;
        }
        // Host-side kinds run on the host thread (a sleep there delays the host-side
        // children after it).
        if k.host_side() {
            host.push(child);
            host_delays.push(delays[i]);
            continue;
        }
        match k.job_script(child, eng) {
            Some(Ok(s)) => jobs.push((i, delayed(i, s))),
            Some(Err(e)) => {
                if !child.may_fail {
                    eng.fail(child, e);
                }
            }
            None => {
                host.push(child);
                host_delays.push(delays[i]);
            }
        }
    }

    // Launch the guest jobs; the launching shell returns at once.
    if !jobs.is_empty() {
        let mut launch = format!("rm -rf {dir}; mkdir -p {dir}; ");
        for (i, s) in &jobs {
            let b64 = base64::engine::general_purpose::STANDARD.encode(s);
            launch.push_str(&job_launch(&dir, *i, &b64));
        }
        eng.sh_ok(
            &launch,
            Duration::from_secs(60),
            "starting parallel guest jobs",
        )?;
    }

    // The children's time starts now that the guest jobs run: launching them (a guest
    // command, slow under TCG) is rig's work, not theirs.
    let start = Instant::now();
    let deadline = start + p.deadline.min(eng.remaining());

    // ssh channels and host-side steps run meanwhile.
    let mut host_fails: Vec<(&Step, StepError)> = Vec::new();
    let ssh_results = {
        let guest = eng.guest();
        let ssh = guest.ssh.as_ref();
        let vm = &mut guest.vm;
        std::thread::scope(|scope| {
            // Host steps use QMP on their own thread while the guest jobs run in the
            // background and the ssh commands run here.
            let host_thread = scope.spawn(|| {
                let mut fails = Vec::new();
                for (child, delay) in host.iter().zip(&host_delays) {
                    // The stagger delay counts from the parallel's start (host steps run
                    // one after another on this thread); nothing waits past the deadline.
                    std::thread::sleep(
                        (start + *delay)
                            .min(deadline)
                            .saturating_duration_since(Instant::now()),
                    );
                    let r = if Instant::now() >= deadline {
                        Err(StepError::Kernel(format!(
                            "not started: the parallel deadline ({:?}) had passed",
                            p.deadline
                        )))
                    } else {
                        exec_host(vm, child, deadline)
                    };
                    if let Err(e) = r {
                        if !child.may_fail {
                            fails.push((*child, e));
                        }
                    }
                }
                fails
            });
            let cmds: Vec<(&str, Duration)> = ssh_cmds
                .iter()
                .map(|(_, c, _, t)| {
                    let left = deadline.saturating_duration_since(Instant::now());
                    (c.as_str(), (*t).min(left))
                })
                .collect();
            let results = match (ssh, cmds.is_empty()) {
                (Some(s), false) => s.run_concurrent(&cmds),
                _ => Vec::new(),
            };
            match host_thread.join() {
                Ok(f) => host_fails = f,
                Err(_) => {
                    host_fails.push((step, StepError::Rig("host-side steps panicked".into())))
                }
            }
            results
        })
    };
    for child in &host {
        let failed = host_fails.iter().any(|(c, _)| std::ptr::eq(*c, *child));
        child.kind.as_kind().after_host(eng, !failed);
    }
    for (child, e) in host_fails {
        eng.fail(child, e);
    }
    for ((i, cmd, expect, _), r) in ssh_cmds.iter().zip(ssh_results) {
        let child = &p.steps[*i];
        match r {
            Ok(out) if expect.accepts(out.status) => {}
            Ok(out) => eng.fail(
                child,
                StepError::Kernel(format!("`{cmd}` exit status {}", out.status)),
            ),
            Err(e) => eng.fail(child, StepError::from_transport(&e)),
        }
    }

    // Join the guest jobs within the deadline.
    if !jobs.is_empty() {
        let ids: Vec<String> = jobs.iter().map(|(i, _)| i.to_string()).collect();
        let all_done = ids
            .iter()
            .map(|i| format!("[ -f {dir}/{i}.st ]"))
            .collect::<Vec<_>>()
            .join(" && ");
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = poll_script(&all_done, left);
        let joined = eng.sh(&wait, left + Duration::from_secs(30), Via::Hvc)?;
        // `i status end start` (guest uptimes) per job, with builtins only: no fork per job.
        let report = format!(
            "for i in {}; do s=running; e=; b=; [ -f {dir}/$i.st ] && read s < {dir}/$i.st; \
             [ -f {dir}/$i.end ] && read e < {dir}/$i.end; \
             [ -f {dir}/$i.start ] && read b < {dir}/$i.start; echo \"$i $s $e $b\"; done",
            ids.join(" ")
        );
        let statuses = eng.sh_ok(
            &report,
            Duration::from_secs(30),
            "collecting parallel job statuses",
        )?;
        if joined.status != 0 {
            let _ = eng.sh(&kill_jobs(&dir), Duration::from_secs(30), Via::Hvc);
        }
        let allowed = deadline.saturating_duration_since(start).as_secs_f64();
        for line in statuses.lines() {
            let mut it = line.split_whitespace();
            let (Some(i), Some(st)) = (it.next(), it.next()) else {
                continue;
            };
            let mut uptime = || it.next().and_then(|e| e.parse::<f64>().ok());
            let (end, began) = (uptime(), uptime());
            // The guest's answer is untrusted: an index that is not one of ours is skipped.
            let Some(child) = i.parse::<usize>().ok().and_then(|i| p.steps.get(i)) else {
                continue;
            };
            if st == "running" {
                eng.fail(
                    child,
                    StepError::Kernel(format!(
                        "still running at the parallel deadline ({:?})",
                        p.deadline
                    )),
                );
            } else if let Some(took) = began.zip(end).map(|(a, b)| b - a).filter(|t| {
                // A tenth of a second for the guest's own clock reads.
                *t > allowed + 0.1
            }) {
                eng.fail(
                    child,
                    StepError::Kernel(format!(
                        "ran {took:.1}s, past the parallel's deadline ({:?})",
                        p.deadline
                    )),
                );
            } else if st != "0" {
                let out = eng
                    .sh(
                        &format!("tail -c 2000 {dir}/{i}.out"),
                        Duration::from_secs(30),
                        Via::Hvc,
                    )
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                eng.fail(
                    child,
                    StepError::Kernel(format!("exit status {st}: {}", out.trim())),
                );
            }
        }
    }
    // The deadline is the children's: a child still running at it failed above (guest
    // jobs by the join, host-side steps and ssh commands by their waits, which end there).
    // rig's own work around them (launching, joining, collecting statuses) is not counted.
    Ok(())
}

/// Runs a host-side child of `parallel` (QMP, PCI and DIMM removal, resizes, sleeps); no wait
/// outlasts `deadline`.
fn exec_host(
    vm: &mut crate::machine::vm::Vm,
    step: &Step,
    deadline: Instant,
) -> Result<(), StepError> {
    let k = step.kind.as_kind();
    if !k.host_side() {
        return Err(StepError::Rig(format!(
            "`{}` cannot run inside `parallel` (only guest commands, memory online/offline, \
             devlink/netdevsim, overlay_unload, repeat of those, and qmp / memory_remove / \
             memory_resize / pci_unplug / sleep on the host)",
            step.kind.name()
        )));
    }
    k.exec_host(vm, deadline)
}
