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
/// [`PROGRESS_EVERY`] the new log lines are condensed into one `BuildProgress` event.
pub fn run_make(cmd: Command, log: &Path, step: &str, events: &Events) -> Result<(), KbuildError> {
    run_make_counted(cmd, log, step, events, None).map(|_| ())
}

/// [`run_make`], with `total` the number of files the build is expected to compile (when
/// known); returns the number it compiled.
pub fn run_make_counted(
    mut cmd: Command,
    log: &Path,
    step: &str,
    events: &Events,
    total: Option<usize>,
) -> Result<usize, KbuildError> {
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
        events.emit(Event::BuildProgress {
            step: step.to_string(),
            compiled: progress.compiled,
            total,
            elapsed: started.elapsed(),
            dir: progress.last_dir.clone(),
        });
    };
    if status.success() {
        progress.feed_from(log, offset);
        return Ok(progress.compiled);
    }
    let text = read_from(log, errors_from);
    Err(KbuildError::Make {
        command,
        status: describe_status(&status),
        log: log.to_path_buf(),
        errors: error_excerpt(&text, 40),
        host: host_failure(&status, &text),
    })
}

/// What a make's output says when the host, not the source, failed the build: make's own
/// `*** [target] <signal>` for a recipe killed by a signal, gcc's driver for a compiler killed
/// (the OOM killer's SIGKILL, a SIGTERM), and the libc messages of a full disk or exhausted
/// memory. A compile error in the tree prints none of these.
const HOST_FAILURE_MARKERS: [&str; 11] = [
    "signal terminated program", // gcc: `Killed signal terminated program cc1`
    "terminated with signal",    // collect2: `ld terminated with signal 9 [Killed]`
    "internal compiler error: Killed",
    "internal compiler error: Terminated",
    "No space left on device",
    "Disk quota exceeded",
    "Cannot allocate memory",
    "virtual memory exhausted",
    "out of memory allocating",
    "Read-only file system",
    "Too many open files",
];

/// make's description of a recipe that a signal ended (`make: *** [Makefile:2: all] Killed`),
/// and the shell's exit codes for a command ended by SIGHUP, SIGINT, SIGKILL or SIGTERM.
const SIGNALLED_RECIPE: [&str; 8] = [
    "] Killed",
    "] Terminated",
    "] Interrupt",
    "] Hangup",
    "] Error 129",
    "] Error 130",
    "] Error 137",
    "] Error 143",
];

/// Whether a failed make failed because of the host (`Some(why)`) rather than the source
/// (`None`): make itself ended by a signal, rig caught a signal (Ctrl-C, SIGTERM), or its output
/// shows a killed compiler, a full disk or no memory ([`HOST_FAILURE_MARKERS`]). A bisect skips
/// a commit whose build fails in the source; a host failure must stop it instead.
pub fn host_failure(status: &std::process::ExitStatus, output: &str) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = crate::host::process::caught_signal() {
        return Some(format!("rig caught signal {sig}"));
    }
    if let Some(sig) = status.signal() {
        return Some(format!("make was killed by signal {sig}"));
    }
    for line in output.lines() {
        // gcc quotes the offending source line (`   12 |  pr_err("No space left…");`): the
        // tree's text, not what happened.
        let quoted = line
            .trim_start()
            .split_once('|')
            .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit()));
        if quoted {
            continue;
        }
        if let Some(m) = HOST_FAILURE_MARKERS.iter().find(|m| line.contains(*m)) {
            return Some(format!("`{m}` in the build output: {}", line.trim()));
        }
        if line.contains("*** [") {
            if let Some(m) = SIGNALLED_RECIPE
                .iter()
                .find(|m| line.trim_end().ends_with(*m))
            {
                let what = m.trim_start_matches("] ");
                return Some(format!(
                    "a build command ended by a signal ({what}): {}",
                    line.trim()
                ));
            }
        }
    }
    None
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

