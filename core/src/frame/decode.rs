//! Decoding a byte stream into frames, with every byte it could not use accounted for.

use core::fmt;

use super::encode::Place;
use serde::Deserialize;

use super::types::{tag, Frame, HeaderId, ResetReason, Stats, WireReading, CRC, MAX_FRAME};
use crate::counters::Counters;

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
/// It reads every version in [`VERSIONS`](super::VERSIONS): it places version-2 readings as the [`Encoder`](super::Encoder)
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

    /// A decoder at `offset` that places version-2 readings as this one would: for decoding,
    /// against the header in force, a frame found inside bytes this one skipped.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{ClockKind, DecodeEvent, Decoder, Encoder, Frame, Header, WireReading};
    /// let h = Header::new(7, 2, 1_000, ClockKind::Unix, 0);
    /// let mut enc = Encoder::new();
    /// let header = enc.to_buf(&Frame::Header(h)).unwrap().to_vec();
    /// let r = Frame::Reading(WireReading { seq: 0, offset_ms: 0, celsius_delta: 0 });
    /// let reading = enc.to_buf(&r).unwrap().to_vec();
    ///
    /// let mut dec: Decoder = Decoder::new();
    /// assert_eq!(dec.feed(&header).count(), 1);
    /// // A reading sealed to its header decodes only where that header is in force.
    /// let mut alone: Decoder = Decoder::at(100);
    /// assert!(matches!(alone.feed(&reading).next(), Some(DecodeEvent::Skipped { .. })));
    /// let mut trial = dec.restarted_at(100);
    /// assert!(matches!(trial.feed(&reading).next(), Some(DecodeEvent::Frame { frame, .. }) if frame == r));
    /// ```
    pub const fn restarted_at(&self, offset: u64) -> Self {
        Self {
            buf: heapless::Vec::new(),
            start: offset,
            pos: offset,
            oversized: false,
            place: self.place,
        }
    }

    /// The bytes of the frame being collected: what follows the last delimiter fed, for
    /// instance a frame cut in two where a log was split. `None` when they are already longer
    /// than any frame can be.
    pub fn unfinished(&self) -> Option<&[u8]> {
        (!self.oversized).then_some(self.buf.as_slice())
    }

    /// A decoder at `offset` of another stream that goes on where this one stopped: the
    /// frame being collected here is finished by that stream's first bytes, and version-2
    /// readings are placed as this decoder would. The joined frame's span starts at
    /// `offset`: its bytes before it belong to the stream that came first.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{ClockKind, DecodeEvent, Decoder, Encoder, Frame, Header};
    /// let h = Header::new(7, 2, 1_000, ClockKind::Unix, 0);
    /// let header = Encoder::new().to_buf(&Frame::Header(h)).unwrap().to_vec();
    /// // The log split in two inside its first frame.
    /// let (first, second) = header.split_at(4);
    /// let mut dec: Decoder = Decoder::new();
    /// assert_eq!(dec.feed(first).count(), 0);
    /// assert_eq!(dec.unfinished(), Some(first));
    /// let mut next = dec.continued_at(0);
    /// let events: Vec<DecodeEvent> = next.feed(second).collect();
    /// assert!(matches!(events[..], [DecodeEvent::Frame { frame: Frame::Header(got), span }]
    ///     if got == h && span.start == 0 && span.end == second.len() as u64));
    /// ```
    pub fn continued_at(&self, offset: u64) -> Self {
        Self {
            buf: self.buf.clone(),
            start: offset,
            pos: offset,
            oversized: self.oversized,
            place: self.place,
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
