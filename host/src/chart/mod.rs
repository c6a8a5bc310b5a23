//! Charts of a repaired series, as self-contained SVG.
//!
//! A replay can produce anything from ten readings to a hundred million, in any time order
//! (overlapping captures are merged as they are read). A chart that kept every point would
//! grow with the log, which the host's memory contract forbids, and a chart with a million
//! overlapping markers is unreadable anyway. So [`Chart`] keeps a fixed number of time bins
//! ([`Chart::BINS`]) over a range that adapts to the data: when a point falls outside the
//! range, neighbouring bins are merged pairwise (the bin width doubles) until it fits. Bins
//! are aligned to multiples of their width, so the final bins — and so the SVG — depend only
//! on the set of points, never on the order they arrived in. Each bin keeps, per
//! [`PointKind`], the count, minimum, maximum and exact integer sum of the values.
//!
//! At render time the bins are folded into one column per pixel of the plotting area: the
//! measured readings become a min–max envelope with a mean line, synthetic fills a dashed
//! orange line, flagged readings red dots (their extremes per column), outages grey spans and
//! the valid band a green strip.
//!
//! Text is written as SVG `<text>` with a generic `sans-serif` family and laid out with
//! plotters' built-in estimate of text widths, so rendering needs no font files and no system
//! libraries; any SVG viewer or browser picks a font.

use anyhow::{anyhow, bail, Result};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

/// What a charted point is.
///
/// # Examples
/// ```
/// use mend::chart::PointKind;
/// assert_ne!(PointKind::Measured, PointKind::Flagged);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PointKind {
    /// A measured reading of good quality.
    Measured,
    /// A value made by a gap fill; drawn in a distinct style, never mistaken for a measurement.
    Synthetic,
    /// A measured reading with a quality flag (out of band, spike, stuck, implausible, …).
    Flagged,
}

impl PointKind {
    const fn index(self) -> usize {
        match self {
            PointKind::Measured => 0,
            PointKind::Synthetic => 1,
            PointKind::Flagged => 2,
        }
    }
}

/// What a chart looks like: its title, the valid band it shades, and its size in pixels.
///
/// # Examples
/// ```
/// use mend::chart::ChartSpec;
/// let spec = ChartSpec::default();
/// assert_eq!(spec.title, "mend");
/// assert_eq!(spec.band, (50.0, 55.0));
/// assert_eq!((spec.width, spec.height), (1200, 500));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSpec {
    /// The caption at the top.
    pub title: String,
    /// The valid band `(low, high)` in °C, drawn as a shaded strip.
    pub band: (f64, f64),
    /// The width of the SVG in pixels.
    pub width: u32,
    /// The height of the SVG in pixels.
    pub height: u32,
}

impl Default for ChartSpec {
    fn default() -> Self {
        Self {
            title: "mend".to_owned(),
            band: (50.0, 55.0),
            width: 1200,
            height: 500,
        }
    }
}

/// Count, extremes and exact sum of the values of one kind in one bin or column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    count: u64,
    min: i32,
    max: i32,
    sum: i128,
}

impl Stat {
    const EMPTY: Stat = Stat {
        count: 0,
        min: i32::MAX,
        max: i32::MIN,
        sum: 0,
    };

    fn add(&mut self, bits: i32) {
        self.count += 1;
        self.min = self.min.min(bits);
        self.max = self.max.max(bits);
        self.sum += i128::from(bits);
    }

    fn merge(&mut self, other: &Stat) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The mean in °C. Computed from the exact sum, so it is the same for any arrival order.
    fn mean(&self) -> f64 {
        self.sum as f64 / self.count as f64 / 256.0
    }
}

/// One [`Stat`] per [`PointKind`].
type Bin = [Stat; 3];

const EMPTY_BIN: Bin = [Stat::EMPTY; 3];

fn bin_is_empty(bin: &Bin) -> bool {
    bin.iter().all(Stat::is_empty)
}

fn merge_bin(into: &mut Bin, from: &Bin) {
    for (a, b) in into.iter_mut().zip(from) {
        a.merge(b);
    }
}

/// An outage `[start, end]` in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: u64,
    end: u64,
}

impl Span {
    /// The order in which outages are kept when there are too many: longer first, then
    /// earlier. It is total, so the kept set does not depend on arrival order.
    fn rank(&self) -> (u64, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>) {
        (
            self.end - self.start,
            std::cmp::Reverse(self.start),
            std::cmp::Reverse(self.end),
        )
    }
}

