//! Every kind of bad input gets a clear error or a dead-letter record with its reason and
//! location, never a panic, and the valid readings around it still come out.

mod common;

use common::*;
use mend_core::{Celsius, Frame};

/// Measured seqs of the output, in order.
fn measured(csv: &str) -> Vec<u32> {
    rows(csv)
        .iter()
        .filter(|r| !r.synthetic())
        .map(|r| r.seq.unwrap())
        .collect()
}

fn replay(d: &Dir, input: &str) -> (Run, String, String) {
    let run = d
        .mend(&["replay", input, "-o", "out.csv", "--dlq", "dlq.jsonl"])
        .ok();
    (run, d.read_text("out.csv"), d.read_text("dlq.jsonl"))
}

#[test]
fn garbage_bytes_between_sessions() {
    let d = Dir::new();
    let h = header(3, 1);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, (0..5).map(|s| (s, 52.0))));
    let garbage_at = log.len() as u64;
    log.extend_from_slice(b"\x17\xff garbage \x01\x02\x03\0");
    log.extend(frame(Frame::Header(h)));
    log.extend(readings(&h, (5..10).map(|s| (s, 53.0))));
    d.write("in.mlog", &log);
    let (run, csv, dlq) = replay(&d, "in.mlog");
    assert_eq!(measured(&csv), (0..10).collect::<Vec<_>>());
    let dl = dead_letters(&dlq);
    assert_eq!(dl.len(), 1, "{dlq}");
    assert_eq!(dl[0]["input"], "in.mlog");
    assert_eq!(dl[0]["offset"], garbage_at);
    assert_eq!(dl[0]["reason"], "bad_cobs");
    assert!(run.stderr().contains("file size"), "{}", run.stderr());
}

#[test]
fn a_file_of_pure_garbage_gives_an_empty_series_and_accounts_for_every_byte() {
    let d = Dir::new();
    let mut bytes = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push((x >> 16) as u8);
    }
    d.write("noise.bin", &bytes);
    let run = d
        .mend(&[
            "replay",
            "noise.bin",
            "-o",
            "out.csv",
            "--dlq",
            "dlq.jsonl",
            "--summary-json",
            "s.json",
        ])
        .ok();
    assert_eq!(d.read_text("out.csv"), format!("{HEADER}\n"));
    let s: serde_json::Value = serde_json::from_slice(&d.read("s.json")).unwrap();
    let b = &s["inputs"][0]["bytes"];
    let sum =
        b["good"].as_u64().unwrap() + b["bad"].as_u64().unwrap() + b["skipped"].as_u64().unwrap();
    assert_eq!(sum, 5000);
    assert_eq!(b["read"], 5000);
    assert!(!dead_letters(&d.read_text("dlq.jsonl")).is_empty());
    assert!(
        run.stderr().contains("the output is empty"),
        "{}",
        run.stderr()
    );
}

#[test]
fn empty_file() {
    let d = Dir::new();
    d.write("empty.mlog", b"");
    let run = d.mend(&["replay", "empty.mlog"]).ok();
    assert_eq!(run.stdout(), format!("{HEADER}\n"));
    assert!(
        run.stderr().contains("empty.mlog: empty input"),
        "{}",
        run.stderr()
    );
}

#[test]
fn torn_last_frame() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, (0..4).map(|s| (s, 51.0))));
    let torn_at = log.len() as u64;
    let last = readings(&h, [(4, 51.5)]);
    log.extend_from_slice(&last[..last.len() - 3]);
    d.write("torn.mlog", &log);
    let (_, csv, dlq) = replay(&d, "torn.mlog");
    assert_eq!(measured(&csv), [0, 1, 2, 3]);
    let dl = dead_letters(&dlq);
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0]["reason"], "truncated");
    assert_eq!(dl[0]["offset"], torn_at);
    assert_eq!(dl[0]["length"], last.len() as u64 - 3);
}

#[test]
fn bit_flip_inside_a_frame() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, (0..3).map(|s| (s, 52.0))));
    let flipped_at = log.len();
    log.extend(readings(&h, [(3, 52.0)]));
    log.extend(readings(&h, (4..8).map(|s| (s, 52.0))));
    log[flipped_at + 4] ^= 0x08;
    d.write("flip.mlog", &log);
    let (_, csv, dlq) = replay(&d, "flip.mlog");
    let rows = rows(&csv);
    assert_eq!(measured(&csv), [0, 1, 2, 4, 5, 6, 7]);
    let fill = rows.iter().find(|r| r.seq == Some(3)).unwrap();
    assert!(fill.synthetic() && fill.method == "linear");
    assert_eq!(fill.celsius, Celsius::from_num(52));
    let dl = dead_letters(&dlq);
    assert_eq!(dl.len(), 1);
    assert!(
        ["bad_crc", "bad_cobs"].contains(&dl[0]["reason"].as_str().unwrap()),
        "{dlq}"
    );
    assert_eq!(dl[0]["offset"], flipped_at as u64);
}

