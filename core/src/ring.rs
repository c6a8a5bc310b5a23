//! The outgoing ring buffer: encoded frames wait here until the link can take them.
//!
//! A link can stall (a UART with flow control, a radio out of range) while the sensor keeps
//! sampling. The ring holds a fixed number of frames, and when it is full it follows an
//! explicit [`Overflow`] policy and counts every frame it gives up, so the loss shows up in the
//! stats frames instead of disappearing.
//!
//! Frames are encoded straight into their slot ([`Ring::push_with`]) and read from it in place
//! ([`Ring::pop_with`]): on a node, copying 80-byte frame buffers in and out of a queue cost
//! more than encoding them.

use crate::frame::{FrameBuf, MAX_FRAME};

/// What a full [`Ring`] gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Overflow {
    /// Drop the oldest frame to make room: the freshest data gets through.
    #[default]
    DropOldest,
    /// Refuse the new frame: what is queued goes out untouched.
    DropNewest,
}

/// A fixed queue of `Q` encoded frames with a counted overflow policy.
///
/// # Examples
/// ```
/// use mend_core::{FrameBuf, Overflow, Ring};
/// let f = |b: u8| FrameBuf::from_slice(&[b, 0]).unwrap();
/// let mut ring: Ring<2> = Ring::new(Overflow::DropOldest);
/// assert!(ring.push(f(1)).is_ok());
/// assert!(ring.push(f(2)).is_ok());
/// assert_eq!(ring.push(f(3)), Err(f(1)), "the oldest frame is handed back");
/// assert_eq!(ring.dropped(), 1);
/// assert_eq!(ring.pop(), Some(f(2)));
/// ```
#[derive(Clone, Debug)]
pub struct Ring<const Q: usize> {
    slots: [[u8; MAX_FRAME]; Q],
    lens: [u8; Q],
    /// The slot of the oldest frame.
    head: usize,
    len: usize,
    policy: Overflow,
    dropped: u32,
}

/// `at + 1`, wrapped to `Q` without a division (a Cortex-M0 has no divide instruction).
#[inline]
const fn next<const Q: usize>(at: usize) -> usize {
    if at + 1 >= Q {
        0
    } else {
        at + 1
    }
}

impl<const Q: usize> Ring<Q> {
    /// An empty ring with the given policy.
    pub const fn new(policy: Overflow) -> Self {
        Self {
            slots: [[0; MAX_FRAME]; Q],
            lens: [0; Q],
            head: 0,
            len: 0,
            policy,
            dropped: 0,
        }
    }

    /// Queues a frame that `encode` writes straight into the ring's free slot, returning its
    /// length. `Ok(true)` when it was queued, `Ok(false)` when the ring was full and the
    /// policy refused it (counted); `encode`'s error otherwise.
    ///
    /// When the ring is full and drops its oldest frame, that frame is counted and its slot is
    /// reused, even if `encode` then fails.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Frame, Overflow, Ring, WireReading};
    /// let mut ring: Ring<4> = Ring::new(Overflow::DropOldest);
    /// let f = Frame::Reading(WireReading { seq: 5, offset_ms: 0, celsius_delta: 160 });
    /// assert_eq!(ring.push_with(|slot| f.encode_into(slot)), Ok(true));
    /// assert_eq!(ring.pop_with(|bytes| bytes.len()), Some(9));
    /// ```
    pub fn push_with<E>(
        &mut self,
        encode: impl FnOnce(&mut [u8; MAX_FRAME]) -> Result<usize, E>,
    ) -> Result<bool, E> {
        if Q == 0 {
            // A ring of no slots holds nothing, and counts what it refuses.
            self.dropped = self.dropped.saturating_add(1);
            return Ok(false);
        }
        let mut tail = self.head + self.len;
        if tail >= Q {
            tail -= Q;
        }
        if self.len >= Q {
            self.dropped = self.dropped.saturating_add(1);
            match self.policy {
                Overflow::DropNewest => return Ok(false),
                Overflow::DropOldest => {
                    // The oldest frame's slot is the tail's: it is given up for the new one.
                    self.head = next::<Q>(self.head);
                    self.len -= 1;
                }
            }
        }
        let (Some(slot), Some(len)) = (self.slots.get_mut(tail), self.lens.get_mut(tail)) else {
            // `tail < Q` by construction; a ring that lost track refuses rather than panics.
            return Ok(false);
        };
        let n = encode(slot)?;
        *len = n.min(MAX_FRAME) as u8;
        self.len += 1;
        Ok(true)
    }

