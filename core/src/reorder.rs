//! The reorder buffer: readings go in in arrival order and come out in time order.
//!
//! It is a fixed-capacity `heapless::BinaryHeap` min-heap keyed by the whole [`Reading`]
//! order, `(timestamp, seq)` first: a heap pops equal keys in no particular order, so the key
//! must never tie. A reading is held until the *watermark* — the highest timestamp seen minus
//! the allowed lateness — has passed it, then released in order.
//!
//! Most readings arrive in order, and a heap charges `O(log n)` comparisons and moves to
//! release each of them. So readings that extend the ascending run of held readings queue in
//! a `heapless::Deque` beside the heap instead, where pushing and releasing cost `O(1)`; only
//! a reading that arrives out of order goes into the heap. A release takes the smaller of the
//! two fronts, so the output is the same as with the heap alone, and both share the capacity
//! `N`.
//!
//! Nothing is ever dropped:
//! - a reading that arrives after a later one was already released comes out at once as
//!   [`ReleaseKind::Late`];
//! - when the buffer is full, the oldest reading comes out early as [`ReleaseKind::Evicted`],
//!   so a burst never blocks the caller and never panics;
//! - a reading whose identity was seen before, whether it is still held or long gone, is
//!   counted as a duplicate and not released again (see [`Dedup`] for how that stays bounded).
//!
//! The [`Counters`] balance after every call:
//! `input = emitted + late + duplicate + rejected + evicted + held`.

use core::fmt;

use heapless::binary_heap::{BinaryHeap, Min};
use heapless::Deque;
use serde::{Deserialize, Serialize};

use crate::counters::Counters;
use crate::dedup::{Dedup, Seen};
use crate::reading::Reading;

/// How a reading left the reorder buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseKind {
    /// In time order, after the watermark passed it (or at a flush).
    InOrder,
    /// Immediately on arrival, because a later reading had already been released.
    Late,
    /// Early, because the buffer was full; still in time order relative to what was held.
    Evicted,
}

/// A reading leaving the reorder buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Release {
    /// The reading, unchanged.
    pub reading: Reading,
    /// How it left.
    pub kind: ReleaseKind,
}

/// What [`Reorder::push`] did with a reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Admit {
    /// Held until the watermark passes it.
    Held,
    /// A reading seen before; counted, not released.
    Duplicate,
    /// Below the duplicate window: it cannot be checked, so it is refused and counted.
    Rejected(ReorderError),
    /// This reading (late, or evicted because it was the oldest) or another one (evicted to
    /// make room) left at once.
    Released(Release),
}

/// Why the reorder buffer refused a reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReorderError {
    /// The seq lies further below the newest seq of its session than the duplicate window
    /// reaches, so whether it is a duplicate cannot be known.
    BeyondDedupWindow,
}

impl fmt::Display for ReorderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BeyondDedupWindow => {
                f.write_str("seq is older than the duplicate window; cannot tell if it is new")
            }
        }
    }
}

impl core::error::Error for ReorderError {}

