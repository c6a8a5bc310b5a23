//! Whole frames inside a damaged one.
//!
//! A frame torn off at the end of one capture, and the next capture joined on without a
//! delimiter (or any bytes without a zero before a capture), make one damaged frame of the
//! torn bytes and the next capture's header. Lost, that header would take every reading after
//! it until the next one, since a version-2 reading is checked against its header. A link
//! that loses or corrupts the zero between two frames, or cuts a frame short and goes on with
//! the next, makes one damaged frame of two in the same way, and each reading lost there
//! would be filled with a made-up value although its bytes are all there.
//!
//! So a damaged frame is decoded as it would have been with a delimiter inside it: from each
//! of its last [`MAX_FRAME`](mend_core::MAX_FRAME) bytes on, longest first, and then up to each place where its COBS
//! code bytes lead (where a lost zero may have been) before the frame found at its end, both
//! with what is in force. The end goes first: a frame torn short can pass for whole when the
//! first byte of the next one stands in for the byte it lost, and the frame that is whole is
//! the one to keep.
//!
//! Only frames that say which session they belong to are taken: a header, and a version-2
//! reading, whose CRC is sealed to the header in force and to the seq it is placed at, so that
//! a reading of another session (whose header went down with the damage) never passes for one
//! of this session; and the reading must be at most [`RECOVERED_AHEAD`] seqs ahead of the one
//! expected. A stats frame or a version-1 reading found there could be any session's: it is
//! not taken, and its bytes stay damaged. Bytes that are no frame at all pass a CRC not once
//! in 65 536 tries.
//!
//! `mend replay` (the frame reader) and `mend publish` (the fleet's splitter) both look inside
//! damaged frames here, so that a fleet's export stays the replay of its captures.

use mend_core::{DecodeEvent, Decoder, Frame, SkipReason, Span};

/// Whether a damaged frame skipped for `reason` may hold whole frames: one whose bytes did
/// not decode (a header of an unknown version, or a reading without a header, is whole).
pub(crate) fn worth_a_look(reason: SkipReason) -> bool {
    matches!(
        reason,
        SkipReason::BadCrc | SkipReason::BadCobs | SkipReason::Undecodable | SkipReason::Oversized
    )
}

/// A whole frame found inside a damaged one.
pub(crate) struct Found {
    /// The frame.
    pub frame: Frame,
    /// Its bytes: for a frame at the start, without a delimiter (it was lost); for one at the
    /// end, with the damaged frame's delimiter.
    pub span: Span,
    /// The seq the decoder expected before it (see [`Decoder::next_seq`]).
    pub next: Option<u32>,
}

/// What a damaged frame held.
pub(crate) struct Salvage {
    /// A whole frame at its start.
    pub head: Option<Found>,
    /// The bytes that are still damaged, if any are.
    pub damaged: Option<Span>,
    /// A whole frame at its end.
    pub tail: Option<Found>,
    /// The decoder to go on with after the damaged frame: what its frames put in force.
    pub dec: Decoder,
}

/// Looks for whole frames inside the damaged frame `span`, of which `raw` are the last bytes
/// (its delimiter last; the whole frame when it is at most `MAX_FRAME + 1` bytes long), with
/// what `dec` has in force before it; `None` when there are none.
pub(crate) fn look_inside(
    dec: &Decoder,
    raw: &[u8],
    span: Span,
    reason: SkipReason,
) -> Option<Salvage> {
    if !worth_a_look(reason) || raw.is_empty() || raw.len() as u64 > span.len() {
        return None;
    }
    // Offsets of `raw` in the input.
    let first = span.end - raw.len() as u64;
    let body = raw.len() - 1;
    let whole_here = first == span.start;
    // Not the whole damaged frame from its first byte on, which was tried already.
    let mut tail = frame_at_end(dec, raw, first, usize::from(whole_here));
    let head = whole_here
        .then(|| frame_at_start(dec, raw, first, tail.as_ref().map_or(body, |t| t.0)))
        .flatten();
    let mut tail_next = dec.next_seq();
    if let (Some((j, _, after)), None) = (&head, &tail) {
        // The frame after a header is checked against that header.
        tail = frame_at_end(after, raw, first, *j);
    }
    if let Some((_, _, after)) = &head {
        tail_next = after.next_seq();
    }
    let from = head.as_ref().map_or(0, |h| h.0);
    let to = tail.as_ref().map_or(body + 1, |t| t.0);
    let after = match (&head, &tail) {
        (_, Some((_, _, after))) | (Some((_, _, after)), None) => after.restarted_at(span.end),
        (None, None) => return None,
    };
    let start = if from == 0 {
        span.start
    } else {
        first + from as u64
    };
    let end = if to > body {
        span.end
    } else {
        first + to as u64
    };
    Some(Salvage {
        head: head.map(|(j, frame, _)| Found {
            frame,
            span: Span {
                start: first,
                end: first + j as u64,
            },
            next: dec.next_seq(),
        }),
        damaged: (start < end).then_some(Span { start, end }),
        tail: tail.map(|(k, frame, _)| Found {
            frame,
            span: Span {
                start: first + k as u64,
                end: span.end,
            },
            next: tail_next,
        }),
        dec: after,
    })
}

