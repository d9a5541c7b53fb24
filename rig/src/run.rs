//! The scenario engine: boots a guest for each repetition, runs the scenario's steps, watches the
//! console with the kernel-log analyzer as it streams, and turns what it saw into a verdict.
//!
//! Verdicts: **pass** (no unexpected report, every `expect` seen, every step as asked), **fail**
//! (the kernel showed an unexpected report, missed an expected one, or did not do what a step
//! asked: a device that never appeared or never went, a guest command with the wrong status, a
//! deadline missed), **infra** (rig could not run it: boot failed, QEMU died without any kernel
//! report, a QMP command was refused). Kernel evidence wins: if QEMU died and the log holds a
//! panic, the verdict is fail.
//!
//! `parallel` runs its children at once: guest-side children (shell commands, sysfs memory
//! online/offline, devlink and netdevsim steps, repeats of those) become background jobs of the
//! guest shell (or concurrent ssh channels for `via: ssh`), while host-side children (QMP, PCI
//! and DIMM plug/unplug) run on the host meanwhile; then everything is joined with the deadline.

use crate::accel::AccelChoice;
use crate::artifacts::RunDir;
use crate::board::{Board, HOTPLUG_ROOT_PORTS};
use crate::cache::Cache;
use crate::dmesg::{self, Analyzer, Report};
use crate::events::{Event, Events};
use crate::guest::{self, Guest, GuestError, GuestOptions, Via};
use crate::scenario::{self, ExpectStatus, Scenario, Since, Step, StepKind, Triage};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Unsupported(#[from] scenario::Unsupported),
    #[error("cannot prepare the guest")]
    Prepare(#[source] GuestError),
    #[error(transparent)]
    Artifacts(#[from] crate::artifacts::ArtifactsError),
    #[error("no repetitions asked for")]
    NoRuns,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub board: Board,
    pub kernel: String,
    pub accel: AccelChoice,
    pub repeat: u32,
    pub auto_setup: bool,
    pub memory_mib: u64,
}

impl RunOptions {
    pub fn new(board: Board, kernel: &str) -> Self {
        RunOptions {
            board,
            kernel: kernel.into(),
            accel: AccelChoice::Auto,
            repeat: 1,
            auto_setup: true,
            memory_mib: 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Infra,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => crate::exit::PASS,
            Verdict::Fail => crate::exit::KERNEL_FAILURE,
            Verdict::Infra => crate::exit::INFRA,
        }
    }
}

/// A step that did not do what the scenario asked.
#[derive(Debug, Clone, Serialize)]
pub struct StepFailure {
    pub step: String,
    /// `file:line:column` of the step in the scenario.
    pub at: String,
    pub message: String,
    /// Rig could not run it (as opposed to the kernel not doing it).
    pub infra: bool,
}

/// One repetition: one boot, all steps, one verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Repetition {
    pub index: u32,
    pub verdict: Verdict,
    pub reports: Vec<Report>,
    pub triage: TriageSummary,
    pub step_failures: Vec<StepFailure>,
    pub seconds: f64,
    pub artifacts: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TriageSummary {
    pub expected: Vec<String>,
    pub allowed: Vec<String>,
    pub unexpected: Vec<String>,
    pub missing: Vec<String>,
}

impl From<Triage> for TriageSummary {
    fn from(t: Triage) -> Self {
        TriageSummary {
            expected: t.expected,
            allowed: t.allowed,
            unexpected: t.unexpected,
            missing: t.missing,
        }
    }
}

/// The outcome of `rig run`: every repetition, and per report title how often it reproduced.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub file: String,
    pub board: Board,
    pub kernel: String,
    pub kernel_release: String,
    pub accel: String,
    pub verdict: Verdict,
    pub repetitions: Vec<Repetition>,
    /// Title → number of repetitions in which it appeared.
    pub reproduced: BTreeMap<String, u32>,
    /// The run's artifacts folder (one `run-N` folder per repetition inside when repeating).
    pub artifacts: PathBuf,
}

impl ScenarioResult {
    /// Human summary: verdict, titles with "reproduced in k of N runs", failed steps.
    pub fn render(&self) -> String {
        let n = self.repetitions.len();
        let mut s = format!(
            "{} on {} with {} ({}): {}\n",
            self.scenario,
            self.board,
            self.kernel,
            self.accel,
            match self.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Infra => "INFRA ERROR (rig could not run it)",
            }
        );
        for (title, k) in &self.reproduced {
            let how = if self
                .repetitions
                .iter()
                .any(|r| r.triage.unexpected.contains(title))
            {
                "unexpected"
            } else if self
                .repetitions
                .iter()
                .any(|r| r.triage.expected.contains(title))
            {
                "expected"
            } else {
                "allowed"
            };
            s.push_str(&format!(
                "  [{how}] {title}: reproduced in {k} of {n} runs\n"
            ));
        }
        for r in &self.repetitions {
            for m in &r.triage.missing {
                s.push_str(&format!(
                    "  run {}: expected report not seen: {m}\n",
                    r.index
                ));
            }
            for f in &r.step_failures {
                let what = if f.infra { "rig error" } else { "step failed" };
                s.push_str(&format!(
                    "  run {}: {what}: {} ({}): {}\n",
                    r.index, f.step, f.at, f.message
                ));
            }
        }
        s.push_str(&format!("  artifacts: {}\n", self.artifacts.display()));
        s
    }
}

