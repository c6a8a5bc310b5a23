//! Fleet mode against a real `redis-server` on a free loopback port, with AOF on: every
//! export is compared with what `mend replay` writes for the same captures.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::redis::{wait, work_args, xlen, Redis};
use common::{assert_export_is_replay, Dir, Run};

/// Captures of `sensors` sensors with every kind of link fault, concatenated, and what
/// `mend replay` writes for them.
struct Fleet {
    dir: Dir,
    sensors: Vec<u32>,
    replay: String,
}

impl Fleet {
    fn new(sensors: u32, count: u32) -> Self {
        let dir = Dir::new();
        let mut all = Vec::new();
        for s in 1..=sensors {
            let name = format!("s{s}.mlog");
            let (seed, count_s, sensor) = (s.to_string(), count.to_string(), s.to_string());
            dir.mend(&[
                "generate",
                "--seed",
                &seed,
                "--count",
                &count_s,
                "--sensor",
                &sensor,
                "--error-rate",
                "0.05",
                "--skip-rate",
                "0.1",
                "--duplicate-rate",
                "0.05",
                "--reorder-rate",
                "0.05",
                "--corrupt-rate",
                "0.01",
                "-o",
                &name,
            ])
            .ok();
            all.extend(dir.read(&name));
        }
        dir.write("all.mlog", &all);
        dir.mend(&["replay", "all.mlog", "-o", "replay.csv", "-q"])
            .ok();
        let replay = dir.read_text("replay.csv");
        Self {
            dir,
            sensors: (1..=sensors).collect(),
            replay,
        }
    }

    /// `mend replay`'s rows of one sensor, with the header.
    fn expected(&self, sensor: u32) -> String {
        let mut lines = self.replay.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        let prefix = format!("{sensor},");
        for l in lines.filter(|l| l.starts_with(&prefix)) {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    fn mend(&self, args: &[&str]) -> Run {
        self.dir.mend(args)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.dir.spawn(args)
    }

    /// Asserts that every sensor's export is byte for byte the replay's rows.
    #[track_caller]
    fn assert_exports_equal_replay(&self, redis: &Redis) {
        let url = redis.url();
        for &s in &self.sensors {
            let out = format!("e{s}.csv");
            let sensor = s.to_string();
            self.mend(&["export", "--redis", &url, "--sensor", &sensor, "-o", &out])
                .ok();
            let got = self.dir.read_text(&out);
            let want = self.expected(s);
            assert!(want.lines().count() > 1, "sensor {s} has rows");
            assert_export_is_replay(&format!("sensor {s}"), &got, &want);
        }
    }
}

/// The number after `worker NAME: ` in a worker's report: the sensors it worked.
fn sensors_worked(stderr: &str) -> u32 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("worker ")?.split(": ").nth(1))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no worker report in {stderr}"))
}

#[test]
fn two_workers_share_200_sensors_and_the_export_equals_the_replay() {
    let fleet = Fleet::new(200, 300);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    // Both workers are up (and known to each other) before the first entry arrives.
    let w1 = fleet.spawn(&work_args(
        &url,
        "w1",
        &["--lease", "3s", "--settle", "60s"],
    ));
    let w2 = fleet.spawn(&work_args(
        &url,
        "w2",
        &["--lease", "3s", "--settle", "60s"],
    ));
    std::thread::sleep(Duration::from_millis(300));
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    let (_, e1) = wait(w1, "w1");
    let (_, e2) = wait(w2, "w2");
    let (n1, n2) = (sensors_worked(&e1), sensors_worked(&e2));
    assert!(n1 > 0 && n2 > 0, "both workers worked: {e1} {e2}");
    assert!(n1 + n2 >= 200, "{e1} {e2}");
    fleet.assert_exports_equal_replay(&redis);
    let status = fleet.mend(&["status", "--redis", &url]).ok().stdout();
    assert!(
        status.starts_with("sensors: 200 (200 settled); entries not yet repaired: 0 (0 pending)"),
        "{status}"
    );
    // Workers that exit with nothing left to do give their leases back and leave the list:
    // before, the next worker waited for the leases to lapse, and both stayed listed.
    assert!(status.contains("\nworkers: 0\n"), "{status}");
    let rows = status.lines().skip_while(|l| !l.starts_with("sensor  "));
    for row in rows.skip(1) {
        assert!(row.contains("  -  settled"), "{status}");
    }
}

#[test]
fn a_worker_killed_at_random_points_is_taken_over_without_duplicate_or_gap() {
    let fleet = Fleet::new(12, 3_000);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    // Small batches: many commits per sensor, so the kills land mid-sensor, mid-batch and
    // between commits. The kill points are fixed pseudo-random delays.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = 40 + x % 250;
        let name = format!("doomed{round}");
        let mut w = fleet.spawn(&work_args(
            &url,
            &name,
            &["--lease", "300ms", "--count", "2"],
        ));
        std::thread::sleep(Duration::from_millis(delay));
        // SIGKILL: no clean-up of any kind.
        w.kill().unwrap();
        w.wait().unwrap();
    }
    let w = fleet.spawn(&work_args(
        &url,
        "survivor",
        &["--lease", "300ms", "--count", "2"],
    ));
    let (_, err) = wait(w, "survivor");
    // The kills left work behind: the survivor took sensors over.
    assert!(sensors_worked(&err) > 0, "{err}");
    fleet.assert_exports_equal_replay(&redis);
}

