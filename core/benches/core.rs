//! Throughput of mend-core's stages, per reading.
//!
//! Each benchmark runs a batch of simulated readings (the origin's sensor: 1 Hz, band
//! 50–55 °C, 5 % out of band) through one stage and reports `Throughput::Elements`, so
//! criterion prints readings per second next to the time per batch.
//!
//! Run: `cargo bench -p mend-core --bench core -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mend_core::{
    encode, Admit, DecodeEvent, Decoder, EdgeConfig, EdgePipeline, Frame, Header, Reading, Release,
    Reorder, SimConfig, Simulator, ValidateConfig, Validator, MAX_FRAME,
};

/// Readings per batch: enough to amortise set-up, small enough to stay in cache.
const BATCH: usize = 16_384;

/// The origin's sensor, seeded.
fn readings() -> Vec<Reading> {
    Simulator::new(2026, SimConfig::ORIGIN)
        .take(BATCH)
        .map(|t| t.reading)
        .collect()
}

/// The same readings in a bounded disorder: each block of 8 is permuted by a fixed LCG, so
/// no reading is displaced by more than 7 periods.
fn shuffled() -> Vec<Reading> {
    let mut v = readings();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for block in v.chunks_mut(8) {
        for i in (1..block.len()).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = ((state >> 33) as usize) % (i + 1);
            block.swap(i, j);
        }
    }
    v
}

fn header() -> Header {
    EdgeConfig::new(1, 1, 1_000).header
}

fn frame_bench(c: &mut Criterion) {
    let h = header();
    let frames: Vec<Frame> = readings()
        .iter()
        .map(|r| Frame::Reading(h.to_wire(r).expect("on schedule")))
        .collect();
    let mut wire = Vec::with_capacity(frames.len() * 12);
    let mut buf = [0u8; MAX_FRAME];
    for f in &frames {
        let n = encode(f, &mut buf).expect("fits");
        wire.extend_from_slice(&buf[..n]);
    }

    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let mut out = [0u8; MAX_FRAME];
            for f in &frames {
                bytes += encode(black_box(f), &mut out).expect("fits");
            }
            black_box(bytes)
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut dec: Decoder = Decoder::new();
            let mut n = 0u32;
            for e in dec.feed(black_box(&wire)) {
                if let DecodeEvent::Frame {
                    frame: Frame::Reading(r),
                    ..
                } = e
                {
                    n = n.wrapping_add(r.seq);
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

/// Pushes every reading and releases what the watermark allows, then drains the rest. The
/// lateness is `N − 1` periods, so the heap runs close to its capacity without evicting.
fn reorder_run<const N: usize>(input: &[Reading]) -> u64 {
    let mut buf: Reorder<N> = Reorder::new((N as u64 - 1) * 1_000);
    let mut sum = 0u64;
    let mut take = |r: Release| sum = sum.wrapping_add(r.reading.timestamp);
    for r in input {
        if let Admit::Released(rel) = buf.push(*r) {
            take(rel);
        }
        while let Some(rel) = buf.pop_ready() {
            take(rel);
        }
    }
    while let Some(rel) = buf.pop_any() {
        take(rel);
    }
    sum
}

fn reorder_bench(c: &mut Criterion) {
    let input = shuffled();
    let mut g = c.benchmark_group("reorder");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("insert_release/N=32", |b| {
        b.iter(|| black_box(reorder_run::<32>(black_box(&input))))
    });
    g.bench_function("insert_release/N=1024", |b| {
        b.iter(|| black_box(reorder_run::<1024>(black_box(&input))))
    });
    // The usual case on a healthy link: readings arrive in order (with gaps), so they take
    // the queue beside the heap.
    let in_order = readings();
    g.bench_function("in_order/N=1024", |b| {
        b.iter(|| black_box(reorder_run::<1024>(black_box(&in_order))))
    });
    g.finish();
}

fn validate_bench(c: &mut Criterion) {
    let input = readings();
    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("check", |b| {
        b.iter_batched_ref(
            || Validator::<32>::try_new(ValidateConfig::DEFAULT).expect("default limits"),
            |v| {
                let mut flagged = 0u32;
                for r in &input {
                    flagged += u32::from(!v.check(black_box(r)).is_empty());
                }
                black_box(flagged)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn pipeline_bench(c: &mut Criterion) {
    let input = shuffled();
    let mut g = c.benchmark_group("edge_pipeline");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("push_poll/N=32,Q=64", |b| {
        b.iter_batched_ref(
            || {
                EdgePipeline::<32, 64>::try_new(EdgeConfig::new(1, 1, 1_000))
                    .expect("default limits")
            },
            |edge| {
                let mut bytes = 0usize;
                edge.drain(input.iter().map(|r| black_box(*r)), |f| bytes += f.len());
                black_box(bytes)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    frame_bench,
    reorder_bench,
    validate_bench,
    pipeline_bench
);
criterion_main!(benches);
