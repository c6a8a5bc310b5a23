//! The per-stream replay pipeline: reorder and deduplicate → validate → find and fill gaps →
//! window → outputs.
//!
//! The unit of work is a stream, one `(sensor, session)`: sequence numbers, clocks and
//! periods only mean something within one. Each stream owns a fixed-size core pipeline, so
//! memory grows with the number of streams and the lateness window, never with the length of
//! the log. Readings arrive in merged input order; nothing that leaves the pipeline is lost
//! silently: it becomes a record, a counted duplicate, or a dead-letter record.
//!
//! Two choices keep the output contract (rows strictly in time order within a stream, each
//! identity at most once). A reading that arrives after later readings of its stream were
//! already written (later than `--lateness` allows) is dead-lettered as `late` instead of
//! being written out of order next to the fill that already stands in its place. And input
//! without a sample counter (JSONL) is deduplicated by content `(timestamp, value)` in a set
//! that only covers the lateness window; anything older than that horizon is dead-lettered
//! rather than risked as a double.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use mend_core::{
    Admit, Aggregate, Aggregator, ClockKind, Counters, FillConfig, FillMethod, FillState, GapEvent,
    GapFiller, Header, Origin, Outage, Quality, Reading, Record, ReleaseKind, Reorder, Stats,
    ValidateConfig, Validator,
};
use serde::Serialize;

use crate::checkpoint::{order_key, Anchor, Checkpoint, FillMark, OrderKey, StreamMark};
use crate::dlq::DeadLetterLog;
use crate::input::{DeadLetter, Item, ReadingItem, StreamMeta};
use crate::output::{push_aggregate_row, RecordSink};

/// The duplicate windows a stream may get, in seqs: the smallest that covers twice the
/// lateness (in periods) is chosen per stream, because the window costs time on every new
/// seq. A reading further below the newest seq than its window is dead-lettered as
/// `beyond_dedup_window`.
pub const DEDUP_WINDOWS: [u64; 3] = [256, 1024, 4096];
/// Readings a stream's reorder buffer holds, for each of the [`DEDUP_WINDOWS`]: twice the
/// window, so that a stream evicts early only when its readings come much faster than its
/// period says. Memory per stream is about 48 bytes per reading of capacity.
pub const REORDER_CAPACITIES: [usize; 3] = [512, 2048, 4096];
/// Values of validator history (spike and stuck checks).
pub const VALIDATOR_HISTORY: usize = 64;
/// Values of gap-filler history (stochastic fills).
pub const FILL_HISTORY: usize = 16;
/// Outages listed per stream in the report (all are counted).
pub const MAX_LISTED_OUTAGES: usize = 100;

const NARROW: usize = REORDER_CAPACITIES[0];
const MEDIUM: usize = REORDER_CAPACITIES[1];
const WIDE: usize = REORDER_CAPACITIES[2];

/// A stream's reorder buffer, sized to its lateness.
enum StreamReorder {
    Narrow(Box<Reorder<NARROW, 1, 8>>),
    Medium(Box<Reorder<MEDIUM, 1, 32>>),
    Wide(Box<Reorder<WIDE, 1, 128>>),
}

macro_rules! each {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            StreamReorder::Narrow($r) => $e,
            StreamReorder::Medium($r) => $e,
            StreamReorder::Wide($r) => $e,
        }
    };
}

/// A boxed reorder buffer. Never inlined: a buffer is up to ~200 KB, and a caller that
/// inlined its construction would carry (and probe) that much stack on every call.
#[inline(never)]
#[cold]
fn boxed<const N: usize, const W: usize>(lateness_ms: u64, dedup: bool) -> Box<Reorder<N, 1, W>> {
    let r = Reorder::new(lateness_ms);
    Box::new(if dedup { r } else { r.without_dedup() })
}

