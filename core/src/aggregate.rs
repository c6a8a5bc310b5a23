//! Exact per-window aggregates.
//!
//! A mean that changes with arrival order, or a time in band that counts made-up readings as
//! measured ones, cannot be audited. So every figure here is an integer: sums are `i64` in
//! units of 1/256 °C ([`Celsius::to_bits`]), counts are whole readings, and combining two
//! partial aggregates of one window ([`Aggregate::merge`]) is commutative and associative.
//! Whatever order the readings of a window arrive in, and however they are split into
//! partials, merging the partials gives the same figures to the last bit.
//!
//! What counts where — every figure is either over measured readings only, or says "with
//! fills" in its name:
//! - a record of quality [`Quality::Bad`] counts as `rejected` and nowhere else;
//! - a measured record that is not bad counts as `measured` and enters min, max, the sum
//!   behind the mean and the time in band;
//! - a synthetic record that is not bad counts as `synthetic`; it enters only the figures
//!   "with fills": the mean with fills and the time in band with fills (the gap it fills was
//!   real time, but its value is made up). Min and max are measured only: a fill never sets
//!   an extreme;
//! - `in_band` counts the measured samples inside the band (inclusive at both ends), and
//!   `in_band_ms = in_band × period_ms`; `synthetic_in_band` and `synthetic_in_band_ms` count
//!   the synthetic ones.
//!
//! Counts and sums saturate instead of wrapping; they only could after 2³² readings in one
//! window.

use core::fmt;

use heapless::Vec;

use crate::quality::Quality;
use crate::reading::{div_round, Celsius, Record};

/// The figures of one time window `[window_start, window_start + window_ms)`.
///
/// # Examples
/// ```
/// use mend_core::{Aggregate, Celsius, Flags, Quality, Reading, Record};
/// let band = (Celsius::from_num(50), Celsius::from_num(55));
/// let rec = |seq, t: f64| Record::measured(Reading::new(1, 1, seq, seq as u64 * 1_000, Celsius::from_num(t)), Quality::Good, Flags::EMPTY);
/// let mut a = Aggregate::new(0, 60_000);
/// a.add(&rec(0, 52.0), band, 1_000);
/// a.add(&rec(1, 53.0), band, 1_000);
/// a.add(&rec(2, 57.0), band, 1_000);
/// assert_eq!(a.measured, 3);
/// assert_eq!(a.mean(), Some(Celsius::from_num(54)));
/// assert_eq!(a.max, Some(Celsius::from_num(57)));
/// assert_eq!((a.in_band, a.in_band_ms), (2, 2_000));
/// assert_eq!(a.in_band_with_fills_ms(), 2_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregate {
    /// The first millisecond of the window: a multiple of `window_ms`.
    pub window_start: u64,
    /// The window's length in ms.
    pub window_ms: u64,
    /// Measured records that are not bad.
    pub measured: u32,
    /// Synthetic records that are not bad.
    pub synthetic: u32,
    /// Records of quality bad, measured or not.
    pub rejected: u32,
    /// The lowest measured value, if any.
    pub min: Option<Celsius>,
    /// The highest measured value, if any.
    pub max: Option<Celsius>,
    /// The sum of the measured values, in 1/256 °C.
    pub sum_bits: i64,
    /// Measured samples inside the band.
    pub in_band: u32,
    /// Measured time in band: `in_band × period_ms`.
    pub in_band_ms: u64,
    /// The sum of the synthetic values, in 1/256 °C.
    pub synthetic_sum_bits: i64,
    /// Synthetic samples inside the band.
    pub synthetic_in_band: u32,
    /// Synthetic time in band: `synthetic_in_band × period_ms`.
    pub synthetic_in_band_ms: u64,
}

impl Aggregate {
    /// An empty aggregate of the window starting at `window_start`.
    pub const fn new(window_start: u64, window_ms: u64) -> Self {
        Self {
            window_start,
            window_ms,
            measured: 0,
            synthetic: 0,
            rejected: 0,
            min: None,
            max: None,
            sum_bits: 0,
            in_band: 0,
            in_band_ms: 0,
            synthetic_sum_bits: 0,
            synthetic_in_band: 0,
            synthetic_in_band_ms: 0,
        }
    }

