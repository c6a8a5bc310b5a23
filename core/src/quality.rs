//! The quality vocabulary of the data model: a reading's [`Quality`] and the [`Flag`]s that
//! explain it, in the terms of the SaQC quality-control system. The validator
//! ([`crate::Validator`]) and the gap filler produce them; they are defined here, beside the
//! reading, so that the data model depends on no stage.

use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// A name outside one of the data model's fixed vocabularies (qualities, flags, fill
/// methods).
///
/// # Examples
/// ```
/// use mend_core::Quality;
/// let e = "fine".parse::<Quality>().unwrap_err();
/// assert_eq!(e.to_string(), "not a quality name");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// What the name should have been: `"quality"`, `"flag"` or `"fill method"`.
    pub of: &'static str,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a {} name", self.of)
    }
}

impl core::error::Error for UnknownName {}

/// The quality of a reading.
///
/// # Examples
/// ```
/// use mend_core::Quality;
/// assert_eq!(Quality::Doubtful.name(), "doubtful");
/// assert!(Quality::Good < Quality::Bad);
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum Quality {
    /// Nothing speaks against the value.
    #[default]
    Good,
    /// The value is usable but something is unusual (out of band, spike, stuck, synthetic).
    Doubtful,
    /// The value cannot be a real temperature, or the reading is a duplicate.
    Bad,
}

impl Quality {
    /// `"good"`, `"doubtful"` or `"bad"`.
    pub const fn name(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Doubtful => "doubtful",
            Quality::Bad => "bad",
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quality {
    type Err = UnknownName;

    /// The inverse of [`Quality::name`].
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        [Quality::Good, Quality::Doubtful, Quality::Bad]
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or(UnknownName { of: "quality" })
    }
}

/// One reason for a quality verdict. The vocabulary is fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Flag {
    /// Outside the configured valid band (default 50–55 °C). Kept: it may be real.
    OutOfBand = 0,
    /// Outside the sensor's physical range: no real temperature gives this value.
    Implausible = 1,
    /// Changed faster than the configured rate limit since the previous reading.
    Spike = 2,
    /// A flat line: every value over the last k samples lies within the stuck tolerance.
    Stuck = 3,
    /// Arrived after readings that come later in time had already been released.
    Late = 4,
    /// The same identity was seen before.
    Duplicate = 5,
    /// Made by a gap fill, not measured.
    Synthetic = 6,
}

impl Flag {
    /// Every flag, in output order.
    pub const ALL: [Flag; 7] = [
        Flag::OutOfBand,
        Flag::Implausible,
        Flag::Spike,
        Flag::Stuck,
        Flag::Late,
        Flag::Duplicate,
        Flag::Synthetic,
    ];

    /// The flag's name in CSV and JSONL output.
    ///
    /// # Examples
    /// ```
    /// use mend_core::Flag;
    /// assert_eq!(Flag::OutOfBand.name(), "out_of_band");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Flag::OutOfBand => "out_of_band",
            Flag::Implausible => "implausible",
            Flag::Spike => "spike",
            Flag::Stuck => "stuck",
            Flag::Late => "late",
            Flag::Duplicate => "duplicate",
            Flag::Synthetic => "synthetic",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Flag {
    type Err = UnknownName;

    /// The inverse of [`Flag::name`].
    ///
    /// # Examples
    /// ```
    /// use mend_core::Flag;
    /// assert_eq!("spike".parse(), Ok(Flag::Spike));
    /// assert!("normal".parse::<Flag>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Flag::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or(UnknownName { of: "flag" })
    }
}

/// A set of [`Flag`]s, one bit each.
///
/// # Examples
/// ```
/// use mend_core::{Flag, Flags, Quality};
/// let f = Flags::EMPTY.with(Flag::OutOfBand).with(Flag::Late);
/// assert!(f.contains(Flag::Late));
/// assert_eq!(f.quality(), Quality::Doubtful);
/// assert_eq!(format!("{f}"), "out_of_band;late");
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Flags(u8);

impl Flags {
    /// No flags.
    pub const EMPTY: Flags = Flags(0);

    /// This set plus `flag`.
    #[must_use]
    pub const fn with(self, flag: Flag) -> Self {
        Flags(self.0 | flag.bit())
    }

    /// Adds `flag` in place.
    pub fn insert(&mut self, flag: Flag) {
        self.0 |= flag.bit();
    }

    /// True when `flag` is in the set.
    pub const fn contains(self, flag: Flag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// True when no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw bits, one per [`Flag`] discriminant.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// A set from raw bits; bits beyond the vocabulary are an error.
    pub const fn try_from_bits(bits: u8) -> Option<Self> {
        if bits & 0x80 != 0 {
            None
        } else {
            Some(Flags(bits))
        }
    }

    /// The flags in the set, in [`Flag::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// The quality these flags imply: implausible or duplicate is bad; out of band, spike,
    /// stuck or synthetic is doubtful; late alone, or nothing, is good.
    pub const fn quality(self) -> Quality {
        if self.contains(Flag::Implausible) || self.contains(Flag::Duplicate) {
            Quality::Bad
        } else if self.contains(Flag::OutOfBand)
            || self.contains(Flag::Spike)
            || self.contains(Flag::Stuck)
            || self.contains(Flag::Synthetic)
        {
            Quality::Doubtful
        } else {
            Quality::Good
        }
    }
}

impl fmt::Display for Flags {
    /// The names, `;`-separated, as in the CSV `flags` column.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for flag in self.iter() {
            if !first {
                f.write_str(";")?;
            }
            f.write_str(flag.name())?;
            first = false;
        }
        Ok(())
    }
}
