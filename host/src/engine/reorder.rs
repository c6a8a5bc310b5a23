//! A stream's reorder buffer: its duplicate window sized to the lateness once, its room grown
//! with what it holds, so that a log of many short sessions costs little memory per session
//! and a long one gets the full buffer.

use mend_core::{Admit, Counters, Reading, Release, Reorder};
use serde::{Deserialize, Serialize};

use super::config::{DEDUP_WINDOWS, FIRST_CAPACITY, GROWN_CAPACITY, REORDER_CAPACITIES};

const NARROW: usize = REORDER_CAPACITIES[0];
const MEDIUM: usize = REORDER_CAPACITIES[1];
const WIDE: usize = REORDER_CAPACITIES[2];
const FIRST: usize = FIRST_CAPACITY;
const GROWN: usize = GROWN_CAPACITY;

/// A stream's reorder buffer: its duplicate window sized to the lateness, its room grown
/// with what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum StreamReorder {
    N0(Box<Reorder<FIRST, 1, 8>>),
    N1(Box<Reorder<GROWN, 1, 8>>),
    N2(Box<Reorder<NARROW, 1, 8>>),
    M0(Box<Reorder<FIRST, 1, 32>>),
    M1(Box<Reorder<GROWN, 1, 32>>),
    M2(Box<Reorder<MEDIUM, 1, 32>>),
    W0(Box<Reorder<FIRST, 1, 128>>),
    W1(Box<Reorder<GROWN, 1, 128>>),
    W2(Box<Reorder<WIDE, 1, 128>>),
}

macro_rules! each {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            StreamReorder::N0($r) => $e,
            StreamReorder::N1($r) => $e,
            StreamReorder::N2($r) => $e,
            StreamReorder::M0($r) => $e,
            StreamReorder::M1($r) => $e,
            StreamReorder::M2($r) => $e,
            StreamReorder::W0($r) => $e,
            StreamReorder::W1($r) => $e,
            StreamReorder::W2($r) => $e,
        }
    };
}

/// Moves a buffer into a larger one; on the impossible failure, keeps the old one (which
/// then evicts early, counted, rather than losing anything). Runs on the replay's main
/// thread, whose stack holds the largest buffer (about 200 KB) on its way to the heap.
#[allow(clippy::boxed_local)] // the buffers live boxed; taking one by value is the point
#[inline(never)]
#[cold]
fn grown<const N: usize, const M: usize, const W: usize>(
    b: Box<Reorder<N, 1, W>>,
) -> Result<Box<Reorder<M, 1, W>>, Box<Reorder<N, 1, W>>> {
    match (*b).resize::<M>() {
        Ok(r) => Ok(Box::new(r)),
        Err(r) => Err(Box::new(r)),
    }
}

impl StreamReorder {
    pub(super) fn new(lateness_ms: u64, period_ms: u32, dedup: bool) -> Self {
        let need = (lateness_ms / u64::from(period_ms.max(1)))
            .saturating_mul(2)
            .saturating_add(64);
        // Without identity dedup (input without seq) the window is never used, but the
        // capacity still follows the lateness.
        if need <= DEDUP_WINDOWS[0] {
            let r = Reorder::new(lateness_ms);
            StreamReorder::N0(Box::new(if dedup { r } else { r.without_dedup() }))
        } else if need <= DEDUP_WINDOWS[1] {
            let r = Reorder::new(lateness_ms);
            StreamReorder::M0(Box::new(if dedup { r } else { r.without_dedup() }))
        } else {
            let r = Reorder::new(lateness_ms);
            StreamReorder::W0(Box::new(if dedup { r } else { r.without_dedup() }))
        }
    }

    /// Grows the buffer when it is full and a larger size exists.
    #[cold]
    fn grow(&mut self) {
        let placeholder = StreamReorder::N0(Box::new(Reorder::new(0)));
        *self = match std::mem::replace(self, placeholder) {
            StreamReorder::N0(b) => grown(b).map_or_else(StreamReorder::N0, StreamReorder::N1),
            StreamReorder::N1(b) => grown(b).map_or_else(StreamReorder::N1, StreamReorder::N2),
            StreamReorder::M0(b) => grown(b).map_or_else(StreamReorder::M0, StreamReorder::M1),
            StreamReorder::M1(b) => grown(b).map_or_else(StreamReorder::M1, StreamReorder::M2),
            StreamReorder::W0(b) => grown(b).map_or_else(StreamReorder::W0, StreamReorder::W1),
            StreamReorder::W1(b) => grown(b).map_or_else(StreamReorder::W1, StreamReorder::W2),
            full => full,
        };
    }