    /// Counts one record; `band` is inclusive, `period_ms` is the time one sample stands for.
    ///
    /// The caller makes sure the record belongs to this window.
    pub fn add(&mut self, rec: &Record, band: (Celsius, Celsius), period_ms: u32) {
        if rec.quality == Quality::Bad {
            self.rejected = self.rejected.saturating_add(1);
            return;
        }
        let t = rec.reading.celsius;
        let in_band = t >= band.0 && t <= band.1;
        let bits = i64::from(t.to_bits());
        if rec.is_synthetic() {
            self.synthetic = self.synthetic.saturating_add(1);
            self.synthetic_sum_bits = self.synthetic_sum_bits.saturating_add(bits);
            if in_band {
                self.synthetic_in_band = self.synthetic_in_band.saturating_add(1);
                self.synthetic_in_band_ms = self
                    .synthetic_in_band_ms
                    .saturating_add(u64::from(period_ms));
            }
        } else {
            self.measured = self.measured.saturating_add(1);
            self.sum_bits = self.sum_bits.saturating_add(bits);
            self.min = Some(self.min.map_or(t, |m| m.min(t)));
            self.max = Some(self.max.map_or(t, |m| m.max(t)));
            if in_band {
                self.in_band = self.in_band.saturating_add(1);
                self.in_band_ms = self.in_band_ms.saturating_add(u64::from(period_ms));
            }
        }
    }

    /// Adds another partial aggregate of the same window; the order of merges never matters.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Aggregate, Celsius, Flags, Quality, Reading, Record};
    /// let band = (Celsius::from_num(50), Celsius::from_num(55));
    /// let rec = |t: i32| Record::measured(Reading::new(1, 1, 0, 0, Celsius::from_num(t)), Quality::Good, Flags::EMPTY);
    /// let (mut a, mut b, mut all) = (Aggregate::new(0, 10), Aggregate::new(0, 10), Aggregate::new(0, 10));
    /// a.add(&rec(51), band, 1);
    /// b.add(&rec(60), band, 1);
    /// all.add(&rec(60), band, 1);
    /// all.add(&rec(51), band, 1);
    /// a.merge(&b);
    /// assert_eq!(a, all);
    /// ```
    pub fn merge(&mut self, other: &Aggregate) {
        self.measured = self.measured.saturating_add(other.measured);
        self.synthetic = self.synthetic.saturating_add(other.synthetic);
        self.rejected = self.rejected.saturating_add(other.rejected);
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.sum_bits = self.sum_bits.saturating_add(other.sum_bits);
        self.in_band = self.in_band.saturating_add(other.in_band);
        self.in_band_ms = self.in_band_ms.saturating_add(other.in_band_ms);
        self.synthetic_sum_bits = self
            .synthetic_sum_bits
            .saturating_add(other.synthetic_sum_bits);
        self.synthetic_in_band = self
            .synthetic_in_band
            .saturating_add(other.synthetic_in_band);
        self.synthetic_in_band_ms = self
            .synthetic_in_band_ms
            .saturating_add(other.synthetic_in_band_ms);
    }

    /// The mean of the measured values as `(sum in 1/256 °C, count)`, with no rounding at all.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Aggregate, Celsius, Flags, Quality, Reading, Record};
    /// let band = (Celsius::from_num(50), Celsius::from_num(55));
    /// let mut a = Aggregate::new(0, 10);
    /// for bits in [1, 1, 2] {
    ///     let r = Reading::new(1, 1, 0, 0, Celsius::from_bits(bits));
    ///     a.add(&Record::measured(r, Quality::Good, Flags::EMPTY), band, 1);
    /// }
    /// assert_eq!(a.mean_exact(), Some((4, 3)));
    /// assert_eq!(a.mean(), Some(Celsius::from_bits(1)));
    /// ```
    pub const fn mean_exact(&self) -> Option<(i64, u32)> {
        if self.measured == 0 {
            None
        } else {
            Some((self.sum_bits, self.measured))
        }
    }

    /// The mean of the measured values, rounded to the nearest 1/256 °C, ties away from zero.
    pub fn mean(&self) -> Option<Celsius> {
        let (sum, n) = self.mean_exact()?;
        Some(rounded_mean(i128::from(sum), u64::from(n)))
    }

