//! The wire format: how readings travel from a node's UART into a capture file and back.
//!
//! A log is a sequence of frames. Each frame is a postcard-encoded [`Frame`], followed by a
//! CRC-16/IBM-SDLC (the X.25/HDLC CRC) of those bytes in little-endian order, COBS-encoded and
//! terminated by one `0x00`. Because COBS output never contains `0x00`, a reader that lands
//! anywhere in a stream — after damage, after a seek, after a torn write — finds the start of
//! the next frame at the next `0x00`. The [`Decoder`] does exactly that, and reports every byte
//! it could not use with a [`Span`] and a [`SkipReason`], so that a capture's bytes can always
//! be accounted for: good frames + bad frames + skipped bytes = file size.
//!
//! A reading frame is small because it does not repeat what the session's [`Header`] says: the
//! timestamp travels as its offset from `epoch + seq × period`, which is `0` for a node that
//! samples on time. In version 1 the seq travelled whole, so a reading frame grew from 9 to
//! 12 bytes as a session went on. Version 2 sends only the seq's low 7 bits (one byte, at any
//! seq): the decoder places the reading at the nearest seq with those bits, counting from the
//! reading before it or from the base seq of the latest header, and the frame's check covers
//! the rest of the seq and the header's identity (its *seal*), so a reading placed wrongly,
//! or read under the header of another session, fails its check instead of becoming a wrong
//! reading.
//! A lost repeated header costs nothing: its readings still follow the ones before. The edge
//! repeats the header whenever a reading lands 64 or more seqs from where the decoder expects
//! it, so a clean version-2 reading frame is 9 bytes at any seq.
//!
//! Every version that was ever written is decoded: a version-1 header and its readings (whose
//! frames carry the whole seq) read as they always did, in a file of their own or mixed with
//! version-2 frames.
//!
//! Encoding is deterministic: postcard has exactly one encoding for a value, so the same
//! frames always give the same bytes, on the MCU and on the host.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::reading::{Celsius, Reading};

/// The format version mend writes in every [`Header`]. A header of a version not in
/// [`VERSIONS`] makes the decoder skip it with [`SkipReason::UnknownVersion`].
pub const FORMAT_VERSION: u8 = 2;

/// Every format version that was ever written, oldest first; the [`Decoder`] reads them all.
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
struct HeaderId {
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
    const fn of(h: &Header) -> Self {
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

    const fn header(self, base_seq: u32, reset: ResetReason) -> Header {
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
/// seq's low 7 bits and a sealed CRC, see [`Encoder`]).
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
mod tag {
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

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is smaller than the encoded frame.
    BufferTooSmall,
    /// A header of a version this encoder does not write, or a version-1 header with fields
    /// version 1 cannot carry (a base seq or a reset reason).
    UnknownVersion,
    /// A version-2 reading needs a header first: none was encoded, or the reading lies 64 or
    /// more seqs from where a decoder would place it (see [`Encoder::places`]).
    NeedsHeader,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "output buffer too small for the frame",
            Self::UnknownVersion => "header of a version this encoder cannot write",
            Self::NeedsHeader => "a version-2 reading needs a header that places it",
        })
    }
}

impl core::error::Error for EncodeError {}

/// Encodes `frame` into `out` (postcard, CRC, COBS, `0x00`) and returns the length, without
/// a header context: see [`Frame::encode_into`].
///
/// # Examples
/// A reading 0.625 °C above its header's reference, seq 5, on schedule, is 9 bytes:
/// ```
/// use mend_core::{encode, Frame, WireReading};
/// let frame = Frame::Reading(WireReading { seq: 5, offset_ms: 0, celsius_delta: 160 });
/// let mut out = [0u8; 64];
/// let n = encode(&frame, &mut out).unwrap();
/// assert_eq!(&out[..n], &[0x03, 0x01, 0x05, 0x05, 0xC0, 0x02, 0xDC, 0x43, 0x00]);
/// ```
pub fn encode(frame: &Frame, out: &mut [u8]) -> Result<usize, EncodeError> {
    let mut slot = [0u8; MAX_FRAME];
    let n = frame.encode_into(&mut slot)?;
    out.get_mut(..n)
        .ok_or(EncodeError::BufferTooSmall)?
        .copy_from_slice(slot.get(..n).ok_or(EncodeError::BufferTooSmall)?);
    Ok(n)
}

/// Where an encoder or decoder places the next version-2 reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Place {
    /// The CRC of the latest version-2 header's identity (its version-1 fields).
    seal: u16,
    /// The seq expected next: the header's base seq, or one past the last reading placed.
    next: u32,
}

impl Place {
    /// The seq with the low 7 bits `low` nearest to `next` (64 below to 63 above).
    #[inline]
    const fn seq(&self, low: u8) -> u32 {
        let d = (low.wrapping_sub(self.next as u8) & 0x7F) as u32;
        // 0..=63 ahead, 64..=127 stands for 64..=1 behind.
        self.next
            .wrapping_add(d)
            .wrapping_sub(if d >= 64 { 128 } else { 0 })
    }

    /// The check of a version-2 reading: the CRC of the frame's body, exclusive-or the
    /// header's seal and the seq's high 25 bits folded to 16 (`h ^ h >> 16` for
    /// `h = seq >> 7`; the body holds the low 7 bits). A reading placed at a wrong seq
    /// fails it: always when both seqs lie in the same block of 2^23, and but for a chance
    /// of 1 in 65 536 otherwise. On a node it costs what a version-1 CRC cost.
    #[inline]
    fn check(&self, seq: u32, body: &[u8]) -> u16 {
        let high = seq >> 7;
        CRC.checksum(body) ^ self.seal ^ (high ^ high >> 16) as u16
    }
}

/// A stateful encoder: writes version-2 reading frames, placed by the header before them.
///
/// A version-2 reading frame carries only the low 7 bits of its seq; its check covers the whole
/// seq and is sealed with the header's identity (see [`Frame`] and the module docs). The
/// encoder remembers the latest header's seal and the seq a decoder expects next, exactly as
/// the [`Decoder`] does on the other side.
///
/// # Examples
/// A version-2 reading is 9 bytes at any seq:
/// ```
/// use mend_core::{ClockKind, Encoder, Frame, Header, WireReading, MAX_FRAME};
/// let h = Header::new(7, 2, 1_000, ClockKind::Boot, 0).with_base(300);
/// let mut enc = Encoder::new();
/// let mut slot = [0u8; MAX_FRAME];
/// enc.encode_into(&Frame::Header(h), &mut slot).unwrap();
/// let r = Frame::Reading(WireReading { seq: 300, offset_ms: -1, celsius_delta: -640 });
/// let n = enc.encode_into(&r, &mut slot).unwrap();
/// assert_eq!(&slot[..n], &[0x08, 0x07, 0x2C, 0x01, 0xFF, 0x09, 0x4F, 0xFB, 0x00]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Encoder {
    place: Option<Place>,
}

impl Encoder {
    /// An encoder that has written nothing yet.
    pub const fn new() -> Self {
        Self { place: None }
    }

    /// True when a version-2 reading of `seq` can be written now: a version-2 header came
    /// first and `seq` lies from 64 below to 63 above the seq a decoder expects next.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{ClockKind, Encoder, Frame, Header, MAX_FRAME};
    /// let mut enc = Encoder::new();
    /// assert!(!enc.places(0), "no header yet");
    /// let h = Header::new(1, 1, 1_000, ClockKind::Boot, 0).with_base(100);
    /// enc.encode_into(&Frame::Header(h), &mut [0u8; MAX_FRAME]).unwrap();
    /// assert!(enc.places(36) && enc.places(163) && !enc.places(164));
    /// ```
    pub const fn places(&self, seq: u32) -> bool {
        match self.place {
            Some(p) => p.seq((seq & 0x7F) as u8) == seq,
            None => false,
        }
    }

