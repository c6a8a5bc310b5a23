//! Why something became a dead letter: one enum for every reason, whose names are those of
//! the dead-letter file and the summary, so that the compiler counts the cases.

use mend_core::SkipReason;
use serde::{Serialize, Serializer};

/// Why something could not be used: the `reason` of its dead-letter record.
///
/// # Examples
/// ```
/// use mend::input::{DeadReason, LineReason};
/// use mend_core::SkipReason;
/// assert_eq!(DeadReason::Frame(SkipReason::BadCrc).to_string(), "bad_crc");
/// assert_eq!(DeadReason::Line(LineReason::MissingField).to_string(), "missing_field");
/// assert_eq!(DeadReason::Late.name(), "late");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadReason {
    /// Bytes of a frame log that are not a good frame (damaged) or never were one (skipped).
    Frame(SkipReason),
    /// A session header with a sampling period of 0.
    ZeroPeriod,
    /// A frame with no usable session header before it.
    NoHeader,
    /// A reading frame whose time cannot be computed from its header, or is after
    /// `9999-12-31T23:59:59.999Z`, the last time RFC 3339 can write.
    BadTimestamp,
    /// A JSONL line that gave no reading.
    Line(LineReason),
    /// A reading whose clock jumped away from its stream's: a clock glitch.
    ClockJump,
    /// A reading without a seq at the time of another with a different value.
    ConflictingDuplicate,
    /// A reading whose seq is not above the seq released before it.
    SeqBehindTime,
    /// A reading below the duplicate window.
    BeyondDedupWindow,
    /// A reading that came after its place was written (or its session ended).
    Late,
    /// A reading of another sensor than the one whose stream it was read from (a fleet's
    /// raw stream holding another sensor's frames).
    OtherSensor,
}

impl DeadReason {
    /// The name in dead-letter records and summaries.
    pub const fn name(self) -> &'static str {
        match self {
            DeadReason::Frame(r) => r.name(),
            DeadReason::ZeroPeriod => "zero_period",
            DeadReason::NoHeader => "no_header",
            DeadReason::BadTimestamp => "bad_timestamp",
            DeadReason::Line(r) => r.as_str(),
            DeadReason::ClockJump => "clock_jump",
            DeadReason::ConflictingDuplicate => "conflicting_duplicate",
            DeadReason::SeqBehindTime => "seq_behind_time",
            DeadReason::BeyondDedupWindow => "beyond_dedup_window",
            DeadReason::Late => "late",
            DeadReason::OtherSensor => "other_sensor",
        }
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// As its name.
impl Serialize for DeadReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Why a JSONL line gave no reading: the `reason` of its dead-letter record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LineReason {
    /// The line is longer than [`MAX_LINE`](super::MAX_LINE).
    LineTooLong,
    /// The line is not UTF-8.
    NotUtf8,
    /// The line is not JSON at all.
    MalformedJson,
    /// The line is JSON, but not an object.
    NotAnObject,
    /// A field the reading needs (`timestamp`, `temperature`) is absent.
    MissingField,
    /// A field has the wrong JSON type (`null` included).
    WrongType,
    /// The timestamp is negative, fractional, or after `9999-12-31T23:59:59Z` (the last
    /// second RFC 3339 can write).
    BadTimestamp,
    /// A number is NaN, infinite, or too large for a float (`1e309`).
    NotFinite,
    /// The temperature is outside what any thermometer reports.
    OutOfRange,
    /// An event of another type than `TEMPERATURE_SENSOR`: set aside, not a reading.
    OtherEvent,
    /// A status other than `normal`, `low`, `high` or `error`.
    UnknownStatus,
    /// A fill the prototype wrote (`"synthetic": true`): mend recomputes fills.
    SyntheticInput,
}

impl LineReason {
    /// The name in dead-letter records and summaries.
    ///
    /// # Examples
    /// ```
    /// use mend::input::LineReason;
    /// assert_eq!(LineReason::OtherEvent.as_str(), "other_event");
    /// assert_eq!(LineReason::LineTooLong.to_string(), "line_too_long");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            LineReason::LineTooLong => "line_too_long",
            LineReason::NotUtf8 => "not_utf8",
            LineReason::MalformedJson => "malformed_json",
            LineReason::NotAnObject => "not_an_object",
            LineReason::MissingField => "missing_field",
            LineReason::WrongType => "wrong_type",
            LineReason::BadTimestamp => "bad_timestamp",
            LineReason::NotFinite => "not_finite",
            LineReason::OutOfRange => "out_of_range",
            LineReason::OtherEvent => "other_event",
            LineReason::UnknownStatus => "unknown_status",
            LineReason::SyntheticInput => "synthetic_input",
        }
    }
}

impl std::fmt::Display for LineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_keeps_the_name_of_the_dead_letter_file() {
        let names = [
            (DeadReason::Frame(SkipReason::BadCrc), "bad_crc"),
            (DeadReason::Frame(SkipReason::Truncated), "truncated"),
            (DeadReason::ZeroPeriod, "zero_period"),
            (DeadReason::NoHeader, "no_header"),
            (DeadReason::BadTimestamp, "bad_timestamp"),
            (DeadReason::Line(LineReason::LineTooLong), "line_too_long"),
            (DeadReason::Line(LineReason::BadTimestamp), "bad_timestamp"),
            (DeadReason::ClockJump, "clock_jump"),
            (DeadReason::ConflictingDuplicate, "conflicting_duplicate"),
            (DeadReason::SeqBehindTime, "seq_behind_time"),
            (DeadReason::BeyondDedupWindow, "beyond_dedup_window"),
            (DeadReason::Late, "late"),
            (DeadReason::OtherSensor, "other_sensor"),
        ];
        for (reason, name) in names {
            assert_eq!(reason.to_string(), name);
            assert_eq!(
                serde_json::to_string(&reason).unwrap(),
                format!("\"{name}\"")
            );
        }
    }
}
