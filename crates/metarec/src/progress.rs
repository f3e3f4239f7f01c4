//! Progress on standard error: bars with rate and ETA for work of known size, spinners with
//! elapsed time for work that reports no progress of its own (loading and fitting).
//!
//! `--quiet` hides them all. indicatif also draws nothing when standard error is not a terminal
//! (or `TERM` is `dumb`), so logs and pipes never get escape codes; in that case the per-step
//! lines a command reports go to standard error as plain lines instead.

use crate::Global;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

impl Global {
    /// A progress bar over `len` steps counted in `unit`, with rate and ETA.
    pub fn bar(&self, len: u64, unit: &str) -> ProgressBar {
        let bar = ProgressBar::new(len);
        if self.quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let template = format!(
            "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}}) {{msg}}"
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    }

    /// A spinner showing `message` and the time elapsed, for work of unknown length.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let bar = ProgressBar::new_spinner();
        if self.quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// Reports one finished step of `bar`: the line becomes the bar's message, or a plain line
    /// on standard error when the bar is not drawn (not a terminal) and not quiet.
    pub fn step(&self, bar: &ProgressBar, line: &str) {
        bar.inc(1);
        if bar.is_hidden() {
            if !self.quiet {
                eprintln!("  {line}");
            }
        } else {
            bar.set_message(line.to_owned());
        }
    }
}
