//! Carrying out one planned run: the child rig(s), the fault at its moment, and the checks.

use super::child::{self, Child};
use super::fault::{Anchor, Fault, Moment, Plan};
use super::procs;
use super::session::{exits_after_signal, Run};
use super::tmpfs::{fill, keep_copy, Tmpfs};
use super::{evidence, hostile, tree};
use super::{Ctx, RunRecord, SoakError};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The folder of run `plan.index`, with its scenario written.
fn prepare(ctx: &Ctx, plan: &Plan) -> Result<(PathBuf, PathBuf), SoakError> {
    let dir = ctx
        .dir
        .join(format!("run-{:03}-{}", plan.index + 1, plan.fault));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SoakError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let scenario = dir.join("scenario.yaml");
    let outside = dir.join("outside");
    let text = plan
        .scenario
        .replace(super::plan::OUTSIDE, &outside.to_string_lossy());
    std::fs::write(&scenario, text).map_err(io(&scenario))?;
    Ok((dir, scenario))
}

/// Runs `plan` and checks it. A failure of the soak itself (cannot write, cannot mount) is an
/// error; anything rig did wrong is in the record.
pub fn execute(ctx: &Ctx, plan: &Plan) -> Result<RunRecord, SoakError> {
    let started = Instant::now();
    let (dir, scenario) = prepare(ctx, plan)?;
    let mut run = Run {
        ctx,
        dir,
        scenario,
        plan,
        children: Vec::new(),
        problems: Vec::new(),
        injected: true,
        kernel: None,
    };
    match (plan.fault, &plan.moment) {
        (
            Fault::QemuKill | Fault::QemuStop | Fault::QmpSocketGone | Fault::QemuStopInQmpWait,
            &Moment::After { anchor, delay_s },
        ) => {
            let mut c = run.spawn_warm(Vec::new())?;
            let deadline = c.started + run.deadline();
            run.injected = c.wait_anchor(anchor, deadline)
                && c.sleep_alive(Duration::from_secs_f64(delay_s))
                && inject_host(plan.fault, &c);
            let expected = match (plan.fault, run.injected) {
                (Fault::QmpSocketGone, _) | (_, false) => vec![0],
                _ => vec![125],
            };
            run.finish(c, expected);
        }
        (
            Fault::Sigint | Fault::Sigterm,
            &Moment::Signal {
                signal,
                group,
                anchor,
                delay_s,
            },
        ) => {
            let mut c = run.spawn_warm(Vec::new())?;
            let deadline = c.started + run.deadline();
            let reached =
                c.wait_anchor(anchor, deadline) && c.sleep_alive(Duration::from_secs_f64(delay_s));
            let late = c.verdict_seen();
            run.injected = reached && c.signal(signal, group);
            // rig had printed its verdict and was exiting (`late`): either code is right.
            run.finish(c, exits_after_signal(run.injected, signal, late));
        }
        (Fault::KillAtRepetition, &Moment::Signal { .. }) => {
            evidence::kill_at_repetition(&mut run)?
        }
        (Fault::ReportDiskFull, &Moment::After { .. }) => evidence::report_disk_full(&mut run)?,
        (Fault::HostileBundle, &Moment::Bundle { variant }) => hostile::bundle(&mut run, variant)?,
        (Fault::HostileDevice, Moment::Device { variant }) => hostile::device(&mut run, variant)?,
        (Fault::TreeUntrackedFile, Moment::Untracked { file }) => tree::untracked(&mut run, file)?,
        (Fault::SshPortTaken, &Moment::Port { before_rig }) => port_taken(&mut run, before_rig)?,
        (Fault::ArtifactsFull, &Moment::Headroom { kib }) => artifacts_full(&mut run, kib)?,
        (Fault::TwoRigsEmptyCache, &Moment::Offset { delay_s }) => two_rigs(&mut run, delay_s)?,
        (
            Fault::KillDuringCacheBuild,
            &Moment::Signal {
                signal,
                group,
                delay_s,
                ..
            },
        ) => kill_during_build(&mut run, signal, group, delay_s)?,
        (fault, Moment::InGuest { .. }) => {
            let c = run.spawn_warm(Vec::new())?;
            let expected = match fault {
                Fault::GuestPanic | Fault::GuestHang | Fault::ConsoleSilent => vec![1],
                Fault::DropbearKilled | Fault::DropbearKilledInParallel => vec![125],
                _ => vec![0],
            };
            run.finish(c, expected);
        }
        (fault, moment) => {
            return Err(SoakError::Plan {
                what: format!("{fault} cannot be injected as `{moment}`"),
            })
        }
    }
    Ok(RunRecord {
        index: plan.index,
        fault: plan.fault,
        moment: plan.moment.to_string(),
        injected: run.injected,
        children: run.children,
        problems: run.problems,
        seconds: started.elapsed().as_secs_f64(),
        folder: run.dir,
    })
}

