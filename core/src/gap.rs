//! Gap detection and filling.
//!
//! A series with holes gives wrong means and wrong time in band, so every missing reading is
//! found and, unless the gap is too long to guess, filled with a value that says it was made
//! up, how, and from which two measured neighbours.
//!
//! Why the rules are what they are:
//! - Within one session the sample counter is the truth: consecutive seqs mean nothing was
//!   lost, however the clock jittered, and a seq jump says exactly how many readings are
//!   missing. Across sessions, or for input without a counter (JSONL logs), only the clock is
//!   left, so a time gap longer than `period + tolerance` is a gap.
//! - A gap longer than `max_gap_ms` is an outage (the machine or the node was down); guessing
//!   a whole downtime would invent data, so it is reported and never filled. So is a gap that
//!   misses more than `max_gap_ms / period_ms` readings: a seq jump the clock does not explain
//!   (a corrupted counter) must not make millions of fills.
//! - An outlier must not drag the fills next to it: a value a fill is computed from has to be
//!   trustworthy (see [`GapFiller`]). A spike or an implausible value never is, and neither
//!   is a lone out-of-band reading; a sustained excursion (neighbours out of band on the same
//!   side) is real, and is used.
//! - Fills depend only on the configuration and on readings near the gap, never on where a run
//!   started, how the input was chunked or what comes after the gap, so a replay or an
//!   incremental run gives the same values as the full run. The stochastic noise is drawn
//!   from a ChaCha8 generator seeded from the gap's identity: `(seed, sensor, session)` and
//!   the keys of the two measured readings around it.
//!
//! **Replay windows.** The filler only sees what it is given, so a gap at the edge of a replay
//! window can only be found from the readings just outside it. A caller replaying
//! `[from, until]` therefore feeds the readings of the `2 × max_gap_ms` before `from` and the
//! first reading after `until` as well, and drops every output record outside the window.
//! The edge gaps are then found, and their fills are computed and seeded from the same
//! neighbours as in a full run: whether a reading is trustworthy depends on its neighbours up
//! to `max_gap_ms` away, and a fill's value on readings up to `max_gap_ms` before the reading
//! after the gap. A stochastic fill also scales its noise to the last `H` trustworthy values
//! before the gap, so a caller who needs stochastic fills byte-identical to a full run feeds
//! the `H` readings before that as well.
//!
//! **Rounding.** All values are integers in units of 1/256 °C ([`Celsius::to_bits`]). Every
//! division rounds to the nearest integer, ties away from zero; timestamps of synthetic
//! readings round down to the millisecond.

use heapless::Deque;
use serde::{Deserialize, Serialize};

use crate::fill::{gap_rng, FillConfig, Fills, GapConfigError};
use crate::outage::Outage;
use crate::quality::{Flag, Quality};
use crate::reading::{Celsius, FillMethod, Key, Reading, Record, Source};

/// What a [`GapFiller`] emits, in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GapEvent {
    /// A record: an input record passed through, or a synthetic fill.
    Record(Record),
    /// A gap was found between two measured readings; its fills (if any) follow.
    Gap {
        /// The measured reading before the gap.
        before: Key,
        /// The measured reading after the gap.
        after: Key,
        /// How many readings are missing.
        missing: u64,
    },
    /// A gap longer than the maximum: nothing is filled.
    Outage(Outage),
}

/// What a [`GapFiller`] has found so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GapStats {
    /// Gaps found and not outages (filled, or only reported with [`FillMethod::None`]).
    pub gaps: u64,
    /// Readings missing in those gaps.
    pub missing: u64,
    /// Synthetic records emitted.
    pub filled: u64,
    /// Outages found.
    pub outages: u64,
    /// Readings missing in outages.
    pub missing_in_outages: u64,
}

/// Which side of the band a value lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BandSide {
    /// Below the band's low end.
    Below,
    /// Inside the band, ends included.
    Inside,
    /// Above the band's high end.
    Above,
}

impl BandSide {
    /// The side of `t`, with the band inclusive at both ends.
    pub fn of(t: Celsius, band: (Celsius, Celsius)) -> Self {
        if t < band.0 {
            BandSide::Below
        } else if t > band.1 {
            BandSide::Above
        } else {
            BandSide::Inside
        }
    }
}

/// The last measured record: the earlier bound of the next gap.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Last {
    record: Record,
    /// Flagged spike, or of quality bad: it never gives a fill its value.
    suspect: bool,
    /// Its side of the band; `None` for a bad reading, whose value says nothing.
    side: Option<BandSide>,
    /// The side and time of the last reading before it that was not bad.
    prev: Option<(BandSide, u64)>,
}

/// Whether a record is suspect (bad, or a spike: it never gives a fill a value), and its side
/// of the band (`None` when bad: an impossible value is on no side).
fn judge(rec: &Record, band: (Celsius, Celsius)) -> (bool, Option<BandSide>) {
    let bad = rec.quality == Quality::Bad;
    let side = (!bad).then(|| BandSide::of(rec.reading.celsius, band));
    (bad || rec.flags.contains(Flag::Spike), side)
}

/// What a [`GapFiller`] remembers between two records: all a filler needs to go on exactly
/// as if it had never stopped, for instance in a later run resuming from a checkpoint. It
/// holds no more than a few readings and `H` values.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, FillConfig, Flags, GapEvent, GapFiller, Quality, Reading, Record};
/// let m = |seq, t: i32| Record::measured(Reading::new(1, 1, seq, u64::from(seq) * 1_000, Celsius::from_num(t)), Quality::Good, Flags::EMPTY);
/// let mut one: GapFiller<4> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
/// let (mut a, mut b) = (Vec::new(), Vec::new());
/// for r in [m(0, 52), m(1, 53), m(3, 54)] {
///     a.extend(one.push(r));
/// }
/// // A first run stops after seq 1; a second one resumes from its state.
/// let mut first: GapFiller<4> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
/// for r in [m(0, 52), m(1, 53)] {
///     b.extend(first.push(r));
/// }
/// let state = first.state();
/// let mut second: GapFiller<4> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
/// second.restore(state);
/// b.extend(second.push(m(3, 54)));
/// assert_eq!(a, b);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillState<const H: usize> {
    /// The last measured record: the earlier bound of the next gap, not yet judged.
    pub last: Option<Record>,
    /// The side of the band and the time of the last reading before `last` that was not of
    /// quality bad.
    pub before_last: Option<(BandSide, u64)>,
    /// The last measured reading found trustworthy.
    pub trusted: Option<Reading>,
    /// The last `H` trustworthy values, oldest first, in 1/256 °C.
    pub history: heapless::Vec<i32, H>,
}

/// Whether a measured reading may give a fill its value: it is neither bad nor a spike, and
/// it is inside the band or, outside it, not alone there (a neighbour on the same side makes
/// it a sustained excursion, which is real). `before` and `after` are the sides of the
/// neighbours that are close enough to count.
fn trustworthy(
    suspect: bool,
    side: Option<BandSide>,
    before: Option<BandSide>,
    after: Option<BandSide>,
) -> bool {
    !suspect
        && match side {
            Some(BandSide::Inside) => true,
            Some(s) => before == Some(s) || after == Some(s),
            None => false,
        }
}

