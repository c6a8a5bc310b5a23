//! Validation: a quality and the flags that explain it, in the vocabulary of the SaQC
//! quality-control system.
//!
//! Validation never changes a value. An out-of-band reading may be a machine that really is
//! overheating, so it is kept and flagged, not clipped. Only a value outside the sensor's
//! physical range is called bad, because no real temperature produced it.
//!
//! The spike and stuck checks look at the readings before this one, so they are only
//! reproducible when readings arrive in time order: run the validator after the reorder
//! buffer (the host does), or on samples that are produced in order (the edge does).

use core::fmt;

use heapless::Deque;
use serde::{Deserialize, Serialize};

use crate::quality::{Flag, Flags};
use crate::reading::{Celsius, Reading};

/// Why a [`ValidateConfig`] cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidateConfigError {
    /// The band's low end is above its high end.
    ReversedBand,
    /// The physical range's low end is above its high end.
    ReversedPhysicalRange,
    /// The band lies partly outside the physical range.
    BandOutsidePhysicalRange,
    /// The rate limit is zero or negative.
    NonPositiveRate,
    /// The stuck check needs at least two samples.
    StuckWindowTooShort,
    /// The stuck tolerance is negative.
    NegativeStuckTolerance,
}

impl fmt::Display for ValidateConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReversedBand => "the band's low end is above its high end",
            Self::ReversedPhysicalRange => "the physical range's low end is above its high end",
            Self::BandOutsidePhysicalRange => "the band lies outside the physical range",
            Self::NonPositiveRate => "the spike rate limit must be positive",
            Self::StuckWindowTooShort => "the stuck window needs at least 2 samples",
            Self::NegativeStuckTolerance => "the stuck tolerance must not be negative",
        })
    }
}

impl core::error::Error for ValidateConfigError {}

/// The limits a [`Validator`] checks against.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ValidateConfig, ValidateConfigError};
/// let c = ValidateConfig::DEFAULT;
/// assert_eq!(c.band, (Celsius::from_num(50), Celsius::from_num(55)));
///
/// let reversed = ValidateConfig {
///     band: (Celsius::from_num(55), Celsius::from_num(50)),
///     ..ValidateConfig::DEFAULT
/// };
/// assert_eq!(reversed.check(), Err(ValidateConfigError::ReversedBand));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateConfig {
    /// The valid band, inclusive at both ends.
    pub band: (Celsius, Celsius),
    /// The sensor's physical range, inclusive; outside it a value is implausible.
    pub physical: (Celsius, Celsius),
    /// The largest plausible rate of change, in °C per second; faster is a spike.
    pub max_rate_per_s: Celsius,
    /// How many consecutive samples form a flat line (at most the validator's `K`).
    pub stuck_samples: u16,
    /// The largest spread, max − min, that still counts as flat.
    pub stuck_tolerance: Celsius,
}

impl ValidateConfig {
    /// Band 50–55 °C; physical range −55…+125 °C (TMP105/LM75 class); spikes above
    /// 10 °C/s; stuck when 30 samples in a row are exactly equal.
    pub const DEFAULT: ValidateConfig = ValidateConfig {
        band: (Celsius::const_from_int(50), Celsius::const_from_int(55)),
        physical: (Celsius::const_from_int(-55), Celsius::const_from_int(125)),
        max_rate_per_s: Celsius::const_from_int(10),
        stuck_samples: 30,
        stuck_tolerance: Celsius::ZERO,
    };

    /// Checks that the limits make sense together.
    pub const fn check(&self) -> Result<(), ValidateConfigError> {
        let (lo, hi) = (self.band.0.to_bits(), self.band.1.to_bits());
        let (plo, phi) = (self.physical.0.to_bits(), self.physical.1.to_bits());
        if lo > hi {
            Err(ValidateConfigError::ReversedBand)
        } else if plo > phi {
            Err(ValidateConfigError::ReversedPhysicalRange)
        } else if lo < plo || hi > phi {
            Err(ValidateConfigError::BandOutsidePhysicalRange)
        } else if self.max_rate_per_s.to_bits() <= 0 {
            Err(ValidateConfigError::NonPositiveRate)
        } else if self.stuck_samples < 2 {
            Err(ValidateConfigError::StuckWindowTooShort)
        } else if self.stuck_tolerance.to_bits() < 0 {
            Err(ValidateConfigError::NegativeStuckTolerance)
        } else {
            Ok(())
        }
    }

