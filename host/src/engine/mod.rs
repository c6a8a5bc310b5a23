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
        let mut live: Vec<usize> = self.live_by_sensor.values().copied().collect();
        live.sort_unstable();
        let mut streams = Vec::with_capacity(live.len());
        for i in live {
            let Some(s) = self.streams.get_mut(i) else {
                continue;
            };
            match StreamState::capture(s)? {
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
            self.live_by_sensor.insert(st.key.0, i);
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
            let Some(last) = s.out.last_emitted else {
                continue;
            };
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

