//! Pieces of one log given as separate inputs: a log rotated mid-session, or split by size
//! (`split -b`), its pieces named on the command line (`mend replay capture.log.*`, in
//! whatever order the shell gives them).
//!
//! A piece that starts in the middle of a session has readings before its first header. Read
//! alone they cannot be placed; read after the piece before it (`cat`) they can, since that
//! piece's header is still in force. A piece cut inside a frame ends with the first bytes of
//! that frame, and the next piece starts with the rest: read alone, each is a damaged frame;
//! joined, they are the frame. So each piece that starts in the middle of a session or of a
//! frame is read in the context at the end of the piece it continues (the header in force,
//! the place of the next reading, the bytes of a frame cut short), found by trying the end
//! of every other input:
//! - a frame made whole across the cut (its CRC good) is the surest sign;
//! - a version-2 reading carries only the low bits of its seq and is sealed to its header's
//!   identity: it decodes only under a header of its own session, and the piece before it
//!   places it nearest (any context of the session further away places it too, at its
//!   distance);
//! - the best fits anywhere are settled first, and each piece is continued by one other
//!   (unless a piece was given twice); on a tie the input before it in the order given wins.
//!
//! None is taken when no context decodes one of the leading readings or finishes the cut
//! frame, and those are dead-lettered as before. A piece too short to hold a header takes
//! the context of the piece it continues through its frames to its own end; as that changes
//! what fits where, the choice is made again until it holds. A piece that holds no
//! delimiter at all (shorter than one frame) is the middle of a frame: it continues the piece
//! whose cut frame, with its bytes added, another piece finishes with a good CRC. A piece
//! never continues one whose context was carried through it (a piece that only finishes a
//! frame with its first byte, a delimiter, fits before and after the same frame).

use std::cmp::Reverse;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use mend_core::{DecodeEvent, Decoder, Frame, SkipReason, MAX_FRAME};

use super::frames::FrameContext;
use super::InputSource;

/// The bytes at the start of an input looked at for readings before its first header.
const HEAD: u64 = 64 * 1024;
/// The bytes at the end of an input looked at for the header in force there: the shorter
/// first, the longer when it holds no header.
const TAILS: [u64; 2] = [64 * 1024, 1024 * 1024];

/// The input another input continues, and the context at its end.
#[derive(Clone, Debug)]
pub struct Continuation {
    /// The index of the input continued.
    pub from: usize,
    /// How many readings at the start of the continuing input decode in it (of the first
    /// 64 KiB), a frame [`joined`](Self::joined) not counted.
    pub readings: usize,
    /// How many seqs the first of them lies from the place in force at the continued
    /// input's end (readings lost or reordered between the two).
    pub skipped: u64,
    /// What the continued input's frames put in force at its end.
    pub context: FrameContext,
    /// The continued input ends inside a frame (the log was split there, not between two
    /// frames), and this input's first bytes finish it.
    pub joined: bool,
}

/// For each input, whether the frame cut short at its end is finished by the first bytes of
/// an input that continues it (`continues`, from [`continuations`]): then its last bytes are
/// the start of a good frame, not a damaged one.
pub fn cut_continues(continues: &[Option<Continuation>]) -> Vec<bool> {
    let mut out = vec![false; continues.len()];
    for c in continues.iter().flatten().filter(|c| c.joined) {
        if let Some(x) = out.get_mut(c.from) {
            *x = true;
        }
    }
    out
}

/// For each input read from its start (`starts[i] == 0`) that begins with readings before its
/// first header, or with the rest of a frame cut in two, the input it continues, if any (see
/// the module docs).
pub fn continuations(sources: &[InputSource], starts: &[u64]) -> Vec<Option<Continuation>> {
    let mut out = vec![None; sources.len()];
    let heads: Vec<Option<Vec<u8>>> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let start = starts.get(i).copied().unwrap_or(0);
            let mut head = (start == 0).then(|| bytes(s, Part::Head(HEAD))).flatten()?;
            // Only the bytes before the first header are tried against the other inputs.
            head.truncate(orphans(&head)?);
            Some(head)
        })
        .collect();
    if heads.iter().all(Option::is_none) {
        return out;
    }
    let base: Vec<End> = sources.iter().map(end_context).collect();
    if sources.len() < 2 {
        return own_ends(sources, &heads, &base, out);
    }
    // A piece with no header of its own (shorter than the node's header interval) ends in
    // the context of the piece it continues, carried through its frames. Which piece that
    // is can change once the contexts of others are known, so the choice is made again
    // until it holds (a round for each link of a chain of such pieces).
    for _ in 0..=sources.len() {
        let ends = settle(&base, &out);
        let next = choose(&heads, &ends, &out);
        let key = |c: &Option<Continuation>| c.as_ref().map(|c| (c.from, c.joined));
        let same = next.iter().map(key).eq(out.iter().map(key));
        out = next;
        if same {
            break;
        }
    }
    own_ends(sources, &heads, &base, out)
}

