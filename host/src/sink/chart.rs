//! The chart as a sink: repaired records become points of a [`Chart`], each drawn in the
//! style of what it is (measured, flagged, synthetic), and outages become shaded spans.

use std::io;

use mend_core::{Flag, Outage, Record};

use super::RecordSink;
use crate::chart::{Chart, PointKind};
use crate::input::StreamMeta;

/// Feeds output records to a [`Chart`].
///
/// # Examples
/// ```
/// use mend::chart::{Chart, ChartSpec};
/// use mend::sink::chart::ChartSink;
/// use mend::sink::RecordSink;
/// use mend_core::{Celsius, Flags, Quality, Reading, Record};
///
/// let mut chart = Chart::new(ChartSpec::default());
/// let r = Reading::new(1, 1, 0, 1_000, Celsius::from_num(52));
/// let meta = mend::input::StreamMeta { has_seq: true, period_ms: 1_000, clock: mend_core::ClockKind::Unix };
/// ChartSink { chart: &mut chart }.record(&Record::measured(r, Quality::Good, Flags::EMPTY), &meta)?;
/// assert_eq!(chart.len(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ChartSink<'c> {
    /// The chart.
    pub chart: &'c mut Chart,
}

/// How a record is drawn: fills apart, flagged readings apart (lateness alone is no flaw of
/// the value), the rest as measured.
fn kind_of(rec: &Record) -> PointKind {
    if rec.is_synthetic() {
        PointKind::Synthetic
    } else if rec.flags.iter().any(|f| f != Flag::Late) {
        PointKind::Flagged
    } else {
        PointKind::Measured
    }
}

impl RecordSink for ChartSink<'_> {
    fn record(&mut self, rec: &Record, _meta: &StreamMeta) -> io::Result<()> {
        self.chart.add(
            rec.reading.timestamp,
            rec.reading.celsius.to_bits(),
            kind_of(rec),
        );
        Ok(())
    }

    fn outage(&mut self, o: &Outage) -> io::Result<()> {
        self.chart.add_outage(o.before.timestamp, o.after.timestamp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::ChartSpec;
    use mend_core::{Celsius, ClockKind, FillMethod, Flags, Origin, Quality, Reading, Source};

    fn reading(seq: u32, t: f64) -> Reading {
        Reading::new(1, 1, seq, u64::from(seq) * 1_000, Celsius::from_num(t))
    }

    #[test]
    fn records_are_drawn_by_what_they_are() {
        let measured = Record::measured(reading(0, 52.0), Quality::Good, Flags::EMPTY);
        let late = Record::measured(
            reading(1, 52.5),
            Quality::Good,
            Flags::EMPTY.with(Flag::Late),
        );
        let flagged = Record::measured(
            reading(2, 60.0),
            Quality::Doubtful,
            Flags::EMPTY.with(Flag::OutOfBand),
        );
        let filled = Record {
            origin: Origin::Synthetic(Source {
                method: FillMethod::Linear,
                before: None,
                after: None,
            }),
            ..Record::measured(
                reading(3, 53.0),
                Quality::Good,
                Flags::EMPTY.with(Flag::Synthetic),
            )
        };
        let mut through_sink = Chart::new(ChartSpec::default());
        let mut sink = ChartSink {
            chart: &mut through_sink,
        };
        let meta = StreamMeta {
            has_seq: true,
            period_ms: 1_000,
            clock: ClockKind::Unix,
        };
        for r in [&measured, &late, &flagged, &filled] {
            sink.record(r, &meta).unwrap();
        }
        let mut by_hand = Chart::new(ChartSpec::default());
        for (r, kind) in [
            (&measured, PointKind::Measured),
            (&late, PointKind::Measured),
            (&flagged, PointKind::Flagged),
            (&filled, PointKind::Synthetic),
        ] {
            by_hand.add(r.reading.timestamp, r.reading.celsius.to_bits(), kind);
        }
        assert_eq!(through_sink.len(), 4);
        assert_eq!(
            through_sink.render_svg().unwrap(),
            by_hand.render_svg().unwrap()
        );
    }
}
