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
pub mod spill;

use std::collections::{BTreeMap, HashMap};
use std::io;

use mend_core::{
    Admit, Aggregate, Aggregator, ClockKind, Counters, FillConfig, FillMethod, GapEvent, GapFiller,
    Header, Origin, Outage, Quality, Reading, Record, ReleaseKind, Reorder, Stats, ValidateConfig,
    Validator,
};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{order_key, Checkpoint, OrderKey, StreamMark};
use crate::engine::clock::{ClockGuard, GuardState, Verdict};
use crate::engine::spill::{SkipList, SpillCursor, SpillSet, SpillWriter};
use crate::input::{DeadLetter, Item, Location, ReadingItem, StreamMeta};
use crate::sink::dlq::DeadLetterLog;
use crate::sink::{push_aggregate_row, RecordSink};

/// The duplicate windows a stream may get, in seqs: the smallest that covers twice the
/// lateness (in periods) is chosen per stream, because the window costs time on every new
/// seq. A reading further below the newest seq than its window cannot be checked on arrival;
/// it is set aside and checked in its place on the second pass.
pub const DEDUP_WINDOWS: [u64; 3] = [256, 1024, 4096];
/// The most readings a stream's reorder buffer holds, for each of the [`DEDUP_WINDOWS`]:
/// twice the window, so that a stream evicts early only when its readings come much faster
/// than its period says.
pub const REORDER_CAPACITIES: [usize; 3] = [512, 2048, 4096];
/// The room a stream's reorder buffer starts with; it grows to [`GROWN_CAPACITY`], then to
/// its full capacity, each time just before it would fill, which gives the same releases as
/// a buffer that had its full capacity from the start.
pub const FIRST_CAPACITY: usize = 4;
/// The second size of a stream's reorder buffer.
pub const GROWN_CAPACITY: usize = 64;
/// Values of validator history (spike and stuck checks).
pub const VALIDATOR_HISTORY: usize = 64;
/// Values of gap-filler history (stochastic fills).
pub const FILL_HISTORY: usize = 16;
/// Outages listed per stream in the report (all are counted).
pub const MAX_LISTED_OUTAGES: usize = 100;

const NARROW: usize = REORDER_CAPACITIES[0];
const MEDIUM: usize = REORDER_CAPACITIES[1];
const WIDE: usize = REORDER_CAPACITIES[2];
const FIRST: usize = FIRST_CAPACITY;
const GROWN: usize = GROWN_CAPACITY;

/// A stream's reorder buffer: its duplicate window sized to the lateness, its room grown
/// with what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StreamReorder {
    N0(Box<Reorder<FIRST, 1, 8>>),
    N1(Box<Reorder<GROWN, 1, 8>>),
    N2(Box<Reorder<NARROW, 1, 8>>),
    M0(Box<Reorder<FIRST, 1, 32>>),
    M1(Box<Reorder<GROWN, 1, 32>>),
    M2(Box<Reorder<MEDIUM, 1, 32>>),
    W0(Box<Reorder<FIRST, 1, 128>>),
    W1(Box<Reorder<GROWN, 1, 128>>),
    W2(Box<Reorder<WIDE, 1, 128>>),
}

macro_rules! each {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            StreamReorder::N0($r) => $e,
            StreamReorder::N1($r) => $e,
            StreamReorder::N2($r) => $e,
            StreamReorder::M0($r) => $e,
            StreamReorder::M1($r) => $e,
            StreamReorder::M2($r) => $e,
            StreamReorder::W0($r) => $e,
            StreamReorder::W1($r) => $e,
            StreamReorder::W2($r) => $e,
        }
    };
}

/// Moves a buffer into a larger one; on the impossible failure, keeps the old one (which
/// then evicts early, counted, rather than losing anything). Runs on the replay's main
/// thread, whose stack holds the largest buffer (about 200 KB) on its way to the heap.
#[allow(clippy::boxed_local)] // the buffers live boxed; taking one by value is the point
#[inline(never)]
#[cold]
fn grown<const N: usize, const M: usize, const W: usize>(
    b: Box<Reorder<N, 1, W>>,
) -> Result<Box<Reorder<M, 1, W>>, Box<Reorder<N, 1, W>>> {
    match (*b).resize::<M>() {
        Ok(r) => Ok(Box::new(r)),
        Err(r) => Err(Box::new(r)),
    }
}

impl StreamReorder {
    fn new(lateness_ms: u64, period_ms: u32, dedup: bool) -> Self {
        let need = (lateness_ms / u64::from(period_ms.max(1)))
            .saturating_mul(2)
            .saturating_add(64);
        // Without identity dedup (input without seq) the window is never used, but the
        // capacity still follows the lateness.
        if need <= DEDUP_WINDOWS[0] {
            let r = Reorder::new(lateness_ms);
            StreamReorder::N0(Box::new(if dedup { r } else { r.without_dedup() }))
        } else if need <= DEDUP_WINDOWS[1] {
            let r = Reorder::new(lateness_ms);
            StreamReorder::M0(Box::new(if dedup { r } else { r.without_dedup() }))
        } else {
            let r = Reorder::new(lateness_ms);
            StreamReorder::W0(Box::new(if dedup { r } else { r.without_dedup() }))
        }
    }

