//! Pieces of one log given as separate inputs: a log rotated mid-session, its pieces named on
//! the command line (`mend replay capture.log.*`, in whatever order the shell gives them).
//!
//! A piece that starts in the middle of a session has readings before its first header. Read
//! alone they cannot be placed; read after the piece before it (`cat`) they can, since that
//! piece's header is still in force. A version-2 reading carries only the low bits of its seq
//! and is sealed to its header's identity, so it decodes only under its own session's header
//! and at its place: the piece it continues is found by trying the end of every other input,
//! and the one under which most of its leading readings decode is taken (the input before it
//! first, on a tie). None is taken when none decodes one of them, and the readings are
//! dead-lettered as before.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use mend_core::{DecodeEvent, Decoder, Frame, SkipReason};

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
    /// 64 KiB).
    pub readings: usize,
    /// What the continued input's frames put in force at its end.
    pub context: FrameContext,
}

/// For each input read from its start (`starts[i] == 0`) that begins with readings before its
/// first header, the input it continues, if any (see the module docs).
pub fn continuations(sources: &[InputSource], starts: &[u64]) -> Vec<Option<Continuation>> {
    let mut out = vec![None; sources.len()];
    if sources.len() < 2 {
        return out;
    }
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
    let mut ends: Vec<End> = sources.iter().map(end_context).collect();
    // A piece with no header of its own (shorter than the node's header interval) ends in
    // the context of the piece it continues, carried through its readings: found once that
    // one's is, so a chain of them takes a round each (each round settles one at least).
    loop {
        out = choose(&heads, &ends);
        let mut grew = false;
        for (j, end) in ends.iter_mut().enumerate() {
            if let (End::Headerless(all), Some(c)) = (&*end, out.get(j).and_then(Option::as_ref)) {
                *end = c.context.through(all).map_or(End::None, End::Context);
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    out
}

/// For each input that begins with readings before its first header (`heads`), the input
/// whose end context places most of them (see the module docs).
fn choose(heads: &[Option<Vec<u8>>], ends: &[End]) -> Vec<Option<Continuation>> {
    let mut out = vec![None; heads.len()];
    for (i, head) in heads.iter().enumerate() {
        let Some(head) = head else { continue };
        // The input before it first, so that a tie goes to the order given.
        let before = i.checked_sub(1);
        let order = before
            .into_iter()
            .chain((0..heads.len()).filter(|j| Some(*j) != before));
        let mut best: Option<Continuation> = None;
        for j in order.filter(|j| *j != i) {
            let Some(End::Context(ctx)) = ends.get(j) else {
                continue;
            };
            let n = ctx.fits(head);
            if n > best.as_ref().map_or(0, |b| b.readings) {
                best = Some(Continuation {
                    from: j,
                    readings: n,
                    context: ctx.clone(),
                });
            }
        }
        out[i] = best;
    }
    out
}

/// Where the first header of `head` starts (or its end), when a reading comes before it
/// (one that cannot be placed alone); `None` otherwise.
fn orphans(head: &[u8]) -> Option<usize> {
    let mut dec: Decoder = Decoder::new();
    let mut orphan = false;
    for ev in dec.feed(head) {
        match ev {
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
enum End {
    /// The context of its last version-2 header and the readings after it.
    Context(FrameContext),
    /// It has no header at all: its bytes, whole, to carry the context of the input it
    /// continues through.
    Headerless(Vec<u8>),
    /// Nothing known: no version-2 header in its last MiB, or it cannot be read again.
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
            Some(c) => return End::Context(c),
            // The whole input was looked at: no longer tail to try.
            None if whole => return End::Headerless(tail),
            None => {}
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
