//! `mend demo`: the whole story in one command, measured against the truth.
//!
//! The demo simulates a node under the origin's assumptions (1 Hz, about 5 % of readings
//! out of band, about 10 % lost) plus duplicates, reordering and a few damaged bytes, writes
//! the capture and the truth, replays the capture like any user would, and then checks the
//! files it wrote against the truth: every measured reading must come back bit for bit,
//! every lost one must be filled or reported, and aggregates over measured readings must be
//! exact. The truth is regenerated from the seed while reading the files back, so the check
//! streams too.

use std::collections::BTreeMap;
use std::fs;
use std::process::ExitCode;

use anyhow::{bail, Context};
use mend_core::{Aggregate, Celsius, Flags, Quality, Reading, Record, SimConfig, Simulator};

use super::cli::DemoArgs;
use super::exit::EXIT_OK;
use mend::engine::EngineConfig;
use mend::fs::AtomicFile;
use mend::generate::{generate, CaptureFormat, GenerateConfig};
use mend::input::InputSource;
use mend::replay::files::{replay_to_files, OutputFormat, ReplayFiles};
use mend::replay::plan::ReadPlan;
use mend::replay::{ReplayConfig, ReplayReport};
use mend::text::summary;

/// The demo's simulation: the origin's rates plus link damage.
pub fn demo_config(seed: u64, count: u32) -> GenerateConfig {
    GenerateConfig {
        seed,
        count,
        sim: SimConfig {
            session: GenerateConfig::session_of(seed),
            epoch_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            error_ppm: 50_000,
            skip_ppm: 100_000,
            duplicate_ppm: 20_000,
            reorder_ppm: 50_000,
            max_displacement: 3,
            corrupt_ppm: 5_000,
            truncate_ppm: 1_000,
            ..SimConfig::ORIGIN
        },
        format: CaptureFormat::Mlog,
    }
}

/// What the demo measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovery {
    /// Readings the sensor took.
    pub taken: u64,
    /// Measured rows in the repaired CSV.
    pub measured: u64,
    /// Measured rows whose value differs from the truth (must be 0).
    pub measured_wrong: u64,
    /// Measured rows with no such reading in the truth (must be 0).
    pub measured_unknown: u64,
    /// Synthetic rows.
    pub filled: u64,
    /// Truth readings with no row: in outages or before the first / after the last reading.
    pub unrecovered: u64,
    /// Mean |fill − truth| in °C.
    pub fill_error_mean: f64,
    /// Max |fill − truth| in °C.
    pub fill_error_max: f64,
    /// Fills of readings the sensor measured inside the band: the ones a fill can know.
    pub filled_in_band: u64,
    /// Mean |fill − truth| over those, in °C.
    pub fill_error_in_band_mean: f64,
    /// Max |fill − truth| over those, in °C.
    pub fill_error_in_band_max: f64,
    /// Windows compared.
    pub windows: u64,
    /// Max |aggregate mean − truth mean over the same measured readings| in °C (must be 0).
    pub aggregate_error_max: f64,
    /// Max |aggregate mean − truth mean over all readings of the window| in °C: what the
    /// losses cost.
    pub aggregate_vs_full_truth_max: f64,
}

fn parse_celsius(text: &str) -> anyhow::Result<Celsius> {
    let v: f64 = text
        .parse()
        .with_context(|| format!("bad celsius {text:?}"))?;
    Celsius::checked_from_num(v).with_context(|| format!("bad celsius {text:?}"))
}

