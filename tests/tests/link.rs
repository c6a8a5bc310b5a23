//! The whole chain under faults: the store-and-forward node in QEMU, a fault proxy on its link,
//! and `mend listen` (the library the CLI runs) as the gateway. The proxy drops 10 % of the
//! uplink frames and 1 % of the downlink ones, flips bits in 0.1 % of the bytes, and cuts the
//! link for longer than the node's RAM could hold; the board is reset twice over QMP, the
//! gateway is stopped and started again on its capture, and QEMU is killed once at a random
//! moment and started again on the same flash file.
//!
//! At the end, `mend replay` of the gateway's capture must give every reading the node took
//! exactly once, as measured: no synthetic row, no gap inside a session, every identity once,
//! every power-up its own session. What no one measured (while the node was off) lies between
//! sessions, not inside one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mend::listen::{Endpoint, ListenConfig, RetryPolicy};
use mend_tests::fixtures::{by_session, host_replay, SENSOR};
use mend_tests::proxy::{FaultProxy, Faults};
use mend_tests::{build_firmware, decode_capture, free_port, FirmwareBuild, StoreNode};

/// The node's sampling period: fast, so that a run of several sessions takes seconds.
const PERIOD_MS: u32 = 20;
/// Samples of each power-up.
const SAMPLES: u32 = 400;
/// Longer than the node's RAM could hold (its ring holds a few dozen frames), shorter than
/// its flash log (32 pages, about a thousand records).
const CUT: Duration = Duration::from_millis(2_000);
/// The temperature the TMP105 shows, in milli-degrees Celsius.
const MILLI: i32 = 52_500;

fn node_build() -> FirmwareBuild {
    FirmwareBuild {
        name: "link",
        features: &["store"],
        target: mend_tests::fixtures::M3,
        env: vec![
            ("MEND_SAMPLES", SAMPLES.to_string()),
            ("MEND_PERIOD_MS", PERIOD_MS.to_string()),
            ("MEND_STATS_EVERY", "16".into()),
            ("MEND_SENSOR", SENSOR.to_string()),
            ("MEND_LOG_PAGES", "32".into()),
        ],
    }
}

fn flash_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mend-link-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the flash directory");
    dir
}

/// Distinct seqs of live (not replayed) reading frames per session in the capture so far.
fn readings_per_session(capture: &Path) -> BTreeMap<u32, usize> {
    let bytes = std::fs::read(capture).unwrap_or_default();
    let mut seen: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for (session, f) in by_session(&decode_capture(&bytes)) {
        if let (Some(session), mend_core::Frame::Reading(w)) = (session, f) {
            seen.entry(session).or_default().insert(w.seq);
        }
    }
    seen.into_iter().map(|(s, v)| (s, v.len())).collect()
}

