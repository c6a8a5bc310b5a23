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
//! of its last [`MAX_FRAME`](mend_core::MAX_FRAME) bytes on, longest first; then up to each
//! place where its COBS code bytes lead (where a lost zero may have been) before the frame
//! found at its end; then, between those two, from each byte on up to where its code bytes
//! lead (a frame that lost the zeros on both sides, between two torn ones); all with what is
//! in force. The end goes first: a frame torn short can pass for whole when the first byte of
//! the next one stands in for the byte it lost, and the frame that is whole is the one to
//! keep. An input that ends without a delimiter after its last frame is looked into the same
//! way, and that frame, whole but for its delimiter, is kept.
//!
//! Only frames that say which session they belong to are taken: a header, and a version-2
//! reading, whose CRC is sealed to the header in force and to the seq it is placed at, so that
//! a reading of another session (whose header went down with the damage) never passes for one
//! of this session; and the reading must be near the seq expected: at most
//! [`RECOVERED_AHEAD`] seqs ahead of it (the link dropped the frames between) or
//! [`RECOVERED_BEHIND`] behind (the link delayed it, or sent it twice). A stats frame or a
//! version-1 reading found there could be any session's: it is not taken, and its bytes stay
//! damaged. Bytes that are no frame at all pass a CRC not once
//! in 65 536 tries.
//!
//! `mend replay` (the frame reader) and `mend publish` (the fleet's splitter) both look inside
//! damaged frames here, so that a fleet's export stays the replay of its captures.

use mend_core::{DecodeEvent, Decoder, Frame, SkipReason, Span, MAX_FRAME};

/// Whether a frame skipped for `reason`, ending as `ending` says, may hold whole frames: one
/// whose bytes did not decode (a header of an unknown version, or a reading without a
/// header, is whole), or the torn end of an input.
pub(crate) fn worth_a_look(reason: SkipReason, ending: Ending) -> bool {
    match ending {
        Ending::Delimiter => matches!(
            reason,
            SkipReason::BadCrc
                | SkipReason::BadCobs
                | SkipReason::Undecodable
                | SkipReason::Oversized
        ),
        Ending::Cut => reason == SkipReason::Truncated,
    }
}

/// A whole frame found inside a damaged one.
pub(crate) struct Found {
    /// The frame.
    pub frame: Frame,
    /// Its bytes: with the damaged frame's delimiter for the frame at its end, without one
    /// (it was lost) for any other.
    pub span: Span,
    /// The seq the decoder expected before it (see [`Decoder::next_seq`]).
    pub next: Option<u32>,
}

/// A part of a damaged frame.
pub(crate) enum Piece {
    /// A whole frame found in it.
    Frame(Found),
    /// Bytes that are still damaged.
    Damaged(Span),
}

/// What a damaged frame held.
pub(crate) struct Salvage {
    /// Its parts, in order: whole frames, and the damaged bytes around them.
    pub pieces: Vec<Piece>,
    /// The decoder to go on with after the damaged frame: what its frames put in force.
    pub dec: Decoder,
}

/// How a damaged frame ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// With a delimiter: the last byte given is it, and the frame from its first byte was
    /// decoded already (and failed).
    Delimiter,
    /// With the end of the input: no delimiter came after the last byte. A frame that lost
    /// only its delimiter is whole, and is tried first.
    Cut,
}

impl Ending {
    /// How many of a damaged frame's last bytes [`look_inside`] can use: a whole frame, with
    /// its delimiter when it has one.
    pub(crate) const fn last_bytes(self) -> usize {
        match self {
            Ending::Delimiter => MAX_FRAME + 1,
            Ending::Cut => MAX_FRAME,
        }
    }
}

/// Looks for whole frames inside the damaged frame `span`, of which `raw` are the last bytes
/// (at most [`Ending::last_bytes`]: the whole frame when it is that short), with what `dec`
/// has in force before it; `None` when there are none.
pub(crate) fn look_inside(
    dec: &Decoder,
    raw: &[u8],
    span: Span,
    reason: SkipReason,
    ending: Ending,
) -> Option<Salvage> {
    if !worth_a_look(reason, ending) || raw.is_empty() || raw.len() as u64 > span.len() {
        return None;
    }
    // Offsets of `raw` in the input.
    let first = span.end - raw.len() as u64;
    let whole_here = first == span.start;
    let found = match ending {
        Ending::Delimiter => search(dec, raw, first, whole_here, true)?,
        Ending::Cut => {
            // With the delimiter put back; a frame found at the end ends at the cut.
            let mut closed = Vec::with_capacity(raw.len() + 1);
            closed.extend_from_slice(raw);
            closed.push(0);
            search(dec, &closed, first, whole_here, false)?
        }
    };
    let mut pieces = Vec::with_capacity(2 * found.frames.len() + 1);
    let mut cursor = span.start;
    for (k, j, frame, next) in found.frames {
        let start = first + k as u64;
        let end = j.map_or(span.end, |j| first + j as u64);
        if start > cursor {
            pieces.push(Piece::Damaged(Span {
                start: cursor,
                end: start,
            }));
        }
        pieces.push(Piece::Frame(Found {
            frame,
            span: Span { start, end },
            next,
        }));
        cursor = end;
    }
    if cursor < span.end {
        pieces.push(Piece::Damaged(Span {
            start: cursor,
            end: span.end,
        }));
    }
    Some(Salvage {
        pieces,
        dec: found.after.restarted_at(span.end),
    })
}

