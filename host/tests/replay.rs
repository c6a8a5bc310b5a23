//! Replay contracts against the real binary: recovery against the simulator's truth,
//! idempotent reruns, overlapping inputs, checkpoints, windows and seeks.

mod common;

use std::collections::BTreeMap;

use common::*;
use mend_core::Celsius;

/// Generates a damaged capture with its truth.
fn capture(d: &Dir, name: &str, seed: &str, count: &str, extra: &[&str]) {
    let truth = format!("{name}.truth.csv");
    let mut args = vec![
        "generate", "--seed", seed, "--count", count, "-o", name, "--truth", &truth,
    ];
    args.extend_from_slice(extra);
    d.mend(&args).ok();
}

const DAMAGE: &[&str] = &[
    "--error-rate",
    "0.05",
    "--skip-rate",
    "0.1",
    "--duplicate-rate",
    "0.02",
    "--reorder-rate",
    "0.05",
    "--corrupt-rate",
    "0.005",
];

#[test]
fn recovery_is_exact_against_the_truth() {
    let d = Dir::new();
    capture(&d, "cap.mlog", "7", "5000", DAMAGE);
    d.mend(&[
        "replay",
        "cap.mlog",
        "-o",
        "out.csv",
        "--window",
        "1m",
        "--aggregates",
        "agg.csv",
        "--summary-json",
        "s.json",
    ])
    .ok();
    let truth = truth(&d.read_text("cap.mlog.truth.csv"));
    let rows = rows(&d.read_text("out.csv"));
    let by_seq: BTreeMap<u32, &Truth> = truth.iter().map(|t| (t.seq, t)).collect();

    // Strictly ordered by time, each identity at most once.
    for w in rows.windows(2) {
        assert!(w[0].ms < w[1].ms, "{:?} then {:?}", w[0], w[1]);
        assert!(w[0].seq < w[1].seq);
    }
    // Every measured reading is kept exactly, at its true time.
    let measured: Vec<&Row> = rows.iter().filter(|r| !r.synthetic()).collect();
    assert!(measured.len() > 4_000, "{}", measured.len());
    for r in &measured {
        let t = by_seq[&r.seq.unwrap()];
        assert_eq!((r.ms, r.celsius), (t.ms, t.celsius), "{r:?}");
        assert_eq!(r.method, "");
    }
    // Every gap is detected: between the first and last measured reading, every seq of the
    // truth has a row (the default max gap of 60 s is never exceeded here).
    let first = measured[0].seq.unwrap();
    let last = measured[measured.len() - 1].seq.unwrap();
    let seqs: Vec<u32> = rows.iter().map(|r| r.seq.unwrap()).collect();
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>());
    // Linear fills are the interpolation of their measured neighbours, on time too, where
    // those are clean (in the band, no spike). Next to an out-of-band reading that is alone
    // outside the band, the fill takes nothing from it and stays in the band.
    let clean = |x: &Row| x.flags.is_empty();
    let measured_around = |i: usize| {
        (
            rows[..i].iter().rev().find(|x| !x.synthetic()).unwrap(),
            rows[i..].iter().find(|x| !x.synthetic()).unwrap(),
        )
    };
    let (mut fills, mut exact, mut next_to_outlier) = (0, 0, 0);
    for (i, r) in rows.iter().enumerate() {
        if !r.synthetic() {
            continue;
        }
        fills += 1;
        assert_eq!(
            (r.method.as_str(), r.quality.as_str()),
            ("linear", "doubtful")
        );
        assert!(r.flags.split(';').any(|f| f == "synthetic"), "{r:?}");
        let (a, b) = measured_around(i);
        let pos = |x: &Row| rows.iter().position(|y| y.seq == x.seq).unwrap();
        let alone = |x: &Row| {
            let at = pos(x);
            x.flags == "out_of_band"
                && (at == 0 || clean(measured_around(at).0))
                && rows[at + 1..]
                    .iter()
                    .find(|y| !y.synthetic())
                    .is_none_or(clean)
        };
        if !(clean(a) && clean(b)) {
            if (clean(a) || alone(a)) && (clean(b) || alone(b)) {
                next_to_outlier += 1;
                let (lo, hi) = (Celsius::from_num(50), Celsius::from_num(55));
                assert!(lo <= r.celsius && r.celsius <= hi, "{r:?} by {a:?} {b:?}");
            }
            continue;
        }
        exact += 1;
        let steps = i64::from(b.seq.unwrap() - a.seq.unwrap());
        let k = i64::from(r.seq.unwrap() - a.seq.unwrap());
        let (va, vb) = (
            i64::from(a.celsius.to_bits()),
            i64::from(b.celsius.to_bits()),
        );
        let want = va + div_round((vb - va) * k, steps);
        assert_eq!(
            i64::from(r.celsius.to_bits()),
            want,
            "{r:?} between {a:?} and {b:?}"
        );
        let dt = (b.ms - a.ms) as i64;
        assert_eq!(r.ms as i64, a.ms as i64 + dt * k / steps);
    }
    assert!(fills > 300, "{fills}");
    assert!(
        exact > 250 && next_to_outlier > 10,
        "{exact} {next_to_outlier}"
    );
    // Aggregates over measured readings equal the truth's over the same readings.
    let mut want: BTreeMap<u64, (u32, i64, i32, i32)> = BTreeMap::new();
    for r in &measured {
        let w = r.ms - r.ms % 60_000;
        let bits = r.celsius.to_bits();
        let e = want.entry(w).or_insert((0, 0, i32::MAX, i32::MIN));
        e.0 += 1;
        e.1 += i64::from(bits);
        e.2 = e.2.min(bits);
        e.3 = e.3.max(bits);
    }
    let agg = d.read_text("agg.csv");
    let mut lines = agg.lines();
    assert_eq!(
        lines.next(),
        Some("sensor,session,window_start,window_end,measured,synthetic,rejected,min,max,mean,time_in_band_ms,mean_with_fills,time_in_band_with_fills_ms")
    );
    let mut windows = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let start = humantime::parse_rfc3339(f[2])
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (n, sum, lo, hi) = want[&start];
        assert_eq!(f[4].parse::<u32>().unwrap(), n, "{l}");
        assert_eq!(
            Celsius::from_num(f[7].parse::<f64>().unwrap()).to_bits(),
            lo,
            "{l}"
        );
        assert_eq!(
            Celsius::from_num(f[8].parse::<f64>().unwrap()).to_bits(),
            hi,
            "{l}"
        );
        let mean = div_round(sum, i64::from(n));
        assert_eq!(
            i64::from(Celsius::from_num(f[9].parse::<f64>().unwrap()).to_bits()),
            mean,
            "{l}"
        );
        // Time in band is measured only, like min, max and mean; the columns "with fills"
        // count the fills as well.
        let window: Vec<&Row> = rows
            .iter()
            .filter(|r| r.ms / 60_000 * 60_000 == start && r.quality != "bad")
            .collect();
        let in_band =
            |r: &&&Row| (Celsius::from_num(50)..=Celsius::from_num(55)).contains(&r.celsius);
        let measured_in_band = window
            .iter()
            .filter(|r| !r.synthetic())
            .filter(in_band)
            .count();
        let all_in_band = window.iter().filter(in_band).count();
        assert_eq!(f[10], (measured_in_band * 1_000).to_string(), "{l}");
        assert_eq!(f[12], (all_in_band * 1_000).to_string(), "{l}");
        let all_sum: i64 = window.iter().map(|r| i64::from(r.celsius.to_bits())).sum();
        assert_eq!(
            i64::from(Celsius::from_num(f[11].parse::<f64>().unwrap()).to_bits()),
            div_round(all_sum, window.len() as i64),
            "{l}"
        );
        windows += 1;
    }
    assert_eq!(windows, want.len());
    // The books balance.
    let s: serde_json::Value = serde_json::from_slice(&d.read("s.json")).unwrap();
    assert_eq!(s["inputs"][0]["balanced"], true);
    assert_eq!(s["streams"][0]["balanced"], true);
}

#[test]
fn reruns_are_byte_identical() {
    let d = Dir::new();
    capture(&d, "cap.mlog", "11", "3000", DAMAGE);
    let outs = ["out.csv", "dlq.jsonl", "agg.csv", "chart.svg"];
    let run = |suffix: &str| -> Vec<Vec<u8>> {
        let names: Vec<String> = outs.iter().map(|o| format!("{suffix}{o}")).collect();
        d.mend(&[
            "replay",
            "cap.mlog",
            "--fill",
            "stochastic",
            "-o",
            &names[0],
            "--dlq",
            &names[1],
            "--window",
            "5m",
            "--aggregates",
            &names[2],
            "--chart",
            &names[3],
            "-q",
        ])
        .ok();
        names.iter().map(|n| d.read(n)).collect()
    };
    let a = run("a-");
    let b = run("b-");
    assert_eq!(a, b);
    assert!(a.iter().all(|x| !x.is_empty()));
    let svg = String::from_utf8(a[3].clone()).unwrap();
    assert!(svg.contains("<svg"), "a chart was drawn");
}