impl StreamReorder {
    fn new(lateness_ms: u64, period_ms: u32, dedup: bool) -> Self {
        let need = (lateness_ms / u64::from(period_ms.max(1)))
            .saturating_mul(2)
            .saturating_add(64);
        // Without identity dedup (input without seq) the window is never used, but the
        // capacity still follows the lateness.
        if need <= DEDUP_WINDOWS[0] {
            StreamReorder::Narrow(boxed(lateness_ms, dedup))
        } else if need <= DEDUP_WINDOWS[1] {
            StreamReorder::Medium(boxed(lateness_ms, dedup))
        } else {
            StreamReorder::Wide(boxed(lateness_ms, dedup))
        }
    }
    #[inline]
    fn push(&mut self, r: Reading) -> Admit {
        each!(self, b => b.push(r))
    }
    #[inline]
    fn pop_ready(&mut self) -> Option<mend_core::Release> {
        each!(self, b => b.pop_ready())
    }
    fn pop_any(&mut self) -> Option<mend_core::Release> {
        each!(self, b => b.pop_any())
    }
    fn watermark(&self) -> Option<u64> {
        each!(self, b => b.watermark())
    }
    fn counters(&self) -> Counters {
        each!(self, b => b.counters())
    }
    fn len(&self) -> usize {
        each!(self, b => b.len())
    }
}

/// What the engine does, independent of where input comes from and output goes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How gaps are filled.
    pub fill: FillMethod,
    /// The longest gap that is filled, ms.
    pub max_gap_ms: u64,
    /// How long a stream waits for stragglers, ms.
    pub lateness_ms: u64,
    /// Validation limits (the band among them).
    pub validate: ValidateConfig,
    /// The stochastic fill seed.
    pub seed: u64,
    /// Emit only records at or after this time, ms.
    pub from: Option<u64>,
    /// Emit only records at or before this time, ms.
    pub until: Option<u64>,
    /// Aggregate window, ms.
    pub window_ms: Option<u64>,
    /// Write the slots of outages as rows without a value, for a regular grid
    /// (`--emit-outages`); otherwise outages are only reported.
    pub emit_outages: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            fill: FillMethod::Linear,
            max_gap_ms: 60_000,
            lateness_ms: 30_000,
            validate: ValidateConfig::DEFAULT,
            seed: 0,
            from: None,
            until: None,
            window_ms: None,
            emit_outages: false,
        }
    }
}

impl EngineConfig {
    fn in_window(&self, ts: u64) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.until.is_none_or(|u| ts <= u)
    }

    fn overlaps_window(&self, start: u64, end: u64) -> bool {
        self.from.is_none_or(|f| end >= f) && self.until.is_none_or(|u| start <= u)
    }
}

/// An outage as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OutageReport {
    /// The last measured reading before it, ms.
    pub start_ms: u64,
    /// The first measured reading after it, ms.
    pub end_ms: u64,
    /// Readings it swallowed.
    pub missing: u64,
}

/// A sample the edge could not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FaultReport {
    /// The seq the sample would have had.
    pub seq: u32,
    /// What went wrong on the bus (`no_acknowledge`, `bus`, `timeout`, `invalid_data`).
    pub kind: &'static str,
}

/// The last edge stats frame of a stream, and whether its books balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EdgeReport {
    /// The frame.
    #[serde(skip)]
    pub stats: Stats,
    /// The edge's counters.
    pub counters: Counters,
    /// True when the edge's counters balance (nothing held at a stats point is allowed
    /// for: `in ≥ out`).
    pub balanced: bool,
    /// Readings the edge sent (emitted + late + evicted).
    pub sent: u64,
    /// Frames the edge's ring dropped.
    pub ring_dropped: u32,
    /// Sensor faults the edge counted.
    pub sensor_faults: u32,
}

