//! The data model: what a reading is, how readings are ordered, and how they are told apart.
//!
//! Two orders matter and they are deliberately different. *Time order* is `(timestamp, seq)`:
//! two readings with the same timestamp never tie, so sorting, heaps and merges are
//! deterministic. *Identity* is `(sensor, session, seq)`: the same reading received twice is
//! the same identity even when a corrupted clock gave it another timestamp, and two different
//! readings that happen to share a timestamp are never mistaken for one another.

use core::cmp::Ordering;
use core::fmt;
use core::str::FromStr;

use crate::quality::{Flags, Quality, UnknownName};
use serde::{Deserialize, Serialize};

/// How a gap is filled.
///
/// # Examples
/// ```
/// use mend_core::FillMethod;
/// assert_eq!(FillMethod::default(), FillMethod::Linear);
/// assert_eq!("locf".parse(), Ok(FillMethod::Locf));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
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
}

impl fmt::Display for FillMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FillMethod {
    type Err = UnknownName;

    /// The inverse of [`FillMethod::name`].
    ///
    /// # Examples
    /// ```
    /// use mend_core::FillMethod;
    /// assert_eq!("stochastic".parse(), Ok(FillMethod::Stochastic));
    /// assert!("normal".parse::<FillMethod>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        FillMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or(UnknownName { of: "fill method" })
    }
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

/// A temperature in degrees Celsius, as a signed 24.8 fixed-point number.
///
/// Why `I24F8`:
/// - the step is exactly 1/256 °C (0.0039 °C), finer than any common sensor: the TMP105 and
///   the DS18B20 resolve 1/16 °C, the LM75 1/8 °C, and 1/256 °C keeps every one of those
///   values exactly, with no rounding at all;
/// - the range is ±8 388 608 °C, far beyond the required −273…+2000 °C, so no arithmetic on a
///   single value can overflow;
/// - it is one `i32`, so a reading stays small in RAM and a typical value (50 °C = 12 800)
///   is three bytes on the wire as a postcard varint;
/// - sums of many values are exact in `i64` units of 1/256 °C, which is what makes
///   [`Aggregate`](crate::Aggregate) exact and independent of arrival order.
///
/// # Examples
/// ```
/// use mend_core::Celsius;
/// let t = Celsius::from_num(52.5);
/// assert_eq!(t.to_bits(), 13_440);
/// assert_eq!(Celsius::from_bits(1), Celsius::from_num(0.00390625));
/// ```
pub type Celsius = fixed::types::I24F8;

/// The time-order key of a reading: `(timestamp, seq)`, compared in that order.
///
/// # Examples
/// ```
/// use mend_core::Key;
/// let a = Key { timestamp: 1_000, seq: 7 };
/// let b = Key { timestamp: 1_000, seq: 8 };
/// assert!(a < b, "equal timestamps are ordered by seq");
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Key {
    /// Milliseconds on the session's clock.
    pub timestamp: u64,
    /// The sample counter of the session.
    pub seq: u32,
}

/// The identity of a reading: `(sensor, session, seq)`. Deduplication uses this and nothing
/// else.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, Reading};
/// let a = Reading::new(3, 1, 10, 5_000, Celsius::from_num(51));
/// let mut b = a;
/// b.timestamp += 1; // a damaged clock does not make it another reading
/// assert_eq!(a.identity(), b.identity());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Identity {
    /// The sensor that took the reading.
    pub sensor: u32,
    /// The power-up of the node that took it.
    pub session: u32,
    /// The sample counter within that session.
    pub seq: u32,
}

/// One temperature reading as measured.
///
/// `Reading` is ordered by [`Key`] first (`(timestamp, seq)`), then by sensor, session and
/// value, so that any two different readings have a definite, reproducible order.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, Reading};
/// let early = Reading::new(1, 1, 2, 1_000, Celsius::from_num(50));
/// let late = Reading::new(1, 1, 1, 2_000, Celsius::from_num(50));
/// assert!(early < late, "time comes before seq");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Reading {
    /// The sensor that took the reading.
    pub sensor: u32,
    /// The power-up of the node that took it, announced by its header frame.
    pub session: u32,
    /// The sample counter within the session, starting at 0.
    pub seq: u32,
    /// Milliseconds on the session's clock (see [`ClockKind`](crate::ClockKind)).
    pub timestamp: u64,
    /// The measured value, never overwritten by any stage.
    pub celsius: Celsius,
}

impl Reading {
    /// A reading from its parts.
    pub const fn new(
        sensor: u32,
        session: u32,
        seq: u32,
        timestamp: u64,
        celsius: Celsius,
    ) -> Self {
        Self {
            sensor,
            session,
            seq,
            timestamp,
            celsius,
        }
    }

