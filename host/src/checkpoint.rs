//! Checkpoints: what a run wrote, so that the next run writes only what is new.
//!
//! Per stream `(sensor, session)` the checkpoint holds the order key of the last record a run
//! computed, and the end of the last aggregate window it wrote. The next run reads its inputs
//! again from the start, so every stream's state (validation history, duplicate windows, gap
//! anchors, aggregate windows) is rebuilt exactly as one run would build it, and writes only
//! the records after the key and the windows after the mark. A run that is not `--final`
//! holds back each stream's unsettled tail (the readings within lateness and max-gap of its
//! newest, which stragglers may still change), so the rows of incremental runs over a
//! growing log, concatenated, are each stream's rows of one run over the final log, in the
//! same order (the rows of different streams may interleave otherwise). (A reading appended
//! later that belongs before what an earlier run settled is dead-lettered as `late` by the
//! later run: its place was already written.) A run with `--until` settles its streams up to
//! that time only, and a run that ends before what an earlier run wrote takes none of it back:
//! a later run writes the rows (and the aggregate window) after the `--until`.
//!
//! A checkpoint is bound to its inputs: their number and order, and a fingerprint of the
//! first bytes of each (a growing log keeps its beginning; a moved one keeps its content). Applied to other inputs it is refused, since its
//! keys would silently drop readings that were never written.
//!
//! The checkpoint is written last, after every output is synced and renamed: a crash before
//! that leaves the old checkpoint, and the rerun regenerates the same outputs, so nothing is
//! written twice and nothing is skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use mend_core::Reading;
use serde::{Deserialize, Serialize};

use crate::fs::AtomicFile;
use crate::input::InputSource;

/// The checkpoint file format version.
pub const CHECKPOINT_VERSION: u32 = 2;

/// Bytes of each input's beginning that its fingerprint covers.
pub const FINGERPRINT_BYTES: u64 = 64 * 1024;

/// The order key of a record within its stream: `(timestamp, seq, celsius bits)`.
pub type OrderKey = (u64, u32, i32);

/// The order key of a reading.
pub fn order_key(r: &Reading) -> OrderKey {
    (r.timestamp, r.seq, r.celsius.to_bits())
}

/// What one stream wrote up to the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMark {
    /// The sensor.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// The timestamp of the last record computed.
    pub last_timestamp: u64,
    /// Its seq.
    pub last_seq: u32,
    /// Its value in 1/256 °C (orders equal timestamps of input without seq).
    pub last_celsius_bits: i32,
    /// The end of the last aggregate window written, ms.
    #[serde(default)]
    pub agg_through: Option<u64>,
    /// The stream ended because a newer session of its sensor started: every record it
    /// will ever have was computed, and a reading of it that comes later is late.
    #[serde(default)]
    pub ended: bool,
}

impl StreamMark {
    /// The order key of the last record computed.
    pub fn key(&self) -> OrderKey {
        (self.last_timestamp, self.last_seq, self.last_celsius_bits)
    }
}

/// The fingerprint of one input: what a later run checks before it trusts the checkpoint.
///
/// A log may only grow: its first bytes, its length and the bytes just before that length
/// must all be found again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMark {
    /// The input as named on the command line.
    pub name: String,
    /// How many of its first bytes the fingerprint covers.
    pub head_len: u64,
    /// FNV-1a of those bytes, in hex.
    pub head_hash: String,
    /// Its length when the run began (absent from the checkpoints of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// FNV-1a of its last [`FINGERPRINT_BYTES`] bytes before `len` (or all of them), in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_hash: Option<String>,
}

