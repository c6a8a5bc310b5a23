//! The store-and-forward node in QEMU, seen from the gateway's side of its UART: frames are
//! kept in flash until acknowledged, resent on request and after a reset, the boot counter
//! numbers every power-up anew (across board resets and power cuts), and a full log gives way
//! oldest-first and says so in its stats frames.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mend_core::{Ack, Frame, Heartbeat, Resend, ResetReason, Stats, WireReading};
use mend_tests::fixtures::{self, by_session, SMALL_LOG_SAMPLES, STORE_SAMPLES};
use mend_tests::{
    assert_flash_within, assert_ram_within, build_firmware, Capture, StoreNode, STORE_FLASH_BUDGET,
    STORE_RAM_BUDGET,
};

/// A fresh directory for one test's flash file and QEMU sockets (short: socket paths are
/// limited to about 100 bytes).
fn flash_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mend-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the flash directory");
    dir
}

/// The sessions of the headers in a capture, in order of first appearance, each once: the
/// power-ups' own, and those of earlier sessions whose readings are replayed.
fn sessions(capture: &Capture) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for (f, _) in &capture.frames {
        if let Frame::Header(h) = f {
            if out.last() != Some(&h.session) && !out.contains(&h.session) {
                out.push(h.session);
            }
        }
    }
    out
}

/// The last stats frame of `session` after `samples` samples, if one arrived.
fn final_stats(capture: &Capture, session: u32, samples: u32) -> Option<Stats> {
    capture.frames.iter().rev().find_map(|(f, _)| match f {
        Frame::Stats(s)
            if s.session == session && s.counters.input + s.sensor_faults == samples =>
        {
            Some(*s)
        }
        _ => None,
    })
}

/// The frames from the first header of `session` on.
fn from_session(capture: &Capture, session: u32) -> Vec<(Option<u32>, Frame)> {
    let all = by_session(capture);
    let start = all
        .iter()
        .position(|(s, f)| *s == Some(session) && matches!(f, Frame::Header(_)))
        .unwrap_or(all.len());
    all[start..].to_vec()
}

/// Readings of `session` as first sent (not replayed), by seq.
fn live_readings(frames: &[(Option<u32>, Frame)], session: u32) -> BTreeMap<u32, WireReading> {
    frames
        .iter()
        .filter_map(|(s, f)| match f {
            Frame::Reading(w) if *s == Some(session) => Some((w.seq, *w)),
            _ => None,
        })
        .collect()
}

/// Replayed readings under a header of `session`, in the order they came.
fn replayed(frames: &[(Option<u32>, Frame)], session: u32) -> Vec<WireReading> {
    frames
        .iter()
        .filter_map(|(s, f)| match f {
            Frame::Replayed(w) if *s == Some(session) => Some(*w),
            _ => None,
        })
        .collect()
}

/// Every replayed reading, whatever its session.
fn all_replayed(frames: &[(Option<u32>, Frame)]) -> usize {
    frames
        .iter()
        .filter(|(_, f)| matches!(f, Frame::Replayed(_)))
        .count()
}

fn heartbeats(capture: &Capture) -> usize {
    capture
        .frames
        .iter()
        .filter(|(f, _)| matches!(f, Frame::Heartbeat(_)))
        .count()
}

