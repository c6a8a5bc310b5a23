//! The frames and their fields: what travels on the wire, and the wire tags.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::reading::{Celsius, Reading};

/// The format version mend writes in every [`Header`]. A header of a version not in
/// [`VERSIONS`] makes the decoder skip it with [`SkipReason::UnknownVersion`](super::SkipReason::UnknownVersion).
pub const FORMAT_VERSION: u8 = 2;

/// Every format version that was ever written, oldest first; the [`Decoder`](super::Decoder) reads them all.
pub const VERSIONS: [u8; 2] = [1, 2];

/// The largest encoded frame, delimiter included. Every frame mend writes fits.
pub const MAX_FRAME: usize = 80;

/// The frame check: CRC-16/IBM-SDLC (X.25), as used by HDLC.
pub const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);

/// One encoded frame, delimiter included.
pub type FrameBuf = heapless::Vec<u8, MAX_FRAME>;

/// Which clock a session's timestamps come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClockKind {
    /// Milliseconds since the node powered up; there is no calendar time.
    Boot,
    /// Milliseconds since 1970-01-01T00:00:00Z.
    Unix,
}

/// Why a node (re)started, as its header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ResetReason {
    /// The node did not say: every version-1 header, or a node that cannot tell.
    #[default]
    Unknown,
    /// Power was applied (or came back).
    PowerOn,
    /// The watchdog expired: the firmware hung.
    Watchdog,
    /// The firmware asked for the reset (after a fatal error, or an update).
    Software,
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::PowerOn => "power-on",
            Self::Watchdog => "watchdog",
            Self::Software => "software",
        })
    }
}

/// The frame a node sends at power-up (and again with every stats frame) to announce its
/// session.
///
/// Version 2 adds the base seq (where the decoder places the readings that follow) and the
/// reset reason. On the wire they follow the fields of version 1, which are the header's
/// identity; a version-1 header decodes with base seq 0 and an unknown reset reason.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Header, Reading};
/// let h = Header::new(7, 3, 1_000, ClockKind::Unix, 1_700_000_000_000);
/// let r = Reading::new(7, 3, 42, 1_700_000_042_005, Celsius::from_num(52));
/// let w = h.to_wire(&r).unwrap();
/// assert_eq!((w.seq, w.offset_ms), (42, 5));
/// assert_eq!(h.from_wire(&w).unwrap(), r);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT_VERSION`] of the writer. It comes first, so any version can be recognised.
    pub version: u8,
    /// The sensor's id.
    pub sensor: u32,
    /// The power-up this header starts.
    pub session: u32,
    /// The sampling period in milliseconds.
    pub period_ms: u32,
    /// The clock the timestamps come from.
    pub clock: ClockKind,
    /// The timestamp of seq 0.
    pub epoch_ms: u64,
    /// The temperature readings are sent relative to, as [`Celsius`] bits. Within ±32 °C of
    /// it a value takes two bytes on the wire instead of three.
    pub reference_bits: i32,
    /// The seq of the next reading (version 2): the decoder places the readings that follow
    /// from it. 0 in version 1.
    pub base_seq: u32,
    /// Why the node started this session (version 2).
    pub reset: ResetReason,
}

/// The fields of a version-1 header, in wire order: the whole header of version 1 and the
/// identity part of version 2.
#[derive(Serialize, Deserialize)]
pub(super) struct HeaderId {
    version: u8,
    sensor: u32,
    session: u32,
    period_ms: u32,
    clock: ClockKind,
    epoch_ms: u64,
    reference_bits: i32,
}

impl HeaderId {
    /// The version-1 fields of `h` (the tests serialise them as the reference).
    #[cfg(test)]
    pub(super) const fn of(h: &Header) -> Self {
        Self {
            version: h.version,
            sensor: h.sensor,
            session: h.session,
            period_ms: h.period_ms,
            clock: h.clock,
            epoch_ms: h.epoch_ms,
            reference_bits: h.reference_bits,
        }
    }

