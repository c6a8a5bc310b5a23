//! The axes of a chart: time ticks at round calendar steps with short labels, and an x
//! range whose ticks are those and not the ones plotters would pick.

use plotters::prelude::*;

/// An x range whose ticks are given (round times) rather than chosen by plotters.
pub(super) struct TickedRange {
    pub(super) inner: plotters::coord::types::RangedCoordf64,
    pub(super) ticks: Vec<f64>,
}

impl Ranged for TickedRange {
    type ValueType = f64;
    // Labels come from the chart's own formatter.
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: plotters::coord::ranged1d::KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
}

/// How times are shown: calendar time when they look like Unix milliseconds, else the time
/// since the first point in a unit that suits the span.
///
/// Ticks fall at round times (every 10 min, every 6 h, midnight…) rather than at equal
/// fractions of the span, and their labels are short: the time of day to the precision the
/// step needs, the date only at midnight; the axis description names the date once.
pub(super) struct TimeAxis {
    t0: u64,
    t1: u64,
    /// Milliseconds per x unit.
    unit_ms: f64,
    /// For calendar labels, the step between ticks in ms.
    calendar: Option<u64>,
    unit_name: &'static str,
}

/// Tick steps of a calendar axis, in ms: 1-2-5 below a second, then round clock steps.
const CALENDAR_STEPS: &[u64] = &[
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    2 * 60_000,
    5 * 60_000,
    10 * 60_000,
    15 * 60_000,
    30 * 60_000,
    3_600_000,
    2 * 3_600_000,
    3 * 3_600_000,
    6 * 3_600_000,
    12 * 3_600_000,
    DAY_MS,
    2 * DAY_MS,
    7 * DAY_MS,
    14 * DAY_MS,
    28 * DAY_MS,
    91 * DAY_MS,
    182 * DAY_MS,
    364 * DAY_MS,
];

const DAY_MS: u64 = 86_400_000;

/// At most this many ticks on the time axis.
pub(super) const MAX_TICKS: u64 = 8;

impl TimeAxis {
    /// 2000-01-01T00:00:00Z: a boot clock does not get there in any plausible uptime.
    const CALENDAR_FROM_MS: u64 = 946_684_800_000;

    /// 10000-01-01T00:00:00Z: RFC 3339 has four-digit years.
    const CALENDAR_UNTIL_MS: u64 = 253_402_300_800_000;

    /// The axis from `t0` to `t1` (ms).
    pub(super) fn new(t0: u64, t1: u64) -> Self {
        let span = t1 - t0;
        if t0 >= Self::CALENDAR_FROM_MS && t1 < Self::CALENDAR_UNTIL_MS {
            let step = CALENDAR_STEPS
                .iter()
                .copied()
                .find(|s| span / s < MAX_TICKS)
                .unwrap_or_else(|| span.div_ceil(MAX_TICKS).next_multiple_of(364 * DAY_MS));
            return TimeAxis {
                t0,
                t1,
                unit_ms: 1_000.0,
                calendar: Some(step),
                unit_name: "s",
            };
        }
        let (unit_ms, unit_name) = match span {
            s if s <= 300_000 => (1_000.0, "s"),
            s if s <= 5 * 3_600_000 => (60_000.0, "min"),
            s if s <= 5 * 86_400_000 => (3_600_000.0, "h"),
            _ => (86_400_000.0, "d"),
        };
        TimeAxis {
            t0,
            t1,
            unit_ms,
            calendar: None,
            unit_name,
        }
    }

    /// The x of time `t`, in the axis unit from the first time.
    pub(super) fn x(&self, t: u64) -> f64 {
        t.saturating_sub(self.t0) as f64 / self.unit_ms
    }

    /// The x of every tick: multiples of the step (whole UTC seconds, minutes, hours, days)
    /// for calendar time, 1-2-5 multiples of the unit otherwise.
    pub(super) fn ticks(&self) -> Vec<f64> {
        match self.calendar {
            Some(step) => {
                let first = self.t0.div_ceil(step).saturating_mul(step);
                (0..=MAX_TICKS)
                    .filter_map(|i| first.checked_add(i.checked_mul(step)?))
                    .take_while(|&t| t <= self.t1)
                    .map(|t| self.x(t))
                    .collect()
            }
            None => {
                let span = self.x(self.t1);
                let mut step = 10f64.powf((span / MAX_TICKS as f64).log10().floor());
                for k in [1.0, 2.0, 5.0, 10.0] {
                    if span / (step * k) < MAX_TICKS as f64 {
                        step *= k;
                        break;
                    }
                }
                if !(step.is_finite() && step > 0.0) {
                    return vec![0.0];
                }
                (0..=MAX_TICKS)
                    .map(|i| i as f64 * step)
                    .take_while(|&x| x <= span)
                    .collect()
            }
        }
    }

    /// The time at `x`, for a calendar axis.
    fn ms_at(&self, x: f64) -> u64 {
        let ms = (self.t0 as f64 + x * self.unit_ms).round();
        (ms.max(0.0) as u64).min(Self::CALENDAR_UNTIL_MS - 1)
    }

    /// The text of the tick at `x`.
    pub(super) fn label(&self, x: f64) -> String {
        match self.calendar {
            Some(step) => {
                let ms = self.ms_at(x);
                let (y, mo, d) = crate::text::timefmt::civil_from_days(ms / DAY_MS);
                let in_day = ms % DAY_MS;
                let (h, mi, s, milli) = (
                    in_day / 3_600_000,
                    in_day / 60_000 % 60,
                    in_day / 1_000 % 60,
                    in_day % 1_000,
                );
                let one_day = self.t0 / DAY_MS == self.t1 / DAY_MS;
                if in_day == 0 && !one_day {
                    if step >= 364 * DAY_MS || self.t1 - self.t0 > 364 * DAY_MS {
                        format!("{y:04}-{mo:02}-{d:02}")
                    } else {
                        format!("{mo:02}-{d:02}")
                    }
                } else if step >= 60_000 {
                    format!("{h:02}:{mi:02}")
                } else if step >= 1_000 {
                    format!("{h:02}:{mi:02}:{s:02}")
                } else {
                    format!("{h:02}:{mi:02}:{s:02}.{milli:03}")
                }
            }
            None => {
                let s = format!("{x:.3}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                if s == "-0" {
                    "0".to_owned()
                } else {
                    s.to_owned()
                }
            }
        }
    }

    /// The axis title: the date (or dates) of a calendar axis, else the unit and t0.
    pub(super) fn description(&self) -> String {
        let date = |ms: u64| {
            let (y, m, d) = crate::text::timefmt::civil_from_days(ms / DAY_MS);
            format!("{y:04}-{m:02}-{d:02}")
        };
        match self.calendar {
            Some(_) if self.t0 / DAY_MS == self.t1 / DAY_MS => {
                format!("time (UTC) on {}", date(self.t0))
            }
            Some(_) => format!(
                "time (UTC) from {} to {}",
                date(self.t0),
                date(self.ms_at(self.x(self.t1)))
            ),
            None => format!(
                "{} since t0 = {} ms on the sensor clock",
                self.unit_name, self.t0
            ),
        }
    }
}
