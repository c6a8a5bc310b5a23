//! The dead-letter file: everything mend could not use, one JSON object per line.
//!
//! Bad input never stops a replay, but it must never vanish either. Each record names the
//! input, the location (byte range or line), a short reason to group by, and a sentence for
//! people. The counts per reason go into the summary whether or not a file was asked for.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use crate::input::{DeadLetter, Location};

/// One line of the dead-letter file.
#[derive(Serialize)]
struct Line<'a> {
    input: &'a str,
    #[serde(flatten)]
    location: Location,
    reason: &'a str,
    detail: &'a str,
}

/// Writes dead-letter records and counts them by reason.
///
/// # Examples
/// ```
/// use mend::sink::dlq::DeadLetterLog;
/// use mend::input::{DeadLetter, DeadReason, Location};
/// use mend_core::SkipReason;
/// let mut out = Vec::new();
/// let mut log = DeadLetterLog::new(vec!["a.mlog".into()], Some(Box::new(&mut out)));
/// log.push(&DeadLetter {
///     input: 0,
///     location: Location::Bytes { offset: 10, length: 4 },
///     reason: DeadReason::Frame(SkipReason::BadCrc),
///     detail: "damaged frame: CRC mismatch".into(),
/// }).unwrap();
/// assert_eq!(log.total(), 1);
/// drop(log);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "{\"input\":\"a.mlog\",\"offset\":10,\"length\":4,\"reason\":\"bad_crc\",\"detail\":\"damaged frame: CRC mismatch\"}\n"
/// );
/// ```
pub struct DeadLetterLog<'w> {
    names: Vec<String>,
    out: Option<Box<dyn Write + 'w>>,
    by_reason: BTreeMap<&'static str, u64>,
    total: u64,
    keep: usize,
    kept: Vec<DeadLetter>,
}

impl<'w> DeadLetterLog<'w> {
    /// A log for inputs with these names, writing to `out` if given.
    pub fn new(names: Vec<String>, out: Option<Box<dyn Write + 'w>>) -> Self {
        Self {
            names,
            out,
            by_reason: BTreeMap::new(),
            total: 0,
            keep: 0,
            kept: Vec::new(),
        }
    }

    /// Also keeps the first `n` records in memory (for `mend inspect`).
    #[must_use]
    pub fn keeping(mut self, n: usize) -> Self {
        self.keep = n;
        self
    }

    /// The records kept by [`DeadLetterLog::keeping`].
    pub fn kept(&self) -> &[DeadLetter] {
        &self.kept
    }

    /// The name of input `i`.
    pub fn input_name(&self, i: usize) -> &str {
        self.names.get(i).map_or("?", String::as_str)
    }

    /// Records one dead letter.
    pub fn push(&mut self, d: &DeadLetter) -> io::Result<()> {
        *self.by_reason.entry(d.reason.name()).or_insert(0) += 1;
        self.total += 1;
        if self.kept.len() < self.keep {
            self.kept.push(d.clone());
        }
        if let Some(out) = self.out.as_mut() {
            let line = Line {
                input: self.names.get(d.input).map_or("?", String::as_str),
                location: d.location,
                reason: d.reason.name(),
                detail: &d.detail,
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// How many records so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The counts per reason.
    pub fn by_reason(&self) -> &BTreeMap<&'static str, u64> {
        &self.by_reason
    }

    /// Flushes the file, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}
