//! Merging several inputs by time.
//!
//! Two captures of the same sensor (two gateways, or a log and its backup) hold the same
//! readings. Reading the files one after the other would present the second copy of a
//! reading long after the first left the reorder window, and the dedup window could no
//! longer vouch for it. So all inputs are read together: each contributes its next reading
//! to a small min-heap, and the earliest goes first. Every input is roughly in time order
//! already, so copies of the same reading meet within the lateness window, where
//! deduplication by identity catches every one of them.
//!
//! Everything that is not a reading (headers, stats, dead letters) is handed over as soon
//! as it is read, in file order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;

use crate::input::{Item, ItemReader, ReadingItem};

/// The order of heads: time, then seq, then input, then value (total and reproducible).
type HeadKey = (u64, u32, usize, u32, u32, i32);

/// A k-way merge of [`ItemReader`]s by reading time.
pub struct Merge {
    readers: Vec<Box<dyn ItemReader>>,
    heap: BinaryHeap<Reverse<(HeadKey, HeadSlot)>>,
    primed: bool,
}

/// A reading waiting in the heap (ordered only by its key).
#[derive(Clone, Copy, Debug)]
struct HeadSlot(ReadingItem);

impl PartialEq for HeadSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HeadSlot {}
impl PartialOrd for HeadSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeadSlot {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl Merge {
    /// A merge of these readers; reader `i` is input `i`.
    pub fn new(readers: Vec<Box<dyn ItemReader>>) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(readers.len()),
            readers,
            primed: false,
        }
    }

    /// The readers (for their byte books).
    pub fn readers(&self) -> &[Box<dyn ItemReader>] {
        &self.readers
    }

    /// The readers, mutably (to set stop points).
    pub fn readers_mut(&mut self) -> &mut [Box<dyn ItemReader>] {
        &mut self.readers
    }

    /// Pulls from reader `i` until its next reading, handing every other item to `side`.
    fn refill(
        &mut self,
        i: usize,
        side: &mut impl FnMut(Item) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(reader) = self.readers.get_mut(i) else {
            return Ok(());
        };
        while let Some(item) = reader.next_item()? {
            match item {
                Item::Reading(r) => {
                    let x = &r.reading;
                    let key = (
                        x.timestamp,
                        x.seq,
                        i,
                        x.sensor,
                        x.session,
                        x.celsius.to_bits(),
                    );
                    self.heap.push(Reverse((key, HeadSlot(r))));
                    return Ok(());
                }
                other => side(other)?,
            }
        }
        Ok(())
    }

    /// The next reading in merged order; other items go to `side` as they are read.
    pub fn next(
        &mut self,
        side: &mut impl FnMut(Item) -> io::Result<()>,
    ) -> io::Result<Option<ReadingItem>> {
        if let [only] = self.readers.as_mut_slice() {
            // One input: nothing to merge.
            while let Some(item) = only.next_item()? {
                match item {
                    Item::Reading(r) => return Ok(Some(r)),
                    other => side(other)?,
                }
            }
            return Ok(None);
        }
        if !self.primed {
            self.primed = true;
            for i in 0..self.readers.len() {
                self.refill(i, side)?;
            }
        }
        let Some(Reverse((key, HeadSlot(r)))) = self.heap.pop() else {
            return Ok(None);
        };
        self.refill(key.2, side)?;
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{open, InputSource, OpenOptions};

    fn jsonl(ts: &[u64]) -> InputSource {
        let text: String = ts
            .iter()
            .map(|t| format!("{{\"timestamp\": {t}, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52, \"status\": \"normal\"}}\n"))
            .collect();
        InputSource::Bytes(text.into_bytes().into())
    }

    #[test]
    fn heads_are_merged_by_time_and_side_items_pass_through() {
        let opts = OpenOptions {
            jsonl_period_ms: 1_000,
            ..OpenOptions::default()
        };
        let a = open(&jsonl(&[1, 4, 5, 9]), 0, &opts).unwrap();
        let mut b_src = String::from("junk\n");
        b_src.push_str("{\"timestamp\": 2, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52, \"status\": \"normal\"}\n");
        let b = open(&InputSource::Bytes(b_src.into_bytes().into()), 1, &opts).unwrap();
        let mut m = Merge::new(vec![a, b]);
        let mut side = 0;
        let mut got = Vec::new();
        while let Some(r) = m
            .next(&mut |_| {
                side += 1;
                Ok(())
            })
            .unwrap()
        {
            got.push((r.reading.timestamp / 1_000, r.input));
        }
        assert_eq!(got, [(1, 0), (2, 1), (4, 0), (5, 0), (9, 0)]);
        assert_eq!(side, 1, "the junk line");
    }
}
