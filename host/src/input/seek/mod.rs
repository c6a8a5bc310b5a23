//! Shortcuts through a frame log for `--from` and `--until`, and the evidence they rest on.
//!
//! COBS frames end at the only `0x00` bytes in a log, so a reader dropped at any byte
//! offset finds the next frame boundary at the next `0x00`. Reading frames only make sense
//! after their session header, which the edge repeats with every stats frame (every 60
//! readings by default). So a probe at an offset scans to the next boundary, decodes until a
//! header and then a reading, and learns the time at that point of the file.
//!
//! Both shortcuts skip bytes: the seek for `--from` never reads what lies before its offset,
//! the early stop for `--until` never reads what lies after it. They give the rows of the
//! plain path only if nothing in the skipped bytes matters for the window, and that holds
//! when time grows through the file. It does not for concatenated logs (`cat a.mlog b.mlog`
//! starts again at the first time of `b`), rotated files joined out of order, boot clocks
//! (time starts again at 0 at every power-up) or a clock glitch. Proving that time grows
//! would mean reading the file, so the evidence is a dense sample instead: at least
//! [`MIN_PROBES`] probes spread evenly from byte 0, never more than [`MAX_SPACING`] apart,
//! plus the bisection's own probes. The file is trusted only when every probe finds a unix
//! clock and the probed times never fall (by more than the lateness) from one probe to the
//! next, whatever sensor each probe lands on. Otherwise the file is read whole, and the
//! summary says why.
//!
//! With that evidence:
//! - the seek starts at a header whose first reading lies a safety [`margin`] before
//!   `--from`: lateness and max gap (the gap at the window start is anchored by the reading
//!   before it), the validator's and the gap filler's history in periods of the slowest
//!   stream probed, and [`SAFETY_MS`] more;
//! - the seek is then checked by reading from its offset as the replay will (to the end, or
//!   to the early stop): a stream with readings from `--from` on that shows up with a seq
//!   above 0 and fewer than [`SeekWindow::history`] readings before `--from` came back from a
//!   silence that began before the offset, and its state then (the anchor of the outage, a
//!   stuck run, the stochastic fill's variability) would be lost, so the file is read from the
//!   start instead (the check decodes, without repairing, the bytes the replay then reads);
//! - the early stop happens only past the last probe that shows a time at or before the stop
//!   limit (`--until` plus lateness twice, max gap and a period), and only after [`STOP_RUN`]
//!   readings in a row beyond that limit: one outlying reading never stops a replay.
//!
//! What remains possible, and is not detected: a fragment shorter than the probe spacing
//! that is out of time order (a short log pasted into the middle of another, a few readings
//! with a glitched clock) inside the skipped prefix or after the stop. `--no-seek` reads
//! everything when that matters.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;

use super::books::ByteCounts;
use super::detect::{detect, Format};
use super::frames::FrameReader;
use super::item::{Item, ReadingItem};
pub use super::reader::STOP_RUN;
use super::reader::{ItemReader, StopRule, BATCH};

mod note;
mod probe;

pub use note::{Distrust, PlanNote, Resumes};
use probe::{check, probe_into, survey};
pub use probe::{MAX_SPACING, MIN_PROBES};

/// Files smaller than this are read whole: a shortcut would not save anything.
pub const MIN_SEEK_SIZE: u64 = 1 << 20;

/// Lowers [`MIN_SEEK_SIZE`] (a number of bytes) so that tests can exercise the shortcuts on
/// small files. Not part of the command line.
pub const MIN_SEEK_SIZE_ENV: &str = "MEND_MIN_SEEK_SIZE";

/// Extra time before `--from` where a seek starts, beyond what the settings require.
pub const SAFETY_MS: u64 = 3_600_000;

/// Bisection stops when the candidate range is this small.
const CLOSE_ENOUGH: u64 = 64 * 1024;

/// Where shortcuts are considered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeekSettings {
    /// Files smaller than this are read whole.
    pub min_size: u64,
}

impl Default for SeekSettings {
    fn default() -> Self {
        Self {
            min_size: MIN_SEEK_SIZE,
        }
    }
}

