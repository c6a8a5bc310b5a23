//! CSV rows, and the [`RowWriter`] that formats rows straight into output blocks.
//!
//! This is the hot path of a replay: tens of millions of rows, each formatted in place in
//! the block it will be written from, with the pieces that repeat kept ready in a
//! [`CsvCache`]: the head of the last row (`sensor,session,seq,time`, patched in place for the
//! next row), recent values and the row tails.

use std::io;

use mend_core::{Key, Origin, Outage, Record};

use super::jsonl::{push_json_row, push_missing_json_row};
use super::record::RecordSink;
use super::row::{method_name, push_flags, RowFormat, CSV_HEADER, MISSING};
use crate::fs::background::{Block, BlockWrite};
use crate::input::StreamMeta;
use crate::text::numfmt::{
    count_up, push_celsius, push_u64, ByteOut, Line, Short, SliceOut, LINE_CAP,
};
use crate::text::timefmt::{push_time, TimeFormatter};

/// Appends `,origin,method,quality,flags\n`.
#[inline]
fn push_csv_tail(buf: &mut impl ByteOut, rec: &Record) {
    buf.put(b',');
    buf.put_slice(rec.origin.name().as_bytes());
    buf.put(b',');
    if let Some(m) = method_name(rec) {
        buf.put_slice(m.as_bytes());
    }
    buf.put(b',');
    buf.put_slice(rec.quality.name().as_bytes());
    buf.put(b',');
    push_flags(buf, rec);
    buf.put(b'\n');
}

/// Appends one CSV row (with its newline) in the [`CSV_HEADER`] layout.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Flag, Flags, Quality, Reading, Record};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: true, period_ms: 1_000, clock: ClockKind::Unix };
/// let flags = Flags::EMPTY.with(Flag::OutOfBand);
/// let rec = Record::measured(Reading::new(1, 7, 42, 5_000, Celsius::from_num(57.25)), flags.quality(), flags);
/// let mut row = Vec::new();
/// mend::sink::push_csv_row(&mut row, &rec, &meta);
/// assert_eq!(row, b"1,7,42,1970-01-01T00:00:05.000Z,57.25,measured,,doubtful,out_of_band\n");
/// ```
pub fn push_csv_row(buf: &mut Vec<u8>, rec: &Record, meta: &StreamMeta) {
    let r = &rec.reading;
    push_csv_head(
        buf,
        (r.sensor, r.session),
        meta.has_seq.then_some(r.seq),
        r.timestamp,
    );
    buf.push(b',');
    push_celsius(buf, r.celsius);
    push_csv_tail(buf, rec);
}

/// Appends the CSV row (with its newline) of an outage slot: the [`CSV_HEADER`] layout with
/// an empty `celsius`, origin `missing`, and empty `method`, `quality` and `flags`.
///
/// # Examples
/// ```
/// use mend_core::{ClockKind, Key, Outage};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: true, period_ms: 1_000, clock: ClockKind::Unix };
/// let o = Outage {
///     sensor: 1, session: 7,
///     before: Key { timestamp: 0, seq: 0 }, after: Key { timestamp: 90_000, seq: 90 },
///     missing: 89,
/// };
/// let mut row = Vec::new();
/// mend::sink::push_missing_csv_row(&mut row, &o, Key { timestamp: 5_000, seq: 5 }, &meta);
/// assert_eq!(row, b"1,7,5,1970-01-01T00:00:05.000Z,,missing,,,\n");
/// ```
pub fn push_missing_csv_row(buf: &mut Vec<u8>, o: &Outage, slot: Key, meta: &StreamMeta) {
    let seq = meta.has_seq.then_some(slot.seq);
    push_csv_head(buf, (o.sensor, o.session), seq, slot.timestamp);
    buf.extend_from_slice(b",,");
    buf.extend_from_slice(MISSING.as_bytes());
    buf.extend_from_slice(b",,,\n");
}