    /// True when `t` lies inside the band.
    pub const fn in_band(&self, t: Celsius) -> bool {
        t.to_bits() >= self.band.0.to_bits() && t.to_bits() <= self.band.1.to_bits()
    }
}

impl Default for ValidateConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Checks readings of one stream in time order; the spike and stuck checks remember the last
/// `K` values in a fixed [`heapless::Deque`].
///
/// A reading from another sensor or session starts the history afresh.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, Flag, Quality, Reading, ValidateConfig, Validator};
/// let mut v: Validator<32> = Validator::try_new(ValidateConfig::DEFAULT).unwrap();
/// let ok = v.check(&Reading::new(1, 1, 0, 0, Celsius::from_num(52)));
/// assert_eq!(ok.quality(), Quality::Good);
///
/// let hot = v.check(&Reading::new(1, 1, 1, 1_000, Celsius::from_num(58)));
/// assert!(hot.contains(Flag::OutOfBand));
/// assert_eq!(hot.quality(), Quality::Doubtful);
///
/// let broken = v.check(&Reading::new(1, 1, 2, 2_000, Celsius::from_num(900)));
/// assert!(broken.contains(Flag::Implausible));
/// assert_eq!(broken.quality(), Quality::Bad);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Validator<const K: usize> {
    config: ValidateConfig,
    stream: Option<(u32, u32)>,
    last: Option<(u64, Celsius)>,
    history: Deque<Celsius, K>,
    /// How many values in a row, ending with the last one, were exactly equal.
    equal_run: u16,
}

impl<const K: usize> Validator<K> {
    /// A validator, or why `config` cannot be used with a history of `K` samples.
    pub const fn try_new(config: ValidateConfig) -> Result<Self, ValidateConfigError> {
        if let Err(e) = config.check() {
            return Err(e);
        }
        if config.stuck_samples as usize > K {
            return Err(ValidateConfigError::StuckWindowTooShort);
        }
        Ok(Self {
            config,
            stream: None,
            last: None,
            history: Deque::new(),
            equal_run: 0,
        })
    }

    /// The limits in use.
    pub const fn config(&self) -> &ValidateConfig {
        &self.config
    }

    /// Forgets the history, as at a new session.
    pub fn reset(&mut self) {
        self.stream = None;
        self.last = None;
        self.history.clear();
        self.equal_run = 0;
    }

    /// Checks the next reading of the stream and returns its flags (see [`Flags::quality`]).
    pub fn check(&mut self, r: &Reading) -> Flags {
        let stream = (r.sensor, r.session);
        if self.stream != Some(stream) {
            self.reset();
            self.stream = Some(stream);
        }
        let c = &self.config;
        let mut flags = Flags::EMPTY;
        let t = r.celsius;
        if t < c.physical.0 || t > c.physical.1 {
            // Nothing about an impossible value says anything about the next one.
            return flags.with(Flag::Implausible).with_band(c, t);
        }
        flags = flags.with_band(c, t);
        if let Some((ts, prev)) = self.last {
            let dt_ms = r.timestamp.abs_diff(ts);
            let delta = (i64::from(t.to_bits()) - i64::from(prev.to_bits())).unsigned_abs();
            let rate = c.max_rate_per_s.to_bits() as u64;
            // `delta × 1000 > rate × dt`. For usual steps and periods both products fit 32
            // bits, and a Cortex-M0 has no 64-bit multiply: the exact 64-bit, saturating
            // comparison is the fallback.
            let spike = match (
                u32::try_from(delta),
                u32::try_from(dt_ms),
                u32::try_from(rate),
            ) {
                (Ok(d), Ok(dt), Ok(r)) if d < 4_294_967 && (dt | r) >> 16 == 0 => {
                    d * 1_000 > r * dt
                }
                _ => delta.saturating_mul(1_000) > rate.saturating_mul(dt_ms),
            };
            if spike {
                flags.insert(Flag::Spike);
            }
        }
        let repeated = self.last.is_some_and(|(_, prev)| prev == t);
        self.equal_run = if repeated {
            self.equal_run.saturating_add(1)
        } else {
            1
        };
        self.last = Some((r.timestamp, t));
        let need = c.stuck_samples;
        let stuck = if c.stuck_tolerance == Celsius::ZERO {
            // An exact flat line needs no history: the run length says it. The configuration
            // never changes, so the history is not kept at all.
            self.equal_run >= need
        } else {
            if self.history.is_full() {
                self.history.pop_front();
            }
            // Cannot fail: a full history was just shortened. A zero-capacity history never
            // holds.
            let _ = self.history.push_back(t);
            let need = usize::from(need);
            self.history.len() >= need && {
                let (mut lo, mut hi) = (t, t);
                for v in self.history.iter().rev().take(need) {
                    lo = lo.min(*v);
                    hi = hi.max(*v);
                }
                hi - lo <= c.stuck_tolerance
            }
        };
        if stuck {
            flags.insert(Flag::Stuck);
        }
        flags
    }
}