    pub(super) const fn header(self, base_seq: u32, reset: ResetReason) -> Header {
        Header {
            version: self.version,
            sensor: self.sensor,
            session: self.session,
            period_ms: self.period_ms,
            clock: self.clock,
            epoch_ms: self.epoch_ms,
            reference_bits: self.reference_bits,
            base_seq,
            reset,
        }
    }
}

/// The gateway has durably stored every reading of `session` up to and including `seq`: the
/// node may erase them (gateway → node).
///
/// # Examples
/// ```
/// use mend_core::{Ack, Frame};
/// let f = Frame::Ack(Ack { session: 3, seq: 200 });
/// assert_eq!(f.to_buf().unwrap().as_slice(), &[0x07, 0x04, 0x03, 0xC8, 0x01, 0xB5, 0x74, 0x00]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ack {
    /// The session.
    pub session: u32,
    /// The last stored seq.
    pub seq: u32,
}

/// The gateway misses the readings of `session` from `from` to `to`, both included: the node
/// sends them again from its log, as [`Frame::Replayed`] (gateway → node).
///
/// # Examples
/// ```
/// use mend_core::{Frame, Resend};
/// let f = Frame::Resend(Resend { session: 3, from: 10, to: 12 });
/// assert_eq!(f.to_buf().unwrap().as_slice(), &[0x07, 0x05, 0x03, 0x0A, 0x0C, 0xF1, 0x4A, 0x00]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resend {
    /// The session.
    pub session: u32,
    /// The first missing seq.
    pub from: u32,
    /// The last missing seq.
    pub to: u32,
}

/// The node is alive and sent nothing else this period: tells "link down" and "node down"
/// apart from "sensor down" (which sends fault frames).
///
/// # Examples
/// ```
/// use mend_core::{Frame, Heartbeat};
/// let f = Frame::Heartbeat(Heartbeat { session: 3, seq: 5 });
/// assert_eq!(f.to_buf().unwrap().as_slice(), &[0x06, 0x06, 0x03, 0x05, 0xD0, 0x6D, 0x00]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The session.
    pub session: u32,
    /// The seq the node will sample next.
    pub seq: u32,
}

/// A reading as it travels: its seq, the timestamp's offset from the schedule, and the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WireReading {
    /// The sample counter.
    pub seq: u32,
    /// `timestamp − (epoch + seq × period)`, in milliseconds.
    pub offset_ms: i32,
    /// The temperature minus the header's reference, as [`Celsius`] bits (1/256 °C), with
    /// wrapping arithmetic so that every value travels exactly.
    pub celsius_delta: i32,
}

/// The edge's books, sent periodically so the host can check them against what arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Stats {
    /// The session these counts belong to.
    pub session: u32,
    /// The reorder stage's counters since power-up.
    pub counters: Counters,
    /// Readings the validator called doubtful.
    pub doubtful: u32,
    /// Readings the validator called bad.
    pub bad: u32,
    /// Sensor reads that failed on the bus.
    pub sensor_faults: u32,
    /// Frames the outgoing ring buffer dropped because it was full.
    pub ring_dropped: u32,
    /// Frames the link has taken from the edge's ring so far. Frames still queued ahead of
    /// this one are not counted, so this is not the frame's position in the stream.
    pub frames_sent: u32,
    /// Frames a store-and-forward node's flash log gave up, oldest first, to make room while
    /// they were still unacknowledged (since power-up). On the wire it follows the other
    /// fields only when it is not 0, so the stats frames of a node without a log, and every
    /// stats frame written before the field existed, are unchanged and decode with 0.
    pub log_dropped: u32,
}

/// What went wrong with a sensor read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// The sensor did not acknowledge its address or a byte.
    NoAcknowledge,
    /// The bus reported an error (arbitration loss, overrun, …).
    Bus,
    /// The bus did not finish in time.
    Timeout,
    /// The sensor answered with a value that cannot be a temperature register.
    InvalidData,
}

/// A sample that could not be taken: its seq stays empty, and the host knows why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fault {
    /// The seq the sample would have had.
    pub seq: u32,
    /// What went wrong.
    pub kind: FaultKind,
}

