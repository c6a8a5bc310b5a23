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
//! - Fills depend only on the configuration and on readings near the gap, never on where a run
//!   started or how the input was chunked, so a replay gives the same values as the full run.
//!   The stochastic noise is drawn from a ChaCha8 generator seeded from
//!   `(seed, sensor, session, seq, timestamp)` of the reading before the gap.
//!
//! **Replay windows.** The filler only sees what it is given, so a gap at the edge of a replay
//! window can only be found from the readings just outside it. A caller replaying
//! `[from, until]` therefore feeds the last reading before `from` and the first reading after
//! `until` as well, and drops every output record outside the window. The edge gaps are then
//! found, and their fills are computed and seeded from the same neighbours as in a full run.
//! A stochastic fill also scales its noise to the last `H` measured values before the gap, so
//! a caller who needs stochastic fills byte-identical to a full run feeds the `H` readings
//! before `from`.
//!
//! **Rounding.** All values are integers in units of 1/256 °C ([`Celsius::to_bits`]). Every
//! division rounds to the nearest integer, ties away from zero; timestamps of synthetic
//! readings round down to the millisecond.

use core::fmt;

use heapless::Deque;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::reading::{Celsius, Key, Origin, Reading, Record, Source};
use crate::validate::{Flag, Flags, Quality};

/// How a gap is filled.
///
/// # Examples
/// ```
/// use mend_core::FillMethod;
/// assert_eq!(FillMethod::default(), FillMethod::Linear);
/// assert_eq!(FillMethod::from_name("locf"), Some(FillMethod::Locf));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FillMethod {
    /// Straight line between the neighbours.
    #[default]
    Linear,
    /// Last observation carried forward.
    Locf,
    /// Seeded noise around the straight line, scaled to the local variability.
    Stochastic,
    /// Report the gap, fill nothing.
    None,
}

impl FillMethod {
    /// Every method, in documentation order.
    pub const ALL: [FillMethod; 4] = [
        FillMethod::Linear,
        FillMethod::Locf,
        FillMethod::Stochastic,
        FillMethod::None,
    ];

    /// `"linear"`, `"locf"`, `"stochastic"` or `"none"`.
    pub const fn name(self) -> &'static str {
        match self {
            FillMethod::Linear => "linear",
            FillMethod::Locf => "locf",
            FillMethod::Stochastic => "stochastic",
            FillMethod::None => "none",
        }
    }

    /// The inverse of [`FillMethod::name`].
    ///
    /// # Examples
    /// ```
    /// use mend_core::FillMethod;
    /// assert_eq!(FillMethod::from_name("stochastic"), Some(FillMethod::Stochastic));
    /// assert_eq!(FillMethod::from_name("normal"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        FillMethod::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Why a [`FillConfig`] cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GapConfigError {
    /// The sampling period is zero.
    ZeroPeriod,
    /// The tolerance is not shorter than the period, so a missing reading could go unseen.
    ToleranceTooLarge,
    /// The maximum gap is shorter than one period, so every gap would be an outage.
    MaxGapShorterThanPeriod,
    /// The maximum gap holds more than `u32::MAX` periods, too many readings to fill.
    MaxGapTooLong,
    /// The band's low end is above its high end.
    ReversedBand,
}

impl fmt::Display for GapConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ZeroPeriod => "the sampling period must not be zero",
            Self::ToleranceTooLarge => "the gap tolerance must be shorter than the period",
            Self::MaxGapShorterThanPeriod => "the maximum gap must be at least one period",
            Self::MaxGapTooLong => "the maximum gap must hold at most 4294967295 periods",
            Self::ReversedBand => "the band's low end is above its high end",
        })
    }
}

impl core::error::Error for GapConfigError {}

