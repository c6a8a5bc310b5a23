//! The rows of one worker run, as the output stream stores them.
//!
//! An output entry holds up to [`ROWS_PER_ENTRY`] consecutive rows exactly as `mend replay`
//! writes them in CSV (field `c`), and their timestamps (field `t`, 8 bytes little-endian
//! each, for `--from` and `--until`). Its ID derives from its first row's `(time, seq)`. An
//! export is the rows in stream order; the JSONL form is derived from the CSV fields, which
//! carry everything a JSON row says. Batching rows is what lets a worker keep up with a
//! replay: one stream entry per row costs Redis more than the whole repair.

use std::io;

use mend_core::{Key, Outage, Record};

use crate::input::StreamMeta;
use crate::sink::{push_csv_row, push_missing_csv_row, RecordSink};

/// Rows in one output entry.
pub const ROWS_PER_ENTRY: usize = 64;

/// A row and the key its output ID derives from; its CSV text is in [`RowSink::csv`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Its timestamp, ms.
    pub timestamp: u64,
    /// Its seq.
    pub seq: u32,
    /// Where its CSV text (newline included) ends in [`RowSink::csv`]; it starts where the
    /// row before it ends.
    pub end: usize,
}

/// Collects the rows of a run: their keys, and their CSV texts one after the other in one
/// buffer (one allocation per run, not per row).
///
/// # Examples
/// ```
/// use mend::fleet::rows::RowSink;
/// let sink = RowSink::default();
/// assert!(sink.rows.is_empty() && sink.text(0..0).is_empty());
/// ```
#[derive(Default)]
pub struct RowSink {
    /// The rows, in output order.
    pub rows: Vec<Row>,
    /// Their CSV texts, in the same order.
    pub csv: Vec<u8>,
}

impl RowSink {
    /// The CSV text of the rows in `range` (indices into [`RowSink::rows`]), empty when the
    /// range is out of bounds.
    pub fn text(&self, range: std::ops::Range<usize>) -> &[u8] {
        let start = match range.start.checked_sub(1) {
            Some(before) => self.rows.get(before).map(|r| r.end),
            None => Some(0),
        };
        let end = match range.end.checked_sub(1) {
            Some(last) => self.rows.get(last).map(|r| r.end),
            None => Some(0),
        };
        match (start, end) {
            (Some(a), Some(b)) => self.csv.get(a..b).unwrap_or_default(),
            _ => &[],
        }
    }

    fn push(&mut self, timestamp: u64, seq: u32) {
        self.rows.push(Row {
            timestamp,
            seq,
            end: self.csv.len(),
        });
    }
}

impl RecordSink for RowSink {
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()> {
        push_csv_row(&mut self.csv, rec, meta);
        self.push(rec.reading.timestamp, rec.reading.seq);
        Ok(())
    }

    fn missing(&mut self, o: &Outage, slot: Key, meta: &StreamMeta) -> io::Result<()> {
        push_missing_csv_row(&mut self.csv, o, slot, meta);
        self.push(slot.timestamp, slot.seq);
        Ok(())
    }
}