/// Everything that travels on the wire.
///
/// A decoded reading always carries its whole seq, whichever version wrote it. On the wire
/// each kind starts with a tag: 0 header, 1 reading with its whole seq (version 1), 2 stats,
/// 3 fault, 4 ack, 5 resend, 6 heartbeat, 7 reading and 8 replayed reading (version 2: the
/// seq's low 7 bits and a sealed CRC, see [`Encoder`](super::Encoder)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A session starts (or is re-announced).
    Header(Header),
    /// One reading of the current session.
    Reading(WireReading),
    /// The edge's counters.
    Stats(Stats),
    /// A sample that failed.
    Fault(Fault),
    /// The gateway stored readings durably (gateway → node).
    Ack(Ack),
    /// The gateway asks for readings again (gateway → node).
    Resend(Resend),
    /// The node is alive.
    Heartbeat(Heartbeat),
    /// A reading sent again in answer to a [`Resend`]: a measured value like any other.
    Replayed(WireReading),
}

/// The wire tags of the frame kinds.
pub(super) mod tag {
    pub const HEADER: u8 = 0;
    pub const READING_V1: u8 = 1;
    pub const STATS: u8 = 2;
    pub const FAULT: u8 = 3;
    pub const ACK: u8 = 4;
    pub const RESEND: u8 = 5;
    pub const HEARTBEAT: u8 = 6;
    pub const READING: u8 = 7;
    pub const REPLAYED: u8 = 8;
}

/// Why a reading cannot be put on the wire or taken off it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireError {
    /// The timestamp is too far from `epoch + seq × period` for an `i32` offset.
    OffsetOutOfRange,
    /// The reading belongs to another sensor or session than the header.
    WrongSession,
    /// The decoded timestamp does not fit in a `u64`.
    TimestampOutOfRange,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OffsetOutOfRange => "timestamp is more than ±24 days off its schedule",
            Self::WrongSession => "reading belongs to another sensor or session than the header",
            Self::TimestampOutOfRange => "timestamp does not fit in 64 bits",
        })
    }
}

impl core::error::Error for WireError {}

impl Header {
    /// The default reference temperature: 52.5 °C, the middle of the default band, so that
    /// everything from 20.5 °C to 84.5 °C travels in two bytes.
    pub const DEFAULT_REFERENCE: Celsius = Celsius::from_bits(52 * 256 + 128);

    /// A header of the current [`FORMAT_VERSION`], with the default reference temperature.
    pub const fn new(
        sensor: u32,
        session: u32,
        period_ms: u32,
        clock: ClockKind,
        epoch_ms: u64,
    ) -> Self {
        Self {
            version: FORMAT_VERSION,
            sensor,
            session,
            period_ms,
            clock,
            epoch_ms,
            reference_bits: Self::DEFAULT_REFERENCE.to_bits(),
            base_seq: 0,
            reset: ResetReason::Unknown,
        }
    }

    /// The same header with another base seq: the seq of the reading that follows it.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{ClockKind, Header};
    /// assert_eq!(Header::new(1, 1, 1_000, ClockKind::Boot, 0).with_base(600).base_seq, 600);
    /// ```
    #[must_use]
    pub const fn with_base(mut self, base_seq: u32) -> Self {
        self.base_seq = base_seq;
        self
    }

    /// The same header with a reset reason.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{ClockKind, Header, ResetReason};
    /// let h = Header::new(1, 1, 1_000, ClockKind::Boot, 0).with_reset(ResetReason::Watchdog);
    /// assert_eq!(h.reset, ResetReason::Watchdog);
    /// ```
    #[must_use]
    pub const fn with_reset(mut self, reset: ResetReason) -> Self {
        self.reset = reset;
        self
    }

