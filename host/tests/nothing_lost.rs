//! Nothing is lost, whatever the layout of the input: readings far out of place come back in
//! their place, clock glitches and conflicting repeats are set aside without taking the rest
//! with them, every identity is written at most once, and incremental runs over a growing log
//! give the rows of one run.
//!
//! The properties compare a layout's rows with those of a plain replay of the same readings
//! in their natural order (or, for checkpoints, of one run over the final log), stream by
//! stream.

mod common;

use std::collections::BTreeMap;

use common::{header, jline, readings, rows, Dir, HEADER};
use mend::checkpoint::Checkpoint;
use mend::generate::{generate, GenerateConfig};
use mend::input::seek::InputPlan;
use mend::input::InputSource;
use mend::replay::{replay_bytes, replay_sources};
use mend::ReplayConfig;
use mend_core::{ClockKind, DecodeEvent, Decoder, Frame, Header};
use proptest::prelude::*;

/// 2026-01-01T00:00:00Z.
const DAY0_MS: u64 = 1_767_225_600_000;
const DAY: u64 = 86_400_000;

/// A noisy capture of one node: out-of-band readings, lost, duplicated and reordered frames.
fn noisy(sensor: u32, seed: u64, count: u32, start_ms: u64) -> Vec<u8> {
    let mut cfg = GenerateConfig::clean(seed, count);
    cfg.sim.sensor = sensor;
    cfg.sim.epoch_ms = start_ms;
    cfg.sim.error_ppm = 50_000;
    cfg.sim.skip_ppm = 100_000;
    cfg.sim.duplicate_ppm = 20_000;
    cfg.sim.reorder_ppm = 50_000;
    cfg.sim.max_displacement = 3;
    let mut v = Vec::new();
    generate(&cfg, &mut v, None).unwrap();
    // The simulated link may drop the first header too; a capture that starts without one
    // would lend its first readings to whatever header comes before it in a joined file (a
    // limit of the version-1 format, whose reading frames do not name their session), so
    // the capture starts with the header its node sent first: its first surviving header
    // with the session's first seq as its base, under which the readings before that one
    // decode.
    let first = header_offsets(&v)[0];
    if first > 0 {
        let mut dec: Decoder = Decoder::at(0);
        let h = dec
            .feed(&v[first..])
            .find_map(|e| match e {
                DecodeEvent::Frame {
                    frame: Frame::Header(h),
                    ..
                } => Some(h),
                _ => None,
            })
            .unwrap();
        let h = Header { base_seq: 0, ..h };
        let header = Frame::Header(h).to_buf().unwrap().to_vec();
        v.splice(0..0, header);
    }
    v
}

/// Where the header frames of a capture start: a rotated log is cut at such a place, so that
/// every piece starts with its session header.
fn header_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut dec: Decoder = Decoder::at(0);
    dec.feed(bytes)
        .filter_map(|e| match e {
            DecodeEvent::Frame {
                frame: Frame::Header(_),
                span,
            } => Some(span.start as usize),
            _ => None,
        })
        .collect()
}

/// A deterministic shuffle of `v` by `seed`.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
}

/// Where two row lists first differ, for a readable failure.
fn difference(
    got: &BTreeMap<(u32, u32), Vec<String>>,
    want: &BTreeMap<(u32, u32), Vec<String>>,
) -> Option<String> {
    let keys: std::collections::BTreeSet<_> = got.keys().chain(want.keys()).collect();
    for k in keys {
        let (g, w) = (got.get(k), want.get(k));
        let (g, w) = (
            g.map_or(&[][..], Vec::as_slice),
            w.map_or(&[][..], Vec::as_slice),
        );
        if let Some(i) = (0..g.len().max(w.len())).find(|i| g.get(*i) != w.get(*i)) {
            return Some(format!(
                "stream {k:?}: {} rows vs {} expected; first difference at row {i}:\n got  {:?}\n want {:?}",
                g.len(),
                w.len(),
                g.get(i),
                w.get(i)
            ));
        }
    }
    None
}

/// The rows of a record list, grouped by stream, each stream's rows in output order.
fn by_stream(records: &[mend::OutRecord]) -> BTreeMap<(u32, u32), Vec<String>> {
    let mut out: BTreeMap<(u32, u32), Vec<String>> = BTreeMap::new();
    for o in records {
        let r = &o.record.reading;
        out.entry((r.sensor, r.session))
            .or_default()
            .push(format!("{:?}", o.record));
    }
    out
}

fn replay(bytes: &[u8]) -> mend::replay::ReplayOutput {
    replay_bytes(bytes, &ReplayConfig::default()).unwrap()
}

/// Each `(sensor, session, seq)` at most once, and rows strictly in time order per stream.
fn assert_identities_once(records: &[mend::OutRecord]) {
    let mut last: BTreeMap<(u32, u32), (u64, u32)> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for o in records {
        let r = &o.record.reading;
        if o.has_seq {
            assert!(
                seen.insert((r.sensor, r.session, r.seq)),
                "identity {:?} written twice",
                (r.sensor, r.session, r.seq)
            );
        }
        if let Some(prev) = last.insert((r.sensor, r.session), (r.timestamp, r.seq)) {
            assert!(prev < (r.timestamp, r.seq), "rows out of order at {r:?}");
        }
    }
}

