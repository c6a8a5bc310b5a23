//! The progress bar of long replays: drawn on a terminal only, for inputs of 8 MiB or more.

use std::io::{self, IsTerminal};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mend::input::InputSource;

/// A progress bar over the bytes of `sources`, or none when `quiet`, when standard error is
/// no terminal, or when the inputs are too small to need one.
pub fn progress_bar(sources: &[InputSource], quiet: bool) -> Option<ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = sources
        .iter()
        .map(|s| match s {
            InputSource::Path(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum();
    if total < 8 << 20 {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} replaying [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
