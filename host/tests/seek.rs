//! The shortcuts of a replay (the seek for `--from`, the early stop for `--until`) give
//! exactly the rows of the plain path, whatever the layout of the input: several sensors
//! and sessions concatenated in any order, rotated files joined out of order, a clock
//! glitch, duplicates across files, JSONL with a future timestamp.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Dir;
use mend::checkpoint::Checkpoint;
use mend::generate::{generate, GenerateConfig};
use mend::input::seek::{InputPlan, SeekSettings};
use mend::input::InputSource;
use mend::ReplayConfig;
use mend_core::{Celsius, ClockKind, Frame, Header, Reading};

/// 2026-01-01T00:00:00Z, the generator's default start.
const DAY0_MS: u64 = 1_767_225_600_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// One piece of a layout: a capture of `count` readings, 1 s apart, from `start_ms`; clean,
/// or `noisy` (out-of-band readings, lost, duplicated and reordered frames).
#[derive(Clone, Copy, Debug)]
struct Piece {
    sensor: u32,
    seed: u64,
    count: u32,
    start_ms: u64,
    noisy: bool,
}

impl Piece {
    fn new(sensor: u32, seed: u64, count: u32, start_ms: u64) -> Self {
        Self {
            sensor,
            seed,
            count,
            start_ms,
            noisy: false,
        }
    }

