//! What `mend replay --chart` costs: adding a point (called once per output record) and
//! rendering the SVG of a large series.
//!
//! Run: `cargo bench -p mend --bench chart -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mend::chart::{Chart, ChartSpec, PointKind};

/// A 1 Hz series in unix milliseconds: a slow wave, 10 % synthetic, 5 % flagged, and, when
/// `shuffle` is set, the order of a merge of overlapping captures (blocks out of order).
fn points(n: u64, shuffle: bool) -> Vec<(u64, i32, PointKind)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut v: Vec<(u64, i32, PointKind)> = (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = (state >> 33) % 100;
            let wave = 52.5 + 1.5 * (i as f64 / 3_600.0).sin();
            let (celsius, kind) = match r {
                0..=4 => (58.0, PointKind::Flagged),
                5..=14 => (wave, PointKind::Synthetic),
                _ => (wave + (r as f64) / 400.0, PointKind::Measured),
            };
            (
                1_767_225_600_000 + i * 1_000,
                (celsius * 256.0) as i32,
                kind,
            )
        })
        .collect();
    if shuffle {
        let blocks = v.len() / 4_096;
        for b in 0..blocks / 2 {
            let (x, y) = (b * 4_096, (blocks - 1 - b) * 4_096);
            for k in 0..4_096 {
                v.swap(x + k, y + k);
            }
        }
    }
    v
}

fn fill(points: &[(u64, i32, PointKind)]) -> Chart {
    let mut chart = Chart::new(ChartSpec::default());
    for &(t, c, k) in points {
        chart.add(t, c, k);
    }
    for day in 0..points.len() as u64 / 86_400 {
        let start = 1_767_225_600_000 + day * 86_400_000 + 3_600_000;
        chart.add_outage(start, start + 600_000);
    }
    chart
}

fn add_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chart_add");
    for (name, shuffle) in [("in_order", false), ("out_of_order", true)] {
        let pts = points(1 << 20, shuffle);
        g.throughput(Throughput::Elements(pts.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || Chart::new(ChartSpec::default()),
                |chart| {
                    for &(t, c, k) in &pts {
                        chart.add(black_box(t), black_box(c), k);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn render_bench(c: &mut Criterion) {
    let chart = fill(&points(1_000_000, false));
    let mut g = c.benchmark_group("chart_render");
    g.sample_size(20);
    g.bench_function("svg/1e6_points", |b| {
        b.iter(|| black_box(chart.render_svg().expect("renders").len()))
    });
    g.finish();
}

criterion_group!(benches, add_bench, render_bench);
criterion_main!(benches);