    /// Grows the buffer when it is full and a larger size exists.
    #[cold]
    fn grow(&mut self) {
        let placeholder = StreamReorder::N0(Box::new(Reorder::new(0)));
        *self = match std::mem::replace(self, placeholder) {
            StreamReorder::N0(b) => grown(b).map_or_else(StreamReorder::N0, StreamReorder::N1),
            StreamReorder::N1(b) => grown(b).map_or_else(StreamReorder::N1, StreamReorder::N2),
            StreamReorder::M0(b) => grown(b).map_or_else(StreamReorder::M0, StreamReorder::M1),
            StreamReorder::M1(b) => grown(b).map_or_else(StreamReorder::M1, StreamReorder::M2),
            StreamReorder::W0(b) => grown(b).map_or_else(StreamReorder::W0, StreamReorder::W1),
            StreamReorder::W1(b) => grown(b).map_or_else(StreamReorder::W1, StreamReorder::W2),
            full => full,
        };
    }

    #[inline]
    fn push(&mut self, r: Reading) -> Admit {
        let full = match self {
            StreamReorder::N0(b) => b.len() >= FIRST,
            StreamReorder::M0(b) => b.len() >= FIRST,
            StreamReorder::W0(b) => b.len() >= FIRST,
            StreamReorder::N1(b) => b.len() >= GROWN,
            StreamReorder::M1(b) => b.len() >= GROWN,
            StreamReorder::W1(b) => b.len() >= GROWN,
            // The largest size never grows: it evicts, counted.
            _ => false,
        };
        if full {
            self.grow();
        }
        each!(self, b => b.push(r))
    }
    #[inline]
    fn pop_ready(&mut self) -> Option<mend_core::Release> {
        each!(self, b => b.pop_ready())
    }
    fn pop_any(&mut self) -> Option<mend_core::Release> {
        each!(self, b => b.pop_any())
    }
    fn counters(&self) -> Counters {
        each!(self, b => b.counters())
    }
    fn len(&self) -> usize {
        each!(self, b => b.len())
    }
    fn set_lateness_ms(&mut self, ms: u64) {
        each!(self, b => b.set_lateness_ms(ms));
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
    /// Hold back each stream's unsettled tail (a checkpointed run that is not final).
    pub hold_back: bool,
    /// Write the slots of outages as rows without a value, for a regular grid
    /// (`--emit-outages`); otherwise outages are only reported.
    pub emit_outages: bool,
    /// A session the checkpoint marks as ended does not end the live session of its sensor
    /// when a reading of it comes again, and stays marked ended. For a run over an input
    /// whose beginning was dropped once it was written (a fleet's trimmed raw stream): a run
    /// over the whole input would have found that session ended by a newer one already.
    pub resume_ended: bool,
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
            hold_back: false,
            emit_outages: false,
            resume_ended: false,
        }
    }
}

impl EngineConfig {
    /// How long a stream holds a reading before releasing it: the lateness, and in a
    /// checkpointed run that is not final also the max gap, so that nothing is written that
    /// a reading still within lateness and max-gap of the end could change.
    pub fn release_after_ms(&self) -> u64 {
        if self.hold_back {
            self.lateness_ms.saturating_add(self.max_gap_ms)
        } else {
            self.lateness_ms
        }
    }

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
    /// Records not written again because an earlier checkpointed run wrote them.
    pub already_emitted: u64,
    /// Readings a first pass set aside because they arrived too far out of place.
    pub set_aside: u64,
    /// Readings set aside by the first pass and put in their place by the second.
    pub placed: u64,
    /// Readings held back as the unsettled tail of a checkpointed run (a later run or
    /// `--final` writes them).
    pub held_back: u64,
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
    /// Readings received that the node sent again in answer to a resend (replayed frames),
    /// repeats included: measured readings, recovered rather than filled.
    pub recovered_by_resend: u64,
    /// Heartbeat frames received.
    pub heartbeats: u64,
    /// Fault frames received.
    pub faults: u64,
    /// The first faults: seq and kind.
    pub fault_list: Vec<FaultReport>,
    /// The last edge stats frame (boxed: most streams of a long log have ended, and their
    /// reports should stay small).
    pub edge: Option<Box<EdgeReport>>,
    /// The earliest reading received, ms.
    pub first_ms: Option<u64>,
    /// The latest reading received, ms.
    pub last_ms: Option<u64>,
    /// The first record written, ms.
    pub first_out_ms: Option<u64>,
    /// The last record written, ms.
    pub last_out_ms: Option<u64>,
}

/// Identity for readings without a seq: the timestamp. Covers the readings still held by
/// the reorder buffer (and the last released), so it is bounded by the buffer's capacity.
struct ByTime {
    /// Timestamp → the value kept and where it was read.
    seen: BTreeMap<u64, (i32, Location)>,
}

/// Writes merged aggregates as CSV rows.
pub struct AggregateOut<'w> {
    w: Box<dyn io::Write + 'w>,
    row: Vec<u8>,
}

