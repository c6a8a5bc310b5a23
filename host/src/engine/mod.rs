//! The per-stream replay pipeline: clock check → identity dedup → reorder → validate → find
//! and fill gaps → window → outputs.
//!
//! The unit of work is a stream, one `(sensor, session)`: sequence numbers, clocks and
//! periods only mean something within one. Each stream owns a small core pipeline whose
//! reorder buffer starts with room for a few readings and grows (up to a bound set by the
//! lateness) only when it fills, and a stream is freed as soon as a newer session of its
//! sensor starts, keeping only its report. So memory grows with the number of live streams
//! and the lateness window, never with the length of the log, and time stays linear however
//! many sessions a log holds. Nothing that leaves the pipeline is lost silently: it becomes a
//! record, a counted duplicate, or a dead-letter record.
//!
//! The output contract (rows strictly in time order within a stream, each identity at most
//! once) is kept by these rules:
//! - One reading whose clock jumps away from its stream is set aside as `clock_jump` (see
//!   [`crate::engine::clock`]); a reading whose seq is not above the last released seq of its stream
//!   (its clock disagrees with its seq) is set aside as `seq_behind_time`.
//! - Input without a sample counter (JSONL) has the timestamp as its identity: a repeat with
//!   the same value is a duplicate, one with another value a `conflicting_duplicate`.
//! - A reading that arrives after later readings of its stream were released (later than
//!   `--lateness` allows), or after its session ended, is set aside on a first pass and put
//!   in its place on a second (see [`crate::engine::spill`]); only where the input cannot be read
//!   twice is it dead-lettered as `late`.
//! - A checkpointed run that is not `--final` holds back each stream's unsettled tail, the
//!   readings within lateness and max-gap of its newest, so that a later run over the grown
//!   log writes exactly the rows one run over the whole log would have.

pub mod clock;
pub mod config;
mod emit;
mod end;
mod reorder;
mod report;
pub mod spill;
mod state;
mod stream;

use std::collections::{BTreeMap, HashMap};
use std::io;

use mend_core::{Aggregator, FillConfig, Validator};

use crate::checkpoint::{order_key, Checkpoint, StreamMark};
use crate::input::{Item, ReadingItem, StreamMeta};
use clock::Verdict;
use emit::{dead_letter, Refusal};
use report::FrameTally;
use spill::{SkipList, SpillSet};
use state::{ConfigMark, StreamState};
use stream::Stream;

pub use crate::sink::aggregates::AggregateOut;
pub use config::{
    EngineConfig, EngineError, DEDUP_WINDOWS, FILL_HISTORY, FIRST_CAPACITY, GROWN_CAPACITY,
    MAX_LISTED_OUTAGES, REORDER_CAPACITIES, VALIDATOR_HISTORY,
};
pub use emit::Sinks;
pub use report::{EdgeReport, FaultReport, OutageReport, StreamReport};
pub use state::{EngineState, Uncaptured};
pub use stream::Pass;

/// The replay engine: streams by `(sensor, session)`, fed reading by reading.
pub struct Engine {
    cfg: EngineConfig,
    streams: Vec<Stream>,
    index: BTreeMap<(u32, u32), usize>,
    /// Per sensor, its stream that can still take readings.
    live_by_sensor: HashMap<u32, usize>,
    last: Option<((u32, u32), usize)>,
    checkpoint: Checkpoint,
    /// The frames that are not readings, for the reports.
    tally: FrameTally,
    latest_seen: Option<u64>,
    pass: Pass,
    /// Second pass: per input, the positions of readings taken from the spill instead.
    skips: Vec<SkipList>,
    /// Per input, the position of the last reading read (for the next checkpoint).
    seen: Vec<u64>,
    /// The clock check's answer, reused from reading to reading.
    verdict: Verdict,
}

impl Engine {
    /// An engine for a single pass; `checkpoint` says what earlier runs emitted (empty for
    /// none).
    pub fn try_new(cfg: EngineConfig, checkpoint: Checkpoint) -> Result<Self, EngineError> {
        Self::for_pass(cfg, checkpoint, Pass::Only, 0)
    }