/// For each input with readings before its first header that no other input continues, its
/// own end, when it is the piece before its start: pieces of a log joined into one file in
/// the wrong order (`cat log.1 log.0 > log`). Taken only on proof: the frame cut by its last
/// byte is finished by its first bytes (the CRC good across), or its leading readings, placed
/// in the context at its end, run right up to its first header (of the same session, whose
/// base seq is at most 64 past the last of them). A log that only lost its first header fails
/// both: placed from its end, its readings lie a whole log away from that header.
fn own_ends(
    sources: &[InputSource],
    heads: &[Option<Vec<u8>>],
    base: &[End],
    mut out: Vec<Option<Continuation>>,
) -> Vec<Option<Continuation>> {
    for (i, c) in out.iter_mut().enumerate() {
        let (None, Some(Some(head)), Some(End::Context(ctx))) = (&c, heads.get(i), base.get(i))
        else {
            continue;
        };
        if ctx.header().is_none() {
            continue;
        }
        let joined = ctx.joins(head);
        let bridged = !joined
            && sources
                .get(i)
                .and_then(|s| bytes(s, Part::Head(HEAD)))
                .is_some_and(|whole| ctx.leads_to_first_header(&whole));
        if joined || bridged {
            let (readings, skipped) = ctx.fits(head, joined);
            *c = Some(Continuation {
                from: i,
                readings,
                skipped,
                context: ctx.clone(),
                joined,
            });
        }
    }
    out
}

/// The ends of the inputs (`base`), with each headerless piece that continues another
/// (`out`) carried through to its own end, in the order of their chains: a piece waits for
/// the one it continues, unless that one continues none (the frame cut at its end is all it
/// offers).
fn settle(base: &[End], out: &[Option<Continuation>]) -> Vec<End> {
    let mut ends = base.to_vec();
    let mut done = vec![false; ends.len()];
    loop {
        let mut grew = false;
        for j in 0..ends.len() {
            let Some(c) = out.get(j).and_then(Option::as_ref) else {
                continue;
            };
            let is_final = |k: usize| match ends.get(k) {
                Some(End::Context(_)) => true,
                Some(End::Headerless(..)) => {
                    done.get(k).copied().unwrap_or(false) || out.get(k).is_some_and(Option::is_none)
                }
                _ => false,
            };
            if done.get(j).copied().unwrap_or(true) || !is_final(c.from) {
                continue;
            }
            let carried = match (ends.get(j), ends.get(c.from)) {
                (
                    Some(End::Headerless(all, _)),
                    Some(End::Context(ctx) | End::Headerless(_, Some(ctx))),
                ) => ctx.through(all, c.joined),
                _ => None,
            };
            done[j] = true;
            grew = true;
            if let Some(ctx) = carried {
                ends[j] = End::Context(ctx);
            }
        }
        if !grew {
            break;
        }
    }
    ends
}

