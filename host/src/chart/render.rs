//! Drawing a chart: the bins folded into one column per pixel, then the band, outages,
//! the measured envelope and mean, fills and flagged readings, and the legend, as SVG.

use anyhow::{anyhow, Result};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::axis::{TickedRange, TimeAxis, MAX_TICKS};
use super::bin::{bin_is_empty, merge_bin, Bin, Span, EMPTY_BIN};
use super::spec::{ChartSpec, PointKind};

/// The width of the legend, right of the plot, in pixels (at most a third of the chart).
pub const LEGEND_WIDTH: u32 = 250;

/// What a chart shows, as [`Chart`](super::Chart) has gathered it.
pub(super) struct Scene<'a> {
    /// How it looks.
    pub(super) spec: &'a ChartSpec,
    /// The bins that hold points, in time order, with the time range each covers.
    pub(super) bins: Vec<(u64, u64, &'a Bin)>,
    /// The earliest and latest point, if any.
    pub(super) points: Option<(u64, u64)>,
    /// Points per kind.
    pub(super) totals: [u64; 3],
    /// The outages to draw.
    pub(super) outages: &'a [Span],
    /// Every outage added, drawn or not.
    pub(super) outages_total: u64,
    /// The earliest start and latest end of all outages, if any.
    pub(super) outage_range: Option<(u64, u64)>,
}

impl Scene<'_> {
    /// The chart as a standalone SVG document (the spec is checked by the caller).
    pub(super) fn svg(&self) -> Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (self.spec.width, self.spec.height))
                .into_drawing_area();
            self.draw(&root)
                .map_err(|e| anyhow!("drawing the chart: {e}"))?;
            root.present()
                .map_err(|e| anyhow!("writing the chart: {e}"))?;
        }
        Ok(svg)
    }

    /// The bins that hold points, with the time range each covers.
    fn occupied(&self) -> impl Iterator<Item = (u64, u64, &Bin)> + '_ {
        self.bins.iter().copied()
    }

    /// Draws the chart on `root`.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let spec = self.spec;
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
        let mut outages = self.outages.to_vec();
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
