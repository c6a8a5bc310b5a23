//! `mend publish`: captures into one raw stream per sensor.
//!
//! A capture interleaves sensors, and a reading frame means something only after its
//! session's header. Each entry therefore holds a header frame followed by up to
//! [`READINGS_PER_ENTRY`] frames of that session, byte for byte as captured, and a sensor's
//! entries concatenated are a frame log of that sensor alone, which a worker replays as is.
//! Publishing the same capture twice appends the same readings twice: the repair
//! deduplicates them by identity, as `mend replay` does with overlapping captures, so nothing
//! downstream changes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use mend_core::{DecodeEvent, Decoder, Frame, SkipReason, Span};

use super::{connect, Keys, PUBLISH_DEAD_KEY, SENSORS_KEY};

/// Frames after the header in one raw entry: larger entries cost less memory per reading
/// in Redis (one entry's overhead, one header) and fewer round trips.
pub const READINGS_PER_ENTRY: usize = 64;

/// Entries sent in one pipeline.
const PIPELINE: usize = 512;

/// What `mend publish` does.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// The Redis URL.
    pub redis: String,
    /// The captures (`-`: standard input).
    pub inputs: Vec<PathBuf>,
    /// Mark every sensor published as complete, so workers settle its tail at once.
    pub end: bool,
}

/// What `mend publish` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Frames published, per sensor.
    pub frames: BTreeMap<u32, u64>,
    /// Raw entries added.
    pub entries: u64,
    /// Bytes that were not a usable frame (also in the `mend:dead` stream).
    pub skipped_bytes: u64,
}

/// The frames of one sensor waiting to become an entry.
struct Pending {
    header: Vec<u8>,
    frames: Vec<u8>,
    count: usize,
}

/// Why `mend publish` could not use some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Not a good frame.
    Damaged(SkipReason),
    /// A good frame before any header: its sensor is unknown.
    NoHeader,
}

impl Unusable {
    /// The short name, as in the dead-letter file's `reason`.
    pub const fn name(self) -> &'static str {
        match self {
            Unusable::Damaged(r) => r.name(),
            Unusable::NoHeader => "no_header",
        }
    }
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Damaged(r) => write!(f, "{r}"),
            Unusable::NoHeader => f.write_str("a frame before any header: its sensor is unknown"),
        }
    }
}

/// A capture split into raw entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// `(sensor, header and frames)`, in capture order per sensor.
    pub entries: Vec<(u32, Vec<u8>)>,
    /// The unusable spans and why.
    pub skipped: Vec<(Span, Unusable)>,
}

/// Splits a capture into raw entries, and reports the unusable spans.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Frame, Header, Reading};
/// let h = Header::new(7, 1, 1_000, ClockKind::Unix, 0);
/// let header = Frame::Header(h).to_buf().unwrap().to_vec();
/// let mut capture = header.clone();
/// let r = Reading::new(7, 1, 0, 0, Celsius::from_num(52));
/// let reading = Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap().to_vec();
/// capture.extend_from_slice(&reading);
/// capture.extend_from_slice(b"junk\0");
/// let split = mend::fleet::publish::split(&capture);
/// assert_eq!(split.entries, [(7, [header, reading].concat())]);
/// assert_eq!(split.skipped.len(), 1);
/// ```
pub fn split(capture: &[u8]) -> Split {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let mut pending: BTreeMap<u32, Pending> = BTreeMap::new();
    let mut current: Option<u32> = None;
    let mut dec: Decoder = Decoder::new();
    let mut events: Vec<DecodeEvent> = dec.feed(capture).collect();
    events.extend(dec.finish());
    let flush = |sensor: u32, p: &mut Pending, entries: &mut Vec<(u32, Vec<u8>)>| {
        if p.count > 0 {
            let mut e = Vec::with_capacity(p.header.len() + p.frames.len());
            e.extend_from_slice(&p.header);
            e.append(&mut p.frames);
            entries.push((sensor, e));
            p.count = 0;
        }
    };
    for ev in events {
        match ev {
            DecodeEvent::Frame { frame, span } => {
                let bytes = capture
                    .get(span.start as usize..span.end as usize)
                    .unwrap_or_default();
                match frame {
                    Frame::Header(h) => {
                        let p = pending.entry(h.sensor).or_insert_with(|| Pending {
                            header: Vec::new(),
                            frames: Vec::new(),
                            count: 0,
                        });
                        flush(h.sensor, p, &mut entries);
                        p.header = bytes.to_vec();
                        current = Some(h.sensor);
                    }
                    _ => match current.and_then(|s| pending.get_mut(&s).map(|p| (s, p))) {
                        Some((s, p)) => {
                            p.frames.extend_from_slice(bytes);
                            p.count += 1;
                            if p.count >= READINGS_PER_ENTRY {
                                flush(s, p, &mut entries);
                            }
                        }
                        None => skipped.push((span, Unusable::NoHeader)),
                    },
                }
            }
            DecodeEvent::Skipped { span, reason } => {
                // As in `mend replay`: readings after a header of an unknown version belong
                // to no known session.
                if reason == SkipReason::UnknownVersion {
                    current = None;
                }
                skipped.push((span, Unusable::Damaged(reason)));
            }
        }
    }
    for (s, p) in &mut pending {
        flush(*s, p, &mut entries);
    }
    Split { entries, skipped }
}

fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    }
    Ok(bytes)
}

/// Publishes the captures.
///
/// # Errors
/// Unreadable inputs, and Redis unreachable or refusing a command.
pub fn run(cfg: &PublishConfig) -> anyhow::Result<PublishReport> {
    let mut con = connect(&cfg.redis)?;
    let mut report = PublishReport::default();
    for path in &cfg.inputs {
        let capture = read_input(path)?;
        let name = path.display().to_string();
        let head = capture
            .get(..capture.len().min(64 * 1024))
            .unwrap_or_default();
        if crate::input::detect(head) != Some(crate::input::Format::Frames) {
            anyhow::bail!(
                "{name}: not a mend frame log; mend publish takes frame logs only (replay a JSONL log with mend replay)"
            );
        }
        let Split { entries, skipped } = split(&capture);
        let mut pipe = redis::pipe();
        let mut queued = 0;
        let mut batch = std::collections::BTreeSet::new();
        for (sensor, bytes) in &entries {
            batch.insert(*sensor);
            // Frames in an entry: each ends with its 0x00 delimiter.
            let frames = bytes.iter().filter(|b| **b == 0).count() as u64;
            *report.frames.entry(*sensor).or_default() += frames.saturating_sub(1);
            pipe.cmd("XADD")
                .arg(&Keys::new(*sensor).raw)
                .arg("*")
                .arg("f")
                .arg(bytes.as_slice())
                .ignore();
            queued += 1;
            if queued >= PIPELINE {
                // A sensor is announced once its stream has entries.
                pipe.cmd("SADD").arg(SENSORS_KEY).arg(&batch).ignore();
                pipe.query::<()>(&mut con)
                    .with_context(|| format!("{name}: cannot publish"))?;
                pipe = redis::pipe();
                queued = 0;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            pipe.cmd("SADD").arg(SENSORS_KEY).arg(&batch).ignore();
        }
        for (span, reason) in &skipped {
            pipe.cmd("XADD")
                .arg(PUBLISH_DEAD_KEY)
                .arg("*")
                .arg("input")
                .arg(&name)
                .arg("offset")
                .arg(span.start)
                .arg("length")
                .arg(span.len())
                .arg("reason")
                .arg(reason.name())
                .arg("detail")
                .arg(reason.to_string())
                .ignore();
            report.skipped_bytes += span.len();
        }
        pipe.query::<()>(&mut con)
            .with_context(|| format!("{name}: cannot publish"))?;
        report.entries += entries.len() as u64;
    }
    if cfg.end {
        for sensor in report.frames.keys() {
            let k = Keys::new(*sensor);
            if let Some(last) = super::last_entry(&mut con, &k.raw)? {
                redis::cmd("SET")
                    .arg(&k.end)
                    .arg(last.to_string())
                    .query::<()>(&mut con)
                    .with_context(|| format!("cannot mark sensor {sensor} complete"))?;
            }
        }
    }
    Ok(report)
}