#[test]
fn a_redis_crash_and_restart_from_its_aof_loses_nothing() {
    let fleet = Fleet::new(10, 3_000);
    let mut redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    let w = fleet.spawn(&work_args(
        &url,
        "w",
        &["--count", "2", "--retry-for", "30s"],
    ));
    std::thread::sleep(Duration::from_millis(400));
    redis.crash();
    std::thread::sleep(Duration::from_millis(700));
    redis.launch();
    let (_, err) = wait(w, "worker");
    assert!(err.contains("reconnected"), "{err}");
    fleet.assert_exports_equal_replay(&redis);
}

#[test]
fn the_same_capture_published_twice_changes_nothing() {
    let fleet = Fleet::new(3, 2_000);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    fleet.mend(&["publish", "--redis", &url, "all.mlog"]).ok();
    // The second time through standard input, as a gateway's pipe.
    fleet
        .dir
        .mend_stdin_file(
            &["publish", "--redis", &url, "--end", "-"],
            &fleet.dir.path("all.mlog"),
        )
        .ok();
    wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    fleet.assert_exports_equal_replay(&redis);
    // And a third time after the tails were settled: no new row.
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    let (_, err) = wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    assert!(err.contains(" 0 rows,"), "{err}");
    fleet.assert_exports_equal_replay(&redis);
}

#[test]
fn an_idle_stream_is_settled_after_the_settle_time() {
    let fleet = Fleet::new(2, 500);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    // No --end: only the stream's idleness settles the tails.
    fleet.mend(&["publish", "--redis", &url, "all.mlog"]).ok();
    wait(
        fleet.spawn(&work_args(&url, "w", &["--settle", "1s"])),
        "worker",
    );
    fleet.assert_exports_equal_replay(&redis);
}

#[test]
fn redis_unreachable_is_a_clear_error_and_exit_2() {
    let dir = Dir::new();
    let url = format!("redis://127.0.0.1:{}", common::free_port());
    dir.write("a.mlog", b"");
    for args in [
        vec!["publish", "--redis", &url, "a.mlog"],
        vec!["export", "--redis", &url, "--sensor", "1"],
        vec!["status", "--redis", &url],
        vec![
            "work",
            "--redis",
            &url,
            "--consumer",
            "w",
            "--retry-for",
            "300ms",
        ],
    ] {
        let r = dir.mend(&args).expect(2);
        assert!(
            r.stderr()
                .contains(&format!("cannot connect to Redis at {url}")),
            "{}",
            r.stderr()
        );
    }
    let r = dir
        .mend(&[
            "work",
            "--redis",
            &url,
            "--consumer",
            "w",
            "--retry-for",
            "300ms",
        ])
        .expect(2);
    assert!(r.stderr().contains("giving up"), "{}", r.stderr());
}

#[test]
fn publishing_a_jsonl_log_is_a_clear_error() {
    let dir = Dir::new();
    let redis = Redis::start(dir.path("redis"));
    dir.write("log.jsonl", common::jline(0, 52.0).as_bytes());
    dir.mend(&[
        "generate",
        "--seed",
        "1",
        "--count",
        "100",
        "-o",
        "good.mlog",
    ])
    .ok();
    // A good log before it: before, its entries were published, without their end mark, and
    // the run failed.
    let r = dir
        .mend(&[
            "publish",
            "--redis",
            &redis.url(),
            "--end",
            "good.mlog",
            "log.jsonl",
        ])
        .expect(2);
    assert!(
        r.stderr().contains("log.jsonl: not a mend frame log"),
        "{}",
        r.stderr()
    );
    let mut con = common::redis::connection(&redis.url());
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(keys.is_empty(), "nothing published: {keys:?}");
}

#[test]
fn exporting_a_sensor_never_published_or_an_empty_window_is_a_clear_error() {
    let dir = Dir::new();
    let redis = Redis::start(dir.path("redis"));
    let url = redis.url();
    dir.mend(&[
        "generate", "--seed", "1", "--count", "100", "-o", "one.mlog",
    ])
    .ok();
    dir.mend(&["publish", "--redis", &url, "--end", "one.mlog"])
        .ok();
    // Before: exit 0 and a CSV header alone, as for a sensor with nothing repaired yet.
    let r = dir
        .mend(&["export", "--redis", &url, "--sensor", "99"])
        .expect(2);
    assert!(
        r.stderr().contains("sensor 99: not in this fleet") && r.stderr().contains("sensors: 1)"),
        "{}",
        r.stderr()
    );
    let published = dir
        .mend(&["export", "--redis", &url, "--sensor", "1"])
        .ok()
        .stdout();
    assert_eq!(
        published.lines().count(),
        1,
        "nothing repaired yet: {published}"
    );
    let r = dir
        .mend(&[
            "export", "--redis", &url, "--sensor", "1", "--from", "20", "--until", "10",
        ])
        .expect(2);
    assert!(r.stderr().contains("the window is empty"), "{}", r.stderr());
}

#[test]
fn a_worker_started_before_redis_waits_for_it() {
    let fleet = Fleet::new(2, 300);
    let mut redis = Redis::stopped(common::free_port(), fleet.dir.path("redis"));
    let url = redis.url();
    let w = fleet.spawn(&work_args(&url, "w", &["--retry-for", "30s"]));
    std::thread::sleep(Duration::from_millis(500));
    redis.launch();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    wait(w, "worker");
    fleet.assert_exports_equal_replay(&redis);
}

