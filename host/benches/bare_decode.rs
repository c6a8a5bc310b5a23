//! The floor for `mend replay` on a frame log: read the file and decode its frames, nothing
//! else (no validation, reordering, gap filling or output).
//!
//! `mend replay` does all of that on top, so its readings per second are compared with this
//! figure on the same file. The log comes from `MEND_BENCH_LOG`; without it, a 1 000 000
//! reading log is made in memory from the seeded simulator through the edge pipeline.
//!
//! ```text
//! MEND_BENCH_LOG=/tmp/mend-bench/r10m.mlog cargo bench -p mend --bench bare_decode
//! ```
//!
//! It prints one line of `key=value` figures (the best of `MEND_BENCH_PASSES` passes,
//! default 3), which `bench/run.py` reads:
//! `bytes`, `frames`, `readings`, `other_frames`, `skipped_bytes`, `best_s`,
//! `readings_per_s`, `mib_per_s`, `bytes_per_reading` (file size / reading frames, so
//! headers and stats frames are included) and `bytes_per_reading_frame` (the reading frames
//! alone).

use std::fs::File;
use std::io::Read;
use std::time::Instant;

use mend_core::{DecodeEvent, Decoder, EdgeConfig, EdgePipeline, Frame, SimConfig, Simulator};

/// What one pass over the log found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    bytes: u64,
    frames: u64,
    readings: u64,
    /// Bytes of the reading frames alone, delimiters included.
    reading_bytes: u64,
    skipped_bytes: u64,
    /// A sum over the decoded values, so that nothing can be optimised away.
    check: u64,
}

impl Tally {
    fn take(&mut self, event: DecodeEvent) {
        match event {
            DecodeEvent::Frame { frame, span } => {
                self.frames += 1;
                if let Frame::Reading(r) = frame {
                    self.readings += 1;
                    self.reading_bytes += span.len();
                    self.check = self
                        .check
                        .wrapping_add(u64::from(r.seq))
                        .wrapping_add(r.celsius_delta as u64);
                }
            }
            DecodeEvent::Skipped { span, .. } => self.skipped_bytes += span.len(),
        }
    }
}

/// Decodes a stream in 1 MiB reads, as a replay of a file would.
fn decode_stream(mut input: impl Read) -> std::io::Result<Tally> {
    let mut buf = vec![0u8; 1 << 20];
    let mut dec: Decoder = Decoder::new();
    let mut tally = Tally::default();
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        tally.bytes += n as u64;
        for event in dec.feed(&buf[..n]) {
            tally.take(event);
        }
    }
    if let Some(event) = dec.finish() {
        tally.take(event);
    }
    Ok(tally)
}

/// A clean 1 Hz capture of `count` readings, as the edge pipeline frames it.
fn simulated_log(count: usize) -> Vec<u8> {
    let mut edge: EdgePipeline<32, 64> =
        EdgePipeline::try_new(EdgeConfig::new(1, 1, 1_000)).expect("default limits are valid");
    let mut log = Vec::with_capacity(count * 12);
    let readings = Simulator::new(1, SimConfig::CLEAN).take(count);
    edge.drain(readings.map(|point| point.reading), |f| {
        log.extend_from_slice(f)
    });
    log
}

fn main() -> std::io::Result<()> {
    // `cargo bench` passes `--bench`; any other argument selects nothing here.
    let passes: usize = std::env::var("MEND_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&p| p > 0)
        .unwrap_or(3);
    let path = std::env::var_os("MEND_BENCH_LOG");
    let in_memory = match &path {
        Some(_) => None,
        None => Some(simulated_log(1_000_000)),
    };
    let source = path.as_ref().map_or(
        "simulated (1 000 000 clean readings, in memory)".into(),
        |p| p.to_string_lossy().into_owned(),
    );

    let mut best: Option<(f64, Tally)> = None;
    for pass in 1..=passes {
        let start = Instant::now();
        let tally = match &path {
            Some(p) => decode_stream(File::open(p)?)?,
            None => decode_stream(in_memory.as_deref().unwrap_or_default())?,
        };
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "bare_decode pass {pass}/{passes}: {:.3} s, {:.2} M readings/s",
            secs,
            tally.readings as f64 / secs / 1e6
        );
        if let Some((_, first)) = &best {
            assert_eq!(first, &tally, "every pass decodes the same frames");
        }
        if best.as_ref().is_none_or(|(b, _)| secs < *b) {
            best = Some((secs, tally));
        }
    }
    let Some((secs, t)) = best else {
        return Ok(());
    };
    println!("bare_decode source={source}");
    println!(
        "bare_decode bytes={} frames={} readings={} other_frames={} skipped_bytes={} \
         best_s={:.6} readings_per_s={:.0} mib_per_s={:.1} bytes_per_reading={:.3} \
         bytes_per_reading_frame={:.3} check={}",
        t.bytes,
        t.frames,
        t.readings,
        t.frames - t.readings,
        t.skipped_bytes,
        secs,
        t.readings as f64 / secs,
        t.bytes as f64 / secs / f64::from(1 << 20),
        t.bytes as f64 / t.readings.max(1) as f64,
        t.reading_bytes as f64 / t.readings.max(1) as f64,
        t.check
    );
    Ok(())
}