/// A chart of a repaired series with memory bounded independently of the number of points.
///
/// Feed it every output record with [`add`](Chart::add) and every outage with
/// [`add_outage`](Chart::add_outage), in any order, then call
/// [`render_svg`](Chart::render_svg).
///
/// # Examples
/// ```
/// use mend::chart::{Chart, ChartSpec, PointKind};
/// use mend_core::Celsius;
///
/// let mut chart = Chart::new(ChartSpec { title: "sensor 7".into(), ..ChartSpec::default() });
/// for i in 0..100u64 {
///     let t = Celsius::from_num(52.0 + (i % 7) as f64 / 4.0);
///     chart.add(i * 1_000, t.to_bits(), PointKind::Measured);
/// }
/// chart.add(100_000, Celsius::from_num(52.5).to_bits(), PointKind::Synthetic);
/// chart.add(101_000, Celsius::from_num(61).to_bits(), PointKind::Flagged);
/// chart.add_outage(102_000, 160_000);
/// let svg = chart.render_svg()?;
/// assert!(svg.starts_with("<svg"));
/// assert!(svg.contains("sensor 7"));
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Chart {
    spec: ChartSpec,
    /// Always [`Chart::BINS`] long; absolute bin `j` (covering `[j·w, (j+1)·w)`) lives in slot
    /// `j % BINS`, so any run of `BINS` consecutive bins fits without moving anything.
    bins: Box<[Bin]>,
    /// The bin width `w` in milliseconds, a power of two.
    bin_ms: u64,
    /// The absolute indices of the first and last bins that may hold points.
    lo: u64,
    hi: u64,
    /// The earliest and latest point, if any.
    points: Option<(u64, u64)>,
    /// Points per kind.
    totals: [u64; 3],
    /// The longest outages, at most [`Chart::MAX_OUTAGES`].
    outages: Vec<Span>,
    /// Every outage added, drawn or not.
    outages_total: u64,
    /// The earliest start and latest end of all outages, if any.
    outage_range: Option<(u64, u64)>,
}

impl Chart {
    /// The number of time bins kept, whatever the number of points: about three times the
    /// plotting width of a default chart, so the bins are always finer than pixel columns.
    pub const BINS: usize = 4096;

    /// The number of outages drawn; beyond it only the longest are kept, and the legend
    /// counts the rest.
    pub const MAX_OUTAGES: usize = 256;

