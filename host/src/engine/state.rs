//! What carries a live stream's pipeline from one run to the next: the engine state that a
//! checkpointed run keeps, the settings it is valid under, and why it sometimes cannot be
//! kept.

use std::io;

use mend_core::{ClockKind, Counters, FillMethod, GapFiller, Reading, ValidateConfig, Validator};
use serde::{Deserialize, Serialize};

use super::clock::{ClockGuard, GuardState};
use super::config::{EngineConfig, FILL_HISTORY, VALIDATOR_HISTORY};
use super::reorder::StreamReorder;
use super::stream::Stream;
use crate::input::StreamMeta;

/// The settings a stream's state depends on: a state is continued only under the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ConfigMark {
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
    pub(super) fn of(c: &EngineConfig) -> Self {
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
pub(super) struct StreamState {
    pub(super) key: (u32, u32),
    pub(super) has_seq: bool,
    pub(super) period_ms: u32,
    pub(super) clock: ClockKind,
    pub(super) reorder: StreamReorder,
    pub(super) validator: Validator<VALIDATOR_HISTORY>,
    pub(super) filler: GapFiller<FILL_HISTORY>,
    pub(super) guard: GuardState,
    pub(super) released: Option<Reading>,
    pub(super) seq_refused: u32,
    pub(super) extra: Counters,
    /// A session that had ended (a newer one of its sensor started) when its readings came
    /// again: live, yet not its sensor's live session, which it does not end.
    #[serde(default)]
    pub(super) resumed: bool,
}

/// The state of an engine's live streams at the end of its input and before
/// [`Engine::finish`](crate::engine::Engine::finish): a later run that restores it
/// ([`Engine::restore`](crate::engine::Engine::restore)) and reads only what
/// came after computes exactly what one run over both inputs computes. Its size is bounded
/// per stream (the reorder buffer, the duplicate window, the validator and filler
/// histories), never by the length of the input.
///
/// Only the pipeline is carried: what a stream wrote is in the checkpoint, and its report
/// counts only what the run that makes it read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineState {
    pub(super) config: ConfigMark,
    pub(super) streams: Vec<StreamState>,
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

impl StreamState {
    /// The state of stream `s`'s pipeline, or why it cannot be carried; `Ok(None)` for a
    /// stream that has ended.
    ///
    /// # Errors
    /// The second pass's set-aside readings cannot be read.
    pub(super) fn capture(
        s: &mut Stream,
        resumed: bool,
    ) -> io::Result<Result<Option<Self>, Uncaptured>> {
        let Some(l) = s.live.as_mut() else {
            return Ok(Ok(None));
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
        Ok(Ok(Some(StreamState {
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
            resumed,
        })))
    }

    /// The kind of stream the state was taken from.
    pub(super) fn meta(&self) -> StreamMeta {
        StreamMeta {
            has_seq: self.has_seq,
            period_ms: self.period_ms,
            clock: self.clock,
        }
    }

    /// Puts the state into `stream`, a new stream of the same key, which goes on as the one
    /// the state was taken from; `release_after_ms` is this run's.
    pub(super) fn continue_in(&self, stream: &mut Stream, release_after_ms: u64) {
        if let Some(l) = stream.live.as_mut() {
            l.reorder = self.reorder.clone();
            // A run that holds back its tail releases later than a settled one; the order
            // of what is released does not change.
            l.reorder.set_lateness_ms(release_after_ms);
            l.validator = self.validator.clone();
            l.filler = self.filler.clone();
            l.guard = ClockGuard::from_state(self.guard);
            l.released = self.released;
            l.seq_refused = self.seq_refused;
        }
        stream.out.extra = self.extra;
    }
}
