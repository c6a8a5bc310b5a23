use super::types::HeaderId;
use super::*;
use crate::counters::Counters;
use crate::reading::{Celsius, Reading};
use proptest::prelude::*;
use std::vec::Vec;

/// CRC-16/IBM-SDLC, bit by bit, independent of the `crc` crate.
fn crc_x25(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
    }
    crc ^ 0xFFFF
}

/// COBS by the book, independent of the `cobs` crate (frames here are < 254 bytes).
fn cobs_by_hand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in data.split(|b| *b == 0) {
        out.push(block.len() as u8 + 1);
        out.extend_from_slice(block);
    }
    out
}

/// Checks the exact bytes of `frame` against hand-written postcard bytes, and the round trip.
fn check_bytes(frame: Frame, postcard_bytes: &[u8]) {
    let mut body = postcard_bytes.to_vec();
    body.extend_from_slice(&crc_x25(postcard_bytes).to_le_bytes());
    let mut want = cobs_by_hand(&body);
    want.push(0);
    let got = frame.to_buf().unwrap();
    assert_eq!(got.as_slice(), want.as_slice(), "{frame:?}");
    let mut dec: Decoder = Decoder::new();
    let events: Vec<_> = dec.feed(&got).collect();
    assert_eq!(
        events,
        [DecodeEvent::Frame {
            frame,
            span: Span {
                start: 0,
                end: want.len() as u64
            }
        }]
    );
}

#[test]
fn crc_matches_the_catalogue_check_value() {
    assert_eq!(crc_x25(b"123456789"), 0x906E);
    assert_eq!(CRC.checksum(b"123456789"), 0x906E);
}

#[test]
fn exact_bytes_of_every_frame_kind() {
    // Reading: variant 1, seq 300 = [0xAC, 0x02], offset -1 zigzag = 1, delta -2.5 °C =
    // -640 zigzag 1 279 = [0xFF, 0x09].
    check_bytes(
        Frame::Reading(WireReading {
            seq: 300,
            offset_ms: -1,
            celsius_delta: -640,
        }),
        &[0x01, 0xAC, 0x02, 0x01, 0xFF, 0x09],
    );
    // Header, version 1: variant 0, version 1, sensor 7, session 2, period 1000 =
    // [0xE8, 0x07], clock Boot = 0, epoch 0, reference 52.5 °C = 13 440 zigzag 26 880 =
    // [0x80, 0xD2, 0x01].
    check_bytes(
        Frame::Header(Header {
            version: 1,
            ..Header::new(7, 2, 1000, ClockKind::Boot, 0)
        }),
        &[
            0x00, 0x01, 0x07, 0x02, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01,
        ],
    );
    // Header, version 2: the same fields with version 2, then base seq 300 = [0xAC, 0x02]
    // and reset reason Watchdog = 2.
    check_bytes(
        Frame::Header(
            Header::new(7, 2, 1000, ClockKind::Boot, 0)
                .with_base(300)
                .with_reset(ResetReason::Watchdog),
        ),
        &[
            0x00, 0x02, 0x07, 0x02, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01, 0xAC, 0x02, 0x02,
        ],
    );
    // Ack: variant 4, session 3, seq 200 = [0xC8, 0x01].
    check_bytes(
        Frame::Ack(Ack {
            session: 3,
            seq: 200,
        }),
        &[0x04, 0x03, 0xC8, 0x01],
    );
    // Resend: variant 5, session 3, from 10, to 12.
    check_bytes(
        Frame::Resend(Resend {
            session: 3,
            from: 10,
            to: 12,
        }),
        &[0x05, 0x03, 0x0A, 0x0C],
    );
    // Heartbeat: variant 6, session 3, seq 5.
    check_bytes(
        Frame::Heartbeat(Heartbeat { session: 3, seq: 5 }),
        &[0x06, 0x03, 0x05],
    );
    // Stats: variant 2, session 2, counters 10/8/1/1/0/0, doubtful 3, bad 0, faults 1,
    // dropped 0, frames 12.
    let counters = Counters {
        input: 10,
        emitted: 8,
        late: 1,
        duplicate: 1,
        rejected: 0,
        evicted: 0,
    };
    check_bytes(
        Frame::Stats(Stats {
            session: 2,
            counters,
            doubtful: 3,
            bad: 0,
            sensor_faults: 1,
            ring_dropped: 0,
            frames_sent: 12,
            log_dropped: 0,
        }),
        &[0x02, 0x02, 10, 8, 1, 1, 0, 0, 3, 0, 1, 0, 12],
    );
    // Fault: variant 3, seq 9, kind Timeout = 2.
    check_bytes(
        Frame::Fault(Fault {
            seq: 9,
            kind: FaultKind::Timeout,
        }),
        &[0x03, 0x09, 0x02],
    );
}