    /// An empty chart.
    ///
    /// # Examples
    /// ```
    /// use mend::chart::{Chart, ChartSpec};
    /// let svg = Chart::new(ChartSpec::default()).render_svg()?;
    /// assert!(svg.contains("no data"));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn new(spec: ChartSpec) -> Chart {
        Chart {
            spec,
            bins: vec![EMPTY_BIN; Self::BINS].into_boxed_slice(),
            bin_ms: 1,
            lo: 0,
            hi: 0,
            points: None,
            totals: [0; 3],
            outages: Vec::new(),
            outages_total: 0,
            outage_range: None,
        }
    }

    /// Adds one point: a time in milliseconds and a temperature as
    /// [`Celsius::to_bits`](mend_core::Celsius) (1/256 °C).
    ///
    /// # Examples
    /// ```
    /// use mend::chart::{Chart, ChartSpec, PointKind};
    /// let mut chart = Chart::new(ChartSpec::default());
    /// chart.add(5_000, 52 * 256, PointKind::Measured);
    /// chart.add(1_000, 51 * 256, PointKind::Measured); // any order
    /// assert_eq!(chart.len(), 2);
    /// ```
    pub fn add(&mut self, time_ms: u64, celsius_bits: i32, kind: PointKind) {
        match self.points {
            None => {
                self.lo = time_ms / self.bin_ms;
                self.hi = self.lo;
                self.points = Some((time_ms, time_ms));
            }
            Some((first, last)) => {
                self.points = Some((first.min(time_ms), last.max(time_ms)));
                while (self.hi.max(time_ms / self.bin_ms) - self.lo.min(time_ms / self.bin_ms))
                    >= Self::BINS as u64
                {
                    self.widen();
                }
                let j = time_ms / self.bin_ms;
                self.lo = self.lo.min(j);
                self.hi = self.hi.max(j);
            }
        }
        let j = time_ms / self.bin_ms;
        self.bins[Self::slot(j)][kind.index()].add(celsius_bits);
        self.totals[kind.index()] += 1;
    }

    /// Adds an outage: a gap too long to fill, from `start_ms` to `end_ms`.
    ///
    /// # Examples
    /// ```
    /// use mend::chart::{Chart, ChartSpec};
    /// let mut chart = Chart::new(ChartSpec::default());
    /// chart.add_outage(10_000, 70_000);
    /// assert!(chart.render_svg()?.contains("outages: 1"));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn add_outage(&mut self, start_ms: u64, end_ms: u64) {
        let span = Span {
            start: start_ms.min(end_ms),
            end: start_ms.max(end_ms),
        };
        self.outages_total += 1;
        self.outage_range = Some(match self.outage_range {
            None => (span.start, span.end),
            Some((a, b)) => (a.min(span.start), b.max(span.end)),
        });
        if self.outages.len() < Self::MAX_OUTAGES {
            self.outages.push(span);
            return;
        }
        let weakest = self
            .outages
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.rank())
            .map(|(i, s)| (i, s.rank()));
        if let Some((i, rank)) = weakest {
            if span.rank() > rank {
                self.outages[i] = span;
            }
        }
    }

    /// The number of points added.
    pub fn len(&self) -> u64 {
        self.totals.iter().sum()
    }

    /// True when no point was added.
    pub fn is_empty(&self) -> bool {
        self.points.is_none()
    }

    /// Renders the chart as a standalone SVG document.
    ///
    /// Fails only on an unusable [`ChartSpec`] (a size below 200×150 or above 16384 pixels,
    /// a band that is not finite or is reversed) or if plotters reports a drawing error.
    ///
    /// # Examples
    /// ```
    /// use mend::chart::{Chart, ChartSpec};
    /// let bad = ChartSpec { band: (55.0, 50.0), ..ChartSpec::default() };
    /// assert!(Chart::new(bad).render_svg().is_err());
    /// ```
    pub fn render_svg(&self) -> Result<String> {
        let spec = &self.spec;
        if !(200..=16_384).contains(&spec.width) || !(150..=16_384).contains(&spec.height) {
            bail!(
                "chart size {}x{} is outside 200x150 ..= 16384x16384 pixels",
                spec.width,
                spec.height
            );
        }
        let (band_lo, band_hi) = spec.band;
        if !band_lo.is_finite() || !band_hi.is_finite() || band_lo > band_hi {
            bail!("chart band {band_lo}..{band_hi} °C is not a finite, ordered range");
        }
        let mut svg = String::new();
        {
            let root =
                SVGBackend::with_string(&mut svg, (spec.width, spec.height)).into_drawing_area();
            self.draw(&root)
                .map_err(|e| anyhow!("drawing the chart: {e}"))?;
            root.present()
                .map_err(|e| anyhow!("writing the chart: {e}"))?;
        }
        Ok(svg)
    }

    const fn slot(j: u64) -> usize {
        (j % Self::BINS as u64) as usize
    }

    /// Doubles the bin width, merging bins pairwise.
    fn widen(&mut self) {
        let mut wider = vec![EMPTY_BIN; Self::BINS].into_boxed_slice();
        if self.points.is_some() {
            for j in self.lo..=self.hi {
                let bin = &self.bins[Self::slot(j)];
                if !bin_is_empty(bin) {
                    merge_bin(&mut wider[Self::slot(j / 2)], bin);
                }
            }
        }
        self.bins = wider;
        self.bin_ms *= 2;
        self.lo /= 2;
        self.hi /= 2;
    }

    /// The bins that hold points, with the time range each covers.
    fn occupied(&self) -> impl Iterator<Item = (u64, u64, &Bin)> + '_ {
        let count = if self.points.is_some() {
            self.hi - self.lo + 1
        } else {
            0
        };
        (self.lo..self.lo + count).filter_map(move |j| {
            let bin = &self.bins[Self::slot(j)];
            let start = j * self.bin_ms;
            (!bin_is_empty(bin)).then(|| (start, start.saturating_add(self.bin_ms - 1), bin))
        })
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let spec = &self.spec;
        root.fill(&WHITE)?;

        // The time range: every point and every outage.
        let (mut t0, mut t1) = match (self.points, self.outage_range) {
            (Some((a, b)), Some((c, d))) => (a.min(c), b.max(d)),
            (Some(r), None) | (None, Some(r)) => r,
            (None, None) => (0, 1_000),
        };
        if t0 == t1 {
            t0 = t0.saturating_sub(500);
            t1 = t1.saturating_add(500);
        }
        let axis = TimeAxis::new(t0, t1);
        let span_ms = t1 - t0;

        // Totals per kind, for the value range.
        let mut total: Bin = EMPTY_BIN;
        for (_, _, bin) in self.occupied() {
            merge_bin(&mut total, bin);
        }
        let [measured, synthetic, flagged] = total;
        let c = |bits: i32| f64::from(bits) / 256.0;
        let (band_lo, band_hi) = spec.band;
        let (mut core_lo, mut core_hi) = (band_lo, band_hi);
        for s in [&measured, &synthetic] {
            if !s.is_empty() {
                core_lo = core_lo.min(c(s.min));
                core_hi = core_hi.max(c(s.max));
            }
        }
        // Flagged values widen the range, but a single absurd value (−273 °C, a stuck
        // register) must not squash the band into a line: beyond twice the span of everything
        // else, flagged values are drawn at the edge as crosses.
        let reach = (core_hi - core_lo).max(1.0) * 2.0;
        let (mut y_lo, mut y_hi) = (core_lo, core_hi);
        if !flagged.is_empty() {
            y_lo = y_lo.min(c(flagged.min).max(core_lo - reach));
            y_hi = y_hi.max(c(flagged.max).min(core_hi + reach));
        }
        let pad = ((y_hi - y_lo) * 0.05).max(0.1);
        let (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
        let (x0, x1) = (0.0, axis.x(t1));

        // The legend goes to the right of the plot, where it hides nothing; the right
        // margin also leaves room for half of the last tick's label.
        let legend_w = LEGEND_WIDTH.min(spec.width / 3);
        let mut chart = ChartBuilder::on(root)
            .caption(&spec.title, ("sans-serif", 22))
            .margin(12)
            .margin_right(legend_w + 12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(
                TickedRange {
                    inner: (x0..x1).into(),
                    ticks: axis.ticks(),
                },
                y_lo..y_hi,
            )?;
        let x_fmt = |x: &f64| axis.label(*x);
        let y_fmt = |y: &f64| format!("{y:.1}");
        chart
            .configure_mesh()
            .x_labels(MAX_TICKS as usize + 1)
            .y_labels(10)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .x_desc(if self.points.is_none() && self.outage_range.is_none() {
                "time".to_owned()
            } else {
                axis.description()
            })
            .y_desc("temperature (°C)")
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .max_light_lines(2)
            .draw()?;

        // Fold the bins into one column per pixel of the plotting area.
        let cols = (chart.plotting_area().dim_in_pixel().0.max(1)) as usize;
        let col_of = |t: u64| -> usize {
            let off = u128::from(t.clamp(t0, t1) - t0);
            ((off * cols as u128 / u128::from(span_ms)) as usize).min(cols - 1)
        };
        let col_w = (x1 - x0) / cols as f64;
        let col_x = |col: usize| x0 + (col as f64 + 0.5) * col_w;
        let mut columns = vec![EMPTY_BIN; cols];
        for (start, end, bin) in self.occupied() {
            for col in columns.iter_mut().take(col_of(end) + 1).skip(col_of(start)) {
                merge_bin(col, bin);
            }
        }
        let mut outages = self.outages.clone();
        outages.sort_unstable();
        let mut blocked = vec![false; cols];
        for o in &outages {
            for b in blocked
                .iter_mut()
                .take(col_of(o.end) + 1)
                .skip(col_of(o.start))
            {
                *b = true;
            }
        }

        let green = RGBColor(44, 160, 44);
        let blue = RGBColor(31, 119, 180);
        let orange = RGBColor(255, 127, 14);
        let red = RGBColor(214, 39, 40);
        let grey = RGBColor(110, 110, 110);

        let mut legend: Vec<(String, Mark)> = Vec::new();

        // The valid band.
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x0, band_lo), (x1, band_hi)],
            green.mix(0.15).filled(),
        )))?;
        legend.push((
            format!("valid band {band_lo}–{band_hi} °C"),
            Mark::Patch(green.mix(0.3)),
        ));

        // Outages, at least one column wide so that short ones stay visible.
        if self.outages_total > 0 {
            let not_drawn = self.outages_total - outages.len() as u64;
            let label = if not_drawn == 0 {
                format!("outages: {} (not filled)", self.outages_total)
            } else {
                format!(
                    "outages: {} (not filled; {not_drawn} shorter ones not drawn)",
                    self.outages_total
                )
            };
            chart.draw_series(outages.iter().map(|o| {
                let (mut a, mut b) = (axis.x(o.start), axis.x(o.end));
                if b - a < col_w {
                    let mid = (a + b) / 2.0;
                    (a, b) = (mid - col_w / 2.0, mid + col_w / 2.0);
                }
                Rectangle::new([(a, y_lo), (b, y_hi)], grey.mix(0.22).filled())
            }))?;
            legend.push((label, Mark::Patch(grey.mix(0.35))));
        }

        let kind = |col: &Bin, k: PointKind| col[k.index()];
        let m_cols: Vec<usize> = (0..cols)
            .filter(|&i| !kind(&columns[i], PointKind::Measured).is_empty())
            .collect();

        // Measured: the min–max envelope per column.
        if !m_cols.is_empty() {
            chart.draw_series(m_cols.iter().map(|&i| {
                let s = kind(&columns[i], PointKind::Measured);
                let left = x0 + i as f64 * col_w;
                Rectangle::new(
                    [(left, c(s.min)), (left + col_w, c(s.max))],
                    blue.mix(0.25).filled(),
                )
            }))?;
            legend.push((
                "measured min–max per pixel column".to_owned(),
                Mark::Patch(blue.mix(0.25)),
            ));
        }

        // Synthetic: dashed orange, under the measured line, joined to the measured
        // neighbours it was computed from.
        let s_cols: Vec<usize> = (0..cols)
            .filter(|&i| !kind(&columns[i], PointKind::Synthetic).is_empty())
            .collect();
        if !s_cols.is_empty() {
            let occupied = |i: usize| !bin_is_empty(&columns[i]);
            let mut runs: Vec<Vec<usize>> = Vec::new();
            for &i in &s_cols {
                match runs.last_mut() {
                    Some(run)
                        if run
                            .last()
                            .is_some_and(|&q| (q + 1..i).all(|k| !occupied(k) && !blocked[k])) =>
                    {
                        run.push(i)
                    }
                    _ => runs.push(vec![i]),
                }
            }
            let measured_at = |i: usize| {
                let s = kind(&columns[i], PointKind::Measured);
                (!s.is_empty() && !blocked[i]).then(|| (col_x(i), s.mean()))
            };
            let mut lines = Vec::new();
            let mut dots = Vec::new();
            for run in runs {
                let (first, last) = (run[0], run[run.len() - 1]);
                let mut pts: Vec<(f64, f64)> = Vec::with_capacity(run.len() + 2);
                let before = (0..first).rev().find(|&k| occupied(k));
                if let Some(p) = before.and_then(measured_at) {
                    pts.push(p);
                }
                pts.extend(
                    run.iter()
                        .map(|&i| (col_x(i), kind(&columns[i], PointKind::Synthetic).mean())),
                );
                let after = (last + 1..cols).find(|&k| occupied(k));
                if let Some(p) = after.and_then(measured_at) {
                    pts.push(p);
                }
                if pts.len() == 1 {
                    dots.push(pts[0]);
                } else {
                    lines.push(pts);
                }
            }
            chart.draw_series(
                lines
                    .into_iter()
                    .map(|pts| DashedPathElement::new(pts, 6, 4, orange.stroke_width(2))),
            )?;
            legend.push((
                format!("synthetic fill ({})", self.totals[1]),
                Mark::Line(orange, 2),
            ));
            chart.draw_series(
                dots.into_iter()
                    .map(|p| Circle::new(p, 3, orange.stroke_width(2))),
            )?;
        }

        // The measured mean line on top, broken where a gap lies between two columns
        // (synthetic-only columns or an outage).
        if !m_cols.is_empty() {
            let gap_between = |a: usize, b: usize| {
                (a + 1..b).any(|i| {
                    blocked[i]
                        || (kind(&columns[i], PointKind::Measured).is_empty()
                            && !kind(&columns[i], PointKind::Synthetic).is_empty())
                })
            };
            let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut prev: Option<usize> = None;
            for &i in &m_cols {
                let p = (col_x(i), kind(&columns[i], PointKind::Measured).mean());
                match (prev, runs.last_mut()) {
                    (Some(q), Some(run)) if !gap_between(q, i) => run.push(p),
                    _ => runs.push(vec![p]),
                }
                prev = Some(i);
            }
            chart.draw_series(runs.into_iter().map(|run| {
                if run.len() == 1 {
                    // A lone column still gets a visible mark.
                    let (x, y) = run[0];
                    PathElement::new(vec![(x - col_w, y), (x + col_w, y)], blue.stroke_width(2))
                } else {
                    PathElement::new(run, blue.stroke_width(1))
                }
            }))?;
            legend.push((
                format!("measured mean ({})", self.totals[0]),
                Mark::Line(blue, 1),
            ));
        }

        // Flagged: the extremes of each column, crosses at the edge when off-scale.
        let f_cols: Vec<usize> = (0..cols)
            .filter(|&i| !kind(&columns[i], PointKind::Flagged).is_empty())
            .collect();
        if !f_cols.is_empty() {
            let mut dots = Vec::new();
            let mut off_scale = Vec::new();
            for &i in &f_cols {
                let s = kind(&columns[i], PointKind::Flagged);
                let mut values = vec![c(s.min)];
                if s.max != s.min {
                    values.push(c(s.max));
                }
                for v in values {
                    if v < y_lo || v > y_hi {
                        off_scale.push((col_x(i), v.clamp(y_lo, y_hi)));
                    } else {
                        dots.push((col_x(i), v));
                    }
                }
            }
            let label = if off_scale.is_empty() {
                format!("flagged ({})", self.totals[2])
            } else {
                format!("flagged ({}; × = off-scale)", self.totals[2])
            };
            chart.draw_series(dots.into_iter().map(|p| Circle::new(p, 2, red.filled())))?;
            legend.push((label, Mark::Dot(red)));
            chart.draw_series(
                off_scale
                    .into_iter()
                    .map(|p| Cross::new(p, 5, red.stroke_width(2))),
            )?;
        }

        if self.points.is_none() {
            let style = TextStyle::from(("sans-serif", 20).into_font())
                .color(&grey)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
            chart.draw_series(std::iter::once(Text::new(
                "no data",
                ((x0 + x1) / 2.0, (y_lo + y_hi) / 2.0),
                style,
            )))?;
        }

        // The legend, right of the plot (drawn on the whole chart: the plotting area clips).
        let (plot_x, plot_y) = chart.plotting_area().get_base_pixel();
        let plot_w = i32::try_from(chart.plotting_area().dim_in_pixel().0).unwrap_or(0);
        let left = plot_x.saturating_add(plot_w).saturating_add(24);
        let font = TextStyle::from(("sans-serif", 13).into_font());
        for (i, (label, mark)) in legend.iter().enumerate() {
            let y = plot_y + 8 + 20 * i32::try_from(i).unwrap_or(0);
            match *mark {
                Mark::Patch(c) => root.draw(&Rectangle::new(
                    [(left, y - 5), (left + 16, y + 5)],
                    c.filled(),
                ))?,
                Mark::Line(c, w) => root.draw(&PathElement::new(
                    vec![(left, y), (left + 16, y)],
                    c.stroke_width(w),
                ))?,
                Mark::Dot(c) => root.draw(&Circle::new((left + 8, y), 3, c.filled()))?,
            }
            root.draw(&Text::new(
                label.clone(),
                (left + 24, y),
                font.clone().pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            ))?;
        }
        Ok(())
    }
}

