//! `rig bench boot`: boot-to-ready through rig versus bare QEMU to the same console marker, so
//! rig's overhead shows as a ratio.

use super::{median, BenchError};
use crate::guest::Guest;
use crate::host::artifacts::RunDir;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::host::process::Supervised;
use crate::machine::qemu::{self, Accel, QemuConfig};
use crate::machine::spec::MachineSpec;
use crate::provision::BootImage;
use std::fmt;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, serde::Serialize)]
pub struct BootBench {
    pub board: String,
    pub kernel: String,
    pub accel: String,
    pub runs: usize,
    pub rig_median_s: f64,
    pub bare_median_s: f64,
}

impl BootBench {
    pub fn ratio(&self) -> f64 {
        self.rig_median_s / self.bare_median_s
    }
}

impl fmt::Display for BootBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<11} {:<12} {} n={}: rig {:.2}s  bare qemu {:.2}s  ratio {:.2}",
            self.board,
            self.kernel,
            self.accel,
            self.runs,
            self.rig_median_s,
            self.bare_median_s,
            self.ratio()
        )
    }
}

/// Boots `spec` `runs` times through rig and as many times bare (host tools installed first
/// when `auto_setup`).
pub fn boot(
    spec: &MachineSpec,
    auto_setup: bool,
    runs: usize,
    cache: &Cache,
    run_dir: &RunDir,
    events: &Events,
) -> Result<BootBench, BenchError> {
    if runs == 0 {
        return Err(BenchError::NoRuns);
    }
    let machine = crate::prepare::prepare(spec.clone(), auto_setup, cache, events)?;
    let mut rig_times = Vec::new();
    let mut bare_times = Vec::new();
    for n in 0..runs {
        let dir = run_dir
            .child(&format!("{}-{n}", spec.board))
            .map_err(|e| BenchError::Bare {
                run: n,
                why: e.to_string(),
            })?;
        let start = Instant::now();
        let g = Guest::boot(&machine, &dir, &Events::none())?;
        rig_times.push(start.elapsed().as_secs_f64());
        g.shutdown();
        bare_times.push(bare_boot(spec, &machine.image, machine.accel.accel, n)?);
    }
    Ok(BootBench {
        board: spec.board.to_string(),
        kernel: spec.kernel.clone(),
        accel: machine.accel.accel.name().into(),
        runs,
        rig_median_s: median(&mut rig_times).unwrap_or_default(),
        bare_median_s: median(&mut bare_times).unwrap_or_default(),
    })
}

/// Plain QEMU with the console on a pipe: seconds until `RIG-READY` is printed.
fn bare_boot(
    spec: &MachineSpec,
    image: &BootImage,
    accel: Accel,
    run: usize,
) -> Result<f64, BenchError> {
    let fail = |why: String| BenchError::Bare { run, why };
    let mut cfg = QemuConfig::new(spec.board, accel, "unused".into(), "unused".into());
    cfg.console_socket = None;
    cfg.qmp_socket = None;
    cfg.kernel = Some(image.kernel.image.clone());
    cfg.initrd = Some(image.initrd.clone());
    let params = crate::machine::vm_config::boot_params(image, &spec.cmdline);
    cfg.cmdline = qemu::kernel_cmdline(spec.board, &params).map_err(|e| fail(e.to_string()))?;
    cfg.dtb = crate::machine::dtb::for_boot(&cfg, &crate::host::events::Events::none());
    let argv = qemu::argv(&cfg);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let start = Instant::now();
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = Supervised::spawn(cmd, None).map_err(|e| fail(e.to_string()))?;
    let mut out = child
        .take_stdout()
        .ok_or_else(|| fail("no stdout".into()))?;
    // A reader thread lets the wait below keep a deadline even if QEMU prints nothing.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = start + Duration::from_secs(300);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend_from_slice(&chunk),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                return Err(fail("no RIG-READY within 300s".into()))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(fail("QEMU exited before RIG-READY".into()))
            }
        }
        if seen.windows(9).any(|w| w == b"RIG-READY") {
            break;
        }
    }
    let t = start.elapsed().as_secs_f64();
    child.terminate();
    Ok(t)
}
