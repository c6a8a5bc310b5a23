//! One stream, one `(sensor, session)`: its pipeline while it can take readings (clock
//! check, identity dedup, reorder buffer, validator, gap filler), and the way a reading goes
//! through it, from admission to the records it gives.

use std::collections::BTreeMap;
use std::io;

use mend_core::{
    Admit, Aggregator, Counters, FillConfig, GapEvent, GapFiller, Reading, Record, ReleaseKind,
    Validator,
};

use super::clock::ClockGuard;
use super::config::{EngineConfig, FILL_HISTORY, VALIDATOR_HISTORY};
use super::emit::{dead_letter, emit, outage, Refusal, Sinks, StreamOut};
use super::reorder::StreamReorder;
use super::report::{clock_name, StreamReport};
use super::spill::{SpillCursor, SpillSet, SpillWriter};
use crate::checkpoint::StreamMark;
use crate::input::{Location, ReadingItem, StreamMeta};
use crate::sink::aggregates::WindowMerge;

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

/// Identity for readings without a seq: the timestamp. Covers the readings still held by
/// the reorder buffer (and the last released), so it is bounded by the buffer's capacity.
pub(super) struct ByTime {
    /// Timestamp → the value kept and where it was read.
    pub(super) seen: BTreeMap<u64, (i32, Location)>,
}

/// The pipeline of a stream that can still take readings.
pub(super) struct Live {
    pub(super) reorder: StreamReorder,
    pub(super) validator: Validator<VALIDATOR_HISTORY>,
    pub(super) filler: GapFiller<FILL_HISTORY>,
    pub(super) guard: ClockGuard,
    pub(super) by_time: Option<ByTime>,
    /// The second pass's set-aside readings of this stream.
    pub(super) spill: Option<SpillCursor>,
    /// The last reading released by the reorder buffer.
    pub(super) released: Option<Reading>,
    /// Released readings refused because their seq was not above the one before.
    pub(super) seq_refused: u32,
}

/// A stream: its pipeline while it is live, and what it keeps for its whole life.
pub(super) struct Stream {
    /// `None` once the stream ended: a newer session of its sensor started, or the replay
    /// finished.
    pub(super) live: Option<Box<Live>>,
    pub(super) out: StreamOut,
}