    #[inline]
    pub(super) fn push(&mut self, r: Reading) -> Admit {
        let full = match self {
            StreamReorder::N0(b) => b.len() >= FIRST,
            StreamReorder::M0(b) => b.len() >= FIRST,
            StreamReorder::W0(b) => b.len() >= FIRST,
            StreamReorder::N1(b) => b.len() >= GROWN,
            StreamReorder::M1(b) => b.len() >= GROWN,
            StreamReorder::W1(b) => b.len() >= GROWN,
            // The largest size never grows: it evicts, counted.
            _ => false,
        };
        if full {
            self.grow();
        }
        each!(self, b => b.push(r))
    }
    #[inline]
    pub(super) fn pop_ready(&mut self) -> Option<Release> {
        each!(self, b => b.pop_ready())
    }
    pub(super) fn pop_any(&mut self) -> Option<Release> {
        each!(self, b => b.pop_any())
    }
    pub(super) fn counters(&self) -> Counters {
        each!(self, b => b.counters())
    }
    pub(super) fn len(&self) -> usize {
        each!(self, b => b.len())
    }
    pub(super) fn set_lateness_ms(&mut self, ms: u64) {
        each!(self, b => b.set_lateness_ms(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mend_core::Celsius;

    fn r(seq: u32) -> Reading {
        Reading::new(1, 1, seq, u64::from(seq) * 1_000, Celsius::from_num(52))
    }

    /// The room the buffer has now.
    fn room(b: &StreamReorder) -> usize {
        match b {
            StreamReorder::N0(_) | StreamReorder::M0(_) | StreamReorder::W0(_) => FIRST_CAPACITY,
            StreamReorder::N1(_) | StreamReorder::M1(_) | StreamReorder::W1(_) => GROWN_CAPACITY,
            StreamReorder::N2(_) => REORDER_CAPACITIES[0],
            StreamReorder::M2(_) => REORDER_CAPACITIES[1],
            StreamReorder::W2(_) => REORDER_CAPACITIES[2],
        }
    }

    #[test]
    fn the_buffer_grows_with_what_it_holds_and_releases_like_a_full_one() {
        // A lateness of 10 minutes at 1 Hz takes the widest duplicate window; nothing is
        // released before it is asked for.
        let mut grown = StreamReorder::new(600_000, 1_000, true);
        let mut full: Box<Reorder<{ REORDER_CAPACITIES[2] }, 1, 128>> =
            Box::new(Reorder::new(600_000));
        assert_eq!(room(&grown), FIRST_CAPACITY, "a new stream starts small");
        let mut rooms = Vec::new();
        // Backwards, so nothing is released before the end.
        for seq in (0..3000).rev() {
            assert_eq!(grown.push(r(seq)), full.push(r(seq)), "seq {seq}");
            rooms.push(room(&grown));
        }
        assert_eq!(grown.len(), 3000);
        assert_eq!(
            rooms[FIRST_CAPACITY - 1],
            FIRST_CAPACITY,
            "not grown before it is full"
        );
        assert_eq!(rooms[FIRST_CAPACITY], GROWN_CAPACITY);
        assert_eq!(rooms[GROWN_CAPACITY - 1], GROWN_CAPACITY);
        assert_eq!(rooms[GROWN_CAPACITY], REORDER_CAPACITIES[2]);
        while let Some(want) = full.pop_any() {
            assert_eq!(grown.pop_any(), Some(want));
        }
        assert_eq!(grown.pop_any(), None);
        assert_eq!(grown.counters(), full.counters());
    }

    #[test]
    fn the_duplicate_window_follows_the_lateness() {
        let sized = |lateness_ms| {
            room(&{
                let mut b = StreamReorder::new(lateness_ms, 1_000, true);
                for seq in (0..600).rev() {
                    let _ = b.push(r(seq));
                }
                b
            })
        };
        assert_eq!(sized(30_000), REORDER_CAPACITIES[0]);
        assert_eq!(sized(400_000), REORDER_CAPACITIES[1]);
        assert_eq!(sized(4_000_000), REORDER_CAPACITIES[2]);
    }
}