/// How a legend entry is marked.
#[derive(Clone, Copy)]
enum Mark {
    /// A filled patch (band, envelope, outage).
    Patch(RGBAColor),
    /// A line of this width.
    Line(RGBColor, u32),
    /// A dot.
    Dot(RGBColor),
}

/// An x range whose ticks are given (round times) rather than chosen by plotters.
struct TickedRange {
    inner: plotters::coord::types::RangedCoordf64,
    ticks: Vec<f64>,
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

/// The width of the legend, right of the plot, in pixels (at most a third of the chart).
pub const LEGEND_WIDTH: u32 = 250;

/// How times are shown: calendar time when they look like Unix milliseconds, else the time
/// since the first point in a unit that suits the span.
///
/// Ticks fall at round times (every 10 min, every 6 h, midnight…) rather than at equal
/// fractions of the span, and their labels are short: the time of day to the precision the
/// step needs, the date only at midnight; the axis description names the date once.
struct TimeAxis {
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
const MAX_TICKS: u64 = 8;

impl TimeAxis {
    /// 2000-01-01T00:00:00Z: a boot clock does not get there in any plausible uptime.
    const CALENDAR_FROM_MS: u64 = 946_684_800_000;

    /// 10000-01-01T00:00:00Z: RFC 3339 has four-digit years.
    const CALENDAR_UNTIL_MS: u64 = 253_402_300_800_000;

