//! A scenario's `trace:` block: tracepoints and kernel functions recorded through tracefs while
//! the steps run, the buffer kept as `trace.txt` in the repetition's folder when it fails (and
//! dumped to the console by the kernel itself on an oops: `ftrace_dump_on_oops`).
//!
//! ```yaml
//! trace:
//!   events: ["devlink:*"]                          # tracefs `set_event` globs
//!   functions: [devlink_reload, "nsim_bus_dev_*"]  # `set_ftrace_filter` globs (function tracer)
//!   buffer_kb: 1024                                # per CPU (64-16384; default 1024)
//! ```
//!
//! Names are allow-listed (letters, digits, `_`, `*`, and `:` between an event's subsystem and
//! name, `.` in a function's): they reach the guest's shell, never the host.

use super::engine::{Engine, StepError};
use crate::host::shell::quote;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a trace block: {events: [SUBSYSTEM:EVENT…], functions: [NAME…], buffer_kb}"
)]
pub struct RawTrace {
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub functions: Vec<String>,
    #[serde(default)]
    pub buffer_kb: Option<u32>,
}

/// A checked `trace:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub events: Vec<String>,
    pub functions: Vec<String>,
    /// Per CPU.
    pub buffer_kb: u32,
}

/// The kept buffer's name in the repetition's folder.
pub const TRACE_FILE: &str = "trace.txt";
/// The most of the buffer rig reads back (a 2-vCPU guest's 16 MiB buffers, in text, fit).
pub const TRACE_READ_MAX: u64 = 64 << 20;
const MAX_NAMES: usize = 64;
const BUFFER_KB: std::ops::RangeInclusive<u32> = 64..=16384;
const DEFAULT_BUFFER_KB: u32 = 1024;

/// Where in the block a value is refused: `events[i]`, `functions[i]`, `buffer_kb`, or the
/// block itself (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceField {
    Event(usize),
    Function(usize),
    BufferKb,
    Block,
}

/// Checks a raw block: at least one event or function, at most 64 of each, every name from the
/// allow-list, the buffer size in range.
pub fn validate(raw: RawTrace) -> Result<Trace, (TraceField, String)> {
    if raw.events.is_empty() && raw.functions.is_empty() {
        return Err((
            TraceField::Block,
            "names no `events` and no `functions`".into(),
        ));
    }
    for (list, what) in [(&raw.events, "events"), (&raw.functions, "functions")] {
        if list.len() > MAX_NAMES {
            return Err((
                TraceField::Block,
                format!("{} {what}: at most {MAX_NAMES}", list.len()),
            ));
        }
    }
    for (i, e) in raw.events.iter().enumerate() {
        let parts: Vec<&str> = e.split(':').collect();
        if parts.len() > 2 || !parts.iter().all(|p| is_name(p, "_*")) {
            return Err((
                TraceField::Event(i),
                format!(
                    "`{e}` is not a tracepoint glob (SUBSYSTEM:EVENT: letters, digits, `_`, `*`)"
                ),
            ));
        }
    }
    for (i, f) in raw.functions.iter().enumerate() {
        if !is_name(f, "_*.") {
            return Err((
                TraceField::Function(i),
                format!("`{f}` is not a function glob (letters, digits, `_`, `.`, `*`)"),
            ));
        }
    }
    let buffer_kb = raw.buffer_kb.unwrap_or(DEFAULT_BUFFER_KB);
    if !BUFFER_KB.contains(&buffer_kb) {
        return Err((
            TraceField::BufferKb,
            format!(
                "{buffer_kb} KiB: between {} and {} KiB per CPU",
                BUFFER_KB.start(),
                BUFFER_KB.end()
            ),
        ));
    }
    Ok(Trace {
        events: raw.events,
        functions: raw.functions,
        buffer_kb,
    })
}

fn is_name(s: &str, extra: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

impl Trace {
    /// The kernel options it needs, each `CONFIG_X` (`=y`).
    pub fn needs_config(&self) -> Vec<&'static str> {
        let mut need = vec!["CONFIG_FTRACE"];
        if !self.events.is_empty() {
            need.push("CONFIG_EVENT_TRACING");
        }
        if !self.functions.is_empty() {
            need.extend(["CONFIG_FUNCTION_TRACER", "CONFIG_DYNAMIC_FTRACE"]);
        }
        need
    }
}