impl SeekSettings {
    /// The defaults, with [`MIN_SEEK_SIZE_ENV`] applied when it holds a number.
    pub fn from_env() -> Self {
        let min_size = std::env::var(MIN_SEEK_SIZE_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(MIN_SEEK_SIZE);
        Self { min_size }
    }
}

/// What a seek must respect: the replay's window, and how far the engine looks around a
/// reading. The engine's configuration gives it (`EngineConfig::seek_window`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeekWindow {
    /// `--from`: no row before this time, ms.
    pub from: Option<u64>,
    /// `--until`: no row after this time, ms.
    pub until: Option<u64>,
    /// How long a stream waits for stragglers, ms.
    pub lateness_ms: u64,
    /// The longest gap that is filled, ms.
    pub max_gap_ms: u64,
    /// Readings of a stream before `--from` that rebuild its state: the validator's and the
    /// gap filler's history.
    pub history: u32,
}

/// How to read one input: where to start, and when it may stop early.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputPlan {
    /// Start decoding at this byte (0: from the start).
    pub start: u64,
    /// Stop early under this rule (`None`: read to the end).
    pub stop: Option<StopRule>,
}

/// The time before `--from` where a seek should land, in ms.
pub fn margin(cfg: &SeekWindow, max_period_ms: u64) -> u64 {
    let history = u64::from(cfg.history);
    cfg.lateness_ms
        .saturating_mul(2)
        .saturating_add(cfg.max_gap_ms)
        .saturating_add(history.saturating_mul(max_period_ms))
        .saturating_add(SAFETY_MS)
}

/// The time after which no reading can matter to rows up to `until`, in ms: the next
/// reading of a stream (the far end of a gap at the window's end) is at most the max gap
/// (or a period) away, and readings out of order by up to the lateness still find their
/// place; twice the lateness allows for the tolerance of the probes.
pub fn stop_limit(cfg: &SeekWindow, until: u64, max_period_ms: u64) -> u64 {
    until
        .saturating_add(cfg.lateness_ms.saturating_mul(2))
        .saturating_add(cfg.max_gap_ms.max(max_period_ms))
        .saturating_add(max_period_ms)
}

/// Decides how to read the file at `path` for the window `cfg`: where to start (a seek
/// for `--from`) and when it may stop (for `--until`), each only where the probes show
/// time growing through the file. The notes say what was decided and why.
pub fn plan(
    path: &Path,
    cfg: &SeekWindow,
    settings: &SeekSettings,
) -> anyhow::Result<(InputPlan, Vec<PlanNote>)> {
    let mut plan = InputPlan::default();
    let mut notes = Vec::new();
    if cfg.from.is_none() && cfg.until.is_none() {
        return Ok((plan, notes));
    }
    let name = path.display();
    let mut f = File::open(path).with_context(|| format!("{name}: cannot open input"))?;
    let size = f
        .metadata()
        .with_context(|| format!("{name}: cannot read metadata"))?
        .len();
    let mut head = vec![0u8; 64 * 1024];
    let n = f
        .read(&mut head)
        .with_context(|| format!("{name}: cannot read"))?;
    if detect(head.get(..n).unwrap_or(&[])) != Some(Format::Frames) {
        if cfg.until.is_some() {
            notes.push(PlanNote::JsonlToTheEnd);
        }
        return Ok((plan, notes));
    }
    if size < settings.min_size {
        notes.push(PlanNote::Small {
            min_size: settings.min_size,
        });
        return Ok((plan, notes));
    }
    let tolerance = cfg.lateness_ms;
    let read_err = || format!("{name}: cannot read");
    let mut survey = match survey(&mut f, size, tolerance).with_context(read_err)? {
        Ok(s) => s,
        Err(why) => {
            notes.push(PlanNote::ReadWhole(why));
            return Ok((plan, notes));
        }
    };
    if let Some(from) = cfg.from {
        let target = from.saturating_sub(margin(cfg, survey.max_period_ms));
        // The last probe before the target, and the first at or after it.
        let before = survey.probes.iter().rev().find(|p| p.first_ms < target);
        let mut lo = before.map_or(0, |p| p.header_at);
        let mut hi = survey
            .probes
            .iter()
            .find(|p| p.first_ms >= target && p.header_at > lo)
            .map_or(size, |p| p.header_at);
        if before.is_some() {
            let mut extra = Vec::new();
            while hi - lo > CLOSE_ENOUGH {
                let mid = lo + (hi - lo) / 2;
                let mut found = Vec::new();
                if let Err(why) =
                    probe_into(&mut f, mid, size, &mut found).with_context(read_err)?
                {
                    notes.push(PlanNote::ReadWhole(why));
                    return Ok((InputPlan::default(), notes));
                }
                match found.first() {
                    Some(p) if p.header_at < hi => {
                        if p.first_ms < target {
                            lo = lo.max(p.header_at);
                        } else {
                            hi = mid;
                        }
                        extra.push(*p);
                    }
                    _ => hi = mid,
                }
            }
            survey.probes.extend(extra);
            if let Err(why) = check(&mut survey.probes, tolerance) {
                notes.push(PlanNote::ReadWhole(why));
                return Ok((InputPlan::default(), notes));
            }
        }
        plan.start = lo;
    }
    if let Some(until) = cfg.until {
        let limit = stop_limit(cfg, until, survey.max_period_ms);
        // Past the last probe that shows a time at or before the limit.
        let from_byte = match survey.probes.iter().rposition(|p| p.first_ms <= limit) {
            Some(i) => survey.probes.get(i + 1).map(|p| p.header_at),
            None => Some(0),
        };
        match from_byte {
            Some(from_byte) => {
                plan.stop = Some(StopRule {
                    after_ms: limit,
                    from_byte: from_byte.max(plan.start),
                    run: STOP_RUN,
                });
            }
            None => notes.push(PlanNote::NoStopNearTheEnd { limit_ms: limit }),
        }
    }
    if let (Some(from), true) = (cfg.from, plan.start > 0) {
        let after = File::open(path).with_context(|| format!("{name}: cannot open input"))?;
        match resumes(after, plan.start, size, from, plan.stop, cfg.history)
            .with_context(read_err)?
        {
            Some(r) => {
                plan.start = 0;
                notes.push(PlanNote::NoSeek(r));
            }
            None => notes.push(PlanNote::Seek {
                at: plan.start,
                probes: survey.probes.len(),
            }),
        }
    }
    Ok((plan, notes))
}