#[test]
fn a_reading_after_its_tail_was_settled_is_a_late_dead_letter_and_no_row() {
    let dir = Dir::new();
    let redis = Redis::start(dir.path("redis"));
    let url = redis.url();
    let h = common::header(5, 1);
    let head = common::frame(mend_core::Frame::Header(h));
    let mut first = head.clone();
    first.extend(common::readings(
        &h,
        (0..100).filter(|s| *s != 50).map(|s| (s, 52.0)),
    ));
    // Seq 200 stamped at 5 s, 195 s behind where its seq puts it: a clock jump, dead-lettered
    // by the first run.
    first.extend(common::frame(mend_core::Frame::Reading(
        mend_core::WireReading {
            seq: 200,
            offset_ms: -195_000,
            celsius_delta: mend_core::Celsius::from_num(52).to_bits() - h.reference_bits,
        },
    )));
    dir.write("first.mlog", &first);
    let mut straggler = head;
    straggler.extend(common::readings(&h, [(50, 52.0)]));
    dir.write("straggler.mlog", &straggler);
    let work = [
        "work",
        "--redis",
        &url,
        "--consumer",
        "w",
        "--exit-when-idle",
        "--poll",
        "20ms",
    ];

    dir.mend(&["publish", "--redis", &url, "--end", "first.mlog"])
        .ok();
    dir.mend(&work).ok();
    dir.mend(&[
        "export",
        "--redis",
        &url,
        "--sensor",
        "5",
        "-o",
        "before.csv",
    ])
    .ok();
    dir.mend(&["replay", "first.mlog", "-o", "replay.csv", "-q"])
        .ok();
    assert_eq!(dir.read_text("before.csv"), dir.read_text("replay.csv"));
    assert!(dir
        .read_text("before.csv")
        .contains(",50,1970-01-01T00:00:50.000Z,52,synthetic,"));

    dir.mend(&["publish", "--redis", &url, "--end", "straggler.mlog"])
        .ok();
    let r = dir.mend(&work).ok();
    assert!(
        r.stderr().contains(" 0 rows, 1 dead letters,"),
        "{}",
        r.stderr()
    );
    // The first run's letter, and the straggler's.
    dir.mend(&[
        "export",
        "--redis",
        &url,
        "--sensor",
        "5",
        "-o",
        "after.csv",
    ])
    .ok();
    assert_eq!(dir.read_text("after.csv"), dir.read_text("before.csv"));
    let mut con = common::redis::connection(&url);
    let dead: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("mend:{5}:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].1[7], "clock_jump", "{dead:?}");
    let fields = &dead[1].1;
    let names: Vec<&str> = fields.iter().step_by(2).map(String::as_str).collect();
    assert_eq!(names, ["input", "offset", "length", "reason", "detail"]);
    assert_eq!(fields[7], "late", "{fields:?}");

    // A run after it writes the new row and none of the earlier letters again.
    let mut next = common::frame(mend_core::Frame::Header(h));
    next.extend(common::readings(&h, [(100, 52.0)]));
    dir.write("next.mlog", &next);
    dir.mend(&["publish", "--redis", &url, "--end", "next.mlog"])
        .ok();
    let r = dir.mend(&work).ok();
    assert!(
        r.stderr().contains(" 1 rows, 0 dead letters,"),
        "{}",
        r.stderr()
    );
    let dead: u64 = redis::cmd("XLEN")
        .arg("mend:{5}:dead")
        .query(&mut con)
        .unwrap();
    assert_eq!(dead, 2);
}

#[test]
fn an_export_window_and_jsonl_are_those_of_replay() {
    let fleet = Fleet::new(2, 2_000);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    let (from, until) = ("2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z");
    fleet
        .mend(&[
            "replay",
            "s2.mlog",
            "--from",
            from,
            "--until",
            until,
            "-o",
            "window.csv",
            "-q",
        ])
        .ok();
    fleet
        .mend(&[
            "export",
            "--redis",
            &url,
            "--sensor",
            "2",
            "--from",
            from,
            "--until",
            until,
            "-o",
            "e-window.csv",
        ])
        .ok();
    let want = fleet.dir.read_text("window.csv");
    assert!(want.lines().count() > 500, "{want}");
    assert_eq!(fleet.dir.read_text("e-window.csv"), want);
    fleet
        .mend(&[
            "replay", "s1.mlog", "--format", "jsonl", "-o", "s1.jsonl", "-q",
        ])
        .ok();
    fleet
        .mend(&[
            "export", "--redis", &url, "--sensor", "1", "--format", "jsonl", "-o", "e1.jsonl",
        ])
        .ok();
    assert_eq!(
        fleet.dir.read_text("e1.jsonl"),
        fleet.dir.read_text("s1.jsonl")
    );
}

/// The byte offsets where the header frames of a capture start.
fn header_offsets(capture: &[u8]) -> Vec<usize> {
    let mut dec: mend_core::Decoder = mend_core::Decoder::new();
    dec.feed(capture)
        .filter_map(|ev| match ev {
            mend_core::DecodeEvent::Frame {
                frame: mend_core::Frame::Header(_),
                span,
            } => Some(span.start as usize),
            _ => None,
        })
        .collect()
}

#[test]
fn two_overlapping_captures_merge_without_double_counting() {
    let fleet = Fleet::new(1, 3_000);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    // Two gateways captured the same sensor: the first the first two thirds, the second the
    // last two thirds, each starting at a session header.
    let all = fleet.dir.read("s1.mlog");
    let heads = header_offsets(&all);
    let cut_a = heads[heads.len() * 2 / 3];
    let cut_b = heads[heads.len() / 3];
    fleet.dir.write("a.mlog", &all[..cut_a]);
    fleet.dir.write("b.mlog", &all[cut_b..]);
    fleet.mend(&["publish", "--redis", &url, "a.mlog"]).ok();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "b.mlog"])
        .ok();
    wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    fleet
        .mend(&["replay", "a.mlog", "b.mlog", "-o", "ab.csv", "-q"])
        .ok();
    fleet
        .mend(&["export", "--redis", &url, "--sensor", "1", "-o", "e.csv"])
        .ok();
    let want = fleet.dir.read_text("ab.csv");
    assert_eq!(fleet.dir.read_text("e.csv"), want);
    // The whole series, each reading once.
    assert_eq!(want, fleet.expected(1));
}