/// The dead letters of `n` pieces of captures joined (`got`) against those of the captures
/// whole (`want`). A stats frame before a piece's first reading names no sensor and is not
/// sealed: it can still be dead-lettered, one per piece at most; no reading is. A frame cut
/// in two is made whole, so every damaged frame is one of the captures whole; only a frame
/// damaged there too and cut, or one repeated on the link (whose cut end both copies finish),
/// gives a dead letter for its cut end (`truncated`, or `empty` for its lone delimiter)
/// beside its own.
fn dead_letters_of_joined_pieces(
    got: &mend::replay::ReplayReport,
    want: &mend::replay::ReplayReport,
    n: u64,
) -> Result<(), String> {
    let count =
        |r: &mend::replay::ReplayReport, why: &str| r.dead_by_reason.get(why).copied().unwrap_or(0);
    if count(got, "no_header") > n {
        return Err(format!(
            "no_header {} > {n} pieces",
            count(got, "no_header")
        ));
    }
    for why in ["truncated", "empty"] {
        if count(got, why) > count(want, why) + n {
            return Err(format!(
                "{why}: {} against {}",
                count(got, why),
                count(want, why)
            ));
        }
    }
    let others = |r: &mend::replay::ReplayReport| {
        let mut d = r.dead_by_reason.clone();
        d.retain(|why, _| !["no_header", "truncated", "empty"].contains(&why.as_str()));
        d
    };
    if others(got) != others(want) {
        return Err(format!("{:?} against {:?}", others(got), others(want)));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Rotated pieces of captures joined in any order, with a piece given twice, replay to
    /// the rows of the captures in their natural order.
    #[test]
    fn pieces_in_any_order_give_the_rows_of_the_natural_order(
        seed in 1u64..1_000,
        cuts in proptest::collection::vec(0usize..1_000, 1..5),
        order_seed in any::<u64>(),
        twice in proptest::option::of(0usize..8),
        second_sensor in any::<bool>(),
    ) {
        let a = noisy(1, seed, 1_500, DAY0_MS);
        let mut natural = a.clone();
        let offsets = header_offsets(&a);
        let mut at: Vec<usize> = cuts.iter().map(|c| offsets[c % offsets.len()]).collect();
        at.push(0);
        at.push(a.len());
        at.sort_unstable();
        at.dedup();
        let mut pieces: Vec<&[u8]> = at.windows(2).map(|w| &a[w[0]..w[1]]).collect();
        let b;
        if second_sensor {
            // Another node over the same hours, one piece of its own.
            b = noisy(2, seed + 1, 900, DAY0_MS + 300_000);
            natural.extend_from_slice(&b);
            pieces.push(&b);
        }
        shuffle(&mut pieces, order_seed);
        if let Some(t) = twice {
            let p = pieces[t % pieces.len()];
            pieces.push(p);
        }
        let joined: Vec<u8> = pieces.concat();
        let want = replay(&natural);
        let got = replay(&joined);
        let diff = difference(&by_stream(&got.records), &by_stream(&want.records));
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
        prop_assert!(got.report.balanced());
        assert_identities_once(&got.records);
        prop_assert!(!got.report.dead_by_reason.contains_key("late"));
    }

    /// Pieces of two nodes' captures cut anywhere, between two frames (a log rotated in the
    /// middle of a session) or inside one (a log split by size, `split -b`), given as
    /// separate inputs in any order, replay to the rows of the captures whole: the readings
    /// before a piece's first header are read under the header in force at the end of the
    /// piece it continues (carried through a piece too short to hold a header of its own),
    /// and a frame cut in two is made whole again.
    #[test]
    fn pieces_cut_anywhere_given_as_inputs_in_any_order_lose_nothing(
        seed in 1u64..1_000,
        cuts in proptest::collection::vec(0usize..100_000, 1..12),
        order_seed in any::<u64>(),
    ) {
        let logs = [noisy(1, seed, 1_500, DAY0_MS), noisy(2, seed + 1, 900, DAY0_MS + 300_000)];
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        for (k, log) in logs.iter().enumerate() {
            let ends = common::frame_ends(log);
            let mut at: Vec<usize> = cuts
                .iter()
                .filter(|c| *c % 2 == k)
                .map(|c| match (c / 2) % 3 {
                    // Between two frames, or at any byte.
                    0 => ends[(c / 6) % ends.len()],
                    _ => (c / 6) % log.len(),
                })
                .collect();
            at.push(log.len());
            at.sort_unstable();
            at.dedup();
            // Every piece holds a delimiter: a piece inside one frame (shorter than a frame)
            // finishes nothing, and is not joined.
            let mut from = 0;
            for to in at {
                if log[from..to].contains(&0) || to == log.len() {
                    pieces.push(log[from..to].to_vec());
                    from = to;
                }
            }
        }
        shuffle(&mut pieces, order_seed);
        let sources: Vec<InputSource> =
            pieces.into_iter().map(|p| InputSource::Bytes(p.into())).collect();
        let plans = vec![InputPlan::default(); sources.len()];
        let got =
            replay_sources(&sources, &plans, &ReplayConfig::default(), Checkpoint::default())
                .unwrap();
        let want = replay(&logs.concat());
        let diff = difference(&by_stream(&got.records), &by_stream(&want.records));
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
        prop_assert!(got.report.balanced());
        if let Err(e) = dead_letters_of_joined_pieces(&got.report, &want.report, sources.len() as u64) {
            prop_assert!(false, "{}", e);
        }
        assert_identities_once(&got.records);
    }

    /// A log split by size where pieces can be shorter than one frame (`split -b` with a
    /// small size, or a rotation right after another), its pieces given in their order: a
    /// piece that holds no delimiter is the middle of a frame, joined with the pieces around
    /// it when the frame they make has a good CRC.
    #[test]
    fn pieces_inside_one_frame_are_joined_with_the_pieces_around_them(
        seed in 1u64..1_000,
        cuts in proptest::collection::vec((0usize..100_000, 1usize..=9), 1..10),
        second_sensor in any::<bool>(),
    ) {
        let mut log = noisy(5, seed, 1_200, DAY0_MS);
        if second_sensor {
            log.extend_from_slice(&noisy(6, seed + 1, 600, DAY0_MS + 300_000));
        }
        // Each cut at any byte, followed by a piece of 1 to 9 bytes.
        let mut at: Vec<usize> = cuts
            .iter()
            .flat_map(|&(c, short)| {
                let from = c % log.len();
                [from, (from + short).min(log.len())]
            })
            .collect();
        at.push(0);
        at.push(log.len());
        at.sort_unstable();
        at.dedup();
        let sources: Vec<InputSource> = at
            .windows(2)
            .map(|w| InputSource::Bytes(log[w[0]..w[1]].to_vec().into()))
            .collect();
        let plans = vec![InputPlan::default(); sources.len()];
        let got =
            replay_sources(&sources, &plans, &ReplayConfig::default(), Checkpoint::default())
                .unwrap();
        let want = replay(&log);
        let diff = difference(&by_stream(&got.records), &by_stream(&want.records));
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
        prop_assert!(got.report.balanced());
        let pieces = sources.len() as u64;
        if let Err(e) = dead_letters_of_joined_pieces(&got.report, &want.report, pieces) {
            prop_assert!(false, "{}", e);
        }
        assert_identities_once(&got.records);
    }

    /// A log whose two pieces were joined into one file in the wrong order (`cat log.1 log.0`),
    /// cut anywhere: the readings before the file's first header are read in the context of
    /// its own end, and the frame cut in two is made whole across the file's end and start.
    #[test]
    fn a_log_joined_into_one_file_in_the_wrong_order_loses_nothing(
        seed in 1u64..1_000,
        cut in 0usize..100_000,
    ) {
        let log = noisy(7, seed, 1_500, DAY0_MS);
        let at = cut % log.len();
        let swapped = [&log[at..], &log[..at]].concat();
        let got = replay(&swapped);
        let want = replay(&log);
        let diff = difference(&by_stream(&got.records), &by_stream(&want.records));
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
        prop_assert!(got.report.balanced());
        if let Err(e) = dead_letters_of_joined_pieces(&got.report, &want.report, 2) {
            prop_assert!(false, "{}", e);
        }
        assert_identities_once(&got.records);
    }

    /// A growing log replayed with a checkpoint after each cut (the last run final) gives,
    /// concatenated, the rows of one run over the final log.
    #[test]
    fn incremental_runs_over_a_growing_log_give_the_rows_of_one_run(
        seed in 1u64..1_000,
        cuts in proptest::collection::vec(1usize..10_000, 1..5),
        restart in any::<bool>(),
        second_sensor in any::<bool>(),
    ) {
        let mut log = noisy(3, seed, 1_200, DAY0_MS);
        if restart {
            // The node restarted: a new session, with a glitched clock on one reading.
            log.extend_from_slice(&noisy(3, seed + 7, 600, DAY0_MS + 1_300_000));
        }
        if second_sensor {
            // Another node's capture over the same hours, appended: its stream grows while
            // the first one's tail waits.
            log.extend_from_slice(&noisy(4, seed + 11, 900, DAY0_MS + 400_000));
        }
        let mut at: Vec<usize> = cuts.iter().map(|c| c * log.len() / 10_000).collect();
        at.sort_unstable();
        at.dedup();
        at.push(log.len());
        let mut checkpoint = Checkpoint::default();
        let mut incremental: Vec<mend::OutRecord> = Vec::new();
        // The link delays frames by a few places only, well within lateness and max-gap, so
        // no reading arrives after an earlier run wrote its place: the rows are one run's,
        // exactly. (A reading later than that is the one exception, reported as `late`: see
        // `a_reading_appended_after_its_place_was_written_is_reported_late`.)
        let mut late = 0;
        for (i, end) in at.iter().enumerate() {
            let mut cfg = ReplayConfig::default();
            cfg.engine.hold_back = i + 1 < at.len();
            let src = [InputSource::Bytes(log[..*end].to_vec().into())];
            let out = replay_sources(&src, &[InputPlan::default()], &cfg, checkpoint).unwrap();
            checkpoint = out.checkpoint;
            incremental.extend(out.records);
            late += out.report.streams.iter().map(|s| s.counters.late).sum::<u32>();
        }
        let one = replay(&log);
        prop_assert_eq!(late, 0);
        let diff = difference(&by_stream(&incremental), &by_stream(&one.records));
        prop_assert!(diff.is_none(), "{}", diff.unwrap_or_default());
        assert_identities_once(&incremental);
    }
}

#[test]
fn a_log_whose_halves_were_joined_the_wrong_way_round_comes_out_whole() {
    let a = noisy(1, 5, 3_000, DAY0_MS);
    let offsets = header_offsets(&a);
    let mid = offsets[offsets.len() / 2];
    let swapped = [&a[mid..], &a[..mid]].concat();
    let want = replay(&a);
    let got = replay(&swapped);
    assert_eq!(got.records.len(), want.records.len());
    assert_eq!(by_stream(&got.records), by_stream(&want.records));
    assert_eq!(got.report.passes, 2);
    assert!(got.report.streams[0].placed > 1_000);
    assert_eq!(got.report.dead_letters, want.report.dead_letters);
}

#[test]
fn from_standard_input_a_reading_far_out_of_place_is_dead_lettered_as_late() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = common::frame(Frame::Header(h));
    log.extend(readings(
        &h,
        (0..100).filter(|s| *s != 5).map(|s| (s, 52.0)),
    ));
    log.extend(readings(&h, [(5, 52.0)]));
    d.write("late.mlog", &log);
    let file = d
        .mend(&["replay", "late.mlog", "--dlq", "f.jsonl", "-q"])
        .ok()
        .stdout();
    let piped = d
        .mend_stdin(&["replay", "-", "--dlq", "p.jsonl", "-q"], Some(&log))
        .ok()
        .stdout();
    // From the file, seq 5 is put in its place; from a pipe, which cannot be read twice, it
    // is dead-lettered and its slot filled.
    let seq5 = |text: &str| {
        rows(text)
            .into_iter()
            .find(|r| r.seq == Some(5))
            .map(|r| r.synthetic())
    };
    assert_eq!(seq5(&file), Some(false));
    assert_eq!(seq5(&piped), Some(true));
    assert_eq!(common::reasons(&d.read_text("p.jsonl")), ["late"]);
    assert!(d.read_text("f.jsonl").is_empty());
}