    /// The seq a decoder expects next, after a version-2 header.
    pub const fn next_seq(&self) -> Option<u32> {
        match self.place {
            Some(p) => Some(p.next),
            None => None,
        }
    }

    /// Encodes `frame` into `slot` and returns its length.
    ///
    /// A header sets the place of the readings after it (version 2) or clears it (version 1).
    /// A reading after a version-2 header is written in version 2; without one, in version
    /// 1 (its whole seq). A replayed reading exists only in version 2.
    pub fn encode_into(
        &mut self,
        frame: &Frame,
        slot: &mut [u8; MAX_FRAME],
    ) -> Result<usize, EncodeError> {
        match (frame, self.place) {
            (Frame::Reading(w), Some(p)) => self.reading(tag::READING, w, p, slot),
            (Frame::Replayed(w), Some(p)) => self.reading(tag::REPLAYED, w, p, slot),
            (Frame::Replayed(_), None) => Err(EncodeError::NeedsHeader),
            (Frame::Header(h), _) => {
                let (n, seal) = encode_header(h, slot)?;
                self.place = seal.map(|seal| Place {
                    seal,
                    next: h.base_seq,
                });
                Ok(n)
            }
            _ => frame.encode_into(slot),
        }
    }

    /// The frame encoded into a [`FrameBuf`].
    pub fn to_buf(&mut self, frame: &Frame) -> Result<FrameBuf, EncodeError> {
        let mut slot = [0u8; MAX_FRAME];
        let n = self.encode_into(frame, &mut slot)?;
        FrameBuf::from_slice(slot.get(..n).ok_or(EncodeError::BufferTooSmall)?)
            .map_err(|_| EncodeError::BufferTooSmall)
    }

    fn reading(
        &mut self,
        kind: u8,
        w: &WireReading,
        p: Place,
        slot: &mut [u8; MAX_FRAME],
    ) -> Result<usize, EncodeError> {
        let low = (w.seq & 0x7F) as u8;
        if p.seq(low) != w.seq {
            return Err(EncodeError::NeedsHeader);
        }
        let mut at = 1;
        at = put_varint(slot, at, u32::from(kind));
        at = put_varint(slot, at, u32::from(low));
        at = put_varint(slot, at, zigzag(w.offset_ms));
        at = put_varint(slot, at, zigzag(w.celsius_delta));
        let crc = p.check(w.seq, slot.get(1..at).ok_or(EncodeError::BufferTooSmall)?);
        self.place = Some(Place {
            next: w.seq.wrapping_add(1),
            ..p
        });
        finish(slot, at, crc)
    }
}

/// Writes a header's body from `slot[1]` on and finishes the frame; returns the length and,
/// for version 2, the seal of the readings that follow it.
fn encode_header(
    h: &Header,
    slot: &mut [u8; MAX_FRAME],
) -> Result<(usize, Option<u16>), EncodeError> {
    let v1 = match h.version {
        1 if h.base_seq == 0 && h.reset == ResetReason::Unknown => true,
        2 => false,
        _ => return Err(EncodeError::UnknownVersion),
    };
    // Postcard's bytes, by hand (a node links no serializer): the version is a plain byte,
    // enums their variant index, integers varints, the reference zigzag.
    let mut at = 1;
    at = put_varint(slot, at, u32::from(tag::HEADER));
    at = put_varint(slot, at, u32::from(h.version));
    at = put_varint(slot, at, h.sensor);
    at = put_varint(slot, at, h.session);
    at = put_varint(slot, at, h.period_ms);
    at = put_varint(slot, at, h.clock as u32);
    at = put_varint64(slot, at, h.epoch_ms);
    at = put_varint(slot, at, zigzag(h.reference_bits));
    let seal = if v1 {
        None
    } else {
        let seal = CRC.checksum(slot.get(1..at).ok_or(EncodeError::BufferTooSmall)?);
        at = put_varint(slot, at, h.base_seq);
        at = put_varint(slot, at, h.reset as u32);
        Some(seal)
    };
    let crc = CRC.checksum(slot.get(1..at).ok_or(EncodeError::BufferTooSmall)?);
    Ok((finish(slot, at, crc)?, seal))
}

/// Writes a tag and `u32` fields as postcard varints from `slot[1]` on; returns the end.
fn put_fields(slot: &mut [u8; MAX_FRAME], kind: u8, fields: &[u32]) -> usize {
    let mut at = put_varint(slot, 1, u32::from(kind));
    for &f in fields {
        at = put_varint(slot, at, f);
    }
    at
}

/// Appends the CRC to the body in `slot[1..end]` and COBS-encodes the frame in place.
fn finish(slot: &mut [u8; MAX_FRAME], end: usize, crc: u16) -> Result<usize, EncodeError> {
    slot.get_mut(end..end + 2)
        .ok_or(EncodeError::BufferTooSmall)?
        .copy_from_slice(&crc.to_le_bytes());
    cobs_in_place(slot, end + 2)
}

impl Frame {
    /// The frame encoded into a [`FrameBuf`], without a header context (see
    /// [`encode_into`](Self::encode_into)).
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Frame, WireReading};
    /// let f = Frame::Reading(WireReading { seq: 1_000, offset_ms: 0, celsius_delta: 0 });
    /// assert_eq!(f.to_buf().unwrap().len(), 9);
    /// ```
    pub fn to_buf(&self) -> Result<FrameBuf, EncodeError> {
        let mut buf = [0u8; MAX_FRAME];
        let n = self.encode_into(&mut buf)?;
        FrameBuf::from_slice(buf.get(..n).ok_or(EncodeError::BufferTooSmall)?)
            .map_err(|_| EncodeError::BufferTooSmall)
    }

    /// Encodes the frame into `slot` in place and returns its length, without a header
    /// context: a reading is written with its whole seq (tag 1, as in version 1, readable
    /// after a header of any version), and a replayed reading, which needs a header to be
    /// placed, is [`EncodeError::NeedsHeader`]. The [`Encoder`] writes version-2 readings.
    ///
    /// The body (postcard, then the CRC) is written from `slot[1]` on, and COBS is applied
    /// where it lies: below 254 bytes COBS only replaces each zero by the distance to the
    /// next one and puts the first distance in front, so every other byte is already where
    /// it belongs. A reading's postcard bytes are written by hand (four varints).
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Frame, WireReading, MAX_FRAME};
    /// let frame = Frame::Reading(WireReading { seq: 5, offset_ms: 0, celsius_delta: 160 });
    /// let mut slot = [0u8; MAX_FRAME];
    /// let n = frame.encode_into(&mut slot).unwrap();
    /// assert_eq!(&slot[..n], &[0x03, 0x01, 0x05, 0x05, 0xC0, 0x02, 0xDC, 0x43, 0x00]);
    /// ```
    pub fn encode_into(&self, slot: &mut [u8; MAX_FRAME]) -> Result<usize, EncodeError> {
        // Every field is a u32 (or an enum's index): postcard varints, written by hand. The
        // largest frame (stats, 12 fields) takes at most 61 bytes.
        let end = match self {
            Frame::Header(h) => return encode_header(h, slot).map(|(n, _)| n),
            Frame::Replayed(_) => return Err(EncodeError::NeedsHeader),
            Frame::Reading(w) => put_fields(
                slot,
                tag::READING_V1,
                &[w.seq, zigzag(w.offset_ms), zigzag(w.celsius_delta)],
            ),
            Frame::Stats(x) => {
                let c = &x.counters;
                let end = put_fields(
                    slot,
                    tag::STATS,
                    &[
                        x.session,
                        c.input,
                        c.emitted,
                        c.late,
                        c.duplicate,
                        c.rejected,
                        c.evicted,
                        x.doubtful,
                        x.bad,
                        x.sensor_faults,
                        x.ring_dropped,
                        x.frames_sent,
                    ],
                );
                if x.log_dropped == 0 {
                    end
                } else {
                    put_varint(slot, end, x.log_dropped)
                }
            }
            Frame::Fault(x) => put_fields(slot, tag::FAULT, &[x.seq, x.kind as u32]),
            Frame::Ack(x) => put_fields(slot, tag::ACK, &[x.session, x.seq]),
            Frame::Resend(x) => put_fields(slot, tag::RESEND, &[x.session, x.from, x.to]),
            Frame::Heartbeat(x) => put_fields(slot, tag::HEARTBEAT, &[x.session, x.seq]),
        };
        let crc = CRC.checksum(slot.get(1..end).ok_or(EncodeError::BufferTooSmall)?);
        finish(slot, end, crc)
    }
}

