//! The normal firmware in QEMU, its TMP105 driven over QMP through a profile: a ramp through
//! the 50–55 °C band and excursions to 60 °C and 45 °C.

use std::collections::BTreeSet;

use mend_core::{Flag, Frame, Quality, ValidateConfig, Validator};
use mend_tests::fixtures::{
    self, host_replay, profile_celsius, profile_millidegrees, profile_out_of_band, readings_by_seq,
    stats_frames, PERIOD_MS, SAMPLES, STATS_EVERY,
};
use mend_tests::{
    assert_flash_budget, assert_golden, assert_ram_budget, build_firmware, console_number,
    decode_capture, mask_memory_figures, millidegrees_to_celsius_bits, run, RunOptions,
    FLASH_BUDGET,
};

#[test]
fn every_sample_carries_the_temperature_that_was_set() {
    let elf = build_firmware(&fixtures::sensor_build());
    let flash = assert_flash_budget(&elf);
    eprintln!("flash: {flash} bytes, {} left", FLASH_BUDGET - flash);
    let profile = |seq| profile_millidegrees(seq);
    let run = run(
        &elf,
        RunOptions {
            profile: Some(&profile),
            keep_capture_as: Some("sensor"),
            ..RunOptions::default()
        },
    );
    run.assert_success();
    assert_eq!(run.prompts, (0..SAMPLES).collect::<Vec<_>>());

    let capture = decode_capture(&run.uart);
    assert!(
        capture.skipped.is_empty(),
        "a clean link lost bytes: {:?}",
        capture.skipped
    );
    assert_eq!(capture.accounted_bytes(), capture.len);
    assert_eq!(capture.frames[0].0, Frame::Header(fixtures::header()));

    // Every sample, once, in order, with the exact value QMP set and its scheduled time.
    let readings = readings_by_seq(&capture);
    assert_eq!(
        readings.keys().copied().collect::<Vec<_>>(),
        (0..SAMPLES).collect::<Vec<_>>()
    );
    let wire_order: Vec<u32> = capture
        .frames
        .iter()
        .filter_map(|(f, _)| match f {
            Frame::Reading(w) => Some(w.seq),
            _ => None,
        })
        .collect();
    assert_eq!(wire_order, (0..SAMPLES).collect::<Vec<_>>());
    for (&seq, r) in &readings {
        assert_eq!(
            r.celsius,
            profile_celsius(seq),
            "sample {seq}: set {} m°C",
            profile_millidegrees(seq)
        );
        assert_eq!(
            r.celsius.to_bits(),
            millidegrees_to_celsius_bits(profile_millidegrees(seq))
        );
        assert_eq!(r.timestamp, u64::from(seq) * u64::from(PERIOD_MS));
    }

    // Out-of-band readings are flagged; the edge's verdicts match the host's.
    let mut validator: Validator<32> = Validator::try_new(ValidateConfig::DEFAULT).unwrap();
    let (mut doubtful, mut bad) = (0u32, 0u32);
    for (&seq, r) in &readings {
        let flags = validator.check(r);
        assert_eq!(
            flags.contains(Flag::OutOfBand),
            profile_out_of_band(seq),
            "sample {seq} at {} °C: flags {flags}",
            r.celsius
        );
        if profile_out_of_band(seq) {
            assert_ne!(flags.quality(), Quality::Good, "sample {seq}");
        }
        match flags.quality() {
            Quality::Good => {}
            Quality::Doubtful => doubtful += 1,
            Quality::Bad => bad += 1,
        }
    }
    let oob = (0..SAMPLES).filter(|&s| profile_out_of_band(s)).count();
    assert!(oob >= 40, "the profile leaves the band often ({oob})");

    // Stats frames: one every STATS_EVERY samples plus a final one, each followed by the
    // header again, each balanced, and the last one agreeing with what the host counted.
    let stats = stats_frames(&capture);
    assert_eq!(stats.len() as u32, SAMPLES / STATS_EVERY + 1);
    for (index, s) in &stats {
        let c = s.counters;
        assert!(c.input as u64 >= c.out(), "{c}");
        let held = c.input as u64 - c.out();
        assert!(held <= 6, "more held than the reorder buffer holds: {c}");
        // frames_sent counts the frames already handed to the UART when the stats frame was
        // made; frames queued in the ring just before it (at most the ring's 9) are not yet.
        let pending = index
            .checked_sub(s.frames_sent as usize)
            .unwrap_or_else(|| panic!("stats frame {index} claims {} sent", s.frames_sent));
        assert!(pending < 9, "stats frame {index}: {pending} frames pending");
        // The header again, placing the readings after it.
        assert!(
            matches!(
                capture.frames.get(index + 1).map(|f| f.0),
                Some(Frame::Header(h)) if h.with_base(0) == fixtures::header()
            ),
            "stats frame {index} is not followed by the header"
        );
    }
    let (_, last) = *stats.last().unwrap();
    let c = last.counters;
    assert!(c.balanced(0), "after the flush nothing is held: {c}");
    assert_eq!(c.input, SAMPLES);
    assert_eq!(c.emitted as usize, readings.len());
    assert_eq!((c.late, c.duplicate, c.rejected, c.evicted), (0, 0, 0, 0));
    assert_eq!((last.doubtful, last.bad), (doubtful, bad));
    assert_eq!((last.sensor_faults, last.ring_dropped), (0, 0));

    // The host tool reads the capture the same way: every byte in a good frame, every reading
    // measured and exact, the same verdicts, no gap, and the edge's books next to its own.
    let replay = host_replay(&run.uart);
    assert!(replay.report.balanced(), "{:?}", replay.report);
    assert_eq!(replay.report.inputs[0].bytes.good, capture.len);
    assert_eq!(replay.report.dead_letters, 0);
    let [stream] = replay.report.streams.as_slice() else {
        panic!("one stream expected: {:?}", replay.report.streams)
    };
    assert_eq!(
        (stream.sensor, stream.session),
        (fixtures::SENSOR, fixtures::SESSION)
    );
    assert_eq!((stream.received, stream.records), (100, 100));
    assert_eq!((stream.synthetic, stream.gaps, stream.outages), (0, 0, 0));
    assert_eq!(
        (stream.doubtful, stream.bad),
        (u64::from(doubtful), u64::from(bad))
    );
    let edge = stream.edge.as_ref().expect("the host saw the edge's stats");
    assert_eq!(edge.counters, last.counters);
    assert!(edge.balanced);
    assert_eq!(edge.sent, stream.received);
    assert_eq!(replay.records.len(), SAMPLES as usize);
    for (out, seq) in replay.records.iter().zip(0..) {
        let rec = &out.record;
        assert!(!rec.is_synthetic());
        assert_eq!(rec.reading, readings[&seq]);
        assert_eq!(
            rec.flags.contains(Flag::OutOfBand),
            profile_out_of_band(seq)
        );
    }

    let (ram, peak) = assert_ram_budget(&run.console);
    eprintln!(
        "RAM: {ram} bytes static + {peak} bytes stack peak; QEMU run {:?} wall",
        run.wall
    );
    assert_golden("sensor", &mask_memory_figures(&run.console));
}