/// Whether any step talks to the guest over ssh.
fn uses_ssh(scenario: &Scenario) -> bool {
    scenario.all_steps().iter().any(|s| match &s.kind {
        StepKind::Guest(g) => g.via == Via::Ssh,
        StepKind::DevlinkReload(d) => d.via == Via::Ssh,
        StepKind::NetdevsimNew(n) => n.via == Via::Ssh,
        StepKind::NetdevsimDel(n) => n.via == Via::Ssh,
        _ => false,
    })
}

/// Runs `scenario` `opts.repeat` times, each on a fresh boot; writes `report.json`.
pub fn run_scenario(
    scenario: &Scenario,
    opts: &RunOptions,
    cache: &Cache,
    run_dir: &RunDir,
    events: &Events,
) -> Result<ScenarioResult, RunError> {
    if opts.repeat == 0 {
        return Err(RunError::NoRuns);
    }
    let mut gopts = GuestOptions::new(opts.board, &opts.kernel);
    gopts.accel = opts.accel;
    gopts.auto_setup = opts.auto_setup;
    gopts.memory_mib = opts.memory_mib;
    gopts.extra_cmdline = scenario.cmdline.clone();
    gopts.ssh = uses_ssh(scenario);
    let (image, verdict) = guest::prepare(&gopts, cache, events).map_err(RunError::Prepare)?;
    scenario.check_kernel(opts.board, &image.kernel)?;

    let mut reps = Vec::new();
    for index in 1..=opts.repeat {
        let dir = if opts.repeat == 1 {
            run_dir.clone()
        } else {
            run_dir.child(&format!("run-{index}"))?
        };
        if opts.repeat > 1 {
            events.emit(Event::StepProgress {
                step: "run".into(),
                message: format!("repetition {index} of {}", opts.repeat),
                fraction: Some((index - 1) as f64 / opts.repeat as f64),
            });
        }
        let rep = run_once(scenario, &gopts, &image, &verdict, index, &dir, events);
        let line = format!(
            "run {index}: {:?} ({} reports)",
            rep.verdict,
            rep.reports.len()
        );
        events.emit(Event::Verdict {
            verdict: format!("{:?}", rep.verdict).to_lowercase(),
            detail: line,
        });
        reps.push(rep);
    }

    let mut reproduced: BTreeMap<String, u32> = BTreeMap::new();
    for r in &reps {
        let mut titles: Vec<&str> = r.reports.iter().map(|x| x.title.as_str()).collect();
        titles.sort();
        titles.dedup();
        for t in titles {
            *reproduced.entry(t.to_string()).or_default() += 1;
        }
    }
    let overall = if reps.iter().any(|r| r.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if reps.iter().any(|r| r.verdict == Verdict::Infra) {
        Verdict::Infra
    } else {
        Verdict::Pass
    };
    let result = ScenarioResult {
        scenario: scenario.name.clone(),
        file: scenario.file.clone(),
        board: opts.board,
        kernel: opts.kernel.clone(),
        kernel_release: image.kernel.release.clone(),
        accel: verdict.accel.name().into(),
        verdict: overall,
        repetitions: reps,
        reproduced,
        artifacts: run_dir.path().to_path_buf(),
    };
    if let Ok(s) = serde_json::to_string_pretty(&result) {
        let _ = std::fs::write(run_dir.file("report.json"), s + "\n");
    }
    Ok(result)
}

fn run_once(
    scenario: &Scenario,
    gopts: &GuestOptions,
    image: &crate::image::BootImage,
    verdict: &crate::accel::Verdict,
    index: u32,
    dir: &RunDir,
    events: &Events,
) -> Repetition {
    let start = Instant::now();
    let done = Finish {
        scenario,
        kernel: &image.kernel,
        index,
        dir,
        start,
    };
    let mut failures = Vec::new();
    let guest = Guest::boot(gopts, image.clone(), verdict.clone(), dir, events);
    let mut guest = match guest {
        Ok(g) => g,
        Err(e) => {
            failures.push(StepFailure {
                step: "boot".into(),
                at: scenario.file.clone(),
                message: error_chain(&e),
                infra: true,
            });
            return finish(done, failures, None);
        }
    };

    // The console feeds the live analyzer and a text buffer for `wait_log`.
    let log = Arc::new(Mutex::new(String::new()));
    let analyzer = Arc::new(Mutex::new(Analyzer::new()));
    {
        let log = log.clone();
        let analyzer = analyzer.clone();
        let ev = events.clone();
        guest.vm.console().add_tap(Box::new(move |data| {
            let text = String::from_utf8_lossy(data);
            if let Ok(mut l) = log.lock() {
                l.push_str(&text);
            }
            if let Ok(mut a) = analyzer.lock() {
                emit_reports(&ev, a.feed_bytes(data));
            }
        }));
    }

    let deadline = start + scenario.timeout;
    let mut exec = Exec {
        guest: &mut guest,
        log,
        events: events.clone(),
        deadline,
        ports: HashMap::new(),
        dimms: HashMap::new(),
        unplugging: Default::default(),
        overlays: HashMap::new(),
        dir: dir.clone(),
        failures: Vec::new(),
        par_seq: 0,
    };
    for (i, step) in scenario.steps.iter().enumerate() {
        events.emit(Event::ScenarioStep {
            index: i + 1,
            name: step.label(),
        });
        let stop = exec.step(step);
        // Reports without an end marker (lockdep, OF errors, hung tasks) come out on a flush.
        if let Ok(mut a) = analyzer.lock() {
            emit_reports(events, a.flush());
        }
        if stop {
            break;
        }
    }
    failures.append(&mut exec.failures);

    // Pull the kernel's own log as well (messages below the console loglevel).
    let dmesg_text = if guest.vm.exited().is_none() {
        guest
            .vm
            .run("dmesg", Duration::from_secs(60))
            .ok()
            .map(|o| o.stdout)
    } else {
        None
    };
    if let Some(t) = &dmesg_text {
        let _ = std::fs::write(dir.file("dmesg.txt"), t);
    }
    guest.shutdown();
    finish(done, failures, dmesg_text)
}

fn emit_reports(events: &Events, reports: Vec<Report>) {
    for r in reports {
        events.emit(Event::KernelReport {
            title: r.title,
            kind: r.kind.to_string(),
        });
    }
}

/// Analyzes the whole console log (and dmesg), triages, and decides the verdict.
struct Finish<'a> {
    scenario: &'a Scenario,
    kernel: &'a crate::image::Kernel,
    index: u32,
    dir: &'a RunDir,
    start: Instant,
}

