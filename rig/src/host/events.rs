//! Typed events from the engine. Presentation consumes them; the engine never prints. The
//! consumers here are the human progress on stderr ([`StderrProgress`]) and the run's
//! `events.jsonl` ([`JsonLines`]); run results and reports are built from the engine's result
//! types, not from events.

use super::build_bar::BuildBars;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Written as one JSON object per line of `events.jsonl` (`"event"` names the variant) and read
/// back by the soak harness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A long provisioning step began (download, rootfs build, kernel build, initramfs pack).
    StepStarted {
        step: String,
        detail: String,
    },
    /// Progress inside a step; `fraction` in 0..=1 when known.
    StepProgress {
        step: String,
        message: String,
        fraction: Option<f64>,
    },
    /// A build's progress: files compiled so far, of `total` when it is known (the count of the
    /// last full build of the same kind), and the folder it is compiling in.
    BuildProgress {
        step: String,
        compiled: usize,
        total: Option<usize>,
        #[serde(with = "secs")]
        elapsed: Duration,
        dir: String,
    },
    StepFinished {
        step: String,
        #[serde(with = "secs")]
        elapsed: Duration,
        cached: bool,
    },
    AccelChosen {
        accel: String,
        reason: String,
    },
    QemuSpawned {
        pid: u32,
        argv: Vec<String>,
    },
    BootReady {
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    GuestCommand {
        command: String,
    },
    GuestCommandDone {
        command: String,
        status: i32,
        #[serde(with = "secs")]
        elapsed: Duration,
    },
    QmpCommand {
        command: String,
    },
    /// A kernel report (splat) was recognized while the console streamed.
    KernelReport {
        title: String,
        kind: String,
    },
    ScenarioStep {
        index: usize,
        name: String,
    },
    Verdict {
        verdict: String,
        detail: String,
    },
    Warning {
        message: String,
    },
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let f = f64::deserialize(d)?;
        Duration::try_from_secs_f64(f).map_err(serde::de::Error::custom)
    }
}

/// Something that consumes events. Implementations must be cheap: they run on the engine's thread.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);
}

/// A cloneable handle to the run's sinks.
#[derive(Clone, Default)]
pub struct Events {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl Events {
    pub fn none() -> Self {
        Events::default()
    }

    pub fn with(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    pub fn emit(&self, event: Event) {
        for s in &self.sinks {
            s.emit(&event);
        }
    }

    pub fn warn(&self, message: impl Into<String>) {
        self.emit(Event::Warning {
            message: message.into(),
        })
    }
}

/// Human progress on stderr: one condensed line per step, never a build log. When stderr is
/// not a terminal (CI logs), progress inside a step is printed at most once per
/// [`QUIET_PROGRESS_EVERY`]; step starts, ends and everything else always print. On a terminal a
/// build's progress is a bar ([`BuildBars`]) that the step's next line replaces.
pub struct StderrProgress {
    pub verbose: bool,
    /// Every progress line is printed (a terminal is watching).
    interactive: bool,
    out: Mutex<Box<dyn Write + Send>>,
    last_progress: Mutex<HashMap<String, Instant>>,
    /// Builds' bars, on a terminal only.
    bars: Option<BuildBars>,
}

/// The least time between two progress lines of one step when stderr is not a terminal.
pub const QUIET_PROGRESS_EVERY: Duration = Duration::from_secs(30);

impl StderrProgress {
    pub fn new(verbose: bool) -> Self {
        let interactive = std::io::stderr().is_terminal();
        let mut p = Self::to(Box::new(std::io::stderr()), verbose, interactive);
        p.bars = interactive.then(BuildBars::stderr);
        p
    }

    /// Progress written to `out` (tests); on a "terminal", bars are kept but not drawn.
    pub fn to(out: Box<dyn Write + Send>, verbose: bool, interactive: bool) -> Self {
        StderrProgress {
            verbose,
            interactive,
            out: Mutex::new(out),
            last_progress: Mutex::default(),
            bars: interactive.then(BuildBars::hidden),
        }
    }

