//! The rows of one worker run, as the output stream stores them.
//!
//! An output entry holds up to [`ROWS_PER_ENTRY`] consecutive rows (field `r`), each a
//! [`StoredRow`] in postcard: the record itself (reading, origin, quality, flags), or the
//! slot of a reading an outage swallowed. Its ID derives from its first row's `(time, seq)`.
//! An export decodes the rows and writes them with the very functions `mend replay` writes
//! its rows with, so the two agree byte for byte by construction; a stored row takes about a
//! fifth of the bytes of its CSV text, and a worker spends no time formatting. Batching rows
//! is what lets a worker keep up with a replay: one stream entry per row costs Redis more
//! than the whole repair.

use std::io;

use mend_core::{put_varint64, zigzag, FillMethod, Key, Origin, Outage, Quality, Record};
use serde::{Deserialize, Serialize};

use crate::input::StreamMeta;
use crate::sink::{push_csv_row, push_json_row, push_missing_csv_row, push_missing_json_row};
use crate::sink::{RecordSink, RowFormat};

/// Rows in one output entry.
pub const ROWS_PER_ENTRY: usize = 256;

/// The longest stored row, in bytes (a record with every field at its widest).
const MAX_STORED: usize = 128;

/// One output row as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredRow {
    /// A record: measured, or a fill. `has_seq` is the stream's (frame logs carry a seq).
    Record {
        /// The record.
        record: Record,
        /// Whether its stream carries a sample counter.
        has_seq: bool,
    },
    /// The slot of a reading an outage swallowed (`--emit-outages`).
    Missing {
        /// The sensor.
        sensor: u32,
        /// The session.
        session: u32,
        /// The slot.
        slot: Key,
        /// Whether its stream carries a sample counter.
        has_seq: bool,
    },
}

impl StoredRow {
    /// Its time, ms.
    pub fn timestamp(&self) -> u64 {
        match self {
            Self::Record { record, .. } => record.reading.timestamp,
            Self::Missing { slot, .. } => slot.timestamp,
        }
    }

    /// Appends it as `mend replay` writes it in `format`.
    ///
    /// # Examples
    /// ```
    /// use mend::fleet::rows::StoredRow;
    /// use mend::sink::RowFormat;
    /// use mend_core::{Celsius, Flags, Quality, Reading, Record};
    /// let record = Record::measured(
    ///     Reading::new(1, 7, 42, 5_000, Celsius::from_num(57.25)),
    ///     Quality::Good,
    ///     Flags::EMPTY,
    /// );
    /// let mut out = Vec::new();
    /// StoredRow::Record { record, has_seq: true }.write(RowFormat::Csv, &mut out);
    /// assert_eq!(out, b"1,7,42,1970-01-01T00:00:05.000Z,57.25,measured,,good,\n");
    /// ```
    pub fn write(&self, format: RowFormat, out: &mut Vec<u8>) {
        let meta = |has_seq: bool| StreamMeta {
            has_seq,
            // Neither is written in a row.
            period_ms: 0,
            clock: mend_core::ClockKind::Unix,
        };
        match (*self, format) {
            (Self::Record { record, has_seq }, RowFormat::Csv) => {
                push_csv_row(out, &record, &meta(has_seq));
            }
            (Self::Record { record, has_seq }, RowFormat::Jsonl) => {
                push_json_row(out, &record, &meta(has_seq));
            }
            (
                Self::Missing {
                    sensor,
                    session,
                    slot,
                    has_seq,
                },
                f,
            ) => {
                // A missing row says its sensor, session and slot; the rest of the outage is
                // in the summary, not in its rows.
                let o = Outage {
                    sensor,
                    session,
                    before: slot,
                    after: slot,
                    missing: 0,
                };
                match f {
                    RowFormat::Csv => push_missing_csv_row(out, &o, slot, &meta(has_seq)),
                    RowFormat::Jsonl => push_missing_json_row(out, &o, slot, &meta(has_seq)),
                }
            }
        }
    }
}