/// Everything the engine knows about one stream at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    /// The sensor.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// Whether readings had a seq.
    pub has_seq: bool,
    /// The sampling period, ms.
    pub period_ms: u32,
    /// `"unix"` or `"boot"`.
    pub clock: &'static str,
    /// Readings received from the inputs, repeats included.
    pub received: u64,
    /// Readings dropped because the checkpoint says they were emitted before.
    pub before_checkpoint: u64,
    /// The books of the pipeline: `in = emitted + late + duplicate + rejected + evicted`.
    pub counters: Counters,
    /// True when the books balance with nothing held.
    pub balanced: bool,
    /// Records written (inside the window).
    pub records: u64,
    /// Measured records written.
    pub measured: u64,
    /// Synthetic records written.
    pub synthetic: u64,
    /// Records of quality good / doubtful / bad.
    pub good: u64,
    /// See `good`.
    pub doubtful: u64,
    /// See `good`.
    pub bad: u64,
    /// Records computed but outside `--from`/`--until`.
    pub outside_window: u64,
    /// Gaps found inside the window (not outages).
    pub gaps: u64,
    /// Readings missing in those gaps.
    pub missing: u64,
    /// Outages inside the window.
    pub outages: u64,
    /// Readings missing in those outages.
    pub missing_in_outages: u64,
    /// The first [`MAX_LISTED_OUTAGES`] outages.
    pub outage_list: Vec<OutageReport>,
    /// Fault frames received.
    pub faults: u64,
    /// The first faults: seq and kind.
    pub fault_list: Vec<FaultReport>,
    /// The last edge stats frame.
    pub edge: Option<EdgeReport>,
    /// The earliest reading received, ms.
    pub first_ms: Option<u64>,
    /// The latest reading received, ms.
    pub last_ms: Option<u64>,
    /// The first record written, ms.
    pub first_out_ms: Option<u64>,
    /// The last record written, ms.
    pub last_out_ms: Option<u64>,
}

/// Content deduplication for readings without a seq, over the lateness window.
struct ContentDedup {
    seen: BTreeSet<(u64, i32)>,
    horizon: u64,
}

/// Writes merged aggregates as CSV rows.
pub struct AggregateOut<'w> {
    w: Box<dyn io::Write + 'w>,
    row: Vec<u8>,
}

impl<'w> AggregateOut<'w> {
    /// Aggregates rows to `w`; the header is written at once.
    pub fn new(mut w: Box<dyn io::Write + 'w>) -> io::Result<Self> {
        w.write_all(crate::output::AGG_HEADER.as_bytes())?;
        w.write_all(b"\n")?;
        Ok(Self {
            w,
            row: Vec::with_capacity(256),
        })
    }

    fn write(&mut self, sensor: u32, session: u32, a: &Aggregate) -> io::Result<()> {
        self.row.clear();
        push_aggregate_row(&mut self.row, sensor, session, a);
        self.w.write_all(&self.row)
    }

    /// Flushes the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// The parts of a stream the gap filler's callback writes to.
struct StreamOut {
    key: (u32, u32),
    meta: StreamMeta,
    report: StreamReport,
    aggregator: Option<Aggregator<4>>,
    pending: Option<Aggregate>,
    skip_through: Option<OrderKey>,
    last_emitted: Option<OrderKey>,
    last_measured: Option<Reading>,
    /// The gap filler's state right after `last_measured`, for the checkpoint.
    fill_state: Option<Box<FillState<FILL_HISTORY>>>,
}

struct Stream {
    reorder: StreamReorder,
    validator: Validator<VALIDATOR_HISTORY>,
    filler: GapFiller<FILL_HISTORY>,
    content: Option<ContentDedup>,
    extra: Counters,
    ck: Option<OrderKey>,
    out: StreamOut,
}

/// The shared places records and reports go.
pub struct Sinks<'a, 'w> {
    /// Repaired records.
    pub records: &'a mut dyn RecordSink,
    /// Dead letters.
    pub dead: &'a mut DeadLetterLog<'w>,
    /// Aggregates, when asked for.
    pub aggregates: Option<&'a mut AggregateOut<'w>>,
}

/// The replay engine: streams by `(sensor, session)`, fed reading by reading.
pub struct Engine {
    cfg: EngineConfig,
    streams: Vec<Stream>,
    index: BTreeMap<(u32, u32), usize>,
    last: Option<((u32, u32), usize)>,
    checkpoint: Checkpoint,
    headers: BTreeMap<(u32, u32), Header>,
    edge: BTreeMap<(u32, u32), Stats>,
    faults: BTreeMap<(u32, u32), (u64, Vec<FaultReport>)>,
    latest_seen: Option<u64>,
}

/// Why an engine cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The validation limits are inconsistent.
    #[error("invalid validation limits: {0}")]
    Validate(mend_core::ValidateConfigError),
    /// The gap settings are inconsistent.
    #[error("invalid gap settings: {0}")]
    Gap(mend_core::GapConfigError),
    /// The aggregate settings are inconsistent.
    #[error("invalid aggregate settings: {0}")]
    Aggregate(mend_core::AggregateError),
}