    fn noisy(self) -> Self {
        Self {
            noisy: true,
            ..self
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut cfg = GenerateConfig::clean(self.seed, self.count);
        cfg.sim.sensor = self.sensor;
        cfg.sim.epoch_ms = self.start_ms;
        if self.noisy {
            cfg.sim.error_ppm = 50_000;
            cfg.sim.skip_ppm = 100_000;
            cfg.sim.duplicate_ppm = 20_000;
            cfg.sim.reorder_ppm = 50_000;
            cfg.sim.max_displacement = 3;
        }
        let mut v = Vec::new();
        generate(&cfg, &mut v, None).unwrap();
        v
    }
}

/// The pieces one after the other, as `cat` would join them.
fn layout(pieces: &[Piece]) -> Vec<u8> {
    pieces.iter().flat_map(Piece::bytes).collect()
}

/// A hand-made session of `count` readings 1 s apart from `start_ms`, with a header every
/// 60 readings; reading `glitch` (if any) has its clock 24 days ahead.
fn glitched(sensor: u32, count: u32, start_ms: u64, glitch: Option<u32>) -> Vec<u8> {
    let h = Header::new(sensor, 77, 1_000, ClockKind::Unix, start_ms);
    let mut out = Vec::new();
    for seq in 0..count {
        if seq % 60 == 0 {
            out.extend_from_slice(&Frame::Header(h).to_buf().unwrap());
        }
        let mut ts = start_ms + u64::from(seq) * 1_000;
        if glitch == Some(seq) {
            ts += 24 * DAY;
        }
        let t = 52.0 + f64::from(seq % 7) * 0.25;
        let r = Reading::new(sensor, 77, seq, ts, Celsius::from_num(t));
        out.extend_from_slice(&Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap());
    }
    out
}

/// A gateway's capture of `sensors` nodes: `blocks` blocks of 60 readings 1 s apart from
/// `start_ms`, each block a header and its readings, the nodes' blocks in turn; reading
/// `glitch` (counted over the first sensor's readings) has its clock 24 days ahead.
fn interleaved(sensors: u32, blocks: u32, start_ms: u64, glitch: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    for b in 0..blocks {
        for sensor in 1..=sensors {
            let h = Header::new(sensor, 5, 1_000, ClockKind::Unix, start_ms);
            out.extend_from_slice(&Frame::Header(h).to_buf().unwrap());
            for seq in b * 60..b * 60 + 60 {
                let mut ts = start_ms + u64::from(seq) * 1_000;
                if sensor == 1 && glitch == Some(seq) {
                    ts += 24 * DAY;
                }
                // A flat stretch now and then, so that stuck flags come and go.
                let t = if seq % 500 < 40 {
                    53.0
                } else {
                    51.0 + f64::from((seq * 7 + sensor * 3) % 16) * 0.25
                };
                let r = Reading::new(sensor, 5, seq, ts, Celsius::from_num(t));
                out.extend_from_slice(&Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap());
            }
        }
    }
    out
}

/// Runs the real binary in `d` with the seek threshold lowered to `min_seek` bytes.
fn mend_env(d: &Dir, min_seek: Option<u64>, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mend"));
    cmd.args(args).current_dir(d.tmp.path());
    if let Some(m) = min_seek {
        cmd.env(mend::input::seek::MIN_SEEK_SIZE_ENV, m.to_string());
    }
    cmd.stdin(Stdio::null());
    let out = cmd.output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(out.status.code(), Some(0), "mend {}: {se}", args.join(" "));
    (so, se)
}

/// The CSV time column (the fourth), in ms.
fn csv_ms(line: &str) -> u64 {
    let t = line.split(',').nth(3).unwrap();
    mend::text::timefmt::parse_time(t).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// The rows of a CSV output whose time lies in `[from, until]`.
fn rows_in(csv: &str, from: u64, until: u64) -> Vec<String> {
    csv.lines()
        .skip(1)
        .filter(|l| (from..=until).contains(&csv_ms(l)))
        .map(str::to_string)
        .collect()
}

fn rfc(ms: u64) -> String {
    mend::text::timefmt::to_rfc3339(ms)
}

/// Replays `file` with `--from`/`--until` (shortcuts allowed, threshold `min_seek`), with
/// `--no-seek`, and with no window at all; returns the three row sets (the last cut to
/// the window) and the summary of the first.
fn three_ways(
    d: &Dir,
    file: &str,
    min_seek: Option<u64>,
    from: u64,
    until: u64,
) -> (Vec<String>, Vec<String>, Vec<String>, String) {
    let (f, u) = (rfc(from), rfc(until));
    let window = ["replay", file, "--from", &f, "--until", &u];
    let (fast, summary) = mend_env(d, min_seek, &window);
    let mut plain_args = window.to_vec();
    plain_args.push("--no-seek");
    let (plain, _) = mend_env(d, min_seek, &plain_args);
    let (all, _) = mend_env(d, min_seek, &["replay", file, "-q"]);
    (
        fast.lines().skip(1).map(str::to_string).collect(),
        plain.lines().skip(1).map(str::to_string).collect(),
        rows_in(&all, from, until),
        summary,
    )
}

fn sensors(rows: &[String]) -> std::collections::BTreeSet<String> {
    rows.iter()
        .map(|r| r.split(',').next().unwrap().to_string())
        .collect()
}

#[test]
fn from_keeps_both_sensors_of_concatenated_logs() {
    let d = Dir::new();
    // Sensor 1, then sensor 2, over the same 17 hours: more than 1 MiB, so the default
    // threshold allows a seek.
    let bytes = layout(&[
        Piece::new(1, 1, 60_000, DAY0_MS),
        Piece::new(2, 2, 60_000, DAY0_MS),
    ]);
    assert!(bytes.len() > 1 << 20);
    d.write("cat.mlog", &bytes);
    let (from, until) = (DAY0_MS + 12 * HOUR, DAY0_MS + 12 * HOUR + 1_800_000);
    let (fast, plain, all, summary) = three_ways(&d, "cat.mlog", None, from, until);
    assert_eq!(plain, all);
    assert_eq!(fast, plain, "{summary}");
    assert_eq!(fast.len(), 2 * 1_801);
    assert!(
        summary.contains("time does not grow through the file (probe at byte"),
        "{summary}"
    );
}

#[test]
fn from_finds_the_early_half_of_logs_joined_out_of_order() {
    let d = Dir::new();
    // A rotated log joined the wrong way round: the later file (a later power-up) first.
    let bytes = layout(&[
        Piece::new(1, 2, 60_000, DAY0_MS + 60_000_000),
        Piece::new(1, 1, 60_000, DAY0_MS),
    ]);
    d.write("rot.mlog", &bytes);
    let (from, until) = (DAY0_MS + 12 * HOUR, DAY0_MS + 12 * HOUR + 600_000);
    let (fast, plain, all, summary) = three_ways(&d, "rot.mlog", None, from, until);
    assert_eq!(plain, all);
    assert_eq!(fast.len(), 601, "{summary}");
    assert_eq!(fast, plain);
}

#[test]
fn until_keeps_the_second_sensor_of_concatenated_logs() {
    let d = Dir::new();
    let bytes = layout(&[
        Piece::new(1, 1, 20_000, DAY0_MS),
        Piece::new(2, 2, 20_000, DAY0_MS),
    ]);
    d.write("cat.mlog", &bytes);
    let (from, until) = (DAY0_MS + HOUR, DAY0_MS + HOUR + 1_800_000);
    for min_seek in [None, Some(0)] {
        let (fast, plain, all, summary) = three_ways(&d, "cat.mlog", min_seek, from, until);
        assert_eq!(plain, all);
        assert_eq!(fast, plain, "{summary}");
        assert_eq!(sensors(&fast).len(), 2, "{summary}");
        assert!(!summary.contains("stopped early"), "{summary}");
    }
}

#[test]
fn one_glitched_clock_does_not_stop_a_replay() {
    let d = Dir::new();
    // One reading 24 days ahead, early in the window: the rest of the log is on time.
    let bytes = glitched(5, 20_000, DAY0_MS, Some(100));
    d.write("glitch.mlog", &bytes);
    let (from, until) = (DAY0_MS, DAY0_MS + 1_800_000);
    for min_seek in [None, Some(0)] {
        let (fast, plain, all, summary) = three_ways(&d, "glitch.mlog", min_seek, from, until);
        assert_eq!(fast, plain, "{summary}");
        assert_eq!(fast, all, "{summary}");
        assert_eq!(fast.len(), 1_801, "{summary}");
    }
}

#[test]
fn a_future_jsonl_timestamp_does_not_stop_a_replay() {
    let d = Dir::new();
    let mut text = String::new();
    let t0 = DAY0_MS / 1_000;
    for i in 0..5_000u64 {
        // Line 100 is 24 days ahead.
        let ts = if i == 100 {
            t0 + i + 24 * 86_400
        } else {
            t0 + i
        };
        text.push_str(&format!(
            "{{\"timestamp\": {ts}, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\"}}\n"
        ));
    }
    d.write("log.jsonl", text.as_bytes());
    let (from, until) = (DAY0_MS, DAY0_MS + 1_800_000);
    let (fast, plain, all, summary) = three_ways(&d, "log.jsonl", Some(0), from, until);
    assert_eq!(fast, plain, "{summary}");
    assert_eq!(fast, all, "{summary}");
    assert!(summary.contains("JSONL is read to the end"), "{summary}");
    // Every line was read: nothing booked as after --until.
    let (u, f) = (rfc(until), rfc(from));
    mend_env(
        &d,
        Some(0),
        &[
            "replay",
            "log.jsonl",
            "--from",
            &f,
            "--until",
            &u,
            "-q",
            "--summary-json",
            "s.json",
        ],
    );
    let s: serde_json::Value = serde_json::from_slice(&d.read("s.json")).unwrap();
    let input = &s["inputs"][0];
    assert_eq!(input["stopped_early"], false, "{input}");
    assert_eq!(
        input["bytes"]["read"].as_u64(),
        Some(text.len() as u64),
        "{input}"
    );
}

#[test]
fn a_stream_back_from_a_long_silence_is_not_cut_from_its_past() {
    let d = Dir::new();
    // A gateway capture of two nodes, a block of 60 readings each in turn. Node 4 falls
    // silent for 3 hours and comes back in the same session; its last readings before the
    // silence and its first after hold one value: a stuck sensor, flagged from the 30th
    // equal value on, counting across the silence. Node 3 never stops.
    let h3 = Header::new(3, 1, 1_000, ClockKind::Unix, DAY0_MS);
    let h4 = Header::new(4, 9, 1_000, ClockKind::Unix, DAY0_MS);
    let (silent_from, silent_until) = (180u32, 360u32); // in blocks (minutes)
    let mut log = Vec::new();
    let mut seq4 = 0u32;
    for block in 0..500u32 {
        for (h, silent) in [
            (h3, false),
            (h4, (silent_from..silent_until).contains(&block)),
        ] {
            if silent {
                continue;
            }
            log.extend_from_slice(&Frame::Header(h).to_buf().unwrap());
            for i in 0..60u32 {
                let at = block * 60 + i;
                let ts = DAY0_MS + u64::from(at) * 1_000;
                let (seq, t) = if h.sensor == 4 {
                    seq4 += 1;
                    let near = block + 1 == silent_from || block == silent_until;
                    (
                        seq4 - 1,
                        if near {
                            53.0
                        } else {
                            51.0 + f64::from(at % 9) * 0.25
                        },
                    )
                } else {
                    (at, 52.0 + f64::from(at % 5) * 0.25)
                };
                let r = Reading::new(h.sensor, h.session, seq, ts, Celsius::from_num(t));
                log.extend_from_slice(&Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap());
            }
        }
    }
    d.write("silence.mlog", &log);
    let from = DAY0_MS + u64::from(silent_until) * 60_000;
    let (fast, plain, all, summary) = three_ways(&d, "silence.mlog", Some(0), from, from + 600_000);
    assert_eq!(plain, all);
    assert_eq!(fast, plain, "{summary}");
    let first4 = fast.iter().find(|r| r.starts_with("4,")).unwrap();
    assert!(first4.ends_with(",stuck"), "{first4}");
    assert!(
        summary.contains("no seek for --from: sensor 4 session 9 shows up at"),
        "{summary}"
    );
}

#[test]
fn a_sorted_log_still_seeks_and_stops_early() {
    let d = Dir::new();
    let bytes = layout(&[Piece::new(1, 1, 20_000, DAY0_MS)]);
    d.write("one.mlog", &bytes);
    let (from, until) = (DAY0_MS + 3 * HOUR, DAY0_MS + 3 * HOUR + 600_000);
    let (fast, plain, all, summary) = three_ways(&d, "one.mlog", Some(0), from, until);
    assert_eq!(plain, all);
    assert_eq!(fast, plain);
    assert_eq!(fast.len(), 601);
    assert!(
        summary.contains("seek for --from: reading starts at byte"),
        "{summary}"
    );
    assert!(
        summary.contains("stopped early for --until at byte"),
        "{summary}"
    );
}

/// Replays `paths` through the library: with the plans of [`mend::input::seek::plan`] (threshold
/// 0) and each from start to end; returns both record lists as text lines, and the plans.
fn library_rows(
    paths: &[PathBuf],
    from: Option<u64>,
    until: Option<u64>,
) -> (Vec<String>, Vec<String>, Vec<InputPlan>) {
    let mut cfg = ReplayConfig::default();
    cfg.engine.from = from;
    cfg.engine.until = until;
    let plans: Vec<InputPlan> = paths
        .iter()
        .map(|p| {
            mend::input::seek::plan(p, &cfg.engine.seek_window(), &SeekSettings { min_size: 0 })
                .unwrap()
                .0
        })
        .collect();
    let sources: Vec<InputSource> = paths.iter().cloned().map(InputSource::Path).collect();
    let run = |plans: &[InputPlan]| {
        mend::replay::replay_sources(&sources, plans, &cfg, Checkpoint::default())
            .unwrap()
            .records
            .iter()
            .map(|o| format!("{:?}", o.record))
            .collect::<Vec<_>>()
    };
    let fast = run(&plans);
    let plain = run(&vec![InputPlan::default(); paths.len()]);
    (fast, plain, plans)
}

#[derive(Clone, Debug)]
enum Layout {
    /// Rotated files of one sensor, joined in this order of their index.
    Rotated(Vec<usize>),
    /// Sensors over the same hours, concatenated in this order.
    Sensors(Vec<u32>),
    /// One sensor, a glitch at this reading.
    Glitch(u32),
    /// Rotated files in order, and one of them again in a second file; with `true`, the
    /// copy is appended to the first file instead.
    Duplicate(usize, bool),
    /// Several nodes in one capture, in time order, maybe with a glitch.
    Interleaved(u32, Option<u32>),
}

/// The files of a layout, the time of its first reading and its span in ms.
fn build(l: &Layout) -> (Vec<Vec<u8>>, u64, u64) {
    const N: u32 = 3_000;
    let span = u64::from(N) * 1_000;
    match l {
        Layout::Rotated(order) => {
            let pieces: Vec<Piece> = order
                .iter()
                .map(|&k| Piece::new(1, k as u64 + 1, N, DAY0_MS + k as u64 * span).noisy())
                .collect();
            (vec![layout(&pieces)], DAY0_MS, order.len() as u64 * span)
        }
        Layout::Sensors(order) => {
            let pieces: Vec<Piece> = order
                .iter()
                .map(|&s| Piece::new(s, u64::from(s), N, DAY0_MS))
                .collect();
            (vec![layout(&pieces)], DAY0_MS, span)
        }
        Layout::Glitch(at) => (
            vec![glitched(3, 4 * N, DAY0_MS, Some(*at))],
            DAY0_MS,
            4 * span,
        ),
        Layout::Duplicate(k, appended) => {
            let pieces: Vec<Piece> = (0..3)
                .map(|i| Piece::new(1, i + 1, N, DAY0_MS + i * span).noisy())
                .collect();
            let copy = pieces[k % 3].bytes();
            let mut first = layout(&pieces);
            if *appended {
                first.extend(copy);
                (vec![first], DAY0_MS, 3 * span)
            } else {
                (vec![first, copy], DAY0_MS, 3 * span)
            }
        }
        Layout::Interleaved(sensors, glitch) => (
            vec![interleaved(*sensors, 200, DAY0_MS, *glitch)],
            DAY0_MS,
            12_000_000,
        ),
    }
}

fn write_all(dir: &tempfile::TempDir, files: &[Vec<u8>]) -> Vec<PathBuf> {
    files
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let p = dir.path().join(format!("in{i}.mlog"));
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect()
}

fn any_layout() -> impl proptest::strategy::Strategy<Value = Layout> {
    use proptest::prelude::*;
    prop_oneof![
        // In order (the shortcuts apply) or shuffled.
        Just(Layout::Rotated(vec![0, 1, 2, 3])),
        Just(vec![0usize, 1, 2, 3])
            .prop_shuffle()
            .prop_map(Layout::Rotated),
        Just(vec![1u32, 2, 3])
            .prop_shuffle()
            .prop_map(Layout::Sensors),
        (0u32..12_000).prop_map(Layout::Glitch),
        (0usize..3, proptest::prelude::any::<bool>()).prop_map(|(k, a)| Layout::Duplicate(k, a)),
        (1u32..4, proptest::option::of(0u32..12_000)).prop_map(|(n, g)| Layout::Interleaved(n, g)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    /// Whatever the layout and the window, the shortcuts give the rows of the plain path.
    #[test]
    fn shortcuts_give_the_rows_of_the_plain_path(
        l in any_layout(),
        a in 0u64..1_000,
        b in 0u64..1_000,
        open_start in proptest::prelude::any::<bool>(),
    ) {
        let (files, t0, span) = build(&l);
        let dir = tempfile::tempdir().unwrap();
        let paths = write_all(&dir, &files);
        let (lo, hi) = (a.min(b), a.max(b));
        let from = (!open_start).then(|| t0 + span * lo / 1_000);
        let until = Some(t0 + span * hi / 1_000);
        let (fast, plain, _) = library_rows(&paths, from, until);
        proptest::prop_assert_eq!(fast.len(), plain.len());
        proptest::prop_assert!(fast == plain, "{:?} {:?} {:?}", l, from, until);
    }
}

#[test]
fn the_library_takes_shortcuts_on_a_sorted_rotation() {
    // The property above is only worth something if shortcuts happen on some layouts.
    let (files, t0, span) = build(&Layout::Rotated(vec![0, 1, 2, 3]));
    let dir = tempfile::tempdir().unwrap();
    let paths = write_all(&dir, &files);
    let (fast, plain, plans) = library_rows(
        &paths,
        Some(t0 + span * 3 / 4),
        Some(t0 + span * 3 / 4 + 60_000),
    );
    assert!(plans[0].start > 0 && plans[0].stop.is_some(), "{plans:?}");
    assert_eq!(fast.len(), 61);
    assert_eq!(fast, plain);
}