/// SIGKILL or SIGSTOP to the run's QEMU, or its QMP socket removed; false if there was no QEMU.
fn inject_host(fault: Fault, c: &Child) -> bool {
    match fault {
        Fault::QmpSocketGone => {
            child::qmp_socket(&c.qemu_argv()).is_some_and(|p| std::fs::remove_file(p).is_ok())
        }
        _ => {
            use rustix::process::{kill_process, Pid, Signal};
            let sig = if fault == Fault::QemuKill {
                Signal::KILL
            } else {
                Signal::STOP
            };
            // Found by its marker, so never another run's QEMU.
            match procs::qemu_of(&c.run_id).and_then(Pid::from_raw) {
                Some(pid) => kill_process(pid, sig).is_ok(),
                None => false,
            }
        }
    }
}

/// A port on 127.0.0.1 that is free now, and whether the next one is too.
fn free_port(pair: bool) -> Result<u16, SoakError> {
    for _ in 0..50 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|source| SoakError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })?;
        let p = l.local_addr().map(|a| a.port()).unwrap_or(0);
        drop(l);
        if (1024..u16::MAX).contains(&p)
            && (!pair || TcpListener::bind((Ipv4Addr::LOCALHOST, p + 1)).is_ok())
        {
            return Ok(p);
        }
    }
    Err(SoakError::Plan {
        what: "no free pair of loopback ports".into(),
    })
}

/// The ssh port taken by another process: before rig starts (rig's bind test must skip it and
/// use the other port of its range: the run passes), or as soon as rig has locked it and
/// before QEMU binds it (QEMU cannot forward it: infra).
fn port_taken(run: &mut Run<'_>, before_rig: bool) -> Result<(), SoakError> {
    if before_rig {
        let p = free_port(true)?;
        let squatter =
            TcpListener::bind((Ipv4Addr::LOCALHOST, p)).map_err(|source| SoakError::Io {
                path: format!("127.0.0.1:{p}").into(),
                source,
            })?;
        let c = run.spawn_warm(vec![("RIG_SSH_PORTS".into(), format!("{p}-{}", p + 1))])?;
        run.finish(c, vec![0]);
        drop(squatter);
        return Ok(());
    }
    let p = free_port(false)?;
    let lock = crate::guest::ssh::port::lock_dir()
        .map_err(|e| SoakError::Plan {
            what: e.to_string(),
        })?
        .join(p.to_string());
    let mut c = run.spawn_warm(vec![("RIG_SSH_PORTS".into(), p.to_string())])?;
    let deadline = c.started + run.deadline();
    let mut squatter = None;
    while Instant::now() < deadline && !c.exited() && !c.reached(Anchor::BootReady) {
        use std::os::unix::fs::MetadataExt;
        let locked = std::fs::metadata(&lock).is_ok_and(|m| child::holds_flock(c.pid, m.ino()));
        if locked {
            // rig chose the port: take it before QEMU does (or find that QEMU was first).
            squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).ok();
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    run.injected = squatter.is_some();
    let expected = if run.injected { vec![125] } else { vec![0] };
    run.finish(c, expected);
    drop(squatter);
    Ok(())
}

/// The artifacts folder on a full filesystem: rig must say it could not keep the evidence
/// (infra), never pass or blame the kernel on a console log it could not write.
fn artifacts_full(run: &mut Run<'_>, kib: u64) -> Result<(), SoakError> {
    let mnt = run.dir.join("artifacts");
    let fs = Tmpfs::mount(&mnt, 1 << 20)?;
    fill(&mnt, kib)?;
    let c = run.spawn(0, &run.ctx.cache.clone(), &mnt, Vec::new())?;
    run.finish(c, vec![125]);
    // Keep what rig managed to write, for the record.
    if let Some(rec) = run.children.last_mut() {
        if let Some(folder) = rec.artifacts.take() {
            rec.artifacts = Some(keep_copy(&folder, run.dir.join("artifacts-kept")));
        }
    }
    drop(fs);
    Ok(())
}

/// A fresh empty cache for the run, removed afterwards.
fn empty_cache(run: &Run<'_>) -> PathBuf {
    run.dir.join("cache")
}

/// Problems with a cache once every rig that used it ended: leftovers of builds, and (for
/// debian-6.1) a kernel image that is not the pinned one.
fn cache_problems(ctx: &Ctx, cache: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut leftovers = Vec::new();
    if let Ok(kinds) = std::fs::read_dir(cache) {
        for kind in kinds.flatten() {
            for e in std::fs::read_dir(kind.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    leftovers.push(e.path().display().to_string());
                }
            }
        }
    }
    if !leftovers.is_empty() {
        problems.push(format!(
            "half-built entries left behind: {}",
            leftovers.join(", ")
        ));
    }
    if ctx.kernel == crate::provision::image::debian::NAME {
        let c = crate::host::cache::Cache::at(cache);
        let arch = ctx.arch;
        match crate::provision::image::debian::pin(arch).and_then(|pin| {
            let k = crate::provision::image::debian::kernel(
                arch,
                &c,
                &crate::host::events::Events::none(),
            )?;
            Ok((pin, k))
        }) {
            Ok((pin, k)) => match crate::host::cache::sha256_file(&k.image) {
                Ok(sum) if sum == pin.image_sha256 => {}
                Ok(sum) => problems.push(format!(
                    "cached kernel {} has sha256 {sum}, the pin says {}",
                    k.image.display(),
                    pin.image_sha256
                )),
                Err(e) => problems.push(format!("cached kernel unreadable: {e}")),
            },
            Err(e) => problems.push(format!("cannot check the cached kernel: {e}")),
        }
    }
    problems
}