/// Checks the repaired CSV and the aggregates against the truth regenerated from `cfg`.
pub fn check_recovery(
    cfg: &GenerateConfig,
    repaired: &std::path::Path,
    aggregates: &std::path::Path,
    window_ms: u64,
) -> anyhow::Result<Recovery> {
    let mut rec = Recovery::default();
    let mut rows = csv::Reader::from_path(repaired)
        .with_context(|| format!("{}: cannot read", repaired.display()))?;
    let mut truth = Simulator::new(cfg.seed, cfg.sim)
        .take(cfg.count as usize)
        .peekable();
    let band = cfg.sim.band;
    // Per window: the truth over the measured rows, and over everything.
    let mut measured_truth: BTreeMap<u64, Aggregate> = BTreeMap::new();
    let mut full_truth: BTreeMap<u64, Aggregate> = BTreeMap::new();
    let mut fill_err_sum = 0f64;
    let mut fill_err_in_band_sum = 0f64;
    let as_record = |r: Reading| Record::measured(r, Quality::Good, Flags::EMPTY);
    let window_of = |ts: u64| ts - ts % window_ms;
    let add_full = |r: Reading, full: &mut BTreeMap<u64, Aggregate>| {
        let w = window_of(r.timestamp);
        full.entry(w)
            .or_insert_with(|| Aggregate::new(w, window_ms))
            .add(&as_record(r), band, cfg.sim.period_ms);
    };
    for row in rows.records() {
        let row = row.with_context(|| format!("{}: bad CSV", repaired.display()))?;
        let seq: u32 = row
            .get(2)
            .unwrap_or("")
            .parse()
            .with_context(|| format!("{}: bad seq", repaired.display()))?;
        let celsius = parse_celsius(row.get(4).unwrap_or(""))?;
        let synthetic = row.get(5) == Some("synthetic");
        let bad = row.get(7) == Some("bad");
        // Truth readings before this row's seq had no row.
        while truth.peek().is_some_and(|t| t.reading.seq < seq) {
            if let Some(t) = truth.next() {
                rec.taken += 1;
                rec.unrecovered += 1;
                add_full(t.reading, &mut full_truth);
            }
        }
        let Some(t) = truth.next_if(|t| t.reading.seq == seq) else {
            if !synthetic {
                rec.measured_unknown += 1;
            }
            continue;
        };
        rec.taken += 1;
        add_full(t.reading, &mut full_truth);
        if synthetic {
            rec.filled += 1;
            let err = (celsius.to_num::<f64>() - t.reading.celsius.to_num::<f64>()).abs();
            fill_err_sum += err;
            rec.fill_error_max = rec.fill_error_max.max(err);
            if !t.out_of_band {
                rec.filled_in_band += 1;
                fill_err_in_band_sum += err;
                rec.fill_error_in_band_max = rec.fill_error_in_band_max.max(err);
            }
        } else {
            rec.measured += 1;
            if celsius != t.reading.celsius {
                rec.measured_wrong += 1;
            }
            if !bad {
                let w = window_of(t.reading.timestamp);
                measured_truth
                    .entry(w)
                    .or_insert_with(|| Aggregate::new(w, window_ms))
                    .add(&as_record(t.reading), band, cfg.sim.period_ms);
            }
        }
    }
    for t in truth {
        rec.taken += 1;
        rec.unrecovered += 1;
        add_full(t.reading, &mut full_truth);
    }
    if rec.filled > 0 {
        rec.fill_error_mean = fill_err_sum / rec.filled as f64;
    }
    if rec.filled_in_band > 0 {
        rec.fill_error_in_band_mean = fill_err_in_band_sum / rec.filled_in_band as f64;
    }
    let mut aggs = csv::Reader::from_path(aggregates)
        .with_context(|| format!("{}: cannot read", aggregates.display()))?;
    for row in aggs.records() {
        let row = row.with_context(|| format!("{}: bad CSV", aggregates.display()))?;
        let start = mend::text::timefmt::parse_time(row.get(2).unwrap_or(""))?;
        let Some(mean) = row.get(9).filter(|m| !m.is_empty()) else {
            continue;
        };
        let mean = parse_celsius(mean)?.to_num::<f64>();
        rec.windows += 1;
        let same = measured_truth.get(&start).and_then(Aggregate::mean);
        let full = full_truth.get(&start).and_then(Aggregate::mean);
        match same {
            Some(m) => {
                rec.aggregate_error_max = rec
                    .aggregate_error_max
                    .max((mean - m.to_num::<f64>()).abs())
            }
            None => rec.aggregate_error_max = f64::INFINITY,
        }
        if let Some(f) = full {
            rec.aggregate_vs_full_truth_max = rec
                .aggregate_vs_full_truth_max
                .max((mean - f.to_num::<f64>()).abs());
        }
    }
    Ok(rec)
}