    /// The mean of the measured and synthetic values together as `(sum in 1/256 °C,
    /// count)`, with no rounding at all: what the complete, repaired series averages to.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Aggregate, Celsius, Flags, Quality, Reading, Record};
    /// let band = (Celsius::from_num(50), Celsius::from_num(55));
    /// let mut a = Aggregate::new(0, 10);
    /// a.add(&Record::measured(Reading::new(1, 1, 0, 0, Celsius::from_num(52)), Quality::Good, Flags::EMPTY), band, 1_000);
    /// assert_eq!(a.mean_with_fills_exact(), Some((13_312, 1)));
    /// assert_eq!(Aggregate::new(0, 10).mean_with_fills_exact(), None);
    /// ```
    pub fn mean_with_fills_exact(&self) -> Option<(i128, u64)> {
        let n = u64::from(self.measured) + u64::from(self.synthetic);
        (n > 0).then(|| {
            (
                i128::from(self.sum_bits) + i128::from(self.synthetic_sum_bits),
                n,
            )
        })
    }

    /// The mean of the measured and synthetic values together, rounded like
    /// [`Aggregate::mean`].
    pub fn mean_with_fills(&self) -> Option<Celsius> {
        let (sum, n) = self.mean_with_fills_exact()?;
        Some(rounded_mean(sum, n))
    }

    /// Time in band of the measured and synthetic samples together, in ms.
    pub const fn in_band_with_fills_ms(&self) -> u64 {
        self.in_band_ms.saturating_add(self.synthetic_in_band_ms)
    }

    /// The window's end (exclusive), saturating at `u64::MAX`.
    pub const fn window_end(&self) -> u64 {
        self.window_start.saturating_add(self.window_ms)
    }
}

/// `sum / n` rounded to the nearest 1/256 °C, ties away from zero; `n > 0`.
fn rounded_mean(sum: i128, n: u64) -> Celsius {
    let bits = div_round(sum, i128::from(n));
    // The mean lies between the extremes, so it fits; saturate rather than trust that.
    Celsius::from_bits(i32::try_from(bits).unwrap_or(if bits < 0 { i32::MIN } else { i32::MAX }))
}

/// Why an [`Aggregator`] cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AggregateError {
    /// The window length is zero.
    ZeroWindow,
    /// The sampling period is zero.
    ZeroPeriod,
    /// The band's low end is above its high end.
    ReversedBand,
}

impl fmt::Display for AggregateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroWindow => "the aggregate window must not be zero",
            Self::ZeroPeriod => "the sampling period must not be zero",
            Self::ReversedBand => "the band's low end is above its high end",
        })
    }
}

impl core::error::Error for AggregateError {}

/// Aggregates one stream into fixed windows, holding at most `W` windows open.
///
/// The window of a record is `timestamp / window_ms`. A record for a new window, when `W`
/// windows are open, closes and emits the oldest open window first. Records may come in any
/// order, and none is dropped: a record for a window that was already emitted (or that is
/// older than every open window while all `W` are in use) is emitted at once as a partial
/// aggregate of one record. So one window may be emitted more than once; merging every emitted
/// aggregate with the same `window_start` gives the exact figures of that window, the same for
/// every arrival order. Run one aggregator per sensor.
///
/// # Examples
/// ```
/// use mend_core::{Aggregate, Aggregator, Celsius, Flags, Quality, Reading, Record};
/// let band = (Celsius::from_num(50), Celsius::from_num(55));
/// let rec = |ts, t: i32| Record::measured(Reading::new(1, 1, 0, ts, Celsius::from_num(t)), Quality::Good, Flags::EMPTY);
/// let mut agg: Aggregator<2> = Aggregator::try_new(10_000, 1_000, band).unwrap();
/// let mut out: Vec<Aggregate> = Vec::new();
/// for (ts, t) in [(0, 50), (5_000, 54), (12_000, 51), (25_000, 52)] {
///     out.extend(agg.push(&rec(ts, t)));
/// }
/// assert_eq!(out.len(), 1, "the third window closed the first");
/// out.extend(agg.finish());
/// let starts: Vec<u64> = out.iter().map(|a| a.window_start).collect();
/// assert_eq!(starts, [0, 10_000, 20_000]);
/// assert_eq!(out[0].mean(), Some(Celsius::from_num(52)));
/// ```
#[derive(Clone, Debug)]
pub struct Aggregator<const W: usize> {
    window_ms: u64,
    period_ms: u32,
    band: (Celsius, Celsius),
    /// Open windows, newest first, so the oldest is popped from the end.
    open: Vec<Aggregate, W>,
    /// The latest `window_start` that has been emitted, if any.
    closed_through: Option<u64>,
}