#[test]
fn an_ack_erases_and_a_reset_resends_only_what_was_not_acknowledged() {
    let elf = build_firmware(&fixtures::store_build());
    let flash = assert_flash_within(&elf, STORE_FLASH_BUDGET);
    eprintln!(
        "store flash: {flash} bytes, {} left of {STORE_FLASH_BUDGET}",
        STORE_FLASH_BUDGET - flash
    );
    let dir = flash_dir("ack");
    let mut node = StoreNode::boot(&elf, &dir, 1);
    let capture = node.wait_until("the first session's samples", |c| {
        sessions(c)
            .first()
            .is_some_and(|&s| final_stats(c, s, STORE_SAMPLES).is_some())
    });
    let s1 = sessions(&capture)[0];
    let first = from_session(&capture, s1);
    let live1 = live_readings(&first, s1);
    assert_eq!(
        live1.keys().copied().collect::<Vec<_>>(),
        (0..STORE_SAMPLES).collect::<Vec<_>>(),
        "every sample went out"
    );
    assert_eq!(
        all_replayed(&first),
        0,
        "a fresh flash has nothing to replay"
    );
    match capture.frames.first() {
        Some((Frame::Header(h), _)) => assert_eq!(
            h.reset,
            ResetReason::Unknown,
            "QEMU's RESC reads 0, which says nothing"
        ),
        other => panic!("the session header comes first, not {other:?}"),
    }

    // The gateway stored 0..=9.
    node.send(&Frame::Ack(Ack {
        session: s1,
        seq: 9,
    }));
    node.wait_for_reports(2);
    node.reset();
    let capture = node.wait_until("the second session's samples", |c| {
        sessions(c)
            .get(1)
            .is_some_and(|&s| final_stats(c, s, STORE_SAMPLES).is_some())
    });
    let s2 = sessions(&capture)[1];
    assert_eq!(s2, s1 + 1, "the boot counter moved on by one");
    let second = from_session(&capture, s2);
    let again = replayed(&second, s1);
    assert_eq!(
        again.iter().map(|w| w.seq).collect::<Vec<_>>(),
        (10..STORE_SAMPLES).collect::<Vec<_>>(),
        "exactly the unacknowledged readings, under their own session"
    );
    for w in &again {
        assert_eq!(Some(w), live1.get(&w.seq), "seq {} replayed as sent", w.seq);
    }
    assert_eq!(all_replayed(&second), again.len());
    assert_eq!(
        live_readings(&second, s2).len(),
        STORE_SAMPLES as usize,
        "the second session samples after its replay"
    );

    // Everything of the first session acknowledged: the next power-up replays only the
    // second session.
    node.send(&Frame::Ack(Ack {
        session: s1,
        seq: 19,
    }));
    node.wait_for_reports(4);
    node.reset();
    let capture = node.wait_until("the third session's samples", |c| {
        sessions(c)
            .get(2)
            .is_some_and(|&s| final_stats(c, s, STORE_SAMPLES).is_some())
    });
    let s3 = sessions(&capture)[2];
    let third = from_session(&capture, s3);
    assert_eq!(replayed(&third, s1), [], "acknowledged readings are gone");
    assert_eq!(
        replayed(&third, s2)
            .iter()
            .map(|w| w.seq)
            .collect::<Vec<_>>(),
        (0..STORE_SAMPLES).collect::<Vec<_>>()
    );
    let console = node.power_cut();
    // QEMU does not model the reset cause: RESC reads 0 after every kind of reset.
    assert_eq!(
        console.matches("reset cause: ").count(),
        3,
        "three power-ups: {console}"
    );
    assert_eq!(console.matches("reset cause: 0\n").count(), 3, "{console}");
    let (ram, peak) = assert_ram_within(&console, STORE_RAM_BUDGET);
    eprintln!(
        "store RAM: {ram} static + {peak} stack = {} bytes, {} left of {STORE_RAM_BUDGET}",
        ram + peak,
        STORE_RAM_BUDGET - ram - peak
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resend_returns_exactly_the_range_marked_replayed() {
    let elf = build_firmware(&fixtures::store_build());
    let dir = flash_dir("resend");
    let mut node = StoreNode::boot(&elf, &dir, 1);
    let capture = node.wait_until("the session's samples", |c| {
        sessions(c)
            .first()
            .is_some_and(|&s| final_stats(c, s, STORE_SAMPLES).is_some())
    });
    let s1 = sessions(&capture)[0];
    let live = live_readings(&by_session(&capture), s1);

    // A range the log does not hold, and a session it never had: nothing comes back. The
    // heartbeats after the node's report show that everything it sent meanwhile is here.
    node.send(&Frame::Resend(Resend {
        session: s1,
        from: 100,
        to: 110,
    }));
    node.send(&Frame::Resend(Resend {
        session: s1 + 7,
        from: 0,
        to: 5,
    }));
    node.wait_for_reports(3);
    let beats = heartbeats(&decode_now(&node));
    let quiet = node.wait_until("a heartbeat after the resends", |c| heartbeats(c) > beats);
    assert_eq!(all_replayed(&by_session(&quiet)), 0);
    // Heartbeats fill the periods in which nothing else went out. While the node samples,
    // most periods send a reading; a heartbeat fills one only when the edge still held its
    // readings back (its lateness is two periods, so at the start, and whenever the clock's
    // jitter makes a reading wait a period longer). After the closing stats, every period has
    // one, with the next seq.
    let closing = quiet
        .frames
        .iter()
        .position(|(f, _)| matches!(f, Frame::Stats(s) if s.counters.input == STORE_SAMPLES))
        .expect("the closing stats frame");
    let beats: Vec<(usize, Heartbeat)> = quiet
        .frames
        .iter()
        .enumerate()
        .filter_map(|(i, (f, _))| match f {
            Frame::Heartbeat(h) => Some((i, *h)),
            _ => None,
        })
        .collect();
    let (sampling, idle): (Vec<_>, Vec<_>) = beats.iter().partition(|(i, _)| *i < closing);
    assert!(
        sampling
            .iter()
            .all(|(_, h)| h.session == s1 && h.seq < STORE_SAMPLES)
            && sampling.len() < STORE_SAMPLES as usize / 2,
        "heartbeats while sampling: {sampling:?}"
    );
    assert!(!idle.is_empty());
    for (_, h) in &idle {
        assert_eq!(
            *h,
            Heartbeat {
                session: s1,
                seq: STORE_SAMPLES
            }
        );
    }
    // Nothing but heartbeats while the node idled (the resends above found nothing).
    assert!(
        quiet.frames[closing + 1..]
            .iter()
            .all(|(f, _)| matches!(f, Frame::Heartbeat(_) | Frame::Header(_))),
        "{:?}",
        &quiet.frames[closing + 1..]
    );

    node.send(&Frame::Resend(Resend {
        session: s1,
        from: 5,
        to: 8,
    }));
    let capture = node.wait_until("the replayed range and the header after it", |c| {
        let frames = by_session(c);
        let n = replayed(&frames, s1).len();
        n >= 4
            && frames
                .iter()
                .rev()
                .take_while(|(_, f)| !matches!(f, Frame::Replayed(_)))
                .any(|(_, f)| matches!(f, Frame::Header(h) if h.session == s1))
    });
    let frames = by_session(&capture);
    let again = replayed(&frames, s1);
    assert_eq!(
        again.iter().map(|w| w.seq).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    for w in &again {
        assert_eq!(Some(w), live.get(&w.seq), "seq {} replayed as sent", w.seq);
    }
    assert_eq!(all_replayed(&frames), 4);
    // A resend takes nothing out of the log: the next power-up still replays it all.
    node.reset();
    let capture = node.wait_until("the next session's replay", |c| {
        let s = sessions(c);
        s.get(1)
            .is_some_and(|&s2| replayed(&from_session(c, s2), s1).len() == STORE_SAMPLES as usize)
    });
    assert_eq!(sessions(&capture)[1], s1 + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn decode_now(node: &StoreNode) -> Capture {
    mend_tests::decode_capture(&node.uplink())
}

#[test]
fn every_power_up_has_a_new_session_across_resets_and_power_cuts() {
    let elf = build_firmware(&fixtures::store_build());
    let dir = flash_dir("boots");
    let mut seen: Vec<u32> = Vec::new();

    let mut node = StoreNode::boot(&elf, &dir, 1);
    let capture = node.wait_until("a header", |c| !sessions(c).is_empty());
    seen.extend(sessions(&capture));
    node.reset();
    let capture = node.wait_until("the header after the reset", |c| sessions(c).len() >= 2);
    seen = sessions(&capture);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1], seen[0] + 1, "system_reset moved the counter on");
    let console = node.power_cut();
    assert!(
        console.contains(&format!("session: {}\n", seen[1])),
        "{console}"
    );

    // The next power-up on the same flash file.
    let node = StoreNode::boot(&elf, &dir, 2);
    let capture = node.wait_until("a header after the power cut", |c| !sessions(c).is_empty());
    let s3 = sessions(&capture)[0];
    assert_eq!(s3, seen[1] + 1, "a power cut keeps the counter");
    seen.push(s3);
    node.power_cut();

    // Power cuts at other moments, while the node boots, writes its counter and replays:
    // whatever each power-up managed to send carries a session no earlier one used.
    for (boot, delay_ms) in [(3, 0u64), (4, 3), (5, 10), (6, 30), (7, 80), (8, 200)] {
        let node = StoreNode::boot(&elf, &dir, boot);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let uplink = node.uplink();
        node.power_cut();
        // The power-up's own header comes first; headers of earlier sessions may follow it,
        // over the readings it replays.
        if let Some(&s) = sessions(&mend_tests::decode_capture(&uplink)).first() {
            assert!(
                s > *seen.last().unwrap_or(&0),
                "session {s} after {seen:?} (power-up {boot})"
            );
            seen.push(s);
        }
    }
    let node = StoreNode::boot(&elf, &dir, 9);
    let capture = node.wait_until("a header after the cuts", |c| !sessions(c).is_empty());
    let last = sessions(&capture)[0];
    assert!(last > *seen.last().unwrap_or(&0), "{last} after {seen:?}");
    node.power_cut();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_flash_file_refuses_what_nor_flash_cannot_do() {
    let elf = build_firmware(&fixtures::flash_selftest_build());
    let dir = flash_dir("nor");
    let node = StoreNode::boot(&elf, &dir, 1);
    let (success, console) = node.wait_for_exit();
    assert!(success, "{console}");
    assert!(console.contains("flash self-test: ok\n"), "{console}");
    // The self-test used a file of its own, two pages, and never touched the node's flash.
    assert_eq!(
        std::fs::metadata(dir.join("mend-selftest.flash"))
            .map(|m| m.len())
            .ok(),
        Some(2048)
    );
    assert!(!dir.join("mend-node.flash").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_log_drops_its_oldest_frames_and_counts_them() {
    let elf = build_firmware(&fixtures::small_log_build());
    let flash = assert_flash_within(&elf, STORE_FLASH_BUDGET);
    eprintln!("store (sim-source) flash: {flash} bytes");
    let dir = flash_dir("full");
    let mut node = StoreNode::boot(&elf, &dir, 1);
    let capture = node.wait_until("the first session's samples", |c| {
        sessions(c)
            .first()
            .is_some_and(|&s| final_stats(c, s, SMALL_LOG_SAMPLES).is_some())
    });
    let s1 = sessions(&capture)[0];
    let first = from_session(&capture, s1);
    // Every reading and fault frame the node sent, in order: what went into the log.
    let sent: Vec<Frame> = first
        .iter()
        .filter(|(s, f)| *s == Some(s1) && matches!(f, Frame::Reading(_) | Frame::Fault(_)))
        .map(|(_, f)| *f)
        .collect();
    let stats = final_stats(&capture, s1, SMALL_LOG_SAMPLES).expect("waited for it");
    let dropped = stats.log_dropped as usize;
    assert!(
        dropped > 0 && dropped < sent.len(),
        "{} frames into a two-page log: {dropped} dropped",
        sent.len()
    );
    // The count never went down, and was 0 before the log first filled.
    let counts: Vec<u32> = first
        .iter()
        .filter_map(|(_, f)| match f {
            Frame::Stats(s) if s.session == s1 => Some(s.log_dropped),
            _ => None,
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(counts.first(), Some(&0), "{counts:?}");

    // The node prints its report after the closing stats frame: a reset before it is in
    // the console would cut it off (it did, under load), and its count is checked below.
    node.wait_for_reports(1);
    // No acknowledgement came: after a reset the node replays what its log still holds.
    node.reset();
    let capture = node.wait_until("the second session's samples", |c| {
        sessions(c)
            .get(1)
            .is_some_and(|&s| final_stats(c, s, SMALL_LOG_SAMPLES).is_some())
    });
    let s2 = sessions(&capture)[1];
    let second = from_session(&capture, s2);
    // The replay of the first session: everything up to the header of the second session
    // that follows it.
    let kept: Vec<Frame> = second
        .iter()
        .skip(1)
        .take_while(|(s, _)| *s == Some(s1))
        .filter_map(|(_, f)| match f {
            Frame::Replayed(w) => Some(Frame::Reading(*w)),
            Frame::Fault(x) => Some(Frame::Fault(*x)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kept.as_slice(),
        &sent[dropped..],
        "the oldest {dropped} frames gave way; the rest are intact, in order"
    );
    let console = node.power_cut();
    assert!(
        console.contains(&format!("log dropped: {dropped}\n")),
        "{console}"
    );
    let (ram, peak) = assert_ram_within(&console, STORE_RAM_BUDGET);
    eprintln!("store (sim-source) RAM: {ram} static + {peak} stack");
    let _ = std::fs::remove_dir_all(&dir);
}