/// The fields every CSV row starts with: `sensor,session,seq,time` (seq empty without one).
#[inline]
fn push_csv_head(buf: &mut Vec<u8>, (sensor, session): (u32, u32), seq: Option<u32>, ts: u64) {
    push_u64(buf, u64::from(sensor));
    buf.push(b',');
    push_u64(buf, u64::from(session));
    buf.push(b',');
    if let Some(q) = seq {
        push_u64(buf, u64::from(q));
    }
    buf.push(b',');
    push_time(buf, ts);
}

/// Writes records as CSV or JSONL rows.
///
/// Rows are formatted straight into a [`Block`], which is handed to the writer whenever it
/// is full: a [`BackgroundWriter`](crate::fs::background::BackgroundWriter) takes it
/// whole, without a copy.
pub struct RowWriter<W: BlockWrite> {
    w: W,
    format: RowFormat,
    block: Block,
    json: Vec<u8>,
    time: TimeFormatter,
    cache: CsvCache,
}

/// Pieces of CSV rows that repeat: the head of the last row, the text of recent values, and
/// the row tails (`,origin,method,quality,flags\n`), of which there are only a few hundred
/// kinds.
struct CsvCache {
    head: Head,
    /// Texts of recent values, by a hash of their bits.
    values: Vec<(i32, Short)>,
    tails: Vec<Option<Line>>,
}

/// The head of the last row, `sensor,session,seq,time`. The next row of the same stream
/// usually differs from it only in the last digits of the seq and in the seconds, so those
/// are changed in place rather than the whole head formatted again.
struct Head {
    /// `(sensor, session, has_seq)` of `text`; `None` before the first row.
    of: Option<(u32, u32, bool)>,
    seq: u32,
    ts: u64,
    text: Line,
    /// Where the seq's digits are in `text` (empty without a seq).
    seq_at: (usize, usize),
}

impl Head {
    /// Makes the head that of `(sensor, session)` at `seq` and `ts`: patched in place when
    /// only the seq's digits (one more, as many of them) and the seconds change, else
    /// formatted anew.
    #[inline]
    fn set(&mut self, r: &mend_core::Reading, has_seq: bool, tf: &mut TimeFormatter) {
        let same = self.of == Some((r.sensor, r.session, has_seq)) && r.timestamp > self.ts;
        if !(same && self.patch(r.seq, r.timestamp, has_seq)) {
            self.format(r, has_seq, tf);
        }
    }

    /// Moves the head on to `seq` at `ts` (later than now) in place; false when that takes
    /// more than the seq's digits and the seconds (a new minute, another millisecond, a seq
    /// that is not the next one or has one digit more), and then the text must be formatted
    /// anew.
    #[inline]
    fn patch(&mut self, seq: u32, ts: u64, has_seq: bool) -> bool {
        let step = ts - self.ts;
        if step % 1_000 != 0 || step >= 60_000 {
            return false;
        }
        let text = self.text.filled_mut();
        // `…:SS.mmmZ`: the seconds are the 7th and 6th bytes from the end.
        let Some(at) = text.len().checked_sub(7) else {
            return false;
        };
        let Some([tens, ones]) = text.get(at..at + 2).map(|d| [d[0], d[1]]) else {
            return false;
        };
        let secs = u64::from(tens.wrapping_sub(b'0')) * 10 + u64::from(ones.wrapping_sub(b'0'));
        let secs = secs + step / 1_000;
        if secs >= 60 {
            return false;
        }
        if has_seq {
            let (from, to) = self.seq_at;
            let digits = text.get_mut(from..to).unwrap_or_default();
            if self.seq.checked_add(1) != Some(seq) || !count_up(digits) {
                return false;
            }
        }
        if let Some(d) = text.get_mut(at..at + 2) {
            d[0] = b'0' + (secs / 10) as u8;
            d[1] = b'0' + (secs % 10) as u8;
        }
        self.seq = seq;
        self.ts = ts;
        true
    }

    /// Formats the head of `r` anew.
    #[cold]
    fn format(&mut self, r: &mend_core::Reading, has_seq: bool, tf: &mut TimeFormatter) {
        let t = &mut self.text;
        t.clear();
        push_u64(t, u64::from(r.sensor));
        t.put(b',');
        push_u64(t, u64::from(r.session));
        t.put(b',');
        let from = t.len();
        if has_seq {
            push_u64(t, u64::from(r.seq));
        }
        self.seq_at = (from, t.len());
        t.put(b',');
        tf.push(t, r.timestamp);
        self.of = Some((r.sensor, r.session, has_seq));
        self.seq = r.seq;
        self.ts = r.timestamp;
    }
}