impl<const W: usize> Aggregator<W> {
    /// An aggregator of `window_ms` windows, where one sample stands for `period_ms` and the
    /// band is inclusive; or why these cannot be used.
    pub const fn try_new(
        window_ms: u64,
        period_ms: u32,
        band: (Celsius, Celsius),
    ) -> Result<Self, AggregateError> {
        if window_ms == 0 {
            Err(AggregateError::ZeroWindow)
        } else if period_ms == 0 {
            Err(AggregateError::ZeroPeriod)
        } else if band.0.to_bits() > band.1.to_bits() {
            Err(AggregateError::ReversedBand)
        } else {
            Ok(Self {
                window_ms,
                period_ms,
                band,
                open: Vec::new(),
                closed_through: None,
            })
        }
    }

    /// The window length, in ms.
    pub const fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The sampling period one sample stands for, in ms.
    pub const fn period_ms(&self) -> u32 {
        self.period_ms
    }

    /// The band, inclusive.
    pub const fn band(&self) -> (Celsius, Celsius) {
        self.band
    }

    /// How many windows are open.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Counts one record. It returns the window that had to close to make room (the oldest
    /// open one), or a partial aggregate of this record alone when its window was already
    /// closed (see the type's docs for late records); at most one per record.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Aggregator, Celsius, Flags, Quality, Reading, Record};
    /// let band = (Celsius::from_num(50), Celsius::from_num(55));
    /// let rec = |ts| Record::measured(Reading::new(1, 1, 0, ts, Celsius::from_num(52)), Quality::Good, Flags::EMPTY);
    /// let mut agg: Aggregator<1> = Aggregator::try_new(10, 1, band).unwrap();
    /// assert_eq!(agg.push(&rec(0)), None);
    /// assert_eq!(agg.push(&rec(3)), None, "same window");
    /// let closed = agg.push(&rec(12)).unwrap();
    /// assert_eq!((closed.window_start, closed.measured), (0, 2));
    /// let late = agg.push(&rec(5)).unwrap();
    /// assert_eq!((late.window_start, late.measured), (0, 1), "a partial of a closed window");
    /// ```
    pub fn push(&mut self, rec: &Record) -> Option<Aggregate> {
        let ts = rec.reading.timestamp;
        let start = ts.saturating_sub(ts.checked_rem(self.window_ms).unwrap_or(0));
        if let Some(a) = self.open.iter_mut().find(|a| a.window_start == start) {
            a.add(rec, self.band, self.period_ms);
            return None;
        }
        let mut fresh = Aggregate::new(start, self.window_ms);
        fresh.add(rec, self.band, self.period_ms);
        if self.closed_through.is_some_and(|c| start <= c) {
            return Some(fresh);
        }
        let mut closed = None;
        if self.open.is_full() {
            match self.open.last() {
                Some(oldest) if oldest.window_start < start => {
                    closed = self.open.pop();
                    if let Some(oldest) = &closed {
                        self.close(oldest.window_start);
                    }
                }
                _ => {
                    self.close(start);
                    return Some(fresh);
                }
            }
        }
        let at = self.open.partition_point(|a| a.window_start > start);
        if let Err(fresh) = self.open.insert(at, fresh) {
            // Cannot happen: a full list was shortened above, and one of no capacity
            // (`W == 0`) returned there. Were it to, the record leaves at once.
            debug_assert!(closed.is_none(), "room was made, yet the insert failed");
            self.close(start);
            return Some(fresh);
        }
        closed
    }

