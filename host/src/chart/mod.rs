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

mod axis;
mod bin;
mod render;
mod spec;

pub use render::LEGEND_WIDTH;
pub use spec::{ChartSpec, PointKind};

use anyhow::{bail, Result};

use bin::{bin_is_empty, merge_bin, Bin, Span, EMPTY_BIN};
use render::Scene;

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
        Scene {
            spec,
            bins: self.occupied().collect(),
            points: self.points,
            totals: self.totals,
            outages: &self.outages,
            outages_total: self.outages_total,
            outage_range: self.outage_range,
        }
        .svg()
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
