//! Typed events from the engine. Presentation (progress on stderr, JSON lines, JUnit, reports)
//! consumes them; the engine never prints.

use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
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
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
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

/// Human progress on stderr: one condensed line per step, never a build log.
pub struct StderrProgress {
    pub verbose: bool,
}

impl EventSink for StderrProgress {
    fn emit(&self, event: &Event) {
        let line = match event {
            Event::StepStarted { step, detail } => format!("rig: {step}: {detail}"),
            Event::StepProgress {
                step,
                message,
                fraction,
            } => match fraction {
                Some(f) => format!("rig: {step}: [{:>3.0}%] {message}", f * 100.0),
                None => format!("rig: {step}: {message}"),
            },
            Event::StepFinished {
                step,
                elapsed,
                cached,
            } => {
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
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
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

/// Collects events in memory (tests, reports).
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
}

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        if let Ok(mut v) = self.events.lock() {
            v.push(event.clone());
        }
    }
}