    /// Closes every open window: the iterator gives them oldest first, and the aggregator
    /// starts afresh. Windows the caller does not take stay open.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Aggregator, Celsius, Flags, Quality, Reading, Record};
    /// let band = (Celsius::from_num(50), Celsius::from_num(55));
    /// let rec = |ts| Record::measured(Reading::new(1, 1, 0, ts, Celsius::from_num(52)), Quality::Good, Flags::EMPTY);
    /// let mut agg: Aggregator<4> = Aggregator::try_new(10, 1, band).unwrap();
    /// for ts in [25, 3, 14] {
    ///     assert_eq!(agg.push(&rec(ts)), None);
    /// }
    /// let starts: Vec<u64> = agg.finish().map(|a| a.window_start).collect();
    /// assert_eq!(starts, [0, 10, 20]);
    /// assert_eq!(agg.open_windows(), 0);
    /// ```
    pub fn finish(&mut self) -> Closing<'_, W> {
        self.closed_through = None;
        Closing {
            open: &mut self.open,
        }
    }

    fn close(&mut self, start: u64) {
        self.closed_through = Some(self.closed_through.map_or(start, |c| c.max(start)));
    }
}

/// The windows an [`Aggregator::finish`] closes, oldest first.
#[derive(Debug)]
#[must_use = "the windows are closed as they are taken"]
pub struct Closing<'a, const W: usize> {
    /// Newest first, so the oldest is popped from the end.
    open: &'a mut Vec<Aggregate, W>,
}

impl<const W: usize> Iterator for Closing<'_, W> {
    type Item = Aggregate;

    fn next(&mut self) -> Option<Aggregate> {
        self.open.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.open.len(), Some(self.open.len()))
    }
}

