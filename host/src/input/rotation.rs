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
            (start == 0)
                .then(|| bytes(s, End::Head(HEAD)))
                .flatten()
                .filter(|h| orphans(h))
        })
        .collect();
    if heads.iter().all(Option::is_none) {
        return out;
    }
    let ends: Vec<Option<FrameContext>> = sources.iter().map(end_context).collect();
    for (i, head) in heads.iter().enumerate() {
        let Some(head) = head else { continue };
        // The input before it first, so that a tie goes to the order given.
        let order = i.checked_sub(1).into_iter().chain(0..sources.len());
        let mut best: Option<Continuation> = None;
        for j in order.filter(|j| *j != i) {
            let Some(ctx) = ends.get(j).and_then(Option::as_ref) else {
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

/// Whether `head` has a reading before its first header (one that cannot be placed alone).
fn orphans(head: &[u8]) -> bool {
    let mut dec: Decoder = Decoder::new();
    for ev in dec.feed(head) {
        match ev {
            DecodeEvent::Frame {
                frame: Frame::Header(_),
                ..
            } => return false,
            DecodeEvent::Skipped {
                reason: SkipReason::NoHeader,
                ..
            } => return true,
            _ => {}
        }
    }
    false
}

/// The context at the end of an input that can be read again, if it is a version-2 frame log.
fn end_context(source: &InputSource) -> Option<FrameContext> {
    TAILS.iter().find_map(|n| {
        let tail = bytes(source, End::Tail(*n))?;
        let whole = (tail.len() as u64) < *n;
        match FrameContext::at_end_of(&tail) {
            Some(c) => Some(Some(c)),
            // The whole input was looked at: no longer tail to try.
            None if whole => Some(None),
            None => None,
        }
    })?
}

enum End {
    Head(u64),
    Tail(u64),
}

/// Up to `n` bytes at one end of an input that can be read again; `None` for standard input,
/// pipes and unreadable files (opening the input reports those).
fn bytes(source: &InputSource, end: End) -> Option<Vec<u8>> {
    if !source.rereadable() {
        return None;
    }
    match source {
        InputSource::Path(p) => {
            let mut f = File::open(p).ok()?;
            let n = match end {
                End::Head(n) => n,
                End::Tail(n) => {
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
            let (n, len) = match end {
                End::Head(n) | End::Tail(n) => (usize::try_from(n).unwrap_or(usize::MAX), b.len()),
            };
            Some(match end {
                End::Head(_) => b.get(..n.min(len))?.to_vec(),
                End::Tail(_) => b.get(len.saturating_sub(n)..)?.to_vec(),
            })
        }
        InputSource::Stdin => None,
    }
}