/// How gaps are found and filled.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, FillConfig, FillMethod, GapConfigError};
/// let c = FillConfig::DEFAULT;
/// assert_eq!((c.period_ms, c.tolerance_ms, c.max_gap_ms), (1_000, 500, 60_000));
/// assert_eq!(c.check(), Ok(()));
///
/// let band = (Celsius::from_num(50), Celsius::from_num(55));
/// assert_eq!(
///     FillConfig::try_new(FillMethod::Locf, 0, 0, 60_000, 0, true, band),
///     Err(GapConfigError::ZeroPeriod)
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillConfig {
    /// How gaps are filled.
    pub method: FillMethod,
    /// The sampling period, in ms.
    pub period_ms: u32,
    /// How much later than one period a reading may come before a time gap is seen, in ms.
    pub tolerance_ms: u32,
    /// The longest gap that is filled, in ms; a longer one, or one missing more than
    /// `max_gap_ms / period_ms` readings, is an outage.
    pub max_gap_ms: u64,
    /// The seed of the stochastic fill.
    pub seed: u64,
    /// Find gaps from seq jumps within a session (true), or from the clock only (false, for
    /// input without a sample counter).
    pub use_seq: bool,
    /// The valid band, inclusive; a synthetic value outside it is flagged out of band.
    pub band: (Celsius, Celsius),
}

impl FillConfig {
    /// Linear fills, period 1 s, tolerance 0.5 s, outages from 60 s, seed 0, seq gaps on,
    /// band 50–55 °C.
    pub const DEFAULT: FillConfig = FillConfig {
        method: FillMethod::Linear,
        period_ms: 1_000,
        tolerance_ms: 500,
        max_gap_ms: 60_000,
        seed: 0,
        use_seq: true,
        band: (Celsius::const_from_int(50), Celsius::const_from_int(55)),
    };

    /// A configuration from its parts, or why it cannot be used.
    pub const fn try_new(
        method: FillMethod,
        period_ms: u32,
        tolerance_ms: u32,
        max_gap_ms: u64,
        seed: u64,
        use_seq: bool,
        band: (Celsius, Celsius),
    ) -> Result<Self, GapConfigError> {
        let c = FillConfig {
            method,
            period_ms,
            tolerance_ms,
            max_gap_ms,
            seed,
            use_seq,
            band,
        };
        match c.check() {
            Ok(()) => Ok(c),
            Err(e) => Err(e),
        }
    }

    /// Checks that the limits make sense together.
    pub const fn check(&self) -> Result<(), GapConfigError> {
        if self.period_ms == 0 {
            Err(GapConfigError::ZeroPeriod)
        } else if self.tolerance_ms >= self.period_ms {
            Err(GapConfigError::ToleranceTooLarge)
        } else if self.max_gap_ms < self.period_ms as u64 {
            Err(GapConfigError::MaxGapShorterThanPeriod)
        } else if self.max_gap_ms / self.period_ms as u64 > u32::MAX as u64 {
            Err(GapConfigError::MaxGapTooLong)
        } else if self.band.0.to_bits() > self.band.1.to_bits() {
            Err(GapConfigError::ReversedBand)
        } else {
            Ok(())
        }
    }

    /// The most readings one gap may miss and still be filled: `max_gap_ms / period_ms`.
    pub const fn max_missing(&self) -> u64 {
        match self.max_gap_ms.checked_div(self.period_ms as u64) {
            Some(n) => n,
            None => 0,
        }
    }
}

impl Default for FillConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

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
    /// How many readings the outage swallowed (saturating at `u32::MAX`).
    pub missing: u32,
}

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
        missing: u32,
    },
    /// A gap longer than the maximum: nothing is filled.
    Outage(Outage),
}

/// What a [`GapFiller`] has found so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