#[test]
fn unknown_format_version() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, (0..3).map(|s| (s, 52.0))));
    let v9_at = log.len() as u64;
    log.extend(header_of_version(9, 1, 2));
    // Readings of the unknown-version session must not be read with the old header.
    log.extend(readings(&header(1, 2), (0..2).map(|s| (s, 40.0))));
    let h3 = header(1, 3);
    log.extend(frame(Frame::Header(h3)));
    log.extend(readings(&h3, (10..12).map(|s| (s, 53.0))));
    d.write("v9.mlog", &log);
    let (_, csv, dlq) = replay(&d, "v9.mlog");
    let rows = rows(&csv);
    let got: Vec<(u32, u32)> = rows.iter().map(|r| (r.session, r.seq.unwrap())).collect();
    assert_eq!(got, [(1, 0), (1, 1), (1, 2), (3, 10), (3, 11)]);
    let dl = dead_letters(&dlq);
    assert_eq!(reasons(&dlq), ["unknown_version", "no_header", "no_header"]);
    assert_eq!(dl[0]["offset"], v9_at);
    assert!(
        dl[1]["detail"]
            .as_str()
            .unwrap()
            .contains("unknown format version"),
        "{dlq}"
    );
}

#[test]
fn bad_jsonl_lines_are_dead_lettered_with_line_numbers() {
    let d = Dir::new();
    let lines = [
        jline(100, 52.0),
        "{not json\n".to_string(),
        "{\"timestamp\": 101, \"event_type\": \"TEMPERATURE_SENSOR\", \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": 102, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": NaN, \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": 103, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": Infinity, \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": 104, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": -Infinity, \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": 105, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": \"52.5\", \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": \"106\", \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": 107.5, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": -108, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\"}\n".into(),
        "[109, 52.5]\n".into(),
        "\"just a string\"\n".into(),
        "{\"timestamp\": 110, \"event_type\": \"HUMIDITY\", \"temperature\": 52.5, \"status\": \"normal\"}\n".into(),
        "{\"timestamp\": 111, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"weird\"}\n".into(),
        "{\"timestamp\": 112, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\", \"synthetic\": true}\n".into(),
        "{\"timestamp\": 113, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 5000, \"status\": \"normal\"}\n".into(),
        jline(114, 54.0),
    ];
    d.write("in.jsonl", lines.concat().as_bytes());
    let (_, csv, dlq) = replay(&d, "in.jsonl");
    assert_eq!(
        reasons(&dlq),
        [
            "malformed_json",
            "missing_field",
            "not_finite",
            "not_finite",
            "not_finite",
            "wrong_type",
            "wrong_type",
            "bad_timestamp",
            "bad_timestamp",
            "not_an_object",
            "not_an_object",
            "unknown_event_type",
            "unknown_status",
            "synthetic_input",
            "out_of_range",
        ]
    );
    let dl = dead_letters(&dlq);
    let line_numbers: Vec<u64> = dl.iter().map(|x| x["line"].as_u64().unwrap()).collect();
    assert_eq!(line_numbers, (2..=16).collect::<Vec<_>>());
    assert!(dl[1]["detail"].as_str().unwrap().contains("temperature"));
    assert!(dl[5]["detail"].as_str().unwrap().contains("string"));
    assert!(dl[7]["detail"].as_str().unwrap().contains("float"));
    assert!(dl[8]["detail"].as_str().unwrap().contains("negative"));
    // The two valid readings come out, 14 s apart: an outage at the default max gap of 60 s
    // is not reached, so the gap between them is filled.
    let rows = rows(&csv);
    let measured: Vec<(u64, Celsius)> = rows
        .iter()
        .filter(|r| !r.synthetic())
        .map(|r| (r.ms, r.celsius))
        .collect();
    assert_eq!(
        measured,
        [
            (100_000, Celsius::from_num(52)),
            (114_000, Celsius::from_num(54))
        ]
    );
    assert!(rows.iter().all(|r| r.seq.is_none()));
    assert_eq!(rows.len(), 15);
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let d = Dir::new();
    let run = d.mend(&["replay", "nope.mlog"]).expect(2);
    assert!(
        run.stderr()
            .starts_with("mend: nope.mlog: cannot open input"),
        "{}",
        run.stderr()
    );
}

#[test]
fn unwritable_output_is_an_error_naming_it() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, [(0, 52.0)]));
    d.write("in.mlog", &log);
    let run = d
        .mend(&["replay", "in.mlog", "-o", "no/such/dir/out.csv"])
        .expect(2);
    assert!(
        run.stderr()
            .contains("no/such/dir/out.csv: cannot write output"),
        "{}",
        run.stderr()
    );
    let run = d.mend(&["replay", "in.mlog", "--dlq", "."]).expect(2);
    assert!(run.stderr().contains("mend: "), "{}", run.stderr());
}