impl StoredRow {
    /// Appends it in postcard, the bytes `postcard::to_slice` gives, written field by field
    /// without serde: a worker stores every row it repairs, and serde's generic path (a
    /// copy per field) cost about 330 instructions a row, a sixth of the repair's.
    ///
    /// # Examples
    /// ```
    /// use mend::fleet::rows::StoredRow;
    /// use mend_core::{Celsius, Flags, Quality, Reading, Record};
    /// let record = Record::measured(
    ///     Reading::new(1, 7, 300, 5_000, Celsius::from_num(-0.5)),
    ///     Quality::Good,
    ///     Flags::EMPTY,
    /// );
    /// let mut out = Vec::new();
    /// StoredRow::Record { record, has_seq: true }.encode(&mut out);
    /// // Record, sensor 1, session 7, seq 300, 5 000 ms, -128/256 °C zigzagged, good, no
    /// // flags, measured, has a seq.
    /// assert_eq!(out, [0, 1, 7, 0xac, 0x02, 0x88, 0x27, 0xff, 0x01, 0, 0, 0, 1]);
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        // The position is a local of its own, kept in a register: in a struct beside the
        // buffer it went through memory at every byte.
        let mut buf = [0u8; MAX_STORED];
        let mut n = 0;
        match self {
            Self::Record { record, has_seq } => {
                n = put(&mut buf, n, 0);
                let r = &record.reading;
                n = put_varint64(&mut buf, n, u64::from(r.sensor));
                n = put_varint64(&mut buf, n, u64::from(r.session));
                n = put_varint64(&mut buf, n, u64::from(r.seq));
                n = put_varint64(&mut buf, n, r.timestamp);
                n = put_varint64(&mut buf, n, u64::from(zigzag(r.celsius.to_bits())));
                let quality = match record.quality {
                    Quality::Good => 0,
                    Quality::Doubtful => 1,
                    Quality::Bad => 2,
                };
                n = put(&mut buf, n, quality);
                n = put(&mut buf, n, record.flags.bits());
                match record.origin {
                    Origin::Measured => n = put(&mut buf, n, 0),
                    Origin::Synthetic(s) => {
                        n = put(&mut buf, n, 1);
                        let method = match s.method {
                            FillMethod::Linear => 0,
                            FillMethod::Locf => 1,
                            FillMethod::Stochastic => 2,
                            FillMethod::None => 3,
                        };
                        n = put(&mut buf, n, method);
                        for k in [s.before, s.after] {
                            match k {
                                None => n = put(&mut buf, n, 0),
                                Some(k) => {
                                    n = put(&mut buf, n, 1);
                                    n = key(&mut buf, n, k);
                                }
                            }
                        }
                    }
                }
                n = put(&mut buf, n, u8::from(*has_seq));
            }
            Self::Missing {
                sensor,
                session,
                slot,
                has_seq,
            } => {
                n = put(&mut buf, n, 1);
                n = put_varint64(&mut buf, n, u64::from(*sensor));
                n = put_varint64(&mut buf, n, u64::from(*session));
                n = key(&mut buf, n, *slot);
                n = put(&mut buf, n, u8::from(*has_seq));
            }
        }
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

/// Puts `b` at `n` in a row being encoded; the next position. [`MAX_STORED`] bytes hold the
/// widest row (see the test `the_widest_row_fits`).
#[inline(always)]
fn put(buf: &mut [u8; MAX_STORED], n: usize, b: u8) -> usize {
    if let Some(at) = buf.get_mut(n) {
        *at = b;
    }
    n + 1
}

/// Puts a [`Key`] as postcard writes it: its timestamp, then its seq.
#[inline(always)]
fn key(buf: &mut [u8; MAX_STORED], n: usize, k: Key) -> usize {
    let n = put_varint64(buf, n, k.timestamp);
    put_varint64(buf, n, u64::from(k.seq))
}

/// Decodes the rows of an output entry's `r` field.
///
/// # Errors
/// Bytes that are not stored rows (not written by mend).
pub fn decode(mut bytes: &[u8]) -> anyhow::Result<Vec<StoredRow>> {
    let mut rows = Vec::new();
    while !bytes.is_empty() {
        let (row, rest) = postcard::take_from_bytes::<StoredRow>(bytes)
            .map_err(|e| anyhow::anyhow!("not a stored row ({e})"))?;
        rows.push(row);
        bytes = rest;
    }
    Ok(rows)
}

/// The rows of one output entry: the key of its first row, which its ID derives from, and
/// where its stored bytes end in [`RowSink::bytes`] (they start where the entry before it
/// ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRows {
    /// Its first row's timestamp, ms.
    pub timestamp: u64,
    /// Its first row's seq.
    pub seq: u32,
    /// Its rows, 1 to [`ROWS_PER_ENTRY`].
    pub rows: usize,
    /// Where its bytes end.
    pub end: usize,
}

