//! What the engine does and how large its per-stream parts grow: the settings of a replay,
//! the sizing constants, and why an engine cannot start.

use std::io;

use mend_core::{FillMethod, ValidateConfig};

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
    /// The only sensor the input may hold (a fleet's raw stream of one sensor): a reading
    /// of another is dead-lettered as `other_sensor`.
    pub only_sensor: Option<u32>,
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
            only_sensor: None,
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

    /// Whether a record at `ts` is inside `--from`/`--until`.
    /// What a seek through a frame log must respect of this configuration (see
    /// [`crate::input::seek::plan`]).
    pub fn seek_window(&self) -> crate::input::seek::SeekWindow {
        crate::input::seek::SeekWindow {
            from: self.from,
            until: self.until,
            lateness_ms: self.lateness_ms,
            max_gap_ms: self.max_gap_ms,
            history: (VALIDATOR_HISTORY + FILL_HISTORY) as u32,
        }
    }

    pub(super) fn in_window(&self, ts: u64) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.until.is_none_or(|u| ts <= u)
    }

    /// Whether the span `[start, end]` reaches into `--from`/`--until`.
    pub(super) fn overlaps_window(&self, start: u64, end: u64) -> bool {
        self.from.is_none_or(|f| end >= f) && self.until.is_none_or(|u| start <= u)
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