/// The guest shell script that sets tracing up and starts it. A tracefs it cannot mount or a
/// buffer size it cannot set fails it; an event or function this kernel lacks does not (a
/// scenario runs on kernels of several versions): each prints a [`MISSING`] line instead.
pub fn setup_script(t: &Trace) -> String {
    let mut s = String::from(
        "T=/sys/kernel/tracing; { [ -e $T/trace ] || mount -t tracefs nodev $T; } && \
         echo 0 > $T/tracing_on && echo > $T/trace && ",
    );
    s.push_str(&format!(
        "{{ echo {} > $T/buffer_size_kb || {{ echo 'buffer_size_kb refused'; exit 1; }}; }}",
        t.buffer_kb
    ));
    for e in &t.events {
        let q = quote(e);
        s.push_str(&format!(
            " && {{ echo {q} >> $T/set_event 2>/dev/null || echo {MISSING} event {q}; }}"
        ));
    }
    for f in &t.functions {
        let q = quote(f);
        s.push_str(&format!(
            " && {{ echo {q} >> $T/set_ftrace_filter 2>/dev/null || echo {MISSING} function {q}; }}"
        ));
    }
    if !t.functions.is_empty() {
        // With no function matched the filter is empty, which would trace every function.
        s.push_str(" && { [ -z \"$(cat $T/set_ftrace_filter | grep -v '^#')\" ] || echo function > $T/current_tracer; }");
    }
    s.push_str(" && echo 1 > $T/tracing_on");
    s
}

/// How the setup script says a name is not in this kernel.
pub const MISSING: &str = "rig-trace-missing:";

/// Sets tracing up in the guest before the first step; returns the names this kernel lacks.
pub(crate) fn start(e: &mut Engine<'_>, t: &Trace) -> Result<Vec<String>, StepError> {
    let out = e.sh_ok(
        &setup_script(t),
        Duration::from_secs(60),
        "setting up trace:",
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix(MISSING))
        .map(|l| l.trim().to_string())
        .collect())
}

/// The guest command that reads the buffer back (tracing stopped first, so the end of the
/// buffer is what led to the failure, not rig's own reading).
pub fn read_command() -> String {
    format!(
        "echo 0 > /sys/kernel/tracing/tracing_on; head -c {TRACE_READ_MAX} /sys/kernel/tracing/trace"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(events: &[&str], functions: &[&str], buffer_kb: Option<u32>) -> RawTrace {
        RawTrace {
            events: events.iter().map(|s| s.to_string()).collect(),
            functions: functions.iter().map(|s| s.to_string()).collect(),
            buffer_kb,
        }
    }

    #[test]
    fn names_are_allow_listed_and_the_buffer_bounded() {
        let t = validate(raw(
            &["devlink:*", "sched"],
            &["of_changeset_destroy", "device_link_*", "foo.cold"],
            None,
        ))
        .unwrap();
        assert_eq!(t.buffer_kb, 1024);
        for (bad, field) in [
            (raw(&["a;reboot"], &[], None), TraceField::Event(0)),
            (raw(&["a:b:c"], &[], None), TraceField::Event(0)),
            (raw(&["ok:*", ""], &[], None), TraceField::Event(1)),
            (raw(&[], &["$(reboot)"], None), TraceField::Function(0)),
            (raw(&[], &["a b"], None), TraceField::Function(0)),
            (raw(&[], &["f"], Some(1 << 20)), TraceField::BufferKb),
            (raw(&[], &["f"], Some(0)), TraceField::BufferKb),
            (raw(&[], &[], None), TraceField::Block),
        ] {
            assert_eq!(validate(bad).unwrap_err().0, field);
        }
        let many: Vec<String> = (0..65).map(|i| format!("f{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            validate(raw(&[], &many, None)).unwrap_err().0,
            TraceField::Block
        );
    }

    #[test]
    fn the_setup_script_names_what_the_kernel_lacks_and_starts_tracing_last() {
        let t = validate(raw(&["devlink:*"], &["devlink_reload"], Some(2048))).unwrap();
        let s = setup_script(&t);
        assert!(s.contains("echo 2048 > $T/buffer_size_kb"), "{s}");
        assert!(
            s.contains(
                "{ echo 'devlink:*' >> $T/set_event 2>/dev/null || echo rig-trace-missing: event \
                 'devlink:*'; }"
            ),
            "{s}"
        );
        assert!(
            s.contains("echo devlink_reload >> $T/set_ftrace_filter"),
            "{s}"
        );
        assert!(
            s.ends_with("|| echo function > $T/current_tracer; } && echo 1 > $T/tracing_on"),
            "{s}"
        );
        let events_only = setup_script(&validate(raw(&["sched:*"], &[], None)).unwrap());
        assert!(!events_only.contains("current_tracer"), "{events_only}");
        assert_eq!(
            t.needs_config(),
            [
                "CONFIG_FTRACE",
                "CONFIG_EVENT_TRACING",
                "CONFIG_FUNCTION_TRACER",
                "CONFIG_DYNAMIC_FTRACE"
            ]
        );
    }
}
