//! The trait every reader implements, and the rule by which a frame log may stop early.

use std::io;

use serde::Serialize;

use super::books::ByteCounts;
use super::detect::Format;
use super::item::Item;

/// The size of one read from a frame log.
pub const CHUNK: usize = 256 * 1024;

/// Items per batch of [`ItemReader::fill`].
pub const BATCH: usize = 4096;

/// Readings in a row beyond the stop limit before an early stop.
pub const STOP_RUN: u32 = 256;

/// A source of [`Item`]s.
pub trait ItemReader {
    /// The next item, `None` at the end. Errors are I/O errors only; bad data is an item.
    fn next_item(&mut self) -> io::Result<Option<Item>>;
    /// Appends the next items to `out`, up to [`BATCH`] of them; returns `false` once the
    /// input is exhausted (after appending its last items). Replays read in batches: a
    /// call per batch instead of per item, and a batch moves between threads in one piece.
    fn fill(&mut self, out: &mut Vec<Item>) -> io::Result<bool> {
        while out.len() < BATCH {
            match self.next_item()? {
                Some(item) => out.push(item),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
    /// The byte books so far.
    fn bytes(&self) -> ByteCounts;
    /// The format being read.
    fn format(&self) -> Format;
    /// Stop once readings are later than `ms` (for `--until`): a JSONL reader after the
    /// first, a frame log after a run of [`STOP_RUN`]. Only for
    /// inputs known to grow in time all through; replays set no stop on JSONL, and stop
    /// frame logs by a [`StopRule`] backed by probes.
    fn set_stop_after(&mut self, ms: Option<u64>);
    /// True once the reader stopped early because of [`ItemReader::set_stop_after`].
    fn stopped_early(&self) -> bool;
}

/// When a frame log may stop early, for `--until`: after `run` readings in a row later than
/// `after_ms`, once past byte `from_byte`. [`crate::input::seek::plan`] makes these rules only
/// where probes show time growing through the file, so that the readings skipped cannot
/// matter; the run keeps one outlying reading (a clock glitch) from stopping a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StopRule {
    /// Readings later than this count towards the run, ms.
    pub after_ms: u64,
    /// No stop before this byte offset.
    pub from_byte: u64,
    /// Readings in a row needed to stop.
    pub run: u32,
}

/// What the readers' tests share: reading a whole input, and the reasons of its dead letters.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Item, ItemReader};
    use crate::input::ByteCounts;

    /// Fresh byte books for an input of `bytes`.
    pub(crate) fn books_of(bytes: &[u8]) -> ByteCounts {
        ByteCounts {
            total: Some(bytes.len() as u64),
            ..ByteCounts::default()
        }
    }

    /// Every item of `r`, and its byte books at the end.
    pub(crate) fn read_all(mut r: impl ItemReader) -> (Vec<Item>, ByteCounts) {
        let mut v = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            v.push(i);
        }
        (v, r.bytes())
    }

    /// The reasons of the dead letters among `v`, in order.
    pub(crate) fn reasons(v: &[Item]) -> Vec<&'static str> {
        v.iter()
            .filter_map(|i| match i {
                Item::Dead(d) => Some(d.reason.name()),
                _ => None,
            })
            .collect()
    }
}