/// Finds the gaps in one sensor's time-ordered records and fills them.
///
/// Every measured record, whatever its quality, bounds a gap: the gap between two measured
/// readings is found, counted and reported whatever their values. But a fill takes its
/// values only from *trustworthy* readings, so that an outlier next to a gap does not drag
/// the fills with it:
/// - a reading of quality bad (implausible) or flagged spike is never trustworthy;
/// - a reading outside the band is trustworthy only as part of a sustained excursion: when
///   the measured reading before it, or after it, is outside the band on the same side (and
///   no more than `max_gap_ms` away; readings of quality bad are skipped). An
///   isolated out-of-band reading is kept and flagged, but it is not an anchor. The reading
///   just after a gap is judged on the reading before it only (the one after is not known
///   yet, and a fill must not depend on input that arrives later, or an incremental run
///   would fill differently from one run); the reading just before a gap is judged on both;
/// - readings in the band that are neither bad nor spikes are trustworthy.
///
/// The fill interpolates, on time, between the nearest trustworthy reading before the gap
/// (the one just before it, or an earlier one, but no more than `max_gap_ms` before the
/// reading after the gap) and the reading after the gap if that one is trustworthy. With only
/// one of them, it carries that value across; with neither, the gap is reported and left
/// unfilled. Every fill's [`Source`] names the neighbours its value came from.
///
/// `H` is how many trustworthy values the stochastic fill looks back on to measure the
/// local variability. Input records that are already synthetic pass through and are not
/// anchors. A record whose key is not greater than the last measured record's passes through
/// unchanged. A record of another sensor starts afresh, with no gap before it.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, FillConfig, Flags, GapEvent, GapFiller, Quality, Reading, Record};
/// let m = |seq, ts, t| Record::measured(Reading::new(1, 1, seq, ts, Celsius::from_num(t)), Quality::Good, Flags::EMPTY);
/// let mut f: GapFiller<8> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
/// let mut out = Vec::new();
/// out.extend(f.push(m(0, 0, 50)));
/// out.extend(f.push(m(4, 4_000, 54)));
/// let fills: Vec<_> = out
///     .iter()
///     .filter_map(|e| match e {
///         GapEvent::Record(r) if r.is_synthetic() => Some((r.reading.seq, r.reading.timestamp, r.reading.celsius)),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(fills, [
///     (1, 1_000, Celsius::from_num(51)),
///     (2, 2_000, Celsius::from_num(52)),
///     (3, 3_000, Celsius::from_num(53)),
/// ]);
/// assert_eq!(f.stats().gaps, 1);
/// assert_eq!(f.stats().filled, 3);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GapFiller<const H: usize> {
    config: FillConfig,
    /// The last measured record.
    last: Option<Last>,
    /// The last measured reading found trustworthy.
    trusted: Option<Reading>,
    /// The last `H` trustworthy values.
    history: Deque<i32, H>,
    stats: GapStats,
    /// The fills of the gap the last push found, made as its events are taken. Kept here
    /// rather than in [`GapEvents`], so that the events of a push without a gap (nearly
    /// all of them) stay small; never part of a stored state.
    #[serde(skip)]
    fills: Option<Fills>,
}

impl<const H: usize> GapFiller<H> {
    /// A filler, or why `config` cannot be used.
    pub const fn try_new(config: FillConfig) -> Result<Self, GapConfigError> {
        if let Err(e) = config.check() {
            return Err(e);
        }
        Ok(Self {
            config,
            last: None,
            trusted: None,
            history: Deque::new(),
            stats: GapStats {
                gaps: 0,
                missing: 0,
                filled: 0,
                outages: 0,
                missing_in_outages: 0,
            },
            fills: None,
        })
    }

    /// The configuration in use.
    pub const fn config(&self) -> &FillConfig {
        &self.config
    }

    /// What has been found so far.
    pub const fn stats(&self) -> &GapStats {
        &self.stats
    }

    /// Forgets the last anchor and the history, as at the start of a new stream; the stats
    /// are kept.
    pub fn reset(&mut self) {
        self.last = None;
        self.trusted = None;
        self.history.clear();
    }

    /// Ends the stream. Nothing is held back, so nothing is emitted; the state is reset.
    pub fn finish(&mut self) {
        self.reset();
    }

    /// What the filler remembers now (see [`FillState`]).
    pub fn state(&self) -> FillState<H> {
        let mut history = heapless::Vec::new();
        for v in self.history.iter() {
            // Cannot fail: both hold `H` values.
            let _ = history.push(*v);
        }
        FillState {
            last: self.last.map(|l| l.record),
            before_last: self.last.and_then(|l| l.prev),
            trusted: self.trusted,
            history,
        }
    }

    /// Goes on from `state`, as the filler it was taken from would; the stats are kept.
    pub fn restore(&mut self, state: FillState<H>) {
        self.last = state.last.map(|record| {
            let (suspect, side) = judge(&record, self.config.band);
            Last {
                record,
                suspect,
                side,
                prev: state.before_last,
            }
        });
        self.trusted = state.trusted;
        self.history.clear();
        for v in state.history {
            // Cannot fail: both hold `H` values.
            let _ = self.history.push_back(v);
        }
    }