#[test]
fn one_glitched_clock_writes_its_seq_once_and_keeps_the_rest() {
    let h = Header::new(1, 1, 1_000, ClockKind::Unix, DAY0_MS);
    let mut log = Frame::Header(h).to_buf().unwrap().to_vec();
    for seq in 0..300u32 {
        let mut ts = DAY0_MS + u64::from(seq) * 1_000;
        if seq == 100 {
            ts += 24 * DAY;
        }
        let r = mend_core::Reading::new(1, 1, seq, ts, mend_core::Celsius::from_num(52));
        log.extend_from_slice(&Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap());
    }
    let out = replay(&log);
    assert_eq!(out.records.len(), 300);
    assert_identities_once(&out.records);
    let r100: Vec<_> = out
        .records
        .iter()
        .filter(|o| o.record.reading.seq == 100)
        .collect();
    assert_eq!(r100.len(), 1);
    assert!(r100[0].record.is_synthetic());
    assert_eq!(out.report.dead_by_reason.get("clock_jump"), Some(&1));
    assert!(out.report.balanced());
}

#[test]
fn one_future_timestamp_in_jsonl_is_set_aside_and_the_rest_kept() {
    let mut text = String::new();
    for ts in 0..3_600i64 {
        let t = if ts == 100 { ts + 24 * 86_400 } else { ts };
        text.push_str(&jline(t, 52.0 + (ts % 5) as f64 * 0.25));
    }
    assert_one_glitch_of_3_600(&replay(text.as_bytes()));
}