impl<'w> AggregateOut<'w> {
    /// Aggregates rows to `w`; the header is written at once.
    pub fn new(mut w: Box<dyn io::Write + 'w>) -> io::Result<Self> {
        w.write_all(crate::sink::AGG_HEADER.as_bytes())?;
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

/// What a stream keeps for its whole life, ended or not: its report and what it wrote.
struct StreamOut {
    key: (u32, u32),
    meta: StreamMeta,
    report: StreamReport,
    /// Readings counted outside the reorder buffer: repeats and conflicts of readings without
    /// a seq, clock glitches, readings after the stream ended.
    extra: Counters,
    aggregator: Option<Box<Aggregator<4>>>,
    pending: Option<Box<Aggregate>>,
    /// Records up to this key were written by an earlier checkpointed run.
    skip_through: Option<OrderKey>,
    /// Aggregate windows starting before this were written by an earlier run.
    agg_through: Option<u64>,
    /// The last record computed (written or not).
    last_emitted: Option<OrderKey>,
    /// The end of the last aggregate window written.
    agg_written: Option<u64>,
}

/// The pipeline of a stream that can still take readings.
struct Live {
    reorder: StreamReorder,
    validator: Validator<VALIDATOR_HISTORY>,
    filler: GapFiller<FILL_HISTORY>,
    guard: ClockGuard,
    by_time: Option<ByTime>,
    /// The second pass's set-aside readings of this stream.
    spill: Option<SpillCursor>,
    /// The last reading released by the reorder buffer.
    released: Option<Reading>,
    /// Released readings refused because their seq was not above the one before.
    seq_refused: u32,
}

struct Stream {
    /// `None` once the stream ended: a newer session of its sensor started, or the replay
    /// finished.
    live: Option<Box<Live>>,
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

/// Which pass of a replay an engine runs, and what it does with readings that arrive too far
/// out of place.
pub enum Pass {
    /// The only pass (input that cannot be read twice): they are dead-lettered as `late`.
    Only,
    /// The first pass: they are set aside here.
    First(SpillWriter),
    /// The second pass: what the first set aside is put in its place.
    Second(SpillSet),
}

/// The replay engine: streams by `(sensor, session)`, fed reading by reading.
pub struct Engine {
    cfg: EngineConfig,
    streams: Vec<Stream>,
    index: BTreeMap<(u32, u32), usize>,
    /// Per sensor, its stream that can still take readings.
    live_by_sensor: HashMap<u32, usize>,
    last: Option<((u32, u32), usize)>,
    checkpoint: Checkpoint,
    headers: BTreeMap<(u32, u32), Header>,
    edge: BTreeMap<(u32, u32), Stats>,
    faults: BTreeMap<(u32, u32), (u64, Vec<FaultReport>)>,
    /// Per (sensor, session): replayed readings received.
    replayed: BTreeMap<(u32, u32), u64>,
    /// Per (sensor, session): heartbeats received.
    heartbeats: BTreeMap<(u32, u32), u64>,
    latest_seen: Option<u64>,
    pass: Pass,
    /// Second pass: per input, the positions of readings taken from the spill instead.
    skips: Vec<SkipList>,
    /// Per input, the position of the last reading read (for the next checkpoint).
    seen: Vec<u64>,
    /// The clock check's answer, reused from reading to reading.
    verdict: Verdict,
}

/// The settings a stream's state depends on: a state is continued only under the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ConfigMark {
    fill: FillMethod,
    max_gap_ms: u64,
    lateness_ms: u64,
    validate: ValidateConfig,
    seed: u64,
    from: Option<u64>,
    until: Option<u64>,
    emit_outages: bool,
}

impl ConfigMark {
    fn of(c: &EngineConfig) -> Self {
        Self {
            fill: c.fill,
            max_gap_ms: c.max_gap_ms,
            lateness_ms: c.lateness_ms,
            validate: c.validate,
            seed: c.seed,
            from: c.from,
            until: c.until,
            emit_outages: c.emit_outages,
        }
    }
}

/// What a live stream's pipeline holds between two readings: its reorder buffer with its
/// duplicate window, its validator's history, its gap filler's neighbours, its clock.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StreamState {
    key: (u32, u32),
    has_seq: bool,
    period_ms: u32,
    clock: ClockKind,
    reorder: StreamReorder,
    validator: Validator<VALIDATOR_HISTORY>,
    filler: GapFiller<FILL_HISTORY>,
    guard: GuardState,
    released: Option<Reading>,
    seq_refused: u32,
    extra: Counters,
}

/// The state of an engine's live streams at the end of its input and before
/// [`Engine::finish`]: a later run that restores it ([`Engine::restore`]) and reads only what
/// came after computes exactly what one run over both inputs computes. Its size is bounded
/// per stream (the reorder buffer, the duplicate window, the validator and filler
/// histories), never by the length of the input.
///
/// Only the pipeline is carried: what a stream wrote is in the checkpoint, and its report
/// counts only what the run that makes it read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineState {
    config: ConfigMark,
    streams: Vec<StreamState>,
}

