//! `rig analyze`, `rig check` and `rig report`: files read and judged, nothing booted.

use crate::args::{AnalyzeArgs, ReportArgs};
use crate::failure::{Infra, Result};
use crate::stdout::{outln, print_text};
use rig::host::exit::{self, Classify, ExitClass};
use std::path::PathBuf;

/// A file named on the command line that cannot be read (bad input).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}")]
struct InputFile {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl Classify for InputFile {
    fn exit_class(&self) -> ExitClass {
        ExitClass::BadInput
    }
}

/// `rig analyze`: the kernel reports in a saved log, as text, JSON or explained.
pub(crate) fn analyze(a: AnalyzeArgs) -> Result<i32> {
    let bytes = std::fs::read(&a.log).map_err(|source| InputFile {
        path: a.log.clone(),
        source,
    })?;
    let mut reports = rig::dmesg::analyze(&String::from_utf8_lossy(&bytes));
    if let Some(v) = a.vmlinux {
        rig::dmesg::symbolize(&mut reports, &v, a.arch.cross_compile())?;
    }
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&rig::dmesg::render_json(&reports)).infra()?
        )?;
    } else if a.explain {
        print_text(&rig::dmesg::render_explain(&reports))?;
    } else if reports.is_empty() {
        outln!("no kernel reports in {}", a.log.display())?;
    } else {
        print_text(&rig::dmesg::render_text(&reports))?;
    }
    Ok(exit::PASS)
}

/// `rig check`: every scenario (or matrix) file validated; `ok` or the error per file, exit 2
/// when any is bad.
pub(crate) fn check(files: &[PathBuf]) -> Result<i32> {
    let overlays = super::builtin_overlays();
    let mut bad = 0;
    for f in files {
        if f.file_name().is_some_and(|n| n == rig::matrix::MATRIX_FILE) {
            match rig::matrix::load(f, &overlays) {
                Ok((m, _)) => outln!("ok    {} ({} sets)", f.display(), m.sets.len())?,
                Err(e) => {
                    print_text(&format!("error {e}\n"))?;
                    bad += 1;
                }
            }
            continue;
        }
        match rig::scenario::load(f, &overlays) {
            Ok(sc) => {
                for n in &sc.notices {
                    eprint!(
                        "{}",
                        rig::host::text::terminal_safe(&format!("rig: warning: {n}\n"))
                    );
                }
                outln!("ok    {} ({} steps)", f.display(), sc.all_steps().len())?
            }
            Err(e) => {
                print_text(&format!("error {e}\n"))?;
                bad += 1;
            }
        }
    }
    Ok(if bad == 0 {
        exit::PASS
    } else {
        exit::BAD_INPUT
    })
}

/// `rig report`: the summary of run and matrix folders on stdout, and as HTML or JUnit files.
pub(crate) fn report(a: ReportArgs) -> Result<i32> {
    let mut summary = rig::report::collect(&a.dirs)?;
    if let Some(b) = a.baseline {
        summary.compare(&rig::report::read_baseline(&b)?);
    }
    if let Some(path) = a.html {
        let page = rig::report::render_html(&summary, "rig report");
        std::fs::write(&path, page).infra_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = a.junit {
        std::fs::write(&path, rig::report::render_junit(&summary, "rig"))
            .infra_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&summary).infra()?)?;
    } else if a.markdown {
        print_text(&rig::report::render_markdown(&summary))?;
    } else {
        print_text(&rig::report::render_text(&summary))?;
    }
    Ok(exit::PASS)
}