/// Runs the demo.
pub fn run(a: &DemoArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let dir = &a.out;
    fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    let cfg = demo_config(a.seed, a.count);
    let capture = dir.join("capture.mlog");
    let truth = dir.join("truth.csv");
    let mut cap = AtomicFile::create(&capture)?;
    let mut tr = AtomicFile::create(&truth)?;
    let gen = generate(&cfg, &mut cap, Some(&mut tr))?;
    cap.commit()?;
    tr.commit()?;

    let window_ms = 60_000;
    // Replayed as `mend replay` replays by default, with one-minute aggregates.
    let plan = ReadPlan {
        sources: vec![InputSource::Path(capture.clone())],
        config: ReplayConfig {
            engine: EngineConfig {
                window_ms: Some(window_ms),
                ..EngineConfig::default()
            },
            ..ReplayConfig::default()
        },
        seek: true,
    };
    let files = ReplayFiles {
        output: Some(dir.join("repaired.csv")),
        format: OutputFormat::Csv,
        dlq: Some(dir.join("dead-letter.jsonl")),
        chart: Some(dir.join("chart.svg")),
        aggregates: Some(dir.join("aggregates.csv")),
        checkpoint: None,
        summary_json: None,
    };
    let report = replay_to_files(&plan, &files, || None)?;
    let rec = check_recovery(
        &cfg,
        files.output.as_deref().unwrap_or(&capture),
        files.aggregates.as_deref().unwrap_or(&capture),
        window_ms,
    )?;
    print_report(a, &gen, &report, &rec, started.elapsed());
    if rec.measured_wrong > 0 || rec.measured_unknown > 0 || rec.aggregate_error_max != 0.0 {
        bail!("recovery check failed: measured readings or aggregates differ from the truth");
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn print_report(
    a: &DemoArgs,
    gen: &mend::generate::GenerateStats,
    report: &ReplayReport,
    rec: &Recovery,
    took: std::time::Duration,
) {
    let dir = a.out.display();
    let s = report.streams.iter().find(|s| s.received > 0);
    println!(
        "mend demo (seed {}): {} readings of a simulated node at 1 Hz ({}), replayed and checked against the truth",
        a.seed,
        a.count,
        mend::text::timefmt::human_ms(u64::from(a.count) * 1_000)
    );
    println!();
    println!(
        "simulated: {} readings taken ({} out of band); link: {} of {} frames dropped, {} duplicated, {} delayed, {} bit-flipped, {} cut short",
        gen.readings, gen.out_of_band, gen.dropped, gen.sent, gen.duplicated, gen.delayed, gen.corrupted, gen.truncated
    );
    println!();
    println!("recovery against the truth:");
    println!("  readings taken (truth)      {}", rec.taken);
    println!(
        "  measured readings kept      {} — {} differ from the truth{}",
        rec.measured,
        rec.measured_wrong + rec.measured_unknown,
        if rec.measured_wrong + rec.measured_unknown == 0 {
            " (every one exact)"
        } else {
            " ✗"
        }
    );
    if let Some(s) = s {
        println!(
            "  gaps found                  {} ({} readings missing, {} filled)",
            s.gaps, s.missing, s.synthetic
        );
        println!(
            "  outages                     {} ({} readings missing, reported, not filled)",
            s.outages, s.missing_in_outages
        );
        println!("  duplicates dropped          {}", s.counters.duplicate);
    }
    println!(
        "  not recovered               {} (in outages, or lost before the first / after the last reading received)",
        rec.unrecovered
    );
    println!(
        "  fill error (linear)         mean {:.4} °C, max {:.4} °C over {} fills",
        rec.fill_error_mean, rec.fill_error_max, rec.filled
    );
    println!(
        "    of readings in the band   mean {:.4} °C, max {:.4} °C over {} fills (the other {} stand for readings the sensor took out of band, which no fill can know)",
        rec.fill_error_in_band_mean,
        rec.fill_error_in_band_max,
        rec.filled_in_band,
        rec.filled - rec.filled_in_band
    );
    println!(
        "  aggregate error             {} °C max over {} one-minute windows (mean of measured vs the truth of the same readings: exact)",
        rec.aggregate_error_max, rec.windows
    );
    println!(
        "  aggregate vs full truth     {:.4} °C max |Δmean| (what the lost readings cost)",
        rec.aggregate_vs_full_truth_max
    );
    if let Some(s) = s {
        println!(
            "  accounting                  {}",
            summary::counters_line(s)
        );
    }
    for i in &report.inputs {
        println!("  bytes                       {}", summary::input_line(i));
    }
    println!(
        "  dead letters                {} ({})",
        report.dead_letters,
        report
            .dead_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    println!(
        "wrote {dir}/capture.mlog, truth.csv, repaired.csv, chart.svg, dead-letter.jsonl, aggregates.csv in {} ms",
        took.as_millis()
    );
}