impl<const W: usize> ExactSizeIterator for Closing<'_, W> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::{Flag, Flags};
    use crate::reading::{Origin, Reading, Source};
    use crate::FillMethod;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    type Tiny = Aggregator<2>;

    const BAND: (Celsius, Celsius) = (Celsius::const_from_int(50), Celsius::const_from_int(55));

    fn rec(ts: u64, bits: i32, quality: Quality, synthetic: bool) -> Record {
        let mut r = Record::measured(
            Reading::new(1, 1, 0, ts, Celsius::from_bits(bits)),
            quality,
            Flags::EMPTY,
        );
        if synthetic {
            r.flags = Flags::EMPTY.with(Flag::Synthetic);
            r.origin = Origin::Synthetic(Source {
                method: FillMethod::Linear,
                before: None,
                after: None,
            });
        }
        r
    }

    fn collect<const W: usize>(agg: &mut Aggregator<W>, recs: &[Record]) -> Vec<Aggregate> {
        let mut out = Vec::new();
        for r in recs {
            out.extend(agg.push(r));
        }
        out.extend(agg.finish());
        out
    }

    fn merged(parts: &[Aggregate]) -> BTreeMap<u64, Aggregate> {
        let mut m: BTreeMap<u64, Aggregate> = BTreeMap::new();
        for p in parts {
            m.entry(p.window_start)
                .and_modify(|a| a.merge(p))
                .or_insert(*p);
        }
        m
    }

    #[test]
    fn exact_mean_rounds_half_away_from_zero() {
        let mut a = Aggregate::new(0, 10);
        for bits in [13_313, 13_314] {
            a.add(&rec(0, bits, Quality::Good, false), BAND, 1);
        }
        assert_eq!(a.mean_exact(), Some((26_627, 2)));
        assert_eq!(a.mean(), Some(Celsius::from_bits(13_314)));
        let mut n = Aggregate::new(0, 10);
        for bits in [-1, -2] {
            n.add(&rec(0, bits, Quality::Good, false), BAND, 1);
        }
        assert_eq!(n.mean(), Some(Celsius::from_bits(-2)));
        // 0.1 °C is not a fixed-point value, but a third of a step is no float either:
        // (1 + 1 + 2) / 3 steps is kept exactly as (4, 3).
        let mut t = Aggregate::new(0, 10);
        for bits in [1, 1, 2] {
            t.add(&rec(0, bits, Quality::Good, false), BAND, 1);
        }
        assert_eq!(t.mean_exact(), Some((4, 3)));
        assert_eq!(t.mean(), Some(Celsius::from_bits(1)));
        assert_eq!(Aggregate::new(0, 10).mean(), None);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut a = Aggregate::new(0, 10);
        for _ in 0..3 {
            a.add(&rec(0, i32::MAX, Quality::Good, false), BAND, u32::MAX);
            a.add(&rec(0, i32::MIN, Quality::Good, false), BAND, u32::MAX);
        }
        assert_eq!(a.mean_exact(), Some((-3, 6)));
        assert_eq!(a.mean(), Some(Celsius::from_bits(-1)));
        assert_eq!((a.min, a.max), (Some(Celsius::MIN), Some(Celsius::MAX)));
        let mut agg = Tiny::try_new(u64::MAX, u32::MAX, BAND).unwrap();
        let out = collect(
            &mut agg,
            &[
                rec(u64::MAX, 0, Quality::Good, false),
                rec(0, 0, Quality::Good, false),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].window_end(), u64::MAX);
    }

    #[test]
    fn rejected_and_synthetic_stay_out_of_min_max_mean() {
        let mut a = Aggregate::new(0, 10);
        a.add(&rec(0, 13_000, Quality::Good, false), BAND, 1_000);
        a.add(&rec(1, 14_000, Quality::Doubtful, false), BAND, 1_000);
        a.add(&rec(2, 230_400, Quality::Bad, false), BAND, 1_000);
        a.add(&rec(3, 12_900, Quality::Doubtful, true), BAND, 1_000);
        a.add(&rec(4, 0, Quality::Doubtful, true), BAND, 1_000);
        assert_eq!((a.measured, a.synthetic, a.rejected), (2, 2, 1));
        assert_eq!(a.min, Some(Celsius::from_bits(13_000)));
        assert_eq!(a.max, Some(Celsius::from_bits(14_000)));
        assert_eq!(a.mean(), Some(Celsius::from_bits(13_500)));
        // 13_000 and 14_000 (54.7 °C) are in band; of the fills, 12_900 is, 0 is not. The
        // time in band is measured only, like min, max and mean; fills count only "with
        // fills".
        assert_eq!((a.in_band, a.in_band_ms), (2, 2_000));
        assert_eq!((a.synthetic_in_band, a.synthetic_in_band_ms), (1, 1_000));
        assert_eq!(a.in_band_with_fills_ms(), 3_000);
        assert_eq!(a.mean_with_fills_exact(), Some((39_900, 4)));
        assert_eq!(a.mean_with_fills(), Some(Celsius::from_bits(9_975)));
    }

    #[test]
    fn band_is_inclusive() {
        let mut a = Aggregate::new(0, 10);
        for bits in [12_800, 14_080, 12_799, 14_081] {
            a.add(&rec(0, bits, Quality::Good, false), BAND, 1);
        }
        assert_eq!(a.in_band, 2);
    }

    #[test]
    fn late_records_become_partials_that_merge_back() {
        let mut agg = Tiny::try_new(10, 1, BAND).unwrap();
        let recs = [
            rec(0, 1, Quality::Good, false),
            rec(10, 2, Quality::Good, false),
            rec(20, 3, Quality::Good, false), // closes window 0
            rec(5, 4, Quality::Good, false),  // window 0 again: a partial
            rec(30, 5, Quality::Good, false), // closes window 10
            rec(1, 6, Quality::Good, false),  // window 0, emitted at once
        ];
        let out = collect(&mut agg, &recs);
        let starts: Vec<u64> = out.iter().map(|a| a.window_start).collect();
        assert_eq!(starts, [0, 0, 10, 0, 20, 30]);
        let m = merged(&out);
        assert_eq!(m[&0].measured, 3);
        assert_eq!(m[&0].sum_bits, 11);
        assert_eq!(agg.open_windows(), 0);
    }

    #[test]
    fn push_returns_the_window_it_closed_and_finish_may_stop_early() {
        let mut agg = Tiny::try_new(10, 1, BAND).unwrap();
        let g = |ts| rec(ts, 52 * 256, Quality::Good, false);
        assert_eq!(agg.push(&g(0)), None);
        assert_eq!(agg.push(&g(11)), None);
        let closed = agg.push(&g(25)).expect("the third window closes the first");
        assert_eq!((closed.window_start, closed.measured), (0, 1));
        assert_eq!(agg.push(&g(27)), None);
        let mut closing = agg.finish();
        assert_eq!(closing.len(), 2);
        assert_eq!(closing.next().map(|a| a.window_start), Some(10));
        drop(closing);
        // Not taken, so still open; and the aggregator started afresh.
        assert_eq!(agg.open_windows(), 1);
        assert_eq!(agg.push(&g(3)), None, "window 0 is open again after finish");
        let rest: Vec<(u64, u32)> = agg.finish().map(|a| (a.window_start, a.measured)).collect();
        assert_eq!(rest, [(0, 1), (20, 2)]);
    }

    #[test]
    fn zero_capacity_emits_everything_at_once() {
        let mut agg = Aggregator::<0>::try_new(10, 1, BAND).unwrap();
        let out = collect(
            &mut agg,
            &[
                rec(0, 1, Quality::Good, false),
                rec(3, 2, Quality::Good, false),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(merged(&out)[&0].sum_bits, 3);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert_eq!(
            Tiny::try_new(0, 1, BAND).unwrap_err(),
            AggregateError::ZeroWindow
        );
        assert_eq!(
            Tiny::try_new(1, 0, BAND).unwrap_err(),
            AggregateError::ZeroPeriod
        );
        assert_eq!(
            Tiny::try_new(1, 1, (BAND.1, BAND.0)).unwrap_err(),
            AggregateError::ReversedBand
        );
        assert_eq!(
            std::format!("{}", AggregateError::ZeroWindow),
            "the aggregate window must not be zero"
        );
    }

    /// measured, synthetic, rejected, min, max, sum, in band, ms in band, synthetic sum,
    /// synthetic in band, synthetic ms in band.
    type Oracle = (
        u32,
        u32,
        u32,
        Option<i32>,
        Option<i32>,
        i64,
        u32,
        u64,
        i64,
        u32,
        u64,
    );

    fn oracle(recs: &[Record], window: u64, period: u32) -> BTreeMap<u64, Oracle> {
        let mut m: BTreeMap<u64, Oracle> = BTreeMap::new();
        for r in recs {
            let e = m
                .entry(r.reading.timestamp / window * window)
                .or_insert((0, 0, 0, None, None, 0, 0, 0, 0, 0, 0));
            let v = r.reading.celsius.to_bits();
            if r.quality == Quality::Bad {
                e.2 += 1;
                continue;
            }
            let in_band = (12_800..=14_080).contains(&v);
            if r.is_synthetic() {
                e.1 += 1;
                e.8 += i64::from(v);
                if in_band {
                    e.9 += 1;
                    e.10 += u64::from(period);
                }
            } else {
                e.0 += 1;
                e.3 = Some(e.3.map_or(v, |x| x.min(v)));
                e.4 = Some(e.4.map_or(v, |x| x.max(v)));
                e.5 += i64::from(v);
                if in_band {
                    e.6 += 1;
                    e.7 += u64::from(period);
                }
            }
        }
        m
    }

    fn rec_strategy() -> impl Strategy<Value = Record> {
        (
            0u64..50_000,
            12_000i32..15_000,
            prop_oneof![
                Just(Quality::Good),
                Just(Quality::Doubtful),
                Just(Quality::Bad)
            ],
            any::<bool>(),
        )
            .prop_map(|(ts, v, q, s)| rec(ts, v, q, s))
    }

    proptest! {
        #[test]
        fn any_arrival_order_gives_the_oracle(
            recs in proptest::collection::vec(rec_strategy(), 0..80)
                .prop_flat_map(|v| Just(v).prop_shuffle()),
            window in 1u64..20_000,
        ) {
            let mut agg = Tiny::try_new(window, 1_000, BAND).unwrap();
            let out = collect(&mut agg, &recs);
            let got: BTreeMap<u64, Oracle> = merged(&out)
                .into_iter()
                .map(|(k, a)| {
                    prop_assert_eq!(a.window_ms, window);
                    Ok((k, (
                        a.measured, a.synthetic, a.rejected,
                        a.min.map(Celsius::to_bits), a.max.map(Celsius::to_bits),
                        a.sum_bits, a.in_band, a.in_band_ms,
                        a.synthetic_sum_bits, a.synthetic_in_band, a.synthetic_in_band_ms,
                    )))
                })
                .collect::<Result<_, TestCaseError>>()?;
            prop_assert_eq!(got, oracle(&recs, window, 1_000));
            let mut sorted = recs.clone();
            sorted.sort_by_key(|r| r.reading.timestamp);
            let in_order = merged(&collect(&mut agg, &sorted));
            prop_assert_eq!(merged(&out), in_order);
        }
    }
}