impl Engine {
    /// An engine; `checkpoint` says what earlier runs emitted (empty for none).
    pub fn try_new(cfg: EngineConfig, checkpoint: Checkpoint) -> Result<Self, EngineError> {
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
        Ok(Self {
            cfg,
            streams: Vec::new(),
            index: BTreeMap::new(),
            last: None,
            checkpoint,
            headers: BTreeMap::new(),
            edge: BTreeMap::new(),
            faults: BTreeMap::new(),
            latest_seen: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    fn stream_index(
        &mut self,
        r: &Reading,
        meta: &StreamMeta,
        sinks: &mut Sinks,
    ) -> io::Result<usize> {
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
                let s = self.new_stream(key, meta)?;
                self.streams.push(s);
                self.index.insert(key, i);
                self.end_earlier_sessions(key, sinks)?;
                i
            }
        };
        self.last = Some((key, i));
        Ok(i)
    }

    /// A new session of a sensor means its earlier sessions ended (the node restarted):
    /// their held readings are released now, so that a sensor's rows stay in time order
    /// instead of the old session's tail coming out at the very end.
    #[cold]
    fn end_earlier_sessions(&mut self, key: (u32, u32), sinks: &mut Sinks) -> io::Result<()> {
        let others: Vec<usize> = self
            .index
            .range((key.0, 0)..=(key.0, u32::MAX))
            .filter(|(k, _)| k.1 != key.1)
            .map(|(_, i)| *i)
            .collect();
        let cfg = &self.cfg;
        for j in others {
            if let Some(s) = self.streams.get_mut(j) {
                while let Some(rel) = s.reorder.pop_any() {
                    process(s, cfg, rel.reading, sinks)?;
                }
            }
        }
        Ok(())
    }

    #[inline(never)]
    #[cold]
    fn new_stream(&self, key: (u32, u32), meta: &StreamMeta) -> io::Result<Stream> {
        let c = &self.cfg;
        let period = meta.period_ms.max(1);
        let fill = FillConfig {
            method: c.fill,
            period_ms: period,
            tolerance_ms: period / 2,
            max_gap_ms: c.max_gap_ms.max(u64::from(period)),
            seed: c.seed,
            use_seq: meta.has_seq,
            band: c.validate.band,
        };
        let filler = GapFiller::try_new(fill).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sensor {} session {} (period {} ms): invalid gap settings: {e}",
                    key.0, key.1, period
                ),
            )
        })?;
        let validator = Validator::try_new(c.validate).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid validation limits: {e}"),
            )
        })?;
        let reorder = StreamReorder::new(c.lateness_ms, period, meta.has_seq);
        let aggregator = c
            .window_ms
            .and_then(|w| Aggregator::try_new(w, period, c.validate.band).ok());
        let report = StreamReport {
            sensor: key.0,
            session: key.1,
            has_seq: meta.has_seq,
            period_ms: period,
            clock: match meta.clock {
                ClockKind::Unix => "unix",
                ClockKind::Boot => "boot",
            },
            ..StreamReport::default()
        };
        let mark = self.checkpoint.streams.get(&key).copied();
        let mut s = Stream {
            reorder,
            validator,
            filler,
            content: (!meta.has_seq).then(|| ContentDedup {
                seen: BTreeSet::new(),
                horizon: 0,
            }),
            extra: Counters::default(),
            ck: mark.map(|m| m.key()),
            out: StreamOut {
                key,
                meta: StreamMeta {
                    period_ms: period,
                    ..*meta
                },
                report,
                aggregator,
                pending: None,
                skip_through: mark.map(|m| m.key()),
                last_emitted: mark.map(|m| m.key()),
                last_measured: mark.and_then(|m| m.anchor_reading()),
                fill_state: None,
            },
        };
        if let Some(anchor) = mark.and_then(|m| m.anchor_reading()) {
            // The anchor of the gap after the checkpoint: validated and fed, never emitted.
            // The filler goes on from its state after the anchor where the checkpoint has it.
            let flags = s.validator.check(&anchor);
            let state = self
                .checkpoint
                .fills
                .get(&key)
                .and_then(FillMark::to_state::<FILL_HISTORY>)
                .filter(|st| st.last.map(|r| r.reading) == Some(anchor));
            match state {
                Some(st) => s.filler.restore(st),
                None => {
                    let rec = Record::measured(anchor, flags.quality(), flags);
                    s.filler.push(rec, &mut |_| {});
                }
            }
        }
        Ok(s)
    }

    /// Takes one item of input number `input`.
    pub fn push_item(&mut self, item: Item, sinks: &mut Sinks) -> io::Result<()> {
        match item {
            Item::Reading(r) => self.push_reading(r, sinks),
            Item::Header(h) => {
                self.headers.entry((h.sensor, h.session)).or_insert(h);
                Ok(())
            }
            Item::Stats { sensor, stats } => {
                self.edge.insert((sensor, stats.session), stats);
                Ok(())
            }
            Item::Fault {
                sensor,
                session,
                fault,
            } => {
                let (n, list) = self.faults.entry((sensor, session)).or_default();
                *n += 1;
                if list.len() < MAX_LISTED_OUTAGES {
                    list.push(FaultReport {
                        seq: fault.seq,
                        kind: match fault.kind {
                            mend_core::FaultKind::NoAcknowledge => "no_acknowledge",
                            mend_core::FaultKind::Bus => "bus",
                            mend_core::FaultKind::Timeout => "timeout",
                            mend_core::FaultKind::InvalidData => "invalid_data",
                        },
                    });
                }
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
        let r = item.reading;
        self.latest_seen = Some(self.latest_seen.map_or(r.timestamp, |l| l.max(r.timestamp)));
        let idx = self.stream_index(&r, &item.meta, sinks)?;
        let Some(s) = self.streams.get_mut(idx) else {
            return Ok(());
        };
        let rep = &mut s.out.report;
        rep.received += 1;
        rep.first_ms = Some(rep.first_ms.map_or(r.timestamp, |f| f.min(r.timestamp)));
        rep.last_ms = Some(rep.last_ms.map_or(r.timestamp, |l| l.max(r.timestamp)));
        if s.ck.is_some_and(|ck| order_key(&r) <= ck) {
            rep.before_checkpoint += 1;
            return dead_letter(sinks, &item, &r, Refusal::BeforeCheckpoint);
        }
        if let Some(cd) = s.content.as_mut() {
            let key = (r.timestamp, r.celsius.to_bits());
            if r.timestamp < cd.horizon {
                s.extra.input = s.extra.input.wrapping_add(1);
                s.extra.rejected = s.extra.rejected.wrapping_add(1);
                return dead_letter(sinks, &item, &r, Refusal::Horizon(cd.horizon));
            }
            if !cd.seen.insert(key) {
                s.extra.input = s.extra.input.wrapping_add(1);
                s.extra.duplicate = s.extra.duplicate.wrapping_add(1);
                return Ok(());
            }
        }
        match s.reorder.push(r) {
            Admit::Held | Admit::Duplicate => {}
            Admit::Rejected(e) => dead_letter(sinks, &item, &r, Refusal::BeyondWindow(e))?,
            Admit::Released(rel) => match rel.kind {
                ReleaseKind::Late => dead_letter(sinks, &item, &rel.reading, Refusal::Late)?,
                ReleaseKind::InOrder | ReleaseKind::Evicted => {
                    process(s, &self.cfg, rel.reading, sinks)?;
                }
            },
        }
        while let Some(rel) = s.reorder.pop_ready() {
            process(s, &self.cfg, rel.reading, sinks)?;
        }
        if let (Some(cd), Some(wm)) = (s.content.as_mut(), s.reorder.watermark()) {
            if wm > cd.horizon {
                cd.horizon = wm;
                while cd.seen.first().is_some_and(|f| f.0 < wm) {
                    cd.seen.pop_first();
                }
            }
        }
        Ok(())
    }

    /// Ends the replay: flushes every stream in `(sensor, session)` order.
    pub fn finish(&mut self, sinks: &mut Sinks) -> io::Result<()> {
        let order: Vec<usize> = self.index.values().copied().collect();
        for i in order {
            let Some(s) = self.streams.get_mut(i) else {
                continue;
            };
            while let Some(rel) = s.reorder.pop_any() {
                process(s, &self.cfg, rel.reading, sinks)?;
            }
            if self.cfg.until.is_none() {
                // Without --until, the last reading fed is the last one emitted.
                let state = s.filler.state();
                if state.last.map(|r| r.reading) == s.out.last_measured {
                    s.out.fill_state = Some(Box::new(state));
                }
            }
            s.filler.finish();
            if let Some(agg) = s.out.aggregator.as_mut() {
                let mut done = Vec::new();
                agg.finish(&mut |a| done.push(a));
                for a in done {
                    push_aggregate(&mut s.out, a, sinks)?;
                }
            }
            if let Some(p) = s.out.pending.take() {
                if let Some(w) = sinks.aggregates.as_mut() {
                    w.write(s.out.key.0, s.out.key.1, &p)?;
                }
            }
        }
        sinks.records.flush()?;
        if let Some(w) = sinks.aggregates.as_mut() {
            w.flush()?;
        }
        sinks.dead.flush()
    }

    /// The per-stream reports, in `(sensor, session)` order, including streams only seen in
    /// stats or fault frames.
    pub fn reports(&self) -> Vec<StreamReport> {
        let mut out: BTreeMap<(u32, u32), StreamReport> = BTreeMap::new();
        for (key, i) in &self.index {
            if let Some(s) = self.streams.get(*i) {
                let mut rep = s.out.report.clone();
                let mut c = s.reorder.counters();
                c.add(&s.extra);
                rep.counters = c;
                rep.balanced = c.balanced(s.reorder.len());
                out.insert(*key, rep);
            }
        }
        for (key, h) in &self.headers {
            out.entry(*key).or_insert_with(|| StreamReport {
                sensor: h.sensor,
                session: h.session,
                has_seq: true,
                period_ms: h.period_ms,
                clock: match h.clock {
                    ClockKind::Unix => "unix",
                    ClockKind::Boot => "boot",
                },
                balanced: true,
                ..StreamReport::default()
            });
        }
        for (key, stats) in &self.edge {
            let rep = out.entry(*key).or_insert_with(|| StreamReport {
                sensor: key.0,
                session: key.1,
                balanced: true,
                ..StreamReport::default()
            });
            let c = stats.counters;
            rep.edge = Some(EdgeReport {
                stats: *stats,
                counters: c,
                balanced: u64::from(c.input) >= c.out(),
                sent: u64::from(c.emitted) + u64::from(c.late) + u64::from(c.evicted),
                ring_dropped: stats.ring_dropped,
                sensor_faults: stats.sensor_faults,
            });
        }
        for (key, (n, list)) in &self.faults {
            let rep = out.entry(*key).or_insert_with(|| StreamReport {
                sensor: key.0,
                session: key.1,
                balanced: true,
                ..StreamReport::default()
            });
            rep.faults = *n;
            rep.fault_list = list.clone();
        }
        out.into_values().collect()
    }

    /// The session headers seen, by `(sensor, session)`.
    pub fn headers(&self) -> &BTreeMap<(u32, u32), Header> {
        &self.headers
    }

    /// The checkpoint after this run: the old one, updated with what this run emitted.
    pub fn checkpoint(&self) -> Checkpoint {
        let mut ck = self.checkpoint.clone();
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
                    anchor: s.out.last_measured.map(|r| Anchor {
                        seq: r.seq,
                        timestamp: r.timestamp,
                        celsius_bits: r.celsius.to_bits(),
                    }),
                },
            );
            match s.out.fill_state.as_deref().and_then(FillMark::from_state) {
                Some(m) => ck.fills.insert(*key, m),
                None => ck.fills.remove(key),
            };
        }
        ck
    }
}

