//! What the planning of an input decided, and why, in words for the summary.

use crate::input::reader::StopRule;
use crate::text::timefmt::to_rfc3339;

/// Why a file is read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distrust {
    /// A probe found a boot clock: time starts again at every power-up.
    BootClock {
        /// The header's offset.
        at: u64,
    },
    /// A probe found an earlier time than the probe before it.
    Falls {
        /// The later probe's header offset.
        at: u64,
        /// Its first reading's time.
        ms: u64,
        /// The earlier probe's header offset.
        prev_at: u64,
        /// Its first reading's time.
        prev_ms: u64,
    },
    /// A probe found no header and reading within 1 MiB.
    NoFrames {
        /// The probe's offset.
        at: u64,
    },
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Distrust::BootClock { at } => {
                write!(f, "the session at byte {at} has a boot clock")
            }
            Distrust::Falls {
                at,
                ms,
                prev_at,
                prev_ms,
            } => write!(
                f,
                "time does not grow through the file (probe at byte {at} shows {} after {} at byte {prev_at})",
                to_rfc3339(ms),
                to_rfc3339(prev_ms)
            ),
            Distrust::NoFrames { at } => {
                write!(f, "no session header and reading within 1 MiB after byte {at}")
            }
        }
    }
}

/// A stream a seek cannot rebuild: it shows up after the seek offset with a seq above 0 and
/// too few readings before `--from` to refill its history, so its earlier readings (the
/// start of a silence, a stuck run) may lie before the offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumes {
    /// The sensor.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// Its lowest seq read after the offset.
    pub seq: u32,
    /// Its earliest time read after the offset.
    pub first_ms: u64,
    /// Its readings before `--from` read after the offset.
    pub before_from: u32,
    /// The readings before `--from` that rebuild a stream's state ([`SeekWindow::history`]).
    ///
    /// [`SeekWindow::history`]: super::SeekWindow::history
    pub needed: u32,
}

impl std::fmt::Display for Resumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sensor {} session {} shows up at {} with seq {} and {} readings before --from (of {} needed): its earlier readings may lie before the seek offset",
            self.sensor,
            self.session,
            to_rfc3339(self.first_ms),
            self.seq,
            self.before_from,
            self.needed
        )
    }
}

/// What the planning of one input decided, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanNote {
    /// The seek for `--from` starts at this byte.
    Seek {
        /// The offset.
        at: u64,
        /// How many probes back it.
        probes: usize,
    },
    /// The probes do not show time growing: no shortcut.
    ReadWhole(Distrust),
    /// JSONL is read to the end whatever `--until` says.
    JsonlToTheEnd,
    /// Standard input cannot be probed, so it is read to the end.
    NotAFile,
    /// The file is too small for shortcuts to save anything.
    Small {
        /// The threshold, bytes.
        min_size: u64,
    },
    /// No seek, because a stream cannot be rebuilt after it.
    NoSeek(Resumes),
    /// The input stopped early under this rule, at this byte.
    Stopped {
        /// The offset after the last byte read.
        at: u64,
        /// The rule.
        rule: StopRule,
    },
    /// The input was read to the end: the rule never applied.
    NotStopped(StopRule),
    /// No early stop: no probe after the last one at or before this time.
    NoStopNearTheEnd {
        /// The stop limit, ms.
        limit_ms: u64,
    },
}

impl std::fmt::Display for PlanNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            PlanNote::Seek { at, probes } => write!(
                f,
                "seek for --from: reading starts at byte {at} ({probes} probes show time growing through the file)"
            ),
            PlanNote::ReadWhole(why) => {
                write!(f, "no seek and no early stop: {why}; read from the start to the end")
            }
            PlanNote::Stopped { at, rule } => write!(
                f,
                "stopped early for --until at byte {at}: {} readings in a row later than {}, past the last probe before that time",
                rule.run,
                to_rfc3339(rule.after_ms)
            ),
            PlanNote::NotStopped(rule) => write!(
                f,
                "read to the end: no {} readings in a row later than {} past byte {}",
                rule.run,
                to_rfc3339(rule.after_ms),
                rule.from_byte
            ),
            PlanNote::NoSeek(r) => write!(f, "no seek for --from: {r}; read from the start"),
            PlanNote::NoStopNearTheEnd { limit_ms } => write!(
                f,
                "no early stop for --until: no probe after the last one at or before {}",
                to_rfc3339(limit_ms)
            ),
            PlanNote::NotAFile => write!(
                f,
                "read to the end for --until: a stream cannot be probed for an early stop"
            ),
            PlanNote::Small { min_size } => write!(
                f,
                "read whole: under {} KiB, a seek or an early stop would save nothing",
                min_size / 1024
            ),
            PlanNote::JsonlToTheEnd => {
                write!(f, "JSONL is read to the end for --until (no early stop)")
            }
        }
    }
}