/// A bounded reorder buffer of `N` readings with duplicate detection over `S` streams of
/// `32 × W` seqs each.
///
/// Its size is fixed at compile time: `2 × N` readings of 24 bytes (the heap, and the queue of
/// in-order arrivals beside it), the counters, and `S` dedup windows of `4 × W + 16` bytes;
/// nothing is allocated (see the README for measured sizes). At most `N` readings are held.
///
/// # Examples
/// ```
/// use mend_core::{Admit, Celsius, Reading, ReleaseKind, Reorder};
/// let r = |seq: u32, ts: u64| Reading::new(1, 1, seq, ts, Celsius::from_num(52));
/// let mut buf: Reorder<4> = Reorder::new(1_000);
///
/// assert_eq!(buf.push(r(1, 1_000)), Admit::Held);
/// assert_eq!(buf.push(r(0, 0)), Admit::Held); // out of order, still in time
/// assert_eq!(buf.push(r(1, 1_000)), Admit::Duplicate);
/// assert_eq!(buf.push(r(2, 2_000)), Admit::Held); // watermark is now 1 000
///
/// let out: Vec<u32> = core::iter::from_fn(|| buf.pop_ready()).map(|x| x.reading.seq).collect();
/// assert_eq!(out, [0, 1]);
///
/// // Seq 3 at t = 500 comes after t = 1 000 was released: late, but never dropped.
/// let late = buf.push(r(3, 500));
/// assert!(matches!(late, Admit::Released(x) if x.kind == ReleaseKind::Late));
/// assert!(buf.counters().balanced(buf.len()));
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reorder<const N: usize, const S: usize = 1, const W: usize = 8> {
    /// Readings that arrived out of order.
    heap: BinaryHeap<Reading, Min, N>,
    /// Readings that arrived in order: ascending, and each at least the one before it.
    run: Deque<Reading, N>,
    dedup: Dedup<S, W>,
    lateness_ms: u64,
    newest: Option<u64>,
    last_released: Option<Reading>,
    counters: Counters,
    dedup_on: bool,
}

impl<const N: usize, const S: usize, const W: usize> Reorder<N, S, W> {
    /// An empty buffer that holds each reading until a reading `lateness_ms` newer arrives.
    pub const fn new(lateness_ms: u64) -> Self {
        Self {
            heap: BinaryHeap::new(),
            run: Deque::new(),
            dedup: Dedup::new(),
            lateness_ms,
            newest: None,
            last_released: None,
            counters: Counters {
                input: 0,
                emitted: 0,
                late: 0,
                duplicate: 0,
                rejected: 0,
                evicted: 0,
            },
            dedup_on: true,
        }
    }

    /// The same buffer without identity deduplication, for readings that have no seq (the
    /// prototype's JSONL logs): the caller deduplicates by content instead.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Admit, Celsius, Reading, Reorder};
    /// let mut b: Reorder<4> = Reorder::new(0).without_dedup();
    /// let r = Reading::new(0, 0, 0, 1_000, Celsius::from_num(52));
    /// assert_eq!(b.push(r), Admit::Held);
    /// assert_eq!(b.push(Reading { timestamp: 2_000, ..r }), Admit::Held);
    /// ```
    #[must_use]
    pub const fn without_dedup(mut self) -> Self {
        self.dedup_on = false;
        self
    }

    /// Takes a reading in arrival order.
    ///
    /// At most one reading leaves during a push (late, or evicted); call [`Reorder::pop_ready`]
    /// afterwards for the ones the watermark has passed.
    pub fn push(&mut self, reading: Reading) -> Admit {
        self.counters.input = self.counters.input.wrapping_add(1);
        let seen = if self.dedup_on {
            self.dedup
                .check(reading.sensor, reading.session, reading.seq)
        } else {
            Seen::New
        };
        match seen {
            Seen::Duplicate => {
                self.counters.duplicate = self.counters.duplicate.wrapping_add(1);
                return Admit::Duplicate;
            }
            Seen::TooOld => {
                self.counters.rejected = self.counters.rejected.wrapping_add(1);
                return Admit::Rejected(ReorderError::BeyondDedupWindow);
            }
            Seen::New => {}
        }
        self.newest = Some(
            self.newest
                .map_or(reading.timestamp, |n| n.max(reading.timestamp)),
        );
        if self.last_released.is_some_and(|last| reading < last) {
            self.counters.late = self.counters.late.wrapping_add(1);
            return Admit::Released(Release {
                reading,
                kind: ReleaseKind::Late,
            });
        }
        if self.len() >= N {
            // Full: the oldest of the held readings and the new one leaves early.
            let out = match self.peek() {
                Some(top) if top < reading => {
                    let top = self.pop_min();
                    self.hold(reading);
                    top.unwrap_or(reading)
                }
                _ => reading,
            };
            self.counters.evicted = self.counters.evicted.wrapping_add(1);
            self.last_released = Some(out);
            return Admit::Released(Release {
                reading: out,
                kind: ReleaseKind::Evicted,
            });
        }
        self.hold(reading);
        Admit::Held
    }

