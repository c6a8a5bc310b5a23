//! Encoding frames: postcard fields, the CRC, COBS in place, and the `0x00` terminator.

use core::fmt;

use super::types::{tag, Frame, FrameBuf, Header, ResetReason, WireReading, CRC, MAX_FRAME};

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
pub(super) struct Place {
    /// The CRC of the latest version-2 header's identity (its version-1 fields).
    pub(super) seal: u16,
    /// The seq expected next: the header's base seq, or one past the last reading placed.
    pub(super) next: u32,
}

impl Place {
    /// The seq with the low 7 bits `low` nearest to `next` (64 below to 63 above).
    #[inline]
    pub(super) const fn seq(&self, low: u8) -> u32 {
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
    pub(super) fn check(&self, seq: u32, body: &[u8]) -> u16 {
        let high = seq >> 7;
        CRC.checksum(body) ^ self.seal ^ (high ^ high >> 16) as u16
    }
}

/// A stateful encoder: writes version-2 reading frames, placed by the header before them.
///
/// A version-2 reading frame carries only the low 7 bits of its seq; its check covers the whole
/// seq and is sealed with the header's identity (see [`Frame`] and the module docs). The
/// encoder remembers the latest header's seal and the seq a decoder expects next, exactly as
/// the [`Decoder`](super::Decoder) does on the other side.
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

/// Postcard's zigzag form of an `i32`: small magnitudes, either sign, give small varints.
///
/// # Examples
/// ```
/// use mend_core::zigzag;
/// assert_eq!([zigzag(0), zigzag(-1), zigzag(1), zigzag(-128)], [0, 1, 2, 255]);
/// assert_eq!(zigzag(i32::MIN), u32::MAX);
/// ```
#[inline]
pub const fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// Writes `v` as postcard writes a `u64` (LEB128: 7 bits a byte, low first) at `slot[at..]`
/// and returns the next position; bytes past the end of `slot` are dropped (the position
/// still counts them), so a caller that sized `slot` for its widest message checks
/// nothing per byte. The frames' `u32` fields use the same writer on 32 bits.
///
/// # Examples
/// ```
/// use mend_core::put_varint64;
/// let mut slot = [0u8; 4];
/// let at = put_varint64(&mut slot, 1, 300);
/// assert_eq!((at, slot), (3, [0, 0xac, 0x02, 0]));
/// assert_eq!(put_varint64(&mut slot, 3, u64::MAX), 13, "10 bytes, all but one dropped");
/// ```
#[inline]
pub fn put_varint64<const N: usize>(slot: &mut [u8; N], mut at: usize, mut v: u64) -> usize {
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