    fn new(t0: u64, t1: u64) -> Self {
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

    fn x(&self, t: u64) -> f64 {
        t.saturating_sub(self.t0) as f64 / self.unit_ms
    }

    /// The x of every tick: multiples of the step (whole UTC seconds, minutes, hours, days)
    /// for calendar time, 1-2-5 multiples of the unit otherwise.
    fn ticks(&self) -> Vec<f64> {
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

    fn label(&self, x: f64) -> String {
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

    fn description(&self) -> String {
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
#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so the tests need no extra crates.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    fn bits(c: f64) -> i32 {
        (c * 256.0).round() as i32
    }

    /// A day at 1 Hz with every kind of point and a few outages.
    type Points = Vec<(u64, i32, PointKind)>;

    fn sample() -> (Points, Vec<(u64, u64)>) {
        let mut rng = Lcg(7);
        let mut points = Vec::new();
        for i in 0..20_000u64 {
            let t = 1_700_000_000_000 + i * 1_000;
            if (5_000..5_600).contains(&i) {
                continue; // an outage
            }
            let wave = 52.5 + 1.5 * ((i as f64) / 900.0).sin();
            let noise = (rng.next() % 64) as f64 / 256.0;
            let kind = match rng.next() % 20 {
                0 | 1 => PointKind::Synthetic,
                2 => PointKind::Flagged,
                _ => PointKind::Measured,
            };
            let value = if kind == PointKind::Flagged {
                wave + 4.0
            } else {
                wave + noise
            };
            points.push((t, bits(value), kind));
        }
        points.push((
            1_700_000_000_000 + 9_000_000,
            bits(-273.0),
            PointKind::Flagged,
        ));
        let outages = vec![
            (1_700_000_000_000 + 5_000_000, 1_700_000_000_000 + 5_600_000),
            (
                1_700_000_000_000 + 12_000_000,
                1_700_000_000_000 + 12_100_000,
            ),
        ];
        (points, outages)
    }

    fn chart_of(points: &[(u64, i32, PointKind)], outages: &[(u64, u64)]) -> Chart {
        let mut chart = Chart::new(ChartSpec {
            title: "sensor 1 & friends".into(),
            ..ChartSpec::default()
        });
        for &(t, v, k) in points {
            chart.add(t, v, k);
        }
        for &(a, b) in outages {
            chart.add_outage(a, b);
        }
        chart
    }

    #[test]
    fn memory_is_bounded_by_the_bin_count() {
        let mut chart = Chart::new(ChartSpec::default());
        let mut rng = Lcg(1);
        for i in 0..1_000_000u64 {
            // Mostly ascending, with stragglers from the past.
            let t = if i % 97 == 0 {
                rng.next() % (i * 1_000 + 1)
            } else {
                i * 1_000
            };
            chart.add(t, bits(52.0), PointKind::Measured);
            assert_eq!(chart.bins.len(), Chart::BINS);
        }
        for i in 0..10_000u64 {
            chart.add_outage(i * 10, i * 10 + i % 50);
        }
        assert_eq!(chart.len(), 1_000_000);
        assert_eq!(chart.bins.len(), Chart::BINS);
        assert!(chart.outages.len() <= Chart::MAX_OUTAGES);
        assert!(chart.hi - chart.lo < Chart::BINS as u64);
        let counted: u64 = chart.occupied().map(|(_, _, b)| b[0].count).sum();
        assert_eq!(counted, 1_000_000, "widening never loses a point");
        let svg = chart.render_svg().unwrap();
        assert!(
            svg.len() < 2_000_000,
            "SVG size depends on pixels, not points"
        );
    }

    #[test]
    fn order_does_not_change_the_svg() {
        let (mut points, mut outages) = sample();
        let a = chart_of(&points, &outages).render_svg().unwrap();
        points.reverse();
        outages.reverse();
        let b = chart_of(&points, &outages).render_svg().unwrap();
        let mut rng = Lcg(42);
        for i in (1..points.len()).rev() {
            let j = (rng.next() as usize) % (i + 1);
            points.swap(i, j);
        }
        let c = chart_of(&points, &outages).render_svg().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn kept_outages_do_not_depend_on_order() {
        let spans: Vec<(u64, u64)> = (0..1_000u64).map(|i| (i * 100, i * 100 + i % 37)).collect();
        let mut a = chart_of(&[], &spans);
        let mut rev = spans.clone();
        rev.reverse();
        let mut b = chart_of(&[], &rev);
        a.outages.sort_unstable();
        b.outages.sort_unstable();
        assert_eq!(a.outages, b.outages);
        assert_eq!(a.outages.len(), Chart::MAX_OUTAGES);
        // The oracle: sort everything by rank and keep the best.
        let mut all: Vec<Span> = spans
            .iter()
            .map(|&(start, end)| Span { start, end })
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.rank()));
        all.truncate(Chart::MAX_OUTAGES);
        all.sort_unstable();
        assert_eq!(a.outages, all);
        let svg = a.render_svg().unwrap();
        assert!(svg.contains("outages: 1000"));
        assert!(svg.contains("744 shorter ones not drawn"));
    }

    #[test]
    fn svg_is_valid_and_has_text() {
        let (points, outages) = sample();
        let svg = chart_of(&points, &outages).render_svg().unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("sensor 1 &amp; friends"), "title, escaped");
        assert!(svg.contains("temperature (°C)"));
        assert!(svg.contains("time (UTC)"));
        assert!(
            svg.contains("time (UTC) from 2023-11-14 to 2023-11-15"),
            "calendar time on the x axis"
        );
        assert!(svg.contains("valid band 50–55 °C"));
        assert!(svg.contains("synthetic fill"));
        assert!(svg.contains("flagged"));
        assert!(svg.contains("off-scale"), "−273 °C is drawn at the edge");
        assert!(svg.contains("stroke-dasharray") || svg.matches("<polyline").count() > 10);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    /// The `<text>` elements of an SVG: x, anchor, font size and content.
    fn texts(svg: &str) -> Vec<(f64, String, f64, String)> {
        let attr = |tag: &str, name: &str| -> String {
            let key = format!(" {name}=\"");
            tag.split_once(&key)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(v, _)| v.to_owned())
                .unwrap_or_default()
        };
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let (tag, rest) = t.split_once('>')?;
                let (content, _) = rest.split_once("</text>")?;
                Some((
                    attr(tag, "x").parse().ok()?,
                    attr(tag, "text-anchor"),
                    attr(tag, "font-size").parse().ok()?,
                    content.trim().to_owned(),
                ))
            })
            .collect()
    }