/// Why the state of an engine cannot be carried to a later run: the run that continues it
/// must read the input again from an earlier state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uncaptured {
    /// A reading held by the clock check waits for the next one, and names its place in
    /// this run's input.
    ClockHeld {
        /// The sensor.
        sensor: u32,
    },
    /// A reading a first pass set aside waits for its place.
    SetAsideWaiting {
        /// The sensor.
        sensor: u32,
    },
    /// Input without a seq: its identities are timestamps kept with their input places.
    WithoutSeq {
        /// The sensor.
        sensor: u32,
    },
    /// Aggregate windows are open (`window_ms`).
    Aggregates,
}

impl std::fmt::Display for Uncaptured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uncaptured::ClockHeld { sensor } => write!(
                f,
                "sensor {sensor}: a reading held by the clock check waits for the next one"
            ),
            Uncaptured::SetAsideWaiting { sensor } => write!(
                f,
                "sensor {sensor}: a reading set aside by the first pass waits for its place"
            ),
            Uncaptured::WithoutSeq { sensor } => write!(
                f,
                "sensor {sensor}: readings without a seq are identified by their input places"
            ),
            Uncaptured::Aggregates => f.write_str("aggregate windows are open"),
        }
    }
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
    /// The spill of a first pass could not be read.
    #[error("cannot read the readings set aside by the first pass: {0}")]
    Spill(io::Error),
    /// A stored state was made with other settings.
    #[error("the stored engine state was made with other repair settings; continue it with the same settings")]
    OtherSettings,
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
            headers: BTreeMap::new(),
            edge: BTreeMap::new(),
            faults: BTreeMap::new(),
            replayed: BTreeMap::new(),
            heartbeats: BTreeMap::new(),
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
                self.headers.remove(&key);
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
        let aggregator = c
            .window_ms
            .and_then(|w| Aggregator::try_new(w, period, c.validate.band).ok())
            .map(Box::new);
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
        let spill = match &self.pass {
            Pass::Second(set) => set.cursor(key)?,
            _ => None,
        };
        // A clock that strays further than the lateness or a gap can explain is suspect.
        let tolerance = c.max_gap_ms.max(c.lateness_ms).max(2 * u64::from(period));
        Ok(Stream {
            live: Some(Box::new(Live {
                reorder: StreamReorder::new(c.release_after_ms(), period, meta.has_seq),
                validator,
                filler,
                guard: ClockGuard::new(tolerance, meta.has_seq),
                by_time: (!meta.has_seq).then(|| ByTime {
                    seen: BTreeMap::new(),
                }),
                spill,
                released: None,
                seq_refused: 0,
            })),
            out: StreamOut {
                key,
                meta: StreamMeta {
                    period_ms: period,
                    ..*meta
                },
                report,
                extra: Counters::default(),
                aggregator,
                pending: None,
                skip_through: mark.map(|m| m.key()),
                agg_through: mark.and_then(|m| m.agg_through),
                last_emitted: mark.map(|m| m.key()),
                agg_written: mark.and_then(|m| m.agg_through),
            },
        })
    }

    /// Takes one item of input number `input`.
    pub fn push_item(&mut self, item: Item, sinks: &mut Sinks) -> io::Result<()> {
        match item {
            Item::Reading(r) => {
                if r.replayed {
                    let key = (r.reading.sensor, r.reading.session);
                    *self.replayed.entry(key).or_default() += 1;
                }
                self.push_reading(r, sinks)
            }
            Item::Heartbeat { sensor, session } => {
                *self.heartbeats.entry((sensor, session)).or_default() += 1;
                Ok(())
            }
            Item::Header(h) => {
                // Kept only for a session no reading has been seen of yet: the report of a
                // session whose readings were all lost still names its period and clock.
                let key = (h.sensor, h.session);
                if !self.index.contains_key(&key) {
                    self.headers.entry(key).or_insert(h);
                }
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
            return self.too_late(idx, item, Refusal::AfterEnd, sinks);
        };
        if live.guard.confirm_if_fits(&item) {
            self.admit(idx, item, sinks)?;
            return self.release_ready(idx, sinks);
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
            self.admit(idx, x, sinks)?;
        }
        self.verdict = verdict;
        self.release_ready(idx, sinks)
    }

    /// Passes a reading that fits its stream's clock on to identity dedup and the reorder
    /// buffer.
    fn admit(&mut self, idx: usize, x: ReadingItem, sinks: &mut Sinks) -> io::Result<()> {
        let cfg = &self.cfg;
        let Some(s) = self.streams.get_mut(idx) else {
            return Ok(());
        };
        let Some(live) = s.live.as_mut() else {
            return Ok(());
        };
        let r = x.reading;
        if let Some(bt) = live.by_time.as_mut() {
            if live.released.is_some_and(|l| r.timestamp < l.timestamp) {
                s.out.extra.input = s.out.extra.input.wrapping_add(1);
                s.out.extra.late = s.out.extra.late.wrapping_add(1);
                return self.too_late(idx, x, Refusal::Late, sinks);
            }
            match bt.seen.get(&r.timestamp) {
                Some(&(v, _)) if v == r.celsius.to_bits() => {
                    s.out.extra.input = s.out.extra.input.wrapping_add(1);
                    s.out.extra.duplicate = s.out.extra.duplicate.wrapping_add(1);
                    return Ok(());
                }
                Some(&(kept, at)) => {
                    s.out.extra.input = s.out.extra.input.wrapping_add(1);
                    s.out.extra.rejected = s.out.extra.rejected.wrapping_add(1);
                    return dead_letter(sinks, &x, &r, Refusal::Conflicting { kept, at });
                }
                None => {
                    bt.seen.insert(r.timestamp, (r.celsius.to_bits(), x.at));
                }
            }
        }
        match live.reorder.push(r) {
            Admit::Held | Admit::Duplicate => Ok(()),
            Admit::Rejected(e) => self.too_late(idx, x, Refusal::BeyondWindow(e), sinks),
            Admit::Released(rel) => match rel.kind {
                ReleaseKind::Late => self.too_late(idx, x, Refusal::Late, sinks),
                ReleaseKind::InOrder | ReleaseKind::Evicted => release(s, cfg, rel.reading, sinks),
            },
        }
    }

    /// A reading that arrived after its place was written: set aside on a first pass,
    /// dead-lettered otherwise.
    #[cold]
    fn too_late(
        &mut self,
        idx: usize,
        x: ReadingItem,
        why: Refusal,
        sinks: &mut Sinks,
    ) -> io::Result<()> {
        match &mut self.pass {
            Pass::First(w) => {
                w.push(x)?;
                if let Some(s) = self.streams.get_mut(idx) {
                    s.out.report.set_aside += 1;
                }
                return Ok(());
            }
            Pass::Second(_) if matches!(why, Refusal::Late) => {
                // Placing set-aside readings changes nothing about when the others are
                // released, so a reading that the first pass did not find late is late now
                // only because it repeats one that was set aside then and placed now (the
                // first pass knew it as a duplicate of that one).
                if let Some(s) = self.streams.get_mut(idx) {
                    if s.live.as_ref().is_some_and(|l| l.spill.is_some()) {
                        s.out.extra.late = s.out.extra.late.wrapping_sub(1);
                        s.out.extra.duplicate = s.out.extra.duplicate.wrapping_add(1);
                        return Ok(());
                    }
                }
            }
            _ => {}
        }
        dead_letter(sinks, &x, &x.reading, why)
    }

    /// Releases what the watermark has passed (with the set-aside readings before each).
    fn release_ready(&mut self, idx: usize, sinks: &mut Sinks) -> io::Result<()> {
        let cfg = &self.cfg;
        let Some(s) = self.streams.get_mut(idx) else {
            return Ok(());
        };
        while let Some(rel) = s.live.as_mut().and_then(|l| l.reorder.pop_ready()) {
            release(s, cfg, rel.reading, sinks)?;
        }
        if let Some(live) = s.live.as_mut() {
            if let (Some(bt), Some(last)) = (live.by_time.as_mut(), live.released) {
                while bt
                    .seen
                    .first_key_value()
                    .is_some_and(|(t, _)| *t < last.timestamp)
                {
                    bt.seen.pop_first();
                }
            }
        }
        Ok(())
    }

    /// Ends stream `idx`: everything it holds goes out (at the end of a checkpointed run that
    /// is not final, only what is settled), and its pipeline is freed.
    fn end_stream(&mut self, idx: usize, at_finish: bool, sinks: &mut Sinks) -> io::Result<()> {
        // At the end of a run that holds back its tail, a reading held by the clock check is
        // undecided: the next reading decides, so it waits for the next run with the tail.
        // Otherwise a held reading that nothing contradicted goes on.
        let hold = at_finish && self.cfg.hold_back;
        let (verdict, undecided) = match self.streams.get_mut(idx) {
            Some(Stream {
                live: Some(live), ..
            }) if hold => (Verdict::default(), live.guard.held() as u64),
            Some(Stream {
                live: Some(live),
                out,
            }) => {
                let v = live.guard.finish();
                for g in &v.glitches {
                    out.extra.input = out.extra.input.wrapping_add(1);
                    out.extra.rejected = out.extra.rejected.wrapping_add(1);
                    let why = Refusal::ClockJump {
                        frontier: live.guard.frontier(),
                    };
                    dead_letter(sinks, g, &g.reading, why)?;
                }
                (v, 0)
            }
            _ => return Ok(()),
        };
        for x in verdict.pass {
            self.admit(idx, x, sinks)?;
        }
        let cfg = &self.cfg;
        let Some(s) = self.streams.get_mut(idx) else {
            return Ok(());
        };
        let Some(mut live) = s.live.take() else {
            return Ok(());
        };
        s.out.extra.input = s
            .out
            .extra
            .input
            .wrapping_add(u32::try_from(undecided).unwrap_or(u32::MAX));
        let settled = (at_finish && cfg.hold_back).then(|| {
            live.guard
                .frontier()
                .map_or(0, |f| f.saturating_sub(cfg.lateness_ms + cfg.max_gap_ms))
        });
        let mut held_back = undecided;
        while let Some(rel) = live.reorder.pop_any() {
            if settled.is_some_and(|b| rel.reading.timestamp > b) {
                held_back += 1;
                continue;
            }
            let key = (rel.reading.timestamp, rel.reading.seq);
            place_set_aside(&mut live, &mut s.out, cfg, Some(key), sinks)?;
            process_live(&mut live, &mut s.out, cfg, rel.reading, sinks)?;
        }
        // Popped by the loop above but not written: they stay held for a later run.
        let popped_unwritten = held_back - undecided;
        let last = settled.map(|b| (b, u32::MAX));
        place_set_aside(&mut live, &mut s.out, cfg, last, sinks)?;
        if let Some(cursor) = live.spill.as_mut() {
            // What is left at the end of a checkpointed run waits for the next one.
            while cursor.pop()?.is_some() {
                held_back += 1;
                s.out.extra.input = s.out.extra.input.wrapping_add(1);
                s.out.report.received += 1;
            }
        }
        live.filler.finish();
        if let Some(mut agg) = s.out.aggregator.take() {
            for a in agg.finish() {
                push_aggregate(&mut s.out, a, sinks)?;
            }
        }
        if let Some(p) = s.out.pending.take() {
            let complete = settled.is_none_or(|b| p.window_start + p.window_ms <= b + 1);
            write_aggregate(&mut s.out, *p, complete, sinks)?;
        }
        s.out.aggregator = None;
        let mut c = live.reorder.counters();
        c.emitted = c
            .emitted
            .wrapping_sub(u32::try_from(popped_unwritten).unwrap_or(u32::MAX));
        c.add(&s.out.extra);
        // Released, then refused for their seq: rejected, not emitted.
        c.emitted = c.emitted.wrapping_sub(live.seq_refused);
        c.rejected = c.rejected.wrapping_add(live.seq_refused);
        s.out.extra = Counters::default();
        let rep = &mut s.out.report;
        rep.held_back += held_back;
        rep.counters.add(&c);
        // Held-back readings stay in the books as held: a later run writes them.
        rep.balanced = rep
            .counters
            .balanced(usize::try_from(rep.held_back).unwrap_or(usize::MAX));
        Ok(())
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
        let mut out: Vec<StreamReport> = Vec::with_capacity(self.index.len() + self.headers.len());
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
        let bare = |sensor: u32, session: u32| StreamReport {
            sensor,
            session,
            balanced: true,
            ..StreamReport::default()
        };
        let key = |r: &StreamReport| (r.sensor, r.session);
        // Sessions whose readings were all lost: their header names period and clock.
        let unsorted = !self.headers.is_empty();
        for (_, h) in std::mem::take(&mut self.headers) {
            out.push(StreamReport {
                has_seq: true,
                period_ms: h.period_ms,
                clock: match h.clock {
                    ClockKind::Unix => "unix",
                    ClockKind::Boot => "boot",
                },
                ..bare(h.sensor, h.session)
            });
        }
        if unsorted {
            out.sort_by_key(key);
        }
        let slot = |out: &mut Vec<StreamReport>, k: (u32, u32)| -> usize {
            match out.binary_search_by_key(&k, key) {
                Ok(i) => i,
                Err(i) => {
                    out.insert(i, bare(k.0, k.1));
                    i
                }
            }
        };
        for (k, stats) in &self.edge {
            let i = slot(&mut out, *k);
            let c = stats.counters;
            if let Some(rep) = out.get_mut(i) {
                rep.edge = Some(Box::new(EdgeReport {
                    stats: *stats,
                    counters: c,
                    balanced: u64::from(c.input) >= c.out(),
                    sent: u64::from(c.emitted) + u64::from(c.late) + u64::from(c.evicted),
                    ring_dropped: stats.ring_dropped,
                    sensor_faults: stats.sensor_faults,
                }));
            }
        }
        for (k, (n, list)) in &self.faults {
            let i = slot(&mut out, *k);
            if let Some(rep) = out.get_mut(i) {
                rep.faults = *n;
                rep.fault_list = list.clone();
            }
        }
        for (k, n) in &self.replayed {
            let i = slot(&mut out, *k);
            if let Some(rep) = out.get_mut(i) {
                rep.recovered_by_resend = *n;
            }
        }
        for (k, n) in &self.heartbeats {
            let i = slot(&mut out, *k);
            if let Some(rep) = out.get_mut(i) {
                rep.heartbeats = *n;
            }
        }
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
            let Some(l) = s.live.as_mut() else {
                continue;
            };
            let sensor = s.out.key.0;
            if l.by_time.is_some() {
                return Ok(Err(Uncaptured::WithoutSeq { sensor }));
            }
            if let Some(cursor) = l.spill.as_mut() {
                if cursor.peek()?.is_some() {
                    return Ok(Err(Uncaptured::SetAsideWaiting { sensor }));
                }
            }
            let Some(guard) = l.guard.state() else {
                return Ok(Err(Uncaptured::ClockHeld { sensor }));
            };
            streams.push(StreamState {
                key: s.out.key,
                has_seq: s.out.meta.has_seq,
                period_ms: s.out.meta.period_ms,
                clock: s.out.meta.clock,
                reorder: l.reorder.clone(),
                validator: l.validator.clone(),
                filler: l.filler.clone(),
                guard,
                released: l.released,
                seq_refused: l.seq_refused,
                extra: s.out.extra,
            });
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
            let meta = StreamMeta {
                has_seq: st.has_seq,
                period_ms: st.period_ms,
                clock: st.clock,
            };
            let mut stream = self.new_stream(st.key, &meta).map_err(EngineError::Spill)?;
            if let Some(l) = stream.live.as_mut() {
                l.reorder = st.reorder.clone();
                // A run that holds back its tail releases later than a settled one; the
                // order of what is released does not change.
                l.reorder.set_lateness_ms(self.cfg.release_after_ms());
                l.validator = st.validator.clone();
                l.filler = st.filler.clone();
                l.guard = ClockGuard::from_state(st.guard);
                l.released = st.released;
                l.seq_refused = st.seq_refused;
            }
            stream.out.extra = st.extra;
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
                    agg_through: s.out.agg_written,
                    ended: self.live_by_sensor.get(&key.0) != Some(i),
                },
            );
        }
        ck
    }
}