    /// Whether a progress line for `step` goes out now (always on a terminal).
    fn progress_due(&self, step: &str) -> bool {
        if self.interactive {
            return true;
        }
        let Ok(mut last) = self.last_progress.lock() else {
            return true;
        };
        let now = Instant::now();
        match last.get(step) {
            Some(t) if now.duration_since(*t) < QUIET_PROGRESS_EVERY => false,
            _ => {
                last.insert(step.to_string(), now);
                true
            }
        }
    }
}

impl EventSink for StderrProgress {
    fn emit(&self, event: &Event) {
        if let Some(bars) = &self.bars {
            match event {
                Event::BuildProgress {
                    step,
                    compiled,
                    total,
                    elapsed,
                    dir,
                } => return bars.update(step, *compiled, *total, *elapsed, dir),
                Event::StepProgress { step, .. } | Event::StepFinished { step, .. } => {
                    bars.finish(step)
                }
                _ => {}
            }
        }
        let line = match event {
            Event::StepStarted { step, detail } => format!("rig: {step}: {detail}"),
            Event::StepProgress {
                step,
                message,
                fraction,
            } => {
                if !self.progress_due(step) {
                    return;
                }
                match fraction {
                    Some(f) => format!("rig: {step}: [{:>3.0}%] {message}", f * 100.0),
                    None => format!("rig: {step}: {message}"),
                }
            }
            Event::BuildProgress {
                step,
                compiled,
                total,
                elapsed,
                dir,
            } => {
                if !self.progress_due(step) {
                    return;
                }
                format!(
                    "rig: {step}: {}",
                    build_line(*compiled, *total, *elapsed, dir)
                )
            }
            Event::StepFinished {
                step,
                elapsed,
                cached,
            } => {
                if let Ok(mut last) = self.last_progress.lock() {
                    last.remove(step);
                }
                if *cached && !self.verbose {
                    return;
                }
                let how = if *cached { "cached" } else { "done" };
                format!("rig: {step}: {how} in {:.1}s", elapsed.as_secs_f64())
            }
            Event::AccelChosen { accel, reason } => format!("rig: accel {accel} ({reason})"),
            Event::QemuSpawned { pid, argv } => {
                if !self.verbose {
                    return;
                }
                format!("rig: qemu pid {pid}: {}", argv.join(" "))
            }
            Event::BootReady { elapsed } => {
                format!("rig: guest ready in {:.1}s", elapsed.as_secs_f64())
            }
            Event::GuestCommand { command } if self.verbose => format!("rig: guest$ {command}"),
            Event::QmpCommand { command } if self.verbose => format!("rig: qmp {command}"),
            Event::KernelReport { title, kind } => format!("rig: kernel report [{kind}] {title}"),
            Event::ScenarioStep { index, name } => format!("rig: step {index}: {name}"),
            Event::Verdict { verdict, detail } => format!("rig: verdict {verdict}: {detail}"),
            Event::Warning { message } => format!("rig: warning: {message}"),
            _ => return,
        };
        let print = || {
            if let Ok(mut out) = self.out.lock() {
                let _ = writeln!(out, "{}", super::text::terminal_safe(&line));
            }
        };
        match &self.bars {
            Some(bars) => bars.suspend(print),
            None => print(),
        }
    }
}

/// A build's progress as one line: `1:15 elapsed, 120 of 2500 files compiled, in drivers/of`.
pub fn build_line(compiled: usize, total: Option<usize>, elapsed: Duration, dir: &str) -> String {
    let secs = elapsed.as_secs();
    let mut s = format!("{}:{:02} elapsed, ", secs / 60, secs % 60);
    match total {
        Some(t) if t >= compiled => s.push_str(&format!("{compiled} of {t} files compiled")),
        _ => s.push_str(&format!("{compiled} files compiled")),
    }
    if !dir.is_empty() {
        s.push_str(&format!(", in {dir}"));
    }
    s
}

/// Appends every event as one JSON object per line (the run's `events.jsonl`).
pub struct JsonLines {
    out: Mutex<std::fs::File>,
}

impl JsonLines {
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(JsonLines {
            out: Mutex::new(std::fs::File::create(path)?),
        })
    }
}

impl EventSink for JsonLines {
    fn emit(&self, event: &Event) {
        if let (Ok(mut f), Ok(s)) = (self.out.lock(), serde_json::to_string(event)) {
            let _ = writeln!(f, "{s}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_for(interactive: bool) -> Vec<String> {
        let buf = Shared::default();
        let p = StderrProgress::to(Box::new(buf.clone()), false, interactive);
        p.emit(&Event::StepStarted {
            step: "kernel build".into(),
            detail: "x".into(),
        });
        for n in 0..200 {
            p.emit(&Event::StepProgress {
                step: "kernel build".into(),
                message: format!("{n} files compiled"),
                fraction: None,
            });
        }
        p.emit(&Event::StepFinished {
            step: "kernel build".into(),
            elapsed: Duration::from_secs(3),
            cached: false,
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(String::from).collect()
    }

    #[test]
    fn without_a_terminal_progress_is_one_line_per_stage_and_rarely_more() {
        let quiet = lines_for(false);
        assert_eq!(quiet.len(), 3, "{quiet:?}");
        assert!(quiet[1].contains("0 files compiled"));
        assert!(quiet[2].contains("done in 3.0s"));
        assert_eq!(lines_for(true).len(), 202);
    }

    fn build(compiled: usize, total: Option<usize>) -> Event {
        Event::BuildProgress {
            step: "kernel build".into(),
            compiled,
            total,
            elapsed: Duration::from_secs(75),
            dir: "drivers/of".into(),
        }
    }

    #[test]
    fn a_build_line_says_files_of_the_total_when_known() {
        let d = Duration::from_secs(75);
        assert_eq!(
            build_line(120, Some(2500), d, "drivers/of"),
            "1:15 elapsed, 120 of 2500 files compiled, in drivers/of"
        );
        assert_eq!(build_line(2, None, d, ""), "1:15 elapsed, 2 files compiled");
        // An estimate the build outgrew is not shown.
        assert_eq!(
            build_line(30, Some(20), d, ""),
            "1:15 elapsed, 30 files compiled"
        );
    }

    #[test]
    fn build_progress_is_a_bar_on_a_terminal_and_rare_lines_without() {
        let buf = Shared::default();
        let quiet = StderrProgress::to(Box::new(buf.clone()), false, false);
        for n in 0..50 {
            quiet.emit(&build(n, Some(2500)));
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "rig: kernel build: 1:15 elapsed, 0 of 2500 files compiled, in drivers/of\n"
        );

        let buf = Shared::default();
        let tty = StderrProgress::to(Box::new(buf.clone()), false, true);
        let bars = tty.bars.as_ref().unwrap();
        tty.emit(&build(120, Some(2500)));
        assert_eq!(bars.state("kernel build"), Some((120, Some(2500))));
        tty.emit(&build(3000, Some(2500)));
        assert_eq!(bars.state("kernel build"), Some((3000, None)));
        tty.emit(&build(10, None));
        assert_eq!(bars.state("kernel build"), Some((10, None)));
        // The bar is drawn, not printed as lines.
        assert!(buf.0.lock().unwrap().is_empty());
        // The step's next line replaces its bar.
        tty.emit(&Event::StepFinished {
            step: "kernel build".into(),
            elapsed: Duration::from_secs(3),
            cached: false,
        });
        assert_eq!(bars.state("kernel build"), None);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "rig: kernel build: done in 3.0s\n");
    }
}
