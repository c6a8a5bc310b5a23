//! What a listening run saw, and its summary for people.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use mend_core::{Resend, ResetReason};

use super::PublishProgress;
use crate::text::timefmt::human_ms;

/// Why a listening run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// No byte arrived for the `--idle` time.
    Idle,
    /// The `--duration` ran out.
    Duration,
    /// Ctrl-C or a termination signal.
    Interrupted,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "the link was idle",
            Self::Duration => "the duration ran out",
            Self::Interrupted => "interrupted",
        })
    }
}

/// The state of the link, for the status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet, or trying again after a failure.
    Connecting,
    /// Connected and reading.
    Up,
    /// The connection dropped; reconnecting after a backoff.
    Down,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connecting => "connecting",
            Self::Up => "up",
            Self::Down => "down, reconnecting",
        })
    }
}

/// A session that announced itself (a header) for the first time in this capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSeen {
    /// The sensor.
    pub sensor: u32,
    /// The session (the node's boot counter).
    pub session: u32,
    /// Why the node started it, as its header says.
    pub reset: ResetReason,
}

/// The counts of a listening run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenReport {
    /// Why the run ended (`None` until it did).
    pub stop: Option<StopReason>,
    /// The capture's size before this run.
    pub capture_start: u64,
    /// Bytes appended to the capture (delimiters after torn frames included).
    pub appended: u64,
    /// Bytes received from the link.
    pub bytes: u64,
    /// Good frames received.
    pub frames: u64,
    /// Readings received for the first time (live, or replayed before they were missed).
    pub readings: u64,
    /// Missing readings that arrived after a resend request: measured values, recovered.
    pub recovered: u64,
    /// Readings received again (already in the capture).
    pub duplicates: u64,
    /// Readings that came with no header before them: nothing says their session.
    pub unplaced: u64,
    /// Frames marked as replayed by the node.
    pub replayed_frames: u64,
    /// Fault frames (a sample the sensor could not give).
    pub faults: u64,
    /// Heartbeats.
    pub heartbeats: u64,
    /// Stats frames.
    pub stats: u64,
    /// Sessions announced for the first time (one per node start).
    pub sessions: Vec<SessionSeen>,
    /// Seqs given up after every request went unanswered.
    pub unrecoverable: u64,
    /// The first ranges given up, as (sensor, range).
    pub unrecoverable_ranges: Vec<(u32, Resend)>,
    /// Seqs still missing at the end (asked for, not yet given up).
    pub still_missing: u64,
    /// The missing ranges at the end, as (sensor, range).
    pub missing_ranges: Vec<(u32, Resend)>,
    /// Resend requests sent.
    pub resends_sent: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Fsyncs of the capture.
    pub syncs: u64,
    /// Connections made.
    pub connects: u64,
    /// Connections lost.
    pub drops: u64,
    /// The last error of the link (a failed connect, a dropped connection), if any.
    pub last_link_error: Option<String>,
    /// Bytes that were not a good frame, by reason: (spans, bytes).
    pub bad: BTreeMap<&'static str, (u64, u64)>,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: u64,
    /// The publishing into Redis, with `--redis`.
    pub redis: Option<PublishProgress>,
}

/// How many given-up or missing ranges the summary lists.
pub const MAX_LISTED_RANGES: usize = 20;

impl ListenReport {
    /// Bytes on the link that were not a good frame.
    pub fn bad_bytes(&self) -> u64 {
        self.bad.values().map(|&(_, b)| b).sum()
    }

    /// The summary printed at the end of `mend listen`.
    pub fn render(&self, capture: &str) -> String {
        let mut out = String::new();
        let stop = self.stop.map_or_else(String::new, |s| format!(", {s}"));
        let _ = writeln!(
            out,
            "mend listen: {} of {} link bytes appended to {capture} (was {} bytes){stop}, after {}",
            self.appended,
            self.bytes,
            self.capture_start,
            human_ms(self.elapsed_ms)
        );
        let _ = writeln!(
            out,
            "  readings: {} received first time, {} recovered by resend, {} unrecoverable, {} still missing",
            self.readings, self.recovered, self.unrecoverable, self.still_missing
        );
        if self.unrecoverable > 0 {
            let _ = writeln!(
                out,
                "  unrecoverable: asked for as often as --retries allows and not sent again by the node (gone from its log, or never stored)"
            );
            list(&mut out, "gave up", &self.unrecoverable_ranges);
        }
        list(&mut out, "missing", &self.missing_ranges);
        let _ = writeln!(
            out,
            "  frames: {} ({} replayed, {} duplicate readings, {} faults, {} heartbeats, {} stats, {} readings without a header)",
            self.frames,
            self.replayed_frames,
            self.duplicates,
            self.faults,
            self.heartbeats,
            self.stats,
            self.unplaced
        );
        let resets = self
            .sessions
            .iter()
            .map(|s| format!("sensor {} session {} ({})", s.sensor, s.session, s.reset))
            .collect::<Vec<_>>();
        let _ = writeln!(
            out,
            "  resets seen: {} new sessions{}{}",
            resets.len(),
            if resets.is_empty() { "" } else { ": " },
            resets.join(", ")
        );
        let _ = writeln!(
            out,
            "  link: {} connections, {} dropped; {} acks, {} resend requests, {} fsyncs",
            self.connects, self.drops, self.acks_sent, self.resends_sent, self.syncs
        );
        if let Some(e) = &self.last_link_error {
            let _ = writeln!(out, "  last link error: {e}");
        }
        let _ = write!(out, "  bad bytes on the link: {}", self.bad_bytes());
        for (reason, (spans, bytes)) in &self.bad {
            let _ = write!(out, "; {reason}: {bytes} bytes in {spans} spans");
        }
        out.push('\n');
        if let Some(p) = &self.redis {
            render_redis(&mut out, p, capture);
        }
        out
    }
}

/// The publishing's lines of the summary.
fn render_redis(out: &mut String, p: &PublishProgress, capture: &str) {
    let _ = writeln!(
        out,
        "  redis {}: {} frames published in {} entries, {} capture bytes pending; {} connections, redis {}",
        p.url,
        p.published.total_frames(),
        p.published.entries,
        p.pending,
        p.connects,
        p.state
    );
    if p.pending > 0 {
        let _ = writeln!(
            out,
            "  not published: {capture} from offset {} (on disk and acknowledged); `mend publish --redis {} {capture}` catches up (what was published already changes nothing)",
            p.offset, p.url
        );
    }
    if let Some(e) = &p.last_error {
        let _ = writeln!(out, "  last redis error: {e}");
    }
}

fn list(out: &mut String, what: &str, ranges: &[(u32, Resend)]) {
    for (sensor, r) in ranges.iter().take(MAX_LISTED_RANGES) {
        let _ = writeln!(
            out,
            "    {what}: sensor {sensor} session {} seqs {}..={}",
            r.session, r.from, r.to
        );
    }
    if ranges.len() > MAX_LISTED_RANGES {
        let _ = writeln!(out, "    … and {} more", ranges.len() - MAX_LISTED_RANGES);
    }
}