    #[test]
    fn time_ticks_are_round_and_short_and_the_legend_hides_nothing() {
        let (points, outages) = sample();
        let spec = ChartSpec::default();
        let svg = chart_of(&points, &outages).render_svg().unwrap();
        let texts = texts(&svg);
        let is_tick = |t: &str| {
            let b = t.as_bytes();
            b.len() == 5
                && (b[2] == b':' || b[2] == b'-')
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 2 || c.is_ascii_digit())
        };
        // 22:13:20 to 03:46:40 the next day: a tick every hour, the date at midnight.
        let ticks: Vec<&str> = texts
            .iter()
            .map(|t| t.3.as_str())
            .filter(|t| is_tick(t))
            .collect();
        assert_eq!(ticks, ["23:00", "11-15", "01:00", "02:00", "03:00"]);
        assert_eq!(svg.matches("2023-11-14").count(), 1, "the date once");
        // No text runs off the right edge (plotters' estimate: 0.6 em per character), here
        // or in an hour from midnight.
        let hour: Points = (0..3_600u64)
            .map(|i| {
                (
                    1_767_225_600_000 + i * 1_000,
                    bits(52.0),
                    PointKind::Measured,
                )
            })
            .collect();
        let hour_svg = chart_of(&hour, &[]).render_svg().unwrap();
        for (x, anchor, size, text) in texts.iter().chain(&super::tests::texts(&hour_svg)) {
            let w = text.chars().count() as f64 * size * 0.6;
            let right = match anchor.as_str() {
                "middle" => x + w / 2.0,
                "end" => *x,
                _ => x + w,
            };
            assert!(right <= f64::from(spec.width), "{text:?} ends at {right}");
        }
        // The legend is right of every point.
        let legend_x = texts
            .iter()
            .find(|t| t.3.starts_with("valid band"))
            .map(|t| t.0)
            .unwrap();
        let max_cx = svg
            .split("<circle cx=\"")
            .skip(1)
            .filter_map(|c| c.split('"').next()?.parse::<f64>().ok())
            .fold(0.0, f64::max);
        assert!(max_cx > 0.0);
        assert!(
            legend_x > max_cx,
            "legend at {legend_x}, points up to {max_cx}"
        );
    }