/// Two rigs at once on one empty cache: both pass, and no entry is built by both.
fn two_rigs(run: &mut Run<'_>, delay_s: f64) -> Result<(), SoakError> {
    let cache = empty_cache(run);
    let a = run.spawn(0, &cache, &run.dir.join("artifacts-0"), Vec::new())?;
    std::thread::sleep(Duration::from_secs_f64(delay_s));
    let b = run.spawn(1, &cache, &run.dir.join("artifacts-1"), Vec::new())?;
    let (built_a, built_b) = {
        let (mut a, mut b) = (a, b);
        // Wait for both before checking either, so their leak checks see a quiet machine.
        let deadline = a.started + run.deadline();
        a.wait_exit(deadline);
        b.wait_exit(b.started + run.deadline());
        let built = (a.built_steps(), b.built_steps());
        run.finish(a, vec![0]);
        run.finish(b, vec![0]);
        built
    };
    let twice: Vec<&String> = built_a.iter().filter(|s| built_b.contains(s)).collect();
    if !twice.is_empty() {
        run.problems.push(format!(
            "built by both rigs: {}",
            twice
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if built_a.is_empty() && built_b.is_empty() {
        run.problems
            .push("neither rig built anything: the cache was not empty".into());
    }
    run.problems.extend(cache_problems(run.ctx, &cache));
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

/// rig killed (SIGKILL to its group, SIGTERM, or Ctrl-C) while it fills an empty cache; then a
/// normal run on that cache must pass, rebuilding what was half done and never using it.
fn kill_during_build(
    run: &mut Run<'_>,
    signal: i32,
    group: bool,
    delay_s: f64,
) -> Result<(), SoakError> {
    let cache = empty_cache(run);
    let mut a = run.spawn(0, &cache, &run.dir.join("artifacts-0"), Vec::new())?;
    let deadline = a.started + run.deadline();
    run.injected = a.wait_anchor(Anchor::Building, deadline)
        && a.sleep_alive(Duration::from_secs_f64(delay_s))
        && a.signal(signal, group);
    let expected = if run.injected {
        vec![128 + signal]
    } else {
        vec![0]
    };
    run.finish(a, expected);
    let b = run.spawn(1, &cache, &run.dir.join("artifacts-1"), Vec::new())?;
    run.finish(b, vec![0]);
    run.problems.extend(cache_problems(run.ctx, &cache));
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}
