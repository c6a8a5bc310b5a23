//! JSONL rows: one object per record, with the fields of the CSV header.
//!
//! They are formatted by hand, not through `serde_json`: `celsius` must be the exact decimal
//! value of the fixed-point reading with no trailing zeros (`52.0625`, `50`), and a float
//! through `serde_json` prints a whole number as `50.0`; the text could only go in as a raw
//! value (an extra feature and a string per row). Every other field is a number, a fixed
//! name or a time, none of which needs escaping.

use mend_core::{Key, Outage, Record};

use super::row::{method_name, push_flags, MISSING};
use crate::input::StreamMeta;
use crate::text::numfmt::{push_celsius, push_u64};
use crate::text::timefmt::push_time;

/// Appends one JSONL object (with its newline): the CSV fields, `seq` and `method` null when
/// absent, `celsius` an exact decimal number.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Flags, Quality, Reading, Record};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: false, period_ms: 1_000, clock: ClockKind::Unix };
/// let rec = Record::measured(Reading::new(0, 0, 0, 1_000, Celsius::from_num(52)), Quality::Good, Flags::EMPTY);
/// let mut row = Vec::new();
/// mend::sink::push_json_row(&mut row, &rec, &meta);
/// assert_eq!(
///     String::from_utf8(row).unwrap(),
///     "{\"sensor\":0,\"session\":0,\"seq\":null,\"time\":\"1970-01-01T00:00:01.000Z\",\"celsius\":52,\"origin\":\"measured\",\"method\":null,\"quality\":\"good\",\"flags\":\"\"}\n"
/// );
/// ```
pub fn push_json_row(buf: &mut Vec<u8>, rec: &Record, meta: &StreamMeta) {
    let r = &rec.reading;
    push_json_head(
        buf,
        (r.sensor, r.session),
        meta.has_seq.then_some(r.seq),
        r.timestamp,
    );
    buf.extend_from_slice(b",\"celsius\":");
    push_celsius(buf, r.celsius);
    buf.extend_from_slice(b",\"origin\":\"");
    buf.extend_from_slice(rec.origin.name().as_bytes());
    buf.extend_from_slice(b"\",\"method\":");
    match method_name(rec) {
        Some(m) => {
            buf.push(b'"');
            buf.extend_from_slice(m.as_bytes());
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"quality\":\"");
    buf.extend_from_slice(rec.quality.name().as_bytes());
    buf.extend_from_slice(b"\",\"flags\":\"");
    push_flags(buf, rec);
    buf.extend_from_slice(b"\"}\n");
}

/// Appends the JSONL object (with its newline) of an outage slot: the fields of
/// [`push_json_row`], with `celsius`, `method` and `quality` null and origin `missing`.
///
/// # Examples
/// ```
/// use mend_core::{ClockKind, Key, Outage};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: false, period_ms: 1_000, clock: ClockKind::Unix };
/// let o = Outage {
///     sensor: 0, session: 0,
///     before: Key { timestamp: 0, seq: 0 }, after: Key { timestamp: 90_000, seq: 0 },
///     missing: 89,
/// };
/// let mut row = Vec::new();
/// mend::sink::push_missing_json_row(&mut row, &o, Key { timestamp: 1_000, seq: 1 }, &meta);
/// assert_eq!(
///     String::from_utf8(row).unwrap(),
///     "{\"sensor\":0,\"session\":0,\"seq\":null,\"time\":\"1970-01-01T00:00:01.000Z\",\"celsius\":null,\"origin\":\"missing\",\"method\":null,\"quality\":null,\"flags\":\"\"}\n"
/// );
/// ```
pub fn push_missing_json_row(buf: &mut Vec<u8>, o: &Outage, slot: Key, meta: &StreamMeta) {
    let seq = meta.has_seq.then_some(slot.seq);
    push_json_head(buf, (o.sensor, o.session), seq, slot.timestamp);
    buf.extend_from_slice(b",\"celsius\":null,\"origin\":\"");
    buf.extend_from_slice(MISSING.as_bytes());
    buf.extend_from_slice(b"\",\"method\":null,\"quality\":null,\"flags\":\"\"}\n");
}

/// The fields every JSONL row starts with: `{"sensor":…,"session":…,"seq":…,"time":"…"`.
fn push_json_head(buf: &mut Vec<u8>, (sensor, session): (u32, u32), seq: Option<u32>, ts: u64) {
    buf.extend_from_slice(b"{\"sensor\":");
    push_u64(buf, u64::from(sensor));
    buf.extend_from_slice(b",\"session\":");
    push_u64(buf, u64::from(session));
    buf.extend_from_slice(b",\"seq\":");
    match seq {
        Some(q) => push_u64(buf, u64::from(q)),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"time\":\"");
    push_time(buf, ts);
    buf.push(b'"');
}