/// Postcard's zigzag form of an `i32`.
#[inline]
const fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// The fields of a version-2 reading after its tag: the seq's low 7 bits (one byte below
/// 128) and two zigzag `i32` varints; `None` for a field that is missing or malformed, or
/// when bytes are left over.
fn read_v2_reading(rest: &[u8]) -> (Option<u8>, Option<i32>, Option<i32>) {
    let Some((&low, rest)) = rest.split_first() else {
        return (None, None, None);
    };
    let low = (low < 0x80).then_some(low);
    match postcard::take_from_bytes::<(i32, i32)>(rest) {
        Ok(((offset, celsius), [])) => (low, Some(offset), Some(celsius)),
        _ => (low, None, None),
    }
}

/// The fields of a stats frame after its tag: the twelve that every version has, and the
/// log's drop count when it follows. An explicit 0 there is refused: 0 travels as an absent
/// field, so each value keeps exactly one encoding.
fn read_stats(rest: &[u8]) -> Result<Stats, SkipReason> {
    type Twelve = (u32, Counters, u32, u32, u32, u32, u32);
    let ((session, counters, doubtful, bad, sensor_faults, ring_dropped, frames_sent), tail) =
        postcard::take_from_bytes::<Twelve>(rest).map_err(|_| SkipReason::Undecodable)?;
    let log_dropped = match tail {
        [] => 0,
        _ => match postcard::take_from_bytes::<u32>(tail) {
            Ok((n, [])) if n != 0 => n,
            _ => return Err(SkipReason::Undecodable),
        },
    };
    Ok(Stats {
        session,
        counters,
        doubtful,
        bad,
        sensor_faults,
        ring_dropped,
        frames_sent,
        log_dropped,
    })
}

/// [`put_varint`] for a `u64`.
fn put_varint64(slot: &mut [u8; MAX_FRAME], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        if let Some(b) = slot.get_mut(at) {
            *b = v as u8 | 0x80;
        }
        at += 1;
        v >>= 7;
    }
    if let Some(b) = slot.get_mut(at) {
        *b = v as u8;
    }
    at + 1
}

/// Writes `v` as a postcard (LEB128) varint at `slot[at..]` and returns the next position.
/// Callers write at most 62 bytes from position 1 (a stats frame), inside the slot; a write
/// past its end is dropped, and `cobs_in_place` then refuses the frame.
#[inline]
fn put_varint(slot: &mut [u8; MAX_FRAME], mut at: usize, mut v: u32) -> usize {
    while v >= 0x80 {
        if let Some(b) = slot.get_mut(at) {
            *b = v as u8 | 0x80;
        }
        at += 1;
        v >>= 7;
    }
    if let Some(b) = slot.get_mut(at) {
        *b = v as u8;
    }
    at + 1
}

/// COBS-encodes `slot[1..end]` into `slot[0..end]`, adds the `0x00` delimiter, and returns the
/// frame's length, `end + 1`.
fn cobs_in_place(slot: &mut [u8; MAX_FRAME], end: usize) -> Result<usize, EncodeError> {
    // A run of 254 non-zero bytes would need an extra code byte; the slot is far shorter.
    const _: () = assert!(MAX_FRAME < 254);
    if end >= MAX_FRAME {
        return Err(EncodeError::BufferTooSmall);
    }
    // Every index below is under `end < MAX_FRAME`, so none can fail (and the compiler
    // knows it: the loop has no bounds checks).
    let mut code_at = 0;
    let mut code: u8 = 1;
    for i in 1..end {
        if slot[i] == 0 {
            // This zero becomes the next code byte, filled in when its block ends.
            slot[code_at] = code;
            code_at = i;
            code = 1;
        } else {
            code += 1;
        }
    }
    slot[code_at] = code;
    slot[end] = 0;
    Ok(end + 1)
}

/// A range of byte offsets in a stream, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    /// The first byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Span {
    /// The number of bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True for an empty span.
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bytes {}..{}", self.start, self.end)
    }
}

/// Why the decoder skipped a span of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// A delimited frame whose CRC does not match: bits were flipped.
    BadCrc,
    /// The bytes between two delimiters are not valid COBS.
    BadCobs,
    /// The CRC matched but the bytes are not a frame of this format.
    Undecodable,
    /// A header of a format version this decoder does not know.
    UnknownVersion,
    /// More bytes than any frame has before a delimiter: garbage, or a lost delimiter.
    Oversized,
    /// The stream ended inside a frame (a torn last write).
    Truncated,
    /// A delimiter with nothing before it.
    Empty,
    /// A version-2 reading with no version-2 header before it (the stream starts with it,
    /// or follows a version-1 header): nothing says where it belongs.
    NoHeader,
}

impl SkipReason {
    /// True for damage to a delimited frame (as opposed to bytes that were never a frame).
    pub const fn is_bad_frame(self) -> bool {
        matches!(
            self,
            Self::BadCrc
                | Self::BadCobs
                | Self::Undecodable
                | Self::UnknownVersion
                | Self::NoHeader
        )
    }

    /// A short name, as used in dead-letter records.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadCrc => "bad_crc",
            Self::BadCobs => "bad_cobs",
            Self::Undecodable => "undecodable",
            Self::UnknownVersion => "unknown_version",
            Self::Oversized => "oversized",
            Self::Truncated => "truncated",
            Self::Empty => "empty",
            Self::NoHeader => "no_header",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadCrc => "CRC mismatch",
            Self::BadCobs => "invalid COBS encoding",
            Self::Undecodable => "CRC matches but the frame does not decode",
            Self::UnknownVersion => "header of an unknown format version",
            Self::Oversized => "no delimiter within the longest frame length",
            Self::Truncated => "stream ends inside a frame",
            Self::Empty => "empty frame",
            Self::NoHeader => "version-2 reading without a version-2 header before it",
        })
    }
}

/// What the decoder found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeEvent {
    /// A good frame and where it was.
    Frame {
        /// The frame.
        frame: Frame,
        /// Its bytes, delimiter included.
        span: Span,
    },
    /// Bytes that could not be used, and why.
    Skipped {
        /// The bytes, delimiter included when there was one.
        span: Span,
        /// Why.
        reason: SkipReason,
    },
}