    /// Takes the next record. The events it gives, in time order: the gap or outage before it
    /// (if any), the synthetic records filling that gap, then the record itself. The filler
    /// has moved on once `push` returns; the events are computed as the caller takes them,
    /// so a caller that stops early loses the rest of them (the stats count every fill).
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Celsius, FillConfig, Flags, GapEvent, GapFiller, Quality, Reading, Record};
    /// let m = |seq| Record::measured(Reading::new(1, 1, seq, u64::from(seq) * 1_000, Celsius::from_num(52)), Quality::Good, Flags::EMPTY);
    /// let mut f: GapFiller<4> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
    /// assert_eq!(f.push(m(0)).count(), 1, "the record alone");
    /// let events = f.push(m(3));
    /// assert_eq!(events.len(), 4, "the gap, two fills, the record");
    /// let seqs: Vec<u32> = events
    ///     .filter_map(|e| match e {
    ///         GapEvent::Record(r) => Some(r.reading.seq),
    ///         _ => None,
    ///     })
    ///     .collect();
    /// assert_eq!(seqs, [1, 2, 3]);
    /// ```
    pub fn push(&mut self, rec: Record) -> GapEvents<'_, H> {
        self.fills = None;
        if rec.is_synthetic() {
            return GapEvents::record(self, None, rec);
        }
        let b = rec.reading;
        let (suspect, side) = judge(&rec, self.config.band);
        let mut prev = None;
        let mut head = None;
        // The parts of the last record needed here, not the whole of it: this runs for
        // every reading.
        let last = self
            .last
            .as_ref()
            .map(|a| (a.record.reading, a.suspect, a.side, a.prev));
        match last {
            Some((a, a_suspect, a_side, a_prev)) if a.sensor == b.sensor => {
                if b.key() <= a.key() {
                    return GapEvents::record(self, None, rec);
                }
                // A neighbour further away than one maximum gap says nothing about a
                // reading; this also bounds how far back a fill's inputs reach.
                let max_gap = self.config.max_gap_ms;
                let near = |from: u64, to: u64| to.saturating_sub(from) <= max_gap;
                let ta = a.timestamp;
                let before_a = a_prev.filter(|p| near(p.1, ta)).map(|p| p.0);
                let after_a = side.filter(|_| near(ta, b.timestamp));
                // Both neighbours of `a` are known now: judge it for good.
                if trustworthy(a_suspect, a_side, before_a, after_a) {
                    self.trusted = Some(a);
                    if self.history.is_full() {
                        self.history.pop_front();
                    }
                    // Cannot fail: a full history was just shortened; a zero-capacity one
                    // never holds.
                    let _ = self.history.push_back(a.celsius.to_bits());
                }
                prev = a_side.map(|s| (s, ta)).or(a_prev);
                let before_b = prev.filter(|p| near(p.1, b.timestamp)).map(|p| p.0);
                let b_trusted = trustworthy(suspect, side, before_b, None);
                head = self.between(&a, &b, b_trusted);
            }
            Some(_) => {
                self.trusted = None;
                self.history.clear();
            }
            None => {}
        }
        self.last = Some(Last {
            record: rec,
            suspect,
            side,
            prev,
        });
        GapEvents::record(self, head, rec)
    }

    /// Finds the gap between the last measured reading `a` and the next one `b`, where
    /// `b.key() > a.key()`: returns its report and plans its fills; `b_trusted` says whether
    /// `b` may give fills a value.
    fn between(&mut self, a: &Reading, b: &Reading, b_trusted: bool) -> Option<GapEvent> {
        let c = &self.config;
        let dt = b.timestamp.saturating_sub(a.timestamp);
        let by_seq = c.use_seq && a.session == b.session && b.seq > a.seq;
        let missing: u64 = if by_seq {
            u64::from(b.seq - a.seq - 1)
        } else {
            let period = u64::from(c.period_ms);
            if dt <= period.saturating_add(u64::from(c.tolerance_ms)) {
                0
            } else {
                let periods = dt
                    .saturating_add(period / 2)
                    .checked_div(period)
                    .unwrap_or(0);
                periods.saturating_sub(1).max(1)
            }
        };
        if missing == 0 {
            return None;
        }
        let (before, after) = (a.key(), b.key());
        if dt > c.max_gap_ms || missing > c.max_missing() {
            self.stats.outages = self.stats.outages.saturating_add(1);
            self.stats.missing_in_outages = self.stats.missing_in_outages.saturating_add(missing);
            return Some(GapEvent::Outage(Outage {
                sensor: a.sensor,
                session: a.session,
                before,
                after,
                missing,
            }));
        }
        self.stats.gaps = self.stats.gaps.saturating_add(1);
        self.stats.missing = self.stats.missing.saturating_add(missing);
        let gap = Some(GapEvent::Gap {
            before,
            after,
            missing,
        });
        let method = c.method;
        // The value anchors: the nearest trustworthy reading before the gap, not further
        // back than one maximum gap, and the reading after it if it is trustworthy.
        let left = self
            .trusted
            .filter(|l| b.timestamp.saturating_sub(l.timestamp) <= c.max_gap_ms);
        let right = b_trusted.then_some(*b);
        let (l, r) = match (left, right) {
            (Some(l), Some(r)) => (l, r),
            (Some(l), None) => (l, l),
            (None, Some(r)) => (r, r),
            (None, None) => return gap,
        };
        if method == FillMethod::None {
            return gap;
        }
        let rng = (method == FillMethod::Stochastic).then(|| gap_rng(c.seed, a, b));
        let scale = if rng.is_some() { self.variability() } else { 0 };
        // `missing` is at most `max_missing()`, which `check` keeps within u32.
        let count = missing.min(u64::from(u32::MAX));
        let steps = u128::from(missing) + 1;
        self.stats.filled = self.stats.filled.saturating_add(count);
        self.fills = Some(Fills {
            a: *a,
            dt,
            steps,
            // The k-th fill lies at `a + dt·k/steps`; measured from `l` and scaled by
            // `steps`, that is `lead + dt·k` out of `span`.
            lead: u128::from(a.timestamp.saturating_sub(l.timestamp)) * steps,
            span: u128::from(r.timestamp.saturating_sub(l.timestamp)) * steps,
            vl: i128::from(l.celsius.to_bits()),
            vr: i128::from(r.celsius.to_bits()),
            source: Source {
                method,
                before: left.map(|x| x.key()),
                after: right.map(|x| x.key()),
            },
            band: c.band,
            rng,
            scale,
            next: 1,
            count,
        });
        gap
    }

    /// The mean absolute successive difference of the remembered values, in 1/256 °C, rounded
    /// to nearest; 0 with fewer than two values.
    fn variability(&self) -> u64 {
        let mut sum: u64 = 0;
        let mut pairs: u64 = 0;
        let mut prev: Option<i32> = None;
        for &v in self.history.iter() {
            if let Some(p) = prev {
                sum = sum.saturating_add(u64::from(v.abs_diff(p)));
                pairs += 1;
            }
            prev = Some(v);
        }
        match pairs {
            0 => 0,
            n => sum.saturating_add(n / 2) / n,
        }
    }
}

/// The events of one [`GapFiller::push`], in time order: the gap or outage before the record
/// (if any), the synthetic records filling that gap, then the record itself.
///
/// An iterator the caller drives: each fill is computed when it is taken, so a gap of any
/// length costs no memory, and the caller can stop on its own error.
#[derive(Debug)]
#[must_use = "the events are computed as they are taken"]
pub struct GapEvents<'a, const H: usize> {
    /// The filler, which holds the planned fills.
    filler: &'a mut GapFiller<H>,
    head: Option<GapEvent>,
    record: Option<Record>,
}

impl<'a, const H: usize> GapEvents<'a, H> {
    fn record(filler: &'a mut GapFiller<H>, head: Option<GapEvent>, rec: Record) -> Self {
        Self {
            filler,
            head,
            record: Some(rec),
        }
    }
}

impl<const H: usize> Iterator for GapEvents<'_, H> {
    type Item = GapEvent;

    #[inline]
    fn next(&mut self) -> Option<GapEvent> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        if let Some(fills) = self.filler.fills.as_mut() {
            match fills.next() {
                Some(rec) => return Some(GapEvent::Record(rec)),
                None => self.filler.fills = None,
            }
        }
        self.record.take().map(GapEvent::Record)
    }

    /// The events in one pass, straight through: what `for` loops and `try_for_each` give
    /// through [`next`](Self::next), without asking at every event which part is next. The
    /// engine drives its hot path with it.
    #[inline]
    fn fold<B, F: FnMut(B, GapEvent) -> B>(mut self, init: B, mut f: F) -> B {
        let mut acc = init;
        if let Some(head) = self.head.take() {
            acc = f(acc, head);
        }
        if let Some(fills) = self.filler.fills.as_mut() {
            for rec in fills.by_ref() {
                acc = f(acc, GapEvent::Record(rec));
            }
            self.filler.fills = None;
        }
        if let Some(rec) = self.record.take() {
            acc = f(acc, GapEvent::Record(rec));
        }
        acc
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let fills = self.filler.fills.as_ref().map_or(0, |f| {
            usize::try_from((f.count + 1).saturating_sub(f.next)).unwrap_or(usize::MAX)
        });
        let n = fills
            .saturating_add(usize::from(self.head.is_some()))
            .saturating_add(usize::from(self.record.is_some()));
        (n, Some(n))
    }
}

