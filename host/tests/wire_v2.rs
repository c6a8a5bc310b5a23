//! Captures of both wire-format versions, and the frames of the node ↔ gateway link.
mod common;

use common::{dead_letters, frame, header, on_schedule as wire, rows, Dir};
use mend_core::{Ack, Encoder, Frame, Header, Heartbeat, Resend};

/// Frames as a version-2 writer puts them on the wire.
fn v2(frames: &[Frame]) -> Vec<u8> {
    let mut enc = Encoder::new();
    frames
        .iter()
        .flat_map(|f| enc.to_buf(f).unwrap().to_vec())
        .collect()
}

/// A version-1 capture of `seqs`: a version-1 header and readings with their whole seq.
fn v1_capture(h: &Header, seqs: impl IntoIterator<Item = u32>) -> Vec<u8> {
    let h = Header { version: 1, ..*h };
    let mut out = frame(Frame::Header(h));
    for seq in seqs {
        out.extend(frame(Frame::Reading(wire(
            &h,
            seq,
            52.0 + f64::from(seq % 7),
        ))));
    }
    out
}

/// A version-2 capture of `seqs`, written by the encoder (a header placed every 60 readings).
fn v2_capture(h: &Header, seqs: impl IntoIterator<Item = u32>) -> Vec<u8> {
    let mut frames = vec![Frame::Header(*h)];
    for (i, seq) in seqs.into_iter().enumerate() {
        if i > 0 && i % 60 == 0 {
            frames.push(Frame::Header(h.with_base(seq)));
        }
        frames.push(Frame::Reading(wire(h, seq, 52.0 + f64::from(seq % 7))));
    }
    v2(&frames)
}

#[test]
fn version_1_and_version_2_captures_give_the_same_rows_mixed_or_not() {
    let d = Dir::new();
    let seqs = || (0..200u32).filter(|s| s % 11 != 5);
    let h = header(3, 1);
    let old = v1_capture(&h, seqs());
    let new = v2_capture(&h, seqs());
    assert!(new.len() < old.len(), "version 2 is smaller");
    d.write("v1.mlog", &old);
    d.write("v2.mlog", &new);
    let a = d.mend(&["replay", "v1.mlog", "-q"]).ok().stdout();
    let b = d.mend(&["replay", "v2.mlog", "-q"]).ok().stdout();
    assert_eq!(a, b);
    assert_eq!(rows(&a).iter().filter(|r| !r.synthetic()).count(), 182);

    // One file: a version-1 session, then a version-2 session of the same sensor.
    let h2 = Header::new(3, 2, 1_000, h.clock, 300_000);
    let mut mixed = old.clone();
    mixed.extend(v2_capture(&h2, seqs()));
    d.write("mixed.mlog", &mixed);
    let m = d
        .mend(&["replay", "mixed.mlog", "-q", "--dlq", "dlq.jsonl"])
        .ok()
        .stdout();
    let m = rows(&m);
    let (s1, s2): (Vec<_>, Vec<_>) = m.iter().partition(|r| r.session == 1);
    assert_eq!(s1.len(), rows(&a).len());
    assert_eq!(s2.len(), s1.len());
    assert!(dead_letters(&d.read_text("dlq.jsonl")).is_empty());
    let inspect = d.mend(&["inspect", "mixed.mlog"]).ok().stdout();
    for needle in ["session: sensor 3 session 1", "session: sensor 3 session 2"] {
        assert!(
            inspect.contains(needle),
            "{needle:?} missing from\n{inspect}"
        );
    }
}

#[test]
fn replayed_readings_are_recovered_by_resend_and_count_once() {
    let d = Dir::new();
    let h = header(5, 9);
    let r = |seq| wire(&h, seq, 52.0 + f64::from(seq));
    let mut frames = vec![Frame::Header(h)];
    frames.extend(
        (0..10)
            .filter(|s| !(3..=4).contains(s))
            .map(|s| Frame::Reading(r(s))),
    );
    // The gateway asked for 3..=4; the node also sent 5 again.
    frames.extend([3, 4, 5].map(|s| Frame::Replayed(r(s))));
    d.write("resent.mlog", &v2(&frames));
    let full: Vec<Frame> = std::iter::once(Frame::Header(h))
        .chain((0..10).map(|s| Frame::Reading(r(s))))
        .collect();
    d.write("full.mlog", &v2(&full));

    let run = d.mend(&["replay", "resent.mlog", "--lateness", "20s"]).ok();
    let clean = d.mend(&["replay", "full.mlog", "-q"]).ok();
    assert_eq!(
        run.stdout(),
        clean.stdout(),
        "measured rows, nothing filled"
    );
    let err = run.stderr();
    assert!(
        err.contains("recovered by resend: 3 readings"),
        "no resend count in\n{err}"
    );
    assert!(
        err.contains("duplicate 1"),
        "the repeat of 5 is a duplicate:\n{err}"
    );
}

#[test]
fn heartbeats_acks_and_resends_are_accounted_not_dead_lettered() {
    let d = Dir::new();
    let h = header(2, 4);
    let frames = [
        Frame::Header(h),
        Frame::Reading(wire(&h, 0, 52.0)),
        Frame::Heartbeat(Heartbeat { session: 4, seq: 1 }),
        Frame::Heartbeat(Heartbeat { session: 4, seq: 1 }),
        Frame::Ack(Ack { session: 4, seq: 0 }),
        Frame::Resend(Resend {
            session: 4,
            from: 1,
            to: 1,
        }),
        Frame::Reading(wire(&h, 1, 52.5)),
    ];
    let log = v2(&frames);
    d.write("link.mlog", &log);
    let run = d
        .mend(&[
            "replay",
            "link.mlog",
            "--dlq",
            "dlq.jsonl",
            "--summary-json",
            "summary.json",
        ])
        .ok();
    assert_eq!(rows(&run.stdout()).len(), 2);
    assert!(dead_letters(&d.read_text("dlq.jsonl")).is_empty());
    assert!(run.stderr().contains("heartbeats: 2"), "{}", run.stderr());
    let summary: serde_json::Value = serde_json::from_str(&d.read_text("summary.json")).unwrap();
    let bytes = &summary["inputs"][0]["bytes"];
    assert_eq!(bytes["good"], log.len() as u64, "{summary}");
    assert_eq!(bytes["good_items"], frames.len() as u64, "{summary}");
    assert_eq!(summary["streams"][0]["heartbeats"], 2, "{summary}");
    let inspect = d.mend(&["inspect", "link.mlog"]).ok().stdout();
    assert!(inspect.contains("heartbeats: 2"), "{inspect}");
}