    /// The same header with another reference temperature (pick the middle of the range the
    /// sensor usually reads, to keep reading frames small).
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Celsius, ClockKind, Header};
    /// let h = Header::new(1, 1, 1_000, ClockKind::Boot, 0).with_reference(Celsius::from_num(20));
    /// assert_eq!(h.reference_bits, 5_120);
    /// ```
    #[must_use]
    pub const fn with_reference(mut self, reference: Celsius) -> Self {
        self.reference_bits = reference.to_bits();
        self
    }

    fn scheduled(&self, seq: u32) -> i128 {
        i128::from(self.epoch_ms) + i128::from(seq) * i128::from(self.period_ms)
    }

    /// The wire form of a reading of this session.
    pub fn to_wire(&self, r: &Reading) -> Result<WireReading, WireError> {
        if r.sensor != self.sensor || r.session != self.session {
            return Err(WireError::WrongSession);
        }
        let offset_ms = self.offset_ms(r.seq, r.timestamp)?;
        Ok(WireReading {
            seq: r.seq,
            offset_ms,
            celsius_delta: r.celsius.to_bits().wrapping_sub(self.reference_bits),
        })
    }

    /// `timestamp − (epoch + seq × period)`, when it fits an `i32`.
    ///
    /// In `u64` (`seq × period` always fits), and exactly in `i128` only when the schedule
    /// itself passes `u64::MAX`: a node pays for a multiplication and a comparison or two.
    pub(crate) fn offset_ms(&self, seq: u32, timestamp: u64) -> Result<i32, WireError> {
        self.offset_from(self.schedule(seq), seq, timestamp)
    }

    /// `epoch + seq × period`, when it fits a `u64`.
    pub(crate) fn schedule(&self, seq: u32) -> Option<u64> {
        self.epoch_ms
            .checked_add(u64::from(seq) * u64::from(self.period_ms))
    }

    /// [`offset_ms`](Self::offset_ms), given `schedule(seq)`.
    pub(crate) fn offset_from(
        &self,
        scheduled: Option<u64>,
        seq: u32,
        timestamp: u64,
    ) -> Result<i32, WireError> {
        let Some(scheduled) = scheduled else {
            let offset = i128::from(timestamp) - self.scheduled(seq);
            return i32::try_from(offset).map_err(|_| WireError::OffsetOutOfRange);
        };
        let fits = if timestamp >= scheduled {
            timestamp - scheduled <= i32::MAX as u64
        } else {
            scheduled - timestamp <= 1 << 31
        };
        if fits {
            // Exact: the difference fits 32 bits, so its low 32 bits are the offset.
            Ok(timestamp.wrapping_sub(scheduled) as i32)
        } else {
            Err(WireError::OffsetOutOfRange)
        }
    }

    /// The wire form of a reading whose [`to_wire`](Self::to_wire) was checked before (the
    /// edge checks every reading once, when it arrives): the same value, without the checks.
    /// For a reading that would not pass them the result is meaningless, never a panic.
    pub(crate) fn wire_checked_before(&self, r: &Reading) -> WireReading {
        let scheduled = self
            .epoch_ms
            .wrapping_add(u64::from(r.seq) * u64::from(self.period_ms));
        self.wire_at(scheduled, r)
    }

    /// [`wire_checked_before`](Self::wire_checked_before), given the schedule of `r.seq`
    /// modulo 2^64.
    pub(crate) fn wire_at(&self, scheduled: u64, r: &Reading) -> WireReading {
        // Modulo 2^64 the schedule and the difference are exact, and an offset that fits
        // 32 bits is its own low 32 bits.
        WireReading {
            seq: r.seq,
            offset_ms: r.timestamp.wrapping_sub(scheduled) as i32,
            celsius_delta: r.celsius.to_bits().wrapping_sub(self.reference_bits),
        }
    }

    /// The reading a wire reading of this session stands for.
    pub fn from_wire(&self, w: &WireReading) -> Result<Reading, WireError> {
        // In u64 when nothing overflows (seq × period always fits); exactly in i128 only
        // near the ends of the range, where the sum of the parts may leave u64 and come back.
        let timestamp = self
            .epoch_ms
            .checked_add(u64::from(w.seq) * u64::from(self.period_ms))
            .and_then(|t| t.checked_add_signed(i64::from(w.offset_ms)))
            .or_else(|| u64::try_from(self.scheduled(w.seq) + i128::from(w.offset_ms)).ok())
            .ok_or(WireError::TimestampOutOfRange)?;
        Ok(Reading::new(
            self.sensor,
            self.session,
            w.seq,
            timestamp,
            Celsius::from_bits(w.celsius_delta.wrapping_add(self.reference_bits)),
        ))
    }
}
