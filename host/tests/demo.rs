//! `mend demo` and `mend generate` against the real binary.

mod common;

use common::*;
use mend_core::{DecodeEvent, Decoder, Frame};

#[test]
fn demo_writes_its_files_and_reports_exact_recovery() {
    let d = Dir::new();
    let run = d.mend(&["demo", "--out", "out"]).ok();
    let report = run.stdout();
    for needle in [
        "readings taken (truth)      3600",
        "0 differ from the truth (every one exact)",
        "aggregate error             0 °C",
        "gaps found",
        "fill error (linear)",
        "duplicates dropped",
        "emitted",
        "file size",
    ] {
        assert!(report.contains(needle), "{needle:?} missing from\n{report}");
    }
    for f in [
        "capture.mlog",
        "truth.csv",
        "repaired.csv",
        "chart.svg",
        "dead-letter.jsonl",
        "aggregates.csv",
    ] {
        assert!(!d.read(&format!("out/{f}")).is_empty(), "{f}");
    }
    // Fills of readings the sensor took in the band stay within a few steps of the
    // simulated walk (at most 1/8 °C a second): an isolated out-of-band reading next to a gap
    // does not pull them (it did, by up to 4.6 °C). The lost readings that were themselves out
    // of band cannot be known by any fill.
    let line = report
        .lines()
        .find(|l| l.contains("of readings in the band"))
        .unwrap_or_else(|| panic!("no in-band fill error in\n{report}"));
    let max: f64 = line
        .split("max ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(max <= 0.5, "{line}");
    // The repaired series covers the truth's hour, one row per second, measured rows exact.
    let truth = truth(&d.read_text("out/truth.csv"));
    let rows = rows(&d.read_text("out/repaired.csv"));
    assert_eq!(truth.len(), 3600);
    let measured = rows.iter().filter(|r| !r.synthetic()).count();
    assert!((3_000..3_500).contains(&measured), "{measured}");
    for r in rows.iter().filter(|r| !r.synthetic()) {
        let t = &truth[r.seq.unwrap() as usize];
        assert_eq!((r.ms, r.celsius), (t.ms, t.celsius));
    }
    // Reruns into the same directory give the same files.
    let before = d.read("out/repaired.csv");
    d.mend(&["demo", "--out", "out"]).ok();
    assert_eq!(d.read("out/repaired.csv"), before);
}

#[test]
fn clean_capture_holds_exactly_n_reading_frames() {
    let d = Dir::new();
    d.mend(&[
        "generate",
        "--seed",
        "5",
        "--count",
        "1234",
        "-o",
        "clean.mlog",
        "--truth",
        "t.csv",
    ])
    .ok();
    let bytes = d.read("clean.mlog");
    let mut dec: Decoder = Decoder::new();
    let mut readings = 0;
    let mut headers = 0;
    for ev in dec.feed(&bytes) {
        match ev {
            DecodeEvent::Frame {
                frame: Frame::Reading(_),
                ..
            } => readings += 1,
            DecodeEvent::Frame {
                frame: Frame::Header(h),
                ..
            } => {
                headers += 1;
                assert_eq!((h.sensor, h.period_ms), (1, 1_000));
            }
            DecodeEvent::Frame { .. } => {}
            DecodeEvent::Skipped { span, reason } => panic!("{span}: {reason}"),
        }
    }
    assert_eq!(dec.finish(), None);
    assert_eq!(readings, 1234);
    assert!(headers > 1, "headers repeat with the stats frames");
    assert_eq!(truth(&d.read_text("t.csv")).len(), 1234);
    // A clean capture replays to exactly its truth, with nothing filled or rejected.
    let run = d.mend(&["replay", "clean.mlog", "--strict", "-q"]).ok();
    let rows = rows(&run.stdout());
    let t = truth(&d.read_text("t.csv"));
    assert_eq!(rows.len(), 1234);
    for (r, t) in rows.iter().zip(&t) {
        assert_eq!((r.seq, r.ms, r.celsius), (Some(t.seq), t.ms, t.celsius));
        assert!(!r.synthetic());
    }
    // JSONL too.
    d.mend(&[
        "generate",
        "--seed",
        "5",
        "--count",
        "50",
        "--format",
        "jsonl",
        "-o",
        "clean.jsonl",
    ])
    .ok();
    let text = d.read_text("clean.jsonl");
    assert_eq!(text.lines().count(), 50);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["event_type"], "TEMPERATURE_SENSOR");
    assert_eq!(first["timestamp"], 1_767_225_600u64);
}