/// 3 600 rows, all measured but the glitch's slot, and the glitch the one dead letter.
#[track_caller]
fn assert_one_glitch_of_3_600(out: &mend::replay::ReplayOutput) {
    assert_eq!(out.records.len(), 3_600);
    let measured = out
        .records
        .iter()
        .filter(|o| !o.record.is_synthetic())
        .count();
    assert_eq!(measured, 3_599);
    assert_eq!(out.report.dead_by_reason.get("clock_jump"), Some(&1));
    assert_eq!(out.report.dead_letters, 1);
}

#[test]
fn one_timestamp_far_behind_the_start_in_jsonl_is_set_aside_and_the_rest_kept() {
    // 2026, one line stamped 56 years back (a clock reset to near 1970), and one a day back;
    // both before the first reading of the log, neither followed by readings that agree.
    let start = (DAY0_MS / 1_000) as i64;
    for back in [56 * 365 * 86_400, 86_400] {
        let mut text = String::new();
        for i in 0..3_600i64 {
            let t = if i == 100 {
                start + i - back
            } else {
                start + i
            };
            text.push_str(&jline(t, 52.0 + (i % 5) as f64 * 0.25));
        }
        let mut cfg = ReplayConfig::default();
        cfg.engine.emit_outages = true;
        assert_one_glitch_of_3_600(&replay_bytes(text.as_bytes(), &cfg).unwrap());
    }
    // The log's halves the wrong way round: the first half's readings are behind the start
    // too, and agree with each other: all kept, in their place.
    let lines: Vec<String> = (0..3_600i64)
        .map(|i| jline(start + i, 52.0 + (i % 5) as f64 * 0.25))
        .collect();
    let whole = replay(lines.concat().as_bytes());
    let swapped = replay(
        [&lines[1_800..], &lines[..1_800]]
            .concat()
            .concat()
            .as_bytes(),
    );
    assert_eq!(swapped.report.dead_letters, 0);
    assert_eq!(by_stream(&swapped.records), by_stream(&whole.records));
}