/// Why a reading is dead-lettered by the engine.
enum Refusal {
    BeforeCheckpoint,
    Horizon(u64),
    BeyondWindow(mend_core::ReorderError),
    Late,
}

#[cold]
#[inline(never)]
fn dead_letter(sinks: &mut Sinks, item: &ReadingItem, r: &Reading, why: Refusal) -> io::Result<()> {
    use crate::timefmt::to_rfc3339;
    let (reason, detail) = match why {
        Refusal::BeforeCheckpoint => (
            "before_checkpoint",
            format!(
                "reading of sensor {} session {} at {} was emitted by an earlier run",
                r.sensor,
                r.session,
                to_rfc3339(r.timestamp)
            ),
        ),
        Refusal::Horizon(h) => (
            "older_than_dedup_horizon",
            format!(
                "reading at {} is older than the dedup horizon {} (raise --lateness)",
                to_rfc3339(r.timestamp),
                to_rfc3339(h)
            ),
        ),
        Refusal::BeyondWindow(e) => ("beyond_dedup_window", format!("reading seq {}: {e}", r.seq)),
        Refusal::Late => (
            "late",
            format!(
                "reading seq {} at {} arrived after later readings of its stream were written (raise --lateness)",
                r.seq,
                to_rfc3339(r.timestamp)
            ),
        ),
    };
    sinks.dead.push(&DeadLetter {
        input: item.input,
        location: item.at,
        reason,
        detail,
    })
}