/// The whole frames [`search`] found, in order, and the decoder after the last one.
struct Search {
    /// Each frame's first byte in `raw`, its end (`None`: the end of `raw`, delimiter
    /// included), the frame, and the seq expected before it.
    frames: Vec<(usize, Option<usize>, Frame, Option<u32>)>,
    after: Decoder,
}

/// The whole frames in `raw` (a damaged frame's last bytes, its delimiter last, the first of
/// them at `first` and, when `whole_here`, the frame's first byte), on a decoder like `dec`:
/// - the longest end that is a frame (`raw` itself too, unless `tried_whole`);
/// - then the shortest start, when `raw` is the whole frame, ending where its COBS code
///   bytes lead (where a lost zero may have been) before the frame at the end;
/// - then, between the two, from each byte on, the frames that end where their code bytes
///   lead: frames whose delimiters were both lost. These must agree with the frame at the
///   end (a reading's seq and session): when they do not, the end is kept, as found first;
///   when no frame at the end was found before them, one is looked for after them.
fn search(
    dec: &Decoder,
    raw: &[u8],
    first: u64,
    whole_here: bool,
    tried_whole: bool,
) -> Option<Search> {
    let body = raw.len() - 1;
    let mut tail = frame_at_end(dec, raw, first, usize::from(whole_here && tried_whole));
    let head = whole_here
        .then(|| frame_from(dec, raw, first, 0, tail.as_ref().map_or(body, |t| t.0)))
        .flatten();
    if let (Some((j, _, after)), None) = (&head, &tail) {
        // The frame after a header is checked against that header.
        tail = frame_at_end(after, raw, first, *j);
    }
    // Between the two, on the decoder after the start.
    let mut frames = Vec::new();
    let mut base = dec.clone();
    let mut from = 0;
    if let Some((j, frame, after)) = head {
        frames.push((0, Some(j), frame, dec.next_seq()));
        base = after;
        from = j;
    } else if whole_here {
        // Frames from the first byte on were tried above.
        from = 1;
    }
    let limit = tail.as_ref().map_or(body, |t| t.0);
    let mut middle = Vec::new();
    let mut mid_base = base.clone();
    let mut k = from;
    while k < limit {
        match frame_from(&mid_base, raw, first, k, limit) {
            Some((j, frame, after)) => {
                middle.push((k, Some(j), frame, mid_base.next_seq()));
                mid_base = after;
                k = j;
            }
            None => k += 1,
        }
    }
    // The frame at the end, on the decoder after the middle's frames: the one found before
    // them, if it still follows them (a reading is placed by the seq expected before it),
    // or else one looked for after them (a run of lost delimiters).
    let middle_end = middle.last().and_then(|m| m.1);
    let after_middle = middle_end.and_then(|j| match &tail {
        Some((k, ..)) => {
            let (frame, after) = trusted(&mid_base, first + *k as u64, raw.get(*k..)?, false)?;
            Some((*k, frame, after))
        }
        None => frame_at_end(&mid_base, raw, first, j),
    });
    if let Some((k, frame, after)) = after_middle {
        frames.append(&mut middle);
        frames.push((k, None, frame, mid_base.next_seq()));
        return Some(Search { frames, after });
    }
    if let Some((k, frame, after)) = tail {
        // The middle's frames do not lead to it: the end is kept, as found first.
        frames.push((k, None, frame, base.next_seq()));
        return Some(Search { frames, after });
    }
    frames.append(&mut middle);
    (!frames.is_empty()).then_some(Search {
        frames,
        after: mid_base,
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

/// How far behind the seq its decoder expects next a version-2 reading found inside a
/// damaged frame may be: a frame the link delayed past the ones after it, or sent again.
pub(crate) const RECOVERED_BEHIND: u32 = 8;

/// Whether a reading at `seq`, found inside a damaged frame where `next` was expected, is
/// near enough to it to be taken: at most [`RECOVERED_BEHIND`] behind or
/// [`RECOVERED_AHEAD`] ahead.
pub(crate) const fn near_expected(seq: u32, next: u32) -> bool {
    seq.wrapping_sub(next) <= RECOVERED_AHEAD || next.wrapping_sub(seq) <= RECOVERED_BEHIND
}

/// The frame `bytes` decode to (with a delimiter after them when `close`) on a decoder like
/// `base` started at `start`, if it is one to take from inside a damaged frame: a header, or
/// a version-2 reading near the seq `base` expects next ([`near_expected`]). Gives the frame
/// and the decoder after it.
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
        } if reading && next.is_some_and(|n| near_expected(w.seq, n)) => Some((frame, dec)),
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

/// The shortest part of `raw` (a damaged frame's last bytes, its delimiter last, the first
/// of them at `first`) from `k` on that ends where its COBS code bytes lead, at or before
/// `limit` and before the delimiter, and is a whole frame [`trusted`] takes on a decoder like
/// `base` with a lost delimiter put back after it: where it ends, the frame, and the decoder
/// after it (at its end).
fn frame_from(
    base: &Decoder,
    raw: &[u8],
    first: u64,
    k: usize,
    limit: usize,
) -> Option<(usize, Frame, Decoder)> {
    let body = raw.len().saturating_sub(1);
    let start = first + k as u64;
    let mut j = k;
    while let Some(&code) = raw.get(j) {
        j += usize::from(code);
        if code == 0 || j >= body || j > limit {
            return None;
        }
        if let Some((frame, after)) = trusted(base, start, raw.get(k..j)?, true) {
            return Some((j, frame, after.restarted_at(first + j as u64)));
        }
    }
    None
}