/// A streaming frame decoder: feed it bytes in chunks of any size, get frames and skip reports.
///
/// It holds one frame of `N` bytes, never allocates, and never panics, whatever the input.
/// It reads every version in [`VERSIONS`]: it places version-2 readings as the [`Encoder`]
/// did, from the latest version-2 header and the readings after it, and reports a reading
/// whose sealed CRC does not match that place as [`SkipReason::BadCrc`].
///
/// # Examples
/// ```
/// use mend_core::{encode, DecodeEvent, Decoder, Frame, SkipReason, Span, WireReading};
/// let frame = Frame::Reading(WireReading { seq: 5, offset_ms: 0, celsius_delta: 160 });
/// let mut log = [0u8; 64];
/// log[..3].copy_from_slice(b"zz\0"); // garbage before the frame
/// let n = encode(&frame, &mut log[3..]).unwrap();
///
/// let mut dec: Decoder = Decoder::new();
/// let events: Vec<_> = dec.feed(&log[..3 + n]).collect();
/// assert_eq!(events, [
///     DecodeEvent::Skipped { span: Span { start: 0, end: 3 }, reason: SkipReason::BadCobs },
///     DecodeEvent::Frame { frame, span: Span { start: 3, end: 12 } },
/// ]);
/// assert_eq!(dec.finish(), None, "nothing left over");
/// ```
#[derive(Clone, Debug)]
pub struct Decoder<const N: usize = MAX_FRAME> {
    buf: heapless::Vec<u8, N>,
    start: u64,
    pos: u64,
    oversized: bool,
    place: Option<Place>,
}

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Decoder<N> {
    /// A decoder at offset 0.
    pub const fn new() -> Self {
        Self::at(0)
    }

    /// A decoder whose first byte is at `offset` in the stream (after a seek).
    pub const fn at(offset: u64) -> Self {
        Self {
            buf: heapless::Vec::new(),
            start: offset,
            pos: offset,
            oversized: false,
            place: None,
        }
    }

    /// The offset of the next byte to be fed.
    pub const fn position(&self) -> u64 {
        self.pos
    }

    /// The offset where the frame being collected started.
    pub const fn frame_start(&self) -> u64 {
        self.start
    }

    /// The seq the next version-2 reading is placed near: the base seq of the latest
    /// version-2 header, or one past the reading placed after it; `None` when no version-2
    /// header is in force. A header of the same identity with this base seq, put in front of
    /// the frames that follow, places them exactly as this decoder does.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{ClockKind, Decoder, Encoder, Frame, Header, WireReading};
    /// let h = Header::new(7, 2, 1_000, ClockKind::Boot, 0).with_base(300);
    /// let mut enc = Encoder::new();
    /// let mut log = enc.to_buf(&Frame::Header(h)).unwrap().to_vec();
    /// let r = WireReading { seq: 301, offset_ms: 0, celsius_delta: 0 };
    /// log.extend_from_slice(&enc.to_buf(&Frame::Reading(r)).unwrap());
    /// let mut dec: Decoder = Decoder::new();
    /// assert_eq!(dec.next_seq(), None);
    /// let header_len = log.iter().position(|b| *b == 0).unwrap() + 1;
    /// assert_eq!(dec.feed(&log[..header_len]).count(), 1);
    /// assert_eq!(dec.next_seq(), Some(300));
    /// assert_eq!(dec.feed(&log[header_len..]).count(), 1);
    /// assert_eq!(dec.next_seq(), Some(302));
    /// ```
    pub const fn next_seq(&self) -> Option<u32> {
        match self.place {
            Some(p) => Some(p.next),
            None => None,
        }
    }

    /// Takes one byte; returns an event when it completes a frame or a skipped span.
    #[inline]
    pub fn push(&mut self, byte: u8) -> Option<DecodeEvent> {
        self.pos += 1;
        if byte != 0 {
            if self.buf.push(byte).is_err() {
                self.oversized = true;
            }
            return None;
        }
        Some(self.end_frame())
    }

    /// The delimiter arrived: decodes what was collected. Kept apart, so that the per-byte
    /// path of [`Decoder::push`] stays small enough to inline into any read loop.
    #[inline]
    fn end_frame(&mut self) -> DecodeEvent {
        let span = Span {
            start: self.start,
            end: self.pos,
        };
        self.start = self.pos;
        let event = if self.oversized {
            DecodeEvent::Skipped {
                span,
                reason: SkipReason::Oversized,
            }
        } else if self.buf.is_empty() {
            DecodeEvent::Skipped {
                span,
                reason: SkipReason::Empty,
            }
        } else {
            match Self::decode(&mut self.buf, &mut self.place) {
                Ok(frame) => DecodeEvent::Frame { frame, span },
                Err(reason) => DecodeEvent::Skipped { span, reason },
            }
        };
        self.buf.clear();
        self.oversized = false;
        event
    }

    fn decode(buf: &mut [u8], place: &mut Option<Place>) -> Result<Frame, SkipReason> {
        let n = cobs::decode_in_place(buf).map_err(|_| SkipReason::BadCobs)?;
        let raw = buf.get(..n).ok_or(SkipReason::BadCobs)?;
        let Some(body_len) = n.checked_sub(2) else {
            return Err(SkipReason::BadCrc);
        };
        let (body, crc) = raw.split_at(body_len);
        let crc = u16::from_le_bytes([crc[0], crc[1]]);
        // Every tag is below 128: one byte.
        let Some((&kind, rest)) = body.split_first() else {
            return Err(SkipReason::BadCrc);
        };
        if kind == tag::READING || kind == tag::REPLAYED {
            let p = place.ok_or(SkipReason::NoHeader)?;
            let (low, offset_ms, celsius_delta) = read_v2_reading(rest);
            let seq = p.seq(low.ok_or(SkipReason::BadCrc)?);
            if p.check(seq, body) != crc {
                return Err(SkipReason::BadCrc);
            }
            let (Some(offset_ms), Some(celsius_delta)) = (offset_ms, celsius_delta) else {
                return Err(SkipReason::Undecodable);
            };
            *place = Some(Place {
                next: seq.wrapping_add(1),
                ..p
            });
            let w = WireReading {
                seq,
                offset_ms,
                celsius_delta,
            };
            return Ok(if kind == tag::READING {
                Frame::Reading(w)
            } else {
                Frame::Replayed(w)
            });
        }
        if CRC.checksum(body) != crc {
            return Err(SkipReason::BadCrc);
        }
        fn whole<'a, T: Deserialize<'a>>(rest: &'a [u8]) -> Result<T, SkipReason> {
            match postcard::take_from_bytes::<T>(rest) {
                Ok((value, [])) => Ok(value),
                _ => Err(SkipReason::Undecodable),
            }
        }
        Ok(match kind {
            tag::HEADER => match rest.first() {
                Some(1) => {
                    *place = None;
                    Frame::Header(whole::<HeaderId>(rest)?.header(0, ResetReason::Unknown))
                }
                Some(2) => {
                    let (id, tail) = postcard::take_from_bytes::<HeaderId>(rest)
                        .map_err(|_| SkipReason::Undecodable)?;
                    let (base_seq, reset) = whole::<(u32, ResetReason)>(tail)?;
                    let id_len = body.len() - tail.len();
                    *place = Some(Place {
                        seal: CRC.checksum(body.get(..id_len).ok_or(SkipReason::Undecodable)?),
                        next: base_seq,
                    });
                    Frame::Header(id.header(base_seq, reset))
                }
                Some(_) => return Err(SkipReason::UnknownVersion),
                None => return Err(SkipReason::Undecodable),
            },
            tag::READING_V1 => Frame::Reading(whole(rest)?),
            tag::STATS => Frame::Stats(read_stats(rest)?),
            tag::FAULT => Frame::Fault(whole(rest)?),
            tag::ACK => Frame::Ack(whole(rest)?),
            tag::RESEND => Frame::Resend(whole(rest)?),
            tag::HEARTBEAT => Frame::Heartbeat(whole(rest)?),
            _ => return Err(SkipReason::Undecodable),
        })
    }

    /// Ends the stream: reports a torn last frame, if any, and resets.
    pub fn finish(&mut self) -> Option<DecodeEvent> {
        let span = Span {
            start: self.start,
            end: self.pos,
        };
        self.start = self.pos;
        self.buf.clear();
        self.oversized = false;
        (!span.is_empty()).then_some(DecodeEvent::Skipped {
            span,
            reason: SkipReason::Truncated,
        })
    }

    /// Feeds a chunk and iterates over the events it completes.
    pub fn feed<'a>(&'a mut self, bytes: &'a [u8]) -> impl Iterator<Item = DecodeEvent> + 'a {
        bytes.iter().filter_map(move |b| self.push(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// CRC-16/IBM-SDLC, bit by bit, independent of the `crc` crate.
    fn crc_x25(data: &[u8]) -> u16 {
        let mut crc = 0xFFFFu16;
        for &b in data {
            crc ^= u16::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x8408
                } else {
                    crc >> 1
                };
            }
        }
        crc ^ 0xFFFF
    }

    /// COBS by the book, independent of the `cobs` crate (frames here are < 254 bytes).
    fn cobs_by_hand(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for block in data.split(|b| *b == 0) {
            out.push(block.len() as u8 + 1);
            out.extend_from_slice(block);
        }
        out
    }

    /// Checks the exact bytes of `frame` against hand-written postcard bytes, and the round trip.
    fn check_bytes(frame: Frame, postcard_bytes: &[u8]) {
        let mut body = postcard_bytes.to_vec();
        body.extend_from_slice(&crc_x25(postcard_bytes).to_le_bytes());
        let mut want = cobs_by_hand(&body);
        want.push(0);
        let got = frame.to_buf().unwrap();
        assert_eq!(got.as_slice(), want.as_slice(), "{frame:?}");
        let mut dec: Decoder = Decoder::new();
        let events: Vec<_> = dec.feed(&got).collect();
        assert_eq!(
            events,
            [DecodeEvent::Frame {
                frame,
                span: Span {
                    start: 0,
                    end: want.len() as u64
                }
            }]
        );
    }

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        assert_eq!(crc_x25(b"123456789"), 0x906E);
        assert_eq!(CRC.checksum(b"123456789"), 0x906E);
    }

    #[test]
    fn exact_bytes_of_every_frame_kind() {
        // Reading: variant 1, seq 300 = [0xAC, 0x02], offset -1 zigzag = 1, delta -2.5 °C =
        // -640 zigzag 1 279 = [0xFF, 0x09].
        check_bytes(
            Frame::Reading(WireReading {
                seq: 300,
                offset_ms: -1,
                celsius_delta: -640,
            }),
            &[0x01, 0xAC, 0x02, 0x01, 0xFF, 0x09],
        );
        // Header, version 1: variant 0, version 1, sensor 7, session 2, period 1000 =
        // [0xE8, 0x07], clock Boot = 0, epoch 0, reference 52.5 °C = 13 440 zigzag 26 880 =
        // [0x80, 0xD2, 0x01].
        check_bytes(
            Frame::Header(Header {
                version: 1,
                ..Header::new(7, 2, 1000, ClockKind::Boot, 0)
            }),
            &[
                0x00, 0x01, 0x07, 0x02, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01,
            ],
        );
        // Header, version 2: the same fields with version 2, then base seq 300 = [0xAC, 0x02]
        // and reset reason Watchdog = 2.
        check_bytes(
            Frame::Header(
                Header::new(7, 2, 1000, ClockKind::Boot, 0)
                    .with_base(300)
                    .with_reset(ResetReason::Watchdog),
            ),
            &[
                0x00, 0x02, 0x07, 0x02, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01, 0xAC, 0x02, 0x02,
            ],
        );
        // Ack: variant 4, session 3, seq 200 = [0xC8, 0x01].
        check_bytes(
            Frame::Ack(Ack {
                session: 3,
                seq: 200,
            }),
            &[0x04, 0x03, 0xC8, 0x01],
        );
        // Resend: variant 5, session 3, from 10, to 12.
        check_bytes(
            Frame::Resend(Resend {
                session: 3,
                from: 10,
                to: 12,
            }),
            &[0x05, 0x03, 0x0A, 0x0C],
        );
        // Heartbeat: variant 6, session 3, seq 5.
        check_bytes(
            Frame::Heartbeat(Heartbeat { session: 3, seq: 5 }),
            &[0x06, 0x03, 0x05],
        );
        // Stats: variant 2, session 2, counters 10/8/1/1/0/0, doubtful 3, bad 0, faults 1,
        // dropped 0, frames 12.
        let counters = Counters {
            input: 10,
            emitted: 8,
            late: 1,
            duplicate: 1,
            rejected: 0,
            evicted: 0,
        };
        check_bytes(
            Frame::Stats(Stats {
                session: 2,
                counters,
                doubtful: 3,
                bad: 0,
                sensor_faults: 1,
                ring_dropped: 0,
                frames_sent: 12,
                log_dropped: 0,
            }),
            &[0x02, 0x02, 10, 8, 1, 1, 0, 0, 3, 0, 1, 0, 12],
        );
        // Fault: variant 3, seq 9, kind Timeout = 2.
        check_bytes(
            Frame::Fault(Fault {
                seq: 9,
                kind: FaultKind::Timeout,
            }),
            &[0x03, 0x09, 0x02],
        );
    }

    #[test]
    fn a_log_drop_count_follows_the_stats_fields_only_when_it_is_not_0() {
        let s = Stats {
            session: 2,
            frames_sent: 12,
            ..Stats::default()
        };
        // Absent at 0: the bytes every stats frame had before the field existed.
        check_bytes(
            Frame::Stats(s),
            &[0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12],
        );
        // 300 frames dropped: one more varint, [0xAC, 0x02].
        check_bytes(
            Frame::Stats(Stats {
                log_dropped: 300,
                ..s
            }),
            &[0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0xAC, 0x02],
        );
        // An explicit 0 would be a second encoding of the same stats: refused, like any
        // other byte left over.
        for tail in [&[0x00][..], &[0x01, 0x01], &[0x80]] {
            let mut body = vec![0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12];
            body.extend_from_slice(tail);
            body.extend_from_slice(&crc_x25(&body).to_le_bytes());
            let mut wire = cobs_by_hand(&body);
            wire.push(0);
            assert_eq!(
                decoded_frames(&wire),
                [Err(SkipReason::Undecodable)],
                "tail {tail:?}"
            );
        }
    }

    #[test]
    fn a_reading_within_32_degrees_of_the_reference_is_at_most_12_bytes() {
        for (seq, size) in [
            (5u32, 9usize),
            (127, 9),
            (128, 10),
            (16_383, 10),
            (2_097_151, 11),
            (268_435_455, 12),
        ] {
            let f = Frame::Reading(WireReading {
                seq,
                offset_ms: 0,
                celsius_delta: Celsius::from_num(2.5).to_bits(),
            });
            assert_eq!(f.to_buf().unwrap().len(), size, "seq {seq}");
        }
    }

    #[test]
    fn a_version_2_reading_is_9_bytes_at_any_seq() {
        for seq in [0u32, 127, 128, 16_383, 2_097_151, 268_435_455, u32::MAX] {
            let mut enc = Encoder::new();
            let h = Header::new(1, 1, 1000, ClockKind::Boot, 0).with_base(seq);
            enc.to_buf(&Frame::Header(h)).unwrap();
            let w = WireReading {
                seq,
                offset_ms: 0,
                celsius_delta: Celsius::from_num(2.5).to_bits(),
            };
            assert_eq!(
                enc.to_buf(&Frame::Reading(w)).unwrap().len(),
                9,
                "seq {seq}"
            );
            assert_eq!(
                enc.to_buf(&Frame::Replayed(w)).unwrap().len(),
                9,
                "seq {seq}"
            );
        }
    }

    /// Encodes `frames` with one [`Encoder`]; returns the bytes of each frame.
    fn encoded(frames: &[Frame]) -> Vec<Vec<u8>> {
        let mut enc = Encoder::new();
        frames
            .iter()
            .map(|f| enc.to_buf(f).unwrap().to_vec())
            .collect()
    }

    fn decoded_frames(bytes: &[u8]) -> Vec<Result<Frame, SkipReason>> {
        events(bytes)
            .into_iter()
            .map(|e| match e {
                DecodeEvent::Frame { frame, .. } => Ok(frame),
                DecodeEvent::Skipped { reason, .. } => Err(reason),
            })
            .collect()
    }

    fn reading(seq: u32) -> WireReading {
        WireReading {
            seq,
            offset_ms: 0,
            celsius_delta: seq as i32,
        }
    }

    #[test]
    fn version_1_and_version_2_frames_mix_in_one_stream() {
        // A version-1 capture as version 1 wrote it: header, then readings with their whole
        // seq (300 = [0xAC, 0x02]); hand-written bytes.
        let v1 = Header {
            version: 1,
            ..Header::new(7, 2, 1000, ClockKind::Boot, 0)
        };
        let mut log = Vec::new();
        for body in [
            &[
                0x00, 0x01, 0x07, 0x02, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01,
            ][..],
            &[0x01, 0xAC, 0x02, 0x00, 0x00][..],
        ] {
            let mut full = body.to_vec();
            full.extend_from_slice(&crc_x25(body).to_le_bytes());
            log.extend(cobs_by_hand(&full));
            log.push(0);
        }
        let v2 = Header::new(7, 3, 1000, ClockKind::Boot, 0).with_base(5);
        let w300 = WireReading {
            seq: 300,
            offset_ms: 0,
            celsius_delta: 0,
        };
        for f in encoded(&[
            Frame::Header(v2),
            Frame::Reading(reading(5)),
            Frame::Replayed(reading(6)),
            Frame::Header(v1),
            Frame::Reading(w300),
        ]) {
            log.extend(f);
        }
        // A version-2 reading cannot follow a version-1 header.
        log.extend(encoded(&[Frame::Header(v2), Frame::Reading(reading(5))])[1].clone());
        assert_eq!(
            decoded_frames(&log),
            [
                Ok(Frame::Header(v1)),
                Ok(Frame::Reading(w300)),
                Ok(Frame::Header(v2)),
                Ok(Frame::Reading(reading(5))),
                Ok(Frame::Replayed(reading(6))),
                Ok(Frame::Header(v1)),
                Ok(Frame::Reading(w300)),
                Err(SkipReason::NoHeader),
            ]
        );
    }

    #[test]
    fn a_reading_is_never_placed_under_a_lost_header() {
        let s1 = Header::new(7, 1, 1000, ClockKind::Boot, 0);
        let s2 = Header::new(7, 2, 1000, ClockKind::Boot, 0).with_base(10);
        let f = encoded(&[
            Frame::Header(s1),
            Frame::Reading(reading(0)),
            Frame::Header(s2),
            Frame::Reading(reading(10)),
            Frame::Reading(reading(11)),
        ]);
        // The header of session 2 is lost: its readings do not become readings of session 1.
        let log: Vec<u8> = [&f[0][..], &f[1], &f[3], &f[4]].concat();
        assert_eq!(
            decoded_frames(&log),
            [
                Ok(Frame::Header(s1)),
                Ok(Frame::Reading(reading(0))),
                Err(SkipReason::BadCrc),
                Err(SkipReason::BadCrc),
            ]
        );
    }

    #[test]
    fn a_lost_repeated_header_loses_nothing() {
        let h = Header::new(7, 1, 1000, ClockKind::Boot, 0);
        let mut frames = vec![Frame::Header(h)];
        frames.extend((0..60).map(|s| Frame::Reading(reading(s))));
        frames.push(Frame::Header(h.with_base(60)));
        frames.extend((60..120).map(|s| Frame::Reading(reading(s))));
        let f = encoded(&frames);
        // Every other reading and the repeated header are lost.
        let log: Vec<u8> = frames
            .iter()
            .zip(&f)
            .filter(|(frame, _)| match frame {
                Frame::Header(h) => h.base_seq == 0,
                Frame::Reading(w) => w.seq % 2 == 0,
                _ => true,
            })
            .flat_map(|(_, b)| b.clone())
            .collect();
        let seqs: Vec<u32> = decoded_frames(&log)
            .into_iter()
            .filter_map(|f| match f.unwrap() {
                Frame::Reading(w) => Some(w.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (0..120).step_by(2).collect::<Vec<_>>());
    }

    #[test]
    fn the_encoder_refuses_a_reading_no_decoder_could_place() {
        let mut enc = Encoder::new();
        let w = reading(64);
        assert_eq!(
            enc.to_buf(&Frame::Replayed(w)),
            Err(EncodeError::NeedsHeader)
        );
        // Without a version-2 header, a reading is written whole (version 1).
        assert_eq!(enc.to_buf(&Frame::Reading(w)), Frame::Reading(w).to_buf());
        enc.to_buf(&Frame::Header(Header::new(1, 1, 1000, ClockKind::Boot, 0)))
            .unwrap();
        assert_eq!(
            enc.to_buf(&Frame::Reading(w)),
            Err(EncodeError::NeedsHeader)
        );
        assert!(enc.to_buf(&Frame::Reading(reading(63))).is_ok());
        assert!(enc.to_buf(&Frame::Reading(reading(0))).is_ok(), "64 behind");
        let v1 = Header {
            base_seq: 3,
            version: 1,
            ..Header::new(1, 1, 1000, ClockKind::Boot, 0)
        };
        assert_eq!(Frame::Header(v1).to_buf(), Err(EncodeError::UnknownVersion));
    }

    proptest! {
        /// Whatever the seqs (in order, late, jumping, wrapping) and whichever frames are
        /// lost, every reading decoded is one that was encoded, with its whole seq; and
        /// without losses every one is decoded.
        #[test]
        fn version_2_readings_are_placed_exactly_or_not_at_all(
            steps in proptest::collection::vec((-70i64..200, any::<bool>()), 1..300),
            start in prop_oneof![0u32..10, u32::MAX - 300..=u32::MAX],
        ) {
            let h = Header::new(3, 4, 1000, ClockKind::Boot, 0).with_base(start);
            let mut enc = Encoder::new();
            let mut all = Vec::new();
            let mut sent = std::collections::BTreeSet::new();
            let mut seq = start;
            all.push((Frame::Header(h), enc.to_buf(&Frame::Header(h)).unwrap()));
            for (step, replayed) in steps {
                seq = seq.wrapping_add(if step > 100 { 1 } else { step as u32 });
                if !enc.places(seq) {
                    let f = Frame::Header(h.with_base(seq));
                    all.push((f, enc.to_buf(&f).unwrap()));
                }
                let w = reading(seq);
                let f = if replayed { Frame::Replayed(w) } else { Frame::Reading(w) };
                all.push((f, enc.to_buf(&f).unwrap()));
                sent.insert(seq);
            }
            let whole: Vec<u8> = all.iter().flat_map(|(_, b)| b.to_vec()).collect();
            let want: Vec<Frame> = all.iter().map(|(f, _)| *f).collect();
            let got: Vec<Frame> = decoded_frames(&whole).into_iter().map(|f| f.unwrap()).collect();
            prop_assert_eq!(got, want);
            // Lose about a third of the frames, headers included.
            let lossy: Vec<u8> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| (i * 7919) % 3 != 0 || *i == 0)
                .flat_map(|(_, (_, b))| b.to_vec())
                .collect();
            for f in decoded_frames(&lossy).into_iter().flatten() {
                if let Frame::Reading(w) | Frame::Replayed(w) = f {
                    prop_assert!(sent.contains(&w.seq), "seq {} was never sent", w.seq);
                    prop_assert_eq!(w, reading(w.seq));
                }
            }
        }
    }

    #[test]
    fn largest_frames_fit() {
        let c = Counters {
            input: u32::MAX,
            emitted: u32::MAX,
            late: u32::MAX,
            duplicate: u32::MAX,
            rejected: u32::MAX,
            evicted: u32::MAX,
        };
        let s = Stats {
            session: u32::MAX,
            counters: c,
            doubtful: u32::MAX,
            bad: u32::MAX,
            sensor_faults: u32::MAX,
            ring_dropped: u32::MAX,
            frames_sent: u32::MAX,
            log_dropped: u32::MAX,
        };
        assert!(Frame::Stats(s).to_buf().is_ok());
        let h = Header::new(u32::MAX, u32::MAX, u32::MAX, ClockKind::Unix, u64::MAX)
            .with_reference(Celsius::from_bits(i32::MIN))
            .with_base(u32::MAX)
            .with_reset(ResetReason::Software);
        assert!(Frame::Header(h).to_buf().is_ok());
        let r = Frame::Resend(Resend {
            session: u32::MAX,
            from: u32::MAX,
            to: u32::MAX,
        });
        assert!(r.to_buf().is_ok());
    }

    proptest! {
        /// The in-place encoder writes exactly the bytes of postcard + CRC + COBS by the
        /// book, for every kind of frame, whatever the slot held before.
        #[test]
        fn encode_into_matches_the_reference(frame in arb_frame(), junk in any::<u8>()) {
            let want = reference_bytes(&frame);
            let mut slot = [junk; MAX_FRAME];
            let m = frame.encode_into(&mut slot).unwrap();
            prop_assert_eq!(&slot[..m], want.as_slice());
            let mut out = [junk; MAX_FRAME];
            let n = encode(&frame, &mut out).unwrap();
            prop_assert_eq!(&out[..n], want.as_slice());
        }

        /// The wire form a node computes without the checks is the checked one, whenever
        /// the checked one exists.
        #[test]
        fn unchecked_wire_form_matches_the_checked_one(
            epoch in prop_oneof![any::<u64>(), u64::MAX - 5_000..=u64::MAX, 0u64..5_000],
            seq in any::<u32>(),
            period in 1u32..=u32::MAX,
            jitter in any::<i64>(),
            bits in any::<i32>(),
        ) {
            let h = Header::new(1, 1, period, ClockKind::Unix, epoch);
            let scheduled = i128::from(epoch) + i128::from(seq) * i128::from(period);
            let ts = (scheduled + i128::from(jitter % (1 << 33))).clamp(0, i128::from(u64::MAX)) as u64;
            let r = Reading::new(1, 1, seq, ts, Celsius::from_bits(bits));
            let exact = i32::try_from(i128::from(ts) - scheduled).map_err(|_| WireError::OffsetOutOfRange);
            prop_assert_eq!(h.to_wire(&r).map(|w| w.offset_ms), exact);
            if let Ok(w) = h.to_wire(&r) {
                prop_assert_eq!(h.wire_checked_before(&r), w);
            }
        }
    }

    #[test]
    fn offsets_at_the_edges_of_i32() {
        let h = Header::new(1, 1, 1000, ClockKind::Boot, 1 << 40);
        for (delta, ok) in [
            (i64::from(i32::MAX), true),
            (i64::from(i32::MAX) + 1, false),
            (i64::from(i32::MIN), true),
            (i64::from(i32::MIN) - 1, false),
        ] {
            let ts = ((1i64 << 40) + 5_000 + delta) as u64;
            let got = h.offset_ms(5, ts);
            assert_eq!(got.is_ok(), ok, "{delta}");
            if ok {
                assert_eq!(i64::from(got.unwrap()), delta);
            }
        }
    }

    fn events(bytes: &[u8]) -> Vec<DecodeEvent> {
        let mut dec: Decoder = Decoder::new();
        let mut out: Vec<_> = dec.feed(bytes).collect();
        out.extend(dec.finish());
        out
    }

    #[test]
    fn every_kind_of_damage_is_reported_with_its_span() {
        let good = Frame::Reading(WireReading {
            seq: 5,
            offset_ms: 0,
            celsius_delta: 160,
        })
        .to_buf()
        .unwrap();
        let mut flipped = good.clone();
        flipped[5] ^= 0x10;
        let v2 = {
            // Hand-built, version 3: the encoder writes only versions it knows.
            let body = [
                0x00, 0x03, 0x01, 0x01, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01, 0, 0,
            ];
            let mut full = body.to_vec();
            full.extend_from_slice(&crc_x25(&body).to_le_bytes());
            let mut b = cobs_by_hand(&full);
            b.push(0);
            b
        };
        let mut log = Vec::new();
        log.extend_from_slice(&flipped); // 0..9 bad crc
        log.push(0); // 9..10 empty
        log.extend_from_slice(&v2); // unknown version
        let v2_end = log.len() as u64;
        log.extend_from_slice(&[0x55; MAX_FRAME + 20]); // oversized garbage
        log.push(0);
        let garbage_end = log.len() as u64;
        log.extend_from_slice(&good);
        let good_end = log.len() as u64;
        log.extend_from_slice(&good[..4]); // torn
        let ev = events(&log);
        let want = [
            DecodeEvent::Skipped {
                span: Span { start: 0, end: 9 },
                reason: SkipReason::BadCrc,
            },
            DecodeEvent::Skipped {
                span: Span { start: 9, end: 10 },
                reason: SkipReason::Empty,
            },
            DecodeEvent::Skipped {
                span: Span {
                    start: 10,
                    end: v2_end,
                },
                reason: SkipReason::UnknownVersion,
            },
            DecodeEvent::Skipped {
                span: Span {
                    start: v2_end,
                    end: garbage_end,
                },
                reason: SkipReason::Oversized,
            },
            DecodeEvent::Frame {
                frame: Frame::Reading(WireReading {
                    seq: 5,
                    offset_ms: 0,
                    celsius_delta: 160,
                }),
                span: Span {
                    start: garbage_end,
                    end: good_end,
                },
            },
            DecodeEvent::Skipped {
                span: Span {
                    start: good_end,
                    end: good_end + 4,
                },
                reason: SkipReason::Truncated,
            },
        ];
        assert_eq!(ev, want);
    }

    #[test]
    fn crc_valid_but_meaningless_bytes_are_undecodable() {
        for body in [
            &[0x09u8][..],
            &[0x01, 0x05][..],
            &[0x01, 0x05, 0x00, 0x00, 0x00][..],
        ] {
            let mut full = body.to_vec();
            full.extend_from_slice(&crc_x25(body).to_le_bytes());
            let mut b = cobs_by_hand(&full);
            b.push(0);
            assert!(
                matches!(
                    events(&b)[..],
                    [DecodeEvent::Skipped {
                        reason: SkipReason::Undecodable,
                        ..
                    }]
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn wire_errors() {
        let h = Header::new(1, 1, 1000, ClockKind::Boot, 0);
        let r = Reading::new(1, 1, 0, u64::MAX, Celsius::ZERO);
        assert_eq!(h.to_wire(&r), Err(WireError::OffsetOutOfRange));
        assert_eq!(
            h.to_wire(&Reading { session: 2, ..r }),
            Err(WireError::WrongSession)
        );
        let early = WireReading {
            seq: 0,
            offset_ms: -1,
            celsius_delta: 0,
        };
        assert_eq!(h.from_wire(&early), Err(WireError::TimestampOutOfRange));
        // Past u64::MAX before the offset, back inside after it.
        let top = Header::new(1, 1, 20, ClockKind::Unix, u64::MAX - 10);
        let back = WireReading {
            seq: 1,
            offset_ms: -15,
            celsius_delta: 0,
        };
        assert_eq!(top.from_wire(&back).map(|r| r.timestamp), Ok(u64::MAX - 5));
    }

    proptest! {
        /// The timestamp of a wire reading is exactly `epoch + seq × period + offset`
        /// whenever that is a u64, and an error otherwise, at the ends of the range too.
        #[test]
        fn from_wire_is_exact_over_the_whole_range(
            epoch in prop_oneof![any::<u64>(), u64::MAX - 5_000..=u64::MAX, 0u64..5_000],
            seq in any::<u32>(),
            period in 1u32..=u32::MAX,
            offset_ms in any::<i32>(),
        ) {
            let h = Header::new(1, 1, period, ClockKind::Unix, epoch);
            let w = WireReading { seq, offset_ms, celsius_delta: 0 };
            let exact = i128::from(epoch) + i128::from(seq) * i128::from(period) + i128::from(offset_ms);
            let want = u64::try_from(exact).map_err(|_| WireError::TimestampOutOfRange);
            prop_assert_eq!(h.from_wire(&w).map(|r| r.timestamp), want);
        }
    }

    /// A frame's bytes from postcard's own serialisation of its tag and fields, the bitwise
    /// CRC and COBS by the book: independent of the encoder's hand-written varints.
    fn reference_bytes(frame: &Frame) -> Vec<u8> {
        let mut raw = [0u8; 128];
        let body = match frame {
            Frame::Header(h) if h.version == 1 => {
                postcard::to_slice(&(0u8, HeaderId::of(h)), &mut raw)
            }
            Frame::Header(h) => postcard::to_slice(&(0u8, *h), &mut raw),
            Frame::Reading(w) => postcard::to_slice(&(1u8, *w), &mut raw),
            Frame::Stats(x) => postcard::to_slice(&(2u8, *x), &mut raw),
            Frame::Fault(x) => postcard::to_slice(&(3u8, *x), &mut raw),
            Frame::Ack(x) => postcard::to_slice(&(4u8, *x), &mut raw),
            Frame::Resend(x) => postcard::to_slice(&(5u8, *x), &mut raw),
            Frame::Heartbeat(x) => postcard::to_slice(&(6u8, *x), &mut raw),
            Frame::Replayed(_) => unreachable!("needs a header"),
        }
        .unwrap()
        .to_vec();
        let mut body = body;
        if let Frame::Stats(x) = frame {
            // The log's drop count travels only when it is not 0: drop its one-byte varint.
            if x.log_dropped == 0 {
                assert_eq!(body.pop(), Some(0));
            }
        }
        let mut full = body.clone();
        full.extend_from_slice(&crc_x25(&body).to_le_bytes());
        let mut out = cobs_by_hand(&full);
        out.push(0);
        out
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<u64>(),
                any::<u32>(),
                0u8..4
            )
                .prop_map(|(s, x, p, e, b, why)| {
                    let reset = [
                        ResetReason::Unknown,
                        ResetReason::PowerOn,
                        ResetReason::Watchdog,
                        ResetReason::Software,
                    ][usize::from(why)];
                    Frame::Header(
                        Header::new(s, x, p, ClockKind::Boot, e)
                            .with_base(b)
                            .with_reset(reset),
                    )
                }),
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(s, x, p)| Frame::Header(
                Header {
                    version: 1,
                    ..Header::new(s, x, p, ClockKind::Unix, 1 << 40)
                }
            )),
            (any::<u32>(), any::<u32>())
                .prop_map(|(session, seq)| Frame::Ack(Ack { session, seq })),
            (any::<u32>(), any::<u32>(), any::<u32>())
                .prop_map(|(session, from, to)| Frame::Resend(Resend { session, from, to })),
            (any::<u32>(), any::<u32>())
                .prop_map(|(session, seq)| Frame::Heartbeat(Heartbeat { session, seq })),
            (any::<u32>(), any::<i32>(), any::<i32>()).prop_map(
                |(seq, offset_ms, celsius_delta)| Frame::Reading(WireReading {
                    seq,
                    offset_ms,
                    celsius_delta
                })
            ),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>())
                .prop_map(|(s, x, p, e)| Frame::Header(Header::new(s, x, p, ClockKind::Unix, e))),
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(session, input, log_dropped)| {
                Frame::Stats(Stats {
                    session,
                    counters: Counters {
                        input,
                        ..Counters::default()
                    },
                    log_dropped: if log_dropped % 3 == 0 { 0 } else { log_dropped },
                    ..Stats::default()
                })
            }),
            any::<u32>().prop_map(|seq| Frame::Fault(Fault {
                seq,
                kind: FaultKind::Bus
            })),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000), split in 0usize..2000) {
            let mut dec: Decoder = Decoder::new();
            let split = split.min(bytes.len());
            let mut covered = 0u64;
            let mut all: Vec<DecodeEvent> = dec.feed(&bytes[..split]).collect();
            all.extend(dec.feed(&bytes[split..]).collect::<Vec<_>>());
            all.extend(dec.finish());
            // Every byte is accounted for exactly once, in order.
            for e in &all {
                let span = match e { DecodeEvent::Frame { span, .. } | DecodeEvent::Skipped { span, .. } => *span };
                prop_assert_eq!(span.start, covered);
                covered = span.end;
            }
            prop_assert_eq!(covered, bytes.len() as u64);
        }

        /// Every intact frame is recovered, whatever garbage lies between frames.
        #[test]
        fn recovers_every_intact_frame(
            frames in proptest::collection::vec((arb_frame(), proptest::collection::vec(any::<u8>(), 0..40)), 0..40),
        ) {
            let mut log = Vec::new();
            let mut want = Vec::new();
            for (f, garbage) in &frames {
                log.extend_from_slice(garbage);
                // Any garbage ends at a delimiter before the next frame starts: a damaged frame
                // can hide the delimiter of the frame before it, never the frame itself.
                log.push(0);
                log.extend_from_slice(&f.to_buf().unwrap());
                want.push(*f);
            }
            let got: Vec<Frame> = events(&log).into_iter().filter_map(|e| match e {
                DecodeEvent::Frame { frame, .. } => Some(frame),
                DecodeEvent::Skipped { .. } => None,
            }).collect();
            // Garbage may, very rarely, itself be a valid frame: the intact frames must appear
            // in order as a subsequence.
            let mut it = got.iter();
            for f in &want {
                prop_assert!(it.any(|g| g == f), "lost {:?}", f);
            }
        }
    }
}