/// For each input that begins with readings before its first header (`heads`), the input
/// whose end context fits it best (see the module docs). Each piece continues one other: the
/// best fits anywhere are settled first, and an input takes the best of those not yet
/// continued (where two pieces end in the same cut bytes, or in the same session, a weaker
/// sign alone could point at either), or, when all of its are, its best (a piece given
/// twice).
///
/// An end carried through `i` itself (by the choices of the round before, `chosen`) is not
/// one `i` can continue: a piece whose first byte is a delimiter finishes a frame cut at the
/// end of a piece it comes before as well as one it comes after, and the two would continue
/// each other. Nor is a choice made that closes such a loop.
fn choose(
    heads: &[Option<Vec<u8>>],
    ends: &[End],
    chosen: &[Option<Continuation>],
) -> Vec<Option<Continuation>> {
    // (score, preference, input, candidate): the input before it is preferred, so that a
    // tie goes to the order given.
    let mut pairs: Vec<(Score, usize, usize, Continuation)> = Vec::new();
    let inside = heads.iter().flatten().filter(|h| is_inside_one_frame(h));
    let few_inside = inside.count() <= MAX_INSIDE_PIECES;
    for (i, head) in heads.iter().enumerate() {
        let Some(head) = head else { continue };
        let before = i.checked_sub(1);
        let order = before
            .into_iter()
            .chain((0..heads.len()).filter(|j| Some(*j) != before));
        for (pref, j) in order
            .filter(|&j| j != i && !leads_back(chosen, j, i))
            .enumerate()
        {
            let (Some(End::Context(ctx)) | Some(End::Headerless(_, Some(ctx)))) = ends.get(j)
            else {
                continue;
            };
            if is_inside_one_frame(head) {
                if !few_inside {
                    continue;
                }
                // The middle of a frame: it continues the piece whose cut frame it makes one
                // that another piece finishes (its CRC good across both cuts).
                // When the piece before ends on a delimiter, this one starts a frame: it
                // needs that piece only for the header its frame is sealed to. A frame that
                // decodes without one (a header) is finished without it.
                let needs_before = !ctx.cut_frame().is_empty()
                    || FrameContext::at_end_of(head)
                        .is_none_or(|alone| finished_by(&alone, heads, &mut vec![i]).is_none());
                let finished = needs_before
                    .then(|| ctx.through(head, true))
                    .flatten()
                    .and_then(|g| finished_by(&g, heads, &mut vec![i, j]));
                if let Some(skipped) = finished {
                    let c = Continuation {
                        from: j,
                        readings: 0,
                        skipped,
                        context: ctx.clone(),
                        joined: true,
                    };
                    pairs.push((score(&c), pref, i, c));
                }
                continue;
            }
            let joined = ctx.joins(head);
            let (placed, skipped) = ctx.fits(head, joined);
            if !joined && (placed == 0 || ctx.header().is_none()) {
                continue;
            }
            let c = Continuation {
                from: j,
                readings: placed,
                skipped,
                context: ctx.clone(),
                joined,
            };
            pairs.push((score(&c), pref, i, c));
        }
    }
    pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut taken = vec![false; heads.len()];
    let mut out: Vec<Option<Continuation>> = vec![None; heads.len()];
    for (_, _, i, c) in &pairs {
        if out[*i].is_none() && !taken[c.from] && !leads_back(&out, c.from, *i) {
            taken[c.from] = true;
            out[*i] = Some(c.clone());
        }
    }
    for (_, _, i, c) in pairs {
        if out[i].is_none() && !leads_back(&out, c.from, i) {
            out[i] = Some(c);
        }
    }
    out
}

/// How many pieces that hold no delimiter are joined at most; more are left unjoined (a log
/// cut into pieces smaller than a frame, `split -b 4`, would take the search for ever).
const MAX_INSIDE_PIECES: usize = 16;
/// How many pieces with no delimiter one frame is looked for across, one after another.
const MAX_CHAIN: usize = 2;

/// A piece that holds no delimiter at all: shorter than one frame, it is the middle of the
/// frame cut where the log was split before it and after it.
fn is_inside_one_frame(head: &[u8]) -> bool {
    !head.is_empty() && head.len() <= MAX_FRAME && !head.contains(&0)
}

