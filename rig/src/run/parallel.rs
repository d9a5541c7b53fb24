//! `parallel`: guest-side children become background jobs of the guest shell (or concurrent ssh
//! channels), host-side children (QMP, PCI and DIMM removal) run on a host thread meanwhile; then
//! everything is joined against the deadline.

use super::exec::{Exec, StepError};
use super::shell::{checked, job_launch, kill_jobs, overlay_remove_cmd, poll_script};
use crate::guest::transport::Via;
use crate::scenario::{self, ExpectStatus, Step, StepKind};
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl Exec<'_> {
    /// The guest shell script for a step that can run as a background job, if it can.
    pub(super) fn job_script(&self, step: &Step) -> Option<Result<String, StepError>> {
        let script = match &step.kind {
            StepKind::Guest(g) => checked(&g.run, &g.expect_status, step.may_fail),
            StepKind::DevlinkReload(_) | StepKind::NetdevsimNew(_) | StepKind::NetdevsimDel(_) => {
                let (cmd, _) = super::shell::shell_command(&step.kind)?;
                checked(&cmd, &ExpectStatus::OneOf(vec![0]), step.may_fail)
            }
            StepKind::MemoryOnline(_) | StepKind::MemoryOffline(_) => {
                match self.memory_state_cmd(&step.kind) {
                    Ok(cmd) => checked(&cmd, &ExpectStatus::OneOf(vec![0]), step.may_fail),
                    Err(e) => return Some(Err(e)),
                }
            }
            StepKind::OverlayUnload(o) => checked(
                &overlay_remove_cmd(&o.id),
                &ExpectStatus::OneOf(vec![0]),
                step.may_fail,
            ),
            StepKind::Sleep(d) => format!("sleep {}", d.as_secs_f64()),
            StepKind::Repeat(r) => {
                let mut body = Vec::new();
                for c in &r.steps {
                    match self.job_script(c)? {
                        Ok(s) => body.push(format!("{{ {s}; }} || exit $?")),
                        Err(e) => return Some(Err(e)),
                    }
                }
                match r.count {
                    scenario::RepeatCount::Times(t) => format!(
                        "n=0; while [ $n -lt {t} ]; do n=$((n+1)); {}; done",
                        body.join("; ")
                    ),
                    scenario::RepeatCount::For(d) => format!(
                        "end=$(($(date +%s) + {})); while [ $(date +%s) -lt $end ]; do {}; done",
                        d.as_secs().max(1),
                        body.join("; ")
                    ),
                }
            }
            _ => return None,
        };
        Some(Ok(script))
    }

    pub(super) fn parallel(
        &mut self,
        step: &Step,
        p: &scenario::ParallelStep,
    ) -> Result<(), StepError> {
        self.par_seq += 1;
        let dir = format!("/tmp/rig-par-{}", self.par_seq);
        let has_ssh = self.guest.ssh.is_some();
        // `stagger`: each child's start delay, drawn from the run's seed.
        let delays = match &p.stagger {
            Some(st) => {
                let d = super::seed::stagger_delays(&mut self.rng, p.steps.len(), st);
                self.events.emit(crate::host::events::Event::StepProgress {
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
            let ssh_child = match &child.kind {
                StepKind::Guest(g) if g.via == Via::Ssh && has_ssh => {
                    Some((g.run.clone(), g.expect_status.clone(), g.timeout))
                }
                k => match super::shell::shell_command(k) {
                    Some((cmd, Via::Ssh)) if has_ssh => {
                        Some((cmd, ExpectStatus::OneOf(vec![0]), k.timeout()))
                    }
                    _ => None,
                },
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
            // A sleep directly in `parallel` delays the host-side children after it.
            if matches!(child.kind, StepKind::Sleep(_)) {
                host.push(child);
                host_delays.push(delays[i]);
                continue;
            }
            match self.job_script(child) {
                Some(Ok(s)) => jobs.push((i, delayed(i, s))),
                Some(Err(e)) => {
                    if !child.may_fail {
                        self.fail(child, e);
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
            self.sh_ok(
                &launch,
                Duration::from_secs(60),
                "starting parallel guest jobs",
            )?;
        }

        // The children's time starts now that the guest jobs run: launching them (a guest
        // command, slow under TCG) is rig's work, not theirs.
        let start = Instant::now();
        let deadline = start + p.deadline.min(self.remaining());

        // ssh channels and host-side steps run meanwhile.
        let mut host_fails: Vec<(&Step, StepError)> = Vec::new();
        let ssh_results = {
            let ssh = self.guest.ssh.as_ref();
            let vm = &mut self.guest.vm;
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
            if let StepKind::MemoryRemove(m) = &child.kind {
                let failed = host_fails.iter().any(|(c, _)| std::ptr::eq(*c, *child));
                if !m.wait && !failed {
                    self.unplugging.insert(m.id.clone());
                } else if m.wait && !failed {
                    self.dimms.remove(&m.id);
                }
            }
        }
        for (child, e) in host_fails {
            self.fail(child, e);
        }
        for ((i, cmd, expect, _), r) in ssh_cmds.iter().zip(ssh_results) {
            let child = &p.steps[*i];
            match r {
                Ok(out) if expect.accepts(out.status) => {}
                Ok(out) => self.fail(
                    child,
                    StepError::Kernel(format!("`{cmd}` exit status {}", out.status)),
                ),
                Err(e) => self.fail(child, StepError::from_transport(&e)),
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
            let joined = self.sh(&wait, left + Duration::from_secs(30), Via::Hvc)?;
            // `i status end start` (guest uptimes) per job, with builtins only: no fork per job.
            let report = format!(
                "for i in {}; do s=running; e=; b=; [ -f {dir}/$i.st ] && read s < {dir}/$i.st; \
                 [ -f {dir}/$i.end ] && read e < {dir}/$i.end; \
                 [ -f {dir}/$i.start ] && read b < {dir}/$i.start; echo \"$i $s $e $b\"; done",
                ids.join(" ")
            );
            let statuses = self.sh_ok(
                &report,
                Duration::from_secs(30),
                "collecting parallel job statuses",
            )?;
            if joined.status != 0 {
                let _ = self.sh(&kill_jobs(&dir), Duration::from_secs(30), Via::Hvc);
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
                    self.fail(
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
                    self.fail(
                        child,
                        StepError::Kernel(format!(
                            "ran {took:.1}s, past the parallel's deadline ({:?})",
                            p.deadline
                        )),
                    );
                } else if st != "0" {
                    let out = self
                        .sh(
                            &format!("tail -c 2000 {dir}/{i}.out"),
                            Duration::from_secs(30),
                            Via::Hvc,
                        )
                        .map(|o| o.stdout)
                        .unwrap_or_default();
                    self.fail(
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
}

/// Runs a host-side child of `parallel` (QMP, PCI, DIMM steps); no wait outlasts `deadline`.
fn exec_host(
    vm: &mut crate::machine::vm::Vm,
    step: &Step,
    deadline: Instant,
) -> Result<(), StepError> {
    let within = |t: Duration| t.min(deadline.saturating_duration_since(Instant::now()));
    match &step.kind {
        StepKind::MemoryRemove(m) if !m.wait => vm
            .qmp_raw("device_del", Some(json!({"id": m.id})))
            .map(drop)
            .map_err(StepError::from),
        StepKind::MemoryRemove(m) => vm
            .device_del_within(&m.id, within(m.timeout))
            .map_err(Into::into),
        StepKind::PciUnplug(u) => vm
            .device_del_within(&u.id, within(u.timeout))
            .map_err(Into::into),
        StepKind::MemoryResize(m) => super::virtio_mem::resize(vm, m, deadline),
        StepKind::Qmp(q) => {
            let args = (!q.arguments.is_empty()).then(|| Value::Object(q.arguments.clone()));
            vm.qmp_raw(&q.execute, args)
                .map(drop)
                .map_err(StepError::from)
        }
        StepKind::Sleep(d) => {
            std::thread::sleep(within(*d));
            Ok(())
        }
        other => Err(StepError::Rig(format!(
            "`{}` cannot run inside `parallel` (only guest commands, memory online/offline, \
             devlink/netdevsim, overlay_unload, repeat of those, and qmp / memory_remove / \
             memory_resize / pci_unplug / sleep on the host)",
            other.name()
        ))),
    }
}
