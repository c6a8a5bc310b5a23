//! Fault mode: the node's frames go through the core's seeded link simulator (drops,
//! duplicates, reorders, bit flips) before UART0. The temperatures are set over QMP, so the
//! truth is known sample by sample, and the host's recovery is checked against it: every gap
//! found, every surviving reading exact.

use std::collections::BTreeSet;

use mend_core::{FrameBuf, Link, Reading, SimConfig, SkipReason};
use mend_tests::fixtures::{
    self, host_replay, profile_celsius, profile_millidegrees, readings_by_seq, FirmwareEdge,
    FAULT_RATES, PERIOD_MS, SAMPLES, SEED, SENSOR, SESSION,
};
use mend_tests::{
    assert_flash_budget, assert_golden, assert_ram_budget, build_firmware, console_number,
    decode_capture, mask_memory_figures, run, RunOptions, FLASH_BUDGET,
};

/// What the node really measured at `seq`.
fn truth(seq: u32) -> Reading {
    Reading::new(
        SENSOR,
        SESSION,
        seq,
        u64::from(seq) * u64::from(PERIOD_MS),
        profile_celsius(seq),
    )
}

fn rate(name: &str) -> u32 {
    FAULT_RATES
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap()
}

/// The damage as `firmware/src/link.rs` configures it from the build settings.
fn damage() -> SimConfig {
    SimConfig {
        skip_ppm: rate("MEND_DROP_PPM"),
        duplicate_ppm: rate("MEND_DUP_PPM"),
        reorder_ppm: rate("MEND_REORDER_PPM"),
        max_displacement: 2,
        corrupt_ppm: rate("MEND_FLIP_PPM"),
        truncate_ppm: 0,
        ..SimConfig::CLEAN
    }
}

/// The clean frames of the truth through the host build of the edge, then the seeded link,
/// applied as the firmware applies it (flip, then drop / duplicate / delay).
fn host_damaged_stream() -> (Vec<u8>, mend_core::LinkStats) {
    let mut edge = FirmwareEdge::try_new(fixtures::edge_config()).unwrap();
    let mut link: Link<FrameBuf, 4> = Link::new(SEED, &damage());
    let mut wire = Vec::new();
    edge.drain((0..SAMPLES).map(truth), |frame| {
        let mut frame = FrameBuf::from_slice(frame).expect("a frame fits its buffer");
        let keep = link.corrupt(&mut frame);
        frame.truncate(keep);
        link.send(frame, |f| wire.extend_from_slice(&f));
    });
    link.flush(|f| wire.extend_from_slice(&f));
    (wire, link.stats())
}