impl CsvCache {
    const VALUES: usize = 4096;

    fn new() -> Self {
        Self {
            head: Head {
                of: None,
                seq: 0,
                ts: 0,
                text: Line::new(),
                seq_at: (0, 0),
            },
            values: vec![(0, Short::default()); Self::VALUES],
            tails: vec![None; 5 * 3 * 128],
        }
    }

    #[inline]
    fn row(
        &mut self,
        out: &mut impl ByteOut,
        rec: &Record,
        meta: &StreamMeta,
        tf: &mut TimeFormatter,
    ) {
        let r = &rec.reading;
        self.head.set(r, meta.has_seq, tf);
        out.put_line(&self.head.text);
        out.put(b',');
        let bits = r.celsius.to_bits();
        // Fibonacci hashing: readings step by 1/8 or 1/16 °C, so the low bits alone would
        // crowd them into a few slots.
        let slot = ((bits as u32).wrapping_mul(0x9E37_79B9) >> 20) as usize % Self::VALUES;
        match self.values.get_mut(slot) {
            Some((b, text)) if *b == bits && !text.is_empty() => out.put_short(text),
            Some(entry) => {
                let mut text = Short::default();
                push_celsius(&mut text, r.celsius);
                out.put_short(&text);
                *entry = (bits, text);
            }
            None => push_celsius(out, r.celsius),
        }
        let kind = match rec.origin {
            Origin::Measured => 0,
            Origin::Synthetic(src) => match src.method {
                mend_core::FillMethod::Linear => 1,
                mend_core::FillMethod::Locf => 2,
                mend_core::FillMethod::Stochastic => 3,
                mend_core::FillMethod::None => 4,
            },
        };
        let idx = (kind * 3 + rec.quality as usize) * 128 + usize::from(rec.flags.bits() & 0x7F);
        match self.tails.get(idx) {
            Some(Some(t)) => out.put_line(t),
            _ => {
                let mut t = Line::new();
                push_csv_tail(&mut t, rec);
                out.put_line(&t);
                if let Some(x) = self.tails.get_mut(idx) {
                    *x = Some(t);
                }
            }
        }
    }
}