/// Byte ranges of a file, cut at arbitrary (not frame) boundaries.
fn split(bytes: &[u8], a_end: usize, b_start: usize) -> (Vec<u8>, Vec<u8>) {
    (bytes[..a_end].to_vec(), bytes[b_start..].to_vec())
}

#[test]
fn overlapping_captures_merge_without_double_counting() {
    let d = Dir::new();
    capture(
        &d,
        "cap.mlog",
        "13",
        "4000",
        &[
            "--skip-rate",
            "0.05",
            "--duplicate-rate",
            "0.02",
            "--reorder-rate",
            "0.05",
        ],
    );
    let whole = d.read("cap.mlog");
    let (a, b) = split(&whole, whole.len() * 6 / 10, whole.len() * 4 / 10);
    d.write("a.mlog", &a);
    d.write("b.mlog", &b);
    d.mend(&["replay", "cap.mlog", "-o", "whole.csv", "-q"])
        .ok();
    d.mend(&["replay", "a.mlog", "b.mlog", "-o", "ab.csv", "-q"])
        .ok();
    d.mend(&["replay", "b.mlog", "a.mlog", "-o", "ba.csv", "-q"])
        .ok();
    let whole_rows = d.read_text("whole.csv");
    assert_eq!(d.read_text("ab.csv"), whole_rows);
    assert_eq!(d.read_text("ba.csv"), whole_rows);
    // The same with the prototype's JSONL, cut at line boundaries.
    d.mend(&[
        "generate",
        "--seed",
        "13",
        "--count",
        "3000",
        "--format",
        "jsonl",
        "--skip-rate",
        "0.05",
        "-o",
        "cap.jsonl",
    ])
    .ok();
    let text = d.read_text("cap.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let a: String = lines[..1800].iter().map(|l| format!("{l}\n")).collect();
    let b: String = lines[1200..].iter().map(|l| format!("{l}\n")).collect();
    d.write("a.jsonl", a.as_bytes());
    d.write("b.jsonl", b.as_bytes());
    d.mend(&["replay", "cap.jsonl", "-o", "whole-j.csv", "-q"])
        .ok();
    d.mend(&["replay", "a.jsonl", "b.jsonl", "-o", "ab-j.csv", "-q"])
        .ok();
    assert_eq!(d.read_text("ab-j.csv"), d.read_text("whole-j.csv"));
    assert!(rows(&d.read_text("whole-j.csv")).len() >= 2_990);
}

#[test]
fn checkpoint_resume_emits_only_newer_rows() {
    let d = Dir::new();
    capture(
        &d,
        "cap.mlog",
        "17",
        "3000",
        &["--skip-rate", "0.1", "--duplicate-rate", "0.05"],
    );
    let whole = d.read("cap.mlog");
    d.write("prefix.mlog", &whole[..whole.len() / 2 + 7]);
    d.mend(&[
        "replay",
        "prefix.mlog",
        "--checkpoint",
        "ck.json",
        "-o",
        "one.csv",
        "-q",
    ])
    .ok();
    let ck_after_first = d.read("ck.json");
    // The log is complete now: --final writes the tail the first run held back.
    let run = d
        .mend(&[
            "replay",
            "cap.mlog",
            "--checkpoint",
            "ck.json",
            "--final",
            "-o",
            "two.csv",
            "--strict",
        ])
        .ok();
    assert!(
        run.stderr().contains("already written by an earlier run"),
        "{}",
        run.stderr()
    );
    d.mend(&["replay", "cap.mlog", "-o", "all.csv", "-q"]).ok();
    let one = d.read_text("one.csv");
    let two = d.read_text("two.csv");
    let all = d.read_text("all.csv");
    let joined = format!("{one}{}", two.strip_prefix(&format!("{HEADER}\n")).unwrap());
    assert_eq!(joined, all);
    let (r1, r2) = (rows(&one), rows(&two));
    assert!(!r1.is_empty() && !r2.is_empty());
    assert!(r1.last().unwrap().ms < r2[0].ms);
    // A crash after the outputs but before the checkpoint: the rerun writes the same rows.
    d.write("ck.json", &ck_after_first);
    d.mend(&[
        "replay",
        "cap.mlog",
        "--checkpoint",
        "ck.json",
        "--final",
        "-o",
        "two-again.csv",
        "-q",
    ])
    .ok();
    assert_eq!(d.read_text("two-again.csv"), two);
    // Nothing new: a third run emits nothing.
    let run = d
        .mend(&[
            "replay",
            "cap.mlog",
            "--checkpoint",
            "ck.json",
            "-o",
            "three.csv",
        ])
        .ok();
    assert_eq!(d.read_text("three.csv"), format!("{HEADER}\n"));
    assert!(
        run.stderr().contains("the output is empty"),
        "{}",
        run.stderr()
    );
}

#[test]
fn window_edges_are_filled_from_the_readings_outside() {
    let d = Dir::new();
    // Readings every second from t=100 s, with seqs 10..=14 missing around t=112 s.
    let h = header(1, 1);
    let mut log = common::frame(mend_core::Frame::Header(h));
    let vals = |s: u32| 50.0 + f64::from(s) * 0.25;
    log.extend(readings(&h, (100..110).map(|s| (s, vals(s)))));
    log.extend(readings(&h, (115..130).map(|s| (s, vals(s)))));
    d.write("in.mlog", &log);
    d.mend(&["replay", "in.mlog", "-o", "all.csv", "-q"]).ok();
    let all = rows(&d.read_text("all.csv"));
    // --from inside the gap: the first rows are fills computed from seq 109, outside.
    d.mend(&[
        "replay",
        "in.mlog",
        "--from",
        "112",
        "--until",
        "1970-01-01T00:01:57Z",
        "-o",
        "w.csv",
        "-q",
    ])
    .ok();
    let w = rows(&d.read_text("w.csv"));
    let seqs: Vec<u32> = w.iter().map(|r| r.seq.unwrap()).collect();
    assert_eq!(seqs, (112..=117).collect::<Vec<_>>());
    assert!(w[0].synthetic() && w[1].synthetic() && w[2].synthetic());
    assert_eq!(
        w[0].celsius,
        Celsius::from_num(vals(112)),
        "linear from 109 to 115"
    );
    for r in &w {
        assert_eq!(
            Some(r),
            all.iter().find(|x| x.seq == r.seq),
            "same as the full run"
        );
    }
    // --until inside the gap: the fills up to it come out, computed from seq 115.
    d.mend(&["replay", "in.mlog", "--until", "111", "-o", "u.csv", "-q"])
        .ok();
    let u = rows(&d.read_text("u.csv"));
    assert_eq!(u.last().unwrap().seq, Some(111));
    assert!(u.last().unwrap().synthetic());
    assert_eq!(u.last().unwrap().celsius, Celsius::from_num(vals(111)));
    // A window after the last reading: an empty series and a clear message, exit 0.
    let run = d
        .mend(&["replay", "in.mlog", "--from", "2026-01-01T00:00:00Z"])
        .ok();
    assert_eq!(run.stdout(), format!("{HEADER}\n"));
    assert!(
        run.stderr()
            .contains("no reading at or after --from 2026-01-01T00:00:00.000Z"),
        "{}",
        run.stderr()
    );
}

#[test]
fn seek_reads_far_fewer_bytes_and_gives_the_same_rows() {
    let d = Dir::new();
    capture(
        &d,
        "big.mlog",
        "19",
        "200000",
        &["--skip-rate", "0.1", "--reorder-rate", "0.02"],
    );
    let size = d.read("big.mlog").len() as u64;
    let args = |extra: &'static str, out: &'static str, json: &'static str| {
        let mut a = vec![
            "replay",
            "big.mlog",
            "--from",
            "2026-01-02T12:00:00Z",
            "--until",
            "2026-01-02T12:30:00Z",
            "-o",
            out,
            "--summary-json",
            json,
            "-q",
        ];
        if !extra.is_empty() {
            a.push(extra);
        }
        a
    };
    d.mend(&args("", "seek.csv", "seek.json")).ok();
    d.mend(&args("--no-seek", "full.csv", "full.json")).ok();
    assert_eq!(d.read_text("seek.csv"), d.read_text("full.csv"));
    assert_eq!(rows(&d.read_text("seek.csv")).len(), 1801);
    let s: serde_json::Value = serde_json::from_slice(&d.read("seek.json")).unwrap();
    let b = &s["inputs"][0]["bytes"];
    let read = b["read"].as_u64().unwrap();
    assert!(read * 10 < size, "read {read} of {size}");
    assert!(b["before_seek"].as_u64().unwrap() > size / 2);
    let sum = b["before_seek"].as_u64().unwrap() + read + b["after_stop"].as_u64().unwrap();
    assert_eq!(sum, size);
    assert_eq!(s["inputs"][0]["balanced"], true);
}