    /// Queues a frame. When the ring is full, the frame the policy gives up is handed back
    /// and counted.
    pub fn push(&mut self, frame: FrameBuf) -> Result<(), FrameBuf> {
        let given_up = if self.len >= Q {
            match self.policy {
                Overflow::DropNewest => Some(frame.clone()),
                Overflow::DropOldest => self.front(),
            }
        } else {
            None
        };
        let copy = |slot: &mut [u8; MAX_FRAME]| {
            slot.get_mut(..frame.len())
                .map(|s| s.copy_from_slice(&frame))
                .map(|()| frame.len())
                .ok_or(())
        };
        match (self.push_with(copy), given_up) {
            (_, Some(f)) => Err(f),
            (Ok(_), None) => Ok(()),
            (Err(()), None) => Err(frame),
        }
    }

    /// A copy of the oldest queued frame.
    fn front(&self) -> Option<FrameBuf> {
        if self.len == 0 {
            return None;
        }
        let slot = self.slots.get(self.head)?;
        let len = usize::from(*self.lens.get(self.head)?);
        FrameBuf::from_slice(slot.get(..len)?).ok()
    }

    /// Hands the oldest queued frame's bytes to `send`, in place, and removes it.
    pub fn pop_with<R>(&mut self, send: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.len == 0 {
            return None;
        }
        let at = self.head;
        self.head = next::<Q>(at);
        self.len -= 1;
        let len = usize::from(*self.lens.get(at)?);
        let bytes = self.slots.get(at)?.get(..len)?;
        Some(send(bytes))
    }

    /// The oldest queued frame, copied out.
    pub fn pop(&mut self) -> Option<FrameBuf> {
        let frame = self.front()?;
        self.pop_with(|_| ())?;
        Some(frame)
    }

    /// How many frames are queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many frames the policy has given up so far.
    pub const fn dropped(&self) -> u32 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    fn f(b: u8) -> FrameBuf {
        FrameBuf::from_slice(&[b, 0]).unwrap()
    }

    #[test]
    fn drop_newest_keeps_the_queue() {
        let mut r: Ring<2> = Ring::new(Overflow::DropNewest);
        r.push(f(1)).unwrap();
        r.push(f(2)).unwrap();
        assert_eq!(r.push(f(3)), Err(f(3)));
        assert_eq!(r.dropped(), 1);
        assert_eq!((r.pop(), r.pop(), r.pop()), (Some(f(1)), Some(f(2)), None));
    }

    #[test]
    fn a_ring_of_no_slots_counts_everything_it_refuses() {
        let mut r: Ring<0> = Ring::new(Overflow::DropOldest);
        assert_eq!(r.push_with(|_| Ok::<_, ()>(1)), Ok(false));
        assert_eq!((r.dropped(), r.len(), r.pop()), (1, 0, None));
    }

    proptest! {
        /// Against a `VecDeque` with the same policy: the same frames come out in the same
        /// order, and the same number are dropped, through wrap-arounds and overflows.
        #[test]
        fn behaves_like_a_bounded_deque(
            ops in proptest::collection::vec(proptest::option::of(1u8..=255), 0..200),
            newest in any::<bool>(),
        ) {
            let policy = if newest { Overflow::DropNewest } else { Overflow::DropOldest };
            let mut ring: Ring<3> = Ring::new(policy);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut dropped = 0u32;
            for op in ops {
                match op {
                    Some(b) => {
                        let frame = vec![b; usize::from(b % 7) + 1];
                        if model.len() == 3 {
                            dropped += 1;
                            if newest {
                                continue_push(&mut ring, &frame);
                                prop_assert_eq!(ring.dropped(), dropped);
                                continue;
                            }
                            model.pop_front();
                        }
                        model.push_back(frame.clone());
                        continue_push(&mut ring, &frame);
                    }
                    None => {
                        let got = ring.pop_with(<[u8]>::to_vec);
                        prop_assert_eq!(got, model.pop_front());
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert_eq!(ring.dropped(), dropped);
            }
        }
    }

    fn continue_push(ring: &mut Ring<3>, frame: &[u8]) {
        let _ = ring.push_with(|slot| {
            slot[..frame.len()].copy_from_slice(frame);
            Ok::<_, ()>(frame.len())
        });
    }
}
