//! The columns of a repaired row, shared by the CSV and the JSONL forms.
//!
//! A rerun gives the same bytes: rows are formatted by hand from integers (no floats, no
//! locale, no run timestamps), which is also what keeps writing from dominating the replay
//! time.

use mend_core::{Origin, Record};

use crate::text::numfmt::ByteOut;

/// The CSV header of repaired records.
pub const CSV_HEADER: &str = "sensor,session,seq,time,celsius,origin,method,quality,flags";

/// The `origin` of an outage slot's row.
pub const MISSING: &str = "missing";

/// The row formats of [`RowWriter`](crate::sink::RowWriter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    /// [`CSV_HEADER`] columns.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Appends the `flags` field: the flag names, `;`-separated.
pub(crate) fn push_flags(buf: &mut impl ByteOut, rec: &Record) {
    if rec.flags.is_empty() {
        return;
    }
    let mut first = true;
    for f in rec.flags.iter() {
        if !first {
            buf.put(b';');
        }
        buf.put_slice(f.name().as_bytes());
        first = false;
    }
}

/// The `method` field: the fill method of a synthetic record, none for a measured one.
pub(crate) fn method_name(rec: &Record) -> Option<&'static str> {
    match rec.origin {
        Origin::Measured => None,
        Origin::Synthetic(s) => Some(s.method.name()),
    }
}