impl<W: BlockWrite> RowWriter<W> {
    /// A writer; the CSV header is written at once.
    pub fn new(mut w: W, format: RowFormat) -> io::Result<Self> {
        if format == RowFormat::Csv {
            w.write_all(CSV_HEADER.as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(Self {
            w,
            format,
            block: Block::new(),
            json: Vec::with_capacity(2 * LINE_CAP),
            time: TimeFormatter::default(),
            cache: CsvCache::new(),
        })
    }

    /// The underlying writer (call [`RecordSink::flush`] first: rows not yet handed over
    /// are dropped).
    pub fn into_inner(self) -> W {
        self.w
    }

    /// Moves the row in `self.json` into the block, or past it when it does not fit.
    fn put_json(&mut self) -> io::Result<()> {
        match self.block.spare().get_mut(..self.json.len()) {
            Some(dst) => {
                dst.copy_from_slice(&self.json);
                self.block.advance(self.json.len())?;
            }
            None => {
                self.w.write_block(&mut self.block)?;
                self.w.write_all(&self.json)?;
            }
        }
        Ok(())
    }
}

impl<W: BlockWrite> RecordSink for RowWriter<W> {
    #[inline]
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()> {
        match self.format {
            RowFormat::Csv => {
                // A CSV row is shorter than LINE_CAP, and a block that is not full has
                // SLACK > LINE_CAP bytes of room.
                let mut out = SliceOut::new(self.block.spare());
                self.cache.row(&mut out, rec, meta, &mut self.time);
                let n = out.finish()?;
                self.block.advance(n)?;
            }
            RowFormat::Jsonl => {
                self.json.clear();
                push_json_row(&mut self.json, rec, meta);
                self.put_json()?;
            }
        }
        if self.block.is_full() {
            self.w.write_block(&mut self.block)?;
        }
        Ok(())
    }

    fn missing(&mut self, o: &Outage, slot: Key, meta: &StreamMeta) -> io::Result<()> {
        self.json.clear();
        match self.format {
            RowFormat::Csv => push_missing_csv_row(&mut self.json, o, slot, meta),
            RowFormat::Jsonl => push_missing_json_row(&mut self.json, o, slot, meta),
        }
        self.put_json()?;
        if self.block.is_full() {
            self.w.write_block(&mut self.block)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.write_block(&mut self.block)?;
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mend_core::{Celsius, ClockKind, Flags, Quality, Reading, Source};

    /// Rows whose head is patched in place (the next seq, a few seconds on) equal the plain
    /// rows across every boundary the patch must not cross: a new minute, hour, day or
    /// year, a seq that gains a digit or wraps, a step that is not whole seconds, another
    /// stream in between, and a stream that changes whether it has a seq.
    #[test]
    fn patched_heads_equal_plain_rows() {
        let mut w = RowWriter::new(Vec::new(), RowFormat::Csv).unwrap();
        let mut want = format!("{CSV_HEADER}\n").into_bytes();
        let mut x: u64 = 11;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % n
        };
        // (sensor, session, seq, ts) of each stream; one starts just before the end of a
        // year, one near the largest seq, one far in the future.
        let mut streams = [
            (1u32, 1u32, 0u32, 1_767_225_590_000u64),
            (1, 2, 95, 59_000),
            (7, 3, u32::MAX - 40, 3_599_000),
            (2, 9, 9, 253_402_300_700_000),
        ];
        let steps = [
            1_000, 1_000, 1_000, 2_000, 59_000, 60_000, 61_000, 1_500, 999, 1,
        ];
        for i in 0..40_000 {
            let s = next(4) as usize;
            let (sensor, session, seq, ts) = &mut streams[s];
            *seq = if next(50) == 0 {
                seq.wrapping_add(2)
            } else {
                seq.wrapping_add(1)
            };
            *ts += steps[next(steps.len() as u64) as usize];
            let rec = Record::measured(
                Reading::new(*sensor, *session, *seq, *ts, Celsius::from_num(52)),
                Quality::Good,
                Flags::EMPTY,
            );
            let meta = StreamMeta {
                has_seq: s != 1 || (i / 500) % 2 == 0,
                period_ms: 1_000,
                clock: ClockKind::Unix,
            };
            w.record(&rec, &meta).unwrap();
            push_csv_row(&mut want, &rec, &meta);
        }
        w.flush().unwrap();
        let got = String::from_utf8(w.into_inner()).unwrap();
        let want = String::from_utf8(want).unwrap();
        for (n, (g, e)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, e, "row {n}");
        }
        assert_eq!(got.len(), want.len());
    }

    /// The cached row writer gives exactly the plain rows.
    #[test]
    fn cached_rows_equal_plain_rows() {
        let mut w = RowWriter::new(Vec::new(), RowFormat::Csv).unwrap();
        let mut want = format!("{CSV_HEADER}\n").into_bytes();
        let mut x: u64 = 7;
        for i in 0..20_000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let bits = ((x >> 40) as i32 % 40_000) - 20_000;
            let flags = Flags::try_from_bits((x >> 8) as u8 & 0x7F).unwrap();
            let mut rec = Record::measured(
                Reading::new(
                    (x % 3) as u32,
                    (x >> 3) as u32 % 2,
                    i as u32,
                    i * 997 + (x % 100_000_000),
                    Celsius::from_bits(bits),
                ),
                flags.quality(),
                flags,
            );
            if x % 5 == 0 {
                rec.origin = Origin::Synthetic(Source {
                    method: mend_core::FillMethod::ALL[(x % 4) as usize],
                    before: None,
                    after: None,
                });
                rec.quality = Quality::Doubtful;
            }
            let meta = StreamMeta {
                has_seq: x % 7 != 0,
                period_ms: 1_000,
                clock: ClockKind::Unix,
            };
            w.record(&rec, &meta).unwrap();
            push_csv_row(&mut want, &rec, &meta);
        }
        w.flush().unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