/// Finds the gaps in one sensor's time-ordered records and fills them.
///
/// `H` is how many measured values the stochastic fill looks back on to measure the local
/// variability (readings of quality bad are left out of that history: an implausible value
/// says nothing about how the temperature varies). Every measured record, whatever its
/// quality, bounds a gap, but a fill takes no value from a bad (implausible) neighbour: next
/// to one, the fill carries the other neighbour's value, and between two bad neighbours the
/// gap is reported and left unfilled. Input records that are already synthetic pass through
/// and are not anchors. A record whose
/// key is not greater than the last anchor's passes through unchanged. A record of another
/// sensor starts afresh, with no gap before it.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, FillConfig, Flags, GapEvent, GapFiller, Quality, Reading, Record};
/// let m = |seq, ts, t| Record::measured(Reading::new(1, 1, seq, ts, Celsius::from_num(t)), Quality::Good, Flags::EMPTY);
/// let mut f: GapFiller<8> = GapFiller::try_new(FillConfig::DEFAULT).unwrap();
/// let mut out = Vec::new();
/// f.push(m(0, 0, 50), &mut |e| out.push(e));
/// f.push(m(4, 4_000, 54), &mut |e| out.push(e));
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
#[derive(Clone, Debug)]
pub struct GapFiller<const H: usize> {
    config: FillConfig,
    /// The last measured reading, and whether its quality was bad.
    anchor: Option<(Reading, bool)>,
    history: Deque<i32, H>,
    stats: GapStats,
}