/// Whether the frame cut short at the end of `ctx` is finished by the start of one of the
/// other inputs (not in `used`), directly or through pieces that hold no delimiter (each
/// adding its bytes to the cut frame): the least distance from `ctx`'s place of a frame so
/// finished, `None` when none is.
fn finished_by(
    ctx: &FrameContext,
    heads: &[Option<Vec<u8>>],
    used: &mut Vec<usize>,
) -> Option<u64> {
    let mut best: Option<u64> = None;
    for (k, head) in heads.iter().enumerate() {
        let Some(head) = head.as_deref().filter(|_| !used.contains(&k)) else {
            continue;
        };
        let found = if is_inside_one_frame(head) {
            // Each such piece tries every other: a chain of a few is looked for, no longer.
            if used.len() > MAX_CHAIN {
                continue;
            }
            ctx.through(head, true).and_then(|longer| {
                used.push(k);
                let d = finished_by(&longer, heads, used);
                used.pop();
                d
            })
        } else {
            ctx.joined_distance(head)
        };
        best = match (best, found) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    best
}

/// Whether the chain of continuations from input `j` back (`j` continues one, which
/// continues another, …) passes through input `i`.
fn leads_back(chosen: &[Option<Continuation>], j: usize, i: usize) -> bool {
    let mut k = j;
    // A chain has at most as many links as there are inputs.
    for _ in 0..chosen.len() {
        match chosen.get(k).and_then(Option::as_ref) {
            Some(c) if c.from == i => return true,
            Some(c) => k = c.from,
            None => return false,
        }
    }
    false
}

/// How well a continuation fits: a frame cut in two and made whole again (its CRC good
/// across the cut) is the surest sign, then readings of the piece placed at all (a reading
/// is sealed to its session), then the fewest readings between the two pieces' places (any
/// context of the same session places a reading of it, at its distance), then the most
/// readings placed.
type Score = (bool, bool, Reverse<u64>, usize);

fn score(c: &Continuation) -> Score {
    (c.joined, c.readings > 0, Reverse(c.skipped), c.readings)
}

/// Where the first header of `head` starts (or its end), when a reading comes before it
/// (one that cannot be placed alone) or the first bytes are not a whole frame (the rest of
/// one cut in two where the log was split); `None` otherwise.
fn orphans(head: &[u8]) -> Option<usize> {
    if is_inside_one_frame(head) {
        return Some(head.len());
    }
    let mut dec: Decoder = Decoder::new();
    let mut orphan = false;
    for ev in dec.feed(head) {
        match ev {
            DecodeEvent::Skipped { span, reason }
                if span.start == 0 && (reason.is_bad_frame() || reason == SkipReason::Empty) =>
            {
                orphan = true;
            }
            DecodeEvent::Frame {
                frame: Frame::Header(_),
                span,
            } => return orphan.then_some(usize::try_from(span.start).unwrap_or(usize::MAX)),
            DecodeEvent::Skipped {
                reason: SkipReason::NoHeader,
                ..
            } => orphan = true,
            _ => {}
        }
    }
    orphan.then_some(head.len())
}

/// What the end of an input puts in force.
#[derive(Clone)]
enum End {
    /// The context of its last version-2 header and the readings after it, or, with no
    /// header in force, of the frame cut short by its last byte alone.
    Context(FrameContext),
    /// It has no header at all: its bytes, whole, to carry the context of the input it
    /// continues through; until then, the context of the frame cut short by its last byte.
    Headerless(Vec<u8>, Option<FrameContext>),
    /// Nothing known: it cannot be read again, or it ends on a delimiter with no version-2
    /// header in its last MiB.
    None,
}

/// What the end of an input that can be read again puts in force.
fn end_context(source: &InputSource) -> End {
    for n in TAILS {
        let Some(tail) = bytes(source, Part::Tail(n)) else {
            return End::None;
        };
        let whole = (tail.len() as u64) < n;
        match FrameContext::at_end_of(&tail) {
            Some(c) if c.header().is_some() => return End::Context(c),
            // The whole input was looked at: no longer tail to try. What is left is the
            // frame cut short by its last byte, if any.
            cut if whole => return End::Headerless(tail, cut),
            cut if n == TAILS[TAILS.len() - 1] => return cut.map_or(End::None, End::Context),
            _ => {}
        }
    }
    End::None
}

enum Part {
    Head(u64),
    Tail(u64),
}

/// Up to `n` bytes at one end of an input that can be read again; `None` for standard input,
/// pipes and unreadable files (opening the input reports those).
fn bytes(source: &InputSource, end: Part) -> Option<Vec<u8>> {
    if !source.rereadable() {
        return None;
    }
    match source {
        InputSource::Path(p) => {
            let mut f = File::open(p).ok()?;
            let n = match end {
                Part::Head(n) => n,
                Part::Tail(n) => {
                    let size = f.metadata().ok()?.len();
                    f.seek(SeekFrom::Start(size.saturating_sub(n))).ok()?;
                    n
                }
            };
            let mut v = Vec::new();
            f.take(n).read_to_end(&mut v).ok()?;
            Some(v)
        }
        InputSource::Bytes(b) => {
            let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(b.len());
            let part = match end {
                Part::Head(n) => b.get(..size(n)),
                Part::Tail(n) => b.get(b.len() - size(n)..),
            };
            part.map(<[u8]>::to_vec)
        }
        InputSource::Stdin => None,
    }
}
