//! A progress bar on stderr for long work (recording, checking folders);
//! hidden when stderr is not a terminal, so scripts and logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// One bar with a label, a position out of `len` and a message.
pub(crate) struct Bar(ProgressBar);

impl Bar {
    pub(crate) fn new(label: &str, len: usize) -> Bar {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(len as u64), target);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar)
    }

    pub(crate) fn set_position(&self, done: usize) {
        self.0.set_position(done as u64);
    }

    pub(crate) fn message(&self, msg: &str) {
        self.0.set_message(msg.to_owned());
    }

    /// A line above the bar (kept when the bar is cleared).
    pub(crate) fn println(&self, line: &str) {
        self.0.println(line);
    }

    pub(crate) fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Bar {
    /// An early return (an error) clears the bar too.
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.finish_and_clear();
        }
    }
}