impl<const H: usize> GapFiller<H> {
    /// A filler, or why `config` cannot be used.
    pub const fn try_new(config: FillConfig) -> Result<Self, GapConfigError> {
        if let Err(e) = config.check() {
            return Err(e);
        }
        Ok(Self {
            config,
            anchor: None,
            history: Deque::new(),
            stats: GapStats {
                gaps: 0,
                missing: 0,
                filled: 0,
                outages: 0,
                missing_in_outages: 0,
            },
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
        self.anchor = None;
        self.history.clear();
    }

    /// Ends the stream. Nothing is held back, so nothing is emitted; the state is reset.
    pub fn finish(&mut self) {
        self.reset();
    }

    /// Takes the next record and emits, in time order: the gap or outage before it (if any),
    /// the synthetic records filling that gap, then the record itself.
    pub fn push(&mut self, rec: Record, out: &mut impl FnMut(GapEvent)) {
        if rec.is_synthetic() {
            out(GapEvent::Record(rec));
            return;
        }
        let b = rec.reading;
        let b_bad = rec.quality == Quality::Bad;
        match self.anchor {
            Some((a, a_bad)) if a.sensor == b.sensor => {
                if b.key() <= a.key() {
                    out(GapEvent::Record(rec));
                    return;
                }
                self.between((&a, a_bad), (&b, b_bad), out);
            }
            Some(_) => self.history.clear(),
            None => {}
        }
        self.anchor = Some((b, b_bad));
        if !b_bad {
            if self.history.is_full() {
                self.history.pop_front();
            }
            // Cannot fail: a full history was just shortened; a zero-capacity one never holds.
            let _ = self.history.push_back(b.celsius.to_bits());
        }
        out(GapEvent::Record(rec));
    }

    /// Finds and handles the gap between anchor `a` and the next measured reading `b`, where
    /// `b.key() > a.key()`.
    fn between(
        &mut self,
        (a, a_bad): (&Reading, bool),
        (b, b_bad): (&Reading, bool),
        out: &mut impl FnMut(GapEvent),
    ) {
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
            return;
        }
        let (before, after) = (a.key(), b.key());
        let missing32 = u32::try_from(missing).unwrap_or(u32::MAX);
        if dt > c.max_gap_ms || missing > c.max_missing() {
            self.stats.outages = self.stats.outages.saturating_add(1);
            self.stats.missing_in_outages = self.stats.missing_in_outages.saturating_add(missing);
            out(GapEvent::Outage(Outage {
                sensor: a.sensor,
                session: a.session,
                before,
                after,
                missing: missing32,
            }));
            return;
        }
        self.stats.gaps = self.stats.gaps.saturating_add(1);
        self.stats.missing = self.stats.missing.saturating_add(missing);
        out(GapEvent::Gap {
            before,
            after,
            missing: missing32,
        });
        let method = c.method;
        if method == FillMethod::None || (a_bad && b_bad) {
            return;
        }
        let (mut rng, scale) = if method == FillMethod::Stochastic {
            (Some(gap_rng(c.seed, a)), self.variability())
        } else {
            (None, 0)
        };
        let steps = u128::from(missing) + 1;
        // A bad neighbour gives no value: carry the other one across the gap.
        let (va, vb) = match (a_bad, b_bad) {
            (true, _) => (b.celsius.to_bits(), b.celsius.to_bits()),
            (_, true) => (a.celsius.to_bits(), a.celsius.to_bits()),
            _ => (a.celsius.to_bits(), b.celsius.to_bits()),
        };
        let (va, vb) = (i128::from(va), i128::from(vb));
        let source = Source {
            method,
            before: Some(before),
            after: Some(after),
        };
        let (lo, hi) = (c.band.0, c.band.1);
        for k in 1..=missing32 {
            let k128 = u128::from(k);
            let offset = (u128::from(dt) * k128).checked_div(steps).unwrap_or(0);
            let timestamp = a
                .timestamp
                .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX));
            let bits = match method {
                FillMethod::Locf => va,
                _ => {
                    let linear = va + div_round((vb - va) * k128 as i128, steps as i128);
                    match rng.as_mut() {
                        Some(rng) => linear + noise(rng, scale),
                        None => linear,
                    }
                }
            };
            let celsius = Celsius::from_bits(clamp_i32(bits));
            let mut flags = Flags::EMPTY.with(Flag::Synthetic);
            if celsius < lo || celsius > hi {
                flags.insert(Flag::OutOfBand);
            }
            let reading = Reading::new(
                a.sensor,
                a.session,
                a.seq.wrapping_add(k),
                timestamp,
                celsius,
            );
            self.stats.filled = self.stats.filled.saturating_add(1);
            out(GapEvent::Record(Record {
                reading,
                quality: flags.quality(),
                flags,
                origin: Origin::Synthetic(source),
            }));
        }
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

/// The generator of one gap, seeded from the configuration's seed and the reading before it.
fn gap_rng(seed: u64, a: &Reading) -> ChaCha8Rng {
    let mut bytes = [0u8; 32];
    let parts = seed
        .to_le_bytes()
        .into_iter()
        .chain(a.sensor.to_le_bytes())
        .chain(a.session.to_le_bytes())
        .chain(a.seq.to_le_bytes())
        .chain(a.timestamp.to_le_bytes());
    for (dst, src) in bytes.iter_mut().zip(parts) {
        *dst = src;
    }
    ChaCha8Rng::from_seed(bytes)
}

/// A uniform integer in `-scale..=scale`.
fn noise(rng: &mut ChaCha8Rng, scale: u64) -> i128 {
    // `scale` is at most 2^32, so the span fits and the product fits in u128.
    let span = u128::from(scale) * 2 + 1;
    let draw = (u128::from(rng.next_u64()) * span) >> 64;
    draw as i128 - i128::from(scale)
}

/// `num / den` rounded to nearest, ties away from zero; `den` must be positive (0 gives 0).
pub(crate) fn div_round(num: i128, den: i128) -> i128 {
    let (Some(q), Some(r)) = (num.checked_div(den), num.checked_rem(den)) else {
        return 0;
    };
    if r.unsigned_abs().saturating_mul(2) >= den.unsigned_abs() {
        if num < 0 {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    }
}

fn clamp_i32(v: i128) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
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
            f.push(*r, &mut |e| out.push(e));
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
            f.push(r, &mut |e| out.push(e));
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
            assert_eq!(FillMethod::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let c = FillConfig {
            method: FillMethod::Stochastic,
            period_ms: 1,
            tolerance_ms: 0,
            max_gap_ms: u64::from(u32::MAX),
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
            f.push(r, &mut |_| n += 1);
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
            let c = FillConfig { use_seq, max_gap_ms: 100_000, ..FillConfig::DEFAULT };
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
            f.push(r, &mut |e| match e {
                GapEvent::Record(r) if r.is_synthetic() => {
                    fills.push((r.reading.seq, r.reading.celsius))
                }
                GapEvent::Gap { .. } => gaps += 1,
                _ => {}
            });
        }
        let c = |t: f64| Celsius::from_num(t);
        // Seq 1 carries 52 forward, seq 3 carries 53 back; seq 6 lies between two bad
        // readings: reported, not filled.
        assert_eq!(fills, [(1, c(52.0)), (3, c(53.0))]);
        assert_eq!(gaps, 3);
    }
}
