//! Checkpoints: what a run emitted, so that the next run emits only what is new.
//!
//! Per stream `(sensor, session)` the checkpoint holds the last emitted record's order key
//! and the last measured reading emitted. The next run drops readings at or before the key
//! (they were emitted already) and feeds the last measured reading to the gap filler as an
//! anchor without emitting it, so a gap across the boundary is found and filled exactly as a
//! single run would fill it.
//!
//! Which readings a fill may take its value from, and the stochastic noise's scale, depend on
//! more than the last reading (the one before it, the last trustworthy one, a few values of
//! history), so the checkpoint also holds the gap filler's state ([`FillMark`]); the next run
//! restores it instead of starting from the anchor alone.
//!
//! The checkpoint is written last, after every output is synced and renamed: a crash before
//! that leaves the old checkpoint, and the rerun regenerates the same outputs, so nothing is
//! emitted twice and nothing is skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use mend_core::{BandSide, Celsius, FillState, Flags, Reading, Record};
use serde::{Deserialize, Serialize};

use crate::output::AtomicFile;

/// The checkpoint file format version.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The order key of a record within its stream: `(timestamp, seq, celsius bits)`.
pub type OrderKey = (u64, u32, i32);

/// The order key of a reading.
pub fn order_key(r: &Reading) -> OrderKey {
    (r.timestamp, r.seq, r.celsius.to_bits())
}

/// A measured reading as stored in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Its seq (0 for input without one).
    pub seq: u32,
    /// Its timestamp, ms.
    pub timestamp: u64,
    /// Its value in 1/256 °C.
    pub celsius_bits: i32,
}

/// What one stream emitted up to the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMark {
    /// The sensor.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// The timestamp of the last emitted record.
    pub last_timestamp: u64,
    /// Its seq.
    pub last_seq: u32,
    /// Its value in 1/256 °C (orders equal timestamps of input without seq).
    pub last_celsius_bits: i32,
    /// The last measured reading emitted, the gap anchor of the next run.
    pub anchor: Option<Anchor>,
}

impl StreamMark {
    /// The order key of the last emitted record.
    pub fn key(&self) -> OrderKey {
        (self.last_timestamp, self.last_seq, self.last_celsius_bits)
    }

    /// The anchor as a reading of this stream.
    pub fn anchor_reading(&self) -> Option<Reading> {
        self.anchor.map(|a| {
            Reading::new(
                self.sensor,
                self.session,
                a.seq,
                a.timestamp,
                Celsius::from_bits(a.celsius_bits),
            )
        })
    }
}

/// The checkpoint file.
///
/// # Examples
/// ```
/// use mend::checkpoint::{Checkpoint, StreamMark};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("ck.json");
/// let mut ck = Checkpoint::default();
/// ck.streams.insert((1, 2), StreamMark {
///     sensor: 1, session: 2, last_timestamp: 9_000, last_seq: 9, last_celsius_bits: 13_440, anchor: None,
/// });
/// ck.save(&path).unwrap();
/// assert_eq!(Checkpoint::load(&path).unwrap(), ck);
/// assert_eq!(Checkpoint::load(&dir.path().join("absent.json")).unwrap(), Checkpoint::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Per `(sensor, session)`.
    pub streams: BTreeMap<(u32, u32), StreamMark>,
    /// The gap filler's state per `(sensor, session)`, where known.
    pub fills: BTreeMap<(u32, u32), FillMark>,
}

#[derive(Serialize, Deserialize)]
struct FileForm {
    version: u32,
    streams: Vec<StreamMark>,
    /// Absent in checkpoints of earlier releases: their next run starts from the anchor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fills: Vec<FillMark>,
}

/// The gap filler's state after the anchor of a [`StreamMark`] (see [`FillState`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillMark {
    /// The sensor.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// The anchor this state follows; the state is used only with that anchor.
    pub anchor: Anchor,
    /// The anchor's flags as validated ([`Flags::bits`]).
    pub anchor_flags: u8,
    /// The side of the band (−1 below, 0 inside, 1 above) and the time of the last reading
    /// before the anchor that was not of quality bad.
    pub before_anchor: Option<(i8, u64)>,
    /// The last measured reading found trustworthy.
    pub trusted: Option<Anchor>,
    /// The last trustworthy values, oldest first, in 1/256 °C.
    pub history: Vec<i32>,
}

impl FillMark {
    /// The mark of a filler's state; `None` when the state has no measured reading.
    pub fn from_state<const H: usize>(state: &FillState<H>) -> Option<Self> {
        let last = state.last?;
        let anchor = |r: &Reading| Anchor {
            seq: r.seq,
            timestamp: r.timestamp,
            celsius_bits: r.celsius.to_bits(),
        };
        Some(Self {
            sensor: last.reading.sensor,
            session: last.reading.session,
            anchor: anchor(&last.reading),
            anchor_flags: last.flags.bits(),
            before_anchor: state.before_last.map(|(side, ts)| {
                let side = match side {
                    BandSide::Below => -1,
                    BandSide::Inside => 0,
                    BandSide::Above => 1,
                };
                (side, ts)
            }),
            trusted: state.trusted.as_ref().map(anchor),
            history: state.history.to_vec(),
        })
    }

    /// The filler's state again; `None` when the mark does not fit (bad flags, a side that is
    /// not −1, 0 or 1, more than `H` values of history).
    pub fn to_state<const H: usize>(&self) -> Option<FillState<H>> {
        let reading = |a: &Anchor| {
            Reading::new(
                self.sensor,
                self.session,
                a.seq,
                a.timestamp,
                Celsius::from_bits(a.celsius_bits),
            )
        };
        let flags = Flags::try_from_bits(self.anchor_flags)?;
        let before_last = match self.before_anchor {
            None => None,
            Some((side, ts)) => Some((
                match side {
                    -1 => BandSide::Below,
                    0 => BandSide::Inside,
                    1 => BandSide::Above,
                    _ => return None,
                },
                ts,
            )),
        };
        let mut state = FillState {
            last: Some(Record::measured(
                reading(&self.anchor),
                flags.quality(),
                flags,
            )),
            before_last,
            trusted: self.trusted.as_ref().map(reading),
            history: Default::default(),
        };
        for v in &self.history {
            state.history.push(*v).ok()?;
        }
        Some(state)
    }
}

impl Checkpoint {
    /// Loads a checkpoint; a missing file is an empty checkpoint (the first run).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("{}: cannot read checkpoint", path.display()))
            }
        };
        let f: FileForm = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a mend checkpoint", path.display()))?;
        if f.version != CHECKPOINT_VERSION {
            anyhow::bail!(
                "{}: checkpoint version {} is not supported (expected {CHECKPOINT_VERSION})",
                path.display(),
                f.version
            );
        }
        Ok(Self {
            streams: f
                .streams
                .into_iter()
                .map(|m| ((m.sensor, m.session), m))
                .collect(),
            fills: f
                .fills
                .into_iter()
                .map(|m| ((m.sensor, m.session), m))
                .collect(),
        })
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut f = AtomicFile::create(path)?;
        let form = FileForm {
            version: CHECKPOINT_VERSION,
            streams: self.streams.values().copied().collect(),
            fills: self.fills.values().cloned().collect(),
        };
        serde_json::to_writer_pretty(&mut f, &form)
            .with_context(|| format!("{}: cannot write checkpoint", path.display()))?;
        f.write_all(b"\n")
            .with_context(|| format!("{}: cannot write checkpoint", path.display()))?;
        f.commit()
    }
}
