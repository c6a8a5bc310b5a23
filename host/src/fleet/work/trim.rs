//! How far a commit trims a sensor's raw stream.

use crate::checkpoint::Checkpoint;
use crate::fleet::{field, Entry, EntryId};

/// Where a commit trims a raw stream.
pub(super) struct Trim {
    /// `XTRIM MINID`: the first entry kept.
    pub(super) min_id: EntryId,
    /// Entries dropped.
    pub(super) entries: u64,
    /// Their bytes.
    pub(super) bytes: u64,
}

/// How far a sensor's raw stream can be trimmed after a settled run over `entries`
/// (everything up to `covers`) that wrote `checkpoint`: the entries before the first one of
/// a session that has not ended. An ended session (a newer one of its sensor started) has
/// all its records written, and a reading of it that comes again does not end the live
/// session (see [`EngineConfig::resume_ended`](crate::engine::EngineConfig)), so a run
/// without its entries writes what a run with them writes. A live session's entries stay:
/// its validation history, gap neighbours and clock check are rebuilt from them by every run.
pub(super) fn trim_point(
    entries: &[Entry],
    checkpoint: &Checkpoint,
    covers: EntryId,
) -> anyhow::Result<Option<Trim>> {
    let mut bytes = 0u64;
    let mut dropped = 0u64;
    for (id, fields) in entries {
        let id: EntryId = id.parse()?;
        let f = field(fields, "f").unwrap_or_default();
        let mut dec: mend_core::Decoder = mend_core::Decoder::new();
        let session = dec.feed(f).next().and_then(|ev| match ev {
            mend_core::DecodeEvent::Frame {
                frame: mend_core::Frame::Header(h),
                ..
            } => Some((h.sensor, h.session)),
            _ => None,
        });
        let ended = session
            .and_then(|s| checkpoint.streams.get(&s))
            .is_some_and(|m| m.ended);
        if !ended || id > covers {
            return Ok((dropped > 0).then_some(Trim {
                min_id: id,
                entries: dropped,
                bytes,
            }));
        }
        dropped += 1;
        bytes += f.len() as u64;
    }
    Ok((dropped > 0).then_some(Trim {
        min_id: covers.next(),
        entries: dropped,
        bytes,
    }))
}
