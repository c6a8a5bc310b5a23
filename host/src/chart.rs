//! Charts of a repaired series (being written).
//!
//! Planned API, which the replay engine calls:
//! - `Chart::new(spec: ChartSpec) -> Chart`
//! - `chart.add(time_ms: u64, celsius_bits: i32, kind: PointKind)` for every output record,
//!   in any time order, with bounded memory (points are aggregated per pixel column);
//! - `chart.add_outage(start_ms: u64, end_ms: u64)`;
//! - `chart.render_svg(&self) -> anyhow::Result<String>`.