    /// The time-order key `(timestamp, seq)`.
    pub const fn key(&self) -> Key {
        Key {
            timestamp: self.timestamp,
            seq: self.seq,
        }
    }

    /// The identity `(sensor, session, seq)`.
    pub const fn identity(&self) -> Identity {
        Identity {
            sensor: self.sensor,
            session: self.session,
            seq: self.seq,
        }
    }
}

impl PartialOrd for Reading {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Reading {
    fn cmp(&self, other: &Self) -> Ordering {
        // Lazily: the timestamp almost always decides, and a node compares readings on
        // every push.
        self.timestamp
            .cmp(&other.timestamp)
            .then_with(|| self.seq.cmp(&other.seq))
            .then_with(|| self.sensor.cmp(&other.sensor))
            .then_with(|| self.session.cmp(&other.session))
            .then_with(|| self.celsius.cmp(&other.celsius))
    }
}

/// Where a synthetic reading came from: the method and the neighbours it was computed from.
///
/// # Examples
/// ```
/// use mend_core::{FillMethod, Key, Source};
/// let s = Source {
///     method: FillMethod::Linear,
///     before: Some(Key { timestamp: 1_000, seq: 1 }),
///     after: Some(Key { timestamp: 4_000, seq: 4 }),
/// };
/// assert_eq!(s.method.name(), "linear");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// How the value was made.
    pub method: FillMethod,
    /// The measured reading just before the gap, if there was one.
    pub before: Option<Key>,
    /// The measured reading just after the gap, if there was one.
    pub after: Option<Key>,
}

/// Whether a record was measured or made up to fill a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// The sensor measured it.
    Measured,
    /// A fill made it; it always carries the [`Flag::Synthetic`](crate::Flag::Synthetic) flag.
    Synthetic(Source),
}

impl Origin {
    /// `"measured"` or `"synthetic"`, as written in CSV and JSONL output.
    pub const fn name(&self) -> &'static str {
        match self {
            Origin::Measured => "measured",
            Origin::Synthetic(_) => "synthetic",
        }
    }
}

/// A reading together with its verdict and its origin: one row of a repaired series.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, Flags, Origin, Quality, Reading, Record};
/// let r = Record::measured(Reading::new(1, 1, 0, 0, Celsius::from_num(52)), Quality::Good, Flags::EMPTY);
/// assert_eq!(r.origin, Origin::Measured);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    /// The reading; for a synthetic record, the made-up value at the missing key.
    pub reading: Reading,
    /// Good, doubtful or bad.
    pub quality: Quality,
    /// Why the quality is what it is.
    pub flags: Flags,
    /// Measured, or synthetic and from where.
    pub origin: Origin,
}

impl Record {
    /// A measured record.
    pub const fn measured(reading: Reading, quality: Quality, flags: Flags) -> Self {
        Self {
            reading,
            quality,
            flags,
            origin: Origin::Measured,
        }
    }

    /// True when the record was made by a fill.
    pub const fn is_synthetic(&self) -> bool {
        matches!(self.origin, Origin::Synthetic(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_timestamps_never_tie() {
        let a = Reading::new(1, 1, 1, 100, Celsius::from_num(50));
        let b = Reading::new(1, 1, 2, 100, Celsius::from_num(50));
        assert_eq!(a.cmp(&b), Ordering::Less);
        assert_ne!(a, b);
        assert_ne!(a.identity(), b.identity());
    }

    #[test]
    fn celsius_covers_the_required_range_exactly() {
        assert_eq!(Celsius::from_num(-273).to_num::<i32>(), -273);
        assert_eq!(Celsius::from_num(2000).to_num::<i32>(), 2000);
        // 1/16 °C (TMP105, DS18B20) and 1/8 °C (LM75) are exact.
        assert_eq!(Celsius::from_bits(16).to_num::<f64>(), 0.0625);
        assert_eq!(Celsius::from_bits(32).to_num::<f64>(), 0.125);
    }

    #[test]
    fn order_is_total_and_reproducible() {
        let mut v = [
            Reading::new(2, 1, 1, 100, Celsius::from_num(50)),
            Reading::new(1, 1, 1, 100, Celsius::from_num(51)),
            Reading::new(1, 1, 0, 100, Celsius::from_num(52)),
            Reading::new(1, 1, 5, 50, Celsius::from_num(53)),
        ];
        v.sort();
        let keys: [(u64, u32, u32); 4] = v.map(|r| (r.timestamp, r.seq, r.sensor));
        assert_eq!(keys, [(50, 5, 1), (100, 0, 1), (100, 1, 1), (100, 1, 2)]);
    }
}