impl Stream {
    /// A new live stream `key` of the kind `meta` describes; `mark` says what an earlier
    /// checkpointed run wrote of it, `pass` where its set-aside readings are.
    #[inline(never)]
    #[cold]
    pub(super) fn new(
        c: &EngineConfig,
        key: (u32, u32),
        meta: &StreamMeta,
        mark: Option<StreamMark>,
        pass: &Pass,
    ) -> io::Result<Self> {
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
            clock: clock_name(meta.clock),
            ..StreamReport::default()
        };
        let spill = match pass {
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
                windows: WindowMerge::new(mark.and_then(|m| m.agg_through)),
                skip_through: mark.map(|m| m.key()),
                last_emitted: mark.map(|m| m.key()),
            },
        })
    }

    /// Passes a reading that fits the stream's clock on to identity dedup and the reorder
    /// buffer.
    pub(super) fn admit(
        &mut self,
        cfg: &EngineConfig,
        pass: &mut Pass,
        x: ReadingItem,
        sinks: &mut Sinks,
    ) -> io::Result<()> {
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        let r = x.reading;
        let extra = &mut self.out.extra;
        if let Some(bt) = live.by_time.as_mut() {
            if live.released.is_some_and(|l| r.timestamp < l.timestamp) {
                extra.input = extra.input.wrapping_add(1);
                extra.late = extra.late.wrapping_add(1);
                return self.too_late(pass, x, Refusal::Late, sinks);
            }
            match bt.seen.get(&r.timestamp) {
                Some(&(v, _)) if v == r.celsius.to_bits() => {
                    extra.input = extra.input.wrapping_add(1);
                    extra.duplicate = extra.duplicate.wrapping_add(1);
                    return Ok(());
                }
                Some(&(kept, at)) => {
                    extra.input = extra.input.wrapping_add(1);
                    extra.rejected = extra.rejected.wrapping_add(1);
                    return dead_letter(sinks, &x, &r, Refusal::Conflicting { kept, at });
                }
                None => {
                    bt.seen.insert(r.timestamp, (r.celsius.to_bits(), x.at));
                }
            }
        }
        match live.reorder.push(r) {
            Admit::Held | Admit::Duplicate => Ok(()),
            Admit::Rejected(e) => self.too_late(pass, x, Refusal::BeyondWindow(e), sinks),
            Admit::Released(rel) => match rel.kind {
                ReleaseKind::Late => self.too_late(pass, x, Refusal::Late, sinks),
                ReleaseKind::InOrder | ReleaseKind::Evicted => {
                    release(live, &mut self.out, cfg, rel.reading, sinks)
                }
            },
        }
    }

    /// A reading that arrived after its place was written: set aside on a first pass,
    /// dead-lettered otherwise.
    #[cold]
    pub(super) fn too_late(
        &mut self,
        pass: &mut Pass,
        x: ReadingItem,
        why: Refusal,
        sinks: &mut Sinks,
    ) -> io::Result<()> {
        match pass {
            Pass::First(w) => {
                w.push(x)?;
                self.out.report.set_aside += 1;
                return Ok(());
            }
            // Placing set-aside readings changes nothing about when the others are released,
            // so a reading that the first pass did not find late is late now only because it
            // repeats one that was set aside then and placed now (the first pass knew it as a
            // duplicate of that one).
            Pass::Second(_)
                if matches!(why, Refusal::Late)
                    && self.live.as_ref().is_some_and(|l| l.spill.is_some()) =>
            {
                let extra = &mut self.out.extra;
                extra.late = extra.late.wrapping_sub(1);
                extra.duplicate = extra.duplicate.wrapping_add(1);
                return Ok(());
            }
            _ => {}
        }
        dead_letter(sinks, &x, &x.reading, why)
    }

    /// Releases what the watermark has passed (with the set-aside readings before each).
    pub(super) fn release_ready(
        &mut self,
        cfg: &EngineConfig,
        sinks: &mut Sinks,
    ) -> io::Result<()> {
        let Some(live) = self.live.as_deref_mut() else {
            return Ok(());
        };
        while let Some(rel) = live.reorder.pop_ready() {
            release(live, &mut self.out, cfg, rel.reading, sinks)?;
        }
        if let (Some(bt), Some(last)) = (live.by_time.as_mut(), live.released) {
            while bt
                .seen
                .first_key_value()
                .is_some_and(|(t, _)| *t < last.timestamp)
            {
                bt.seen.pop_first();
            }
        }
        Ok(())
    }
}

/// Processes a reading the reorder buffer released, after the set-aside readings that come
/// before it.
#[inline]
fn release(
    live: &mut Live,
    out: &mut StreamOut,
    cfg: &EngineConfig,
    r: Reading,
    sinks: &mut Sinks,
) -> io::Result<()> {
    if live.spill.is_some() {
        let key = (r.timestamp, r.seq);
        place_set_aside(live, out, cfg, Some(key), sinks)?;
    }
    process_live(live, out, cfg, r, sinks)
}

/// Second pass: processes the stream's set-aside readings that come before `before`
/// (`(timestamp, seq)`; all for `None`), just before the reading released next, so that
/// they take their place in the released order without changing what the reorder buffer
/// releases or when (a reading read in its place goes first when both have the same key,
/// as it did in the input). A copy of the reading released just before is a duplicate.
#[cold]
pub(super) fn place_set_aside(
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
pub(super) fn process_live(
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
    // One pass (`fold`): the hot path, one call per event; after an error the rest are
    // passed over. `try_fold` cannot be specialised by an iterator on stable Rust and would
    // go through `next`, which costs a tenth of this function (callgrind).
    #[allow(clippy::manual_try_fold)]
    live.filler.push(rec).fold(Ok(()), |done, ev| {
        done?;
        match &ev {
            GapEvent::Record(rec) => emit(out, cfg, rec, sinks),
            GapEvent::Gap {
                before,
                after,
                missing,
            } => {
                out.gap(cfg, *before, *after, *missing);
                Ok(())
            }
            GapEvent::Outage(o) => outage(out, cfg, o, sinks),
        }
    })
}
