//! A temperature schedule for a node run: `seq,millicelsius` rows, each holding from its seq
//! until the next row's.

use std::collections::BTreeMap;
use std::fmt;

/// The TMP105's range as QEMU accepts it, in milli-degrees Celsius.
const RANGE: std::ops::RangeInclusive<i32> = -55_000..=128_000;

/// A temperature per seq, held from each row until the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    rows: BTreeMap<u32, i32>,
}

/// Why a schedule cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for ScheduleError {}

impl Schedule {
    /// Parses `seq,millicelsius` lines; a first line `seq,millicelsius` is a header, empty
    /// lines and lines starting with `#` are skipped. Seqs must grow.
    ///
    /// # Examples
    /// ```
    /// use mend_tests::Schedule;
    /// let s = Schedule::parse("seq,millicelsius\n0,52500\n10,53000\n").unwrap();
    /// assert_eq!((s.at(0), s.at(9), s.at(10), s.at(99)), (52_500, 52_500, 53_000, 53_000));
    /// assert_eq!(s.samples(), 11);
    /// assert!(Schedule::parse("0,1\n0,2\n").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let mut rows = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            let err = |what: String| ScheduleError { line: i + 1, what };
            if line.is_empty() || line.starts_with('#') || (i == 0 && line == "seq,millicelsius") {
                continue;
            }
            let (seq, milli) = line
                .split_once(',')
                .ok_or_else(|| err(format!("{line:?}: expected seq,millicelsius")))?;
            let seq: u32 = seq
                .trim()
                .parse()
                .map_err(|_| err(format!("{seq:?} is not a seq")))?;
            let milli: i32 = milli
                .trim()
                .parse()
                .map_err(|_| err(format!("{milli:?} is not a whole number of m°C")))?;
            if !RANGE.contains(&milli) {
                return Err(err(format!(
                    "{milli} m°C is outside the TMP105's {RANGE:?}"
                )));
            }
            if rows.last_key_value().is_some_and(|(&last, _)| seq <= last) {
                return Err(err(format!("seq {seq} does not follow the seq before it")));
            }
            rows.insert(seq, milli);
        }
        if rows.is_empty() {
            return Err(ScheduleError {
                line: 0,
                what: "no rows".into(),
            });
        }
        Ok(Self { rows })
    }

    /// The temperature at `seq`: the latest row at or before it (the first row before it).
    pub fn at(&self, seq: u32) -> i32 {
        self.rows
            .range(..=seq)
            .next_back()
            .or_else(|| self.rows.first_key_value())
            .map_or(0, |(_, &m)| m)
    }

    /// Samples the node takes: up to and including the last row's seq.
    pub fn samples(&self) -> u32 {
        self.rows
            .last_key_value()
            .map_or(0, |(&s, _)| s.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hold_until_the_next_and_bad_rows_name_their_line() {
        let s = Schedule::parse("# ramp\n5,50000\n\n7,-1000\n").unwrap();
        assert_eq!(
            (0..9).map(|q| s.at(q)).collect::<Vec<_>>(),
            [50_000, 50_000, 50_000, 50_000, 50_000, 50_000, 50_000, -1_000, -1_000]
        );
        assert_eq!(s.samples(), 8);
        let e = Schedule::parse("0,1\nx,2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Schedule::parse("0,129000\n").is_err(), "QEMU rejects it");
        assert!(Schedule::parse("").is_err());
    }
}
