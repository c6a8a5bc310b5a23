//! Duplicate detection by identity `(sensor, session, seq)`, in fixed memory.
//!
//! Within a session seqs count up, so the seqs seen so far are "everything up to the highest
//! seq, minus a few holes near the top". A [`Dedup`] keeps, per stream, the highest seq seen and
//! a bitmap of the `32 × W` seqs up to it (the anti-replay window that IPsec and DTLS use),
//! kept as a ring indexed by `seq mod 32 × W`, so that a new highest seq costs a bit or two,
//! not a shift of the whole bitmap.
//! A seq inside the window is answered exactly: new or duplicate, forever, however long ago it
//! was released. A seq further below the top than the window reaches is answered
//! [`Seen::TooOld`]: memory is fixed, so it cannot be checked. Callers count that answer
//! separately rather than guess, and size `W` so that it cannot happen within their reorder
//! lateness (the edge keeps 256 seqs with `W = 8`, which is 4 minutes at 1 Hz, while its
//! reorder buffer holds at most a few seconds; the host keeps far more).
//!
//! Streams are kept in a fixed table of `S` entries. When a new stream arrives and the table is
//! full, the stream seen least recently is forgotten and counted in
//! [`Dedup::forgotten_streams`].

use serde::{Deserialize, Serialize};

/// The answer of [`Dedup::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before; now recorded.
    New,
    /// Seen before.
    Duplicate,
    /// Below the window: older than anything that can still be checked.
    TooOld,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Window<const W: usize> {
    sensor: u32,
    session: u32,
    high: u32,
    #[serde(with = "bits")]
    bits: [u32; W],
    last_used: u32,
}

impl<const W: usize> Window<W> {
    const BITS: u64 = 32 * W as u64;

    /// The word and bit of `seq`: the bitmap is a ring, so moving the top of the window
    /// clears the bits of the seqs it passes instead of shifting the whole bitmap.
    fn slot(seq: u32) -> (usize, u32) {
        let at = u64::from(seq) % Self::BITS;
        ((at / 32) as usize, (at % 32) as u32)
    }

    fn get(&self, seq: u32) -> bool {
        let (word, bit) = Self::slot(seq);
        self.bits.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn set(&mut self, seq: u32) {
        let (word, bit) = Self::slot(seq);
        if let Some(w) = self.bits.get_mut(word) {
            *w |= 1 << bit;
        }
    }

    fn clear(&mut self, seq: u32) {
        let (word, bit) = Self::slot(seq);
        if let Some(w) = self.bits.get_mut(word) {
            *w &= !(1 << bit);
        }
    }

    /// Moves the top of the window up to `seq` (above `high`), forgetting the seqs that fall
    /// out of it, and records `seq`.
    fn advance(&mut self, seq: u32) {
        if u64::from(seq - self.high) >= Self::BITS {
            self.bits = [0; W];
        } else {
            // The slots of high+1..=seq last held seqs a window below: now out of reach.
            let mut s = self.high;
            while s != seq {
                s += 1;
                self.clear(s);
            }
        }
        self.high = seq;
        self.set(seq);
    }
}

/// Remembers which identities were seen, for up to `S` streams with a window of `32 × W` seqs
/// each.
///
/// # Examples
/// ```
/// use mend_core::{Dedup, Seen};
/// let mut d: Dedup<2, 1> = Dedup::new();
/// assert_eq!(d.check(1, 7, 10), Seen::New);
/// assert_eq!(d.check(1, 7, 12), Seen::New);
/// assert_eq!(d.check(1, 7, 11), Seen::New);
/// assert_eq!(d.check(1, 7, 10), Seen::Duplicate);
/// assert_eq!(d.check(1, 8, 10), Seen::New, "another session is another identity");
/// assert_eq!(d.check(1, 7, 100), Seen::New);
/// assert_eq!(d.check(1, 7, 12), Seen::TooOld, "88 below the top of a 32-seq window");
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dedup<const S: usize, const W: usize> {
    streams: heapless::Vec<Window<W>, S>,
    tick: u32,
    forgotten: u32,
}

impl<const S: usize, const W: usize> Default for Dedup<S, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const S: usize, const W: usize> Dedup<S, W> {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            streams: heapless::Vec::new(),
            tick: 0,
            forgotten: 0,
        }
    }

    /// How many seqs below the highest one each stream remembers.
    pub const WINDOW: u64 = 32 * W as u64;

    /// Checks the identity `(sensor, session, seq)` and records it when it is new.
    pub fn check(&mut self, sensor: u32, session: u32, seq: u32) -> Seen {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        let found = self
            .streams
            .iter()
            .position(|w| w.sensor == sensor && w.session == session);
        let Some(idx) = found else {
            let mut fresh = Window {
                sensor,
                session,
                high: seq,
                bits: [0; W],
                last_used: tick,
            };
            fresh.set(seq);
            if let Err(fresh) = self.streams.push(fresh) {
                let stalest = self
                    .streams
                    .iter_mut()
                    .max_by_key(|w| tick.wrapping_sub(w.last_used));
                // With S == 0 nothing can be remembered, so nothing is ever a duplicate.
                if let Some(slot) = stalest {
                    *slot = fresh;
                    self.forgotten = self.forgotten.saturating_add(1);
                }
            }
            return Seen::New;
        };
        let Some(w) = self.streams.get_mut(idx) else {
            return Seen::New;
        };
        w.last_used = tick;
        if seq > w.high {
            w.advance(seq);
            return Seen::New;
        }
        if u64::from(w.high - seq) >= Window::<W>::BITS {
            Seen::TooOld
        } else if w.get(seq) {
            Seen::Duplicate
        } else {
            w.set(seq);
            Seen::New
        }
    }

    /// How many streams were dropped from the table to make room for newer ones.
    pub const fn forgotten_streams(&self) -> u32 {
        self.forgotten
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.streams.clear();
    }
}