#[test]
fn a_damaged_capture_is_recovered_against_its_truth() {
    let elf = build_firmware(&fixtures::fault_build());
    let flash = assert_flash_budget(&elf);
    eprintln!("flash: {flash} bytes, {} left", FLASH_BUDGET - flash);
    let profile = |seq| profile_millidegrees(seq);
    let run = run(
        &elf,
        RunOptions {
            profile: Some(&profile),
            keep_capture_as: Some("fault"),
            ..RunOptions::default()
        },
    );
    run.assert_success();

    // The damage is the seeded one: the host reproduces the capture byte for byte.
    let (expected, link) = host_damaged_stream();
    assert!(
        run.uart == expected,
        "the capture is not the seeded damage of the truth ({} vs {} bytes)",
        run.uart.len(),
        expected.len()
    );
    for (label, value) in [
        ("link sent: ", link.sent),
        ("link dropped: ", link.dropped),
        ("link duplicated: ", link.duplicated),
        ("link delayed: ", link.delayed),
        ("link corrupted: ", link.corrupted),
    ] {
        assert_eq!(console_number(&run.console, label), value, "{label}");
    }
    assert!(
        link.dropped > 0 && link.duplicated > 0 && link.delayed > 0 && link.corrupted > 0,
        "the seed exercises every kind of damage: {link:?}"
    );

    // Every byte is accounted for; flipped frames are reported as such.
    let capture = decode_capture(&run.uart);
    assert_eq!(capture.accounted_bytes(), capture.len);
    let bad_crc = capture
        .skipped
        .iter()
        .filter(|(_, why)| *why == SkipReason::BadCrc)
        .count();
    assert!(
        bad_crc > 0,
        "flipped frames show as CRC errors: {:?}",
        capture.skipped
    );

    // Every surviving reading is exact (duplicates are identical copies, checked inside).
    let readings = readings_by_seq(&capture);
    assert!(readings.len() > (SAMPLES as usize) * 3 / 4);
    for (seq, r) in &readings {
        assert_eq!(*r, truth(*seq), "seq {seq}");
    }

    // The readings the plain decoder lost are the ones the link dropped, and the session's
    // known length (SAMPLES) implies those before the first and after the last.
    let lost: BTreeSet<u32> = (0..SAMPLES).filter(|s| !readings.contains_key(s)).collect();
    assert!(!lost.is_empty(), "the seed loses some readings");
    let first = *readings.keys().next().unwrap();
    let last = *readings.keys().next_back().unwrap();
    let interior = lost.iter().filter(|s| (first..last).contains(*s)).count();
    assert_eq!(
        lost.len(),
        interior + first as usize + (SAMPLES - 1 - last) as usize
    );

    // The host replay (`mend replay`) also looks inside damaged frames: a bit flipped in a
    // delimiter joins two frames, both whole. It keeps every reading the plain decoder read
    // and the whole ones it finds, each exactly what the node measured, and fills exactly
    // the seqs between that nobody measured, saying they are synthetic.
    let replay = host_replay(&run.uart);
    assert!(replay.report.balanced(), "{:?}", replay.report);
    let bytes = &replay.report.inputs[0].bytes;
    assert_eq!(bytes.good + bytes.bad + bytes.skipped, capture.len);
    let damaged = capture
        .skipped
        .iter()
        .filter(|(_, why)| why.is_bad_frame())
        .count();
    assert!(damaged >= bad_crc);
    assert!(bytes.bad_items as usize <= damaged);
    assert_eq!(
        bytes.good_items,
        capture.frames.len() as u64 + bytes.recovered_items
    );
    let measured: BTreeSet<u32> = replay
        .records
        .iter()
        .filter(|o| !o.record.is_synthetic())
        .map(|o| o.record.reading.seq)
        .collect();
    assert!(readings.keys().all(|s| measured.contains(s)));
    eprintln!(
        "{} readings decoded, {} more found whole inside damaged frames",
        readings.len(),
        measured.len() - readings.len()
    );
    let (first, last) = (*measured.first().unwrap(), *measured.last().unwrap());
    let unmeasured: BTreeSet<u32> = (first..=last).filter(|s| !measured.contains(s)).collect();
    let [stream] = replay.report.streams.as_slice() else {
        panic!("one stream expected: {:?}", replay.report.streams)
    };
    assert_eq!(stream.missing as usize, unmeasured.len());
    assert_eq!(stream.outages, 0);
    assert_eq!(stream.measured as usize, measured.len());
    assert_eq!(stream.synthetic as usize, unmeasured.len());
    let mut filled = BTreeSet::new();
    for out in &replay.records {
        let rec = &out.record;
        let seq = rec.reading.seq;
        if rec.is_synthetic() {
            assert!(rec.flags.contains(mend_core::Flag::Synthetic));
            filled.insert(seq);
        } else {
            assert_eq!(rec.reading, truth(seq), "measured seq {seq}");
        }
    }
    assert_eq!(filled, unmeasured, "gaps filled vs readings not measured");
    let seqs: Vec<u32> = replay
        .records
        .iter()
        .map(|o| o.record.reading.seq)
        .collect();
    assert_eq!(
        seqs,
        (first..=last).collect::<Vec<_>>(),
        "a complete series"
    );

    let (ram, peak) = assert_ram_budget(&run.console);
    eprintln!(
        "RAM: {ram} bytes static + {peak} bytes stack peak; QEMU run {:?} wall",
        run.wall
    );
    assert_golden("fault", &mask_memory_figures(&run.console));
}

/// The capture this test's node sent in wire format version 1 (commit 85ef01b, the same seed
/// and damage), kept as data: version-1 captures stay readable forever.
const VERSION_1_CAPTURE: &[u8] = include_bytes!("../golden/fault-v1.mend");

#[test]
fn the_version_1_capture_of_this_node_replays_to_the_rows_of_version_2() {
    let (v2, _) = host_damaged_stream();
    assert_ne!(
        VERSION_1_CAPTURE,
        v2.as_slice(),
        "the versions differ in bytes"
    );
    let capture = decode_capture(VERSION_1_CAPTURE);
    assert_eq!(capture.accounted_bytes(), capture.len);
    assert!(capture
        .frames
        .iter()
        .any(|(f, _)| matches!(f, mend_core::Frame::Header(h) if h.version == 1)));
    let readings = readings_by_seq(&capture);
    assert!(readings.len() > (SAMPLES as usize) * 3 / 4);
    for (seq, r) in &readings {
        assert_eq!(*r, truth(*seq), "seq {seq}");
    }
    let (old, new) = (host_replay(VERSION_1_CAPTURE), host_replay(&v2));
    // The same rows, but that version 2 seals each reading to its header, so whole readings
    // are also taken from inside damaged frames (a flipped delimiter joins two frames): where
    // version 1 has a fill there, version 2 has what the node measured (and the fills beside
    // it interpolate towards it, and the spike check of its neighbours sees it).
    let seqs = |o: &mend::ReplayOutput| -> Vec<u32> {
        o.records.iter().map(|r| r.record.reading.seq).collect()
    };
    assert_eq!(seqs(&old), seqs(&new));
    let mut found = 0;
    for (a, b) in old.records.iter().zip(&new.records) {
        let seq = a.record.reading.seq;
        match (a.record.is_synthetic(), b.record.is_synthetic()) {
            // The same reading; its flags may differ where a neighbour found only by version
            // 2 says whether it was a spike.
            (false, false) => assert_eq!(a.record.reading, b.record.reading, "seq {seq}"),
            (false, true) => panic!("seq {seq}: measured in version 1, filled in version 2"),
            (true, false) => {
                assert_eq!(b.record.reading, truth(seq), "seq {seq}");
                found += 1;
            }
            (true, true) => {}
        }
    }
    assert_eq!(old.outages, new.outages);
    let (a, b) = (&old.report.streams, &new.report.streams);
    assert_eq!(a.len(), 1);
    assert_eq!(b[0].received, a[0].received + found);
    assert_eq!(b[0].missing + found, a[0].missing);
}
