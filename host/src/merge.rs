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
    inputs: Vec<Input>,
    heap: BinaryHeap<Reverse<(HeadKey, HeadSlot)>>,
    primed: bool,
}

/// One input and the batch being taken from it.
struct Input {
    reader: Box<dyn ItemReader>,
    batch: std::vec::IntoIter<Item>,
    more: bool,
}

impl Input {
    #[inline]
    fn next(&mut self) -> io::Result<Option<Item>> {
        loop {
            if let Some(item) = self.batch.next() {
                return Ok(Some(item));
            }
            if !self.more {
                return Ok(None);
            }
            let mut batch = Vec::new();
            self.more = self.reader.fill(&mut batch)?;
            self.batch = batch.into_iter();
        }
    }
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
            inputs: readers
                .into_iter()
                .map(|reader| Input {
                    reader,
                    batch: Vec::new().into_iter(),
                    more: true,
                })
                .collect(),
            primed: false,
        }
    }

    /// The readers (for their byte books).
    pub fn readers(&self) -> impl Iterator<Item = &dyn ItemReader> {
        self.inputs.iter().map(|i| &*i.reader)
    }

    /// Pulls from input `i` until its next reading, handing every other item to `side`.
    fn refill(
        &mut self,
        i: usize,
        side: &mut impl FnMut(Item) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(input) = self.inputs.get_mut(i) else {
            return Ok(());
        };
        while let Some(item) = input.next()? {
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

    /// Hands every item to `f`: readings in merged order, everything else (headers, stats,
    /// dead letters) as soon as it is read.
    pub fn for_each(&mut self, f: &mut impl FnMut(Item) -> io::Result<()>) -> io::Result<()> {
        if let [only] = self.inputs.as_mut_slice() {
            // One input: nothing to merge, so whole batches go through as they come, and
            // each emptied batch goes back to the reader to be filled again.
            let mut batch: Vec<Item> = only.batch.by_ref().collect();
            while only.more || !batch.is_empty() {
                for item in batch.drain(..) {
                    f(item)?;
                }
                if only.more {
                    only.more = only.reader.fill(&mut batch)?;
                }
            }
            return Ok(());
        }
        if !self.primed {
            self.primed = true;
            for i in 0..self.inputs.len() {
                self.refill(i, f)?;
            }
        }
        while let Some(Reverse((key, HeadSlot(r)))) = self.heap.pop() {
            f(Item::Reading(r))?;
            self.refill(key.2, f)?;
        }
        Ok(())
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
        m.for_each(&mut |item| {
            match item {
                Item::Reading(r) => got.push((r.reading.timestamp / 1_000, r.input)),
                _ => side += 1,
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(got, [(1, 0), (2, 1), (4, 0), (5, 0), (9, 0)]);
        assert_eq!(side, 1, "the junk line");
    }
}
