//! The streaming firmware in QEMU with its UART on a TCP socket, and the gateway
//! (`mend::listen`) connected to it: the gateway's capture holds every reading the node sent.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};

use mend::listen::{Endpoint, ListenConfig, RetryPolicy, StopReason};
use mend_tests::fixtures::{self, profile_celsius, profile_millidegrees, readings_by_seq, SAMPLES};
use mend_tests::{build_firmware, decode_capture, run, RunOptions};

#[test]
fn the_gateway_captures_what_the_node_sends_over_a_tcp_uart() {
    let elf = build_firmware(&fixtures::sensor_build());
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("node.mlog");
    // A free port for QEMU to listen on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
