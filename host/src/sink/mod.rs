//! Writing results: the sinks repaired records go to.
//!
//! A sink takes a stream's records in time order ([`RecordSink`]); one file each holds the
//! CSV rows and their writer ([`RowWriter`]), the JSONL rows, the frame logs
//! ([`MlogWriter`]) and the dead letters ([`dlq`]). Outputs go through
//! [`AtomicFile`](crate::fs::AtomicFile), so that they appear complete or not at all.

pub mod chart;
mod csv;
pub mod dlq;
mod jsonl;
mod mlog;
mod record;
mod row;

pub use csv::{push_csv_row, push_missing_csv_row, RowWriter};
pub use jsonl::{push_json_row, push_missing_json_row};
pub use mlog::MlogWriter;
pub use record::{OutRecord, RecordSink, Tee, VecSink};
pub use row::{RowFormat, CSV_HEADER, MISSING};

use mend_core::Aggregate;

use crate::text::numfmt::{push_celsius, push_u64};
use crate::text::timefmt::push_time;

/// The CSV header of aggregates; [`push_aggregate_row`] says what each column holds.
pub const AGG_HEADER: &str = "sensor,session,window_start,window_end,measured,synthetic,rejected,min,max,mean,time_in_band_ms,mean_with_fills,time_in_band_with_fills_ms";

/// Appends one aggregates row (with its newline) in the [`AGG_HEADER`] layout.
///
/// One row per stream and window; a column that says nothing about fills is over measured
/// readings only (a made-up value never sets an extreme or moves a measured mean):
/// - `sensor`, `session`: the stream;
/// - `window_start`, `window_end`: the window `[start, end)`, RFC 3339 UTC with ms; windows
///   are aligned to multiples of their length since the Unix epoch;
/// - `measured`: measured readings that are not of quality bad;
/// - `synthetic`: fills (synthetic records) that are not of quality bad;
/// - `rejected`: records of quality bad (implausible), which count nowhere else;
/// - `min`, `max`, `mean`: over the measured readings, in °C, the exact decimal value of the
///   1/256 °C result (the mean is rounded to the nearest 1/256 °C, ties away from zero);
///   empty when the window holds no measured reading;
/// - `time_in_band_ms`: measured readings inside the band (inclusive) × the sampling period;
/// - `mean_with_fills`: the mean of the measured readings and the fills together, rounded
///   the same way (what the repaired series averages to);
/// - `time_in_band_with_fills_ms`: measured readings and fills inside the band × the period.
///
/// Sums are exact integers in 1/256 °C, so every figure is independent of arrival order.
///
/// # Examples
/// ```
/// use mend_core::{Aggregate, Celsius, Flags, Quality, Reading, Record};
/// let band = (Celsius::from_num(50), Celsius::from_num(55));
/// let mut a = Aggregate::new(60_000, 60_000);
/// for t in [52, 53] {
///     let r = Record::measured(Reading::new(1, 2, 0, 60_000, Celsius::from_num(t)), Quality::Good, Flags::EMPTY);
///     a.add(&r, band, 1_000);
/// }
/// let mut row = Vec::new();
/// mend::sink::push_aggregate_row(&mut row, 1, 2, &a);
/// assert_eq!(row, b"1,2,1970-01-01T00:01:00.000Z,1970-01-01T00:02:00.000Z,2,0,0,52,53,52.5,2000,52.5,2000\n");
/// ```
pub fn push_aggregate_row(buf: &mut Vec<u8>, sensor: u32, session: u32, a: &Aggregate) {
    push_u64(buf, u64::from(sensor));
    buf.push(b',');
    push_u64(buf, u64::from(session));
    buf.push(b',');
    push_time(buf, a.window_start);
    buf.push(b',');
    push_time(buf, a.window_end());
    buf.push(b',');
    push_u64(buf, u64::from(a.measured));
    buf.push(b',');
    push_u64(buf, u64::from(a.synthetic));
    buf.push(b',');
    push_u64(buf, u64::from(a.rejected));
    buf.push(b',');
    if let Some(m) = a.min {
        push_celsius(buf, m);
    }
    buf.push(b',');
    if let Some(m) = a.max {
        push_celsius(buf, m);
    }
    buf.push(b',');
    if let Some(m) = a.mean() {
        push_celsius(buf, m);
    }
    buf.push(b',');
    push_u64(buf, a.in_band_ms);
    buf.push(b',');
    if let Some(m) = a.mean_with_fills() {
        push_celsius(buf, m);
    }
    buf.push(b',');
    push_u64(buf, a.in_band_with_fills_ms());
    buf.push(b'\n');
}
