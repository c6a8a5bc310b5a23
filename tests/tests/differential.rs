//! The differential test: the same seeded reading sequence goes through the firmware build of
//! the core (Cortex-M3, in QEMU) and the host build (x86), and both must put the same bytes on
//! the wire. This is the proof that the edge and the host agree.

use mend_core::{Flag, SimConfig, Simulator, TruthPoint, ValidateConfig, Validator};
use mend_tests::fixtures::{
    self, readings_by_seq, stats_frames, FirmwareEdge, PERIOD_MS, SAMPLES, SEED, SENSOR, SESSION,
};
use mend_tests::{
    assert_flash_budget, assert_golden, assert_ram_budget, build_firmware, decode_capture,
    mask_memory_figures, run, RunOptions, FLASH_BUDGET,
};

/// The simulator as the firmware's `sim-source` configures it.
fn sim_config() -> SimConfig {
    SimConfig {
        sensor: SENSOR,
        session: SESSION,
        period_ms: PERIOD_MS,
        ..SimConfig::ORIGIN
    }
}

/// The host build of the edge, fed exactly as the firmware's main loop feeds it: push a
/// sample, drain the ring to the link; at the end flush and drain.
fn host_frames(truth: &[TruthPoint]) -> Vec<u8> {
    let mut edge = FirmwareEdge::try_new(fixtures::edge_config()).unwrap();
    let mut wire = Vec::new();
    edge.drain(truth.iter().map(|t| t.reading), |frame| {
        wire.extend_from_slice(frame)
    });
    wire
}

#[test]
fn firmware_and_host_builds_give_byte_identical_frames() {
    let elf = build_firmware(&fixtures::sim_build());
    let flash = assert_flash_budget(&elf);
    eprintln!("flash: {flash} bytes, {} left", FLASH_BUDGET - flash);
    let run = run(
        &elf,
        RunOptions {
            keep_capture_as: Some("sim-source"),
            ..RunOptions::default()
        },
    );
    run.assert_success();

    let truth: Vec<TruthPoint> = Simulator::new(SEED, sim_config())
        .take(SAMPLES as usize)
        .collect();
    let host = host_frames(&truth);
    assert!(!host.is_empty());
    if run.uart != host {
        let at = run
            .uart
            .iter()
            .zip(&host)
            .position(|(a, b)| a != b)
            .unwrap_or(run.uart.len().min(host.len()));
        panic!(
            "firmware and host frames differ at byte {at} (firmware {} bytes, host {} bytes)\n\
             firmware: {:02x?}\n    host: {:02x?}",
            run.uart.len(),
            host.len(),
            &run.uart[at.saturating_sub(8)..(at + 8).min(run.uart.len())],
            &host[at.saturating_sub(8)..(at + 8).min(host.len())],
        );
    }

    // Identical bytes could still be identically wrong: check them against the truth too.
    let capture = decode_capture(&run.uart);
    assert!(capture.skipped.is_empty());
    let readings = readings_by_seq(&capture);
    assert_eq!(readings.len(), truth.len());
    let mut validator: Validator<32> = Validator::try_new(ValidateConfig::DEFAULT).unwrap();
    let mut out_of_band = 0;
    for t in &truth {
        let r = readings[&t.reading.seq];
        assert_eq!(r, t.reading);
        let flagged = validator.check(&r).contains(Flag::OutOfBand);
        assert_eq!(flagged, t.out_of_band, "seq {}: {}", r.seq, r.celsius);
        out_of_band += usize::from(flagged);
    }
    assert!(out_of_band > 0, "the seed gives some out-of-band readings");
    let (_, last) = *stats_frames(&capture).last().unwrap();
    assert!(last.counters.balanced(0));
    assert_eq!(last.counters.emitted, SAMPLES);
    let (ram, peak) = assert_ram_budget(&run.console);
    eprintln!(
        "RAM: {ram} bytes static + {peak} bytes stack peak; QEMU run {:?} wall",
        run.wall
    );
    assert_golden("sim-source", &mask_memory_figures(&run.console));
}
