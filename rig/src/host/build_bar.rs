//! A build's progress on a terminal ([`super::events::StderrProgress`]'s view of
//! [`Event::BuildProgress`](super::events::Event::BuildProgress)): an indicatif bar of files
//! compiled of the total with an ETA when the total is known, a spinner with the count when not.
//! One bar per step; a line printed while bars are drawn goes above them.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// Under 80 columns for a short step name; the message (the folder) takes what is left.
const WITH_TOTAL: &str = "rig: {prefix}: [{bar:15}] {pos}/{len} files, ETA {eta} {wide_msg}";
const WITHOUT_TOTAL: &str = "rig: {prefix}: {spinner} {pos} files compiled ({elapsed}) {wide_msg}";

pub(super) struct BuildBars {
    multi: MultiProgress,
    /// Each step's bar, and whether its style shows a total.
    bars: Mutex<HashMap<String, (ProgressBar, bool)>>,
}

impl BuildBars {
    /// Bars drawn on stderr.
    pub(super) fn stderr() -> Self {
        Self::to(ProgressDrawTarget::stderr())
    }

    /// Bars drawn nowhere, their state kept (tests).
    pub(super) fn hidden() -> Self {
        Self::to(ProgressDrawTarget::hidden())
    }

    fn to(target: ProgressDrawTarget) -> Self {
        BuildBars {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::default(),
        }
    }

    /// Shows `compiled` of `total` for `step` (its bar made on the first update).
    pub(super) fn update(
        &self,
        step: &str,
        compiled: usize,
        total: Option<usize>,
        elapsed: Duration,
        dir: &str,
    ) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        // A total is an estimate: a build that compiles more shows its count without an ETA.
        let total = total.filter(|t| *t >= compiled).map(|t| t as u64);
        let style = |with_total: bool| {
            let template = if with_total {
                WITH_TOTAL
            } else {
                WITHOUT_TOTAL
            };
            ProgressStyle::with_template(template)
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
        };
        let mut fresh = false;
        let (bar, with_total) = bars.entry(step.to_string()).or_insert_with(|| {
            fresh = true;
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
                .with_style(style(total.is_some()))
                .with_prefix(super::text::terminal_safe(step).into_owned())
                .with_elapsed(elapsed);
            (bar, total.is_some())
        });
        if *with_total != total.is_some() {
            *with_total = total.is_some();
            bar.set_style(style(*with_total));
        }
        match total {
            Some(t) => bar.set_length(t),
            None => bar.unset_length(),
        }
        bar.set_message(if dir.is_empty() {
            String::new()
        } else {
            format!("in {}", super::text::terminal_safe(dir))
        });
        bar.set_position(compiled as u64);
        if fresh {
            // Added once it holds its first state: its first draw is already the right one.
            *bar = self.multi.add(bar.clone());
        }
    }

    /// Clears `step`'s bar, if it has one.
    pub(super) fn finish(&self, step: &str) {
        if let Some((bar, _)) = self.bars.lock().ok().and_then(|mut b| b.remove(step)) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Runs `print` with the bars out of the way (it prints a line; they are redrawn below it).
    pub(super) fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.multi.suspend(print)
    }

    /// `step`'s bar as (position, length), if it has one (tests).
    #[cfg(test)]
    pub(super) fn state(&self, step: &str) -> Option<(u64, Option<u64>)> {
        let bars = self.bars.lock().ok()?;
        bars.get(step).map(|(b, _)| (b.position(), b.length()))
    }
}