    #[test]
    fn outages_are_shown() {
        let (points, outages) = sample();
        let svg = chart_of(&points, &outages).render_svg().unwrap();
        assert!(svg.contains("outages: 2 (not filled)"));
        let without = chart_of(&points, &[]).render_svg().unwrap();
        assert!(!without.contains("outages"));
        // The grey spans are extra rectangles.
        assert!(svg.matches("<rect").count() >= without.matches("<rect").count() + 2);
    }

    #[test]
    fn empty_and_single_point_charts_render() {
        let svg = Chart::new(ChartSpec::default()).render_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("no data") && svg.contains("mend"));
        let mut one = Chart::new(ChartSpec::default());
        one.add(0, bits(51.0), PointKind::Measured);
        let svg = one.render_svg().unwrap();
        assert!(!svg.contains("no data"));
        assert!(svg.contains("s since t0 = 0 ms"));
    }

    #[test]
    fn extreme_times_and_values_render() {
        let mut chart = Chart::new(ChartSpec::default());
        chart.add(1_767_225_600_000, bits(52.0), PointKind::Measured);
        chart.add(u64::MAX, i32::MAX, PointKind::Flagged);
        chart.add(0, i32::MIN, PointKind::Measured);
        chart.add_outage(u64::MAX, 0);
        let svg = chart.render_svg().unwrap();
        assert!(svg.starts_with("<svg") && !svg.contains("NaN"));
        // Calendar labels right up to the last RFC 3339 year, relative ones beyond it.
        let mut late = Chart::new(ChartSpec::default());
        late.add(253_402_300_799_000, bits(52.0), PointKind::Measured);
        late.add(253_402_300_800_500, bits(52.0), PointKind::Measured);
        assert!(late.render_svg().unwrap().contains("since t0"));
    }

    fn kind_of(k: u8) -> PointKind {
        match k % 3 {
            0 => PointKind::Measured,
            1 => PointKind::Synthetic,
            _ => PointKind::Flagged,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any points and outages render, and reversing their order changes nothing.
        #[test]
        fn any_input_renders_the_same_in_any_order(
            points in proptest::collection::vec(
                (proptest::prelude::any::<u64>(), proptest::prelude::any::<i32>(), 0u8..3),
                0..200,
            ),
            near in proptest::collection::vec((0u64..100_000, -20_000i32..20_000, 0u8..3), 0..200),
            outages in proptest::collection::vec(
                (proptest::prelude::any::<u64>(), proptest::prelude::any::<u64>()),
                0..300,
            ),
        ) {
            let mut all: Vec<(u64, i32, PointKind)> =
                points.iter().map(|&(t, v, k)| (t, v, kind_of(k))).collect();
            all.extend(near.iter().map(|&(t, v, k)| (1_767_225_600_000 + t, v, kind_of(k))));
            let a = chart_of(&all, &outages).render_svg().unwrap();
            all.reverse();
            let mut rev = outages.clone();
            rev.reverse();
            let b = chart_of(&all, &rev).render_svg().unwrap();
            proptest::prop_assert!(a.starts_with("<svg"));
            proptest::prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn bad_specs_are_errors() {
        for spec in [
            ChartSpec {
                width: 10,
                ..ChartSpec::default()
            },
            ChartSpec {
                band: (f64::NAN, 55.0),
                ..ChartSpec::default()
            },
            ChartSpec {
                band: (56.0, 55.0),
                ..ChartSpec::default()
            },
        ] {
            assert!(Chart::new(spec).render_svg().is_err());
        }
    }

    #[test]
    fn widening_keeps_exact_sums() {
        let mut chart = Chart::new(ChartSpec::default());
        chart.add(0, 10, PointKind::Measured);
        chart.add(1, 20, PointKind::Measured);
        chart.add(u64::MAX / 2, 30, PointKind::Synthetic);
        let all: Vec<_> = chart.occupied().collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].2[0].sum, 30);
        assert_eq!(all[0].2[0].count, 2);
        assert_eq!(all[1].2[1].sum, 30);
    }
}