/// Reads `f` from `start` (to the end, or to where `stop` stops it) as a seek would, and
/// finds a stream with readings from `from` on whose state the seek cannot rebuild: one
/// that shows up after `start` with a seq above 0 and fewer than `history` readings
/// before `from`. A stream whose session starts after `start` (seq 0) has nothing before.
fn resumes(
    mut f: File,
    start: u64,
    size: u64,
    from: u64,
    stop: Option<StopRule>,
    history: u32,
) -> std::io::Result<Option<Resumes>> {
    f.seek(SeekFrom::Start(start))?;
    let counts = ByteCounts {
        before_seek: start,
        total: Some(size),
        ..ByteCounts::default()
    };
    let mut reader = FrameReader::new(f, 0, counts, None);
    reader.set_stop_rule(stop);
    // Per stream: the lowest seq, the earliest time, readings before `from`, and whether
    // any is at or after it.
    let mut streams: BTreeMap<(u32, u32), (u32, u64, u32, bool)> = BTreeMap::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let more = reader.fill(&mut batch)?;
        for item in batch.drain(..) {
            let Item::Reading(ReadingItem { reading: r, .. }) = item else {
                continue;
            };
            let e = streams
                .entry((r.sensor, r.session))
                .or_insert((r.seq, r.timestamp, 0, false));
            e.0 = e.0.min(r.seq);
            e.1 = e.1.min(r.timestamp);
            if r.timestamp < from {
                e.2 = e.2.saturating_add(1);
            } else {
                e.3 = true;
            }
        }
        if !more {
            break;
        }
    }
    Ok(streams
        .into_iter()
        .find(|(_, (seq, _, before, window))| *window && *seq > 0 && *before < history)
        .map(
            |((sensor, session), (seq, first_ms, before_from, _))| Resumes {
                sensor,
                session,
                seq,
                first_ms,
                before_from,
                needed: history,
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, GenerateConfig};

    fn capture_bytes(sensor: u32, count: u32, epoch_ms: u64) -> Vec<u8> {
        let mut cfg = GenerateConfig::clean(u64::from(sensor), count);
        cfg.sim.sensor = sensor;
        cfg.sim.epoch_ms = epoch_ms;
        let mut v = Vec::new();
        generate(&cfg, &mut v, None).unwrap();
        v
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    use mend_core::{DecodeEvent, Decoder, Frame};

    /// The window of a replay with the default settings.
    fn window(from: Option<u64>, until: Option<u64>) -> SeekWindow {
        SeekWindow {
            from,
            until,
            lateness_ms: 30_000,
            max_gap_ms: 60_000,
            history: 80,
        }
    }

    #[test]
    fn the_seek_lands_on_a_header_before_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.mlog", &capture_bytes(1, 200_000, 1_000_000));
        let size = std::fs::metadata(&path).unwrap().len();
        let from = 1_000_000 + 150_000 * 1_000;
        let cfg = window(Some(from), None);
        let (plan, notes) = plan(&path, &cfg, &SeekSettings::default()).unwrap();
        let at = plan.start;
        assert!(at > size / 2 && at < size, "{at} of {size}");
        assert!(
            matches!(notes[..], [PlanNote::Seek { at: a, .. }] if a == at),
            "{notes:?}"
        );
        let bytes = std::fs::read(&path).unwrap();
        let mut dec: Decoder = Decoder::at(at);
        let mut events = dec.feed(&bytes[at as usize..]);
        let Some(DecodeEvent::Frame {
            frame: Frame::Header(h),
            ..
        }) = events.next()
        else {
            panic!("no header at {at}");
        };
        let first = events
            .find_map(|e| match e {
                DecodeEvent::Frame {
                    frame: Frame::Reading(w),
                    ..
                } => Some(h.from_wire(&w).unwrap().timestamp),
                _ => None,
            })
            .unwrap();
        // Before the margin, by at most the 64 KiB where the bisection stops.
        let target = from - margin(&cfg, 1_000);
        assert!(first < target && target - first < 7_000_000, "{first}");
        // Before the first reading: from the start.
        let (early, _) =
            super::plan(&path, &window(Some(0), None), &SeekSettings::default()).unwrap();
        assert_eq!(early.start, 0);
    }

    #[test]
    fn small_files_and_jsonl_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.mlog", &capture_bytes(1, 100, 0));
        let cfg = window(Some(50_000), Some(60_000));
        let got = plan(&path, &cfg, &SeekSettings::default()).unwrap();
        let small = PlanNote::Small {
            min_size: MIN_SEEK_SIZE,
        };
        assert_eq!(got, (InputPlan::default(), vec![small]));
        assert_eq!(
            small.to_string(),
            "read whole: under 1024 KiB, a seek or an early stop would save nothing"
        );
        let j = write(&dir, "x.jsonl", b"{\"timestamp\": 1}\n");
        let got = plan(&j, &cfg, &SeekSettings { min_size: 0 }).unwrap();
        assert_eq!(got, (InputPlan::default(), vec![PlanNote::JsonlToTheEnd]));
    }

    #[test]
    fn concatenated_logs_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        // Sensor 1, then sensor 2 over the same hours: time falls where sensor 2 starts.
        let mut both = capture_bytes(1, 20_000, 0);
        let second = both.len() as u64;
        both.extend(capture_bytes(2, 20_000, 0));
        let path = write(&dir, "cat.mlog", &both);
        let cfg = window(Some(15_000_000), Some(16_000_000));
        let (got, notes) = plan(&path, &cfg, &SeekSettings { min_size: 0 }).unwrap();
        assert_eq!(got, InputPlan::default());
        let [PlanNote::ReadWhole(Distrust::Falls {
            at, ms, prev_ms, ..
        })] = notes[..]
        else {
            panic!("{notes:?}");
        };
        assert!(at >= second && ms < prev_ms, "{at} {ms} {prev_ms}");
        // Each half alone is trusted.
        let path = write(&dir, "one.mlog", &capture_bytes(1, 20_000, 0));
        let (got, _) = plan(&path, &cfg, &SeekSettings { min_size: 0 }).unwrap();
        assert!(got.start > 0 && got.stop.is_some(), "{got:?}");
    }

    #[test]
    fn the_stop_rule_starts_past_the_last_probe_before_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.mlog", &capture_bytes(1, 20_000, 0));
        let size = std::fs::metadata(&path).unwrap().len();
        let cfg = window(None, Some(5_000_000));
        let (got, _) = plan(&path, &cfg, &SeekSettings { min_size: 0 }).unwrap();
        let rule = got.stop.unwrap();
        assert_eq!(rule.after_ms, stop_limit(&cfg, 5_000_000, 1_000));
        assert_eq!(rule.run, STOP_RUN);
        // The limit is about a quarter into the file; the rule starts within a probe
        // spacing after it.
        let quarter = size * rule.after_ms / 20_000_000;
        assert!(
            rule.from_byte > quarter - size / 64 && rule.from_byte < quarter + size / 32,
            "{rule:?} of {size}"
        );
        // A limit past the last probe: no early stop.
        let (got, notes) = plan(
            &path,
            &window(None, Some(19_990_000)),
            &SeekSettings { min_size: 0 },
        )
        .unwrap();
        let limit_ms = stop_limit(&cfg, 19_990_000, 1_000);
        assert_eq!(
            (got.stop, notes),
            (None, vec![PlanNote::NoStopNearTheEnd { limit_ms }])
        );
    }
}