    /// An engine for one pass of a replay of `inputs` inputs.
    pub fn for_pass(
        cfg: EngineConfig,
        checkpoint: Checkpoint,
        pass: Pass,
        inputs: usize,
    ) -> Result<Self, EngineError> {
        Validator::<VALIDATOR_HISTORY>::try_new(cfg.validate).map_err(EngineError::Validate)?;
        let probe = FillConfig {
            method: cfg.fill,
            max_gap_ms: cfg.max_gap_ms.max(1_000),
            band: cfg.validate.band,
            ..FillConfig::DEFAULT
        };
        probe.check().map_err(EngineError::Gap)?;
        if let Some(w) = cfg.window_ms {
            Aggregator::<4>::try_new(w, 1_000, cfg.validate.band)
                .map_err(EngineError::Aggregate)?;
        }
        let skips = match &pass {
            Pass::Second(set) => (0..inputs)
                .map(|i| set.skips(i))
                .collect::<io::Result<_>>()
                .map_err(EngineError::Spill)?,
            _ => Vec::new(),
        };
        Ok(Self {
            cfg,
            streams: Vec::new(),
            index: BTreeMap::new(),
            live_by_sensor: HashMap::new(),
            last: None,
            checkpoint,
            tally: FrameTally::default(),
            latest_seen: None,
            pass,
            skips,
            seen: Vec::new(),
            verdict: Verdict::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Readings set aside so far by a first pass (0 on other passes).
    pub fn set_aside(&self) -> u64 {
        match &self.pass {
            Pass::First(w) => w.len(),
            _ => 0,
        }
    }

    /// Ends a first pass: what it set aside, sorted for the second pass; `None` when nothing
    /// was set aside (or this was not a first pass).
    pub fn into_spill(self) -> io::Result<Option<SpillSet>> {
        match self.pass {
            Pass::First(w) if !w.is_empty() => w.finish().map(Some),
            _ => Ok(None),
        }
    }

    fn stream_index(&mut self, item: &ReadingItem, sinks: &mut Sinks) -> io::Result<usize> {
        let r = &item.reading;
        let key = (r.sensor, r.session);
        if let Some((k, i)) = self.last {
            if k == key {
                return Ok(i);
            }
        }
        let i = match self.index.get(&key) {
            Some(i) => *i,
            // Not a stream of the only sensor the input may hold: no stream at all.
            None if self.cfg.only_sensor.is_some_and(|s| s != key.0) => {
                self.other_sensor(item, sinks)?;
                return Ok(usize::MAX);
            }
            None => {
                let i = self.streams.len();
                let s = self.new_stream(key, &item.meta)?;
                self.tally.stream_seen(key);
                // Ended by a newer session in the part of the input that was dropped: it
                // does not end the sensor's live session again.
                let ended = self.cfg.resume_ended
                    && self.checkpoint.streams.get(&key).is_some_and(|m| m.ended);
                self.streams.push(s);
                self.index.insert(key, i);
                // A new session of a sensor means its earlier one ended (the node
                // restarted): its held readings are released now, so that the sensor's rows
                // stay in time order, and its pipeline is freed.
                if !ended {
                    if let Some(prev) = self.live_by_sensor.insert(key.0, i) {
                        self.end_stream(prev, false, sinks)?;
                    }
                }
                i
            }
        };
        self.last = Some((key, i));
        Ok(i)
    }

    /// A new live stream, knowing what earlier runs wrote of it and this pass's spill.
    fn new_stream(&self, key: (u32, u32), meta: &StreamMeta) -> io::Result<Stream> {
        let mark = self.checkpoint.streams.get(&key).copied();
        Stream::new(&self.cfg, key, meta, mark, &self.pass)
    }

    /// Takes one item of input number `input`.
    pub fn push_item(&mut self, item: Item, sinks: &mut Sinks) -> io::Result<()> {
        match item {
            Item::Reading(r) => {
                if r.replayed {
                    self.tally.replayed((r.reading.sensor, r.reading.session));
                }
                self.push_reading(r, sinks)
            }
            Item::Heartbeat { sensor, session } => {
                self.tally.heartbeat((sensor, session));
                Ok(())
            }
            Item::Header(h) => {
                let known = self.index.contains_key(&(h.sensor, h.session));
                self.tally.header(h, known);
                Ok(())
            }
            Item::Stats { sensor, stats } => {
                self.tally.stats(sensor, stats);
                Ok(())
            }
            Item::Fault {
                sensor,
                session,
                fault,
            } => {
                self.tally.fault((sensor, session), fault.seq, fault.kind);
                Ok(())
            }
            Item::Dead(d) => sinks.dead.push(&d),
        }
    }

    /// The latest reading timestamp seen so far, over all inputs.
    pub fn latest_seen(&self) -> Option<u64> {
        self.latest_seen
    }

    /// Takes one reading.
    pub fn push_reading(&mut self, item: ReadingItem, sinks: &mut Sinks) -> io::Result<()> {
        let pos = crate::engine::spill::position(&item.at);
        if self.seen.len() <= item.input {
            self.seen.resize(item.input + 1, 0);
        }
        if let Some(p) = self.seen.get_mut(item.input) {
            *p = (*p).max(pos);
        }
        if let Some(skips) = self.skips.get_mut(item.input) {
            if skips.take(&item.at)? {
                // Set aside by the first pass: it comes from the spill, in its place.
                return Ok(());
            }
        }
        let r = item.reading;
        self.latest_seen = Some(self.latest_seen.map_or(r.timestamp, |l| l.max(r.timestamp)));
        let idx = self.stream_index(&item, sinks)?;
        let new_since_checkpoint = self
            .checkpoint
            .seen
            .get(item.input)
            .is_some_and(|seen| pos > *seen);
        let Some(s) = self.streams.get_mut(idx) else {
            // Of another sensor than the input may hold: dead-lettered as such.
            return Ok(());
        };
        let rep = &mut s.out.report;
        rep.received += 1;
        rep.first_ms = Some(rep.first_ms.map_or(r.timestamp, |f| f.min(r.timestamp)));
        rep.last_ms = Some(rep.last_ms.map_or(r.timestamp, |l| l.max(r.timestamp)));
        if new_since_checkpoint && s.out.skip_through.is_some_and(|k| order_key(&r) <= k) {
            // New since the last run, yet its place was written by that run.
            s.out.extra.input = s.out.extra.input.wrapping_add(1);
            s.out.extra.late = s.out.extra.late.wrapping_add(1);
            return dead_letter(sinks, &item, &r, Refusal::Settled);
        }
        let Some(live) = s.live.as_mut() else {
            // Its session ended before this reading arrived.
            s.out.extra.input = s.out.extra.input.wrapping_add(1);
            s.out.extra.late = s.out.extra.late.wrapping_add(1);
            return s.too_late(&mut self.pass, item, Refusal::AfterEnd, sinks);
        };
        if live.guard.confirm_if_fits(&item) {
            s.admit(&self.cfg, &mut self.pass, item, sinks)?;
            return s.release_ready(&self.cfg, sinks);
        }
        let mut verdict = std::mem::take(&mut self.verdict);
        live.guard.admit(item, &mut verdict);
        for g in verdict.glitches.drain(..) {
            s.out.extra.input = s.out.extra.input.wrapping_add(1);
            s.out.extra.rejected = s.out.extra.rejected.wrapping_add(1);
            let why = Refusal::ClockJump {
                frontier: live.guard.frontier(),
            };
            dead_letter(sinks, &g, &g.reading, why)?;
        }
        for x in verdict.pass.drain(..) {
            s.admit(&self.cfg, &mut self.pass, x, sinks)?;
        }
        self.verdict = verdict;
        s.release_ready(&self.cfg, sinks)
    }

    /// A reading of another sensor than the only one the input may hold.
    #[cold]
    #[inline(never)]
    fn other_sensor(&self, item: &ReadingItem, sinks: &mut Sinks) -> io::Result<()> {
        match self.cfg.only_sensor {
            Some(expected) => dead_letter(
                sinks,
                item,
                &item.reading,
                Refusal::OtherSensor { expected },
            ),
            None => Ok(()),
        }
    }

    /// Ends stream `idx`: everything it holds goes out (at the end of a checkpointed run that
    /// is not final, only what is settled), and its pipeline is freed.
    fn end_stream(&mut self, idx: usize, at_finish: bool, sinks: &mut Sinks) -> io::Result<()> {
        match self.streams.get_mut(idx) {
            Some(s) => s.end(&self.cfg, &mut self.pass, at_finish, sinks),
            None => Ok(()),
        }
    }

    /// Ends the replay: ends every stream in `(sensor, session)` order.
    pub fn finish(&mut self, sinks: &mut Sinks) -> io::Result<()> {
        let order: Vec<usize> = self.index.values().copied().collect();
        for i in order {
            self.end_stream(i, true, sinks)?;
        }
        sinks.records.flush()?;
        if let Some(w) = sinks.aggregates.as_mut() {
            w.flush()?;
        }
        sinks.dead.flush()
    }

    /// Takes the per-stream reports, in `(sensor, session)` order, including streams only
    /// seen in headers, stats or fault frames. (Taken, not copied: a log of a million
    /// sessions has a million reports.)
    pub fn take_reports(&mut self) -> Vec<StreamReport> {
        let mut out: Vec<StreamReport> =
            Vec::with_capacity(self.index.len() + self.tally.headers_waiting());
        for i in self.index.values() {
            if let Some(s) = self.streams.get_mut(*i) {
                let mut rep = std::mem::take(&mut s.out.report);
                let mut c = rep.counters;
                c.add(&s.out.extra);
                let mut held = 0;
                if let Some(live) = s.live.as_ref() {
                    c.add(&live.reorder.counters());
                    held = live.reorder.len();
                }
                rep.counters = c;
                rep.balanced =
                    c.balanced(held.saturating_add(usize::try_from(rep.held_back).unwrap_or(0)));
                out.push(rep);
            }
        }
        // The streams are done with; their memory can go before the rest is added.
        self.streams = Vec::new();
        self.tally.complete(&mut out);
        out
    }

    /// The state of the live streams, to continue in a later run: call it once the input is
    /// read and before [`Engine::finish`]. `Err` says why it cannot be carried.
    ///
    /// # Errors
    /// The second pass's set-aside readings cannot be read.
    pub fn capture(&mut self) -> io::Result<Result<EngineState, Uncaptured>> {
        if self.cfg.window_ms.is_some() {
            return Ok(Err(Uncaptured::Aggregates));
        }
        // Every live stream: its sensor's live session, and any earlier session whose
        // readings came again after a newer one started (a node forwarding what it stored).
        let mut streams = Vec::with_capacity(self.live_by_sensor.len());
        for (i, s) in self.streams.iter_mut().enumerate() {
            let resumed = self.live_by_sensor.get(&s.out.key.0) != Some(&i);
            match StreamState::capture(s, resumed)? {
                Ok(Some(st)) => streams.push(st),
                Ok(None) => {}
                Err(why) => return Ok(Err(why)),
            }
        }
        Ok(Ok(EngineState {
            config: ConfigMark::of(&self.cfg),
            streams,
        }))
    }

    /// Where the readings held by the clock checks of the live streams were read, in a run
    /// that holds back its tail: it leaves them undecided, so their dead letters, if any,
    /// come from a later run. (A run that does not hold back decides them at its end.)
    pub fn undecided_positions(&self) -> Vec<u64> {
        if !self.cfg.hold_back {
            return Vec::new();
        }
        let mut out: Vec<u64> = self
            .streams
            .iter()
            .filter_map(|s| s.live.as_ref())
            .flat_map(|l| l.guard.held_positions())
            .collect();
        out.sort_unstable();
        out
    }

    /// Continues from `state` (made by [`Engine::capture`] at the end of an earlier run's
    /// input, before anything else was pushed): its streams are live again, with what they
    /// held, and the checkpoint says what they wrote.
    ///
    /// # Errors
    /// The state was made with other settings, or a pass's set-aside readings cannot be
    /// read.
    pub fn restore(&mut self, state: &EngineState) -> Result<(), EngineError> {
        if state.config != ConfigMark::of(&self.cfg) {
            return Err(EngineError::OtherSettings);
        }
        for st in &state.streams {
            let mut stream = self
                .new_stream(st.key, &st.meta())
                .map_err(EngineError::Spill)?;
            st.continue_in(&mut stream, self.cfg.release_after_ms());
            let i = self.streams.len();
            self.streams.push(stream);
            self.index.insert(st.key, i);
            if !st.resumed {
                self.live_by_sensor.insert(st.key.0, i);
            }
        }
        Ok(())
    }

    /// The checkpoint after this run: the old one, updated with what this run wrote.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut ck = self.checkpoint.clone();
        if ck.seen.len() < self.seen.len() {
            ck.seen.resize(self.seen.len(), 0);
        }
        for (old, now) in ck.seen.iter_mut().zip(&self.seen) {
            *old = (*old).max(*now);
        }
        for (key, i) in &self.index {
            let Some(s) = self.streams.get(*i) else {
                continue;
            };
            let Some(mut last) = s.out.last_emitted else {
                continue;
            };
            // Records come in order, so a record past `--until` means that everything up to
            // it was computed; the records after it were not written, and are left to a
            // later run.
            if let Some(u) = self.cfg.until.filter(|&u| last.0 > u) {
                last = (u, u32::MAX, i32::MAX);
            }
            // A run that stopped short of what an earlier run wrote (an earlier --until)
            // does not take the earlier run's records back.
            if let Some(old) = s.out.skip_through {
                last = last.max(old);
            }
            ck.streams.insert(
                *key,
                StreamMark {
                    sensor: key.0,
                    session: key.1,
                    last_timestamp: last.0,
                    last_seq: last.1,
                    last_celsius_bits: last.2,
                    agg_through: s.out.windows.written_through(),
                    ended: self.live_by_sensor.get(&key.0) != Some(i),
                },
            );
        }
        ck
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{DeadLetter, Location};
    use crate::sink::dlq::DeadLetterLog;
    use crate::sink::RecordSink;
    use mend_core::{Celsius, ClockKind, Outage, Reading, Record};

    /// Everything the engine writes.
    #[derive(Default)]
    struct Rows {
        recs: Vec<Record>,
        outages: Vec<Outage>,
    }

    impl RecordSink for Rows {
        fn record(&mut self, rec: &Record, _meta: &StreamMeta) -> io::Result<()> {
            self.recs.push(*rec);
            Ok(())
        }
        fn outage(&mut self, o: &Outage) -> io::Result<()> {
            self.outages.push(*o);
            Ok(())
        }
    }

    const WITH_SEQ: StreamMeta = StreamMeta {
        has_seq: true,
        period_ms: 1_000,
        clock: ClockKind::Unix,
    };

    /// A reading of sensor 1 at `seq` seconds, read at byte `offset`.
    fn at(session: u32, seq: u32, bits: i32, offset: u64, meta: StreamMeta) -> Item {
        Item::Reading(ReadingItem {
            input: 0,
            reading: Reading::new(
                1,
                session,
                seq,
                u64::from(seq) * 1_000,
                Celsius::from_bits(52 * 256 + bits),
            ),
            meta,
            at: Location::Bytes { offset, length: 9 },
            replayed: false,
        })
    }

    /// Readings of session 1 in this order of seqs, one per second, at increasing offsets.
    fn seqs(order: impl IntoIterator<Item = u32>) -> Vec<Item> {
        order
            .into_iter()
            .enumerate()
            .map(|(i, s)| at(1, s, 0, i as u64 * 9, WITH_SEQ))
            .collect()
    }

    struct Run {
        rows: Rows,
        dead: Vec<DeadLetter>,
        reports: Vec<StreamReport>,
    }

    impl Run {
        /// `(session, seq, measured)` of every row.
        fn keys(&self) -> Vec<(u32, u32, bool)> {
            let r = |x: &Record| (x.reading.session, x.reading.seq, !x.is_synthetic());
            self.rows.recs.iter().map(r).collect()
        }
        fn reasons(&self) -> Vec<String> {
            self.dead.iter().map(|d| d.reason.to_string()).collect()
        }
    }

    /// Runs `engine` over `items` and finishes it.
    fn run_with(mut engine: Engine, items: &[Item]) -> Run {
        let mut rows = Rows::default();
        let mut dead = DeadLetterLog::new(vec!["in".into()], None).keeping(100);
        let mut sinks = Sinks {
            records: &mut rows,
            dead: &mut dead,
            aggregates: None,
        };
        for it in items {
            engine.push_item(it.clone(), &mut sinks).unwrap();
        }
        engine.finish(&mut sinks).unwrap();
        Run {
            dead: dead.kept().to_vec(),
            reports: engine.take_reports(),
            rows,
        }
    }

    fn run(cfg: EngineConfig, items: &[Item]) -> Run {
        run_with(Engine::try_new(cfg, Checkpoint::default()).unwrap(), items)
    }

    #[test]
    fn readings_are_released_in_time_and_seq_order() {
        let out = run(EngineConfig::default(), &seqs([3, 0, 2, 1, 6, 4, 5, 8, 7]));
        let want: Vec<_> = (0..9).map(|s| (1, s, true)).collect();
        assert_eq!(out.keys(), want);
        assert!(out.dead.is_empty());
        assert!(out.reports[0].balanced);
    }

    #[test]
    fn an_identity_is_written_at_most_once() {
        // Repeats before and after the reading was released.
        let out = run(EngineConfig::default(), &seqs([0, 1, 1, 2, 0, 3, 2, 3]));
        assert_eq!(out.keys(), (0..4).map(|s| (1, s, true)).collect::<Vec<_>>());
        let rep = &out.reports[0];
        assert_eq!((rep.counters.duplicate, rep.records), (4, 4));
        // Without a seq the timestamp is the identity: a repeat with the same value is a
        // duplicate, one with another value is refused, and the first value stays.
        let no_seq = StreamMeta {
            has_seq: false,
            ..WITH_SEQ
        };
        let items = [
            at(1, 0, 0, 0, no_seq),
            at(1, 1, 0, 9, no_seq),
            at(1, 1, 0, 18, no_seq),
            at(1, 1, 7, 27, no_seq),
            at(1, 2, 0, 36, no_seq),
        ];
        let out = run(EngineConfig::default(), &items);
        let values: Vec<i32> = out
            .rows
            .recs
            .iter()
            .map(|r| r.reading.celsius.to_bits())
            .collect();
        assert_eq!(values, [52 * 256; 3]);
        assert_eq!(out.reasons(), ["conflicting_duplicate"]);
        assert_eq!(
            out.dead[0].location,
            Location::Bytes {
                offset: 27,
                length: 9
            }
        );
        assert_eq!(out.reports[0].counters.duplicate, 1);
    }

    #[test]
    fn a_late_reading_is_refused_with_its_reason() {
        let cfg = EngineConfig {
            lateness_ms: 2_000,
            ..EngineConfig::default()
        };
        // Seq 5 comes after seq 20: its place was written (as a fill) long before.
        let order = (0..5).chain(6..21).chain([5]);
        let out = run(cfg.clone(), &seqs(order));
        assert_eq!(out.reasons(), ["late"]);
        assert_eq!(
            out.dead[0].location,
            Location::Bytes {
                offset: 20 * 9,
                length: 9
            }
        );
        assert!(
            out.dead[0].detail.contains("--lateness"),
            "{}",
            out.dead[0].detail
        );
        let five: Vec<_> = out.keys().into_iter().filter(|k| k.1 == 5).collect();
        assert_eq!(five, [(1, 5, false)], "its place holds the fill");
        assert_eq!(out.reports[0].counters.late, 1);
        assert!(out.reports[0].balanced);
        // After a newer session of its sensor started, a reading is late as well, and says
        // why.
        let items = [
            at(1, 0, 0, 0, WITH_SEQ),
            at(2, 0, 0, 9, WITH_SEQ),
            at(1, 1, 0, 18, WITH_SEQ),
        ];
        let out = run(cfg, &items);
        assert_eq!(out.reasons(), ["late"]);
        assert!(
            out.dead[0].detail.contains("newer session"),
            "{}",
            out.dead[0].detail
        );
        assert_eq!(out.keys(), [(1, 0, true), (2, 0, true)]);
    }

    #[test]
    fn an_outage_gives_no_rows_and_one_report() {
        let cfg = EngineConfig {
            max_gap_ms: 10_000,
            ..EngineConfig::default()
        };
        let out = run(cfg, &seqs([0, 1, 2, 3, 100, 101]));
        let want: Vec<_> = [0, 1, 2, 3, 100, 101].map(|s| (1, s, true)).to_vec();
        assert_eq!(out.keys(), want, "nothing filled");
        assert_eq!(out.rows.outages.len(), 1);
        let rep = &out.reports[0];
        assert_eq!((rep.outages, rep.missing_in_outages, rep.gaps), (1, 96, 0));
        assert_eq!(
            rep.outage_list,
            [OutageReport {
                start_ms: 3_000,
                end_ms: 100_000,
                missing: 96
            }]
        );
        // A gap within the maximum is filled.
        let out = run(EngineConfig::default(), &seqs([0, 1, 2, 3, 40, 41]));
        assert_eq!((out.reports[0].outages, out.reports[0].gaps), (0, 1));
        assert_eq!(out.rows.recs.len(), 42);
    }

    #[test]
    fn a_resumed_run_writes_the_rows_of_one_run() {
        // Disorder, a repeat, a gap and a second session.
        let mut first: Vec<u32> = vec![0, 2, 1, 3, 4, 7, 5, 6, 8, 8, 9, 10, 14, 12, 13];
        first.extend((15..40).filter(|s| !(24..26).contains(s)));
        let mut order: Vec<Item> = seqs(first);
        order.extend((0..40).map(|s| at(2, s, s as i32, 900 + u64::from(s) * 9, WITH_SEQ)));
        let cfg = EngineConfig {
            lateness_ms: 3_000,
            max_gap_ms: 5_000,
            ..EngineConfig::default()
        };
        let whole = run(cfg.clone(), &order);
        assert!(whole.dead.is_empty());
        assert_eq!(whole.rows.recs.len(), 40 + 40);
        assert_eq!(
            whole.rows.recs.iter().filter(|r| r.is_synthetic()).count(),
            3
        );
        for cut in 1..order.len() {
            let (first, second) = order.split_at(cut);
            // The first run holds back its unsettled tail and keeps its state.
            let held = EngineConfig {
                hold_back: true,
                ..cfg.clone()
            };
            let mut engine = Engine::try_new(held, Checkpoint::default()).unwrap();
            let mut rows = Rows::default();
            let mut dead = DeadLetterLog::new(vec!["in".into()], None);
            let mut sinks = Sinks {
                records: &mut rows,
                dead: &mut dead,
                aggregates: None,
            };
            for it in first {
                engine.push_item(it.clone(), &mut sinks).unwrap();
            }
            let state = engine.capture().unwrap().unwrap();
            engine.finish(&mut sinks).unwrap();
            let checkpoint = engine.checkpoint();
            // Stored and read back as a later run would.
            let stored = serde_json::to_string(&state).unwrap();
            let state: EngineState = serde_json::from_str(&stored).unwrap();
            let mut next = Engine::try_new(cfg.clone(), checkpoint).unwrap();
            next.restore(&state).unwrap();
            let rest = run_with(next, second);
            let mut got = rows.recs;
            got.extend(rest.rows.recs);
            assert_eq!(got, whole.rows.recs, "cut at {cut}");
            assert!(rest.dead.is_empty(), "cut at {cut}: {:?}", rest.dead);
        }
        // A state is continued only under the settings it was made with.
        let mut engine = Engine::try_new(cfg.clone(), Checkpoint::default()).unwrap();
        let state = engine.capture().unwrap().unwrap();
        let other = EngineConfig { seed: 1, ..cfg };
        let mut next = Engine::try_new(other, Checkpoint::default()).unwrap();
        assert!(matches!(
            next.restore(&state),
            Err(EngineError::OtherSettings)
        ));
    }
}