#[test]
fn a_log_drop_count_follows_the_stats_fields_only_when_it_is_not_0() {
    let s = Stats {
        session: 2,
        frames_sent: 12,
        ..Stats::default()
    };
    // Absent at 0: the bytes every stats frame had before the field existed.
    check_bytes(
        Frame::Stats(s),
        &[0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12],
    );
    // 300 frames dropped: one more varint, [0xAC, 0x02].
    check_bytes(
        Frame::Stats(Stats {
            log_dropped: 300,
            ..s
        }),
        &[0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0xAC, 0x02],
    );
    // An explicit 0 would be a second encoding of the same stats: refused, like any
    // other byte left over.
    for tail in [&[0x00][..], &[0x01, 0x01], &[0x80]] {
        let mut body = vec![0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12];
        body.extend_from_slice(tail);
        body.extend_from_slice(&crc_x25(&body).to_le_bytes());
        let mut wire = cobs_by_hand(&body);
        wire.push(0);
        assert_eq!(
            decoded_frames(&wire),
            [Err(SkipReason::Undecodable)],
            "tail {tail:?}"
        );
    }
}

#[test]
fn a_reading_within_32_degrees_of_the_reference_is_at_most_12_bytes() {
    for (seq, size) in [
        (5u32, 9usize),
        (127, 9),
        (128, 10),
        (16_383, 10),
        (2_097_151, 11),
        (268_435_455, 12),
    ] {
        let f = Frame::Reading(WireReading {
            seq,
            offset_ms: 0,
            celsius_delta: Celsius::from_num(2.5).to_bits(),
        });
        assert_eq!(f.to_buf().unwrap().len(), size, "seq {seq}");
    }
}

#[test]
fn a_version_2_reading_is_9_bytes_at_any_seq() {
    for seq in [0u32, 127, 128, 16_383, 2_097_151, 268_435_455, u32::MAX] {
        let mut enc = Encoder::new();
        let h = Header::new(1, 1, 1000, ClockKind::Boot, 0).with_base(seq);
        enc.to_buf(&Frame::Header(h)).unwrap();
        let w = WireReading {
            seq,
            offset_ms: 0,
            celsius_delta: Celsius::from_num(2.5).to_bits(),
        };
        assert_eq!(
            enc.to_buf(&Frame::Reading(w)).unwrap().len(),
            9,
            "seq {seq}"
        );
        assert_eq!(
            enc.to_buf(&Frame::Replayed(w)).unwrap().len(),
            9,
            "seq {seq}"
        );
    }
}

/// Encodes `frames` with one [`Encoder`]; returns the bytes of each frame.
fn encoded(frames: &[Frame]) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new();
    frames
        .iter()
        .map(|f| enc.to_buf(f).unwrap().to_vec())
        .collect()
}

fn decoded_frames(bytes: &[u8]) -> Vec<Result<Frame, SkipReason>> {
    events(bytes)
        .into_iter()
        .map(|e| match e {
            DecodeEvent::Frame { frame, .. } => Ok(frame),
            DecodeEvent::Skipped { reason, .. } => Err(reason),
        })
        .collect()
}

fn reading(seq: u32) -> WireReading {
    WireReading {
        seq,
        offset_ms: 0,
        celsius_delta: seq as i32,
    }
}