#[test]
fn a_session_announced_again_with_another_period_writes_each_seq_once() {
    // The same session: 20 readings under a 1 s header, then the header again with 500 ms
    // and seqs 1..20 once more (a node that re-sent them under a wrong period).
    let h1 = Header::new(1, 1, 1_000, ClockKind::Unix, DAY0_MS);
    let h2 = Header::new(1, 1, 500, ClockKind::Unix, DAY0_MS);
    let mut log = common::frame(Frame::Header(h1));
    log.extend(readings(&h1, (0..20).map(|s| (s, 52.0))));
    log.extend(common::frame(Frame::Header(h2)));
    log.extend(readings(&h2, (1..20).map(|s| (s, 53.0))));
    let out = replay(&log);
    assert_identities_once(&out.records);
    // The first copies are kept.
    assert!(out
        .records
        .iter()
        .all(|o| o.record.reading.celsius == mend_core::Celsius::from_num(52)));
    assert!(out.report.balanced());

    // Going on under the new period: seq 11 is stamped at 5.5 s, before seq 10 at 10 s. The
    // readings are released in time order, so seq 11 comes before seq 10 — which would then
    // be filled as missing after seq 9 and written again as measured. Seq 10 is refused
    // instead: its clock disagrees with its seq.
    let mut log = common::frame(Frame::Header(h1));
    log.extend(readings(&h1, (0..=10).map(|s| (s, 52.0))));
    log.extend(common::frame(Frame::Header(h2)));
    log.extend(readings(&h2, (11..40).map(|s| (s, 53.0))));
    let out = replay(&log);
    assert_identities_once(&out.records);
    assert!(out.report.balanced());
    assert!(out.report.dead_letters > 0);
}

#[test]
fn ten_thousand_sessions_of_one_sensor_all_come_out() {
    let mut log = Vec::new();
    for session in 1..=10_000u32 {
        let start = DAY0_MS + u64::from(session) * 10_000;
        let h = Header::new(7, session, 1_000, ClockKind::Unix, start);
        log.extend(common::frame(Frame::Header(h)));
        log.extend(readings(&h, (0..3).map(|s| (s, 52.0))));
    }
    let out = replay(&log);
    assert_eq!(out.records.len(), 30_000);
    assert_eq!(out.report.streams.len(), 10_000);
    assert!(out.report.balanced());
    assert_identities_once(&out.records);
}

#[test]
fn a_reading_just_after_the_cut_is_not_invented_then_refused() {
    // Seq 250 arrives after seq 250 + `behind` (10 s: within the lateness; 45 s: beyond it,
    // within lateness and max-gap); the log is first replayed cut just before its frame.
    for behind in [10u32, 45] {
        let d = Dir::new();
        let h = header(1, 1);
        let value = |s: u32| 52.0 + f64::from(s % 4) * 0.5;
        let mut log = common::frame(Frame::Header(h));
        log.extend(readings(
            &h,
            (0..=250 + behind)
                .filter(|s| *s != 250)
                .map(|s| (s, value(s))),
        ));
        let cut = log.len();
        log.extend(readings(&h, [(250, 53.0)]));
        log.extend(readings(&h, (251 + behind..400).map(|s| (s, value(s)))));
        d.write("grow.mlog", &log[..cut]);
        let one = d
            .mend(&["replay", "grow.mlog", "--checkpoint", "ck.json", "-q"])
            .ok()
            .stdout();
        d.write("grow.mlog", &log);
        let two = d
            .mend(&[
                "replay",
                "grow.mlog",
                "--checkpoint",
                "ck.json",
                "--final",
                "--dlq",
                "dead.jsonl",
                "-q",
            ])
            .ok()
            .stdout();
        let all = d.mend(&["replay", "grow.mlog", "-q"]).ok().stdout();
        let joined = format!("{one}{}", two.strip_prefix(&format!("{HEADER}\n")).unwrap());
        assert_eq!(joined, all, "{behind} s behind");
        let r250 = rows(&all).into_iter().find(|r| r.seq == Some(250)).unwrap();
        assert!(!r250.synthetic());
        assert!(d.read_text("dead.jsonl").is_empty());
        // The first run held the tail back instead of writing a fill for seq 250.
        assert!(rows(&one).iter().all(|r| r.seq < Some(250)));
    }
}