/// Collects the rows of a run as the output entries that will store them: their stored
/// bytes one after the other in one buffer, and per entry of [`ROWS_PER_ENTRY`] rows its
/// first key and where its bytes end. Nothing is kept per row, and a worker hands the sink
/// of a committed run to the next run ([`RowSink::reuse`]), so a run allocates nothing
/// for its rows.
///
/// # Examples
/// ```
/// use mend::fleet::rows::RowSink;
/// let sink = RowSink::default();
/// assert!(sink.entries.is_empty() && sink.rows() == 0 && sink.stored(0).is_empty());
/// ```
#[derive(Default)]
pub struct RowSink {
    /// The output entries, in output order; each but the last holds [`ROWS_PER_ENTRY`] rows.
    pub entries: Vec<EntryRows>,
    /// The stored bytes of every row ([`StoredRow`] in postcard), in output order.
    pub bytes: Vec<u8>,
}

impl RowSink {
    /// Empties it for a run over `bytes` of frames, keeping its buffers and growing them to
    /// room for that run's rows (about 9 bytes of frames a reading, about 16 bytes a stored
    /// row), so that a run's rows are not copied as the buffers grow.
    pub fn reuse(&mut self, bytes: usize) {
        let rows = bytes / 8;
        self.entries.clear();
        self.bytes.clear();
        self.entries.reserve(rows.div_ceil(ROWS_PER_ENTRY));
        self.bytes.reserve(rows * 16);
    }

    /// The rows it holds.
    pub fn rows(&self) -> u64 {
        self.entries.iter().map(|e| e.rows as u64).sum()
    }

    /// The stored bytes of entry `i`, empty when there is no such entry.
    pub fn stored(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(before) => self.entries.get(before).map(|e| e.end),
            None => Some(0),
        };
        match (start, self.entries.get(i)) {
            (Some(a), Some(e)) => self.bytes.get(a..e.end).unwrap_or_default(),
            _ => &[],
        }
    }

    fn push(&mut self, row: &StoredRow, seq: u32) {
        row.encode(&mut self.bytes);
        let end = self.bytes.len();
        match self.entries.last_mut() {
            Some(e) if e.rows < ROWS_PER_ENTRY => {
                e.rows += 1;
                e.end = end;
            }
            _ => self.entries.push(EntryRows {
                timestamp: row.timestamp(),
                seq,
                rows: 1,
                end,
            }),
        }
    }
}

impl RecordSink for RowSink {
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()> {
        let row = StoredRow::Record {
            record: *rec,
            has_seq: meta.has_seq,
        };
        self.push(&row, rec.reading.seq);
        Ok(())
    }