fn finish(f: Finish<'_>, failures: Vec<StepFailure>, dmesg_text: Option<String>) -> Repetition {
    let Finish {
        scenario,
        kernel,
        index,
        dir,
        start,
    } = f;
    // The whole log, not the live analyzer's results: the live tap starts after RIG-READY, and
    // the verdict must also count splats printed while the kernel booted.
    let console = std::fs::read(dir.console_log()).unwrap_or_default();
    let mut reports = dmesg::analyze(&String::from_utf8_lossy(&console));
    if let Some(t) = dmesg_text {
        for r in dmesg::analyze(&t) {
            if !reports.iter().any(|x| x.title == r.title) {
                reports.push(r);
            }
        }
    }
    // Kernels rig built keep their vmlinux: add file:line to each frame (titles do not change).
    if let (Some(vmlinux), false) = (&kernel.vmlinux, reports.is_empty()) {
        let _ = dmesg::symbolize(&mut reports, vmlinux, kernel.arch.cross_compile());
    }
    let triage: TriageSummary = scenario
        .triage(reports.iter().map(|r| r.title.as_str()))
        .into();
    let kernel_failed = !triage.unexpected.is_empty()
        || !triage.missing.is_empty()
        || failures.iter().any(|f| !f.infra);
    let verdict = if kernel_failed {
        Verdict::Fail
    } else if failures.iter().any(|f| f.infra) {
        Verdict::Infra
    } else {
        Verdict::Pass
    };
    Repetition {
        index,
        verdict,
        reports,
        triage,
        step_failures: failures,
        seconds: start.elapsed().as_secs_f64(),
        artifacts: dir.path().to_path_buf(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// Why a step failed.
enum StepError {
    /// The kernel did not do what the step asked.
    Kernel(String),
    /// Rig could not carry the step out.
    Rig(String),
}

impl From<crate::vm::VmError> for StepError {
    fn from(e: crate::vm::VmError) -> Self {
        use crate::transport::TransportError;
        match &e {
            // A guest command that never finished or a guest that died: the kernel's doing,
            // unless proven otherwise (the verdict still needs kernel evidence or a failed step).
            crate::vm::VmError::Transport {
                source: TransportError::Timeout { .. },
                ..
            } => StepError::Kernel(error_chain(&e)),
            crate::vm::VmError::Qmp {
                source: crate::qmp::QmpError::EventTimeout { .. },
                ..
            } => StepError::Kernel(error_chain(&e)),
            _ => StepError::Rig(error_chain(&e)),
        }
    }
}

impl From<GuestError> for StepError {
    fn from(e: GuestError) -> Self {
        match e {
            GuestError::Vm(v) => (*v).into(),
            GuestError::Transport { ref source, .. }
                if matches!(**source, crate::transport::TransportError::Timeout { .. }) =>
            {
                StepError::Kernel(error_chain(&e))
            }
            other => StepError::Rig(error_chain(&other)),
        }
    }
}

struct Exec<'a> {
    guest: &'a mut Guest,
    log: Arc<Mutex<String>>,
    events: Events,
    deadline: Instant,
    /// PCI device id → root port it sits on.
    ports: HashMap<String, String>,
    /// DIMM id → its memory block numbers in the guest.
    dimms: HashMap<String, Vec<u64>>,
    /// DIMMs whose `device_del` went out without waiting: their `DEVICE_DELETED` is pending.
    unplugging: std::collections::HashSet<String>,
    /// Overlay file → compiled .dtbo on the host.
    overlays: HashMap<PathBuf, PathBuf>,
    dir: RunDir,
    failures: Vec<StepFailure>,
    par_seq: u32,
}

/// A guest-side poll loop: waits until `cond` (a shell condition) holds, at most `timeout`.
fn poll_script(cond: &str, timeout: Duration) -> String {
    let tries = (timeout.as_millis() / 100).max(1);
    format!(
        "i=0; while ! ( {cond} ) >/dev/null 2>&1; do [ $i -ge {tries} ] && exit 1; i=$((i+1)); sleep 0.1; done"
    )
}

/// Wraps a command so its exit status is checked in the guest: the job exits 0 when the
/// status is acceptable, else with the status (and says so).
fn checked(cmd: &str, expect: &ExpectStatus, may_fail: bool) -> String {
    if may_fail {
        return format!("( {cmd} ); true");
    }
    match expect {
        ExpectStatus::Any => format!("( {cmd} ); true"),
        ExpectStatus::OneOf(v) => {
            let list: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            format!(
                "( {cmd} ); s=$?; case \" {} \" in *\" $s \"*) ;; *) echo \"rig: exit status $s\"; exit $s;; esac",
                list.join(" ")
            )
        }
    }
}

fn pci_address(query_pci: &Value, id: &str) -> Option<String> {
    /// (bus, slot, function, behind a bridge)
    fn walk(devs: &Value, id: &str, behind: bool) -> Option<(u64, u64, u64, bool)> {
        for d in devs.as_array()? {
            if d["qdev_id"] == id {
                let (b, s, f) = (
                    d["bus"].as_u64()?,
                    d["slot"].as_u64()?,
                    d["function"].as_u64()?,
                );
                return Some((b, s, f, behind));
            }
            if let Some(found) = walk(&d["pci_bridge"]["devices"], id, true) {
                return Some(found);
            }
        }
        None
    }
    for bus in query_pci.as_array()? {
        if let Some((b, s, f, behind)) = walk(&bus["devices"], id, false) {
            // A device behind a bridge the guest has not numbered yet reports bus 0.
            if behind && b == 0 {
                return None;
            }
            return Some(format!("0000:{b:02x}:{s:02x}.{f}"));
        }
    }
    None
}

impl Exec<'_> {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn fail(&mut self, step: &Step, e: StepError) {
        let (message, infra) = match e {
            StepError::Kernel(m) => (m, false),
            StepError::Rig(m) => (m, true),
        };
        self.failures.push(StepFailure {
            step: step.label(),
            at: format!("{}:{}:{}", step.at.file, step.at.line, step.at.column),
            message,
            infra,
        });
    }

    /// Runs one step; returns true when the run must stop (QEMU gone, scenario timeout).
    fn step(&mut self, step: &Step) -> bool {
        if self.remaining().is_zero() {
            self.fail(
                step,
                StepError::Kernel("scenario timeout reached before this step".into()),
            );
            return true;
        }
        let r = self.exec(step);
        if let Err(e) = r {
            if !step.may_fail {
                self.fail(step, e);
            }
        }
        self.guest.vm.exited().is_some() || self.remaining().is_zero()
    }

    fn sh(
        &mut self,
        cmd: &str,
        timeout: Duration,
        via: Via,
    ) -> Result<crate::transport::CommandOutput, StepError> {
        let t = timeout.min(self.remaining().max(Duration::from_secs(1)));
        Ok(self.guest.run(cmd, t, via)?)
    }

    /// Runs a guest command and requires status 0.
    fn sh_ok(&mut self, cmd: &str, timeout: Duration, what: &str) -> Result<String, StepError> {
        let out = self.sh(cmd, timeout, Via::Serial)?;
        if out.status != 0 {
            return Err(StepError::Kernel(format!(
                "{what}: exit status {}: {}",
                out.status,
                out.stdout.trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Waits in the guest until the shell condition `cond` holds; `what` names the failure.
    fn wait_guest(&mut self, cond: &str, timeout: Duration, what: &str) -> Result<(), StepError> {
        // The console deadline leaves room for the guest's own loop to give up first.
        self.sh_ok(
            &poll_script(cond, timeout),
            timeout + Duration::from_secs(30),
            what,
        )
        .map(drop)
    }

    fn exec(&mut self, step: &Step) -> Result<(), StepError> {
        match &step.kind {
            StepKind::Guest(g) => {
                let out = self.sh(&g.run, g.timeout, g.via)?;
                if !g.expect_status.accepts(out.status) {
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
            StepKind::DevlinkReload(_) | StepKind::NetdevsimNew(_) | StepKind::NetdevsimDel(_) => {
                let (cmd, via) = step.kind.shell_command().expect("shell step");
                let timeout = step_timeout(&step.kind);
                let out = self.sh(&cmd, timeout, via)?;
                if out.status != 0 {
                    return Err(StepError::Kernel(format!(
                        "`{cmd}` exit status {}: {}{}",
                        out.status,
                        out.stdout.trim(),
                        out.stderr.as_deref().unwrap_or_default().trim()
                    )));
                }
                Ok(())
            }
            StepKind::Qmp(q) => {
                let args = (!q.arguments.is_empty()).then(|| Value::Object(q.arguments.clone()));
                self.guest
                    .vm
                    .qmp_raw(&q.execute, args)
                    .map_err(|e| StepError::Rig(error_chain(&e)))?;
                if let Some(w) = &q.wait_event {
                    let w = w.clone();
                    let pred = move |e: &Value| {
                        w.matches(
                            e.get("event").and_then(Value::as_str).unwrap_or_default(),
                            e.get("data").unwrap_or(&Value::Null),
                        )
                    };
                    let name = q
                        .wait_event
                        .as_ref()
                        .map(|w| w.event.clone())
                        .unwrap_or_default();
                    self.guest
                        .vm
                        .wait_qmp_event_matching(&name, &pred, q.timeout)?;
                }
                Ok(())
            }
            StepKind::PciHotplug(p) => {
                let port = match &p.port {
                    Some(port) => port.clone(),
                    None => (0..HOTPLUG_ROOT_PORTS)
                        .map(Board::root_port_id)
                        .find(|rp| !self.ports.values().any(|used| used == rp))
                        .ok_or_else(|| {
                            StepError::Rig(format!(
                                "no free hot-plug root port (all {HOTPLUG_ROOT_PORTS} in use)"
                            ))
                        })?,
                };
                let extra: Vec<(&str, Value)> = p
                    .props
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                self.guest
                    .vm
                    .pci_add_with(&p.driver, &p.id, &port, &extra)
                    .map_err(|e| StepError::Rig(error_chain(&e)))?;
                self.ports.insert(p.id.clone(), port);
                let addr = self.wait_pci_address(&p.id, p.timeout)?;
                self.wait_guest(
                    &format!("[ -e /sys/bus/pci/devices/{addr} ]"),
                    p.timeout,
                    &format!("{} ({addr}) never appeared in the guest", p.id),
                )
            }
            StepKind::PciUnplug(u) => {
                let addr = self.pci_address_now(&u.id);
                self.guest.vm.device_del_within(&u.id, u.timeout)?;
                self.ports.remove(&u.id);
                match addr {
                    Some(addr) => self.wait_guest(
                        &format!("[ ! -e /sys/bus/pci/devices/{addr} ]"),
                        u.timeout,
                        &format!("{} ({addr}) is still in the guest", u.id),
                    ),
                    None => Ok(()),
                }
            }
            StepKind::OverlayLoad(o) => {
                self.upload_overlay(&o.file, &o.id, o.timeout)?;
                let cmd = self.overlay_apply_cmd(&o.id);
                let out = self.sh_ok(&cmd, o.timeout, &format!("applying overlay {}", o.id))?;
                if out.trim() != "applied" {
                    return Err(StepError::Kernel(format!(
                        "overlay {} status is `{}`, not `applied`",
                        o.id,
                        out.trim()
                    )));
                }
                Ok(())
            }
            StepKind::OverlayUnload(o) => self
                .sh_ok(
                    &overlay_remove_cmd(&o.id),
                    o.timeout,
                    &format!("removing overlay {}", o.id),
                )
                .map(drop),
            StepKind::MemoryAdd(m) => {
                let backend = format!("mem-{}", m.id);
                self.guest
                    .vm
                    .qmp()
                    .object_add(
                        "memory-backend-ram",
                        &backend,
                        json!({"size": m.size_bytes}),
                    )
                    .map_err(|e| StepError::Rig(error_chain(&e)))?;
                self.guest
                    .vm
                    .qmp()
                    .device_add("pc-dimm", &m.id, &[("memdev", json!(backend))])
                    .map_err(|e| StepError::Rig(error_chain(&e)))?;
                let blocks = self.dimm_blocks(&m.id)?;
                let cond = blocks
                    .iter()
                    .map(|b| format!("[ -e /sys/devices/system/memory/memory{b} ]"))
                    .collect::<Vec<_>>()
                    .join(" && ");
                self.wait_guest(
                    &cond,
                    m.timeout,
                    &format!("memory blocks of {} never appeared", m.id),
                )?;
                self.dimms.insert(m.id.clone(), blocks);
                Ok(())
            }
            StepKind::MemoryOnline(_) | StepKind::MemoryOffline(_) => {
                let cmd = self.memory_state_cmd(&step.kind)?;
                self.sh_ok(
                    &cmd,
                    step_timeout(&step.kind),
                    "changing memory block state",
                )
                .map(drop)
            }
            StepKind::MemoryRemove(m) => self.memory_remove(m),
            StepKind::Parallel(p) => self.parallel(step, p),
            StepKind::Repeat(r) => {
                let start = Instant::now();
                let mut n = 0u32;
                loop {
                    let more = match r.count {
                        scenario::RepeatCount::Times(t) => n < t,
                        scenario::RepeatCount::For(d) => start.elapsed() < d,
                    };
                    if !more {
                        break;
                    }
                    n += 1;
                    self.events.emit(Event::StepProgress {
                        step: step.label(),
                        message: format!("round {n}"),
                        fraction: match r.count {
                            scenario::RepeatCount::Times(t) => Some(n as f64 / t as f64),
                            scenario::RepeatCount::For(_) => None,
                        },
                    });
                    for child in &r.steps {
                        if self.step(child) {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }
            StepKind::WaitLog(w) => {
                let from = match w.since {
                    Since::Boot => 0,
                    Since::Step => self.log.lock().map(|l| l.len()).unwrap_or(0),
                };
                let deadline = Instant::now() + w.timeout.min(self.remaining());
                loop {
                    let found = self
                        .log
                        .lock()
                        .map(|l| {
                            l.get(from..)
                                .is_some_and(|t| w.regex.is_match(&t.replace('\r', "")))
                        })
                        .unwrap_or(false);
                    if found {
                        return Ok(());
                    }
                    if let Some(reason) = self.guest.vm.exited() {
                        return Err(StepError::Rig(reason));
                    }
                    if Instant::now() >= deadline {
                        return Err(StepError::Kernel(format!(
                            "kernel log never matched /{}/ within {:?}",
                            w.regex.as_str(),
                            w.timeout
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            StepKind::Sleep(d) => {
                std::thread::sleep((*d).min(self.remaining()));
                Ok(())
            }
        }
    }

    /// Removes a DIMM: `device_del` (unless one is already in flight), then, when waiting, its
    /// `DEVICE_DELETED` and the backend's `object-del`.
    fn memory_remove(&mut self, m: &scenario::MemoryRemoveStep) -> Result<(), StepError> {
        let rig_err = |e: crate::vm::VmError| StepError::Rig(error_chain(&e));
        let present = self
            .guest
            .vm
            .qmp_raw("query-memory-devices", None)
            .map_err(rig_err)?
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d["data"]["id"] == m.id.as_str()));
        let in_flight = self.unplugging.contains(&m.id);
        if !m.wait {
            if present && !in_flight {
                self.guest
                    .vm
                    .qmp_raw("device_del", Some(json!({"id": m.id})))
                    .map_err(rig_err)?;
                self.unplugging.insert(m.id.clone());
            }
            return Ok(());
        }
        if in_flight {
            if present {
                self.guest.vm.wait_qmp_event(
                    "DEVICE_DELETED",
                    Some(("device", &m.id)),
                    m.timeout,
                )?;
            }
        } else if present {
            self.guest.vm.device_del_within(&m.id, m.timeout)?;
        }
        self.unplugging.remove(&m.id);
        self.dimms.remove(&m.id);
        self.guest
            .vm
            .qmp()
            .object_del(&format!("mem-{}", m.id))
            .map_err(|e| StepError::Rig(error_chain(&e)))
    }

    fn pci_address_now(&mut self, id: &str) -> Option<String> {
        let q = self.guest.vm.qmp_raw("query-pci", None).ok()?;
        pci_address(&q, id)
    }

    /// Polls QEMU until the guest has numbered the bus the device sits on.
    fn wait_pci_address(&mut self, id: &str, timeout: Duration) -> Result<String, StepError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.pci_address_now(id) {
                return Ok(a);
            }
            if let Some(reason) = self.guest.vm.exited() {
                return Err(StepError::Rig(reason));
            }
            if Instant::now() >= deadline {
                return Err(StepError::Kernel(format!(
                    "the guest never configured the bus of {id} within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The guest memory block numbers a DIMM covers (from QEMU's address and the guest's block size).
    fn dimm_blocks(&mut self, id: &str) -> Result<Vec<u64>, StepError> {
        let devs = self
            .guest
            .vm
            .qmp_raw("query-memory-devices", None)
            .map_err(|e| StepError::Rig(error_chain(&e)))?;
        let data = devs
            .as_array()
            .and_then(|a| a.iter().find(|d| d["data"]["id"] == id))
            .map(|d| d["data"].clone())
            .ok_or_else(|| StepError::Rig(format!("QEMU does not list DIMM {id}")))?;
        let (addr, size) = match (data["addr"].as_u64(), data["size"].as_u64()) {
            (Some(a), Some(s)) => (a, s),
            _ => return Err(StepError::Rig(format!("DIMM {id} has no address: {data}"))),
        };
        let bs = self.sh_ok(
            "cat /sys/devices/system/memory/block_size_bytes",
            Duration::from_secs(30),
            "reading the memory block size",
        )?;
        let bs = u64::from_str_radix(bs.trim(), 16)
            .map_err(|e| StepError::Rig(format!("block_size_bytes `{}`: {e}", bs.trim())))?;
        if bs == 0 {
            return Err(StepError::Rig("memory block size is 0".into()));
        }
        Ok((addr / bs..(addr + size) / bs).collect())
    }

    fn memory_state_cmd(&self, kind: &StepKind) -> Result<String, StepError> {
        let (id, value) = match kind {
            StepKind::MemoryOnline(m) => (&m.id, m.zone.state_value()),
            StepKind::MemoryOffline(m) => (&m.id, "offline"),
            _ => return Err(StepError::Rig("not a memory state step".into())),
        };
        let blocks = self.dimms.get(id).ok_or_else(|| {
            StepError::Rig(format!(
                "no DIMM `{id}` was added by an earlier memory_add step"
            ))
        })?;
        Ok(blocks
            .iter()
            .map(|b| format!("echo {value} > /sys/devices/system/memory/memory{b}/state"))
            .collect::<Vec<_>>()
            .join(" && "))
    }

    fn upload_overlay(
        &mut self,
        file: &std::path::Path,
        id: &str,
        timeout: Duration,
    ) -> Result<(), StepError> {
        let dtbo = match self.overlays.get(file) {
            Some(p) => p.clone(),
            None => {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let out = self.dir.file(&format!("{stem}.dtbo"));
                crate::kbuild::compile_overlay(file, &out)
                    .map_err(|e| StepError::Rig(error_chain(&e)))?;
                self.overlays.insert(file.to_path_buf(), out.clone());
                out
            }
        };
        let bytes =
            std::fs::read(&dtbo).map_err(|e| StepError::Rig(format!("{}: {e}", dtbo.display())))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.sh_ok(
            &format!("echo {b64} | base64 -d > /tmp/rig-overlay-{id}.dtbo"),
            timeout,
            "uploading the overlay",
        )
        .map(drop)
    }

    fn overlay_apply_cmd(&self, id: &str) -> String {
        let d = format!("/sys/kernel/config/device-tree/overlays/{id}");
        format!("mkdir {d} && cat /tmp/rig-overlay-{id}.dtbo > {d}/dtbo; cat {d}/status")
    }

    /// The guest shell script for a step that can run as a background job, if it can.
    fn job_script(&self, step: &Step) -> Option<Result<String, StepError>> {
        let script = match &step.kind {
            StepKind::Guest(g) => checked(&g.run, &g.expect_status, step.may_fail),
            StepKind::DevlinkReload(_) | StepKind::NetdevsimNew(_) | StepKind::NetdevsimDel(_) => {
                let (cmd, _) = step.kind.shell_command()?;
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

    fn parallel(&mut self, step: &Step, p: &scenario::ParallelStep) -> Result<(), StepError> {
        self.par_seq += 1;
        let dir = format!("/tmp/rig-par-{}", self.par_seq);
        let start = Instant::now();
        let deadline = start + p.deadline.min(self.remaining());
        let has_ssh = self.guest.ssh.is_some();

        // Sort children: guest background jobs, ssh channels, host-side steps.
        let mut jobs: Vec<(usize, String)> = Vec::new();
        let mut ssh_cmds: Vec<(usize, String, ExpectStatus, Duration)> = Vec::new();
        let mut host: Vec<&Step> = Vec::new();
        for (i, child) in p.steps.iter().enumerate() {
            let ssh_child = match &child.kind {
                StepKind::Guest(g) if g.via == Via::Ssh && has_ssh => {
                    Some((g.run.clone(), g.expect_status.clone(), g.timeout))
                }
                k => match k.shell_command() {
                    Some((cmd, Via::Ssh)) if has_ssh => {
                        Some((cmd, ExpectStatus::OneOf(vec![0]), step_timeout(k)))
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
                ssh_cmds.push((i, cmd, expect, timeout));
                continue;
            }
            if matches!(child.kind, StepKind::OverlayLoad(_)) {
                host.push(child);
                continue;
            }
            match self.job_script(child) {
                Some(Ok(s)) => jobs.push((i, s)),
                Some(Err(e)) => {
                    if !child.may_fail {
                        self.fail(child, e);
                    }
                }
                None => host.push(child),
            }
        }

        // Launch the guest jobs; the launching shell returns at once.
        if !jobs.is_empty() {
            let mut launch = format!("rm -rf {dir}; mkdir -p {dir}; ");
            for (i, s) in &jobs {
                let b64 = base64::engine::general_purpose::STANDARD.encode(s);
                launch.push_str(&format!(
                    "(echo {b64} | base64 -d > {dir}/{i}.sh; sh {dir}/{i}.sh > {dir}/{i}.out 2>&1; echo $? > {dir}/{i}.st) </dev/null >/dev/null 2>&1 & echo $! > {dir}/{i}.pid; "
                ));
            }
            self.sh_ok(
                &launch,
                Duration::from_secs(60),
                "starting parallel guest jobs",
            )?;
        }

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
                    for child in &host {
                        if let Err(e) = exec_host(vm, child) {
                            if !child.may_fail {
                                fails.push((*child, e));
                            }
                        }
                    }
                    fails
                });
                let cmds: Vec<(&str, Duration)> = ssh_cmds
                    .iter()
                    .map(|(_, c, _, t)| (c.as_str(), *t))
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
                Err(e) => self.fail(child, StepError::Kernel(error_chain(&e))),
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
            let joined = self.sh(&wait, left + Duration::from_secs(30), Via::Serial)?;
            let report = format!(
                "for i in {}; do echo \"$i $(cat {dir}/$i.st 2>/dev/null || echo running)\"; done",
                ids.join(" ")
            );
            let statuses = self.sh_ok(
                &report,
                Duration::from_secs(30),
                "collecting parallel job statuses",
            )?;
            if joined.status != 0 {
                let _ = self.sh(
                    &format!("for p in {dir}/*.pid; do kill -9 $(cat $p) 2>/dev/null; done; true"),
                    Duration::from_secs(30),
                    Via::Serial,
                );
            }
            for line in statuses.lines() {
                let mut it = line.split_whitespace();
                let (Some(i), Some(st)) = (it.next(), it.next()) else {
                    continue;
                };
                let Ok(i) = i.parse::<usize>() else { continue };
                let child = &p.steps[i];
                if st == "running" {
                    self.fail(
                        child,
                        StepError::Kernel(format!(
                            "still running at the parallel deadline ({:?})",
                            p.deadline
                        )),
                    );
                } else if st != "0" {
                    let out = self
                        .sh(
                            &format!("tail -c 2000 {dir}/{i}.out"),
                            Duration::from_secs(30),
                            Via::Serial,
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
        if Instant::now() > deadline + Duration::from_millis(500) {
            return Err(StepError::Kernel(format!(
                "parallel took {:.1}s, over its {:?} deadline",
                start.elapsed().as_secs_f64(),
                p.deadline
            )));
        }
        Ok(())
    }
}

/// Runs a host-side child of `parallel` (QMP, PCI, DIMM steps).
fn exec_host(vm: &mut crate::vm::Vm, step: &Step) -> Result<(), StepError> {
    match &step.kind {
        StepKind::MemoryRemove(m) if !m.wait => vm
            .qmp_raw("device_del", Some(json!({"id": m.id})))
            .map(drop)
            .map_err(|e| StepError::Rig(error_chain(&e))),
        StepKind::MemoryRemove(m) => vm.device_del_within(&m.id, m.timeout).map_err(Into::into),
        StepKind::PciUnplug(u) => vm.device_del_within(&u.id, u.timeout).map_err(Into::into),
        StepKind::Qmp(q) => {
            let args = (!q.arguments.is_empty()).then(|| Value::Object(q.arguments.clone()));
            vm.qmp_raw(&q.execute, args)
                .map(drop)
                .map_err(|e| StepError::Rig(error_chain(&e)))
        }
        StepKind::Sleep(d) => {
            std::thread::sleep(*d);
            Ok(())
        }
        other => Err(StepError::Rig(format!(
            "`{}` cannot run inside `parallel` (only guest commands, memory online/offline, \
             devlink/netdevsim, overlay_unload, repeat of those, and qmp / memory_remove / \
             pci_unplug / sleep on the host)",
            other.name()
        ))),
    }
}

fn overlay_remove_cmd(id: &str) -> String {
    format!("rmdir /sys/kernel/config/device-tree/overlays/{id}")
}

fn step_timeout(kind: &StepKind) -> Duration {
    match kind {
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
        StepKind::Parallel(p) => p.deadline,
        StepKind::Sleep(d) => *d,
        StepKind::Repeat(_) => Duration::from_secs(3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_address_is_found_behind_a_numbered_bridge_only() {
        let q = json!([{"bus": 0, "devices": [
            {"bus": 0, "slot": 1, "function": 0, "qdev_id": "rp0",
             "pci_bridge": {"bus": {"secondary": 1}, "devices": [
                {"bus": 1, "slot": 0, "function": 0, "qdev_id": "nic1"}]}},
            {"bus": 0, "slot": 2, "function": 0, "qdev_id": "rp1",
             "pci_bridge": {"bus": {"secondary": 0}, "devices": [
                {"bus": 0, "slot": 0, "function": 0, "qdev_id": "nic2"}]}}
        ]}]);
        assert_eq!(pci_address(&q, "nic1").as_deref(), Some("0000:01:00.0"));
        assert_eq!(pci_address(&q, "nic2"), None);
        assert_eq!(pci_address(&q, "nope"), None);
    }

    #[test]
    fn checked_commands_accept_listed_statuses() {
        let s = checked("false", &ExpectStatus::OneOf(vec![0, 1]), false);
        assert!(s.contains("\" 0 1 \""), "{s}");
        assert_eq!(
            checked("x", &ExpectStatus::OneOf(vec![0]), true),
            "( x ); true"
        );
        assert_eq!(checked("x", &ExpectStatus::Any, false), "( x ); true");
    }

    #[test]
    fn checked_script_semantics_in_a_real_shell() {
        let run = |s: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(s)
                .output()
                .unwrap()
                .status
                .code()
        };
        assert_eq!(
            run(&checked("exit 1", &ExpectStatus::OneOf(vec![0, 1]), false)),
            Some(0)
        );
        assert_eq!(
            run(&checked("exit 3", &ExpectStatus::OneOf(vec![0, 1]), false)),
            Some(3)
        );
        assert_eq!(
            run(&checked("exit 3", &ExpectStatus::OneOf(vec![0]), true)),
            Some(0)
        );
        let poll = poll_script("[ -e /nonexistent-rig-file ]", Duration::from_millis(300));
        assert_eq!(run(&poll), Some(1));
        let poll = poll_script("true", Duration::from_millis(300));
        assert_eq!(run(&poll), Some(0));
    }
}
