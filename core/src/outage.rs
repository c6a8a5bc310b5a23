//! Outages: gaps too long to fill, and the slots of the readings they swallowed.
//!
//! A gap longer than the maximum gap (see [`crate::gap`]) is reported, never filled: a guess
//! across a whole downtime would invent data. Where a caller wants a row for every missing
//! slot, [`Outage::slots`] spreads them evenly between the readings around it.

use crate::reading::Key;

/// A gap too long to fill: reported, never filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outage {
    /// The sensor of the reading before the outage.
    pub sensor: u32,
    /// The session of the reading before the outage.
    pub session: u32,
    /// The last measured reading before the outage.
    pub before: Key,
    /// The first measured reading after the outage.
    pub after: Key,
    /// How many readings the outage swallowed.
    pub missing: u64,
}

impl Outage {
    /// The slots of the readings the outage swallowed, on the sampling grid of `period_ms`,
    /// for output that wants one row per period: where each reading would have been, with
    /// the seq it would have had where the stream counts its samples.
    ///
    /// The slots are spread evenly over the outage and placed like fills would be (the k-th
    /// of `n` slots at `before + (after − before) × k / (n + 1)`, rounded down to the ms), so
    /// they lie strictly between the two measured readings, in order. Their number is
    /// `missing`, but never more than the clock leaves room for (`round(duration / period) −
    /// 1`): a seq jump the clock cannot explain (a corrupted counter) gives no more slots
    /// than the time it spans.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Key, Outage};
    /// let o = Outage {
    ///     sensor: 1,
    ///     session: 2,
    ///     before: Key { timestamp: 10_000, seq: 10 },
    ///     after: Key { timestamp: 14_000, seq: 14 },
    ///     missing: 3,
    /// };
    /// let slots: Vec<(u64, u32)> = o.slots(1_000).map(|k| (k.timestamp, k.seq)).collect();
    /// assert_eq!(slots, [(11_000, 11), (12_000, 12), (13_000, 13)]);
    ///
    /// // A seq jump of a million within four seconds: only three slots fit.
    /// let corrupt = Outage { missing: 1_000_000, ..o };
    /// assert_eq!(corrupt.slots(1_000).count(), 3);
    /// ```
    pub fn slots(&self, period_ms: u32) -> OutageSlots {
        let dt = self.after.timestamp.saturating_sub(self.before.timestamp);
        let period = u64::from(period_ms);
        let clock_room = dt
            .saturating_add(period / 2)
            .checked_div(period)
            .unwrap_or(0)
            .saturating_sub(1);
        OutageSlots {
            before: self.before,
            dt,
            count: self.missing.min(clock_room),
            next: 1,
        }
    }
}

/// The slots of an [`Outage`], from [`Outage::slots`].
#[derive(Clone, Debug)]
pub struct OutageSlots {
    before: Key,
    dt: u64,
    count: u64,
    next: u64,
}

impl Iterator for OutageSlots {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        if self.next > self.count {
            return None;
        }
        let k = self.next;
        self.next += 1;
        let offset = (u128::from(self.dt) * u128::from(k))
            .checked_div(u128::from(self.count) + 1)
            .unwrap_or(0);
        Some(Key {
            timestamp: self
                .before
                .timestamp
                .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX)),
            // Truncation is intended: a seq counts modulo 2^32, like the fills'.
            seq: self.before.seq.wrapping_add(k as u32),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.count + 1).saturating_sub(self.next);
        let n = usize::try_from(left).unwrap_or(usize::MAX);
        (n, usize::try_from(left).ok())
    }
}