/// Publishes a log cut in three (`shift` bytes past two frame ends) given in the shell's
/// order of `capture.log*` (newest first), works it, and checks the export is the series
/// whole.
fn publish_pieces_and_check(shift: usize) {
    let fleet = Fleet::new(1, 3_000);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    let all = fleet.dir.read("s1.mlog");
    let ends = common::frame_ends(&all);
    let (a, b) = (
        ends[ends.len() / 3 + 1] + shift,
        ends[2 * ends.len() / 3 + 1] + shift,
    );
    fleet.dir.write("capture.log.2", &all[..a]);
    fleet.dir.write("capture.log.1", &all[a..b]);
    fleet.dir.write("capture.log", &all[b..]);
    fleet
        .mend(&[
            "publish",
            "--redis",
            &url,
            "--end",
            "capture.log",
            "capture.log.1",
            "capture.log.2",
        ])
        .ok();
    wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    fleet
        .mend(&["export", "--redis", &url, "--sensor", "1", "-o", "e.csv"])
        .ok();
    assert_eq!(fleet.dir.read_text("e.csv"), fleet.expected(1));
}

#[test]
fn a_log_rotated_mid_session_is_published_from_its_pieces_whole() {
    // Cut between two frames, not at a header: the later pieces start with readings whose
    // session header is in the piece before.
    publish_pieces_and_check(0);
}

#[test]
fn a_log_split_inside_frames_is_published_from_its_pieces_whole() {
    // Cut inside a frame (`split -b`): each later piece starts with the rest of a frame
    // whose first bytes end the piece before.
    publish_pieces_and_check(4);
}

