//! Running build commands: output to a log file, condensed progress as events, and on failure
//! the compiler's error lines pulled out of the log.

use super::KbuildError;
use crate::host::events::{Event, Events};
use crate::host::process::{describe_status, Supervised};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How often a running make is summarized as a progress event.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

fn append(log: &Path) -> Result<fs::File, KbuildError> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| KbuildError::Io {
            what: "cannot open log".into(),
            path: log.to_path_buf(),
            source,
        })
}

/// The log's text from byte `offset` on (what one command wrote).
fn read_from(log: &Path, offset: u64) -> String {
    let Ok(mut f) = fs::File::open(log) else {
        return String::new();
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(offset)).is_ok() {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs `make` (already holding its arguments) under [`Supervised`] — its own process group,
/// killed if rig errors out or is interrupted — with all output in `log`. Every
/// [`PROGRESS_EVERY`] the new log lines are condensed into one `StepProgress` event.
pub fn run_make(
    mut cmd: Command,
    log: &Path,
    step: &str,
    events: &Events,
) -> Result<(), KbuildError> {
    let command = describe(&cmd);
    // Appended, not truncated: one build runs several makes into the same log.
    let (out, err) = (append(log)?, append(log)?);
    let mut offset = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let errors_from = offset;
    cmd.stdout(out).stderr(err);
    let mut child = Supervised::spawn(cmd, None)?;
    let mut progress = Progress::default();
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.wait_timeout(PROGRESS_EVERY)? {
            break st;
        }
        offset = progress.feed_from(log, offset);
        events.emit(Event::StepProgress {
            step: step.to_string(),
            message: progress.summary(started.elapsed()),
            fraction: None,
        });
    };
    if status.success() {
        return Ok(());
    }
    let text = read_from(log, errors_from);
    Err(KbuildError::Make {
        command,
        status: describe_status(&status),
        log: log.to_path_buf(),
        errors: error_excerpt(&text, 40),
    })
}

fn describe(cmd: &Command) -> String {
    crate::host::process::describe_command(cmd)
}

/// What the build has done so far, from kbuild's quiet output (`  CC      drivers/of/dynamic.o`).
#[derive(Default, Debug)]
pub struct Progress {
    pub compiled: usize,
    pub linked: usize,
    pub last_dir: String,
    partial: String,
}

impl Progress {
    /// Reads what `log` gained since `offset`, returns the new offset.
    fn feed_from(&mut self, log: &Path, offset: u64) -> u64 {
        let Ok(mut f) = fs::File::open(log) else {
            return offset;
        };
        if f.seek(SeekFrom::Start(offset)).is_err() {
            return offset;
        }
        let mut buf = Vec::new();
        let n = f.read_to_end(&mut buf).unwrap_or(0);
        self.feed(&String::from_utf8_lossy(&buf[..n]));
        offset + n as u64
    }

    /// Feeds a chunk of log text (it may end mid-line).
    pub fn feed(&mut self, chunk: &str) {
        let text = std::mem::take(&mut self.partial) + chunk;
        let mut lines: Vec<&str> = text.split('\n').collect();
        let rest = lines.pop().unwrap_or("").to_string();
        for line in lines {
            let mut words = line.split_whitespace();
            let (Some(tag), Some(mut target)) = (words.next(), words.next()) else {
                continue;
            };
            if target == "[M]" {
                target = words.next().unwrap_or("");
            }
            if !line.starts_with("  ") {
                continue;
            }
            match tag {
                "CC" | "AS" => {
                    self.compiled += 1;
                    if let Some((dir, _)) = target.rsplit_once('/') {
                        self.last_dir = dir.to_string();
                    }
                }
                "LD" | "AR" | "LINK" | "OBJCOPY" => self.linked += 1,
                _ => {}
            }
        }
        self.partial = rest;
    }

    pub fn summary(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs();
        let mut s = format!(
            "{}:{:02} elapsed, {} files compiled",
            secs / 60,
            secs % 60,
            self.compiled
        );
        if !self.last_dir.is_empty() {
            s.push_str(&format!(", in {}", self.last_dir));
        }
        s
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    crate::host::process::tail_lines(text, n)
}

/// The compiler's and make's error lines with a little context (two lines before, three after),
/// at most `max` lines; the log's tail when nothing looks like an error.
pub fn error_excerpt(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_error = |l: &str| {
        l.contains("error:")
            || l.contains("Error ")
            || l.starts_with("***")
            || l.contains("undefined reference to")
            || l.contains("No rule to make target")
    };
    let mut keep = vec![false; lines.len()];
    for (i, l) in lines.iter().enumerate() {
        if is_error(l) {
            for k in keep
                .iter_mut()
                .take((i + 4).min(lines.len()))
                .skip(i.saturating_sub(2))
            {
                *k = true;
            }
        }
    }
    let picked: Vec<&str> = lines
        .iter()
        .zip(&keep)
        .filter_map(|(l, k)| k.then_some(*l))
        .collect();
    if picked.is_empty() {
        return tail(text, max.min(20));
    }
    picked[..picked.len().min(max)].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_compiles_across_chunk_boundaries() {
        let mut p = Progress::default();
        p.feed("  CC [M]  init/main.o\n  CC      drivers/o");
        assert_eq!(p.compiled, 1);
        p.feed("f/dynamic.o\n  AR      drivers/of/built-in.a\n  LD      vmlinux.o\nwarning: x\n");
        assert_eq!(p.compiled, 2);
        assert_eq!(p.linked, 2);
        assert_eq!(p.last_dir, "drivers/of");
        let s = p.summary(Duration::from_secs(75));
        assert!(
            s.starts_with("1:15 elapsed, 2 files compiled, in drivers/of"),
            "{s}"
        );
    }

    #[test]
    fn error_excerpt_keeps_compiler_errors_with_context() {
        let mut log = String::new();
        for i in 0..100 {
            log.push_str(&format!("  CC      f{i}.o\n"));
        }
        log.push_str("drivers/of/dynamic.c: In function 'x':\n");
        log.push_str("drivers/of/dynamic.c:693:9: error: implicit declaration of function 'foo'\n");
        log.push_str("  693 |         foo();\n      |         ^~~\n");
        for i in 100..200 {
            log.push_str(&format!("  CC      f{i}.o\n"));
        }
        log.push_str("make[4]: *** [scripts/Makefile.build:229: drivers/of/dynamic.o] Error 1\n");
        let ex = error_excerpt(&log, 40);
        assert!(ex.contains("693:9: error: implicit declaration"), "{ex}");
        assert!(ex.contains("In function 'x'"));
        assert!(ex.contains("Error 1"));
        assert!(!ex.contains("f50.o"));
        assert!(ex.lines().count() < 15, "{ex}");
    }

    #[test]
    fn error_excerpt_falls_back_to_the_tail() {
        let log: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let ex = error_excerpt(&log, 40);
        assert!(ex.ends_with("line 49"));
        assert!(!ex.contains("line 10\n"));
    }

    #[test]
    fn a_failing_make_reports_its_errors_and_log() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("build.log");
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo '  CC      a.o'; echo 'a.c:1:1: error: boom' >&2; echo 'make: *** [all] Error 2'; exit 2",
        ]);
        fs::write(&log, "earlier.c:1:1: error: from an earlier command\n").unwrap();
        let err = run_make(cmd, &log, "t", &Events::none()).unwrap_err();
        match &err {
            KbuildError::Make { errors, log: l, .. } => {
                assert!(errors.contains("a.c:1:1: error: boom"));
                assert!(!errors.contains("earlier"), "{errors}");
                assert_eq!(l, &log);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("build.log"));
        // The log keeps what came before: several makes share one log.
        assert!(fs::read_to_string(&log).unwrap().starts_with("earlier.c"));
    }
}