/// Why a reading is dead-lettered by the engine.
enum Refusal {
    /// Its clock jumped away from its stream's.
    ClockJump { frontier: Option<u64> },
    /// Same timestamp, another value, no seq to tell them apart.
    Conflicting { kept: i32, at: Location },
    /// Its seq is not above the seq released before it.
    SeqBehind { before: u32 },
    /// Below the duplicate window.
    BeyondWindow(mend_core::ReorderError),
    /// After later readings of its stream were written.
    Late,
    /// After its session ended.
    AfterEnd,
    /// New since the last checkpointed run, which already wrote its place.
    Settled,
}

impl Refusal {
    /// The reason, as in the dead-letter file.
    fn name(&self) -> &'static str {
        match self {
            Refusal::ClockJump { .. } => "clock_jump",
            Refusal::Conflicting { .. } => "conflicting_duplicate",
            Refusal::SeqBehind { .. } => "seq_behind_time",
            Refusal::BeyondWindow(_) => "beyond_dedup_window",
            Refusal::Late | Refusal::AfterEnd | Refusal::Settled => "late",
        }
    }
}

#[cold]
#[inline(never)]
fn dead_letter(sinks: &mut Sinks, item: &ReadingItem, r: &Reading, why: Refusal) -> io::Result<()> {
    use crate::text::timefmt::to_rfc3339;
    let reason = why.name();
    let seq = if item.meta.has_seq {
        format!("seq {} ", r.seq)
    } else {
        String::new()
    };
    let detail = match why {
        Refusal::ClockJump { frontier } => format!(
            "reading {seq}at {} does not fit its stream's clock (last at {}), and the reading after it does: set aside as a clock glitch",
            to_rfc3339(r.timestamp),
            frontier.map_or_else(|| "-".to_string(), to_rfc3339),
        ),
        Refusal::Conflicting { kept, at } => format!(
            "reading at {} has value {} but the reading kept for that time ({at}) has {}: without a seq the timestamp is its identity, so the first is kept",
            to_rfc3339(r.timestamp),
            crate::text::numfmt::celsius_string(r.celsius),
            crate::text::numfmt::celsius_string(mend_core::Celsius::from_bits(kept)),
        ),
        Refusal::SeqBehind { before } => format!(
            "reading {seq}at {} comes after seq {before} in time: its clock disagrees with its seq",
            to_rfc3339(r.timestamp)
        ),
        Refusal::BeyondWindow(e) => format!("reading {seq}: {e}"),
        Refusal::Late => format!(
            "reading {seq}at {} arrived after later readings of its stream were written (raise --lateness, or replay a file rather than standard input)",
            to_rfc3339(r.timestamp)
        ),
        Refusal::Settled => format!(
            "reading {seq}at {} is new since the last checkpointed run, which already wrote its place (hold back more with a larger --lateness)",
            to_rfc3339(r.timestamp)
        ),
        Refusal::AfterEnd => format!(
            "reading {seq}at {} arrived after a newer session of sensor {} started",
            to_rfc3339(r.timestamp),
            r.sensor
        ),
    };
    sinks.dead.push(&DeadLetter {
        input: item.input,
        location: item.at,
        reason,
        detail,
    })
}