#[test]
fn another_sensors_frames_in_a_raw_stream_are_dead_letters_not_its_rows() {
    let fleet = Fleet::new(2, 600);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    let mut con = common::redis::connection(&url);
    // An entry of sensor 2's frames added by hand to sensor 1's raw stream, first.
    let h = common::header(2, 1);
    let mut foreign = common::frame(mend_core::Frame::Header(h));
    foreign.extend(common::readings(&h, [(0, 52.0), (1, 52.5), (2, 53.0)]));
    redis::cmd("XADD")
        .arg("mend:{1}:raw")
        .arg("*")
        .arg("f")
        .arg(foreign)
        .query::<String>(&mut con)
        .unwrap();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    for sensor in ["1", "2"] {
        let out = format!("e{sensor}.csv");
        fleet
            .mend(&["export", "--redis", &url, "--sensor", sensor, "-o", &out])
            .ok();
    }
    assert_eq!(fleet.dir.read_text("e1.csv"), fleet.expected(1));
    assert_eq!(fleet.dir.read_text("e2.csv"), fleet.expected(2));
    let dead: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("mend:{1}:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let other: Vec<&String> = dead
        .iter()
        .filter(|(_, f)| f[7] == "other_sensor")
        .map(|(_, f)| &f[9])
        .collect();
    assert_eq!(other.len(), 3, "{dead:?}");
    assert!(other[0].contains("of sensor 2"), "{other:?}");
}

/// Three sensors published whole, with sensor 2's `key` set to a string, and a worker run
/// until idle: it must leave sensor 2 alone, exit 1 naming it (`why` in its message), and
/// `mend status` must show it unusable. Returns the fleet, its server, the server's URL and
/// a connection, for the checks that follow.
fn sensor_2_left_alone(key: &str, why: &str) -> (Fleet, Redis, String, redis::Connection, String) {
    let fleet = Fleet::new(3, 600);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    let mut con = common::redis::connection(&url);
    redis::cmd("SET")
        .arg(key)
        .arg("not what a worker writes")
        .query::<()>(&mut con)
        .unwrap();
    let (code, err) = common::redis::wait_any(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sensor 2 not worked:"), "{err}");
    assert!(err.contains(why), "{err}");
    let status = fleet.mend(&["status", "--redis", &url]).ok().stdout();
    assert!(
        status.contains("sensors whose keys cannot be read: 1"),
        "{status}"
    );
    let line = status.lines().find(|l| l.starts_with("2  ")).unwrap();
    assert!(line.contains("unusable:"), "{status}");
    (fleet, redis, url, con, status)
}

/// Exports each of `sensors` and checks it is its series whole.
fn assert_exported(fleet: &Fleet, url: &str, sensors: &[u32]) {
    for sensor in sensors {
        let file = format!("e{sensor}.csv");
        let name = sensor.to_string();
        fleet
            .mend(&["export", "--redis", url, "--sensor", &name, "-o", &file])
            .ok();
        assert_eq!(
            fleet.dir.read_text(&file),
            fleet.expected(*sensor),
            "sensor {sensor}"
        );
    }
}

#[test]
fn a_sensor_whose_state_key_has_another_type_stops_only_that_sensor() {
    // A string where the worker keeps a hash.
    let (fleet, _redis, url, _con, status) =
        sensor_2_left_alone(&mend::fleet::Keys::new(2).state, "WRONGTYPE");
    assert_exported(&fleet, &url, &[1, 3]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("1  ") && l.ends_with("settled")),
        "{status}"
    );
}

#[test]
fn a_sensor_whose_output_key_has_another_type_loses_nothing_and_resumes_once_mended() {
    // A string where the worker appends the repaired rows: an XADD to it fails only inside
    // the commit's EXEC, after the state, the XACK and the trim.
    let out = mend::fleet::Keys::new(2).out;
    let (fleet, _redis, url, mut con, status) =
        sensor_2_left_alone(&out, "mend:{2}:out holds a string");
    // None of its entries is repaired, and status says so: before, its lag and pending read
    // 0, as the error reading its output key came first.
    let line = status.lines().find(|l| l.starts_with("2  ")).unwrap();
    let cols: Vec<u64> = line
        .split_whitespace()
        .take(4)
        .map(|c| c.parse().unwrap())
        .collect();
    let (raw, lag) = (cols[1], cols[2]);
    assert!(raw > 0 && lag == raw, "{status}");
    // Mended, the sensor is worked from where it was: every row is there.
    redis::cmd("DEL").arg(&out).query::<()>(&mut con).unwrap();
    wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    assert_exported(&fleet, &url, &[1, 2, 3]);
}

#[test]
fn a_stream_whose_ids_run_ahead_of_the_clock_settles_once_quiet() {
    let fleet = Fleet::new(1, 600);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    let mut con = common::redis::connection(&url);
    // An entry numbered a day ahead (the server's clock set back since, or an ID given by
    // hand): every entry added after it is numbered after it, ahead of the clock.
    let (secs, _): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    redis::cmd("XADD")
        .arg("mend:{1}:raw")
        .arg(format!("{}-0", (secs + 86_400) * 1_000))
        .arg("f")
        .arg("")
        .query::<String>(&mut con)
        .unwrap();
    // Not marked complete (`--end`): the tail settles only once the stream is quiet.
    fleet.mend(&["publish", "--redis", &url, "all.mlog"]).ok();
    wait(
        fleet.spawn(&work_args(&url, "w", &["--settle", "300ms"])),
        "worker",
    );
    fleet
        .mend(&["export", "--redis", &url, "--sensor", "1", "-o", "e.csv"])
        .ok();
    assert_eq!(fleet.dir.read_text("e.csv"), fleet.expected(1));
}

/// Each session's rows, in order: `(sensor, session)` → its lines.
fn by_session(csv: &str) -> std::collections::BTreeMap<String, Vec<&str>> {
    let mut out = std::collections::BTreeMap::<String, Vec<&str>>::new();
    for l in csv.lines().skip(1) {
        let key = l.splitn(3, ',').take(2).collect::<Vec<_>>().join(",");
        out.entry(key).or_default().push(l);
    }
    out
}

/// A node that restarted and then forwards the rest of its earlier session (a store node
/// replaying its flash log): the earlier session's readings come again after the newer
/// session's. Worked a few entries at a time, each run holds back the earlier session's tail
/// and carries it over in the engine state, as it does the live session's. The export has
/// every row of the replay, each session's in the replay's order; the earlier session's
/// last rows come after the newer session's rows written before them (a stream is only
/// appended to), where the replay of the whole capture puts them with their session.
#[test]
fn an_earlier_session_that_comes_again_is_worked_in_small_runs_as_replayed() {
    let dir = Dir::new();
    for (seed, start, name) in [
        ("1", "2026-01-01T00:00:00Z", "a.mlog"),
        ("2", "2026-01-01T00:05:00Z", "b.mlog"),
    ] {
        dir.mend(&[
            "generate", "--seed", seed, "--count", "600", "--sensor", "2", "--start", start, "-o",
            name,
        ])
        .ok();
    }
    let a = dir.read("a.mlog");
    let heads = header_offsets(&a);
    let cut = heads[heads.len() / 2];
    let mut ab = a[..cut].to_vec();
    ab.extend(dir.read("b.mlog"));
    ab.extend_from_slice(&a[cut..]);
    dir.write("ab.mlog", &ab);
    dir.mend(&["replay", "ab.mlog", "-o", "want.csv", "-q"])
        .ok();
    let want = dir.read_text("want.csv");
    assert_eq!(want.matches(",measured,").count(), 1_200);
    for count in ["1", "6"] {
        let redis = Redis::start(dir.path(&format!("redis-{count}")));
        let url = redis.url();
        dir.mend(&["publish", "--redis", &url, "--end", "ab.mlog"])
            .ok();
        wait(
            dir.spawn(&work_args(&url, "w", &["--count", count])),
            "worker",
        );
        let out = format!("e{count}.csv");
        dir.mend(&["export", "--redis", &url, "--sensor", "2", "-o", &out])
            .ok();
        let got = dir.read_text(&out);
        assert_eq!(got.lines().next(), want.lines().next(), "the header");
        let (got, want) = (by_session(&got), by_session(&want));
        assert_eq!(got.len(), 2);
        for (session, rows) in &want {
            let exported = got.get(session).map(Vec::as_slice).unwrap_or_default();
            assert!(
                exported == rows.as_slice(),
                "--count {count}, sensor,session {session}: {} rows exported, {} replayed",
                exported.len(),
                rows.len()
            );
        }
    }
}

#[test]
fn a_worker_paused_past_its_lease_writes_nothing_stale_when_it_resumes() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    // Long sensors read in one batch: a run is mostly its replay, so the pause most likely
    // lands between a run's reads and its commit.
    let fleet = Fleet::new(4, 200_000);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog"])
        .ok();
    let args = ["--lease", "200ms"];
    let paused = fleet.spawn(&work_args(&url, "paused", &args));
    let pid = Pid::from_raw(i32::try_from(paused.id()).unwrap());
    // Paused as soon as it holds a lease: with 200 000 readings a sensor, one worker takes
    // well over a second for the four, so work is left for the other one.
    let mut con = common::redis::connection(&url);
    let t = Instant::now();
    while (1..=4).all(|s| {
        !redis::cmd("EXISTS")
            .arg(mend::fleet::Keys::new(s).lease)
            .query::<bool>(&mut con)
            .unwrap()
    }) {
        assert!(t.elapsed() < Duration::from_secs(60), "no lease taken");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Frozen mid-work, holding leases and a run it has read but not committed.
    kill(pid, Signal::SIGSTOP).unwrap();
    // Its leases lapse before the other worker looks: one that finds every sensor leased
    // has nothing to do and, idle, exits.
    std::thread::sleep(Duration::from_millis(300));
    let (_, err) = wait(fleet.spawn(&work_args(&url, "other", &args)), "other");
    assert!(sensors_worked(&err) > 0, "{err}");
    // Every lease has lapsed by now: the paused worker can take them back, but its runs
    // were read before the other worker's commits.
    std::thread::sleep(Duration::from_millis(400));
    kill(pid, Signal::SIGCONT).unwrap();
    // It may find its lease lost at its commit, or its connection cut by the pause and the
    // run read again: either way, what it writes must not be stale.
    wait(paused, "paused");
    fleet.assert_exports_equal_replay(&redis);
}

#[test]
fn a_version_1_capture_is_published_beside_version_2_ones_and_exports_as_replay() {
    let fleet = Fleet::new(3, 2_000);
    let redis = Redis::start(fleet.dir.path("redis"));
    let url = redis.url();
    // A capture a node wrote in wire format version 1 (sensor 7), kept as data.
    let v1 = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/fault-v1.mend");
    fleet.mend(&["publish", "--redis", &url, v1]).ok();
    fleet
        .mend(&["publish", "--redis", &url, "--end", "all.mlog", v1])
        .ok();
    wait(fleet.spawn(&work_args(&url, "w", &[])), "worker");
    fleet.assert_exports_equal_replay(&redis);
    fleet.mend(&["replay", v1, "-o", "v1.csv", "-q"]).ok();
    fleet
        .mend(&["export", "--redis", &url, "--sensor", "7", "-o", "e7.csv"])
        .ok();
    let want = fleet.dir.read_text("v1.csv");
    assert!(want.lines().count() > 50, "{want}");
    assert_eq!(fleet.dir.read_text("e7.csv"), want);
}

/// Entries in a stream.
#[test]
fn a_raw_stream_is_trimmed_after_its_sessions_end_and_a_takeover_still_exports_as_replay() {
    // One sensor that restarts: session 1, then session 2 in three parts, as a gateway
    // publishes a node's capture piece by piece.
    let dir = Dir::new();
    for (seed, start) in [("1", "2026-01-01T00:00:00Z"), ("2", "2026-01-01T02:00:00Z")] {
        dir.mend(&[
            "generate",
            "--seed",
            seed,
            "--count",
            "3000",
            "--sensor",
            "5",
            "--start",
            start,
            "--skip-rate",
            "0.1",
            "--error-rate",
            "0.05",
            "--duplicate-rate",
            "0.05",
            "--reorder-rate",
            "0.05",
            "-o",
            &format!("s{seed}.mlog"),
        ])
        .ok();
    }
    let s1 = dir.read("s1.mlog");
    let s2 = dir.read("s2.mlog");
    let heads = header_offsets(&s2);
    let (cut_b, cut_c) = (heads[heads.len() / 3], heads[heads.len() * 2 / 3]);
    // The third part lost its first reading (every copy of it): a gap that only the
    // readings of the second part can fill.
    let mut dec: mend_core::Decoder = mend_core::Decoder::new();
    let readings: Vec<(u32, std::ops::Range<usize>)> = dec
        .feed(&s2[cut_c..])
        .filter_map(|ev| match ev {
            mend_core::DecodeEvent::Frame {
                frame: mend_core::Frame::Reading(w),
                span,
            } => Some((
                w.seq,
                cut_c + span.start as usize..cut_c + span.end as usize,
            )),
            _ => None,
        })
        .collect();
    let first = readings.iter().map(|(seq, _)| *seq).min().unwrap();
    let mut third = s2[cut_c..].to_vec();
    for (_, span) in readings.iter().rev().filter(|(seq, _)| *seq == first) {
        third.drain(span.start - cut_c..span.end - cut_c);
    }
    let parts = [s2[..cut_b].to_vec(), s2[cut_b..cut_c].to_vec(), third];
    dir.write("s2a.mlog", &parts[0]);
    dir.write("s2b.mlog", &parts[1]);
    dir.write("s2c.mlog", &parts[2]);
    let redis = Redis::start(dir.path("redis"));
    let url = redis.url();
    let raw = "mend:{5}:raw";
    let work = |consumer: &str| {
        let out = dir
            .mend(&work_args(&url, consumer, &["--lease", "300ms"]))
            .ok();
        out.stderr()
    };

    dir.mend(&["publish", "--redis", &url, "--end", "s1.mlog", "s2a.mlog"])
        .ok();
    let published = xlen(&url, raw);
    let err = work("w1");
    // Session 1 ended when session 2 started, and session 2 is carried in the engine state:
    // at most the entries of the last run stay.
    let kept = xlen(&url, raw);
    assert!(kept < published / 2, "{kept} of {published}: {err}");
    assert!(!err.contains(" 0 entries trimmed"), "{err}");

    // The rest of session 2, then session 1 again (late: it ended), worked by another
    // worker once the first one's lease has lapsed: session 2 is still the live one.
    std::thread::sleep(Duration::from_millis(400));
    dir.mend(&["publish", "--redis", &url, "--end", "s2b.mlog", "s1.mlog"])
        .ok();
    work("w2");
    std::thread::sleep(Duration::from_millis(400));
    dir.mend(&["publish", "--redis", &url, "--end", "s2c.mlog"])
        .ok();
    work("w1");

    // The rows of a checkpointed replay of the growing capture, run by run.
    let mut grow = Vec::new();
    let mut want = String::new();
    let mut late = 0;
    for (i, add) in [
        [&s1[..], &parts[0][..]],
        [&parts[1][..], &s1[..]],
        [&parts[2][..], &[][..]],
    ]
    .iter()
    .enumerate()
    {
        grow.extend_from_slice(add[0]);
        grow.extend_from_slice(add[1]);
        dir.write("grow.mlog", &grow);
        let out = format!("r{i}.csv");
        dir.mend(&[
            "replay",
            "grow.mlog",
            "--checkpoint",
            "grow.ckpt",
            "--final",
            "-o",
            &out,
            "--dlq",
            &format!("r{i}.dlq"),
            "-q",
        ])
        .ok();
        late += dir
            .read_text(&format!("r{i}.dlq"))
            .matches("\"reason\":\"late\"")
            .count();
        let rows = dir.read_text(&out);
        want.push_str(match i {
            0 => &rows,
            _ => rows.split_once('\n').map_or("", |(_, rows)| rows),
        });
    }
    assert!(want.lines().count() > 5_000, "both sessions have rows");
    dir.mend(&["export", "--redis", &url, "--sensor", "5", "-o", "e.csv"])
        .ok();
    assert_eq!(dir.read_text("e.csv"), want);
    // Session 1's second copy is dead-lettered as late, as by the replay, not absorbed.
    let mut con = common::redis::connection(&url);
    let dead: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg("mend:{5}:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let fleet_late = dead
        .iter()
        .filter(|(_, f)| {
            f.windows(2)
                .any(|kv| kv[0] == b"reason" && kv[1] == b"late")
        })
        .count();
    eprintln!("late: fleet {fleet_late}, replay {late}");
    assert!(late > 2_000, "{late}");
    assert_eq!(fleet_late, late);
}

/// One long session of sensor 9 in `parts` parts of 300 seqs, each part a capture of its own
/// (its header, then its readings), with gaps, an outage and flat runs. `hostile` adds, at
/// every boundary, readings of a part that arrive with the next one (out of order), copies
/// of a part's readings in the next one (duplicates), and at a few boundaries a reading with
/// a clock 1 h off as the last frame of a part (a clock glitch the next part decides).
fn long_session(parts: u32, hostile: bool) -> Vec<Vec<u8>> {
    let h = common::header(9, 1);
    let head = common::frame(mend_core::Frame::Header(h));
    let value = |seq: u32| {
        if seq % 200 < 70 {
            52.0
        } else {
            50.0 + f64::from(seq % 37) * 0.15
        }
    };
    let kept = |seq: u32| seq % 53 != 0 && !(2_500..2_600).contains(&seq);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for p in 0..parts {
        let seqs: Vec<u32> = (p * 300..(p + 1) * 300).filter(|s| kept(*s)).collect();
        let mut part = head.clone();
        if hostile && p > 0 {
            // The previous part's last readings, every other one, and copies of three.
            let prev: Vec<u32> = (p * 300 - 10..p * 300).filter(|s| kept(*s)).collect();
            let moved: Vec<u32> = prev.iter().copied().step_by(2).collect();
            part.extend(common::readings(&h, moved.iter().map(|s| (*s, value(*s)))));
            part.extend(common::readings(
                &h,
                prev.iter().skip(1).step_by(3).map(|s| (*s, value(*s))),
            ));
        }
        let mine: Vec<u32> = seqs
            .iter()
            .copied()
            .filter(|s| {
                !(hostile
                    && p + 1 < parts
                    && *s >= (p + 1) * 300 - 10
                    && (s - ((p + 1) * 300 - 10)) % 2 == 0
                    && kept(*s))
            })
            .collect();
        part.extend(common::readings(&h, mine.iter().map(|s| (*s, value(*s)))));
        if hostile && p % 4 == 1 && p + 1 < parts {
            // A seq that was never measured, stamped an hour ahead.
            let seq = (p + 1) * 300 - 300 + 159;
            let r = mend_core::Reading::new(
                9,
                1,
                seq,
                u64::from(seq) * 1_000 + 3_600_000,
                mend_core::Celsius::from_num(52),
            );
            part.extend(common::frame(mend_core::Frame::Reading(
                h.to_wire(&r).unwrap(),
            )));
        }
        out.push(part);
    }
    out
}

/// A worker that runs until killed, holding back tails for ten minutes of idleness.
fn endless_worker(dir: &Dir, url: &str, consumer: &str) -> Child {
    dir.command(&[
        "work",
        "--redis",
        url,
        "--consumer",
        consumer,
        "--poll",
        "20ms",
        "--settle",
        "600s",
        "--lease",
        "300ms",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

/// Waits until sensor 9's state covers every entry published (and is settled, with
/// `settled`), for a minute at most.
fn wait_covered(url: &str, settled: bool) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let t = Instant::now();
    loop {
        let info: std::collections::BTreeMap<String, redis::Value> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg("mend:{9}:raw")
            .query(&mut con)
            .unwrap();
        let last = match info.get("last-generated-id") {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            other => panic!("no last-generated-id: {other:?}"),
        };
        let (covered, done): (Option<String>, Option<String>) = redis::pipe()
            .cmd("HGET")
            .arg("mend:{9}:state")
            .arg("covered")
            .cmd("HGET")
            .arg("mend:{9}:state")
            .arg("settled")
            .query(&mut con)
            .unwrap();
        if covered.as_deref() == Some(last.as_str()) && (!settled || done.as_deref() == Some("1")) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the workers did not cover {last} (covered {covered:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publishes `parts` one by one to a running worker (holding back tails: only the last part
/// is marked as the end), waits for each to be worked, and returns the raw stream's length
/// after each. With `kill`, the worker is killed (SIGKILL) shortly after every third part is
/// published, at whatever it was doing, and another worker takes over once its lease lapsed.
fn work_in_parts(dir: &Dir, url: &str, parts: &[Vec<u8>], kill: bool) -> Vec<u64> {
    let mut kept = Vec::new();
    let mut worker = endless_worker(dir, url, "w0");
    for (i, part) in parts.iter().enumerate() {
        let name = format!("p{i}.mlog");
        dir.write(&name, part);
        let last = i + 1 == parts.len();
        let mut publish = vec!["publish", "--redis", url];
        if last {
            publish.push("--end");
        }
        publish.push(&name);
        dir.mend(&publish).ok();
        if kill && i % 3 == 1 {
            std::thread::sleep(Duration::from_millis(5 + 17 * (i as u64 % 5)));
            worker.kill().unwrap(); // SIGKILL
            worker.wait().unwrap();
            worker = endless_worker(dir, url, &format!("w{}", i + 1));
        }
        wait_covered(url, last);
        kept.push(xlen(url, "mend:{9}:raw"));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    kept
}

/// Runs a long session through the fleet in parts and compares the export with the replay of
/// the whole capture.
fn long_session_exports_as_replay(hostile: bool, kill: bool) {
    let dir = Dir::new();
    let redis = Redis::start(dir.path("redis"));
    let url = redis.url();
    let parts = long_session(20, hostile);
    let whole: Vec<u8> = parts.concat();
    dir.write("whole.mlog", &whole);
    let kept = work_in_parts(&dir, &url, &parts, kill);
    eprintln!("raw entries kept after each part: {kept:?}");
    // A part is about 300 frames, 5 entries of 64: the stream never keeps more than what
    // two runs read, however many parts came before.
    let published: u64 = parts.len() as u64 * 5;
    assert!(
        kept.iter().all(|k| *k <= 12),
        "raw entries kept after each run: {kept:?} of about {published}"
    );
    dir.mend(&[
        "replay",
        "whole.mlog",
        "-o",
        "replay.csv",
        "--dlq",
        "replay.dlq",
        "-q",
    ])
    .ok();
    dir.mend(&["export", "--redis", &url, "--sensor", "9", "-o", "e.csv"])
        .ok();
    // Every dead letter of the replay is in the fleet's, once: the same reasons, as often.
    let mut con = common::redis::connection(&url);
    let dead: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("mend:{9}:dead")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let mut fleet_reasons: Vec<String> = dead.iter().map(|(_, f)| f[7].clone()).collect();
    let mut replay_reasons: Vec<String> = dir
        .read_text("replay.dlq")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["reason"].as_str().unwrap().to_string()
        })
        .collect();
    fleet_reasons.sort();
    replay_reasons.sort();
    assert_eq!(fleet_reasons, replay_reasons);
    assert_eq!(!replay_reasons.is_empty(), hostile, "{replay_reasons:?}");
    let (got, want) = (dir.read_text("e.csv"), dir.read_text("replay.csv"));
    assert!(want.lines().count() > 5_000, "{}", want.lines().count());
    assert_export_is_replay("sensor 9", &got, &want);
}

#[test]
fn a_long_session_worked_part_by_part_keeps_its_raw_stream_short_and_exports_as_replay() {
    long_session_exports_as_replay(false, false);
}

#[test]
fn a_long_session_with_workers_killed_mid_way_keeps_its_stream_short_and_exports_as_replay() {
    long_session_exports_as_replay(false, true);
}

#[test]
fn a_long_session_reordered_duplicated_and_glitched_across_parts_exports_as_replay() {
    long_session_exports_as_replay(true, true);
}

#[test]
fn the_end_of_a_capture_is_its_last_entry_even_once_the_stream_was_trimmed() {
    // `mend publish --end` marks the last entry added; a worker may have trimmed the stream
    // to nothing by then.
    let dir = Dir::new();
    let redis = Redis::start(dir.path("redis"));
    let url = redis.url();
    let mut con = mend::fleet::connect(&url).unwrap();
    let key = "mend:{1}:raw";
    assert_eq!(mend::fleet::last_generated(&mut con, key).unwrap(), None);
    for _ in 0..3 {
        redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("f")
            .arg("x")
            .query::<String>(&mut con)
            .unwrap();
    }
    let last = mend::fleet::last_entry(&mut con, key).unwrap().unwrap();
    redis::cmd("XTRIM")
        .arg(key)
        .arg("MINID")
        .arg(last.next().to_string())
        .query::<u64>(&mut con)
        .unwrap();
    assert_eq!(mend::fleet::last_entry(&mut con, key).unwrap(), None);
    assert_eq!(
        mend::fleet::last_generated(&mut con, key).unwrap(),
        Some(last)
    );
}
