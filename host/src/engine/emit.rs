//! A stream's output side: what it keeps for its whole life (its report, what it wrote),
//! where records, outages and dead letters go, and how each is written.

use std::io;

use mend_core::{Aggregator, Counters, Key, Origin, Outage, Quality, Reading, Record};

use super::config::{EngineConfig, MAX_LISTED_OUTAGES};
use super::report::{OutageReport, StreamReport};
use crate::checkpoint::{order_key, OrderKey};
use crate::input::{DeadLetter, DeadReason, Location, ReadingItem, StreamMeta};
use crate::sink::aggregates::{AggregateOut, WindowMerge};
use crate::sink::dlq::DeadLetterLog;
use crate::sink::RecordSink;

/// The shared places records and reports go.
pub struct Sinks<'a, 'w> {
    /// Repaired records.
    pub records: &'a mut dyn RecordSink,
    /// Dead letters.
    pub dead: &'a mut DeadLetterLog<'w>,
    /// Aggregates, when asked for.
    pub aggregates: Option<&'a mut AggregateOut<'w>>,
}

/// What a stream keeps for its whole life, ended or not: its report and what it wrote.
pub(super) struct StreamOut {
    pub(super) key: (u32, u32),
    pub(super) meta: StreamMeta,
    pub(super) report: StreamReport,
    /// Readings counted outside the reorder buffer: repeats and conflicts of readings without
    /// a seq, clock glitches, readings after the stream ended.
    pub(super) extra: Counters,
    pub(super) aggregator: Option<Box<Aggregator<4>>>,
    /// The aggregate windows on their way out.
    pub(super) windows: WindowMerge,
    /// Records up to this key were written by an earlier checkpointed run.
    pub(super) skip_through: Option<OrderKey>,
    /// The last record computed (written or not).
    pub(super) last_emitted: Option<OrderKey>,
}

impl StreamOut {
    /// Whether an earlier checkpointed run wrote the place of `k`.
    #[inline]
    pub(super) fn settled(&self, k: Key) -> bool {
        self.skip_through
            .is_some_and(|s| (k.timestamp, k.seq) <= (s.0, s.1))
    }

    /// Counts a gap (not an outage) between `before` and `after`, unless an earlier run
    /// counted it or it lies outside the window.
    pub(super) fn gap(&mut self, cfg: &EngineConfig, before: Key, after: Key, missing: u64) {
        if !self.settled(after) && cfg.overlaps_window(before.timestamp, after.timestamp) {
            self.report.gaps += 1;
            self.report.missing += missing;
        }
    }
}

/// Why a reading is dead-lettered by the engine.
pub(super) enum Refusal {
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
    /// Not of the only sensor the input may hold.
    OtherSensor { expected: u32 },
}

impl Refusal {
    /// The reason, as in the dead-letter file.
    fn reason(&self) -> DeadReason {
        match self {
            Refusal::ClockJump { .. } => DeadReason::ClockJump,
            Refusal::Conflicting { .. } => DeadReason::ConflictingDuplicate,
            Refusal::SeqBehind { .. } => DeadReason::SeqBehindTime,
            Refusal::BeyondWindow(_) => DeadReason::BeyondDedupWindow,
            Refusal::Late | Refusal::AfterEnd | Refusal::Settled => DeadReason::Late,
            Refusal::OtherSensor { .. } => DeadReason::OtherSensor,
        }
    }
}

#[cold]
#[inline(never)]
pub(super) fn dead_letter(
    sinks: &mut Sinks,
    item: &ReadingItem,
    r: &Reading,
    why: Refusal,
) -> io::Result<()> {
    use crate::text::timefmt::to_rfc3339;
    let reason = why.reason();
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
            "reading {seq}at {} arrived after later readings of its stream were written (raise --lateness, or replay a file rather than standard input or a pipe)",
            to_rfc3339(r.timestamp)
        ),
        Refusal::Settled => format!(
            "reading {seq}at {} was read after an earlier checkpointed run wrote its place (as measured, filled or an outage): a copy of a reading given before (a capture appended or published again), or one that came later than that run held back for (a larger --lateness holds back more)",
            to_rfc3339(r.timestamp)
        ),
        Refusal::AfterEnd => format!(
            "reading {seq}at {} arrived after a newer session of sensor {} started",
            to_rfc3339(r.timestamp),
            r.sensor
        ),
        Refusal::OtherSensor { expected } => format!(
            "reading {seq}at {} is of sensor {} (session {}), in the frames of sensor {expected}",
            to_rfc3339(r.timestamp),
            r.sensor,
            r.session
        ),
    };
    sinks.dead.push(&DeadLetter {
        input: item.input,
        location: item.at,
        reason,
        detail,
    })
}

/// Reports an outage (a gap too long to fill) and, with `--emit-outages`, writes its slots.
pub(super) fn outage(
    out: &mut StreamOut,
    cfg: &EngineConfig,
    o: &Outage,
    sinks: &mut Sinks,
) -> io::Result<()> {
    if !cfg.overlaps_window(o.before.timestamp, o.after.timestamp) {
        return Ok(());
    }
    if out.settled(o.after) {
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
            if cfg.in_window(slot.timestamp) && !out.settled(slot) {
                sinks.records.missing(o, slot, &out.meta)?;
            }
        }
    }
    Ok(())
}

/// Writes one record of the stream (a measured reading or a fill), unless it lies outside
/// the window or an earlier run wrote it, and counts it in the aggregates and the report.
#[inline]
pub(super) fn emit(
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
        out.windows
            .push(out.key, closed, sinks.aggregates.as_deref_mut())?;
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
