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

/// Powers the node up (`boot` numbers its console file) for a gateway on `port`, showing
/// [`MILLI`]; QEMU is killed after 240 s at the latest.
fn power_up(elf: &Path, dir: &Path, boot: u32, port: u16) -> StoreNode {
    let mut node = StoreNode::boot_for_gateway(elf, dir, boot, port, 240);
    node.set_temperature(MILLI);
    node
}

/// The gateway's settings, through `proxy`, writing `capture`.
fn gateway(proxy: &FaultProxy, capture: &Path) -> ListenConfig {
    ListenConfig {
        endpoint: Endpoint::Tcp(proxy.addr().to_string()),
        capture: capture.to_path_buf(),
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
    }
}

/// Waits until the node, done sampling, reports that its log holds nothing more (the gateway
/// acknowledged every record of every session).
fn wait_for_drained_log(node: &StoreNode, patience: Duration) {
    let done = node.wait_for_console(patience, |c| {
        c.split("sampling done")
            .nth(1)
            .is_some_and(|after| after.contains("log kept: 0"))
    });
    if done.is_none() {
        // A long console is cut short where a test's output is shown: its end says most.
        let console = node.console();
        let lines: Vec<&str> = console.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "the node never saw its log drained after sampling; the last {} of {} console \
             lines:\n{tail}",
            lines.len().min(60),
            lines.len()
        );
    }
}

/// Sets its flag when dropped: a test that fails inside a thread scope stops its gateway then,
/// instead of waiting for the gateway's time limit.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The QEMU runs of this file one at a time: each is timed against the real clock.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static QEMU: std::sync::Mutex<()> = std::sync::Mutex::new(());
    QEMU.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks every row of a replayed capture: measured (none filled), of the node's sensor, at
/// the temperature it showed, each identity once, and each session's seqs `0..n` without a
/// gap. Returns `n` per session.
fn whole_sessions(out: &mend::ReplayOutput, context: &str) -> BTreeMap<u32, usize> {
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
    for (session, seqs) in &by_session {
        let want: Vec<u32> = (0..seqs.len() as u32).collect();
        assert_eq!(
            seqs, &want,
            "session {session}: a gap or a repeat inside it\n{context}"
        );
    }
    let stream_synthetic: u64 = out.report.streams.iter().map(|s| s.synthetic).sum();
    assert_eq!(stream_synthetic, 0);
    by_session.into_iter().map(|(s, v)| (s, v.len())).collect()
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
    let _one = one_at_a_time();
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
    let cfg = gateway(&proxy, &capture);
    let (stop_first, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let (first, report) = std::thread::scope(|s| {
        let _stop = (StopOnDrop(&stop_first), StopOnDrop(&stop));
        let gateway =
            s.spawn(|| mend::listen::run(&cfg, &|| stop_first.load(Ordering::SeqCst), &mut |_| {}));
        let mut node = power_up(&elf, &dir, 1, port);

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
        let node = power_up(&elf, &dir, 2, port);

        // The last power-up samples to its end; then the gateway must come to hold its whole
        // log (the node reports what it still keeps after each command).
        wait_for_drained_log(&node, Duration::from_secs(120));
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
    let by_session = whole_sessions(&out, &context);
    // Every power-up its own session: 1 and 2 (resets), 3 (cut), 4 (after the power cut).
    assert_eq!(by_session.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(
        by_session[&4] as u32, SAMPLES,
        "the last power-up's every sample"
    );
    assert!(by_session[&1] >= 30 + 50, "session 1 ran through the cut");
    assert!(
        by_session[&2] >= 30,
        "session 2 ran across the gateway's restart"
    );
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
        by_session,
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

/// A power cut while the link was down: the last readings of that power-up never reached the
/// gateway live, and the next power-up's replay of them was lost as well. Nothing the gateway
/// holds says those readings exist (a session that ended sends no heartbeat): the node offers
/// the newest record of every earlier session again until it is acknowledged, and the gateway
/// asks for the seqs before it.
#[test]
fn readings_taken_in_the_dark_before_a_power_cut_come_back_once_the_link_does() {
    let _one = one_at_a_time();
    let elf = build_firmware(&node_build());
    let dir = flash_dir("dark");
    let capture = dir.join("gateway.mlog");
    let port = free_port();
    let node_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy = FaultProxy::start(node_addr, Faults::CLEAN).expect("start the proxy");
    let cfg = gateway(&proxy, &capture);
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        let gateway =
            s.spawn(|| mend::listen::run(&cfg, &|| stop.load(Ordering::SeqCst), &mut |_| {}));
        let node = power_up(&elf, &dir, 1, port);
        wait_for_capture(&capture, "20 readings of session 1", |m| {
            m.get(&1).is_some_and(|&n| n >= 20)
        });
        // About 30 samples in the dark, then the power goes.
        proxy.cut(true);
        std::thread::sleep(Duration::from_millis(600));
        let console = node.power_cut();
        assert!(console.contains("session: 1"), "{console}");
        // The next power-up replays them into the dark too.
        let node = power_up(&elf, &dir, 2, port);
        assert!(
            node.wait_for_console(Duration::from_secs(20), |c| c.contains("session: 2"))
                .is_some(),
            "the second power-up never started"
        );
        std::thread::sleep(Duration::from_millis(1_000));
        proxy.cut(false);
        wait_for_drained_log(&node, Duration::from_secs(90));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        gateway.join().unwrap().expect("mend listen ran")
    });
    let context = format!("gateway: {report:?}\nproxy: {:?}", proxy.stats());
    let out = host_replay(&std::fs::read(&capture).unwrap());
    let by_session = whole_sessions(&out, &context);
    assert_eq!(by_session.keys().copied().collect::<Vec<_>>(), [1, 2]);
    assert!(
        by_session[&1] >= 20 + 15,
        "session 1's readings in the dark: {by_session:?}"
    );
    assert_eq!(by_session[&2] as u32, SAMPLES, "{context}");
    assert_eq!(report.unrecoverable, 0, "{context}");
    eprintln!("sessions {by_session:?}; gateway: {report:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