/// The bitmap of a window as a sequence: serde's arrays stop at 32 elements.
mod bits {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer, const W: usize>(b: &[u32; W], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(W)?;
        for x in b {
            t.serialize_element(x)?;
        }
        t.end()
    }

    struct Bits<const W: usize>;

    impl<'de, const W: usize> Visitor<'de> for Bits<W> {
        type Value = [u32; W];

        fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
            write!(f, "{W} words of a duplicate window")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = [0u32; W];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(i, &self))?;
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const W: usize>(
        d: D,
    ) -> Result<[u32; W], D::Error> {
        d.deserialize_tuple(W, Bits::<W>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn window_shifts_across_word_boundaries() {
        let mut d: Dedup<1, 3> = Dedup::new();
        for seq in [0u32, 31, 32, 33, 63, 64, 95] {
            assert_eq!(d.check(1, 1, seq), Seen::New, "seq {seq}");
        }
        for seq in [0u32, 31, 32, 33, 63, 64, 95] {
            assert_eq!(d.check(1, 1, seq), Seen::Duplicate, "seq {seq}");
        }
        assert_eq!(d.check(1, 1, 1), Seen::New);
        assert_eq!(d.check(1, 1, 200), Seen::New);
        assert_eq!(
            d.check(1, 1, 105),
            Seen::New,
            "95 below 200: the window's oldest bit"
        );
        assert_eq!(d.check(1, 1, 105), Seen::Duplicate);
        assert_eq!(
            d.check(1, 1, 104),
            Seen::TooOld,
            "96 below 200 is outside 96 bits"
        );
        assert_eq!(d.check(1, 1, 199), Seen::New);
    }

    #[test]
    fn least_recent_stream_is_forgotten_and_counted() {
        let mut d: Dedup<2, 1> = Dedup::new();
        d.check(1, 1, 5);
        d.check(2, 1, 5);
        d.check(1, 1, 6);
        d.check(3, 1, 5); // forgets sensor 2
        assert_eq!(d.forgotten_streams(), 1);
        assert_eq!(d.check(1, 1, 5), Seen::Duplicate);
        assert_eq!(d.check(2, 1, 5), Seen::New);
    }

    #[test]
    fn extreme_seqs_do_not_overflow() {
        let mut d: Dedup<1, 2> = Dedup::new();
        assert_eq!(d.check(0, 0, u32::MAX), Seen::New);
        assert_eq!(d.check(0, 0, 0), Seen::TooOld);
        assert_eq!(d.check(0, 0, u32::MAX), Seen::Duplicate);
    }

    proptest! {
        #[test]
        fn agrees_with_a_set_inside_the_window(seqs in proptest::collection::vec(0u32..300, 0..400)) {
            let mut d: Dedup<1, 4> = Dedup::new();
            let mut oracle = BTreeSet::new();
            let mut high: Option<u32> = None;
            for s in seqs {
                let answer = d.check(9, 9, s);
                let too_old = high.is_some_and(|h| h > s && u64::from(h - s) >= 128);
                if too_old {
                    prop_assert_eq!(answer, Seen::TooOld);
                } else if oracle.contains(&s) {
                    prop_assert_eq!(answer, Seen::Duplicate);
                } else {
                    prop_assert_eq!(answer, Seen::New);
                }
                if !too_old {
                    oracle.insert(s);
                }
                high = Some(high.map_or(s, |h| h.max(s)));
            }
        }
    }
}