    /// Holds a reading; the caller has checked that there is room.
    #[inline]
    fn hold(&mut self, reading: Reading) {
        let in_order = self.run.back().is_none_or(|last| *last <= reading);
        // Neither push can fail: both have room for `N` and fewer than `N` are held.
        if in_order {
            let _ = self.run.push_back(reading);
        } else {
            let _ = self.heap.push(reading);
        }
    }

    /// The oldest held reading.
    #[inline]
    fn peek(&self) -> Option<Reading> {
        match (self.run.front(), self.heap.peek()) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }

    /// Takes out the oldest held reading.
    #[inline]
    fn pop_min(&mut self) -> Option<Reading> {
        match (self.run.front(), self.heap.peek()) {
            (Some(a), Some(b)) if b < a => self.heap.pop(),
            (Some(_), _) => self.run.pop_front(),
            (None, _) => self.heap.pop(),
        }
    }

    /// The watermark: readings at or below it are ready. `None` before the first reading.
    pub fn watermark(&self) -> Option<u64> {
        self.newest.map(|n| n.saturating_sub(self.lateness_ms))
    }

    /// Releases the oldest held reading if the watermark has passed it.
    pub fn pop_ready(&mut self) -> Option<Release> {
        let wm = self.watermark()?;
        if self.heap.is_empty() {
            // Everything arrived in order: the queue's front is the oldest reading.
            if self.run.front()?.timestamp > wm {
                return None;
            }
            let reading = self.run.pop_front()?;
            return Some(self.released(reading));
        }
        if self.peek()?.timestamp <= wm {
            self.release_top()
        } else {
            None
        }
    }

    /// Releases the oldest held reading regardless of the watermark (for a flush at the end).
    pub fn pop_any(&mut self) -> Option<Release> {
        self.release_top()
    }

    fn release_top(&mut self) -> Option<Release> {
        let reading = self.pop_min()?;
        Some(self.released(reading))
    }

    /// Counts `reading` as emitted in order, now that it has left.
    #[inline]
    fn released(&mut self, reading: Reading) -> Release {
        self.counters.emitted = self.counters.emitted.wrapping_add(1);
        self.last_released = Some(reading);
        Release {
            reading,
            kind: ReleaseKind::InOrder,
        }
    }

    /// How many readings are held.
    pub fn len(&self) -> usize {
        self.heap.len() + self.run.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.run.is_empty()
    }

    /// The books of this stage.
    pub const fn counters(&self) -> Counters {
        self.counters
    }

    /// The allowed lateness in milliseconds.
    pub const fn lateness_ms(&self) -> u64 {
        self.lateness_ms
    }