#[test]
fn version_1_and_version_2_frames_mix_in_one_stream() {
    // A version-1 capture as version 1 wrote it: header, then readings with their whole
    // seq (300 = [0xAC, 0x02]); hand-written bytes.
    let v1 = Header {
        version: 1,
        ..Header::new(7, 2, 1000, ClockKind::Boot, 0)
    };
    let mut log = Vec::new();
    for body in [
        &[
            0x00, 0x01, 0x07, 0x02, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01,
        ][..],
        &[0x01, 0xAC, 0x02, 0x00, 0x00][..],
    ] {
        let mut full = body.to_vec();
        full.extend_from_slice(&crc_x25(body).to_le_bytes());
        log.extend(cobs_by_hand(&full));
        log.push(0);
    }
    let v2 = Header::new(7, 3, 1000, ClockKind::Boot, 0).with_base(5);
    let w300 = WireReading {
        seq: 300,
        offset_ms: 0,
        celsius_delta: 0,
    };
    for f in encoded(&[
        Frame::Header(v2),
        Frame::Reading(reading(5)),
        Frame::Replayed(reading(6)),
        Frame::Header(v1),
        Frame::Reading(w300),
    ]) {
        log.extend(f);
    }
    // A version-2 reading cannot follow a version-1 header.
    log.extend(encoded(&[Frame::Header(v2), Frame::Reading(reading(5))])[1].clone());
    assert_eq!(
        decoded_frames(&log),
        [
            Ok(Frame::Header(v1)),
            Ok(Frame::Reading(w300)),
            Ok(Frame::Header(v2)),
            Ok(Frame::Reading(reading(5))),
            Ok(Frame::Replayed(reading(6))),
            Ok(Frame::Header(v1)),
            Ok(Frame::Reading(w300)),
            Err(SkipReason::NoHeader),
        ]
    );
}

#[test]
fn a_reading_is_never_placed_under_a_lost_header() {
    let s1 = Header::new(7, 1, 1000, ClockKind::Boot, 0);
    let s2 = Header::new(7, 2, 1000, ClockKind::Boot, 0).with_base(10);
    let f = encoded(&[
        Frame::Header(s1),
        Frame::Reading(reading(0)),
        Frame::Header(s2),
        Frame::Reading(reading(10)),
        Frame::Reading(reading(11)),
    ]);
    // The header of session 2 is lost: its readings do not become readings of session 1.
    let log: Vec<u8> = [&f[0][..], &f[1], &f[3], &f[4]].concat();
    assert_eq!(
        decoded_frames(&log),
        [
            Ok(Frame::Header(s1)),
            Ok(Frame::Reading(reading(0))),
            Err(SkipReason::BadCrc),
            Err(SkipReason::BadCrc),
        ]
    );
}