/// Waits until the capture satisfies `done`.
fn wait_for_capture(capture: &Path, what: &str, done: impl Fn(&BTreeMap<u32, usize>) -> bool) {
    let start = Instant::now();
    loop {
        let now = readings_per_session(capture);
        if done(&now) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the capture never showed {what}; readings per session: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A seed that differs from run to run, printed so that a failure can be replayed.
fn seed() -> u64 {
    if let Ok(s) = std::env::var("MEND_LINK_SEED") {
        return s.parse().expect("MEND_LINK_SEED is a number");
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

#[test]
fn every_reading_the_node_took_comes_back_measured_through_a_faulty_link_resets_and_a_power_cut() {
    let elf = build_firmware(&node_build());
    let dir = flash_dir("faults");
    let capture = dir.join("gateway.mlog");
    let seed = seed();
    eprintln!("seed {seed} (MEND_LINK_SEED={seed} replays this run's faults)");
    let port = free_port();
    let node_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy = FaultProxy::start(
        node_addr,
        Faults {
            seed,
            uplink_drop_ppm: 100_000,
            downlink_drop_ppm: 10_000,
            corrupt_byte_ppm: 1_000,
        },
    )
    .expect("start the proxy");
    let cfg = ListenConfig {
        endpoint: Endpoint::Tcp(proxy.addr().to_string()),
        capture: capture.clone(),
        idle_ms: None,
        duration_ms: Some(240_000),
        // The node samples 50 times faster than at 1 Hz: so does the gateway ask again, or a
        // hole would hold back the acknowledgements (and fill the log) for minutes of samples.
        retry: RetryPolicy {
            tries: 5,
            first_ms: 200,
            max_ms: 800,
        },
        sync_ms: 20,
        downlink: true,
        redis: None,
    };
    let (stop_first, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let (first, report) = std::thread::scope(|s| {
        let gateway =
            s.spawn(|| mend::listen::run(&cfg, &|| stop_first.load(Ordering::SeqCst), &mut |_| {}));
        let mut node = StoreNode::boot_for_gateway(&elf, &dir, 1, port, 240);
        node.set_temperature(MILLI);

        // Session 1: some readings through, then the link cut for longer than RAM holds.
        wait_for_capture(&capture, "30 readings of session 1", |m| {
            m.get(&1).is_some_and(|&n| n >= 30)
        });
        proxy.cut(true);
        std::thread::sleep(CUT);
        proxy.cut(false);
        std::thread::sleep(Duration::from_millis(300));

        // Two board resets: sessions 2 and 3.
        node.reset();
        wait_for_capture(&capture, "20 readings of session 2", |m| {
            m.get(&2).is_some_and(|&n| n >= 20)
        });

        // The gateway host restarts: a new `mend listen` continues the same capture.
        stop_first.store(true, Ordering::SeqCst);
        let first = gateway.join().unwrap().expect("the first mend listen ran");
        std::thread::sleep(Duration::from_millis(200));
        let gateway =
            s.spawn(|| mend::listen::run(&cfg, &|| stop.load(Ordering::SeqCst), &mut |_| {}));
        wait_for_capture(&capture, "30 readings of session 2", |m| {
            m.get(&2).is_some_and(|&n| n >= 30)
        });
        node.reset();
        wait_for_capture(&capture, "a reading of session 3", |m| m.contains_key(&3));

        // A power cut at a moment the seed picks, then the next power-up on the same flash.
        std::thread::sleep(Duration::from_millis(100 + seed % 700));
        let console = node.power_cut();
        assert!(console.contains("session: 3"), "{console}");
        std::thread::sleep(Duration::from_millis(300));
        let mut node = StoreNode::boot_for_gateway(&elf, &dir, 2, port, 240);
        node.set_temperature(MILLI);

        // The last power-up samples to its end; then the gateway must come to hold its whole
        // log (the node reports what it still keeps after each command).
        let done = node.wait_for_console(Duration::from_secs(120), |c| {
            c.split("sampling done")
                .nth(1)
                .is_some_and(|after| after.contains("log kept: 0"))
        });
        let console = node.console();
        assert!(
            done.is_some(),
            "the node never saw its log drained after sampling; console:\n{console}"
        );
        // The gateway's last syncs and acknowledgements.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        let report = gateway.join().unwrap().expect("the second mend listen ran");
        drop(node);
        (first, report)
    });
    let stats = proxy.stats();
    eprintln!("proxy: {stats:?}");
    assert!(stats.uplink_dropped > 0 && stats.cut_bytes > 0);

    // On failure: what the gateway and the nodes said.
    let consoles: String = (1..=2)
        .map(|b| std::fs::read_to_string(dir.join(format!("console-{b}.txt"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let context = format!(
        "first gateway: {first:?}\nsecond gateway: {report:?}\nproxy: {stats:?}\nconsoles:\n{consoles}"
    );
    // The log never overflowed (that loss would be counted, and is tested on its own in
    // tests/tests/store.rs): every reading the node took was still in its flash to ask for.
    assert!(
        consoles
            .lines()
            .filter_map(|l| l.strip_prefix("log dropped: "))
            .all(|n| n == "0"),
        "the node's flash log overflowed\n{context}"
    );
    let out = host_replay(&std::fs::read(&capture).unwrap());
    let mut by_session: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut identities = BTreeSet::new();
    for o in &out.records {
        let r = o.record.reading;
        assert!(
            !o.record.is_synthetic(),
            "session {} seq {} was filled, not recovered\n{context}",
            r.session,
            r.seq
        );
        assert_eq!(r.sensor, SENSOR);
        assert!(identities.insert((r.session, r.seq)), "{r:?} twice");
        assert_eq!(
            r.celsius.to_bits(),
            mend_tests::millidegrees_to_celsius_bits(MILLI),
            "{r:?}: not the value the sensor showed"
        );
        by_session.entry(r.session).or_default().push(r.seq);
    }
    // Every power-up its own session: 1 and 2 (resets), 3 (cut), 4 (after the power cut).
    assert_eq!(by_session.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);
    for (session, seqs) in &by_session {
        let want: Vec<u32> = (0..seqs.len() as u32).collect();
        assert_eq!(
            seqs, &want,
            "session {session}: a gap or a repeat inside it\n{context}"
        );
    }
    assert_eq!(
        by_session[&4].len() as u32,
        SAMPLES,
        "the last power-up's every sample"
    );
    assert!(
        by_session[&1].len() >= 30 + 50,
        "session 1 ran through the cut"
    );
    assert!(
        by_session[&2].len() >= 30,
        "session 2 ran across the gateway's restart"
    );
    let stream_synthetic: u64 = out.report.streams.iter().map(|s| s.synthetic).sum();
    assert_eq!(stream_synthetic, 0);
    let recovered: u64 = out
        .report
        .streams
        .iter()
        .map(|s| s.recovered_by_resend)
        .sum();
    assert!(recovered > 0, "nothing was recovered from the node");
    eprintln!(
        "sessions {:?}; readings {}; recovered by resend {recovered}; gateways: {} first time, \
         {} recovered, {} unrecoverable, {} heartbeats, {} resends, {} acks",
        by_session
            .iter()
            .map(|(s, v)| (*s, v.len()))
            .collect::<Vec<_>>(),
        out.records.len(),
        first.readings + report.readings,
        first.recovered + report.recovered,
        first.unrecoverable + report.unrecoverable,
        first.heartbeats + report.heartbeats,
        first.resends_sent + report.resends_sent,
        first.acks_sent + report.acks_sent,
    );
    assert_eq!(first.unrecoverable + report.unrecoverable, 0, "{context}");
    let _ = std::fs::remove_dir_all(&dir);
}