#[test]
fn a_checkpoint_of_one_log_is_refused_for_another() {
    let d = Dir::new();
    let mut a = String::new();
    let mut b = String::new();
    for ts in 0..3_600i64 {
        a.push_str(&jline(ts, 52.0));
        b.push_str(&jline(ts, 53.0));
    }
    d.write("a.jsonl", a.as_bytes());
    d.write("b.jsonl", b.as_bytes());
    d.mend(&[
        "replay",
        "a.jsonl",
        "--checkpoint",
        "ck.json",
        "-o",
        "a.csv",
        "-q",
    ])
    .ok();
    let run = d
        .mend(&[
            "replay",
            "b.jsonl",
            "--checkpoint",
            "ck.json",
            "-o",
            "b.csv",
        ])
        .expect(2);
    assert!(
        run.stderr().contains("does not belong to its input"),
        "{}",
        run.stderr()
    );
    assert!(!d.path("b.csv").exists());
    // The same log, grown: accepted.
    a.push_str(&jline(3_600, 52.0));
    d.write("a.jsonl", a.as_bytes());
    d.mend(&[
        "replay",
        "a.jsonl",
        "--checkpoint",
        "ck.json",
        "-o",
        "a2.csv",
        "-q",
    ])
    .ok();
    // Standard input cannot be checked next time: refused with a reason.
    let run = d
        .mend_stdin(&["replay", "-", "--checkpoint", "ck2.json"], None)
        .expect(2);
    assert!(run.stderr().contains("standard input"), "{}", run.stderr());
}