/// Validates one released reading and runs it through the gap filler.
fn process(s: &mut Stream, cfg: &EngineConfig, r: Reading, sinks: &mut Sinks) -> io::Result<()> {
    let flags = s.validator.check(&r);
    let rec = Record::measured(r, flags.quality(), flags);
    let out = &mut s.out;
    let mut err: io::Result<()> = Ok(());
    let emitted_before = out.report.measured;
    s.filler.push(rec, &mut |ev| {
        if err.is_err() {
            return;
        }
        // By reference: the record is read where the gap filler put it, not copied out.
        err = match &ev {
            GapEvent::Record(rec) => emit(out, cfg, rec, sinks),
            GapEvent::Gap {
                before,
                after,
                missing,
            } => {
                if cfg.overlaps_window(before.timestamp, after.timestamp) {
                    out.report.gaps += 1;
                    out.report.missing += *missing;
                }
                Ok(())
            }
            GapEvent::Outage(o) => outage(out, cfg, o, sinks),
        };
    });
    if cfg.until.is_some() && out.report.measured != emitted_before {
        // With --until the filler reads past the last reading emitted: keep its state at
        // that reading for the checkpoint (without --until it is taken once, at the end).
        out.fill_state = Some(Box::new(s.filler.state()));
    }
    err
}

