//! What a replay says about a stream whose readings look wrong for its settings, beside the
//! books: the numbers balance, yet the result is likely not what the user meant.

use std::fmt;

use crate::engine::StreamReport;
use crate::text::timefmt::human_ms;

/// A doubt about a stream's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamNote {
    /// A stream without seqs (JSONL) has a gap after most of its readings: its readings are
    /// likely further apart than the period taken for them, and the fills invented. JSONL
    /// carries no period, so it comes from `--period` (1 s unless given).
    SparserThanPeriod {
        /// The sensor.
        sensor: u32,
        /// The session.
        session: u32,
        /// Gaps found.
        gaps: u64,
        /// Measured readings written.
        readings: u64,
        /// The period taken, ms.
        period_ms: u32,
    },
}

impl StreamNote {
    /// The doubts about one stream, if any.
    pub fn of(s: &StreamReport) -> Option<Self> {
        // Lost readings leave a gap after a few readings; a period too short leaves one
        // after nearly every reading.
        (!s.has_seq && s.measured >= 3 && s.gaps.saturating_mul(2) >= s.measured).then_some(
            StreamNote::SparserThanPeriod {
                sensor: s.sensor,
                session: s.session,
                gaps: s.gaps,
                readings: s.measured,
                period_ms: s.period_ms,
            },
        )
    }
}

impl fmt::Display for StreamNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamNote::SparserThanPeriod {
                sensor,
                session,
                gaps,
                readings,
                period_ms,
            } => write!(
                f,
                "sensor {sensor} session {session}: {gaps} gaps among {readings} readings: are they sampled further apart than the period of {}? JSONL carries none; give it with --period, or the gaps' fills are invented",
                human_ms(u64::from(*period_ms))
            ),
        }
    }
}
