//! The outgoing ring buffer: encoded frames wait here until the link can take them.
//!
//! A link can stall (a UART with flow control, a radio out of range) while the sensor keeps
//! sampling. The ring holds a fixed number of frames, and when it is full it follows an
//! explicit [`Overflow`] policy and counts every frame it gives up, so the loss shows up in the
//! stats frames instead of disappearing.

use heapless::Deque;

use crate::frame::FrameBuf;

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
    queue: Deque<FrameBuf, Q>,
    policy: Overflow,
    dropped: u32,
}

impl<const Q: usize> Ring<Q> {
    /// An empty ring with the given policy.
    pub const fn new(policy: Overflow) -> Self {
        Self {
            queue: Deque::new(),
            policy,
            dropped: 0,
        }
    }

    /// Queues a frame. When the ring is full, the frame the policy gives up is handed back
    /// and counted.
    pub fn push(&mut self, frame: FrameBuf) -> Result<(), FrameBuf> {
        let frame = match self.queue.push_back(frame) {
            Ok(()) => return Ok(()),
            Err(frame) => frame,
        };
        self.dropped = self.dropped.saturating_add(1);
        match self.policy {
            Overflow::DropNewest => Err(frame),
            Overflow::DropOldest => {
                let oldest = self.queue.pop_front();
                // Cannot fail: a slot was just freed (heapless refuses a zero capacity at compile
                // time).
                match self.queue.push_back(frame) {
                    Ok(()) => oldest.map_or(Ok(()), Err),
                    Err(frame) => Err(frame),
                }
            }
        }
    }

    /// The oldest queued frame.
    pub fn pop(&mut self) -> Option<FrameBuf> {
        self.queue.pop_front()
    }

    /// How many frames are queued.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many frames the policy has given up so far.
    pub const fn dropped(&self) -> u32 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