#[test]
fn equal_timestamps_in_jsonl_keep_the_first_value_and_set_conflicts_aside() {
    let d = Dir::new();
    let text = [
        jline(10, 52.0),
        jline(11, 53.0),
        jline(11, 51.5),
        jline(11, 53.0),
        jline(12, 52.0),
        jline(11, 51.5),
    ]
    .concat();
    d.write("eq.jsonl", text.as_bytes());
    let run = d
        .mend(&["replay", "eq.jsonl", "--summary-json", "s.json"])
        .ok();
    let rows = rows(&run.stdout());
    let got: Vec<(u64, f64)> = rows.iter().map(|r| (r.ms, r.celsius.to_num())).collect();
    // A prototype log has no seq: the timestamp is the identity, and the first value read
    // for it is kept, even when the other one comes long after.
    assert_eq!(got, [(10_000, 52.0), (11_000, 53.0), (12_000, 52.0)]);
    let s: serde_json::Value = serde_json::from_slice(&d.read("s.json")).unwrap();
    assert_eq!(s["streams"][0]["counters"]["duplicate"], 1);
    assert_eq!(s["streams"][0]["counters"]["rejected"], 2);
    assert_eq!(s["dead_by_reason"]["conflicting_duplicate"], 2);
}

#[test]
fn stdin_and_every_output_format() {
    let d = Dir::new();
    capture(&d, "cap.mlog", "23", "500", &["--skip-rate", "0.1"]);
    let bytes = d.read("cap.mlog");
    let from_stdin = d.mend_stdin(&["replay", "-", "-q"], Some(&bytes)).ok();
    let from_file = d.mend(&["replay", "cap.mlog", "-q"]).ok();
    assert_eq!(from_stdin.stdout(), from_file.stdout());
    // `-o -` is standard output too, not a file called "-", for `generate` as well.
    let dash = d.mend(&["replay", "cap.mlog", "-o", "-", "-q"]).ok();
    assert_eq!(dash.stdout(), from_file.stdout());
    let generated = d
        .mend(&[
            "generate",
            "--seed",
            "23",
            "--count",
            "500",
            "--skip-rate",
            "0.1",
            "-o",
            "-",
        ])
        .ok();
    assert!(
        generated.0.stdout == bytes,
        "the same capture on standard output"
    );
    assert!(generated.stderr().contains("bytes → standard output"));
    assert!(!d.path("-").exists());
    let csv_rows = rows(&from_file.stdout());
    // JSONL output: the same fields.
    let j = d
        .mend(&["replay", "cap.mlog", "--format", "jsonl", "-q"])
        .ok();
    let objs: Vec<serde_json::Value> = j
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), csv_rows.len());
    for (o, r) in objs.iter().zip(&csv_rows) {
        assert_eq!(o["seq"].as_u64(), r.seq.map(u64::from));
        assert_eq!(o["time"], r.time.as_str());
        assert_eq!(Celsius::from_num(o["celsius"].as_f64().unwrap()), r.celsius);
        assert_eq!(o["origin"], r.origin.as_str());
        assert_eq!(o["quality"], r.quality.as_str());
        assert_eq!(o["flags"], r.flags.as_str());
    }
    // mlog output holds the measured readings; replaying it gives the same series.
    d.mend(&[
        "replay", "cap.mlog", "--format", "mlog", "-o", "re.mlog", "-q",
    ])
    .ok();
    let again = d.mend(&["replay", "re.mlog", "-q"]).ok();
    assert_eq!(again.stdout(), from_file.stdout());
}

#[test]
fn stochastic_and_locf_and_none() {
    let d = Dir::new();
    capture(&d, "cap.mlog", "29", "2000", &["--skip-rate", "0.2"]);
    let t = truth(&d.read_text("cap.mlog.truth.csv"));
    let by_seq: BTreeMap<u32, Celsius> = t.iter().map(|x| (x.seq, x.celsius)).collect();
    for fill in ["stochastic", "locf", "none"] {
        let run = d.mend(&["replay", "cap.mlog", "--fill", fill, "-q"]).ok();
        let rows = rows(&run.stdout());
        for r in rows.iter().filter(|r| !r.synthetic()) {
            assert_eq!(r.celsius, by_seq[&r.seq.unwrap()]);
        }
        let fills: Vec<&Row> = rows.iter().filter(|r| r.synthetic()).collect();
        if fill == "none" {
            assert!(fills.is_empty());
        } else {
            assert!(fills.len() > 300);
            assert!(fills.iter().all(|r| r.method == fill));
        }
        if fill == "locf" {
            for (i, r) in rows.iter().enumerate() {
                if r.synthetic() {
                    let a = rows[..i].iter().rev().find(|x| !x.synthetic()).unwrap();
                    assert_eq!(r.celsius, a.celsius);
                }
            }
        }
    }
}

#[test]
fn inspect_shows_what_a_capture_holds() {
    let d = Dir::new();
    capture(&d, "cap.mlog", "31", "1000", DAMAGE);
    let run = d.mend(&["inspect", "cap.mlog"]).ok();
    let out = run.stdout();
    for needle in [
        "sensors: 1",
        "session: sensor 1 session 31: period 1s, unix clock",
        "time span: 2026-01-01T00:00:00.000Z",
        "good frames",
        "gaps:",
        "edge stats:",
        "damaged or unusable input:",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from\n{out}");
    }
}

#[test]
fn a_restarted_node_keeps_its_rows_in_time_order() {
    let d = Dir::new();
    // Session 1 at t = 0..100 s, session 2 (after a restart) at t = 105..200 s.
    let h1 = header(4, 1);
    let h2 = mend_core::Header::new(4, 2, 1_000, mend_core::ClockKind::Unix, 105_000);
    let mut log = common::frame(mend_core::Frame::Header(h1));
    log.extend(readings(&h1, (0..100).map(|s| (s, 52.0))));
    log.extend(common::frame(mend_core::Frame::Header(h2)));
    log.extend(readings(&h2, (0..95).map(|s| (s, 53.0))));
    d.write("two.mlog", &log);
    let run = d.mend(&["replay", "two.mlog", "-q"]).ok();
    let rows = rows(&run.stdout());
    assert_eq!(rows.len(), 195);
    assert!(rows.windows(2).all(|w| w[0].ms < w[1].ms));
    assert_eq!((rows[99].session, rows[100].session), (1, 2));
}

#[test]
fn boot_clock_sessions_are_not_bisected() {
    let d = Dir::new();
    // Two power-ups with boot clocks: time starts again at 0, so bytes are not in time order.
    let mut log = Vec::new();
    for session in [1u32, 2] {
        let h = mend_core::Header::new(9, session, 1_000, mend_core::ClockKind::Boot, 0);
        for chunk in 0..1_000u32 {
            log.extend(common::frame(mend_core::Frame::Header(h)));
            log.extend(readings(
                &h,
                (chunk * 60..chunk * 60 + 60).map(|s| (s, 52.0)),
            ));
        }
    }
    assert!(log.len() > 1 << 20);
    d.write("boot.mlog", &log);
    let seek = d
        .mend(&[
            "replay",
            "boot.mlog",
            "--from",
            "30000",
            "--until",
            "30010",
            "-o",
            "a.csv",
        ])
        .ok();
    assert!(
        seek.stderr()
            .contains("has a boot clock; read from the start to the end"),
        "{}",
        seek.stderr()
    );
    d.mend(&[
        "replay",
        "boot.mlog",
        "--from",
        "30000",
        "--until",
        "30010",
        "--no-seek",
        "-o",
        "b.csv",
        "-q",
    ])
    .ok();
    assert_eq!(d.read_text("a.csv"), d.read_text("b.csv"));
    let rows = rows(&d.read_text("a.csv"));
    let sessions: Vec<(u32, u32)> = rows.iter().map(|r| (r.session, r.seq.unwrap())).collect();
    // --from 30000 is 30 000 s on each boot clock: seqs 30000..=30010 of both sessions.
    let mut want: Vec<(u32, u32)> = (30_000..=30_010).map(|s| (1, s)).collect();
    want.extend((30_000..=30_010).map(|s| (2, s)));
    assert_eq!(sessions, want, "both power-ups are in the window");
}