impl Flags {
    const fn with_band(self, c: &ValidateConfig, t: Celsius) -> Self {
        if c.in_band(t) {
            self
        } else {
            self.with(Flag::OutOfBand)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quality, UnknownName};

    type Tiny = Validator<4>;

    fn cfg() -> ValidateConfig {
        ValidateConfig {
            stuck_samples: 3,
            ..ValidateConfig::DEFAULT
        }
    }

    fn r(seq: u32, ts: u64, t: f64) -> Reading {
        Reading::new(1, 1, seq, ts, Celsius::from_num(t))
    }

    #[test]
    fn band_edges_are_inclusive() {
        let mut v = Tiny::try_new(cfg()).unwrap();
        assert!(!v.check(&r(0, 0, 50.0)).contains(Flag::OutOfBand));
        assert!(!v.check(&r(1, 1000, 55.0)).contains(Flag::OutOfBand));
        assert!(v.check(&r(2, 2000, 55.00390625)).contains(Flag::OutOfBand));
        assert!(v.check(&r(3, 3000, 49.99609375)).contains(Flag::OutOfBand));
    }

    #[test]
    fn spike_uses_rate_over_elapsed_time() {
        let mut v = Tiny::try_new(cfg()).unwrap();
        v.check(&r(0, 0, 50.0));
        // 10 °C in 1 s is exactly the limit: not a spike.
        assert!(!v.check(&r(1, 1000, 60.0)).contains(Flag::Spike));
        // 10.5 °C in 1 s is.
        assert!(v.check(&r(2, 2000, 49.5)).contains(Flag::Spike));
        // 20 °C over 3 s is not.
        assert!(!v.check(&r(3, 5000, 69.5)).contains(Flag::Spike));
    }

    #[test]
    fn stuck_needs_k_equal_samples() {
        let mut v = Tiny::try_new(cfg()).unwrap();
        assert!(!v.check(&r(0, 0, 52.0)).contains(Flag::Stuck));
        assert!(!v.check(&r(1, 1000, 52.0)).contains(Flag::Stuck));
        assert!(v.check(&r(2, 2000, 52.0)).contains(Flag::Stuck));
        assert!(!v.check(&r(3, 3000, 52.0625)).contains(Flag::Stuck));
    }

    #[test]
    fn stuck_with_a_tolerance_looks_at_the_spread() {
        let mut v = Tiny::try_new(ValidateConfig {
            stuck_tolerance: Celsius::from_num(0.125),
            ..cfg()
        })
        .unwrap();
        assert!(!v.check(&r(0, 0, 52.0)).contains(Flag::Stuck));
        assert!(!v.check(&r(1, 1000, 52.125)).contains(Flag::Stuck));
        assert!(v.check(&r(2, 2000, 52.0625)).contains(Flag::Stuck));
        assert!(
            !v.check(&r(3, 3000, 52.25)).contains(Flag::Stuck),
            "spread 0.1875"
        );
    }

    #[test]
    fn implausible_is_bad_and_value_untouched() {
        let mut v = Tiny::try_new(cfg()).unwrap();
        let reading = r(0, 0, -100.0);
        let f = v.check(&reading);
        assert_eq!(f.quality(), Quality::Bad);
        assert!(f.contains(Flag::Implausible) && f.contains(Flag::OutOfBand));
        assert_eq!(reading.celsius, Celsius::from_num(-100));
    }

    #[test]
    fn new_session_resets_history() {
        let mut v = Tiny::try_new(cfg()).unwrap();
        v.check(&r(0, 0, 52.0));
        v.check(&r(1, 1000, 52.0));
        let other = Reading::new(1, 2, 0, 2000, Celsius::from_num(52));
        assert!(!v.check(&other).contains(Flag::Stuck));
    }

    #[test]
    fn bad_configs_are_refused() {
        let too_long = ValidateConfig {
            stuck_samples: 5,
            ..ValidateConfig::DEFAULT
        };
        assert_eq!(
            Tiny::try_new(too_long).unwrap_err(),
            ValidateConfigError::StuckWindowTooShort
        );
        let rate = ValidateConfig {
            max_rate_per_s: Celsius::ZERO,
            ..cfg()
        };
        assert_eq!(rate.check(), Err(ValidateConfigError::NonPositiveRate));
        let outside = ValidateConfig {
            band: (Celsius::from_num(-60), Celsius::from_num(0)),
            ..cfg()
        };
        assert_eq!(
            outside.check(),
            Err(ValidateConfigError::BandOutsidePhysicalRange)
        );
    }

    #[test]
    fn flag_names_round_trip() {
        for f in Flag::ALL {
            assert_eq!(f.name().parse(), Ok(f));
            assert_eq!(f.to_string(), f.name());
        }
        assert_eq!("normal".parse::<Flag>(), Err(UnknownName { of: "flag" }));
        let all = Flag::ALL.into_iter().fold(Flags::EMPTY, Flags::with);
        assert_eq!(
            std::format!("{all}"),
            "out_of_band;implausible;spike;stuck;late;duplicate;synthetic"
        );
    }

    proptest::proptest! {
        /// The stuck flag agrees with a scan of all values so far, for exact and tolerant flat
        /// lines alike.
        #[test]
        fn stuck_agrees_with_a_scan(values in proptest::collection::vec(0i32..4, 0..200), tol in 0i32..3) {
            let config = ValidateConfig { stuck_tolerance: Celsius::from_bits(tol), ..cfg() };
            let mut v = Tiny::try_new(config).unwrap();
            let mut seen = std::vec::Vec::new();
            for (i, bits) in values.into_iter().enumerate() {
                let t = Celsius::from_num(52) + Celsius::from_bits(bits);
                seen.push(t);
                let got = v.check(&Reading::new(1, 1, i as u32, i as u64 * 1000, t)).contains(Flag::Stuck);
                let want = seen.len() >= 3 && {
                    let tail = &seen[seen.len() - 3..];
                    tail.iter().max().unwrap().to_bits() - tail.iter().min().unwrap().to_bits() <= tol
                };
                proptest::prop_assert_eq!(got, want, "at {}", i);
            }
        }

        /// The spike flag is exactly `|Δ| × 1000 > rate × dt`, at and around the limit, for
        /// steps and periods that take the 32-bit path and for those that do not.
        #[test]
        fn spike_is_exact_at_the_limit(
            rate in proptest::prop_oneof![1i32..3_000, 60_000i32..80_000],
            dt in proptest::prop_oneof![
                proptest::strategy::Strategy::prop_map(1u64..70, |k| k * 1000),
                1u64..70_000,
                60_000u64..1 << 40,
            ],
            nudge in -2i64..=2,
            up in proptest::bool::ANY,
        ) {
            let config = ValidateConfig { max_rate_per_s: Celsius::from_bits(rate), ..cfg() };
            let mut v = Tiny::try_new(config).unwrap();
            // The step at the limit, nudged, within the physical range (−55…+125 °C).
            let limit = (i128::from(rate) * i128::from(dt) / 1000) as i64 + nudge;
            let step = limit.clamp(0, 170 * 256);
            let start = if up { -50 * 256 } else { 120 * 256 };
            let end = if up { start + step } else { start - step } as i32;
            v.check(&Reading::new(1, 1, 0, 0, Celsius::from_bits(start as i32)));
            let got = v.check(&Reading::new(1, 1, 1, dt, Celsius::from_bits(end))).contains(Flag::Spike);
            let want = i128::from(step) * 1000 > i128::from(rate) * i128::from(dt);
            proptest::prop_assert_eq!(got, want);
        }
    }
}