/// Runs a short command with its output captured: the output when `ok` accepts it, else the
/// error naming the command with its stderr.
pub(super) fn captured(
    cmd: &mut Command,
    ok: impl FnOnce(&std::process::Output) -> bool,
) -> Result<std::process::Output, KbuildError> {
    let command = format!("{cmd:?}");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| crate::host::process::CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() || !ok(&out) {
        return Err(crate::host::process::CommandError::Failed {
            command,
            status: describe_status(&out.status),
            log: std::path::PathBuf::new(),
            tail: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
        .into());
    }
    Ok(out)
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
        let s =
            crate::host::events::build_line(p.compiled, None, Duration::from_secs(75), &p.last_dir);
        assert!(
            s.starts_with("1:15 elapsed, 2 files compiled, in drivers/of"),
            "{s}"
        );
    }

    #[test]
    fn a_finished_make_returns_the_files_it_compiled() {
        let d = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "printf '  CC      init/main.o\\n  AS      arch/x/head.o\\n  LD      vmlinux\\n'",
        ]);
        let n = run_make_counted(cmd, &d.path().join("build.log"), "t", &Events::none(), None);
        assert_eq!(n.unwrap(), 2);
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

    /// Runs real make on `makefile` (and `files`) in a fresh folder; the error it gives.
    fn failing_make(makefile: &str, files: &[(&str, &str)]) -> KbuildError {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("Makefile"), makefile).unwrap();
        for (name, text) in files {
            fs::write(d.path().join(name), text).unwrap();
            if name.ends_with(".sh") {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(d.path().join(name), fs::Permissions::from_mode(0o755))
                    .unwrap();
            }
        }
        let mut cmd = Command::new("make");
        cmd.arg("-C").arg(d.path());
        run_make(cmd, &d.path().join("build.log"), "t", &Events::none()).unwrap_err()
    }

    fn host_of(e: &KbuildError) -> Option<String> {
        match e {
            KbuildError::Make { host, .. } => host.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_compile_error_in_the_source_is_not_a_host_failure() {
        let e = failing_make(
            "all:\n\tgcc -c b.c -o b.o\n",
            &[(
                "b.c",
                "int f(void) { const char *s = \"No space left on device\"; return s + ; }\n",
            )],
        );
        assert!(!e.is_host_failure(), "{e}");
        assert_eq!(host_of(&e), None);
        assert!(e.to_string().contains("error:"), "{e}");
    }

    #[test]
    fn a_killed_compiler_a_full_disk_and_a_killed_make_are_host_failures() {
        let c = "int main(void) { return 0; }\n";
        // The OOM killer's SIGKILL to cc1, as gcc's driver reports it.
        let wrapper = "#!/bin/sh\ncase \"$1\" in *cc1) kill -KILL $$;; esac\nexec \"$@\"\n";
        let e = failing_make(
            "all:\n\tgcc -c a.c -o a.o -wrapper ./w.sh\n",
            &[("a.c", c), ("w.sh", wrapper)],
        );
        let why = host_of(&e).unwrap_or_else(|| panic!("not a host failure: {e}"));
        assert!(why.contains("signal terminated program"), "{why}");
        assert!(e.to_string().contains("on the host's side"), "{e}");
        // A full disk: the assembler cannot write its object.
        let e = failing_make("all:\n\tgcc -c a.c -o /dev/full\n", &[("a.c", c)]);
        let why = host_of(&e).unwrap_or_else(|| panic!("not a host failure: {e}"));
        assert!(why.contains("No space left on device"), "{why}");
        // A recipe killed by a signal: make says `Killed` / `Terminated`.
        for sig in ["KILL", "TERM"] {
            let e = failing_make(&format!("all:\n\tsh -c 'kill -{sig} $$$$'\n"), &[]);
            let why = host_of(&e).unwrap_or_else(|| panic!("not a host failure: {e}"));
            assert!(why.contains("ended by a signal"), "{why}");
        }
        // make itself ended by SIGTERM mid-build.
        let e = failing_make("all:\n\tkill -TERM $$PPID; sleep 5\n", &[]);
        let why = host_of(&e).unwrap_or_else(|| panic!("not a host failure: {e}"));
        assert!(why.contains("make was killed by signal 15"), "{why}");
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