#[test]
fn an_outage_is_reported_and_never_filled() {
    let d = Dir::new();
    let h = header(2, 1);
    let mut log = common::frame(mend_core::Frame::Header(h));
    log.extend(readings(&h, (0..10).map(|s| (s, 52.0))));
    // 120 s of silence: longer than the default max gap of 60 s.
    log.extend(readings(&h, (130..140).map(|s| (s, 53.0))));
    // 40 s: a gap, filled.
    log.extend(readings(&h, (180..185).map(|s| (s, 54.0))));
    d.write("out.mlog", &log);
    let run = d
        .mend(&[
            "replay",
            "out.mlog",
            "-o",
            "o.csv",
            "--summary-json",
            "s.json",
            "--chart",
            "c.svg",
        ])
        .ok();
    let rows = rows(&d.read_text("o.csv"));
    assert!(rows.iter().all(|r| !(10..130).contains(&r.seq.unwrap())));
    assert_eq!(rows.iter().filter(|r| r.synthetic()).count(), 40);
    assert!(
        run.stderr().contains(
            "outage 1970-01-01T00:00:09.000Z .. 1970-01-01T00:02:10.000Z (120 missing, not filled)"
        ),
        "{}",
        run.stderr()
    );
    let s: serde_json::Value = serde_json::from_slice(&d.read("s.json")).unwrap();
    let st = &s["streams"][0];
    assert_eq!(
        (st["outages"].as_u64(), st["gaps"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(st["missing_in_outages"], 120);
    // A shorter --max-gap makes the 40 s gap an outage too.
    let run = d
        .mend(&[
            "replay",
            "out.mlog",
            "--max-gap",
            "30s",
            "-q",
            "--summary-json",
            "s2.json",
        ])
        .ok();
    assert!(rows_of(&run).iter().all(|r| !r.synthetic()));
    let s: serde_json::Value = serde_json::from_slice(&d.read("s2.json")).unwrap();
    assert_eq!(s["streams"][0]["outages"], 2);
}

fn rows_of(run: &Run) -> Vec<Row> {
    rows(&run.stdout())
}

#[test]
fn jsonl_period_comes_from_the_command_line() {
    let d = Dir::new();
    let text: String = [0, 5, 10, 20, 25].iter().map(|t| jline(*t, 52.0)).collect();
    d.write("p.jsonl", text.as_bytes());
    let run = d.mend(&["replay", "p.jsonl", "--period", "5s", "-q"]).ok();
    let rows = rows_of(&run);
    let times: Vec<(u64, bool)> = rows.iter().map(|r| (r.ms / 1000, r.synthetic())).collect();
    assert_eq!(
        times,
        [
            (0, false),
            (5, false),
            (10, false),
            (15, true),
            (20, false),
            (25, false)
        ]
    );
    // With the default 1 s period, every missing second is filled.
    let run = d.mend(&["replay", "p.jsonl", "-q"]).ok();
    assert_eq!(rows_of(&run).len(), 26);
}

#[test]
fn checkpoint_resume_works_for_jsonl_too() {
    let d = Dir::new();
    d.mend(&[
        "generate",
        "--seed",
        "8",
        "--count",
        "2000",
        "--format",
        "jsonl",
        "--skip-rate",
        "0.1",
        "--duplicate-rate",
        "0.05",
        "-o",
        "cap.jsonl",
    ])
    .ok();
    let text = d.read_text("cap.jsonl");
    let prefix: String = text.lines().take(1000).map(|l| format!("{l}\n")).collect();
    d.write("prefix.jsonl", prefix.as_bytes());
    d.mend(&[
        "replay",
        "prefix.jsonl",
        "--checkpoint",
        "ck.json",
        "-o",
        "one.csv",
        "-q",
    ])
    .ok();
    d.mend(&[
        "replay",
        "cap.jsonl",
        "--checkpoint",
        "ck.json",
        "--final",
        "-o",
        "two.csv",
        "-q",
    ])
    .ok();
    d.mend(&["replay", "cap.jsonl", "-o", "all.csv", "-q"]).ok();
    let two = d.read_text("two.csv");
    let joined = format!(
        "{}{}",
        d.read_text("one.csv"),
        two.strip_prefix(&format!("{HEADER}\n")).unwrap()
    );
    assert_eq!(joined, d.read_text("all.csv"));
    assert!(rows(&two).len() > 900);
}

#[test]
fn sensor_faults_are_listed_and_their_slots_filled() {
    let d = Dir::new();
    let h = header(6, 1);
    let mut log = common::frame(mend_core::Frame::Header(h));
    log.extend(readings(&h, (0..3).map(|s| (s, 52.0))));
    for (seq, kind) in [
        (3, mend_core::FaultKind::Timeout),
        (4, mend_core::FaultKind::Bus),
    ] {
        log.extend(common::frame(mend_core::Frame::Fault(mend_core::Fault {
            seq,
            kind,
        })));
    }
    log.extend(readings(&h, (5..8).map(|s| (s, 55.0))));
    d.write("f.mlog", &log);
    let run = d.mend(&["replay", "f.mlog", "--strict"]).ok();
    assert!(
        run.stderr()
            .contains("sensor faults reported by the edge: 2 (seq 3 timeout, seq 4 bus)"),
        "{}",
        run.stderr()
    );
    let rows = rows(&run.stdout());
    let fills: Vec<u32> = rows
        .iter()
        .filter(|r| r.synthetic())
        .map(|r| r.seq.unwrap())
        .collect();
    assert_eq!(fills, [3, 4]);
    let inspect = d.mend(&["inspect", "f.mlog"]).ok();
    assert!(
        inspect.stdout().contains("seq 3 timeout"),
        "{}",
        inspect.stdout()
    );
}

#[test]
fn many_overlapping_inputs_give_the_same_series() {
    let d = Dir::new();
    capture(
        &d,
        "cap.mlog",
        "37",
        "3000",
        &["--skip-rate", "0.05", "--duplicate-rate", "0.02"],
    );
    let whole = d.read("cap.mlog");
    let n = whole.len();
    let mut names = Vec::new();
    for i in 0..6 {
        let (a, b) = (n * i / 6, (n * (i + 1) / 6 + n / 10).min(n));
        let name = format!("part{i}.mlog");
        d.write(&name, &whole[a.saturating_sub(n / 20)..b]);
        names.push(name);
    }
    d.mend(&["replay", "cap.mlog", "-o", "whole.csv", "-q"])
        .ok();
    let mut args = vec!["replay"];
    args.extend(names.iter().map(String::as_str));
    args.extend(["-o", "parts.csv", "-q"]);
    d.mend(&args).ok();
    assert_eq!(d.read_text("parts.csv"), d.read_text("whole.csv"));
}

#[test]
fn an_interrupted_replay_leaves_neither_outputs_nor_temporary_files() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let d = Dir::new();
    let h = header(4, 1);
    let mut log = frame(mend_core::Frame::Header(h));
    log.extend(readings(&h, (0..2_000).map(|s| (s, 52.0))));
    // The capture comes on stdin, which stays open: the replay is still waiting for more
    // when the signal arrives, whatever the speed of the machine.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mend"))
        .args([
            "replay",
            "-",
            "-o",
            "out.csv",
            "--dlq",
            "dlq.jsonl",
            "--quiet",
        ])
        .current_dir(d.path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&log).unwrap();
    stdin.flush().unwrap();
    let names = || -> Vec<String> {
        std::fs::read_dir(d.path(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    // Both temporary outputs exist once the replay has started.
    let started = std::time::Instant::now();
    while names().iter().filter(|n| n.contains(".mend-tmp-")).count() < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no temporary outputs appeared: {:?}",
            names()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    // It stops on its own; if it does not, stop it and fail instead of hanging.
    let asked = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if asked.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("the replay did not stop on SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("mend: interrupted"), "{stderr}");
    assert_eq!(names(), Vec::<String>::new(), "nothing is left behind");
}

#[test]
fn the_physical_range_decides_what_is_implausible() {
    let d = Dir::new();
    let h = header(5, 1);
    let mut log = frame(mend_core::Frame::Header(h));
    log.extend(readings(&h, [(0, 52.0), (1, 90.0), (2, 52.0), (4, 52.5)]));
    d.write("in.mlog", &log);
    let seq1 = |extra: &[&str]| {
        let mut args = vec!["replay", "in.mlog", "-o", "out.csv", "--quiet"];
        args.extend_from_slice(extra);
        d.mend(&args).ok();
        let all = rows(&d.read_text("out.csv"));
        let one = all.iter().find(|r| r.seq == Some(1)).cloned().unwrap();
        let fill = all.iter().find(|r| r.seq == Some(3)).cloned().unwrap();
        (one, fill)
    };
    // 90 °C is possible for the TMP105 (-55..125): out of band, and a spike.
    let (one, _) = seq1(&[]);
    assert_eq!(
        (one.quality.as_str(), one.flags.as_str()),
        ("doubtful", "out_of_band;spike")
    );
    // A sensor rated -40..85 cannot read 90 °C.
    let (one, fill) = seq1(&["--physical", "-40..85"]);
    assert_eq!(
        (one.quality.as_str(), one.flags.as_str()),
        ("bad", "out_of_band;implausible")
    );
    assert!(fill.synthetic());
    assert_eq!(
        fill.celsius,
        Celsius::from_num(52.25),
        "52 and 52.5 around it"
    );
}

#[test]
fn outage_counts_are_exact_beyond_u32() {
    let d = Dir::new();
    // Two readings 8 590 933 592 s apart at a period of 1 ms: more than 2^32 missing.
    d.write(
        "in.jsonl",
        b"{\"timestamp\": 1000, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.0, \"status\": \"normal\"}\n\
          {\"timestamp\": 8590934592, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.0, \"status\": \"normal\"}\n",
    );
    d.mend(&[
        "replay",
        "in.jsonl",
        "--period",
        "1ms",
        "--summary-json",
        "s.json",
        "-o",
        "out.csv",
        "-q",
    ])
    .ok();
    let s: serde_json::Value = serde_json::from_str(&d.read_text("s.json")).unwrap();
    let stream = &s["streams"][0];
    let want = 8_590_933_591_999u64;
    assert_eq!(stream["missing_in_outages"], want);
    assert_eq!(stream["outage_list"][0]["missing"], want);
}

/// The fields of a CSV row, as text (outage slots have no value to parse).
fn fields(csv_text: &str) -> Vec<Vec<String>> {
    let mut lines = csv_text.lines();
    assert_eq!(lines.next(), Some(HEADER));
    lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn emit_outages_writes_the_slots_as_rows_without_a_value() {
    let d = Dir::new();
    // Seqs 0..=4 and 100..=102 at 1 s: seqs 5..=99 (95 readings, 96 s) are an outage.
    let h = header(1, 1);
    let head = common::frame(mend_core::Frame::Header(h));
    let mut prefix = head.clone();
    prefix.extend(readings(&h, (0..5).map(|s| (s, 52.0))));
    let mut log = prefix.clone();
    log.extend(readings(&h, (100..103).map(|s| (s, 53.0))));
    d.write("in.mlog", &log);
    d.write("prefix.mlog", &prefix);

    // Without the flag, the rows hold the readings only; the outage is in the summary.
    let plain = d
        .mend(&["replay", "in.mlog", "--summary-json", "s.json"])
        .ok();
    assert_eq!(rows(&plain.stdout()).len(), 8);
    let s: serde_json::Value = serde_json::from_str(&d.read_text("s.json")).unwrap();
    assert_eq!(s["streams"][0]["missing_in_outages"], 95);

    // With it: one row per second, each seq once, strictly in time order.
    d.mend(&[
        "replay",
        "in.mlog",
        "--emit-outages",
        "-o",
        "grid.csv",
        "-q",
    ])
    .ok();
    let grid = fields(&d.read_text("grid.csv"));
    let seqs: Vec<u32> = grid.iter().map(|f| f[2].parse().unwrap()).collect();
    assert_eq!(seqs, (0..=102).collect::<Vec<_>>());
    for f in &grid {
        let seq: u64 = f[2].parse().unwrap();
        let ms = humantime::parse_rfc3339(&f[3])
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert_eq!(ms, seq * 1_000, "{f:?}");
        if (5..100).contains(&seq) {
            assert_eq!(f[4..], ["", "missing", "", "", ""], "{f:?}");
        } else {
            assert_eq!(f[5], "measured", "{f:?}");
        }
    }
    // The measured rows are those of the plain run.
    let measured: Vec<String> = d
        .read_text("grid.csv")
        .lines()
        .filter(|l| !l.contains(",missing,"))
        .map(str::to_owned)
        .collect();
    assert_eq!(measured.join("\n") + "\n", plain.stdout());

    // JSONL: the same rows, celsius null.
    d.mend(&[
        "replay",
        "in.mlog",
        "--emit-outages",
        "--format",
        "jsonl",
        "-o",
        "grid.jsonl",
        "-q",
    ])
    .ok();
    let objs: Vec<serde_json::Value> = d
        .read_text("grid.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 103);
    for (o, want) in objs.iter().zip(0u64..) {
        assert_eq!(o["seq"], want);
        let missing = (5..100).contains(&want);
        assert_eq!(o["origin"], if missing { "missing" } else { "measured" });
        assert_eq!(o["celsius"].is_null(), missing, "{o}");
    }

    // A window keeps only the slots inside it.
    d.mend(&[
        "replay",
        "in.mlog",
        "--emit-outages",
        "--from",
        "50",
        "--until",
        "60",
        "-o",
        "w.csv",
        "-q",
    ])
    .ok();
    let w = fields(&d.read_text("w.csv"));
    let seqs: Vec<u32> = w.iter().map(|f| f[2].parse().unwrap()).collect();
    assert_eq!(seqs, (50..=60).collect::<Vec<_>>());

    // An incremental run emits the slots once, exactly as one run does.
    d.mend(&[
        "replay",
        "prefix.mlog",
        "--emit-outages",
        "--checkpoint",
        "ck.json",
        "-o",
        "one.csv",
        "-q",
    ])
    .ok();
    d.mend(&[
        "replay",
        "in.mlog",
        "--emit-outages",
        "--checkpoint",
        "ck.json",
        "--final",
        "-o",
        "two.csv",
        "-q",
    ])
    .ok();
    let joined = format!(
        "{}{}",
        d.read_text("one.csv"),
        d.read_text("two.csv")
            .strip_prefix(&format!("{HEADER}\n"))
            .unwrap()
    );
    assert_eq!(joined, d.read_text("grid.csv"));

    // A frame log cannot say "nothing was measured": refused before any work.
    let run = d
        .mend(&[
            "replay",
            "in.mlog",
            "--emit-outages",
            "--format",
            "mlog",
            "-o",
            "x.mlog",
        ])
        .expect(2);
    assert!(
        run.stderr()
            .contains("--emit-outages cannot be used with --format mlog"),
        "{}",
        run.stderr()
    );
    assert!(!d.path("x.mlog").exists());
}

#[test]
fn incremental_runs_fill_like_one_run_next_to_outliers_and_with_stochastic_noise() {
    let d = Dir::new();
    capture(
        &d,
        "cap.mlog",
        "17",
        "3000",
        &["--skip-rate", "0.1", "--error-rate", "0.05"],
    );
    let whole = d.read("cap.mlog");
    for fill in ["stochastic", "linear"] {
        let all = d
            .mend(&["replay", "cap.mlog", "--fill", fill, "-q"])
            .ok()
            .stdout();
        for part in 1..10 {
            d.write("prefix.mlog", &whole[..whole.len() * part / 10]);
            let ck = format!("ck-{fill}-{part}.json");
            let one = d
                .mend(&[
                    "replay",
                    "prefix.mlog",
                    "--fill",
                    fill,
                    "--checkpoint",
                    &ck,
                    "-q",
                ])
                .ok()
                .stdout();
            let two = d
                .mend(&[
                    "replay",
                    "cap.mlog",
                    "--fill",
                    fill,
                    "--checkpoint",
                    &ck,
                    "--final",
                    "-q",
                ])
                .ok()
                .stdout();
            let joined = format!("{one}{}", two.strip_prefix(&format!("{HEADER}\n")).unwrap());
            assert!(
                joined == all,
                "--fill {fill}, split at {part}/10: rows differ"
            );
        }
    }
}

#[test]
fn a_checkpoint_at_a_sustained_excursion_keeps_it_as_an_anchor() {
    let d = Dir::new();
    // Two readings above the band, then two lost, then back in the band.
    let h = header(1, 1);
    let mut prefix = common::frame(mend_core::Frame::Header(h));
    prefix.extend(readings(&h, [(0, 52.0), (1, 52.0), (2, 57.0), (3, 57.5)]));
    let mut log = prefix.clone();
    log.extend(readings(&h, [(6, 52.0), (7, 52.0)]));
    d.write("prefix.mlog", &prefix);
    d.write("in.mlog", &log);
    let all = d.mend(&["replay", "in.mlog", "-q"]).ok().stdout();
    let fills: Vec<Celsius> = rows(&all)
        .iter()
        .filter(|r| r.synthetic())
        .map(|r| r.celsius)
        .collect();
    // On the line from 57.5 °C (14 720/256: the excursion is real) down to 52 °C (13 312).
    assert_eq!(
        fills,
        [Celsius::from_bits(14_251), Celsius::from_bits(13_781)]
    );
    let one = d
        .mend(&["replay", "prefix.mlog", "--checkpoint", "ck.json", "-q"])
        .ok()
        .stdout();
    let two = d
        .mend(&[
            "replay",
            "in.mlog",
            "--checkpoint",
            "ck.json",
            "--final",
            "-q",
        ])
        .ok()
        .stdout();
    let joined = format!("{one}{}", two.strip_prefix(&format!("{HEADER}\n")).unwrap());
    assert_eq!(joined, all);
}

#[test]
fn no_output_may_be_the_file_standard_input_reads() {
    let d = Dir::new();
    let log = small_log(5);
    let v = d.write("v.mlog", &log);
    for flag in [
        "-o",
        "--dlq",
        "--chart",
        "--checkpoint",
        "--summary-json",
        "--aggregates",
    ] {
        let mut args = vec!["replay", "-", flag, "v.mlog"];
        if flag == "--aggregates" {
            args.extend(["--window", "1m"]);
        }
        let run = d.mend_stdin_file(&args, &v).expect(2);
        assert!(
            run.stderr().contains("is the file standard input reads"),
            "{flag}: {}",
            run.stderr()
        );
        assert!(run.stderr().contains(flag), "{flag}: {}", run.stderr());
        assert_eq!(d.read("v.mlog"), log, "{flag}: the capture is untouched");
    }
    // Another file is fine.
    d.mend_stdin_file(&["replay", "-", "-o", "v.csv", "-q"], &v)
        .ok();
    assert_eq!(rows(&d.read_text("v.csv")).len(), 5);
}

#[cfg(unix)]
#[test]
fn a_closed_standard_output_is_an_error_and_a_closed_pipe_is_not() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let d = Dir::new();
    d.write("v.mlog", &small_log(5));
    for args in [
        &["replay", "v.mlog"][..],
        &["replay", "v.mlog", "-o", "-"][..],
        &["generate", "--seed", "1", "--count", "5", "-o", "-"][..],
        &["inspect", "v.mlog"][..],
    ] {
        let run = d.mend_stdout_closed(args).expect(2);
        assert!(
            run.stderr().contains("standard output is closed"),
            "{}",
            run.stderr()
        );
    }
    // `>/dev/null` is a choice, not a closed output.
    let null = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" replay v.mlog -q >/dev/null")
        .arg(env!("CARGO_BIN_EXE_mend"))
        .current_dir(d.path(""))
        .status()
        .unwrap();
    assert_eq!(null.code(), Some(0));
    // A reader that has seen enough (`| head -1`) is no failure.
    d.write("big.mlog", &small_log(60_000));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["replay", "big.mlog", "-o", "-", "-q"])
        .current_dir(d.path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim_end(), HEADER);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
#[test]
fn temporary_files_of_killed_runs_are_removed_by_the_next_run() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let d = Dir::new();
    let log = small_log(200);
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d.path(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // A run killed outright (SIGKILL: no handler runs) while writing its outputs.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mend"))
        .args(["replay", "-", "-o", "out.csv", "--dlq", "dlq.jsonl", "-q"])
        .current_dir(d.path(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&log).unwrap();
    let started = std::time::Instant::now();
    while names().iter().filter(|n| n.contains(".mend-tmp-")).count() < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no temporary outputs appeared: {:?}",
            names()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let dead = child.id();
    assert!(names().contains(&format!(".out.csv.mend-tmp-{dead}")));
    // A run still going (this test's own process) and another output's file stay.
    let alive = format!(".out.csv.mend-tmp-{}", std::process::id());
    d.write(&alive, b"partial");
    d.write(&format!(".other.csv.mend-tmp-{dead}"), b"partial");
    d.write("in.mlog", &log);
    d.mend(&["replay", "in.mlog", "-o", "out.csv", "--dlq", "dlq.jsonl"])
        .ok();
    let mut kept = [alive, format!(".other.csv.mend-tmp-{dead}")];
    kept.sort();
    assert_eq!(
        names(),
        [
            kept[0].clone(),
            kept[1].clone(),
            "dlq.jsonl".to_string(),
            "in.mlog".to_string(),
            "out.csv".to_string(),
        ]
    );
}

#[test]
fn times_need_a_zone_and_offsets_are_understood() {
    let d = Dir::new();
    capture(
        &d,
        "cap.mlog",
        "3",
        "600",
        &["--start", "2026-01-01T05:58:00Z"],
    );
    let utc = d
        .mend(&["replay", "cap.mlog", "--from", "2026-01-01T06:00:00Z", "-q"])
        .ok();
    let offset = d
        .mend(&[
            "replay",
            "cap.mlog",
            "--from",
            "2026-01-01T07:00:00+01:00",
            "-q",
        ])
        .ok();
    assert_eq!(offset.stdout(), utc.stdout());
    assert_eq!(rows(&utc.stdout())[0].time, "2026-01-01T06:00:00.000Z");
    let run = d
        .mend(&["replay", "cap.mlog", "--from", "2026-01-01T06:00:00"])
        .expect(2);
    assert!(run.stderr().contains("no zone"), "{}", run.stderr());
    assert!(
        run.stderr().contains("2026-01-01T06:00:00Z"),
        "{}",
        run.stderr()
    );
}

#[test]
fn generate_refuses_a_start_whose_readings_would_run_past_the_end_of_time() {
    let d = Dir::new();
    let run = d
        .mend(&[
            "generate",
            "--seed",
            "1",
            "--count",
            "10",
            "--start",
            "253402300795",
            "-o",
            "late.mlog",
        ])
        .expect(2);
    assert!(run.stderr().contains("--start"), "{}", run.stderr());
    assert!(
        run.stderr().contains("9999-12-31T23:59:59.999Z"),
        "{}",
        run.stderr()
    );
    assert!(!d.path("late.mlog").exists());
    d.mend(&[
        "generate",
        "--seed",
        "1",
        "--count",
        "10",
        "--start",
        "253402300790",
        "-o",
        "late.mlog",
    ])
    .ok();
}

/// A small clean frame log.
fn small_log(n: u32) -> Vec<u8> {
    let h = header(1, 1);
    let mut log = frame(mend_core::Frame::Header(h));
    log.extend(readings(&h, (0..n).map(|s| (s, 52.0))));
    log
}

#[test]
fn a_run_that_ends_on_a_held_clock_glitch_leaves_it_to_the_next_run() {
    // The first part ends on seq 300 stamped an hour ahead (held by the clock check: only
    // the next reading can tell a glitch from a clock step); its seq 90 comes late, with the
    // second part, well within the lateness.
    let dir = Dir::new();
    let h = header(3, 1);
    let head = frame(mend_core::Frame::Header(h));
    let mut a = head.clone();
    a.extend(readings(
        &h,
        (0..95).filter(|s| *s != 90).map(|s| (s, 52.0)),
    ));
    let glitch = mend_core::Reading::new(3, 1, 300, 300_000 + 3_600_000, Celsius::from_num(52));
    a.extend(frame(mend_core::Frame::Reading(
        h.to_wire(&glitch).unwrap(),
    )));
    let mut b = head;
    b.extend(readings(&h, [(90, 53.0)]));
    b.extend(readings(
        &h,
        (95..200).map(|s| (s, 52.0 + f64::from(s % 3))),
    ));
    dir.write("grow.mlog", &a);
    dir.mend(&[
        "replay",
        "grow.mlog",
        "--checkpoint",
        "ck.json",
        "-o",
        "r1.csv",
        "-q",
    ])
    .ok();
    let mut all = a.clone();
    all.extend(&b);
    dir.write("grow.mlog", &all);
    dir.mend(&[
        "replay",
        "grow.mlog",
        "--checkpoint",
        "ck.json",
        "--final",
        "-o",
        "r2.csv",
        "-q",
    ])
    .ok();
    dir.write("all.mlog", &all);
    dir.mend(&[
        "replay", "all.mlog", "-o", "one.csv", "--dlq", "one.dlq", "-q",
    ])
    .ok();
    let one = dir.read_text("one.csv");
    let r2 = dir.read_text("r2.csv");
    let joined = format!(
        "{}{}",
        dir.read_text("r1.csv"),
        r2.split_once('\n').map_or("", |(_, rows)| rows)
    );
    assert!(
        one.contains(",90,1970-01-01T00:01:30.000Z,53,measured,"),
        "{one}"
    );
    assert_eq!(joined, one);
    assert!(dir.read_text("one.dlq").contains("clock_jump"));
}

/// `text` without its first line (the CSV header).
fn body(text: &str) -> &str {
    text.split_once('\n').map_or("", |(_, rest)| rest)
}

#[test]
fn a_checkpointed_run_with_until_leaves_what_follows_to_the_next_run() {
    let d = Dir::new();
    capture(&d, "cap.mlog", "23", "1200", DAMAGE);
    let whole = d.read("cap.mlog");
    d.write("grow.mlog", &whole[..whole.len() * 2 / 3]);
    let agg = ["--window", "1m", "--aggregates"];
    // The window ends mid-minute and mid-log: the rows after it, and the minute it cuts,
    // are not written yet.
    d.mend(
        &[
            &[
                "replay",
                "grow.mlog",
                "--checkpoint",
                "ck.json",
                "--until",
                "2026-01-01T00:05:30Z",
                "-o",
                "r1.csv",
                "-q",
            ][..],
            &agg,
            &["a1.csv"],
        ]
        .concat(),
    )
    .ok();
    d.write("grow.mlog", &whole);
    d.mend(
        &[
            &[
                "replay",
                "grow.mlog",
                "--checkpoint",
                "ck.json",
                "--final",
                "-o",
                "r2.csv",
                "-q",
            ][..],
            &agg,
            &["a2.csv"],
        ]
        .concat(),
    )
    .ok();
    d.mend(
        &[
            &["replay", "cap.mlog", "-o", "all.csv", "-q"][..],
            &agg,
            &["all-agg.csv"],
        ]
        .concat(),
    )
    .ok();
    let r1 = d.read_text("r1.csv");
    assert!(r1.contains("T00:05:30.000Z"), "{r1}");
    assert!(!r1.contains("T00:05:31.000Z"), "{r1}");
    let joined = format!("{r1}{}", body(&d.read_text("r2.csv")));
    assert_eq!(joined, d.read_text("all.csv"));
    let joined = format!("{}{}", d.read_text("a1.csv"), body(&d.read_text("a2.csv")));
    assert_eq!(joined, d.read_text("all-agg.csv"));
}

#[test]
fn a_checkpointed_run_that_ends_earlier_takes_nothing_back() {
    let d = Dir::new();
    capture(&d, "cap.mlog", "29", "3000", DAMAGE);
    d.mend(&["replay", "cap.mlog", "-o", "all.csv", "-q"]).ok();
    // Each way of ending at --until: an early stop (the seek threshold lowered so that a
    // small log has one), and reading the log whole.
    for (i, how) in ["--seek", "--no-seek"].into_iter().enumerate() {
        let ck = format!("ck{i}.json");
        let out = |n: u32| format!("{i}-{n}.csv");
        d.mend(&[
            "replay",
            "cap.mlog",
            "--checkpoint",
            &ck,
            "-o",
            &out(1),
            "-q",
        ])
        .ok();
        let mut cmd = d.command(&[
            "replay",
            "cap.mlog",
            "--checkpoint",
            &ck,
            "--until",
            "2026-01-01T00:10:00Z",
            "-o",
            &out(2),
        ]);
        if how == "--no-seek" {
            cmd.arg(how);
        } else {
            cmd.env(mend::input::seek::MIN_SEEK_SIZE_ENV, "0");
        }
        let run = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(0), "{stderr}");
        assert_eq!(
            stderr.contains("stopped early for --until"),
            how == "--seek",
            "{stderr}"
        );
        d.mend(&[
            "replay",
            "cap.mlog",
            "--checkpoint",
            &ck,
            "--final",
            "-o",
            &out(3),
            "-q",
        ])
        .ok();
        let joined = format!(
            "{}{}{}",
            d.read_text(&out(1)),
            body(&d.read_text(&out(2))),
            body(&d.read_text(&out(3)))
        );
        assert_eq!(joined, d.read_text("all.csv"), "{how}");
    }
}

#[cfg(unix)]
#[test]
fn a_pipe_named_by_its_path_is_read_once_like_standard_input() {
    let d = Dir::new();
    // A file gets a second pass.
    jsonl_needing_a_second_pass(&d, "late.jsonl");
    let jsonl = d.read_text("late.jsonl");
    capture(&d, "cap.mlog", "31", "3000", DAMAGE);
    let frames = d.read("cap.mlog");
    // `/dev/stdin` on a pipe is what `<(zcat log.gz)` gives: a path, yet read only once.
    for (bytes, extra) in [
        (jsonl.as_bytes(), &[][..]),
        (&frames[..], &["--until", "2026-01-01T00:30:00Z"][..]),
        (&frames[..], &["--from", "2026-01-01T00:10:00Z"][..]),
    ] {
        let run = |input: &str| {
            let args = [&["replay", input, "-q"][..], extra].concat();
            d.mend_stdin(&args, Some(bytes)).ok().stdout()
        };
        let piped = run("/dev/stdin");
        assert!(rows(&piped).len() > 100, "{extra:?}: {piped}");
        assert_eq!(piped, run("-"), "{extra:?}");
    }
    let run = d
        .mend_stdin(
            &["replay", "/dev/stdin", "--checkpoint", "ck.json", "-q"],
            Some(&frames),
        )
        .expect(2);
    assert!(
        run.stderr()
            .contains("a checkpoint needs inputs it can check on the next run: a pipe"),
        "{}",
        run.stderr()
    );
    assert!(!exists(&d.path("ck.json")));
}

/// A JSONL log that takes two passes (its 11th reading moved to the end), with a line of
/// junk for a dead letter.
fn jsonl_needing_a_second_pass(d: &Dir, name: &str) {
    d.mend(&[
        "generate", "--seed", "2", "--count", "300", "--format", "jsonl", "-o", "j.jsonl",
    ])
    .ok();
    let mut lines: Vec<String> = d.read_text("j.jsonl").lines().map(str::to_owned).collect();
    let moved = lines.remove(10);
    lines.push(moved);
    lines.insert(50, "not json".into());
    d.write(name, format!("{}\n", lines.join("\n")).as_bytes());
}

#[cfg(unix)]
#[test]
fn outputs_that_cannot_be_taken_back_get_the_last_pass_only() {
    let d = Dir::new();
    jsonl_needing_a_second_pass(&d, "late.jsonl");
    let files = [
        ("-o", "rows.csv"),
        ("--dlq", "dlq.jsonl"),
        ("--aggregates", "aggs.csv"),
    ];
    let args = |to: &[(&'static str, &'static str)]| -> Vec<&'static str> {
        let mut a = vec!["replay", "late.jsonl", "--window", "1m", "-q"];
        for (flag, file) in to {
            a.extend([*flag, *file]);
        }
        a
    };
    d.mend(&args(&files)).ok();
    assert!(d.read_text("dlq.jsonl").contains("not json"));
    // Standard output is a pipe here, named by its path. Before, it got the first pass's
    // rows (or dead letters, or aggregates) and then the second pass's: the log's 300 rows
    // came out twice, 602 lines.
    for (flag, file) in files {
        let to: Vec<_> = files
            .iter()
            .map(|&(f, name)| (f, if f == flag { "/dev/stdout" } else { name }))
            .collect();
        let out = d.mend(&args(&to)).ok().stdout();
        let want = d.read_text(file);
        assert_eq!(
            out.lines().count(),
            want.lines().count(),
            "{flag} /dev/stdout"
        );
        assert_eq!(out, want, "{flag} /dev/stdout");
    }
}

#[cfg(unix)]
#[test]
fn an_interrupted_second_pass_leaves_no_spill_behind() {
    use std::process::Stdio;
    let d = Dir::new();
    std::fs::create_dir(d.path("tmp")).unwrap();
    // Long enough that the replay is still running when the signal comes: its first half's
    // readings all arrive after the second half's, and are set aside for a second pass.
    d.mend(&[
        "generate",
        "--seed",
        "4",
        "--count",
        "2000000",
        "-o",
        "whole.mlog",
    ])
    .ok();
    let whole = d.read("whole.mlog");
    let cut = common::frame_ends(&whole)
        .into_iter()
        .find(|&end| end >= whole.len() / 2)
        .unwrap();
    d.write("swapped.mlog", &[&whole[cut..], &whole[..cut]].concat());
    let mut child = d
        .command(&["replay", "swapped.mlog", "-o", "out.csv", "-q"])
        .env("TMPDIR", d.path("tmp"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let spills = || std::fs::read_dir(d.path("tmp")).unwrap().count();
    let started = std::time::Instant::now();
    while spills() == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the replay ended before its spill was seen"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(spills(), 0, "the spill stayed in TMPDIR");
    assert!(!exists(&d.path("out.csv")));
}

#[test]
fn jsonl_sampled_slower_than_its_period_gets_a_note() {
    let d = Dir::new();
    d.mend(&[
        "generate",
        "--seed",
        "8",
        "--count",
        "100",
        "--period",
        "5s",
        "--format",
        "jsonl",
        "-o",
        "slow.jsonl",
    ])
    .ok();
    // Without --period, 1 s is taken: four fills after each reading, and the summary says why.
    let run = d.mend(&["replay", "slow.jsonl", "-o", "a.csv"]).ok();
    assert!(
        run.stderr().contains(
            "note: sensor 0 session 0: 99 gaps among 100 readings: are they sampled further apart than the period of 1s?"
        ),
        "{}",
        run.stderr()
    );
    assert_eq!(rows(&d.read_text("a.csv")).len(), 496);
    let run = d
        .mend(&["replay", "slow.jsonl", "--period", "5s", "-o", "b.csv"])
        .ok();
    assert!(!run.stderr().contains("gaps among"), "{}", run.stderr());
    let b = rows(&d.read_text("b.csv"));
    assert_eq!(b.len(), 100);
    assert!(b.iter().all(|r| !r.synthetic()));
    // Readings lost here and there are gaps, not a wrong period.
    d.mend(&[
        "generate",
        "--seed",
        "9",
        "--count",
        "500",
        "--skip-rate",
        "0.3",
        "--format",
        "jsonl",
        "-o",
        "lossy.jsonl",
    ])
    .ok();
    let run = d.mend(&["replay", "lossy.jsonl", "-o", "c.csv"]).ok();
    assert!(!run.stderr().contains("gaps among"), "{}", run.stderr());
}

/// A capture torn in its last frame, with the next one joined on without a delimiter (or a
/// capture after bytes without a zero): the next capture's header is found at the end of the
/// damaged frame, so every one of its readings comes back measured, as from the capture
/// alone.
#[test]
fn a_capture_joined_onto_a_torn_frame_keeps_its_header() {
    let d = Dir::new();
    d.mend(&["generate", "--seed", "5", "--count", "100", "-o", "m.mlog"])
        .ok();
    d.mend(&[
        "generate",
        "--seed",
        "6",
        "--count",
        "100",
        "--sensor",
        "2",
        "--start",
        "2026-01-01T00:10:00Z",
        "-o",
        "m2.mlog",
    ])
    .ok();
    let (m, m2) = (d.read("m.mlog"), d.read("m2.mlog"));
    // Cut four bytes into the 51st frame of the first capture.
    let cut = m
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == 0)
        .nth(50)
        .map(|(i, _)| i + 5)
        .unwrap();
    let mut joined = m[..cut].to_vec();
    joined.extend_from_slice(&m2);
    d.write("joined.mlog", &joined);
    let mut junk_first = b"\x7f\x7f junk".to_vec();
    junk_first.extend_from_slice(&m2);
    d.write("junk.mlog", &junk_first);

    let alone = d.mend(&["replay", "m2.mlog", "-o", "-", "-q"]).ok();
    let want: Vec<Row> = rows_of(&alone);
    assert_eq!(want.len(), 100);
    for input in ["joined.mlog", "junk.mlog"] {
        let run = d
            .mend(&["replay", input, "-o", "-", "--dlq", "d.jsonl", "-q"])
            .ok();
        let got: Vec<Row> = rows_of(&run)
            .into_iter()
            .filter(|r| r.sensor == 2)
            .collect();
        assert_eq!(got, want, "{input}");
        // The torn bytes, and nothing else, are dead letters.
        assert_eq!(d.read_text("d.jsonl").lines().count(), 1, "{input}");
    }
}

#[cfg(unix)]
#[test]
fn an_output_that_names_a_descriptor_or_a_link_is_written_through_it_not_replaced() {
    let d = Dir::new();
    d.write("v.mlog", &small_log(300));
    d.mend(&["replay", "v.mlog", "-o", "want.csv", "-q"]).ok();
    let want = d.read_text("want.csv");
    let sh = |script: &str| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_mend"))
            .current_dir(d.path(""))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{script}");
    };
    let is_link = |name: &str| {
        std::fs::symlink_metadata(d.path(name))
            .unwrap()
            .file_type()
            .is_symlink()
    };
    // A link to this process's standard output, as /dev/stdout is, with standard output sent
    // to a file. Before, the rows went into a temporary file renamed over the link: the
    // file the shell opened stayed empty, and the link became a regular file.
    std::os::unix::fs::symlink("/proc/self/fd/1", d.path("out.link")).unwrap();
    sh("exec \"$0\" replay v.mlog -o out.link -q > got.csv");
    assert_eq!(d.read_text("got.csv"), want);
    assert!(is_link("out.link"));
    // Written through the shell's descriptor: `>>` appends.
    d.write("log.csv", b"kept\n");
    sh("exec \"$0\" replay v.mlog -o out.link -q >> log.csv");
    assert_eq!(d.read_text("log.csv"), format!("kept\n{want}"));
    // A link to a file stays a link; the file it ends at gets the rows.
    std::fs::create_dir(d.path("real")).unwrap();
    d.write("real/rows.csv", b"old\n");
    std::os::unix::fs::symlink("real/rows.csv", d.path("rows.csv")).unwrap();
    d.mend(&["replay", "v.mlog", "-o", "rows.csv", "-q"]).ok();
    assert!(is_link("rows.csv"));
    assert_eq!(d.read_text("real/rows.csv"), want);
    // `-` is standard output for the dead letters too, and standard output is given once.
    jsonl_needing_a_second_pass(&d, "late.jsonl");
    let out = d
        .mend(&[
            "replay",
            "late.jsonl",
            "-o",
            "rows2.csv",
            "--dlq",
            "-",
            "-q",
        ])
        .ok()
        .stdout();
    assert_eq!(common::reasons(&out), ["malformed_json"]);
    assert!(!d.path("-").exists());
    for args in [
        &["replay", "v.mlog", "--dlq", "/dev/stdout"][..],
        &["replay", "v.mlog", "-o", "-", "--dlq", "-"][..],
        &["replay", "v.mlog", "-o", "out.link", "--summary-json", "-"][..],
    ] {
        let run = d.mend(args).expect(2);
        assert!(run.stderr().contains("given to both"), "{}", run.stderr());
    }
    let run = d.mend(&["replay", "v.mlog", "--checkpoint", "-"]).expect(2);
    assert!(run.stderr().contains("--checkpoint needs a file"));
}

#[test]
fn jsonl_written_as_frames_keeps_its_gaps_and_its_readings_apart() {
    let d = Dir::new();
    d.mend(&[
        "generate",
        "--seed",
        "32",
        "--count",
        "3000",
        "--format",
        "jsonl",
        "--skip-rate",
        "0.2",
        "-o",
        "j.jsonl",
    ])
    .ok();
    let as_csv = d.mend(&["replay", "j.jsonl", "-q"]).ok().stdout();
    // Everything but the identity columns (JSONL has no seq, and its frames get one).
    let from_time = |csv: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| l.splitn(4, ',').nth(3).unwrap().to_string())
            .collect()
    };
    let want = from_time(&as_csv);
    assert!(want.iter().any(|r| r.contains("synthetic")));
    d.mend(&[
        "replay", "j.jsonl", "--format", "mlog", "-o", "j.mlog", "-q",
    ])
    .ok();
    // Before: numbered 0, 1, 2, … in output order, so every gap closed up (seq 1 at 00:00:02
    // on a 1 s period) and nothing was filled.
    let again = d.mend(&["replay", "j.mlog", "-q"]).ok().stdout();
    assert_eq!(from_time(&again), want);
    // Two halves written as frames apart, then replayed together: before, they shared their
    // identities (both from seq 0), and readings were dead-lettered as seq_behind_time or
    // dropped as duplicates.
    let text = d.read_text("j.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(1_200);
    d.write("a.jsonl", format!("{}\n", a.join("\n")).as_bytes());
    d.write("b.jsonl", format!("{}\n", b.join("\n")).as_bytes());
    for half in ["a", "b"] {
        let (from, to) = (format!("{half}.jsonl"), format!("{half}.mlog"));
        d.mend(&["replay", &from, "--format", "mlog", "-o", &to, "-q"])
            .ok();
    }
    let run = d
        .mend(&["replay", "a.mlog", "b.mlog", "--dlq", "dlq.jsonl"])
        .ok();
    assert!(run.stderr().contains("dead letters: 0"), "{}", run.stderr());
    let measured = |rows: &[String]| rows.iter().filter(|r| r.contains(",measured,")).count();
    let halves = from_time(&run.stdout());
    assert_eq!(measured(&halves), measured(&want));
}