#[test]
fn a_lost_repeated_header_loses_nothing() {
    let h = Header::new(7, 1, 1000, ClockKind::Boot, 0);
    let mut frames = vec![Frame::Header(h)];
    frames.extend((0..60).map(|s| Frame::Reading(reading(s))));
    frames.push(Frame::Header(h.with_base(60)));
    frames.extend((60..120).map(|s| Frame::Reading(reading(s))));
    let f = encoded(&frames);
    // Every other reading and the repeated header are lost.
    let log: Vec<u8> = frames
        .iter()
        .zip(&f)
        .filter(|(frame, _)| match frame {
            Frame::Header(h) => h.base_seq == 0,
            Frame::Reading(w) => w.seq % 2 == 0,
            _ => true,
        })
        .flat_map(|(_, b)| b.clone())
        .collect();
    let seqs: Vec<u32> = decoded_frames(&log)
        .into_iter()
        .filter_map(|f| match f.unwrap() {
            Frame::Reading(w) => Some(w.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, (0..120).step_by(2).collect::<Vec<_>>());
}

#[test]
fn the_encoder_refuses_a_reading_no_decoder_could_place() {
    let mut enc = Encoder::new();
    let w = reading(64);
    assert_eq!(
        enc.to_buf(&Frame::Replayed(w)),
        Err(EncodeError::NeedsHeader)
    );
    // Without a version-2 header, a reading is written whole (version 1).
    assert_eq!(enc.to_buf(&Frame::Reading(w)), Frame::Reading(w).to_buf());
    enc.to_buf(&Frame::Header(Header::new(1, 1, 1000, ClockKind::Boot, 0)))
        .unwrap();
    assert_eq!(
        enc.to_buf(&Frame::Reading(w)),
        Err(EncodeError::NeedsHeader)
    );
    assert!(enc.to_buf(&Frame::Reading(reading(63))).is_ok());
    assert!(enc.to_buf(&Frame::Reading(reading(0))).is_ok(), "64 behind");
    let v1 = Header {
        base_seq: 3,
        version: 1,
        ..Header::new(1, 1, 1000, ClockKind::Boot, 0)
    };
    assert_eq!(Frame::Header(v1).to_buf(), Err(EncodeError::UnknownVersion));
}

proptest! {
    /// Whatever the seqs (in order, late, jumping, wrapping) and whichever frames are
    /// lost, every reading decoded is one that was encoded, with its whole seq; and
    /// without losses every one is decoded.
    #[test]
    fn version_2_readings_are_placed_exactly_or_not_at_all(
        steps in proptest::collection::vec((-70i64..200, any::<bool>()), 1..300),
        start in prop_oneof![0u32..10, u32::MAX - 300..=u32::MAX],
    ) {
        let h = Header::new(3, 4, 1000, ClockKind::Boot, 0).with_base(start);
        let mut enc = Encoder::new();
        let mut all = Vec::new();
        let mut sent = std::collections::BTreeSet::new();
        let mut seq = start;
        all.push((Frame::Header(h), enc.to_buf(&Frame::Header(h)).unwrap()));
        for (step, replayed) in steps {
            seq = seq.wrapping_add(if step > 100 { 1 } else { step as u32 });
            if !enc.places(seq) {
                let f = Frame::Header(h.with_base(seq));
                all.push((f, enc.to_buf(&f).unwrap()));
            }
            let w = reading(seq);
            let f = if replayed { Frame::Replayed(w) } else { Frame::Reading(w) };
            all.push((f, enc.to_buf(&f).unwrap()));
            sent.insert(seq);
        }
        let whole: Vec<u8> = all.iter().flat_map(|(_, b)| b.to_vec()).collect();
        let want: Vec<Frame> = all.iter().map(|(f, _)| *f).collect();
        let got: Vec<Frame> = decoded_frames(&whole).into_iter().map(|f| f.unwrap()).collect();
        prop_assert_eq!(got, want);
        // Lose about a third of the frames, headers included.
        let lossy: Vec<u8> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| (i * 7919) % 3 != 0 || *i == 0)
            .flat_map(|(_, (_, b))| b.to_vec())
            .collect();
        for f in decoded_frames(&lossy).into_iter().flatten() {
            if let Frame::Reading(w) | Frame::Replayed(w) = f {
                prop_assert!(sent.contains(&w.seq), "seq {} was never sent", w.seq);
                prop_assert_eq!(w, reading(w.seq));
            }
        }
    }
}

#[test]
fn largest_frames_fit() {
    let c = Counters {
        input: u32::MAX,
        emitted: u32::MAX,
        late: u32::MAX,
        duplicate: u32::MAX,
        rejected: u32::MAX,
        evicted: u32::MAX,
    };
    let s = Stats {
        session: u32::MAX,
        counters: c,
        doubtful: u32::MAX,
        bad: u32::MAX,
        sensor_faults: u32::MAX,
        ring_dropped: u32::MAX,
        frames_sent: u32::MAX,
        log_dropped: u32::MAX,
    };
    assert!(Frame::Stats(s).to_buf().is_ok());
    let h = Header::new(u32::MAX, u32::MAX, u32::MAX, ClockKind::Unix, u64::MAX)
        .with_reference(Celsius::from_bits(i32::MIN))
        .with_base(u32::MAX)
        .with_reset(ResetReason::Software);
    assert!(Frame::Header(h).to_buf().is_ok());
    let r = Frame::Resend(Resend {
        session: u32::MAX,
        from: u32::MAX,
        to: u32::MAX,
    });
    assert!(r.to_buf().is_ok());
}

proptest! {
    /// The in-place encoder writes exactly the bytes of postcard + CRC + COBS by the
    /// book, for every kind of frame, whatever the slot held before.
    #[test]
    fn encode_into_matches_the_reference(frame in arb_frame(), junk in any::<u8>()) {
        let want = reference_bytes(&frame);
        let mut slot = [junk; MAX_FRAME];
        let m = frame.encode_into(&mut slot).unwrap();
        prop_assert_eq!(&slot[..m], want.as_slice());
        let mut out = [junk; MAX_FRAME];
        let n = encode(&frame, &mut out).unwrap();
        prop_assert_eq!(&out[..n], want.as_slice());
    }

    /// The wire form a node computes without the checks is the checked one, whenever
    /// the checked one exists.
    #[test]
    fn unchecked_wire_form_matches_the_checked_one(
        epoch in prop_oneof![any::<u64>(), u64::MAX - 5_000..=u64::MAX, 0u64..5_000],
        seq in any::<u32>(),
        period in 1u32..=u32::MAX,
        jitter in any::<i64>(),
        bits in any::<i32>(),
    ) {
        let h = Header::new(1, 1, period, ClockKind::Unix, epoch);
        let scheduled = i128::from(epoch) + i128::from(seq) * i128::from(period);
        let ts = (scheduled + i128::from(jitter % (1 << 33))).clamp(0, i128::from(u64::MAX)) as u64;
        let r = Reading::new(1, 1, seq, ts, Celsius::from_bits(bits));
        let exact = i32::try_from(i128::from(ts) - scheduled).map_err(|_| WireError::OffsetOutOfRange);
        prop_assert_eq!(h.to_wire(&r).map(|w| w.offset_ms), exact);
        if let Ok(w) = h.to_wire(&r) {
            prop_assert_eq!(h.wire_checked_before(&r), w);
        }
    }
}

#[test]
fn offsets_at_the_edges_of_i32() {
    let h = Header::new(1, 1, 1000, ClockKind::Boot, 1 << 40);
    for (delta, ok) in [
        (i64::from(i32::MAX), true),
        (i64::from(i32::MAX) + 1, false),
        (i64::from(i32::MIN), true),
        (i64::from(i32::MIN) - 1, false),
    ] {
        let ts = ((1i64 << 40) + 5_000 + delta) as u64;
        let got = h.offset_ms(5, ts);
        assert_eq!(got.is_ok(), ok, "{delta}");
        if ok {
            assert_eq!(i64::from(got.unwrap()), delta);
        }
    }
}

fn events(bytes: &[u8]) -> Vec<DecodeEvent> {
    let mut dec: Decoder = Decoder::new();
    let mut out: Vec<_> = dec.feed(bytes).collect();
    out.extend(dec.finish());
    out
}

#[test]
fn every_kind_of_damage_is_reported_with_its_span() {
    let good = Frame::Reading(WireReading {
        seq: 5,
        offset_ms: 0,
        celsius_delta: 160,
    })
    .to_buf()
    .unwrap();
    let mut flipped = good.clone();
    flipped[5] ^= 0x10;
    let v2 = {
        // Hand-built, version 3: the encoder writes only versions it knows.
        let body = [
            0x00, 0x03, 0x01, 0x01, 0xE8, 0x07, 0x00, 0x00, 0x80, 0xD2, 0x01, 0, 0,
        ];
        let mut full = body.to_vec();
        full.extend_from_slice(&crc_x25(&body).to_le_bytes());
        let mut b = cobs_by_hand(&full);
        b.push(0);
        b
    };
    let mut log = Vec::new();
    log.extend_from_slice(&flipped); // 0..9 bad crc
    log.push(0); // 9..10 empty
    log.extend_from_slice(&v2); // unknown version
    let v2_end = log.len() as u64;
    log.extend_from_slice(&[0x55; MAX_FRAME + 20]); // oversized garbage
    log.push(0);
    let garbage_end = log.len() as u64;
    log.extend_from_slice(&good);
    let good_end = log.len() as u64;
    log.extend_from_slice(&good[..4]); // torn
    let ev = events(&log);
    let want = [
        DecodeEvent::Skipped {
            span: Span { start: 0, end: 9 },
            reason: SkipReason::BadCrc,
        },
        DecodeEvent::Skipped {
            span: Span { start: 9, end: 10 },
            reason: SkipReason::Empty,
        },
        DecodeEvent::Skipped {
            span: Span {
                start: 10,
                end: v2_end,
            },
            reason: SkipReason::UnknownVersion,
        },
        DecodeEvent::Skipped {
            span: Span {
                start: v2_end,
                end: garbage_end,
            },
            reason: SkipReason::Oversized,
        },
        DecodeEvent::Frame {
            frame: Frame::Reading(WireReading {
                seq: 5,
                offset_ms: 0,
                celsius_delta: 160,
            }),
            span: Span {
                start: garbage_end,
                end: good_end,
            },
        },
        DecodeEvent::Skipped {
            span: Span {
                start: good_end,
                end: good_end + 4,
            },
            reason: SkipReason::Truncated,
        },
    ];
    assert_eq!(ev, want);
}

#[test]
fn crc_valid_but_meaningless_bytes_are_undecodable() {
    for body in [
        &[0x09u8][..],
        &[0x01, 0x05][..],
        &[0x01, 0x05, 0x00, 0x00, 0x00][..],
    ] {
        let mut full = body.to_vec();
        full.extend_from_slice(&crc_x25(body).to_le_bytes());
        let mut b = cobs_by_hand(&full);
        b.push(0);
        assert!(
            matches!(
                events(&b)[..],
                [DecodeEvent::Skipped {
                    reason: SkipReason::Undecodable,
                    ..
                }]
            ),
            "{body:?}"
        );
    }
}

#[test]
fn wire_errors() {
    let h = Header::new(1, 1, 1000, ClockKind::Boot, 0);
    let r = Reading::new(1, 1, 0, u64::MAX, Celsius::ZERO);
    assert_eq!(h.to_wire(&r), Err(WireError::OffsetOutOfRange));
    assert_eq!(
        h.to_wire(&Reading { session: 2, ..r }),
        Err(WireError::WrongSession)
    );
    let early = WireReading {
        seq: 0,
        offset_ms: -1,
        celsius_delta: 0,
    };
    assert_eq!(h.from_wire(&early), Err(WireError::TimestampOutOfRange));
    // Past u64::MAX before the offset, back inside after it.
    let top = Header::new(1, 1, 20, ClockKind::Unix, u64::MAX - 10);
    let back = WireReading {
        seq: 1,
        offset_ms: -15,
        celsius_delta: 0,
    };
    assert_eq!(top.from_wire(&back).map(|r| r.timestamp), Ok(u64::MAX - 5));
}

proptest! {
    /// The timestamp of a wire reading is exactly `epoch + seq × period + offset`
    /// whenever that is a u64, and an error otherwise, at the ends of the range too.
    #[test]
    fn from_wire_is_exact_over_the_whole_range(
        epoch in prop_oneof![any::<u64>(), u64::MAX - 5_000..=u64::MAX, 0u64..5_000],
        seq in any::<u32>(),
        period in 1u32..=u32::MAX,
        offset_ms in any::<i32>(),
    ) {
        let h = Header::new(1, 1, period, ClockKind::Unix, epoch);
        let w = WireReading { seq, offset_ms, celsius_delta: 0 };
        let exact = i128::from(epoch) + i128::from(seq) * i128::from(period) + i128::from(offset_ms);
        let want = u64::try_from(exact).map_err(|_| WireError::TimestampOutOfRange);
        prop_assert_eq!(h.from_wire(&w).map(|r| r.timestamp), want);
    }
}

/// A frame's bytes from postcard's own serialisation of its tag and fields, the bitwise
/// CRC and COBS by the book: independent of the encoder's hand-written varints.
fn reference_bytes(frame: &Frame) -> Vec<u8> {
    let mut raw = [0u8; 128];
    let body = match frame {
        Frame::Header(h) if h.version == 1 => postcard::to_slice(&(0u8, HeaderId::of(h)), &mut raw),
        Frame::Header(h) => postcard::to_slice(&(0u8, *h), &mut raw),
        Frame::Reading(w) => postcard::to_slice(&(1u8, *w), &mut raw),
        Frame::Stats(x) => postcard::to_slice(&(2u8, *x), &mut raw),
        Frame::Fault(x) => postcard::to_slice(&(3u8, *x), &mut raw),
        Frame::Ack(x) => postcard::to_slice(&(4u8, *x), &mut raw),
        Frame::Resend(x) => postcard::to_slice(&(5u8, *x), &mut raw),
        Frame::Heartbeat(x) => postcard::to_slice(&(6u8, *x), &mut raw),
        Frame::Replayed(_) => unreachable!("needs a header"),
    }
    .unwrap()
    .to_vec();
    let mut body = body;
    if let Frame::Stats(x) = frame {
        // The log's drop count travels only when it is not 0: drop its one-byte varint.
        if x.log_dropped == 0 {
            assert_eq!(body.pop(), Some(0));
        }
    }
    let mut full = body.clone();
    full.extend_from_slice(&crc_x25(&body).to_le_bytes());
    let mut out = cobs_by_hand(&full);
    out.push(0);
    out
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            0u8..4
        )
            .prop_map(|(s, x, p, e, b, why)| {
                let reset = [
                    ResetReason::Unknown,
                    ResetReason::PowerOn,
                    ResetReason::Watchdog,
                    ResetReason::Software,
                ][usize::from(why)];
                Frame::Header(
                    Header::new(s, x, p, ClockKind::Boot, e)
                        .with_base(b)
                        .with_reset(reset),
                )
            }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(s, x, p)| Frame::Header(Header {
            version: 1,
            ..Header::new(s, x, p, ClockKind::Unix, 1 << 40)
        })),
        (any::<u32>(), any::<u32>()).prop_map(|(session, seq)| Frame::Ack(Ack { session, seq })),
        (any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(session, from, to)| Frame::Resend(Resend { session, from, to })),
        (any::<u32>(), any::<u32>())
            .prop_map(|(session, seq)| Frame::Heartbeat(Heartbeat { session, seq })),
        (any::<u32>(), any::<i32>(), any::<i32>()).prop_map(|(seq, offset_ms, celsius_delta)| {
            Frame::Reading(WireReading {
                seq,
                offset_ms,
                celsius_delta,
            })
        }),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u64>())
            .prop_map(|(s, x, p, e)| Frame::Header(Header::new(s, x, p, ClockKind::Unix, e))),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(session, input, log_dropped)| {
            Frame::Stats(Stats {
                session,
                counters: Counters {
                    input,
                    ..Counters::default()
                },
                log_dropped: if log_dropped % 3 == 0 { 0 } else { log_dropped },
                ..Stats::default()
            })
        }),
        any::<u32>().prop_map(|seq| Frame::Fault(Fault {
            seq,
            kind: FaultKind::Bus
        })),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000), split in 0usize..2000) {
        let mut dec: Decoder = Decoder::new();
        let split = split.min(bytes.len());
        let mut covered = 0u64;
        let mut all: Vec<DecodeEvent> = dec.feed(&bytes[..split]).collect();
        all.extend(dec.feed(&bytes[split..]).collect::<Vec<_>>());
        all.extend(dec.finish());
        // Every byte is accounted for exactly once, in order.
        for e in &all {
            let span = match e { DecodeEvent::Frame { span, .. } | DecodeEvent::Skipped { span, .. } => *span };
            prop_assert_eq!(span.start, covered);
            covered = span.end;
        }
        prop_assert_eq!(covered, bytes.len() as u64);
    }

    /// Every intact frame is recovered, whatever garbage lies between frames.
    #[test]
    fn recovers_every_intact_frame(
        frames in proptest::collection::vec((arb_frame(), proptest::collection::vec(any::<u8>(), 0..40)), 0..40),
    ) {
        let mut log = Vec::new();
        let mut want = Vec::new();
        for (f, garbage) in &frames {
            log.extend_from_slice(garbage);
            // Any garbage ends at a delimiter before the next frame starts: a damaged frame
            // can hide the delimiter of the frame before it, never the frame itself.
            log.push(0);
            log.extend_from_slice(&f.to_buf().unwrap());
            want.push(*f);
        }
        let got: Vec<Frame> = events(&log).into_iter().filter_map(|e| match e {
            DecodeEvent::Frame { frame, .. } => Some(frame),
            DecodeEvent::Skipped { .. } => None,
        }).collect();
        // Garbage may, very rarely, itself be a valid frame: the intact frames must appear
        // in order as a subsequence.
        let mut it = got.iter();
        for f in &want {
            prop_assert!(it.any(|g| g == f), "lost {:?}", f);
        }
    }
}