impl<const H: usize> ExactSizeIterator for GapEvents<'_, H> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// `fold` gives exactly the events of `next`, gaps, fills and outages included.
    #[test]
    fn fold_gives_the_events_of_next() {
        let cfg = FillConfig {
            period_ms: 1_000,
            max_gap_ms: 10_000,
            ..FillConfig::DEFAULT
        };
        let mut by_next: GapFiller<16> = GapFiller::try_new(cfg).unwrap();
        let mut by_fold: GapFiller<16> = GapFiller::try_new(cfg).unwrap();
        let mut seen = 0;
        for (seq, ts) in [
            (0u32, 0u64),
            (1, 1_000),
            (5, 5_000),
            (6, 6_000),
            (60, 60_000),
            (61, 61_000),
        ] {
            let rec = Record::measured(
                Reading::new(1, 1, seq, ts, Celsius::from_num(20 + seq % 3)),
                Quality::Good,
                crate::quality::Flags::EMPTY,
            );
            let a: std::vec::Vec<GapEvent> = by_next.push(rec).collect();
            let b = by_fold.push(rec).fold(std::vec::Vec::new(), |mut v, ev| {
                v.push(ev);
                v
            });
            assert_eq!(a, b);
            seen += a.len();
        }
        // 6 readings, 3 fills, 1 gap report, 1 outage.
        assert_eq!(seen, 11);
    }
    use crate::quality::Flags;
    use crate::reading::{div_round, Origin};
    use proptest::prelude::*;
    use std::vec::Vec;

    type Tiny = GapFiller<4>;

    fn m(session: u32, seq: u32, ts: u64, bits: i32) -> Record {
        Record::measured(
            Reading::new(1, session, seq, ts, Celsius::from_bits(bits)),
            Quality::Good,
            Flags::EMPTY,
        )
    }

    fn cfg(method: FillMethod) -> FillConfig {
        FillConfig {
            method,
            ..FillConfig::DEFAULT
        }
    }

    fn run<const H: usize>(f: &mut GapFiller<H>, recs: &[Record]) -> Vec<GapEvent> {
        let mut out = Vec::new();
        for r in recs {
            let events = f.push(*r);
            let told = events.len();
            let before = out.len();
            out.extend(events);
            // Every caller relies on the events saying how many they are.
            assert_eq!(out.len() - before, told, "{r:?}");
        }
        f.finish();
        out
    }

    fn records(ev: &[GapEvent]) -> Vec<Record> {
        ev.iter()
            .filter_map(|e| match e {
                GapEvent::Record(r) => Some(*r),
                _ => None,
            })
            .collect()
    }

    fn fills(ev: &[GapEvent]) -> Vec<(u32, u64, i32)> {
        records(ev)
            .into_iter()
            .filter(Record::is_synthetic)
            .map(|r| {
                (
                    r.reading.seq,
                    r.reading.timestamp,
                    r.reading.celsius.to_bits(),
                )
            })
            .collect()
    }

    #[test]
    fn seq_gap_is_filled_linearly_with_provenance() {
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let a = m(1, 10, 10_000, 12_800);
        let b = m(1, 13, 13_100, 12_803);
        let ev = run(&mut f, &[a, b]);
        assert_eq!(
            ev[1],
            GapEvent::Gap {
                before: a.reading.key(),
                after: b.reading.key(),
                missing: 2
            }
        );
        // dt 3100 ms over 3 steps: 1033, 2066; value 3 bits over 3 steps: 1, 2.
        assert_eq!(fills(&ev), [(11, 11_033, 12_801), (12, 12_066, 12_802)]);
        let r = records(&ev);
        assert_eq!(r.len(), 4);
        assert_eq!((r[0], r[3]), (a, b));
        let s = r[1];
        assert_eq!(s.quality, Quality::Doubtful);
        assert_eq!(s.flags, Flags::EMPTY.with(Flag::Synthetic));
        assert_eq!(
            s.origin,
            Origin::Synthetic(Source {
                method: FillMethod::Linear,
                before: Some(a.reading.key()),
                after: Some(b.reading.key()),
            })
        );
        assert_eq!(f.stats().gaps, 1);
        assert_eq!(f.stats().filled, 2);
    }

    #[test]
    fn events_come_as_taken_and_the_filler_has_moved_on_at_push() {
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        assert_eq!(
            f.push(m(1, 0, 0, 0)).collect::<Vec<_>>(),
            [GapEvent::Record(m(1, 0, 0, 0))]
        );
        let mut events = f.push(m(1, 4, 4_000, 4 * 256));
        assert_eq!(events.len(), 5);
        assert!(matches!(
            events.next(),
            Some(GapEvent::Gap { missing: 3, .. })
        ));
        let first = events.next();
        assert!(
            matches!(first, Some(GapEvent::Record(r)) if r.reading.seq == 1 && r.reading.celsius == Celsius::from_num(1))
        );
        assert_eq!(events.len(), 3, "two fills and the record left");
        // Dropped half-way: the filler already counted the gap and its fills, and goes on
        // from the record that ended it.
        drop(events);
        assert_eq!((f.stats().gaps, f.stats().filled), (1, 3));
        let next: Vec<GapEvent> = f.push(m(1, 6, 6_000, 6 * 256)).collect();
        assert_eq!(fills(&next), [(5, 5_000, 5 * 256)]);
        // A stochastic gap gives the same values however its events are taken.
        let stochastic = |take_all: bool| {
            let mut f = GapFiller::<4>::try_new(cfg(FillMethod::Stochastic)).unwrap();
            let mut vals = Vec::new();
            for (seq, bits) in [(0, 0), (1, 300), (2, -200), (3, 500), (9, 100)] {
                let ev = f.push(m(1, seq, u64::from(seq) * 1000, bits));
                if take_all {
                    vals.extend(ev);
                } else {
                    for e in ev {
                        vals.push(e);
                    }
                }
            }
            fills(&vals)
        };
        assert_eq!(stochastic(true), stochastic(false));
        assert_eq!(stochastic(true).len(), 5);
    }

    #[test]
    fn consecutive_seqs_are_no_gap_whatever_the_clock() {
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 1, 5_000, 0)]);
        assert_eq!(ev.len(), 2);
        assert_eq!(f.stats().gaps, 0);
    }

    #[test]
    fn time_gaps_without_seq() {
        let c = FillConfig {
            use_seq: false,
            ..FillConfig::DEFAULT
        };
        let mut f = Tiny::try_new(c).unwrap();
        // 1.5 s is within period + tolerance; 3.9 s rounds to 4 periods: 3 missing.
        let ev = run(
            &mut f,
            &[m(1, 0, 0, 0), m(1, 1, 1_500, 0), m(1, 2, 5_400, 390)],
        );
        assert_eq!(
            fills(&ev),
            [(2, 2_475, 98), (3, 3_450, 195), (4, 4_425, 293)]
        );
        // 1.6 s is just over period + tolerance: 2 periods, so one reading is missing.
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 1, 1_600, 0)]);
        assert_eq!(fills(&ev), [(1, 800, 0)]);
    }

    #[test]
    fn session_change_uses_the_clock() {
        let mut f = Tiny::try_new(cfg(FillMethod::Locf)).unwrap();
        let ev = run(&mut f, &[m(1, 50, 10_000, 7), m(2, 0, 13_000, 9)]);
        assert_eq!(fills(&ev), [(51, 11_000, 7), (52, 12_000, 7)]);
        assert!(records(&ev)[1].reading.session == 1);
    }

    #[test]
    fn equal_timestamps_and_stale_keys() {
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let a = m(1, 1, 1_000, 0);
        let b = m(1, 4, 1_000, 300);
        let stale = m(1, 2, 1_000, 5);
        let ev = run(&mut f, &[a, b, stale, m(1, 5, 2_000, 300)]);
        assert_eq!(fills(&ev), [(2, 1_000, 100), (3, 1_000, 200)]);
        let r = records(&ev);
        assert_eq!(r[4], stale, "a stale key passes through unchanged");
        assert_eq!(r.len(), 6, "and does not move the anchor");
    }

    #[test]
    fn outage_is_reported_not_filled_and_max_gap_is_filled() {
        let c = FillConfig {
            max_gap_ms: 5_000,
            ..FillConfig::DEFAULT
        };
        let mut f = Tiny::try_new(c).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 5, 5_000, 0)]);
        assert_eq!(fills(&ev).len(), 4, "exactly max_gap is filled");
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 6, 5_001, 0)]);
        assert_eq!(
            ev[1],
            GapEvent::Outage(Outage {
                sensor: 1,
                session: 1,
                before: Key {
                    timestamp: 0,
                    seq: 0
                },
                after: Key {
                    timestamp: 5_001,
                    seq: 6
                },
                missing: 5
            })
        );
        assert!(fills(&ev).is_empty());
        // A seq jump the clock cannot explain is an outage too.
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 1_000_000, 1_000, 0)]);
        assert!(matches!(ev[1], GapEvent::Outage(o) if o.missing == 999_999));
        let s = f.stats();
        assert_eq!((s.gaps, s.outages, s.missing_in_outages), (1, 2, 1_000_004));
    }

    #[test]
    fn outage_counts_are_exact_beyond_u32() {
        // No seq: 2^33 periods of 1 ms between two readings.
        let c = FillConfig {
            use_seq: false,
            period_ms: 1,
            tolerance_ms: 0,
            max_gap_ms: 1_000,
            ..FillConfig::DEFAULT
        };
        let mut f = Tiny::try_new(c).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 1, 1 << 33, 0)]);
        assert!(matches!(ev[1], GapEvent::Outage(o) if o.missing == (1 << 33) - 1));
        assert_eq!(f.stats().missing_in_outages, (1 << 33) - 1);
    }

    #[test]
    fn outage_slots_lie_on_the_grid_between_the_readings() {
        let o = Outage {
            sensor: 1,
            session: 1,
            before: Key {
                timestamp: 1_000,
                seq: 7,
            },
            after: Key {
                timestamp: 4_100,
                seq: 10,
            },
            missing: 2,
        };
        let slots: Vec<(u64, u32)> = o.slots(1_000).map(|k| (k.timestamp, k.seq)).collect();
        assert_eq!(slots, [(2_033, 8), (3_066, 9)], "placed like fills");
        assert_eq!(o.slots(1_000).size_hint(), (2, Some(2)));
        // The clock leaves no room: no slot at all, not a pile at one time.
        let tight = Outage {
            after: Key {
                timestamp: 1_400,
                seq: 4_000_000,
            },
            missing: 3_999_992,
            ..o
        };
        assert_eq!(tight.slots(1_000).count(), 0);
        assert_eq!(o.slots(0).count(), 0);
        let huge = Outage {
            after: Key {
                timestamp: u64::MAX,
                seq: 6,
            },
            missing: u64::MAX,
            ..o
        };
        let mut it = huge.slots(u32::MAX);
        let first = it.next().unwrap();
        assert!(first.timestamp > 1_000 && first.seq == 8);
    }

    proptest! {
        /// Outage slots keep the output order: strictly increasing time and seq, strictly
        /// between the two readings, never more than the outage missed.
        #[test]
        fn outage_slots_are_strictly_ordered_between_the_readings(
            t0 in 0u64..1 << 40,
            dt in 0u64..1 << 24,
            seq0 in any::<u32>(),
            missing in 0u64..1 << 20,
            period in 1u32..10_000,
        ) {
            let o = Outage {
                sensor: 1,
                session: 1,
                before: Key { timestamp: t0, seq: seq0 },
                after: Key { timestamp: t0 + dt, seq: seq0.wrapping_add(missing as u32 + 1) },
                missing,
            };
            let slots: Vec<Key> = o.slots(period).take(1 << 16).collect();
            prop_assert!(slots.len() as u64 <= missing);
            let mut prev = o.before;
            for k in &slots {
                prop_assert!(k.timestamp > prev.timestamp && k.timestamp < o.after.timestamp);
                prop_assert_eq!(k.seq, prev.seq.wrapping_add(1));
                prev = *k;
            }
        }
    }

    #[test]
    fn locf_and_none() {
        let mut f = Tiny::try_new(cfg(FillMethod::Locf)).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 11), m(1, 3, 3_000, 99)]);
        assert_eq!(fills(&ev), [(1, 1_000, 11), (2, 2_000, 11)]);
        let mut f = Tiny::try_new(cfg(FillMethod::None)).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 11), m(1, 3, 3_000, 99)]);
        assert!(fills(&ev).is_empty());
        assert!(matches!(ev[1], GapEvent::Gap { missing: 2, .. }));
        assert_eq!((f.stats().gaps, f.stats().filled), (1, 0));
    }

    #[test]
    fn out_of_band_fills_are_flagged() {
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 2, 2_000, 0)]);
        let r = records(&ev)[1];
        assert!(r.flags.contains(Flag::OutOfBand) && r.flags.contains(Flag::Synthetic));
        assert_eq!(r.quality, Quality::Doubtful);
    }

    #[test]
    fn rounding_is_to_nearest_ties_away_from_zero() {
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
        assert_eq!(div_round(-4, 3), -1);
        assert_eq!(div_round(-5, 3), -2);
        assert_eq!(div_round(1, 0), 0);
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 2, 2_000, -3)]);
        assert_eq!(fills(&ev), [(1, 1_000, -2)]);
    }

    fn stochastic(seed: u64) -> (Vec<(u32, u64, i32)>, u64) {
        let mut scale = 0;
        let c = FillConfig {
            method: FillMethod::Stochastic,
            seed,
            ..FillConfig::DEFAULT
        };
        let mut f = GapFiller::<4>::try_new(c).unwrap();
        // History 12800, 12830, 12790, 12810: diffs 30, 40, 20 → scale 30.
        let recs = [
            m(1, 0, 0, 12_800),
            m(1, 1, 1_000, 12_830),
            m(1, 2, 2_000, 12_790),
            m(1, 3, 3_000, 12_810),
            m(1, 40, 40_000, 12_810),
        ];
        let mut out = Vec::new();
        for r in recs {
            if r.reading.seq == 40 {
                scale = f.variability();
            }
            out.extend(f.push(r));
        }
        (fills(&out), scale)
    }

    #[test]
    fn stochastic_is_seeded_and_bounded() {
        let (a, scale) = stochastic(7);
        assert_eq!(scale, 30);
        let (b, _) = stochastic(7);
        let (c, _) = stochastic(8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 36);
        for fill in a.iter().chain(&c) {
            assert!((fill.2 - 12_810).abs() <= 30, "{fill:?}");
        }
        assert!(a.iter().any(|f| f.2 != 12_810), "noise is not zero");
    }

    #[test]
    fn stochastic_without_history_is_linear() {
        let c = FillConfig {
            method: FillMethod::Stochastic,
            ..FillConfig::DEFAULT
        };
        let mut f = Tiny::try_new(c).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 3, 3_000, 300)]);
        assert_eq!(fills(&ev), [(1, 1_000, 100), (2, 2_000, 200)]);
    }

    #[test]
    fn stochastic_same_gap_same_values_wherever_the_run_started() {
        let c = FillConfig {
            method: FillMethod::Stochastic,
            seed: 3,
            ..FillConfig::DEFAULT
        };
        let series = [
            m(1, 0, 0, 100),
            m(1, 1, 1_000, 160),
            m(1, 2, 2_000, 120),
            m(1, 3, 3_000, 140),
            m(1, 4, 4_000, 110),
            m(1, 9, 9_000, 200),
        ];
        let full = fills(&run(&mut GapFiller::<3>::try_new(c).unwrap(), &series));
        // A replay fed the H readings before the gap gives the same fills.
        let part = fills(&run(&mut GapFiller::<3>::try_new(c).unwrap(), &series[2..]));
        assert_eq!(full, part);
        assert_eq!(full.len(), 4);
    }

    #[test]
    fn stochastic_noise_belongs_to_the_gap_not_to_the_run() {
        let c = FillConfig {
            method: FillMethod::Stochastic,
            seed: 5,
            ..FillConfig::DEFAULT
        };
        let wavy = |seq: u32| {
            m(
                1,
                seq,
                u64::from(seq) * 1_000,
                13_000 + (seq % 3) as i32 * 20,
            )
        };
        // A run with other gaps before the one at seqs 21..=24.
        let mut long: Vec<Record> = (0..=20).filter(|s| s % 7 != 3).map(wavy).collect();
        long.push(wavy(25));
        let all = fills(&run(&mut GapFiller::<4>::try_new(c).unwrap(), &long));
        let late: Vec<_> = all.iter().filter(|f| f.0 > 20).copied().collect();
        assert_eq!(late.len(), 4);
        assert!(all.len() > late.len(), "earlier gaps were filled too");
        // A fresh filler that sees only the readings the gap depends on (its neighbours and
        // the 4 values of history) fills it the same.
        let fresh = fills(&run(
            &mut GapFiller::<4>::try_new(c).unwrap(),
            &long[long.len() - 5..],
        ));
        let fresh: Vec<_> = fresh.into_iter().filter(|f| f.0 > 20).collect();
        assert_eq!(fresh, late);
        // The same reading before, the same seq and value after, but the reading after came
        // half a second later: another gap, with other noise around the same line.
        let mut other = long.clone();
        if let Some(last) = other.last_mut() {
            last.reading.timestamp += 500;
        }
        let moved = fills(&run(&mut GapFiller::<4>::try_new(c).unwrap(), &other));
        let moved: Vec<i32> = moved.iter().filter(|f| f.0 > 20).map(|f| f.2).collect();
        assert_eq!(moved.len(), 4);
        assert_ne!(moved, late.iter().map(|f| f.2).collect::<Vec<_>>());
    }

    #[test]
    fn synthetic_input_passes_through_and_other_sensor_restarts() {
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let ev = run(&mut f, &[m(1, 0, 0, 0), m(1, 2, 2_000, 0)]);
        let synth = records(&ev)[1];
        let other = Record::measured(
            Reading::new(2, 1, 9, 9_000, Celsius::ZERO),
            Quality::Good,
            Flags::EMPTY,
        );
        let input = [m(1, 0, 0, 0), synth, other, m(1, 3, 3_000, 0)];
        let ev = run(&mut f, &input);
        assert_eq!(
            records(&ev),
            input,
            "no gap across sensors or from synthetic input"
        );
        assert_eq!(ev.len(), 4);
    }

    #[test]
    fn bad_configs_are_refused() {
        let band = FillConfig::DEFAULT.band;
        let t = |p, tol, g| FillConfig::try_new(FillMethod::Linear, p, tol, g, 0, true, band);
        assert_eq!(t(0, 0, 10), Err(GapConfigError::ZeroPeriod));
        assert_eq!(t(10, 10, 10), Err(GapConfigError::ToleranceTooLarge));
        assert_eq!(t(10, 5, 9), Err(GapConfigError::MaxGapShorterThanPeriod));
        assert_eq!(t(1, 0, u64::MAX), Err(GapConfigError::MaxGapTooLong));
        assert!(t(10, 9, 10).is_ok());
        let rev = FillConfig {
            band: (band.1, band.0),
            ..FillConfig::DEFAULT
        };
        assert_eq!(rev.check(), Err(GapConfigError::ReversedBand));
        assert_eq!(
            std::format!("{}", GapConfigError::ZeroPeriod),
            "the sampling period must not be zero"
        );
        for m in FillMethod::ALL {
            assert_eq!(m.name().parse(), Ok(m));
            assert_eq!(m.to_string(), m.name());
        }
    }

    /// A band that holds every value: every reading is trustworthy.
    const EVERYTHING: (Celsius, Celsius) = (Celsius::MIN, Celsius::MAX);

    #[test]
    fn extreme_values_do_not_panic() {
        let c = FillConfig {
            method: FillMethod::Stochastic,
            period_ms: 1,
            tolerance_ms: 0,
            max_gap_ms: u64::from(u32::MAX),
            band: EVERYTHING,
            ..FillConfig::DEFAULT
        };
        let mut f = GapFiller::<4>::try_new(c).unwrap();
        let mut n = 0usize;
        let recs = [
            m(u32::MAX, u32::MAX - 3, u64::MAX - 10, i32::MAX),
            m(u32::MAX, u32::MAX, u64::MAX - 9, i32::MIN),
            m(0, 0, u64::MAX - 5, i32::MAX),
            m(1, u32::MAX, u64::MAX, i32::MIN),
            m(0, 0, u64::MAX, i32::MAX),
            m(1, 0, 0, i32::MIN),
            m(1, 0, 0, i32::MAX),
        ];
        for r in recs {
            n += f.push(r).count();
        }
        // 2 + 3 + 4 fills, 3 gaps, 7 records.
        assert_eq!(n, 9 + 3 + recs.len());
        for method in FillMethod::ALL {
            let mut f = GapFiller::<2>::try_new(FillConfig {
                method,
                use_seq: false,
                max_gap_ms: u64::MAX / 2,
                period_ms: u32::MAX,
                tolerance_ms: 0,
                band: EVERYTHING,
                ..FillConfig::DEFAULT
            })
            .unwrap();
            let ev = run(
                &mut f,
                &[m(1, u32::MAX, 0, i32::MIN), m(2, 0, u64::MAX, i32::MAX)],
            );
            assert!(matches!(ev[1], GapEvent::Outage(_)));
            let ev = run(
                &mut f,
                &[
                    m(1, u32::MAX, 0, i32::MIN),
                    m(1, 0, 3 * u64::from(u32::MAX), i32::MAX),
                ],
            );
            assert_eq!(
                records(&ev).len(),
                if method == FillMethod::None { 2 } else { 4 }
            );
            for r in records(&ev) {
                assert!(r.reading.timestamp <= 3 * u64::from(u32::MAX));
            }
            // An outlier between two readings in the band: the line from the earlier one
            // spans a huge time.
            let mut f = GapFiller::<2>::try_new(FillConfig {
                method,
                use_seq: false,
                max_gap_ms: u64::MAX / 2,
                period_ms: u32::MAX,
                tolerance_ms: 0,
                ..FillConfig::DEFAULT
            })
            .unwrap();
            let ev = run(
                &mut f,
                &[
                    m(1, 0, 0, 12_800),
                    m(1, 1, 1, i32::MAX),
                    m(1, 2, 3 * u64::from(u32::MAX), 13_000),
                ],
            );
            let made = fills(&ev);
            assert_eq!(made.len(), if method == FillMethod::None { 0 } else { 2 });
            assert!(
                made.iter().all(|f| (12_800..=13_000).contains(&f.2)),
                "{made:?}"
            );
        }
    }

    fn any_record() -> impl Strategy<Value = Record> {
        (
            0u32..3,
            any::<u32>(),
            any::<u64>(),
            any::<i32>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(session, seq, ts, bits, bad, synth)| {
                let mut r = m(session, seq, ts, bits);
                if bad {
                    r.quality = Quality::Bad;
                }
                if synth {
                    r.origin = Origin::Synthetic(Source {
                        method: FillMethod::Locf,
                        before: None,
                        after: None,
                    });
                }
                r
            })
    }

    proptest! {
        #[test]
        fn any_input_passes_through_once_in_order(
            mut recs in proptest::collection::vec(any_record(), 0..40),
            sorted in any::<bool>(),
            method in proptest::sample::select(FillMethod::ALL.to_vec()),
            use_seq in any::<bool>(),
            period in 1u32..100_000,
        ) {
            if sorted {
                recs.sort_by_key(|r| r.reading.key());
            }
            let c = FillConfig {
                method,
                use_seq,
                period_ms: period,
                tolerance_ms: period / 2,
                max_gap_ms: u64::from(period) * 50,
                seed: 1,
                ..FillConfig::DEFAULT
            };
            let mut f = GapFiller::<3>::try_new(c).unwrap();
            let ev = run(&mut f, &recs);
            let out = records(&ev);
            let passed: Vec<Record> = out
                .iter()
                .filter(|r| recs.contains(r))
                .copied()
                .collect();
            prop_assert_eq!(&passed, &recs);
            let made = out.iter().filter(|r| r.is_synthetic() && !recs.contains(r)).count();
            prop_assert_eq!(made as u64, f.stats().filled);
            prop_assert!(f.stats().filled <= 50 * f.stats().gaps);
        }

        #[test]
        fn dropped_readings_come_back_exactly(
            len in 2usize..60,
            keep in proptest::collection::vec(any::<bool>(), 60),
            start in 0u64..1_000_000,
            seq0 in 0u32..1_000,
            v0 in -100_000i32..100_000,
            step in -500i32..500,
            use_seq in any::<bool>(),
        ) {
            // Every value in the band: a line that crosses the band's edge has readings
            // that are alone outside it, and those are not used (see `outliers_*`).
            let c = FillConfig {
                use_seq,
                max_gap_ms: 100_000,
                band: EVERYTHING,
                ..FillConfig::DEFAULT
            };
            let mut f = GapFiller::<4>::try_new(c).unwrap();
            let full: Vec<Record> = (0..len)
                .map(|i| m(1, seq0 + i as u32, start + 1_000 * i as u64, v0 + step * i as i32))
                .collect();
            let input: Vec<Record> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i == 0 || *i == len - 1 || keep[*i])
                .map(|(_, r)| *r)
                .collect();
            let out = records(&run(&mut f, &input));
            prop_assert_eq!(out.len(), full.len());
            for (got, want) in out.iter().zip(&full) {
                if got.is_synthetic() {
                    prop_assert_eq!(got.reading, want.reading);
                    prop_assert!(got.flags.contains(Flag::Synthetic));
                } else {
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(f.stats().filled as usize, len - input.len());
        }
    }

    #[test]
    fn a_bad_neighbour_gives_no_value_to_the_fill() {
        let rec = |seq: u32, t: f64, q: Quality| {
            Record::measured(
                Reading::new(1, 1, seq, u64::from(seq) * 1000, Celsius::from_num(t)),
                q,
                Flags::EMPTY,
            )
        };
        let mut f: GapFiller<8> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
        let mut fills = Vec::new();
        let mut gaps = 0;
        for r in [
            rec(0, 52.0, Quality::Good),
            rec(2, 900.0, Quality::Bad),
            rec(4, 53.0, Quality::Good),
            rec(5, -300.0, Quality::Bad),
            rec(7, -400.0, Quality::Bad),
        ] {
            for e in f.push(r) {
                match e {
                    GapEvent::Record(r) if r.is_synthetic() => {
                        fills.push((r.reading.seq, r.reading.celsius))
                    }
                    GapEvent::Gap { .. } => gaps += 1,
                    _ => {}
                }
            }
        }
        let c = |t: f64| Celsius::from_num(t);
        // Seq 1 carries 52 forward; seq 3 lies on the line from 52 (seq 0, the nearest
        // trustworthy reading before the gap) to 53; seq 6, between two bad readings, carries
        // 53 (seq 4) forward.
        assert_eq!(fills, [(1, c(52.0)), (3, c(52.75)), (6, c(53.0))]);
        assert_eq!(gaps, 3);
        // With nothing trustworthy in reach, the gap is reported and left unfilled.
        let mut f: GapFiller<8> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
        let ev = run(
            &mut f,
            &[rec(0, 900.0, Quality::Bad), rec(2, -300.0, Quality::Bad)],
        );
        assert!(matches!(ev[1], GapEvent::Gap { missing: 1, .. }));
        assert_eq!(records(&ev).len(), 2);
    }

    /// A measured record at 1 s intervals with the quality its flags give; `v` in 1/256 °C.
    fn flagged(seq: u32, v: i32, extra: &[Flag]) -> Record {
        let t = Celsius::from_bits(v);
        let (lo, hi) = FillConfig::DEFAULT.band;
        let mut flags = Flags::EMPTY;
        if t < lo || t > hi {
            flags.insert(Flag::OutOfBand);
        }
        for f in extra {
            flags.insert(*f);
        }
        Record::measured(
            Reading::new(1, 1, seq, u64::from(seq) * 1_000, t),
            flags.quality(),
            flags,
        )
    }

    fn sources(ev: &[GapEvent]) -> Vec<(Option<u32>, Option<u32>)> {
        records(ev)
            .iter()
            .filter_map(|r| match r.origin {
                Origin::Synthetic(s) => Some((s.before.map(|k| k.seq), s.after.map(|k| k.seq))),
                Origin::Measured => None,
            })
            .collect()
    }

    #[test]
    fn an_isolated_outlier_gives_no_value_to_the_fills_next_to_it() {
        // 52 °C = 13_312, 60 °C = 15_360 (out of band, alone), 53 °C = 13_568.
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let ev = run(
            &mut f,
            &[
                flagged(0, 13_312, &[]),
                flagged(1, 15_360, &[]),
                flagged(3, 13_568, &[]),
            ],
        );
        // Seq 2 lies on the line from seq 0 to seq 3, not halfway to 60 °C.
        assert_eq!(fills(&ev), [(2, 2_000, 13_483)]);
        assert_eq!(sources(&ev), [(Some(0), Some(3))]);
        // The outlier after the gap: the fill carries the reading before it.
        let ev = run(
            &mut f,
            &[
                flagged(0, 13_312, &[]),
                flagged(2, 15_360, &[]),
                flagged(3, 13_568, &[]),
            ],
        );
        assert_eq!(fills(&ev), [(1, 1_000, 13_312)]);
        assert_eq!(sources(&ev), [(Some(0), None)]);
        // A spike inside the band, or an implausible value, never anchors either.
        for extra in [Flag::Spike, Flag::Implausible] {
            let ev = run(
                &mut f,
                &[
                    flagged(0, 13_312, &[]),
                    flagged(1, 13_900, &[extra]),
                    flagged(3, 13_568, &[]),
                ],
            );
            assert_eq!(fills(&ev), [(2, 2_000, 13_483)], "{extra:?}");
            let ev = run(
                &mut f,
                &[flagged(0, 13_312, &[]), flagged(2, 13_900, &[extra])],
            );
            assert_eq!(fills(&ev), [(1, 1_000, 13_312)], "{extra:?}");
        }
        // LOCF carries the trustworthy value, not the outlier's.
        let mut f = Tiny::try_new(cfg(FillMethod::Locf)).unwrap();
        let ev = run(
            &mut f,
            &[
                flagged(0, 13_312, &[]),
                flagged(1, 15_360, &[]),
                flagged(3, 13_568, &[]),
            ],
        );
        assert_eq!(fills(&ev), [(2, 2_000, 13_312)]);
        // A trustworthy reading further back than one maximum gap is out of reach.
        let c = FillConfig {
            max_gap_ms: 2_000,
            ..FillConfig::DEFAULT
        };
        let mut f = Tiny::try_new(c).unwrap();
        let ev = run(
            &mut f,
            &[
                flagged(0, 13_312, &[]),
                flagged(2, 15_360, &[]),
                flagged(4, 13_568, &[]),
            ],
        );
        assert_eq!(fills(&ev), [(1, 1_000, 13_312), (3, 3_000, 13_568)]);
        assert_eq!(sources(&ev), [(Some(0), None), (None, Some(4))]);
    }

    proptest! {
        /// A flat signal with noise of ±`noise`, isolated spikes far out of the band, and
        /// readings lost around them: every fill stays within the signal's own noise of the
        /// truth (twice the noise: the fill's anchors and the truth each stray by up to it),
        /// and no fill names a spike as its source.
        #[test]
        fn outliers_next_to_gaps_do_not_pull_fills(
            level in 13_000i32..13_900,
            noise in 0i32..64,
            kinds in proptest::collection::vec(0u8..10, 2..80),
            jitter in proptest::collection::vec(-1_000i32..=1_000, 80),
            spikes in proptest::collection::vec((any::<bool>(), 300i32..5_000), 80),
            method in proptest::sample::select(vec![
                FillMethod::Linear,
                FillMethod::Locf,
                FillMethod::Stochastic,
            ]),
        ) {
            let c = FillConfig { method, max_gap_ms: 100_000, seed: 9, ..FillConfig::DEFAULT };
            let (lo, hi) = (c.band.0.to_bits(), c.band.1.to_bits());
            let truth: Vec<i32> = (0..kinds.len())
                .map(|i| level + jitter[i] * noise / 1_000)
                .collect();
            // 0..=1: lost; 2: a spike; else kept. Between two spikes one reading in the
            // band is always kept, and the first and last readings are kept.
            let mut input = Vec::new();
            let mut spike_keys = Vec::new();
            let mut kept_since_spike = true;
            for (i, k) in kinds.iter().enumerate() {
                let edge = i == 0 || i + 1 == kinds.len();
                let seq = i as u32;
                if *k == 2 && kept_since_spike && !edge {
                    let (up, excess) = spikes[i];
                    let v = if up { hi + excess } else { lo - excess };
                    let r = flagged(seq, v, &[]);
                    spike_keys.push(r.reading.key());
                    input.push(r);
                    kept_since_spike = false;
                } else if *k >= 2 || edge {
                    input.push(flagged(seq, truth[i], &[]));
                    kept_since_spike = true;
                }
            }
            let mut f = GapFiller::<8>::try_new(c).unwrap();
            let out = records(&run(&mut f, &input));
            let bound = if method == FillMethod::Stochastic { 4 * noise } else { 2 * noise };
            let mut made = 0;
            for r in out.iter().filter(|r| r.is_synthetic()) {
                made += 1;
                let want = truth[r.reading.seq as usize];
                let got = r.reading.celsius.to_bits();
                prop_assert!((got - want).abs() <= bound, "{got} for {want} ± {bound}: {r:?}");
                let Origin::Synthetic(src) = r.origin else { unreachable!() };
                for k in [src.before, src.after].into_iter().flatten() {
                    prop_assert!(!spike_keys.contains(&k), "{r:?} from a spike");
                }
            }
            // Spikes are kept, so every lost reading, and only those, is filled.
            prop_assert_eq!(made, kinds.len() - input.len());
        }
    }

    fn near_band_record() -> impl Strategy<Value = Record> {
        (
            0u32..40,
            12_000i32..15_000,
            any::<bool>(),
            any::<bool>(),
            0u32..4,
        )
            .prop_map(|(step, v, spike, bad, sensor)| {
                let mut r = flagged(step, v, if spike { &[Flag::Spike] } else { &[] });
                if bad {
                    r.quality = Quality::Bad;
                }
                r.reading.sensor = u32::from(sensor == 0) + 1;
                r
            })
    }

    proptest! {
        /// A filler restored from the state of another goes on exactly like the one that
        /// never stopped: what a checkpoint needs to resume a run.
        #[test]
        fn a_restored_filler_goes_on_like_the_uninterrupted_one(
            steps in proptest::collection::vec(near_band_record(), 0..60),
            split in 0usize..60,
            method in proptest::sample::select(FillMethod::ALL.to_vec()),
        ) {
            // Increasing seqs and times, with gaps of up to 3 readings.
            let mut seq = 0;
            let recs: Vec<Record> = steps
                .into_iter()
                .map(|mut r| {
                    seq += 1 + r.reading.seq % 4;
                    r.reading.seq = seq;
                    r.reading.timestamp = u64::from(seq) * 1_000;
                    r
                })
                .collect();
            let c = FillConfig { method, max_gap_ms: 3_000, seed: 4, ..FillConfig::DEFAULT };
            let mut whole = GapFiller::<3>::try_new(c).unwrap();
            let mut want = Vec::new();
            for r in &recs {
                want.extend(whole.push(*r));
            }
            let split = split.min(recs.len());
            let mut first = GapFiller::<3>::try_new(c).unwrap();
            let mut got = Vec::new();
            for r in &recs[..split] {
                got.extend(first.push(*r));
            }
            let mut second = GapFiller::<3>::try_new(c).unwrap();
            second.restore(first.state());
            prop_assert_eq!(second.state(), first.state());
            for r in &recs[split..] {
                got.extend(second.push(*r));
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_sustained_excursion_anchors_fills() {
        // 57 °C = 14_592, 58 °C = 14_848: three readings above the band in a row are real.
        let mut f = Tiny::try_new(cfg(FillMethod::Linear)).unwrap();
        let ev = run(
            &mut f,
            &[
                flagged(0, 13_312, &[]),
                flagged(1, 14_592, &[]),
                flagged(3, 14_848, &[]),
                flagged(5, 13_312, &[]),
            ],
        );
        // Inside the excursion, and at its end, fills use it.
        assert_eq!(fills(&ev), [(2, 2_000, 14_720), (4, 4_000, 14_080)]);
        assert_eq!(sources(&ev), [(Some(1), Some(3)), (Some(3), Some(5))]);
        // Readings on opposite sides of the band are no excursion.
        let ev = run(
            &mut f,
            &[
                flagged(0, 13_312, &[]),
                flagged(1, 14_592, &[]),
                flagged(3, 12_000, &[]),
                flagged(4, 13_312, &[]),
            ],
        );
        assert_eq!(fills(&ev), [(2, 2_000, 13_312)]);
        assert_eq!(sources(&ev), [(Some(0), None)]);
    }
}