/// An input's bytes as a fingerprint sees them.
enum Bytes<'a> {
    File(&'a Path, std::fs::File),
    Memory(&'a [u8]),
}

impl Bytes<'_> {
    fn len(&self) -> anyhow::Result<u64> {
        match self {
            Bytes::File(p, f) => Ok(f
                .metadata()
                .with_context(|| format!("{}: cannot read input", p.display()))?
                .len()),
            Bytes::Memory(b) => Ok(b.len() as u64),
        }
    }

    /// The bytes `from..to` (fewer where the input is shorter).
    fn range(&self, from: u64, to: u64) -> anyhow::Result<Vec<u8>> {
        match self {
            Bytes::File(p, f) => {
                let mut out = vec![0u8; usize::try_from(to.saturating_sub(from))?];
                let mut got = 0;
                while got < out.len() {
                    let n =
                        std::os::unix::fs::FileExt::read_at(f, &mut out[got..], from + got as u64)
                            .with_context(|| format!("{}: cannot read input", p.display()))?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                out.truncate(got);
                Ok(out)
            }
            Bytes::Memory(b) => {
                let at = |x: u64| usize::try_from(x).map_or(b.len(), |x| x.min(b.len()));
                Ok(b.get(at(from)..at(to)).unwrap_or_default().to_vec())
            }
        }
    }
}

/// An input opened for its fingerprint; a pipe, a device or standard input cannot have one.
fn open_for_fingerprint(source: &InputSource) -> anyhow::Result<Bytes<'_>> {
    match source {
        // A pipe's bytes would be taken here from the replay, and the next run could not
        // check them.
        InputSource::Path(p) if !source.rereadable() => anyhow::bail!(
            "{}: a checkpoint needs inputs it can check on the next run: a pipe or a device cannot be one",
            p.display()
        ),
        InputSource::Path(p) => Ok(Bytes::File(
            p,
            std::fs::File::open(p).with_context(|| format!("{}: cannot open input", p.display()))?,
        )),
        InputSource::Bytes(b) => Ok(Bytes::Memory(b)),
        InputSource::Stdin => anyhow::bail!(
            "a checkpoint needs inputs it can check on the next run: standard input cannot be one"
        ),
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(bytes))
}

impl InputMark {
    /// The fingerprint of a file input (standard input cannot be fingerprinted in advance).
    pub fn of(source: &InputSource) -> anyhow::Result<Self> {
        let bytes = open_for_fingerprint(source)?;
        let len = bytes.len()?;
        let head = bytes.range(0, FINGERPRINT_BYTES)?;
        let tail = bytes.range(len.saturating_sub(FINGERPRINT_BYTES), len)?;
        Ok(Self {
            name: source.name(),
            head_len: head.len() as u64,
            head_hash: hash_hex(&head),
            len: Some(len),
            tail_hash: Some(hash_hex(&tail)),
        })
    }

    /// Why `now` (this input's fingerprint today) does not continue this one, if it does not:
    /// a growing log keeps the bytes the fingerprint covered.
    fn mismatch(&self, now: &InputSource) -> anyhow::Result<Option<String>> {
        let (InputSource::Path(p), true) = (now, now.rereadable()) else {
            return Ok(Some(format!("{} is not a file", now.name())));
        };
        let bytes = open_for_fingerprint(now)?;
        let len_now = bytes.len()?;
        let was = self.len.unwrap_or(self.head_len);
        if len_now < was {
            return Ok(Some(format!(
                "{} is shorter ({len_now} bytes) than when the checkpoint was written ({was} bytes)",
                p.display(),
            )));
        }
        if hash_hex(&bytes.range(0, self.head_len)?) != self.head_hash {
            return Ok(Some(format!(
                "the first {} bytes of {} differ from those the checkpoint was written for",
                self.head_len,
                p.display()
            )));
        }
        if let (Some(len), Some(tail)) = (self.len, &self.tail_hash) {
            let from = len.saturating_sub(FINGERPRINT_BYTES);
            if hash_hex(&bytes.range(from, len)?) != *tail {
                return Ok(Some(format!(
                    "bytes {from}..{len} of {} differ from those the checkpoint was written for",
                    p.display()
                )));
            }
        }
        Ok(None)
    }
}

/// 64-bit FNV-1a: a fingerprint, not a defence against forgery.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
///     sensor: 1, session: 2, last_timestamp: 9_000, last_seq: 9, last_celsius_bits: 13_440,
///     agg_through: None, ended: false,
/// });
/// ck.save(&path).unwrap();
/// assert_eq!(Checkpoint::load(&path).unwrap(), ck);
/// assert_eq!(Checkpoint::load(&dir.path().join("absent.json")).unwrap(), Checkpoint::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The inputs it was written for, in command-line order (empty: not yet bound).
    pub inputs: Vec<InputMark>,
    /// Per input, the position (byte offset of a frame, or line number) of the last reading
    /// the run read: a later run knows what is new.
    pub seen: Vec<u64>,
    /// Per `(sensor, session)`.
    pub streams: BTreeMap<(u32, u32), StreamMark>,
}