/// The first byte of every header frame on the wire.
pub(crate) const HEADER_LEAD: u8 = 1;

/// The second byte of every version-2 reading frame on the wire (its tag, after the COBS
/// code byte): live, and sent again.
pub(crate) const READING_TAGS: [u8; 2] = [7, 8];

/// The longest version-2 reading frame on the wire, its delimiter not counted: tag, the
/// seq's low bits, two varints of at most five bytes, the CRC, and the COBS code byte.
pub(crate) const READING_MAX: usize = 15;

/// How far ahead of the seq its decoder expects next a version-2 reading found inside a
/// damaged frame may be: the frames the link dropped just before it. (Further, it is more
/// likely bytes that happen to pass as a reading than a reading: it is not taken.)
pub(crate) const RECOVERED_AHEAD: u32 = 7;

/// The frame `bytes` decode to (with a delimiter after them when `close`) on a decoder like
/// `base` started at `start`, if it is one to take from inside a damaged frame: a header, or
/// a version-2 reading at most [`RECOVERED_AHEAD`] seqs ahead of the one `base` expects
/// next. Gives the frame and the decoder after it.
fn trusted(base: &Decoder, start: u64, bytes: &[u8], close: bool) -> Option<(Frame, Decoder)> {
    // Only a code byte of 1 can begin a header (its tag is 0:
    // `a_header_frame_starts_with_the_code_byte_1`), and only a reading tag after the code
    // byte a reading, which is short (`a_reading_frame_has_its_tag_second`).
    let encoded = bytes.len().saturating_sub(usize::from(!close));
    let header = bytes.first() == Some(&HEADER_LEAD);
    let reading = encoded <= READING_MAX && bytes.get(1).is_some_and(|t| READING_TAGS.contains(t));
    if !header && !reading {
        return None;
    }
    let next = base.next_seq();
    let mut dec = base.restarted_at(start);
    let mut got = None;
    for &b in bytes {
        got = dec.push(b);
    }
    if close {
        got = dec.push(0);
    }
    // Tags 7 and 8 are version-2 readings: a version-1 one (tag 1) never gets here.
    match got? {
        DecodeEvent::Frame {
            frame: frame @ Frame::Header(_),
            ..
        } if header => Some((frame, dec)),
        DecodeEvent::Frame {
            frame: frame @ (Frame::Reading(w) | Frame::Replayed(w)),
            ..
        } if reading && next.is_some_and(|n| w.seq.wrapping_sub(n) <= RECOVERED_AHEAD) => {
            Some((frame, dec))
        }
        _ => None,
    }
}

/// The longest end of `raw` (a damaged frame's last bytes, its delimiter last, the first of
/// them at `first`), from `from` on, that is a whole frame [`trusted`] takes on a decoder
/// like `base`: where it starts, the frame, and the decoder after it.
fn frame_at_end(
    base: &Decoder,
    raw: &[u8],
    first: u64,
    from: usize,
) -> Option<(usize, Frame, Decoder)> {
    let body = raw.len().saturating_sub(1);
    (from..body).find_map(|k| {
        let (frame, after) = trusted(base, first + k as u64, raw.get(k..)?, false)?;
        Some((k, frame, after))
    })
}

/// The shortest start of `raw` (a whole damaged frame without its delimiter, at `first`)
/// that ends where its COBS code bytes lead, at or before `limit`, and is a whole frame
/// [`trusted`] takes on a decoder like `base` with the lost delimiter put back: where it
/// ends, the frame, and the decoder after it (at its end).
fn frame_at_start(
    base: &Decoder,
    raw: &[u8],
    first: u64,
    limit: usize,
) -> Option<(usize, Frame, Decoder)> {
    let body = raw.len().saturating_sub(1);
    let mut j = 0;
    while let Some(&code) = raw.get(j) {
        j += usize::from(code);
        if code == 0 || j >= body || j > limit {
            return None;
        }
        if let Some((frame, after)) = trusted(base, first, raw.get(..j)?, true) {
            return Some((j, frame, after.restarted_at(first + j as u64)));
        }
    }
    None
}
