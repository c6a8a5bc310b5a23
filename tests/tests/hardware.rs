//! The hardware build (no `qemu` feature) boots in QEMU too, on a board without semihosting,
//! as a node without a debugger: it makes no semihosting call (one would fault it), reports
//! through defmt only, and its frames on UART0 are its whole output.

use mend_core::Frame;
use mend_tests::fixtures::{self, SAMPLES};
use mend_tests::{assert_flash_budget, build_firmware, decode_capture, run, RunOptions};

/// True once the capture ends with the final stats frame (every sample accounted for) and
/// the header repeated after it, whole.
fn finished(uart: &[u8]) -> bool {
    let capture = decode_capture(uart);
    match capture.frames.as_slice() {
        [.., (Frame::Stats(s), _), (Frame::Header(_), _)] => {
            capture.skipped.is_empty() && s.counters.input + s.sensor_faults == SAMPLES
        }
        _ => false,
    }
}

#[test]
fn the_hardware_build_runs_without_semihosting_and_reports_on_its_uart_only() {
    let elf = build_firmware(&fixtures::hardware_build());
    assert_flash_budget(&elf);
    let run = run(
        &elf,
        RunOptions {
            without_semihosting: true,
            stop_when: Some(&finished),
            ..RunOptions::default()
        },
    );
    assert!(
        run.console.is_empty(),
        "semihosting output: {}",
        run.console
    );
    assert!(
        !run.qemu_stderr.contains("Lockup") && !run.qemu_stderr.contains("fatal"),
        "the node faulted:\n{}",
        run.qemu_stderr
    );
    let capture = decode_capture(&run.uart);
    assert!(capture.skipped.is_empty(), "{:?}", capture.skipped);
    assert_eq!(capture.accounted_bytes(), capture.len);
    assert!(
        matches!(capture.frames.first(), Some((Frame::Header(h), _)) if *h == fixtures::header()),
        "the session header comes first"
    );
    // Each sample left as a reading or a fault frame (QEMU's model does not answer the
    // repeated START that hardware gets, so its reads fail), and the books balance.
    let (mut readings, mut faults) = (0, 0);
    for (f, _) in &capture.frames {
        match f {
            Frame::Reading(_) => readings += 1,
            Frame::Fault(_) => faults += 1,
            Frame::Replayed(w) => panic!("a replayed reading without a resend: {w:?}"),
            Frame::Header(_)
            | Frame::Stats(_)
            | Frame::Ack(_)
            | Frame::Resend(_)
            | Frame::Heartbeat(_) => {}
        }
    }
    assert_eq!(readings + faults, SAMPLES);
    let last = capture
        .frames
        .iter()
        .rev()
        .find_map(|(f, _)| match f {
            Frame::Stats(s) => Some(*s),
            _ => None,
        })
        .expect("a final stats frame");
    assert!(last.counters.balanced(0));
    assert_eq!(last.sensor_faults, faults);
}
