//! Aggregate rows: their CSV layout, the writer, and the merge of a stream's partial windows
//! into one row per window, each written once it is complete and only by the run that
//! completes it.

use std::io;

use mend_core::Aggregate;

use crate::text::numfmt::{push_celsius, push_u64};
use crate::text::timefmt::push_time;

/// The CSV header of aggregates; [`push_aggregate_row`] says what each column holds.
pub const AGG_HEADER: &str = "sensor,session,window_start,window_end,measured,synthetic,rejected,min,max,mean,time_in_band_ms,mean_with_fills,time_in_band_with_fills_ms";

/// Writes merged aggregates as CSV rows.
pub struct AggregateOut<'w> {
    w: Box<dyn io::Write + 'w>,
    row: Vec<u8>,
}

impl<'w> AggregateOut<'w> {
    /// Aggregates rows to `w`; the header is written at once.
    pub fn new(mut w: Box<dyn io::Write + 'w>) -> io::Result<Self> {
        w.write_all(AGG_HEADER.as_bytes())?;
        w.write_all(b"\n")?;
        Ok(Self {
            w,
            row: Vec::with_capacity(256),
        })
    }

    /// Writes the row of `a`, a window of stream `(sensor, session)`.
    pub fn write(&mut self, (sensor, session): (u32, u32), a: &Aggregate) -> io::Result<()> {
        self.row.clear();
        push_aggregate_row(&mut self.row, sensor, session, a);
        self.w.write_all(&self.row)
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// One stream's aggregate windows on their way out. The stream's aggregator may give a
/// window in several partial aggregates (a record late for its window comes as a partial of
/// its own), and always in window order: partials of the same window are merged here, and a
/// window is written when the next one starts, unless an earlier checkpointed run wrote it.
#[derive(Debug, Default)]
pub struct WindowMerge {
    /// The window being merged (boxed: most streams never aggregate).
    pending: Option<Box<Aggregate>>,
    /// Windows starting before this were written by an earlier run.
    through: Option<u64>,
    /// The end of the last window written, by this run or an earlier one.
    written: Option<u64>,
}

impl WindowMerge {
    /// A stream's merge, where an earlier run wrote the windows starting before `through`.
    pub fn new(through: Option<u64>) -> Self {
        Self {
            pending: None,
            through,
            written: through,
        }
    }

    /// The end of the last window written (by this run or an earlier one): what the next
    /// checkpoint records.
    pub fn written_through(&self) -> Option<u64> {
        self.written
    }

    /// Merges a partial aggregate with the pending one of the same window, or writes the
    /// pending one to `out` (if any) and keeps this.
    pub fn push(
        &mut self,
        key: (u32, u32),
        a: Aggregate,
        out: Option<&mut AggregateOut<'_>>,
    ) -> io::Result<()> {
        match self.pending.as_mut() {
            Some(p) if p.window_start == a.window_start => {
                p.merge(&a);
                Ok(())
            }
            _ => match self.pending.replace(Box::new(a)) {
                Some(p) => self.write(key, &p, true, out),
                None => Ok(()),
            },
        }
    }

    /// Writes the pending window, if it is complete: it ends at or before `settled + 1`, or
    /// `settled` is `None` (everything is settled).
    pub fn finish(
        &mut self,
        key: (u32, u32),
        settled: Option<u64>,
        out: Option<&mut AggregateOut<'_>>,
    ) -> io::Result<()> {
        match self.pending.take() {
            Some(p) => {
                let complete = settled.is_none_or(|b| p.window_end() <= b.saturating_add(1));
                self.write(key, &p, complete, out)
            }
            None => Ok(()),
        }
    }

    /// Writes a finished window, unless an earlier run wrote it or it is not complete.
    fn write(
        &mut self,
        key: (u32, u32),
        a: &Aggregate,
        complete: bool,
        out: Option<&mut AggregateOut<'_>>,
    ) -> io::Result<()> {
        if !complete || self.through.is_some_and(|t| a.window_start < t) {
            return Ok(());
        }
        self.written = Some(a.window_end());
        match out {
            Some(w) => w.write(key, a),
            None => Ok(()),
        }
    }
}

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
/// mend::sink::aggregates::push_aggregate_row(&mut row, 1, 2, &a);
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