/// Appends the JSONL form of a stored CSV row (see [`crate::sink::push_json_row`]):
/// empty `seq`, `celsius`, `method` and `quality` are `null`.
///
/// # Errors
/// A row without the nine CSV fields (not written by mend).
///
/// # Examples
/// ```
/// let mut out = Vec::new();
/// mend::fleet::rows::csv_to_json(b"1,7,42,1970-01-01T00:00:05.000Z,57.25,measured,,doubtful,out_of_band\n", &mut out).unwrap();
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "{\"sensor\":1,\"session\":7,\"seq\":42,\"time\":\"1970-01-01T00:00:05.000Z\",\"celsius\":57.25,\"origin\":\"measured\",\"method\":null,\"quality\":\"doubtful\",\"flags\":\"out_of_band\"}\n"
/// );
/// assert!(mend::fleet::rows::csv_to_json(b"1,2\n", &mut Vec::new()).is_err());
/// ```
pub fn csv_to_json(csv: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
    let line = csv.strip_suffix(b"\n").unwrap_or(csv);
    let f: Vec<&[u8]> = line.split(|b| *b == b',').collect();
    let [sensor, session, seq, time, celsius, origin, method, quality, flags] = f.as_slice() else {
        anyhow::bail!(
            "an output entry is not a mend row: {:?}",
            String::from_utf8_lossy(csv)
        );
    };
    let raw_or_null = |out: &mut Vec<u8>, v: &[u8]| {
        if v.is_empty() {
            out.extend_from_slice(b"null");
        } else {
            out.extend_from_slice(v);
        }
    };
    let quoted_or_null = |out: &mut Vec<u8>, v: &[u8]| {
        if v.is_empty() {
            out.extend_from_slice(b"null");
        } else {
            out.push(b'"');
            out.extend_from_slice(v);
            out.push(b'"');
        }
    };
    out.extend_from_slice(b"{\"sensor\":");
    out.extend_from_slice(sensor);
    out.extend_from_slice(b",\"session\":");
    out.extend_from_slice(session);
    out.extend_from_slice(b",\"seq\":");
    raw_or_null(out, seq);
    out.extend_from_slice(b",\"time\":\"");
    out.extend_from_slice(time);
    out.extend_from_slice(b"\",\"celsius\":");
    raw_or_null(out, celsius);
    out.extend_from_slice(b",\"origin\":\"");
    out.extend_from_slice(origin);
    out.extend_from_slice(b"\",\"method\":");
    quoted_or_null(out, method);
    out.extend_from_slice(b",\"quality\":");
    quoted_or_null(out, quality);
    out.extend_from_slice(b",\"flags\":\"");
    out.extend_from_slice(flags);
    out.extend_from_slice(b"\"}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{push_json_row, push_missing_json_row};
    use mend_core::{Celsius, ClockKind, Flag, Flags, Origin, Quality, Reading};

    fn both(rec: &Record, meta: &StreamMeta) -> (Vec<u8>, Vec<u8>) {
        let mut csv = Vec::new();
        push_csv_row(&mut csv, rec, meta);
        let mut json = Vec::new();
        push_json_row(&mut json, rec, meta);
        (csv, json)
    }

    #[test]
    fn the_text_of_a_range_of_rows_is_their_csv_rows_one_after_the_other() {
        let meta = StreamMeta {
            has_seq: true,
            period_ms: 1_000,
            clock: ClockKind::Unix,
        };
        let mut sink = RowSink::default();
        let mut each = Vec::new();
        for seq in 0..5u32 {
            let r = Reading::new(3, 9, seq, u64::from(seq) * 1_000, Celsius::from_num(52));
            let rec = Record::measured(r, Quality::Good, Flags::EMPTY);
            sink.record(&rec, &meta).unwrap();
            each.push(both(&rec, &meta).0);
        }
        assert_eq!(sink.text(0..5), each.concat());
        assert_eq!(sink.text(1..3), [each[1].clone(), each[2].clone()].concat());
        assert_eq!(sink.text(4..5), each[4]);
        assert!(sink.text(2..2).is_empty());
        assert!(sink.text(3..9).is_empty(), "out of bounds");
        assert_eq!(sink.rows[2].seq, 2);
    }

    #[test]
    fn json_from_csv_is_the_json_row_for_every_kind_of_row() {
        let with_seq = StreamMeta {
            has_seq: true,
            period_ms: 1_000,
            clock: ClockKind::Unix,
        };
        let no_seq = StreamMeta {
            has_seq: false,
            ..with_seq
        };
        let r = Reading::new(3, 9, 12, 12_000, Celsius::from_num(-0.00390625));
        let flags = Flags::EMPTY.with(Flag::OutOfBand).with(Flag::Spike);
        let measured = Record::measured(r, Quality::Bad, flags);
        let mut synthetic = measured;
        synthetic.origin = Origin::Synthetic(mend_core::Source {
            method: mend_core::FillMethod::Locf,
            before: Some(Key {
                timestamp: 11_000,
                seq: 11,
            }),
            after: None,
        });
        for rec in [measured, synthetic] {
            for meta in [with_seq, no_seq] {
                let (csv, json) = both(&rec, &meta);
                let mut derived = Vec::new();
                csv_to_json(&csv, &mut derived).unwrap();
                assert_eq!(
                    String::from_utf8(derived).unwrap(),
                    String::from_utf8(json).unwrap()
                );
            }
        }
        let o = Outage {
            sensor: 1,
            session: 2,
            before: Key {
                timestamp: 0,
                seq: 0,
            },
            after: Key {
                timestamp: 90_000,
                seq: 90,
            },
            missing: 89,
        };
        let slot = Key {
            timestamp: 5_000,
            seq: 5,
        };
        let mut csv = Vec::new();
        push_missing_csv_row(&mut csv, &o, slot, &with_seq);
        let mut json = Vec::new();
        push_missing_json_row(&mut json, &o, slot, &with_seq);
        let mut derived = Vec::new();
        csv_to_json(&csv, &mut derived).unwrap();
        assert_eq!(derived, json);
    }
}
