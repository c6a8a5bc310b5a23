//! The streaming firmware in QEMU with its UART on a TCP socket, and the gateway
//! (`mend::listen`) connected to it: the gateway's capture holds every reading the node sent.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use mend::listen::{Endpoint, ListenConfig, RetryPolicy, StopReason};
use mend_tests::fixtures::{self, profile_celsius, profile_millidegrees, readings_by_seq, SAMPLES};
use mend_tests::{build_firmware, decode_capture, free_port, run, RunOptions, Schedule};

#[test]
fn the_gateway_captures_what_the_node_sends_over_a_tcp_uart() {
    let elf = build_firmware(&fixtures::sensor_build());
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("node.mlog");
    // A free port for QEMU to listen on.
    let port = free_port();
    let cfg = ListenConfig {
        endpoint: Endpoint::Tcp(format!("127.0.0.1:{port}")),
        capture: capture.clone(),
        // QEMU waits for the gateway, so the first bytes come within seconds of the
        // connection; after the node exits the link stays quiet.
        idle_ms: Some(3_000),
        duration_ms: Some(120_000),
        retry: RetryPolicy::default(),
        sync_ms: 50,
        // This firmware streams and never reads its UART: what the gateway wrote would stay
        // unread in QEMU, and QEMU's exit would then reset the connection, which can discard
        // the node's last bytes on their way.
        downlink: false,
        redis: None,
    };
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let gateway =
            s.spawn(|| mend::listen::run(&cfg, &|| stop.load(Ordering::SeqCst), &mut |_| {}));
        let profile = |seq| profile_millidegrees(seq);
        let chardev = format!("tcp:127.0.0.1:{port},server=on,wait=on");
        let node = run(
            &elf,
            RunOptions {
                profile: Some(&profile),
                uart: Some(&chardev),
                ..RunOptions::default()
            },
        );
        node.assert_success();
        gateway.join().unwrap().unwrap()
    });
    assert!(matches!(report.stop, Some(StopReason::Idle)), "{report:?}");

    let bytes = std::fs::read(&capture).unwrap();
    let decoded = decode_capture(&bytes);
    assert!(decoded.skipped.is_empty(), "{:?}", decoded.skipped);
    let readings = readings_by_seq(&decoded);
    assert_eq!(
        readings.keys().copied().collect::<Vec<_>>(),
        (0..SAMPLES).collect::<Vec<_>>()
    );
    for (&seq, r) in &readings {
        assert_eq!(r.celsius, profile_celsius(seq), "sample {seq}");
    }
    assert_eq!(report.readings, u64::from(SAMPLES));
    assert_eq!(
        (report.recovered, report.still_missing, report.unrecoverable),
        (0, 0, 0)
    );
    assert_eq!(report.bytes, bytes.len() as u64);
    assert_eq!((report.acks_sent, report.resends_sent), (0, 0));
}

#[test]
fn mend_node_follows_its_temperature_schedule_and_the_gateway_captures_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("temps.csv");
    let text = "seq,millicelsius\n0,52500\n20,53125\n40,51000\n59,54000\n";
    std::fs::write(&csv, text).unwrap();
    let schedule = Schedule::parse(text).unwrap();
    let capture = dir.path().join("node.mlog");
    let port = free_port();
    let cfg = ListenConfig {
        endpoint: Endpoint::Tcp(format!("127.0.0.1:{port}")),
        capture: capture.clone(),
        idle_ms: None,
        duration_ms: Some(600_000),
        retry: RetryPolicy::default(),
        sync_ms: 50,
        downlink: true,
        redis: None,
    };
    // The gateway stops once the node has exited and the link dropped: every byte the node
    // sent was read by then.
    let node_done = AtomicBool::new(false);
    let link_dropped = AtomicBool::new(false);
    let (node, report) = std::thread::scope(|s| {
        let gateway = s.spawn(|| {
            let stop = || node_done.load(Ordering::SeqCst) && link_dropped.load(Ordering::SeqCst);
            let mut status = |st: &mend::listen::Status| {
                if st.link == mend::listen::LinkState::Down {
                    link_dropped.store(true, Ordering::SeqCst);
                }
            };
            mend::listen::run(&cfg, &stop, &mut status)
        });
        let node = Command::new(env!("CARGO_BIN_EXE_mend-node"))
            .args(["--link", &format!("tcp:127.0.0.1:{port}"), "--wait"])
            .arg("--flash")
            .arg(dir.path().join("node.flash"))
            .arg("--temperatures")
            .arg(&csv)
            .args(["--period-ms", "250"])
            .output()
            .unwrap();
        node_done.store(true, Ordering::SeqCst);
        (node, gateway.join().unwrap().unwrap())
    });
    assert!(
        node.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&node.stdout),
        String::from_utf8_lossy(&node.stderr)
    );
    let decoded = decode_capture(&std::fs::read(&capture).unwrap());
    let got: Vec<(u32, i64)> = decoded
        .frames
        .iter()
        .filter_map(|(f, _)| match f {
            mend_core::Frame::Header(h) => Some((u32::MAX, i64::from(h.period_ms))),
            _ => None,
        })
        .take(1)
        .collect();
    assert_eq!(got, [(u32::MAX, 250)], "the period reached the build");
    let readings = readings_by_seq_any(&decoded);
    assert_eq!(readings.len(), 60);
    for (seq, celsius) in readings {
        let want = f64::from(schedule.at(seq)) / 1_000.0;
        assert_eq!(celsius, want, "sample {seq}");
    }
    assert_eq!(report.readings + report.recovered, 60, "{report:?}");
}

/// The readings of a capture as (seq, °C), under the header before each.
fn readings_by_seq_any(capture: &mend_tests::Capture) -> Vec<(u32, f64)> {
    let mut header = None;
    let mut out = Vec::new();
    for (f, _) in &capture.frames {
        match f {
            mend_core::Frame::Header(h) => header = Some(*h),
            mend_core::Frame::Reading(w) => {
                let r = header.unwrap().from_wire(w).unwrap();
                out.push((w.seq, r.celsius.to_num::<f64>()));
            }
            _ => {}
        }
    }
    out
}