    fn missing(&mut self, o: &Outage, slot: Key, meta: &StreamMeta) -> io::Result<()> {
        let row = StoredRow::Missing {
            sensor: o.sensor,
            session: o.session,
            slot,
            has_seq: meta.has_seq,
        };
        self.push(&row, slot.seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mend_core::{Celsius, ClockKind, Flag, Flags, Origin, Quality, Reading, Source};
    use proptest::prelude::*;

    fn meta(has_seq: bool) -> StreamMeta {
        StreamMeta {
            has_seq,
            period_ms: 1_000,
            clock: ClockKind::Unix,
        }
    }

    /// Every kind of row, stored and written back, is the row `mend replay` writes.
    #[test]
    fn a_stored_row_is_written_as_replay_writes_it_in_both_formats() {
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
        for has_seq in [true, false] {
            let m = meta(has_seq);
            let mut sink = RowSink::default();
            let (mut csv, mut json) = (Vec::new(), Vec::new());
            for rec in [measured, synthetic] {
                sink.record(&rec, &m).unwrap();
                push_csv_row(&mut csv, &rec, &m);
                push_json_row(&mut json, &rec, &m);
            }
            sink.missing(&o, slot, &m).unwrap();
            push_missing_csv_row(&mut csv, &o, slot, &m);
            push_missing_json_row(&mut json, &o, slot, &m);
            let rows = decode(sink.stored(0)).unwrap();
            assert_eq!(rows.len(), 3);
            let (mut csv2, mut json2) = (Vec::new(), Vec::new());
            for row in &rows {
                row.write(RowFormat::Csv, &mut csv2);
                row.write(RowFormat::Jsonl, &mut json2);
            }
            assert_eq!(
                String::from_utf8(csv2).unwrap(),
                String::from_utf8(csv).unwrap()
            );
            assert_eq!(
                String::from_utf8(json2).unwrap(),
                String::from_utf8(json).unwrap()
            );
            assert_eq!(rows[2].timestamp(), 5_000);
            // An entry that starts with a missing row takes its key from the slot.
            let mut alone = RowSink::default();
            alone.missing(&o, slot, &m).unwrap();
            assert_eq!(
                (alone.entries[0].timestamp, alone.entries[0].seq),
                (5_000, 5)
            );
        }
    }

    /// Rows go to entries of ROWS_PER_ENTRY, each keyed by its first row and holding its
    /// rows' bytes one after the other; a reused sink starts empty.
    #[test]
    fn rows_are_cut_into_entries_keyed_by_their_first_row() {
        let m = meta(true);
        let mut sink = RowSink::default();
        sink.reuse(100);
        for round in 0..2 {
            let mut each = Vec::new();
            let n = 2 * ROWS_PER_ENTRY as u32 + 5 - round;
            for seq in 0..n {
                let r = Reading::new(3, 9, seq, u64::from(seq) * 1_000, Celsius::from_num(52));
                let rec = Record::measured(r, Quality::Good, Flags::EMPTY);
                sink.record(&rec, &m).unwrap();
                each.push(StoredRow::Record {
                    record: rec,
                    has_seq: true,
                });
            }
            assert_eq!(sink.rows(), u64::from(n));
            let sizes: Vec<usize> = sink.entries.iter().map(|e| e.rows).collect();
            assert_eq!(sizes, [ROWS_PER_ENTRY, ROWS_PER_ENTRY, 5 - round as usize]);
            let keys: Vec<(u64, u32)> = sink.entries.iter().map(|e| (e.timestamp, e.seq)).collect();
            assert_eq!(keys, [(0, 0), (256_000, 256), (512_000, 512)]);
            for (i, want) in each.chunks(ROWS_PER_ENTRY).enumerate() {
                assert_eq!(decode(sink.stored(i)).unwrap(), want);
            }
            assert!(sink.stored(3).is_empty(), "out of bounds");
            sink.reuse(100);
            assert_eq!(sink.rows(), 0);
            assert!(sink.stored(0).is_empty());
        }
    }

    #[test]
    fn bytes_that_are_not_stored_rows_are_an_error_not_a_panic() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
        let m = meta(true);
        let mut sink = RowSink::default();
        let r = Reading::new(3, 9, 1, 1_000, Celsius::from_num(52));
        sink.record(&Record::measured(r, Quality::Good, Flags::EMPTY), &m)
            .unwrap();
        let whole = sink.stored(0);
        assert!(decode(&whole[..whole.len() - 1]).is_err(), "cut short");
    }

    /// The widest row fits the stack buffer rows are stored through.
    #[test]
    fn the_widest_row_fits() {
        let r = Reading::new(
            u32::MAX,
            u32::MAX,
            u32::MAX,
            u64::MAX,
            Celsius::from_bits(i32::MIN),
        );
        let mut rec = Record::measured(r, Quality::Bad, Flags::EMPTY.with(Flag::Spike));
        let far = Some(Key {
            timestamp: u64::MAX,
            seq: u32::MAX,
        });
        rec.origin = Origin::Synthetic(mend_core::Source {
            method: mend_core::FillMethod::Stochastic,
            before: far,
            after: far,
        });
        let mut sink = RowSink::default();
        sink.record(&rec, &meta(true)).unwrap();
        let mut roomy = [0u8; 4 * MAX_STORED];
        let want = postcard::to_slice(
            &StoredRow::Record {
                record: rec,
                has_seq: true,
            },
            &mut roomy,
        )
        .unwrap();
        assert!(want.len() <= MAX_STORED, "{} bytes", want.len());
        assert_eq!(sink.stored(0), want);
    }

    fn any_key() -> impl Strategy<Value = Key> {
        (any::<u64>(), any::<u32>()).prop_map(|(timestamp, seq)| Key { timestamp, seq })
    }

    fn any_row() -> impl Strategy<Value = StoredRow> {
        let reading = (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<i32>(),
        )
            .prop_map(|(sensor, session, seq, ts, bits)| {
                Reading::new(sensor, session, seq, ts, Celsius::from_bits(bits))
            });
        let origin = prop_oneof![
            Just(Origin::Measured),
            (
                0usize..FillMethod::ALL.len(),
                proptest::option::of(any_key()),
                proptest::option::of(any_key()),
            )
                .prop_map(|(m, before, after)| Origin::Synthetic(Source {
                    method: FillMethod::ALL.get(m).copied().unwrap_or_default(),
                    before,
                    after,
                })),
        ];
        let record = (
            reading,
            prop_oneof![
                Just(Quality::Good),
                Just(Quality::Doubtful),
                Just(Quality::Bad)
            ],
            proptest::collection::vec(0usize..Flag::ALL.len(), 0..4),
            origin,
            any::<bool>(),
        )
            .prop_map(|(reading, quality, flags, origin, has_seq)| {
                let flags = flags
                    .into_iter()
                    .filter_map(|i| Flag::ALL.get(i).copied())
                    .fold(Flags::EMPTY, Flags::with);
                let mut record = Record::measured(reading, quality, flags);
                record.origin = origin;
                StoredRow::Record { record, has_seq }
            });
        let missing = (any::<u32>(), any::<u32>(), any_key(), any::<bool>()).prop_map(
            |(sensor, session, slot, has_seq)| StoredRow::Missing {
                sensor,
                session,
                slot,
                has_seq,
            },
        );
        prop_oneof![record, missing]
    }

    proptest! {
        /// The hand-written encoding is postcard's, byte for byte, so rows stored before it
        /// and after it are the same format, and decoding it gives the row back.
        #[test]
        fn a_row_is_encoded_as_postcard_encodes_it(rows in proptest::collection::vec(any_row(), 1..8)) {
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for row in &rows {
                row.encode(&mut ours);
                let mut buf = [0u8; MAX_STORED];
                theirs.extend_from_slice(postcard::to_slice(row, &mut buf).unwrap());
            }
            prop_assert_eq!(&ours, &theirs);
            prop_assert_eq!(decode(&ours).unwrap(), rows);
        }
    }
}