/// Processes a reading the reorder buffer released, after the set-aside readings that come
/// before it.
#[inline]
fn release(s: &mut Stream, cfg: &EngineConfig, r: Reading, sinks: &mut Sinks) -> io::Result<()> {
    match s.live.as_mut() {
        Some(live) => {
            if live.spill.is_some() {
                let key = (r.timestamp, r.seq);
                place_set_aside(live, &mut s.out, cfg, Some(key), sinks)?;
            }
            process_live(live, &mut s.out, cfg, r, sinks)
        }
        None => Ok(()),
    }
}

/// Second pass: processes the stream's set-aside readings that come before `before`
/// (`(timestamp, seq)`; all for `None`), just before the reading released next, so that
/// they take their place in the released order without changing what the reorder buffer
/// releases or when (a reading read in its place goes first when both have the same key,
/// as it did in the input). A copy of the reading released just before is a duplicate.
#[cold]
fn place_set_aside(
    live: &mut Live,
    out: &mut StreamOut,
    cfg: &EngineConfig,
    before: Option<(u64, u32)>,
    sinks: &mut Sinks,
) -> io::Result<()> {
    // Taken out while the stream processes what it yields; put back before returning.
    let Some(mut cursor) = live.spill.take() else {
        return Ok(());
    };
    let result = place_from(&mut cursor, live, out, cfg, before, sinks);
    live.spill = Some(cursor);
    result
}