#[test]
fn an_output_device_that_fills_up_is_an_error_naming_it() {
    // /dev/full accepts the open and fails every write: the output fails while the replay
    // runs (30 000 rows are more than one output block) or when it ends (one row).
    let d = Dir::new();
    let h = header(1, 1);
    for count in [30_000u32, 1] {
        let mut log = frame(Frame::Header(h));
        log.extend(readings(&h, (0..count).map(|s| (s, 52.0))));
        d.write("in.mlog", &log);
        let run = d.mend(&["replay", "in.mlog", "-o", "/dev/full"]).expect(2);
        assert!(
            run.stderr().contains("/dev/full: ")
                && run.stderr().contains("No space left on device"),
            "{count}: {}",
            run.stderr()
        );
    }
}

#[test]
fn output_equal_to_input_is_refused_and_the_input_untouched() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, [(0, 52.0)]));
    d.write("in.mlog", &log);
    let run = d.mend(&["replay", "in.mlog", "-o", "./in.mlog"]).expect(2);
    assert!(
        run.stderr().contains("would overwrite an input"),
        "{}",
        run.stderr()
    );
    let run = d.mend(&["replay", "in.mlog", "--dlq", "in.mlog"]).expect(2);
    assert!(run.stderr().contains("in.mlog"), "{}", run.stderr());
    assert_eq!(d.read("in.mlog"), log);
}

#[test]
fn impossible_settings_are_usage_errors() {
    let d = Dir::new();
    d.write("in.mlog", b"");
    for (args, needle) in [
        (&["--band", "55..50"][..], "reversed"),
        (&["--band", "50-55"][..], "LO..HI"),
        (&["--physical", "125..-55"][..], "--physical"),
        (&["--physical", "-40..52"][..], "physical range"),
        (&["--period", "0s"][..], "--period"),
        (&["--from", "yesterday"][..], "unparseable time"),
        (&["--until", "2026-02-30T00:00:00Z"][..], "--until"),
        (&["--max-gap", "0s"][..], "--max-gap"),
        (&["--lateness", "soon"][..], "--lateness"),
        (
            &[
                "--from",
                "2026-01-02T00:00:00Z",
                "--until",
                "2026-01-01T00:00:00Z",
            ][..],
            "after --until",
        ),
    ] {
        let mut a = vec!["replay", "in.mlog"];
        a.extend_from_slice(args);
        let run = d.mend(&a).expect(2);
        assert!(run.stderr().contains(needle), "{args:?}: {}", run.stderr());
        assert!(run.stderr().starts_with("mend: "), "{}", run.stderr());
    }
    let run = d
        .mend(&[
            "generate",
            "--seed",
            "1",
            "--count",
            "10",
            "--skip-rate",
            "1.5",
            "-o",
            "x.mlog",
        ])
        .expect(2);
    assert!(run.stderr().contains("--skip-rate"), "{}", run.stderr());
    let run = d
        .mend(&[
            "generate", "--seed", "1", "--count", "10", "--period", "0ms", "-o", "x.mlog",
        ])
        .expect(2);
    assert!(run.stderr().contains("--period"), "{}", run.stderr());
}

#[test]
fn exit_codes() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut clean = frame(Frame::Header(h));
    clean.extend(readings(&h, (0..5).map(|s| (s, 52.0))));
    d.write("clean.mlog", &clean);
    let mut bad = clean.clone();
    bad.extend_from_slice(b"junk");
    d.write("bad.mlog", &bad);
    d.mend(&["replay", "clean.mlog", "--strict", "-q"])
        .expect(0);
    d.mend(&["replay", "bad.mlog", "-q"]).expect(0);
    let run = d.mend(&["replay", "bad.mlog", "--strict", "-q"]).expect(1);
    assert_eq!(rows(&run.stdout()).len(), 5, "the output is still written");
    d.mend(&["replay"]).expect(2);
    d.mend(&["replay", "clean.mlog", "--fill", "magic"])
        .expect(2);
    d.mend(&["frobnicate"]).expect(2);
    let help = d.mend(&["replay", "--help"]).expect(0);
    assert!(help.stdout().contains("--checkpoint"));
    let help = d.mend(&["replay", "--help"]).expect(0);
    assert!(
        help.stdout().contains("synthetic"),
        "mlog limits are documented"
    );
}

#[cfg(unix)]
#[test]
fn a_device_output_is_written_in_place_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, (0..3).map(|s| (s, 52.0))));
    d.write("in.mlog", &log);
    d.mend(&[
        "replay",
        "in.mlog",
        "-o",
        "/dev/null",
        "--dlq",
        "/dev/null",
        "-q",
    ])
    .expect(2);
    d.mend(&["replay", "in.mlog", "-o", "/dev/null", "-q"]).ok();
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device());
}