fn outage(
    out: &mut StreamOut,
    cfg: &EngineConfig,
    o: &Outage,
    sinks: &mut Sinks,
) -> io::Result<()> {
    if !cfg.overlaps_window(o.before.timestamp, o.after.timestamp) {
        return Ok(());
    }
    if out
        .skip_through
        .is_some_and(|k| (o.after.timestamp, o.after.seq) <= (k.0, k.1))
    {
        return Ok(());
    }
    out.report.outages += 1;
    out.report.missing_in_outages += o.missing;
    if out.report.outage_list.len() < MAX_LISTED_OUTAGES {
        out.report.outage_list.push(OutageReport {
            start_ms: o.before.timestamp,
            end_ms: o.after.timestamp,
            missing: o.missing,
        });
    }
    sinks.records.outage(o)?;
    if cfg.emit_outages {
        for slot in o.slots(out.meta.period_ms) {
            if cfg.until.is_some_and(|u| slot.timestamp > u) {
                break;
            }
            let before_checkpoint = out
                .skip_through
                .is_some_and(|k| (slot.timestamp, slot.seq) <= (k.0, k.1));
            if cfg.in_window(slot.timestamp) && !before_checkpoint {
                sinks.records.missing(o, slot, &out.meta)?;
            }
        }
    }
    Ok(())
}