fn place_from(
    cursor: &mut SpillCursor,
    live: &mut Live,
    out: &mut StreamOut,
    cfg: &EngineConfig,
    before: Option<(u64, u32)>,
    sinks: &mut Sinks,
) -> io::Result<()> {
    loop {
        let due = cursor
            .peek()?
            .is_some_and(|n| before.is_none_or(|b| (n.reading.timestamp, n.reading.seq) < b));
        if !due {
            break;
        }
        let Some(x) = cursor.pop()? else {
            break;
        };
        let r = x.reading;
        out.report.placed += 1;
        out.report.received += 1;
        out.extra.input = out.extra.input.wrapping_add(1);
        let repeat = live
            .released
            .filter(|p| p.timestamp == r.timestamp && (!out.meta.has_seq || p.seq == r.seq));
        if let Some(prev) = repeat {
            if prev.celsius == r.celsius || out.meta.has_seq {
                out.extra.duplicate = out.extra.duplicate.wrapping_add(1);
            } else {
                out.extra.rejected = out.extra.rejected.wrapping_add(1);
                let at = live
                    .by_time
                    .as_ref()
                    .and_then(|bt| bt.seen.get(&r.timestamp))
                    .map_or(
                        Location::Released {
                            sensor: r.sensor,
                            session: r.session,
                            seq: r.seq,
                        },
                        |(_, at)| *at,
                    );
                let kept = prev.celsius.to_bits();
                dead_letter(sinks, &x, &r, Refusal::Conflicting { kept, at })?;
            }
            continue;
        }
        out.extra.emitted = out.extra.emitted.wrapping_add(1);
        process_live(live, out, cfg, r, sinks)?;
    }
    Ok(())
}