#[derive(Serialize, Deserialize)]
struct FileForm {
    version: u32,
    #[serde(default)]
    inputs: Vec<InputMark>,
    #[serde(default)]
    seen: Vec<u64>,
    streams: Vec<StreamMark>,
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
                "{}: checkpoint version {} is not supported (expected {CHECKPOINT_VERSION}); replay without it, or start a new one",
                path.display(),
                f.version
            );
        }
        Ok(Self {
            inputs: f.inputs,
            seen: f.seen,
            streams: f
                .streams
                .into_iter()
                .map(|m| ((m.sensor, m.session), m))
                .collect(),
        })
    }

    /// Checks that this checkpoint was written for `sources` (or for nothing yet), so that its
    /// keys cannot drop readings of another log.
    ///
    /// # Errors
    /// Names the input that differs and how.
    pub fn check_inputs(&self, sources: &[InputSource], path: &Path) -> anyhow::Result<()> {
        if self.inputs.is_empty() && self.streams.is_empty() {
            return Ok(());
        }
        // Names may change (a log moved or rotated); the number of inputs and their contents
        // may not.
        let names: Vec<String> = sources.iter().map(InputSource::name).collect();
        let was: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
        if names.len() != was.len() {
            anyhow::bail!(
                "{}: this checkpoint was written for the inputs [{}], not [{}]; use another checkpoint file for other inputs",
                path.display(),
                was.join(", "),
                names.join(", ")
            );
        }
        for (mark, src) in self.inputs.iter().zip(sources) {
            if let Some(why) = mark.mismatch(src)? {
                if self.in_another_order(sources)? {
                    anyhow::bail!(
                        "{}: this checkpoint was written for the same inputs in another order ([{}]); give them in that order",
                        path.display(),
                        was.join(", ")
                    );
                }
                anyhow::bail!(
                    "{}: this checkpoint does not belong to its input any more: {why}",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// True when each of `sources` continues a different one of the inputs this checkpoint
    /// was written for.
    fn in_another_order(&self, sources: &[InputSource]) -> anyhow::Result<bool> {
        let mut taken = vec![false; self.inputs.len()];
        for src in sources {
            let mut found = false;
            for (mark, taken) in self.inputs.iter().zip(taken.iter_mut()) {
                if !*taken && mark.mismatch(src)?.is_none() {
                    *taken = true;
                    found = true;
                    break;
                }
            }
            if !found {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        self.save_to(Self::create_file(path)?)
    }

    /// The file a checkpoint will be written to ([`save_to`](Self::save_to)), made before a
    /// replay starts, so that a checkpoint that cannot be written fails the run before any
    /// output is put in place (which the next run would then write again).
    pub fn create_file(path: &Path) -> anyhow::Result<AtomicFile> {
        AtomicFile::create(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot write checkpoint: {}",
                path.display(),
                e.root_cause()
            )
        })
    }

    /// Writes the checkpoint into `f` (from [`create_file`](Self::create_file)) and puts it
    /// in place.
    pub fn save_to(&self, mut f: AtomicFile) -> anyhow::Result<()> {
        let path = f.path().to_path_buf();
        let form = FileForm {
            version: CHECKPOINT_VERSION,
            inputs: self.inputs.clone(),
            seen: self.seen.clone(),
            streams: self.streams.values().copied().collect(),
        };
        serde_json::to_writer_pretty(&mut f, &form)
            .with_context(|| format!("{}: cannot write checkpoint", path.display()))?;
        f.write_all(b"\n")
            .with_context(|| format!("{}: cannot write checkpoint", path.display()))?;
        f.commit().map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot write checkpoint: {}",
                path.display(),
                e.root_cause()
            )
        })
    }
}