#[test]
fn a_checkpoint_refuses_a_log_that_shrank_or_changed_past_its_first_bytes() {
    let d = Dir::new();
    // Longer than the first bytes fingerprinted (64 KiB): before, only those were checked, so
    // a log cut back to 200 000 bytes was accepted and the rows of its lost part stayed
    // written (103 215 rows over two runs against 20 709 in one plain run).
    d.mend(&[
        "generate",
        "--seed",
        "21",
        "--count",
        "120000",
        "-o",
        "full.mlog",
    ])
    .ok();
    let full = d.read("full.mlog");
    let ck = |input: &str, out: &str| -> common::Run {
        d.mend(&["replay", input, "--checkpoint", "ck.json", "-o", out, "-q"])
    };
    d.write("live.mlog", &full[..1_000_000]);
    ck("live.mlog", "one.csv").ok();
    let saved = d.read("ck.json");
    d.write("live.mlog", &full[..200_000]);
    let run = ck("live.mlog", "two.csv").expect(2);
    assert!(
        run.stderr()
            .contains("live.mlog is shorter (200000 bytes) than when the checkpoint was written (1000000 bytes)"),
        "{}",
        run.stderr()
    );
    assert!(!d.path("two.csv").exists());
    // The same length, one bit flipped just before where the last run stopped.
    let mut changed = full[..1_000_000].to_vec();
    changed[999_000] ^= 1;
    d.write("live.mlog", &changed);
    let run = ck("live.mlog", "two.csv").expect(2);
    assert!(
        run.stderr()
            .contains("bytes 934464..1000000 of live.mlog differ"),
        "{}",
        run.stderr()
    );
    // Grown, and otherwise the same: accepted, and the checkpoint moves on.
    d.write("live.mlog", &full[..1_100_000]);
    ck("live.mlog", "two.csv").ok();
    assert_ne!(d.read("ck.json"), saved);

    // Two inputs given in the other order: said so.
    d.write("a.mlog", &full[..300_000]);
    d.write("b.mlog", &full[300_000..600_000]);
    d.mend(&[
        "replay",
        "a.mlog",
        "b.mlog",
        "--checkpoint",
        "ab.json",
        "-q",
    ])
    .ok();
    let run = d
        .mend(&[
            "replay",
            "b.mlog",
            "a.mlog",
            "--checkpoint",
            "ab.json",
            "-q",
        ])
        .expect(2);
    assert!(
        run.stderr()
            .contains("written for the same inputs in another order ([a.mlog, b.mlog])"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_frame_or_line_still_being_written_is_left_to_the_next_run_not_dead_lettered() {
    let d = Dir::new();
    for (name, format, cut) in [("log.mlog", "mlog", 15_005), ("log.jsonl", "jsonl", 20_010)] {
        d.mend(&[
            "generate", "--seed", "3", "--count", "3000", "--format", format, "-o", name,
        ])
        .ok();
        let whole = d.read(name);
        let live = format!("live-{name}");
        let ck = format!("{name}.ck.json");
        let run = |extra: &[&str], out: &str| {
            let mut a = vec!["replay", &live, "--checkpoint", &ck, "-o", out];
            a.extend(extra);
            d.mend(&a).ok()
        };
        // Cut inside the last frame (line) a writer had begun: before, a checkpointed run
        // dead-lettered it (`truncated`, `malformed_json`), and the next run read it whole.
        d.write(&live, &whole[..cut]);
        let one = run(&[], "one.csv");
        assert!(one.stderr().contains("dead letters: 0"), "{}", one.stderr());
        assert!(
            one.stderr()
                .contains("still being written, held for the next run"),
            "{}",
            one.stderr()
        );
        d.write(&live, &whole);
        let two = run(&["--final"], "two.csv");
        assert!(two.stderr().contains("dead letters: 0"), "{}", two.stderr());
        let plain = d.mend(&["replay", name, "-q"]).ok().stdout();
        let joined = format!(
            "{}{}",
            d.read_text("one.csv"),
            d.read_text("two.csv").split_once('\n').unwrap().1
        );
        assert_eq!(joined, plain, "{name}");
        // A run without a checkpoint (or a final one) says what is cut short at the end:
        // nothing will finish it.
        d.write(&live, &whole[..cut]);
        let torn = d.mend(&["replay", &live, "-o", "torn.csv"]).ok();
        assert!(
            torn.stderr().contains("dead letters: 1"),
            "{}",
            torn.stderr()
        );
    }
}

#[test]
fn a_checkpoint_that_cannot_be_written_fails_the_run_before_any_output_is_in_place() {
    let d = Dir::new();
    d.mend(&[
        "generate",
        "--seed",
        "5",
        "--count",
        "3000",
        "-o",
        "live.mlog",
    ])
    .ok();
    // Before, the rows were put in place and only then the checkpoint failed: exit 2, yet a
    // whole output stayed, which the next run (its checkpoint not moved on) wrote again.
    let run = d
        .mend(&[
            "replay",
            "live.mlog",
            "--checkpoint",
            "no-such-dir/ck.json",
            "-o",
            "rows.csv",
            "--dlq",
            "dead.jsonl",
        ])
        .expect(2);
    assert!(
        run.stderr()
            .contains("no-such-dir/ck.json: cannot write checkpoint"),
        "{}",
        run.stderr()
    );
    assert!(!d.path("rows.csv").exists());
    assert!(!d.path("dead.jsonl").exists());
}

#[test]
fn a_reading_appended_after_its_place_was_written_is_reported_late() {
    let d = Dir::new();
    let h = header(1, 1);
    let mut log = common::frame(Frame::Header(h));
    log.extend(readings(
        &h,
        (0..300u32).filter(|s| *s != 20).map(|s| (s, 52.0)),
    ));
    d.write("grow.mlog", &log);
    d.mend(&["replay", "grow.mlog", "--checkpoint", "ck.json", "-q"])
        .ok();
    // Seq 20 turns up 280 s late, after the first run wrote a fill in its place.
    log.extend(readings(&h, [(20, 53.0)]));
    d.write("grow.mlog", &log);
    let two = d
        .mend(&[
            "replay",
            "grow.mlog",
            "--checkpoint",
            "ck.json",
            "--final",
            "--dlq",
            "dead.jsonl",
            "-q",
        ])
        .ok()
        .stdout();
    assert!(rows(&two).iter().all(|r| r.seq != Some(20)));
    let dead = common::dead_letters(&d.read_text("dead.jsonl"));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], "late");
    assert!(
        dead[0]["detail"]
            .as_str()
            .unwrap()
            .contains("after an earlier checkpointed run wrote its place"),
        "{}",
        dead[0]
    );
}

#[test]
fn pieces_too_short_to_hold_a_header_carry_the_context_on() {
    let log = noisy(1, 9, 1_500, DAY0_MS);
    let ends = common::frame_ends(&log);
    // Pieces of 7 frames: most of them hold no header.
    let mut at: Vec<usize> = ends.iter().copied().step_by(7).collect();
    at.insert(0, 0);
    at.push(log.len());
    at.dedup();
    let pieces: Vec<&[u8]> = at.windows(2).map(|w| &log[w[0]..w[1]]).collect();
    let headerless = pieces
        .iter()
        .filter(|p| header_offsets(p).is_empty())
        .count();
    assert!(
        headerless > pieces.len() / 2,
        "{headerless} of {}",
        pieces.len()
    );
    let sources: Vec<InputSource> = pieces
        .iter()
        .rev()
        .map(|p| InputSource::Bytes(p.to_vec().into()))
        .collect();
    let plans = vec![InputPlan::default(); sources.len()];
    let got = replay_sources(
        &sources,
        &plans,
        &ReplayConfig::default(),
        Checkpoint::default(),
    )
    .unwrap();
    let want = replay(&log);
    assert_eq!(by_stream(&got.records), by_stream(&want.records));
    assert!(got.report.balanced());
}

#[test]
fn a_log_split_by_size_replays_whole_from_its_pieces_in_any_order() {
    let d = Dir::new();
    let log = noisy(1, 12, 3_000, DAY0_MS);
    d.write("whole.mlog", &log);
    // `split -b 4000`: every cut falls where it falls, most of them inside a frame.
    let names: Vec<String> = log
        .chunks(4_000)
        .enumerate()
        .map(|(i, piece)| {
            let name = format!("piece.a{}", (b'a' + i as u8) as char);
            d.write(&name, piece);
            name
        })
        .collect();
    let inside = (1..names.len()).filter(|i| log[i * 4_000 - 1] != 0).count();
    assert!(inside >= 3, "{inside} cuts inside a frame");
    d.mend(&["replay", "whole.mlog", "-o", "whole.csv", "-q"])
        .ok();
    let want = d.read_text("whole.csv");
    let mut order: Vec<&str> = names.iter().map(String::as_str).collect();
    for round in 0..2 {
        if round == 1 {
            order.reverse();
        }
        let mut args = vec!["replay"];
        args.extend(&order);
        args.extend(["-o", "pieces.csv"]);
        let said = d.mend(&args).ok().stderr();
        assert!(said.contains("dead letters: 0"), "{said}");
        assert!(
            said.contains("(the log was split inside a frame)"),
            "{said}"
        );
        let got = d.read_text("pieces.csv");
        assert_eq!(rows(&got).len(), rows(&want).len());
        assert!(got == want, "the pieces' rows differ from the whole log's");
    }
}

#[test]
fn a_log_rotated_mid_session_replays_whole_from_its_pieces_in_any_order() {
    let d = Dir::new();
    let log = noisy(1, 11, 3_000, DAY0_MS);
    let ends = common::frame_ends(&log);
    let (a, b) = (ends[ends.len() / 3], ends[2 * ends.len() / 3]);
    d.write("whole.mlog", &log);
    d.write("capture.log.2", &log[..a]);
    d.write("capture.log.1", &log[a..b]);
    d.write("capture.log", &log[b..]);
    for p in ["capture.log.1", "capture.log"] {
        let alone = d.mend(&["replay", p, "-o", "alone.csv"]).ok().stderr();
        assert!(
            !alone.contains("dead letters: 0"),
            "{p} starts in the middle of a session: {alone}"
        );
    }
    d.mend(&["replay", "whole.mlog", "-o", "whole.csv", "-q"])
        .ok();
    // The shell's order of `capture.log*`: the newest piece first.
    let said = d
        .mend(&[
            "replay",
            "capture.log",
            "capture.log.1",
            "capture.log.2",
            "-o",
            "pieces.csv",
        ])
        .ok()
        .stderr();
    assert!(
        said.contains(
            "capture.log: its frames before its first header were read as the continuation of capture.log.1"
        ),
        "{said}"
    );
    assert!(said.contains("capture.log.1: its frames before its first header were read as the continuation of capture.log.2"), "{said}");
    let (got, want) = (d.read_text("pieces.csv"), d.read_text("whole.csv"));
    assert_eq!(rows(&got).len(), rows(&want).len());
    assert!(got == want, "the pieces' rows differ from the whole log's");
}

/// A log that only lost its first header is not read from its own end: placed from there, its
/// leading readings would take seqs (and times) a multiple of 128 away from their own.
#[test]
fn a_log_that_lost_its_first_header_is_not_read_from_its_own_end() {
    let log = noisy(8, 3, 3_000, DAY0_MS);
    let second = header_offsets(&log)[1];
    let first_end = common::frame_ends(&log)[0];
    assert!(first_end <= second, "the log starts with its header");
    let got = replay(&log[first_end..]);
    let want = replay(&log);
    let kept: BTreeMap<(u32, u32, u32), String> = want
        .records
        .iter()
        .map(|o| {
            let r = &o.record.reading;
            (
                (r.sensor, r.session, r.seq),
                format!("{:?}", o.record.reading),
            )
        })
        .collect();
    let measured: Vec<_> = got
        .records
        .iter()
        .filter(|o| !o.record.is_synthetic())
        .collect();
    assert!(!measured.is_empty());
    for o in measured {
        let r = &o.record.reading;
        assert_eq!(
            kept.get(&(r.sensor, r.session, r.seq)),
            Some(&format!("{r:?}")),
            "a reading where none was measured"
        );
    }
    assert!(
        got.report
            .dead_by_reason
            .get("no_header")
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert!(!got.report.notes.iter().any(|n| n.contains("its own end")));
}