    /// Changes the allowed lateness: readings the new watermark has passed are ready at once
    /// (a buffer carried into a run that holds back less, or more).
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Celsius, Reading, Reorder};
    /// let r = |seq: u32, ts: u64| Reading::new(1, 1, seq, ts, Celsius::from_num(52));
    /// let mut buf: Reorder<4> = Reorder::new(5_000);
    /// buf.push(r(0, 10_000));
    /// buf.push(r(1, 11_000));
    /// assert!(buf.pop_ready().is_none());
    /// buf.set_lateness_ms(1_000);
    /// assert_eq!(buf.pop_ready().map(|x| x.reading.seq), Some(0));
    /// assert!(buf.pop_ready().is_none());
    /// ```
    pub fn set_lateness_ms(&mut self, lateness_ms: u64) {
        self.lateness_ms = lateness_ms;
    }

    /// Streams whose duplicate windows were dropped to make room (see [`Dedup`]).
    pub const fn forgotten_streams(&self) -> u32 {
        self.dedup.forgotten_streams()
    }

    /// The same buffer with room for `M` readings: the held readings, the duplicate windows,
    /// the watermark and the counters all move over, so the resized buffer behaves exactly as
    /// this one would have with capacity `M` from the start (as long as it never filled up).
    /// A host that keeps many streams starts each small and grows it when it fills.
    ///
    /// # Errors
    /// Gives the buffer back unchanged when `M` cannot hold what is held.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Admit, Celsius, Reading, Reorder};
    /// let r = |seq: u32, ts: u64| Reading::new(1, 1, seq, ts, Celsius::from_num(52));
    /// let mut small: Reorder<2> = Reorder::new(10_000);
    /// small.push(r(1, 1_000));
    /// small.push(r(0, 0));
    /// let mut big: Reorder<8> = small.resize().unwrap();
    /// assert_eq!(big.push(r(2, 2_000)), Admit::Held);
    /// assert_eq!(big.push(r(1, 1_000)), Admit::Duplicate, "the duplicate window moved too");
    /// let seqs: Vec<u32> = core::iter::from_fn(|| big.pop_any()).map(|x| x.reading.seq).collect();
    /// assert_eq!(seqs, [0, 1, 2]);
    /// assert!(big.counters().balanced(0));
    /// ```
    pub fn resize<const M: usize>(mut self) -> Result<Reorder<M, S, W>, Self> {
        if self.len() > M {
            return Err(self);
        }
        let mut bigger = Reorder::<M, S, W> {
            heap: BinaryHeap::new(),
            run: Deque::new(),
            dedup: self.dedup.clone(),
            lateness_ms: self.lateness_ms,
            newest: self.newest,
            last_released: self.last_released,
            counters: self.counters,
            dedup_on: self.dedup_on,
        };
        // Neither push can fail: the queue and the heap each have room for `M`, and at most
        // `M` readings are held in the two together.
        while let Some(r) = self.run.pop_front() {
            let _ = bigger.run.push_back(r);
        }
        while let Some(r) = self.heap.pop() {
            let _ = bigger.heap.push(r);
        }
        Ok(bigger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::Celsius;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    type Tiny = Reorder<4>;

    fn r(seq: u32, ts: u64) -> Reading {
        Reading::new(1, 1, seq, ts, Celsius::from_bits(seq as i32))
    }

    fn drain<const N: usize>(b: &mut Reorder<N>) -> Vec<Release> {
        core::iter::from_fn(|| b.pop_any()).collect()
    }

    proptest! {
        /// A buffer stored and loaded mid-stream (postcard) answers every later push and pop
        /// as the one that was never stored: held readings, watermark, last release, counters
        /// and the duplicate window all survive.
        #[test]
        fn a_stored_buffer_continues_exactly(
            ops in proptest::collection::vec((0u32..600, 0u64..40), 1..200),
            cut in 0usize..200,
        ) {
            let mut a: Reorder<64, 1, 4> = Reorder::new(5_000);
            let mut b: Option<Reorder<64, 1, 4>> = None;
            let cut = cut.min(ops.len());
            for (i, (seq, jitter)) in ops.iter().enumerate() {
                if i == cut {
                    let mut buf = [0u8; 8_192];
                    let bytes = postcard::to_slice(&a, &mut buf).unwrap();
                    b = Some(postcard::from_bytes(bytes).unwrap());
                }
                let x = r(*seq, u64::from(*seq) * 1_000 + jitter * 100);
                let got_a = a.push(x);
                if let Some(b) = b.as_mut() {
                    prop_assert_eq!(b.push(x), got_a);
                    loop {
                        let (pa, pb) = (a.pop_ready(), b.pop_ready());
                        prop_assert_eq!(pa, pb);
                        if pa.is_none() {
                            break;
                        }
                    }
                    prop_assert_eq!(b.counters(), a.counters());
                } else {
                    while a.pop_ready().is_some() {}
                }
            }
            if let Some(mut b) = b {
                prop_assert_eq!(drain_any(&mut b), drain_any(&mut a));
            }
        }
    }

    fn drain_any<const N: usize, const S: usize, const W: usize>(
        b: &mut Reorder<N, S, W>,
    ) -> Vec<Release> {
        core::iter::from_fn(|| b.pop_any()).collect()
    }

    #[test]
    fn full_buffer_evicts_oldest_and_counts_it() {
        let mut b = Tiny::new(1_000_000);
        for s in [3, 1, 4, 2] {
            assert_eq!(b.push(r(s, u64::from(s))), Admit::Held);
        }
        let out = b.push(r(5, 5));
        assert_eq!(
            out,
            Admit::Released(Release {
                reading: r(1, 1),
                kind: ReleaseKind::Evicted
            })
        );
        // Older than everything held: it is the one that leaves.
        let out = b.push(r(0, 0));
        assert!(matches!(out, Admit::Released(x) if x.reading.seq == 0));
        assert_eq!(b.counters().evicted, 1);
        assert_eq!(b.counters().late, 1, "0 is older than the evicted 1");
        assert!(b.counters().balanced(b.len()));
    }

    #[test]
    fn equal_timestamps_release_by_seq() {
        let mut b = Tiny::new(0);
        b.push(r(2, 10));
        b.push(r(1, 10));
        let seqs: Vec<u32> = drain(&mut b).iter().map(|x| x.reading.seq).collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn duplicate_after_release_is_still_a_duplicate() {
        let mut b = Tiny::new(0);
        b.push(r(1, 10));
        assert!(b.pop_ready().is_some());
        assert_eq!(b.push(r(1, 10)), Admit::Duplicate);
        assert_eq!(b.counters().duplicate, 1);
    }

    #[test]
    fn beyond_dedup_window_is_rejected_not_lost() {
        let mut b: Reorder<4, 1, 1> = Reorder::new(0);
        b.push(r(100, 100));
        assert_eq!(
            b.push(r(10, 10)),
            Admit::Rejected(ReorderError::BeyondDedupWindow)
        );
        assert_eq!(b.counters().rejected, 1);
        assert!(b.counters().balanced(b.len()));
    }

    #[test]
    fn watermark_saturates_at_zero() {
        let mut b = Tiny::new(u64::MAX);
        b.push(r(0, 5));
        assert_eq!(b.watermark(), Some(0));
        assert_eq!(b.pop_ready(), None);
    }

    /// Applies the pushes, asserting the books after every step, and returns everything that
    /// came out in release order.
    fn run<const N: usize>(b: &mut Reorder<N>, input: &[Reading]) -> Vec<Release> {
        let mut out = Vec::new();
        for x in input {
            if let Admit::Released(rel) = b.push(*x) {
                out.push(rel);
            }
            assert!(b.counters().balanced(b.len()));
            while let Some(rel) = b.pop_ready() {
                out.push(rel);
                assert!(b.counters().balanced(b.len()));
            }
        }
        out.extend(drain(b));
        assert!(b.counters().balanced(0));
        out
    }

    proptest! {
        /// Any arrival order within the lateness bound gives the sorted, deduplicated series.
        #[test]
        fn bounded_disorder_comes_out_sorted_and_deduplicated(
            n in 1usize..200,
            jitter in proptest::collection::vec(0u32..4, 200),
            dups in proptest::collection::vec(0usize..200, 0..40),
        ) {
            // A 1 Hz series, each reading moved by at most 3 places (3 s) from its slot.
            let mut input: Vec<Reading> = (0..n as u32).map(|s| r(s, u64::from(s) * 1000)).collect();
            input.sort_by_key(|x| (x.seq + jitter[x.seq as usize], x.seq));
            for d in dups {
                let pick = input[d % n];
                input.insert(d % n, pick);
            }
            let mut b: Reorder<16> = Reorder::new(4_000);
            let out = run(&mut b, &input);
            let oracle: BTreeMap<(u64, u32), Reading> =
                input.iter().map(|x| ((x.timestamp, x.seq), *x)).collect();
            let got: Vec<Reading> = out.iter().map(|x| x.reading).collect();
            let want: Vec<Reading> = oracle.into_values().collect();
            prop_assert_eq!(got, want);
            prop_assert!(out.iter().all(|x| x.kind == ReleaseKind::InOrder));
            prop_assert_eq!(b.counters().duplicate as usize, input.len() - n);
        }

        /// The queue of in-order arrivals changes nothing but the speed: every push and
        /// release matches a model that keeps all held readings in one sorted collection.
        #[test]
        fn same_releases_as_a_single_sorted_buffer(
            input in proptest::collection::vec((0u32..48, 0u64..40_000), 0..300),
            lateness in 0u64..8_000,
        ) {
            let mut b: Reorder<8> = Reorder::new(lateness);
            let mut held: std::collections::BTreeSet<Reading> = std::collections::BTreeSet::new();
            let mut seen = std::collections::BTreeSet::new();
            let (mut newest, mut last) = (None::<u64>, None::<Reading>);
            for (seq, ts) in input {
                let x = r(seq, ts);
                let got = b.push(x);
                // The model.
                let want = if !seen.insert(seq) {
                    Admit::Duplicate
                } else {
                    newest = Some(newest.map_or(ts, |n| n.max(ts)));
                    if last.is_some_and(|l| x < l) {
                        Admit::Released(Release { reading: x, kind: ReleaseKind::Late })
                    } else if held.len() >= 8 {
                        let oldest = *held.first().unwrap();
                        let out = if oldest < x {
                            held.pop_first();
                            held.insert(x);
                            oldest
                        } else {
                            x
                        };
                        last = Some(out);
                        Admit::Released(Release { reading: out, kind: ReleaseKind::Evicted })
                    } else {
                        held.insert(x);
                        Admit::Held
                    }
                };
                prop_assert_eq!(got, want);
                let wm = newest.map(|n| n.saturating_sub(lateness));
                loop {
                    let got = b.pop_ready().map(|x| x.reading);
                    let want = match (held.first(), wm) {
                        (Some(f), Some(wm)) if f.timestamp <= wm => held.pop_first(),
                        _ => None,
                    };
                    prop_assert_eq!(got, want);
                    match want {
                        Some(w) => last = Some(w),
                        None => break,
                    }
                }
                prop_assert_eq!(b.len(), held.len());
            }
            let rest: Vec<Reading> = drain(&mut b).iter().map(|x| x.reading).collect();
            let want: Vec<Reading> = held.into_iter().collect();
            prop_assert_eq!(rest, want);
        }

        /// With no bound on disorder and a tiny buffer, every distinct reading still leaves
        /// exactly once, and the books balance after every step.
        #[test]
        fn arbitrary_order_loses_nothing(
            input in proptest::collection::vec((0u32..64, 0u64..100_000), 0..300),
        ) {
            let input: Vec<Reading> = input.into_iter().map(|(s, ts)| r(s, ts)).collect();
            let mut b: Reorder<4> = Reorder::new(1_000);
            let out = run(&mut b, &input);
            let mut seen = std::collections::BTreeSet::new();
            let first: Vec<Reading> = input.iter().filter(|x| seen.insert(x.seq)).copied().collect();
            let mut got: Vec<Reading> = out.iter().map(|x| x.reading).collect();
            let mut want = first;
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
            let c = b.counters();
            prop_assert_eq!(c.input as usize, input.len());
            prop_assert_eq!((c.emitted + c.late + c.evicted) as usize, out.len());
        }
    }
}