/// Validates one released reading and runs it through the gap filler.
fn process_live(
    live: &mut Live,
    out: &mut StreamOut,
    cfg: &EngineConfig,
    r: Reading,
    sinks: &mut Sinks,
) -> io::Result<()> {
    if out.meta.has_seq {
        if let Some(prev) = live.released.filter(|p| r.seq <= p.seq) {
            // Released in time order, yet not above the seq before it: its clock and its seq
            // disagree, and a fill between the two could repeat an identity.
            live.seq_refused = live.seq_refused.wrapping_add(1);
            let item = ReadingItem {
                input: usize::MAX,
                reading: r,
                meta: out.meta,
                at: Location::Released {
                    sensor: r.sensor,
                    session: r.session,
                    seq: r.seq,
                },
                replayed: false,
            };
            return dead_letter(sinks, &item, &r, Refusal::SeqBehind { before: prev.seq });
        }
    }
    live.released = Some(r);
    let flags = live.validator.check(&r);
    let rec = Record::measured(r, flags.quality(), flags);
    for ev in live.filler.push(rec) {
        match &ev {
            GapEvent::Record(rec) => emit(out, cfg, rec, sinks)?,
            GapEvent::Gap {
                before,
                after,
                missing,
            } => {
                let old = out
                    .skip_through
                    .is_some_and(|k| (after.timestamp, after.seq) <= (k.0, k.1));
                if !old && cfg.overlaps_window(before.timestamp, after.timestamp) {
                    out.report.gaps += 1;
                    out.report.missing += *missing;
                }
            }
            GapEvent::Outage(o) => outage(out, cfg, o, sinks)?,
        }
    }
    Ok(())
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
    let key = order_key(r);
    out.last_emitted = Some(key);
    if !cfg.in_window(r.timestamp) {
        out.report.outside_window += 1;
        return Ok(());
    }
    if let Some(closed) = out.aggregator.as_mut().and_then(|agg| agg.push(rec)) {
        push_aggregate(out, closed, sinks)?;
    }
    if out.skip_through.is_some_and(|k| key <= k) {
        // Written by an earlier run; still counted in the aggregates above, whose windows
        // are written once complete.
        out.report.already_emitted += 1;
        return Ok(());
    }
    let rep = &mut out.report;
    rep.records += 1;
    match rec.origin {
        Origin::Measured => rep.measured += 1,
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
        _ => match out.pending.replace(Box::new(a)) {
            Some(p) => write_aggregate(out, *p, true, sinks),
            None => Ok(()),
        },
    }
}

/// Writes a finished aggregate window, unless an earlier run wrote it or it is not complete.
fn write_aggregate(
    out: &mut StreamOut,
    a: Aggregate,
    complete: bool,
    sinks: &mut Sinks,
) -> io::Result<()> {
    if !complete || out.agg_through.is_some_and(|t| a.window_start < t) {
        return Ok(());
    }
    out.agg_written = Some(a.window_start + a.window_ms);
    match sinks.aggregates.as_mut() {
        Some(w) => w.write(out.key.0, out.key.1, &a),
        None => Ok(()),
    }
}