#[inline]
fn emit(
    out: &mut StreamOut,
    cfg: &EngineConfig,
    rec: &Record,
    sinks: &mut Sinks,
) -> io::Result<()> {
    let r = &rec.reading;
    if !cfg.in_window(r.timestamp) {
        out.report.outside_window += 1;
        return Ok(());
    }
    let key = order_key(r);
    if out.skip_through.is_some_and(|k| key <= k) {
        // A fill before the checkpoint: the earlier run wrote it.
        return Ok(());
    }
    let rep = &mut out.report;
    rep.records += 1;
    match rec.origin {
        Origin::Measured => {
            rep.measured += 1;
            out.last_measured = Some(*r);
        }
        Origin::Synthetic(_) => rep.synthetic += 1,
    }
    match rec.quality {
        Quality::Good => rep.good += 1,
        Quality::Doubtful => rep.doubtful += 1,
        Quality::Bad => rep.bad += 1,
    }
    if rep.first_out_ms.is_none() {
        rep.first_out_ms = Some(r.timestamp);
    }
    rep.last_out_ms = Some(r.timestamp);
    out.last_emitted = Some(key);
    if let Some(agg) = out.aggregator.as_mut() {
        let mut done: Option<Aggregate> = None;
        let mut more: Vec<Aggregate> = Vec::new();
        agg.push(rec, &mut |a| {
            if done.is_none() {
                done = Some(a);
            } else {
                more.push(a);
            }
        });
        if let Some(a) = done {
            push_aggregate(out, a, sinks)?;
            for a in more {
                push_aggregate(out, a, sinks)?;
            }
        }
    }
    sinks.records.record(rec, &out.meta)
}

/// Merges a partial aggregate with the pending one of the same window, or writes the
/// pending one and keeps this.
fn push_aggregate(out: &mut StreamOut, a: Aggregate, sinks: &mut Sinks) -> io::Result<()> {
    match out.pending.as_mut() {
        Some(p) if p.window_start == a.window_start => {
            p.merge(&a);
            Ok(())
        }
        _ => {
            let prev = out.pending.replace(a);
            match (prev, sinks.aggregates.as_mut()) {
                (Some(p), Some(w)) => w.write(out.key.0, out.key.1, &p),
                _ => Ok(()),
            }
        }
    }
}
