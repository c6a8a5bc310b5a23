//! How a gap is filled: the settings every filler is checked against, and the fills of one
//! gap, made one at a time from a plan so that a gap of any length costs no memory.
//!
//! Every value is an integer in 1/256 °C, interpolated on time and rounded to nearest, ties
//! away from zero; the stochastic noise comes from a ChaCha8 generator seeded from the gap's
//! identity (see [`crate::GapFiller`] for the rules that choose the anchors).

use core::fmt;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::quality::{Flag, Flags};
use crate::reading::{div_round, Celsius, FillMethod, Origin, Reading, Record, Source};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// The fills of one gap between the measured readings `a` and `b`, the k-th at
/// `a + dt·k/steps`, made one at a time.
#[derive(Clone, Debug)]
pub(crate) struct Fills {
    pub(crate) a: Reading,
    pub(crate) dt: u64,
    pub(crate) steps: u128,
    pub(crate) lead: u128,
    pub(crate) span: u128,
    /// The values of the left and right anchors, in 1/256 °C.
    pub(crate) vl: i128,
    pub(crate) vr: i128,
    pub(crate) source: Source,
    pub(crate) band: (Celsius, Celsius),
    pub(crate) rng: Option<ChaCha8Rng>,
    pub(crate) scale: u64,
    /// The next fill, from 1.
    pub(crate) next: u64,
    /// How many fills there are.
    pub(crate) count: u64,
}

impl Iterator for Fills {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.next > self.count {
            return None;
        }
        let k = self.next;
        self.next += 1;
        let a = &self.a;
        let method = self.source.method;
        let k128 = u128::from(k);
        let offset = (u128::from(self.dt) * k128)
            .checked_div(self.steps)
            .unwrap_or(0);
        let timestamp = a
            .timestamp
            .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX));
        let bits = match method {
            FillMethod::Locf => self.vl,
            _ => {
                let line = if self.span == 0 {
                    // Equal timestamps: place the fills by seq instead.
                    lerp(self.vl, self.vr, k128, self.steps)
                } else {
                    lerp(
                        self.vl,
                        self.vr,
                        self.lead + u128::from(self.dt) * k128,
                        self.span,
                    )
                };
                match self.rng.as_mut() {
                    Some(rng) => line + noise(rng, self.scale),
                    None => line,
                }
            }
        };
        let celsius = Celsius::from_bits(clamp_i32(bits));
        let mut flags = Flags::EMPTY.with(Flag::Synthetic);
        if celsius < self.band.0 || celsius > self.band.1 {
            flags.insert(Flag::OutOfBand);
        }
        let reading = Reading::new(
            a.sensor,
            a.session,
            // Truncation is intended: a seq counts modulo 2^32.
            a.seq.wrapping_add(k as u32),
            timestamp,
            celsius,
        );
        Some(Record {
            reading,
            quality: flags.quality(),
            flags,
            origin: Origin::Synthetic(self.source),
        })
    }
}

/// `from + (to − from) × num / den`, rounded to nearest, ties away from zero; `num ≤ den`
/// and `den > 0`.
fn lerp(from: i128, to: i128, mut num: u128, mut den: u128) -> i128 {
    // The product below must fit: the difference is below 2^33, so keep `den` (and with it
    // `num`) below 2^80. Only absurd configurations come near; they lose a few low bits.
    while den >= 1 << 80 {
        num >>= 1;
        den >>= 1;
    }
    // Both fit in i128 now.
    from + div_round((to - from) * num as i128, den as i128)
}

/// The generator of one gap, seeded from the configuration's seed and the gap's identity:
/// the sensor, the session and the keys of the two measured readings around it. A gap is
/// filled the same wherever a run started and whatever was filled before it.
pub(crate) fn gap_rng(seed: u64, a: &Reading, b: &Reading) -> ChaCha8Rng {
    let mut bytes = [0u8; 32];
    let parts = seed
        .to_le_bytes()
        .into_iter()
        .chain(a.sensor.to_le_bytes())
        .chain(a.session.to_le_bytes())
        .chain(a.seq.to_le_bytes())
        .chain(a.timestamp.to_le_bytes())
        .chain(b.seq.to_le_bytes());
    for (dst, src) in bytes.iter_mut().zip(parts) {
        *dst = src;
    }
    let mut rng = ChaCha8Rng::from_seed(bytes);
    rng.set_stream(b.timestamp);
    rng
}

/// A uniform integer in `-scale..=scale`.
fn noise(rng: &mut ChaCha8Rng, scale: u64) -> i128 {
    // `scale` is at most 2^32, so the span fits and the product fits in u128.
    let span = u128::from(scale) * 2 + 1;
    let draw = (u128::from(rng.next_u64()) * span) >> 64;
    draw as i128 - i128::from(scale)
}

fn clamp_i32(v: i128) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}
