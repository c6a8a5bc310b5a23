//! What a reader hands on, in file order: readings with where they were found, session
//! headers, the edge's stats, heartbeats and faults, and a dead letter for whatever could not
//! be used.

use mend_core::{ClockKind, Fault, Header, Reading, Stats};
use serde::Serialize;

use super::reason::DeadReason;

/// Where something was found in an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Location {
    /// A byte range of a frame log.
    Bytes {
        /// The first byte.
        offset: u64,
        /// How many bytes.
        length: u64,
    },
    /// A line of a JSONL log, counted from 1.
    Line {
        /// The line number.
        line: u64,
    },
    /// A reading found wrong only after reordering, where its place in the input is no
    /// longer known: named by its identity instead.
    Released {
        /// The sensor.
        sensor: u32,
        /// The session.
        session: u32,
        /// The seq.
        seq: u32,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Bytes { offset, length } => {
                write!(f, "byte offset {offset} ({length} bytes)")
            }
            Location::Line { line } => write!(f, "line {line}"),
            Location::Released {
                sensor,
                session,
                seq,
            } => write!(f, "sensor {sensor} session {session} seq {seq}"),
        }
    }
}

/// Something that could not be used, where it was, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The index of the input.
    pub input: usize,
    /// Where in the input.
    pub location: Location,
    /// Why, in short: its name (`bad_crc`, `missing_field`, …) groups the records.
    pub reason: DeadReason,
    /// What was wrong, for people.
    pub detail: String,
}

/// What the stream a reading belongs to is like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamMeta {
    /// Readings carry a sample counter (frame logs) or not (JSONL).
    pub has_seq: bool,
    /// The sampling period in ms.
    pub period_ms: u32,
    /// The session's clock.
    pub clock: ClockKind,
}

/// A reading as read, with where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadingItem {
    /// The index of the input it came from.
    pub input: usize,
    /// The reading.
    pub reading: Reading,
    /// Its stream's properties.
    pub meta: StreamMeta,
    /// Where it was.
    pub at: Location,
    /// Sent again by the node in answer to a resend (a replayed frame): a measured reading
    /// like any other, counted as recovered by resend.
    pub replayed: bool,
}

/// One thing read from an input, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A reading.
    Reading(ReadingItem),
    /// A session header (frame logs).
    Header(Header),
    /// An edge stats frame, with the sensor of the header before it.
    Stats {
        /// The sensor.
        sensor: u32,
        /// The frame.
        stats: Stats,
    },
    /// A heartbeat: the node was alive and had nothing else to send.
    Heartbeat {
        /// The sensor of the header before it.
        sensor: u32,
        /// The session.
        session: u32,
    },
    /// A failed sample reported by the edge.
    Fault {
        /// The sensor.
        sensor: u32,
        /// The session.
        session: u32,
        /// The fault.
        fault: Fault,
    },
    /// Something unusable.
    Dead(DeadLetter),
}
