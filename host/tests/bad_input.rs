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
fn frame_readings_after_the_last_time_rfc_3339_can_write_are_dead_letters() {
    let d = Dir::new();
    // A session whose seq 3 falls on the first second of year 10000.
    let h = mend_core::Header::new(1, 1, 1_000, mend_core::ClockKind::Unix, 253_402_300_797_000);
    let mut log = frame(Frame::Header(h));
    log.extend(readings(&h, (0..3).map(|s| (s, 51.0))));
    let past_at = log.len() as u64;
    log.extend(readings(&h, (3..6).map(|s| (s, 51.0))));
    d.write("late.mlog", &log);
    let (_, csv, dlq) = replay(&d, "late.mlog");
    assert_eq!(measured(&csv), [0, 1, 2]);
    assert!(
        csv.lines()
            .nth(3)
            .unwrap()
            .contains(",9999-12-31T23:59:59.000Z,"),
        "{csv}"
    );
    let dl = dead_letters(&dlq);
    let reasons: Vec<&str> = dl.iter().map(|x| x["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["bad_timestamp"; 3], "{dlq}");
    assert_eq!(dl[0]["offset"], past_at);
    let detail = dl[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("seq 3") && detail.contains("after 9999-12-31T23:59:59.999Z"),
        "{detail}"
    );
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
            "other_event",
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
    assert_eq!(
        run.stderr(),
        "mend: --strict: 1 dead-letter records, 0 readings rejected, 0 late; exit code 1\n",
        "-q still says why the exit code is 1"
    );
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
    for cmd in ["demo", "generate", "replay", "inspect", "listen"] {
        let help = d.mend(&[cmd, "--help"]).expect(0);
        assert!(
            help.stdout().contains(&format!("Examples:\n  mend {cmd} ")),
            "{cmd} --help shows examples: {}",
            help.stdout()
        );
    }
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

/// Readings of a JSONL log, `(ms, celsius)`, and its dead-letter reasons, from a replay
/// that must succeed.
fn replay_jsonl(d: &Dir, input: &str, extra: &[&str]) -> (Vec<(u64, Celsius)>, Vec<String>) {
    let mut args = vec!["replay", input, "-o", "rows.csv", "--dlq", "dlq.jsonl"];
    args.extend_from_slice(extra);
    d.mend(&args).ok();
    let measured = rows(&d.read_text("rows.csv"))
        .iter()
        .filter(|r| !r.synthetic())
        .map(|r| (r.ms, r.celsius))
        .collect();
    (measured, reasons(&d.read_text("dlq.jsonl")))
}

/// `n` prototype lines a second apart from unix second 1000, at 50 + i % 5 °C.
fn jsonl_lines(n: i64) -> (String, Vec<(u64, Celsius)>) {
    let text = (0..n)
        .map(|i| jline(1_000 + i, (50 + i % 5) as f64))
        .collect();
    let want = (0..n)
        .map(|i| ((1_000 + i) as u64 * 1_000, Celsius::from_num(50 + i % 5)))
        .collect();
    (text, want)
}

#[test]
fn jsonl_whose_first_line_is_junk_is_still_jsonl() {
    let d = Dir::new();
    let (lines, want) = jsonl_lines(50);
    let mut bytes = vec![0u8; 512];
    bytes.push(b'\n');
    bytes.extend_from_slice(lines.as_bytes());
    d.write("in.jsonl", &bytes);
    let (got, reasons) = replay_jsonl(&d, "in.jsonl", &[]);
    assert_eq!(got, want);
    assert_eq!(
        reasons,
        ["malformed_json"],
        "only the junk line is set aside"
    );
}

#[test]
fn jsonl_with_a_character_cut_by_the_end_of_the_first_64_kib_is_still_jsonl() {
    let d = Dir::new();
    // A comment line first (so the log does not start with a brace), then readings, one of
    // them with a note whose "é" starts at byte 65 535: the 64 KiB head ends inside it.
    let mut text = String::from("# prototype export\n");
    let mut ts = 1_000;
    let mut want = Vec::new();
    while text.len() < 65_535 - 200 {
        text.push_str(&jline(ts, 52.0));
        want.push((ts as u64 * 1_000, Celsius::from_num(52)));
        ts += 1;
    }
    let start = format!("{{\"timestamp\": {ts}, \"temperature\": 53, \"note\": \"");
    let pad = 65_535 - text.len() - start.len();
    text.push_str(&start);
    text.push_str(&"x".repeat(pad));
    assert_eq!(text.len(), 65_535);
    text.push_str("é\"}\n");
    want.push((ts as u64 * 1_000, Celsius::from_num(53)));
    text.push_str(&jline(ts + 1, 54.0));
    want.push(((ts + 1) as u64 * 1_000, Celsius::from_num(54)));
    assert!(!text.is_char_boundary(65_536));
    d.write("in.jsonl", text.as_bytes());
    let (got, reasons) = replay_jsonl(&d, "in.jsonl", &[]);
    assert_eq!(got, want);
    assert_eq!(reasons, ["malformed_json"], "only the comment line");
}

#[test]
fn jsonl_after_more_than_64_kib_of_blank_space_is_still_jsonl() {
    let d = Dir::new();
    let (lines, want) = jsonl_lines(20);
    let text = format!("{}{lines}", " \t\r\n".repeat(20_000));
    d.write("in.jsonl", text.as_bytes());
    let (got, reasons) = replay_jsonl(&d, "in.jsonl", &[]);
    assert_eq!(got, want);
    assert!(reasons.is_empty(), "{reasons:?}");
}

#[test]
fn a_frame_log_behind_more_than_64_kib_of_binary_junk_is_still_a_frame_log() {
    let d = Dir::new();
    d.mend(&[
        "generate", "--seed", "4", "--count", "500", "-o", "log.mlog",
    ])
    .ok();
    // Binary junk whose lines often start with a brace, as a JSON line does.
    let mut junk = Vec::with_capacity(72_000);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while junk.len() < 72_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        junk.push(x as u8);
        if x % 97 == 0 {
            junk.extend_from_slice(b"\n{\"timestamp\": ");
        }
    }
    let log = d.read("log.mlog");
    d.write("junk.mlog", &[junk, log].concat());
    d.mend(&["replay", "log.mlog", "-o", "alone.csv", "-q"])
        .ok();
    let said = d
        .mend(&["replay", "junk.mlog", "-o", "junk.csv"])
        .ok()
        .stderr();
    assert!(said.contains("input junk.mlog (frames)"), "{said}");
    assert_eq!(d.read_text("junk.csv"), d.read_text("alone.csv"));
}

#[test]
fn a_csv_export_fed_back_in_is_refused_as_not_a_capture() {
    let d = Dir::new();
    let (lines, _) = jsonl_lines(10);
    d.write("in.jsonl", lines.as_bytes());
    d.mend(&["replay", "in.jsonl", "-o", "out.csv"]).ok();
    let run = d
        .mend(&["replay", "out.csv", "-o", "again.csv", "--dlq", "dlq.jsonl"])
        .expect(2);
    assert!(
        run.stderr()
            .contains("out.csv: not a mend capture or prototype JSONL"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("CSV export"), "{}", run.stderr());
    assert!(!exists(&d.path("again.csv")) && !exists(&d.path("dlq.jsonl")));
    let run = d.mend(&["inspect", "out.csv"]).expect(2);
    assert!(
        run.stderr().contains("not a mend capture"),
        "{}",
        run.stderr()
    );
    // Told to, mend reads it as JSONL: every line is set aside, none is lost.
    let (got, reasons) = replay_jsonl(&d, "out.csv", &["--input-format", "jsonl"]);
    assert!(got.is_empty());
    assert_eq!(reasons.len(), 11);
    assert!(reasons.iter().all(|r| r == "malformed_json"), "{reasons:?}");
}

#[test]
fn a_jsonl_export_fed_back_in_is_refused_as_not_a_capture() {
    let d = Dir::new();
    let (lines, _) = jsonl_lines(10);
    d.write("in.jsonl", lines.as_bytes());
    d.mend(&["replay", "in.jsonl", "-o", "out.jsonl", "--format", "jsonl"])
        .ok();
    // Before: exit 0, an empty output, every row a `missing_field` dead letter.
    let run = d
        .mend(&["replay", "out.jsonl", "-o", "again.csv"])
        .expect(2);
    assert!(
        run.stderr()
            .contains("out.jsonl: not a capture: it is a JSONL export of mend replay"),
        "{}",
        run.stderr()
    );
    assert!(!exists(&d.path("again.csv")));
    // The prototype's own lines are still read, whatever else they carry.
    let (got, _) = replay_jsonl(&d, "in.jsonl", &[]);
    assert_eq!(got.len(), 10);
}

#[test]
fn input_format_overrides_detection_and_is_checked_by_clap() {
    let d = Dir::new();
    let (lines, want) = jsonl_lines(5);
    d.write("in.jsonl", lines.as_bytes());
    // Read as a frame log, the JSONL text is one torn frame.
    let (got, reasons) = replay_jsonl(&d, "in.jsonl", &["--input-format", "mlog"]);
    assert!(got.is_empty());
    assert_eq!(reasons, ["truncated"]);
    let (got, _) = replay_jsonl(&d, "in.jsonl", &["--input-format", "auto"]);
    assert_eq!(got, want);
    let run = d
        .mend(&["replay", "in.jsonl", "--input-format", "csv"])
        .expect(2);
    assert!(run.stderr().contains("--input-format"), "{}", run.stderr());
    d.mend(&["inspect", "in.jsonl", "--input-format", "jsonl"])
        .ok();
}

#[test]
fn a_seek_over_jsonl_with_a_junk_first_line_reads_it_as_jsonl() {
    let d = Dir::new();
    // Over a mebibyte, so that --from tries a seek.
    let (lines, want) = jsonl_lines(15_000);
    let mut bytes = vec![0u8; 512];
    bytes.push(b'\n');
    bytes.extend_from_slice(lines.as_bytes());
    assert!(bytes.len() as u64 > 1 << 20);
    d.write("in.jsonl", &bytes);
    let (got, _) = replay_jsonl(&d, "in.jsonl", &["--from", "15000"]);
    let want: Vec<_> = want.into_iter().filter(|(t, _)| *t >= 15_000_000).collect();
    assert_eq!(got, want);
}

#[test]
fn an_over_long_line_starting_with_blank_space_is_dead_lettered_not_blank() {
    let d = Dir::new();
    let long = format!("{}{}", " ".repeat(70_000), jline(1_001, 53.0));
    let text = [jline(1_000, 52.0), long, jline(1_002, 54.0)].concat();
    d.write("in.jsonl", text.as_bytes());
    let run = d
        .mend(&[
            "replay",
            "in.jsonl",
            "-o",
            "out.csv",
            "--dlq",
            "dlq.jsonl",
            "--summary-json",
            "s.json",
        ])
        .ok();
    assert_eq!(reasons(&d.read_text("dlq.jsonl")), ["line_too_long"]);
    let s: serde_json::Value = serde_json::from_slice(&d.read("s.json")).unwrap();
    let b = &s["inputs"][0]["bytes"];
    assert_eq!(b["skipped"], 0, "{}", run.stderr());
    assert_eq!(b["bad_items"], 1);
}

#[test]
fn the_prototype_jsonl_is_read_leniently_and_its_reasons_are_precise() {
    let d = Dir::new();
    let lines = [
        // No event_type, no status: a temperature reading all the same.
        "{\"timestamp\": 1000, \"temperature\": 52.5}\n",
        "{\"timestamp\": 1001, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 53}\n",
        "{\"timestamp\": 1002, \"temperature\": 54, \"status\": \"high\"}\n",
        "{\"timestamp\": null, \"temperature\": 52}\n",
        "{\"timestamp\": 1004, \"temperature\": 1e309}\n",
        "{\"timestamp\": 1005, \"event_type\": \"DOOR_OPENED\"}\n",
        "{\"timestamp\": 1006, \"temperature\": null}\n",
        "{\"timestamp\": 1007, \"temperature\": 52, \"status\": null}\n",
        "{\"temperature\": 52}\n",
        "{\"timestamp\": 1009, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 51.5, \"status\": \"normal\"}\n",
        // Names in another case are the same names: the reading is measured, not filled.
        "{\"timestamp\": 1010, \"event_type\": \"temperature_sensor\", \"temperature\": 51, \"status\": \"NORMAL\"}\n",
        "{\"timestamp\": 1011, \"event_type\": \"Temperature_Sensor\", \"temperature\": 50.5, \"status\": \"High\"}\n",
    ];
    d.write("in.jsonl", lines.concat().as_bytes());
    let (got, reasons) = replay_jsonl(&d, "in.jsonl", &[]);
    assert_eq!(
        got,
        [
            (1_000_000, Celsius::from_num(52.5)),
            (1_001_000, Celsius::from_num(53)),
            (1_002_000, Celsius::from_num(54)),
            (1_009_000, Celsius::from_num(51.5)),
            (1_010_000, Celsius::from_num(51)),
            (1_011_000, Celsius::from_num(50.5)),
        ]
    );
    assert_eq!(
        reasons,
        [
            "wrong_type",
            "not_finite",
            "other_event",
            "wrong_type",
            "wrong_type",
            "missing_field"
        ]
    );
}

#[test]
fn readings_at_the_end_of_time_close_their_last_aggregate_window() {
    let d = Dir::new();
    // The last three seconds RFC 3339 can write, then times after it: the first second of
    // year 10000 and the last whole second a u64 of ms holds.
    let last = 253_402_300_799_i64;
    let mut lines: String = (0..3).map(|i| jline(last - 2 + i, 52.0)).collect();
    lines.push_str(&jline(last + 1, 52.0));
    lines.push_str(&jline((u64::MAX / 1000) as i64, 52.0));
    d.write("in.jsonl", lines.as_bytes());
    let agg = ["--window", "1m", "--aggregates", "agg.csv", "-q"];
    d.mend(
        &[
            &["replay", "in.jsonl", "-o", "out.csv", "--dlq", "dlq.jsonl"][..],
            &agg,
        ]
        .concat(),
    )
    .ok();
    let out = d.read_text("out.csv");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.lines()
            .skip(1)
            .all(|row| row.contains(",9999-12-31T23:59:5")),
        "{out}"
    );
    // Times no row can show are dead letters, named and located.
    let dead = dead_letters(&d.read_text("dlq.jsonl"));
    let at: Vec<(&str, u64)> = dead
        .iter()
        .map(|x| (x["reason"].as_str().unwrap(), x["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(at, [("bad_timestamp", 4), ("bad_timestamp", 5)]);
    assert!(
        dead[0]["detail"]
            .as_str()
            .unwrap()
            .contains("after 9999-12-31T23:59:59.999Z"),
        "{dead:?}"
    );
    let agg_text = d.read_text("agg.csv");
    let row: Vec<&str> = agg_text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[4], "3", "{agg_text}");
    // A checkpointed run holds the readings back, and the window with them.
    d.mend(
        &[
            &[
                "replay",
                "in.jsonl",
                "-o",
                "out.csv",
                "--checkpoint",
                "ck.json",
            ][..],
            &agg,
        ]
        .concat(),
    )
    .ok();
    assert_eq!(d.read_text("out.csv").lines().count(), 1);
    assert_eq!(d.read_text("agg.csv").lines().count(), 1);
    // Holding back only the last second: the first two are written, their window is not.
    std::fs::remove_file(d.path("ck.json")).unwrap();
    d.mend(
        &[
            &[
                "replay",
                "in.jsonl",
                "-o",
                "out.csv",
                "--checkpoint",
                "ck.json",
            ][..],
            &["--lateness", "0s", "--max-gap", "1s"],
            &agg,
        ]
        .concat(),
    )
    .ok();
    assert_eq!(d.read_text("out.csv").lines().count(), 3);
    assert_eq!(d.read_text("agg.csv").lines().count(), 1);
}

/// Every reading whose frame is whole somewhere in a damaged capture comes out measured, as
/// the sensor took it, and no other reading does: a frame torn short swallows the delimiter
/// of the next one, which is then found whole at the end of the damaged frame, and a lost
/// delimiter leaves two whole frames in one. The oracle looks for the clean capture's frames,
/// byte for byte, in the damaged one: whole, at the end of a damaged frame, at its start
/// before a frame found at its end, or anywhere between those two.
#[test]
fn every_reading_whose_frame_is_whole_in_a_damaged_capture_is_measured() {
    use mend_core::{DecodeEvent, Decoder};
    use std::collections::{BTreeSet, HashMap};
    let d = Dir::new();
    let gen = |extra: &[&str]| {
        let base = ["generate", "--seed", "1", "--count", "3000"];
        d.mend(&[&base[..], extra].concat()).ok();
    };
    gen(&["-o", "clean.mlog"]);
    gen(&[
        "--truncate-rate",
        "0.2",
        "--corrupt-rate",
        "0.05",
        "-o",
        "damaged.mlog",
        "--truth",
        "t.csv",
    ]);
    // The clean capture's reading frames (their seqs) and headers, without their
    // delimiters, by their bytes.
    let clean = d.read("clean.mlog");
    let mut seq_of: HashMap<&[u8], Option<u32>> = HashMap::new();
    let mut dec: Decoder = Decoder::new();
    for ev in dec.feed(&clean) {
        if let DecodeEvent::Frame { frame, span } = ev {
            let seq = match frame {
                Frame::Reading(w) => Some(w.seq),
                Frame::Header(_) => None,
                _ => continue,
            };
            seq_of.insert(&clean[span.start as usize..span.end as usize - 1], seq);
        }
    }
    assert_eq!(seq_of.values().flatten().count(), 3000);
    let damaged = d.read("damaged.mlog");
    // Readings are checked against their session's header: this seed's damage spares the
    // first one, which the readings before the next one need.
    let header_len = clean.iter().position(|b| *b == 0).unwrap() + 1;
    assert_eq!(
        damaged[..header_len],
        clean[..header_len],
        "the first header is whole"
    );
    let mut whole = BTreeSet::new();
    let (mut joined, mut in_place) = (0, 0);
    for piece in damaged.split(|b| *b == 0) {
        if let Some(seq) = seq_of.get(piece) {
            whole.extend(*seq);
            in_place += 1;
            continue;
        }
        let end = (1..piece.len()).find_map(|k| seq_of.get(&piece[k..]).map(|s| (k, *s)));
        let limit = end.map_or(piece.len(), |(k, _)| k);
        let start = (1..=limit).find_map(|j| seq_of.get(&piece[..j]).map(|s| (j, *s)));
        // Between the two, from each byte on, the shortest run that is a frame.
        let mut k = start.map_or(1, |(j, _)| j);
        let mut middle = Vec::new();
        while k < limit {
            match (k + 1..=limit).find_map(|j| seq_of.get(&piece[k..j]).map(|s| (j, *s))) {
                Some((j, seq)) => {
                    middle.push(seq);
                    k = j;
                }
                None => k += 1,
            }
        }
        let ends = [end.map(|(_, s)| s), start.map(|(_, s)| s)];
        for seq in ends.into_iter().flatten().chain(middle) {
            whole.extend(seq);
            joined += 1;
        }
    }
    assert!(joined > 100, "{joined} frames joined onto others");

    let run = d.mend(&["replay", "damaged.mlog", "-o", "out.csv"]).ok();
    let truth: HashMap<u32, (u64, Celsius)> = truth(&d.read_text("t.csv"))
        .into_iter()
        .map(|t| (t.seq, (t.ms, t.celsius)))
        .collect();
    let mut measured = BTreeSet::new();
    for r in rows(&d.read_text("out.csv"))
        .iter()
        .filter(|r| !r.synthetic())
    {
        let seq = r.seq.unwrap();
        assert_eq!(truth.get(&seq), Some(&(r.ms, r.celsius)), "seq {seq}");
        measured.insert(seq);
    }
    let missing: Vec<_> = whole.difference(&measured).collect();
    let invented: Vec<_> = measured.difference(&whole).collect();
    assert!(
        missing.is_empty() && invented.is_empty(),
        "{in_place} whole in place, {joined} joined; not measured: {missing:?}; \
         measured, not whole: {invented:?}"
    );
    assert!(
        run.stderr().contains(&format!(
            "{joined} of the good frames were found whole inside damaged ones"
        )),
        "{}",
        run.stderr()
    );
}

/// A capture cut just before a delimiter ends with a frame that is whole: its reading is
/// measured, and the log grown past the cut, replayed on from a checkpoint, gives with the
/// first run exactly the rows of one run over the whole log.
#[test]
fn a_capture_cut_before_a_delimiter_keeps_its_last_reading() {
    let d = Dir::new();
    d.mend(&[
        "generate",
        "--seed",
        "3",
        "--count",
        "600",
        "-o",
        "full.mlog",
    ])
    .ok();
    let full = d.read("full.mlog");
    let zeros: Vec<usize> = (0..full.len()).filter(|i| full[*i] == 0).collect();
    d.mend(&["replay", "full.mlog", "-o", "one.csv", "-q"]).ok();
    let one = d.read_text("one.csv");
    for cut in [zeros[300], zeros[301], zeros[zeros.len() - 1]] {
        d.write("grow.mlog", &full[..cut]);
        let said = d
            .mend(&["replay", "grow.mlog", "-o", "alone.csv"])
            .ok()
            .stderr();
        assert!(
            said.contains("1 of the good frames was found whole inside damaged ones"),
            "{said}"
        );
        assert!(said.contains("dead letters: 0"), "{said}");
        // The last row measured is the frame before the cut, as one run over the whole log
        // measured it.
        let alone = d.read_text("alone.csv");
        let last = alone.lines().last().unwrap();
        assert!(one.lines().any(|l| l == last), "{last}");
        assert!(last.contains(",measured,"), "{last}");

        let _ = std::fs::remove_file(d.path("ck.json"));
        d.mend(&[
            "replay",
            "grow.mlog",
            "-o",
            "a.csv",
            "--checkpoint",
            "ck.json",
            "-q",
        ])
        .ok();
        d.write("grow.mlog", &full);
        d.mend(&[
            "replay",
            "grow.mlog",
            "-o",
            "b.csv",
            "--checkpoint",
            "ck.json",
            "--final",
            "-q",
        ])
        .ok();
        let b = d.read_text("b.csv");
        let joined = d.read_text("a.csv") + b.split_once('\n').unwrap().1;
        assert_eq!(joined, one, "cut at {cut}");
    }
}