#[test]
fn an_unplugged_sensor_gives_counted_faults_not_a_panic() {
    let elf = build_firmware(&fixtures::sensor_build());
    let run = run(
        &elf,
        RunOptions {
            without_sensor: true,
            ..RunOptions::default()
        },
    );
    run.assert_success();
    let capture = decode_capture(&run.uart);
    assert!(capture.skipped.is_empty());
    let mut faulted = BTreeSet::new();
    for (frame, _) in &capture.frames {
        match frame {
            Frame::Fault(f) => {
                assert_eq!(f.kind, mend_core::FaultKind::NoAcknowledge);
                assert!(faulted.insert(f.seq), "seq {} faulted twice", f.seq);
            }
            Frame::Reading(w) => panic!("a reading without a sensor: {w:?}"),
            Frame::Replayed(w) => panic!("a replayed reading without a resend: {w:?}"),
            Frame::Header(_)
            | Frame::Stats(_)
            | Frame::Ack(_)
            | Frame::Resend(_)
            | Frame::Heartbeat(_) => {}
        }
    }
    assert_eq!(faulted, (0..SAMPLES).collect());
    let (_, last) = *stats_frames(&capture).last().unwrap();
    assert_eq!(last.sensor_faults, SAMPLES);
    assert_eq!(last.counters.input, 0);
    assert_eq!(console_number(&run.console, "sensor faults: "), SAMPLES);
    // The host sees the same: a stream with no readings and 100 faults, books balanced.
    let replay = host_replay(&run.uart);
    assert!(replay.report.balanced());
    let [stream] = replay.report.streams.as_slice() else {
        panic!("one stream expected: {:?}", replay.report.streams)
    };
    assert_eq!((stream.received, stream.records), (0, 0));
    assert_eq!(stream.faults, u64::from(SAMPLES));
    let edge = stream.edge.as_ref().expect("the edge's stats arrived");
    assert_eq!(edge.sensor_faults, SAMPLES);
    assert_ram_budget(&run.console);
    assert_golden("no-sensor", &mask_memory_figures(&run.console));
}
