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
//!   above 0 and fewer than [`HISTORY`] readings before `--from` came back from a silence
//!   that began before the offset, and its state then (the anchor of the outage, a stuck
//!   run, the stochastic fill's variability) would be lost, so the file is read from the
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
use mend_core::{ClockKind, DecodeEvent, Decoder, Frame, Header};

use crate::engine::config::{EngineConfig, FILL_HISTORY, VALIDATOR_HISTORY};
use crate::input::{
    detect, ByteCounts, Format, FrameReader, Item, ItemReader, ReadingItem, StopRule, BATCH,
};
use crate::text::timefmt::to_rfc3339;

/// Files smaller than this are read whole: a shortcut would not save anything.
pub const MIN_SEEK_SIZE: u64 = 1 << 20;

/// Lowers [`MIN_SEEK_SIZE`] (a number of bytes) so that tests can exercise the shortcuts on
/// small files. Not part of the command line.
pub const MIN_SEEK_SIZE_ENV: &str = "MEND_MIN_SEEK_SIZE";

/// The fewest probes over a file, the first at byte 0.
pub const MIN_PROBES: u64 = 64;

/// The widest spacing between two probes, in bytes.
pub const MAX_SPACING: u64 = 256 * 1024;

/// Extra time before `--from` where a seek starts, beyond what the settings require.
pub const SAFETY_MS: u64 = 3_600_000;

/// Readings in a row beyond the stop limit before an early stop.
pub const STOP_RUN: u32 = 256;

/// How far a probe reads looking for a header and a reading.
const PROBE_LIMIT: u64 = 1 << 20;

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

/// How to read one input: where to start, and when it may stop early.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputPlan {
    /// Start decoding at this byte (0: from the start).
    pub start: u64,
    /// Stop early under this rule (`None`: read to the end).
    pub stop: Option<StopRule>,
}

/// Why a file is read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distrust {
    /// A probe found a boot clock: time starts again at every power-up.
    BootClock {
        /// The header's offset.
        at: u64,
    },
    /// A probe found an earlier time than the probe before it.
    Falls {
        /// The later probe's header offset.
        at: u64,
        /// Its first reading's time.
        ms: u64,
        /// The earlier probe's header offset.
        prev_at: u64,
        /// Its first reading's time.
        prev_ms: u64,
    },
    /// A probe found no header and reading within 1 MiB.
    NoFrames {
        /// The probe's offset.
        at: u64,
    },
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Distrust::BootClock { at } => {
                write!(f, "the session at byte {at} has a boot clock")
            }
            Distrust::Falls {
                at,
                ms,
                prev_at,
                prev_ms,
            } => write!(
                f,
                "time does not grow through the file (probe at byte {at} shows {} after {} at byte {prev_at})",
                to_rfc3339(ms),
                to_rfc3339(prev_ms)
            ),
            Distrust::NoFrames { at } => {
                write!(f, "no session header and reading within 1 MiB after byte {at}")
            }
        }
    }
}

/// A stream a seek cannot rebuild: it shows up after the seek offset with a seq above 0 and
/// too few readings before `--from` to refill its history, so its earlier readings (the
/// start of a silence, a stuck run) may lie before the offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumes {
    /// The sensor.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// Its lowest seq read after the offset.
    pub seq: u32,
    /// Its earliest time read after the offset.
    pub first_ms: u64,
    /// Its readings before `--from` read after the offset.
    pub before_from: u32,
}

impl std::fmt::Display for Resumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sensor {} session {} shows up at {} with seq {} and {} readings before --from (of {} needed): its earlier readings may lie before the seek offset",
            self.sensor,
            self.session,
            to_rfc3339(self.first_ms),
            self.seq,
            self.before_from,
            HISTORY
        )
    }
}

/// Readings of a stream before `--from` that rebuild its state: the validator's and the gap
/// filler's history.
pub const HISTORY: u32 = (VALIDATOR_HISTORY + FILL_HISTORY) as u32;

/// What the planning of one input decided, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanNote {
    /// The seek for `--from` starts at this byte.
    Seek {
        /// The offset.
        at: u64,
        /// How many probes back it.
        probes: usize,
    },
    /// The probes do not show time growing: no shortcut.
    ReadWhole(Distrust),
    /// JSONL is read to the end whatever `--until` says.
    JsonlToTheEnd,
    /// Standard input cannot be probed, so it is read to the end.
    NotAFile,
    /// The file is too small for shortcuts to save anything.
    Small {
        /// The threshold, bytes.
        min_size: u64,
    },
    /// No seek, because a stream cannot be rebuilt after it.
    NoSeek(Resumes),
    /// The input stopped early under this rule, at this byte.
    Stopped {
        /// The offset after the last byte read.
        at: u64,
        /// The rule.
        rule: StopRule,
    },
    /// The input was read to the end: the rule never applied.
    NotStopped(StopRule),
    /// No early stop: no probe after the last one at or before this time.
    NoStopNearTheEnd {
        /// The stop limit, ms.
        limit_ms: u64,
    },
}

impl std::fmt::Display for PlanNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            PlanNote::Seek { at, probes } => write!(
                f,
                "seek for --from: reading starts at byte {at} ({probes} probes show time growing through the file)"
            ),
            PlanNote::ReadWhole(why) => {
                write!(f, "no seek and no early stop: {why}; read from the start to the end")
            }
            PlanNote::Stopped { at, rule } => write!(
                f,
                "stopped early for --until at byte {at}: {} readings in a row later than {}, past the last probe before that time",
                rule.run,
                to_rfc3339(rule.after_ms)
            ),
            PlanNote::NotStopped(rule) => write!(
                f,
                "read to the end: no {} readings in a row later than {} past byte {}",
                rule.run,
                to_rfc3339(rule.after_ms),
                rule.from_byte
            ),
            PlanNote::NoSeek(r) => write!(f, "no seek for --from: {r}; read from the start"),
            PlanNote::NoStopNearTheEnd { limit_ms } => write!(
                f,
                "no early stop for --until: no probe after the last one at or before {}",
                to_rfc3339(limit_ms)
            ),
            PlanNote::NotAFile => write!(
                f,
                "read to the end for --until: a stream cannot be probed for an early stop"
            ),
            PlanNote::Small { min_size } => write!(
                f,
                "read whole: under {} KiB, a seek or an early stop would save nothing",
                min_size / 1024
            ),
            PlanNote::JsonlToTheEnd => {
                write!(f, "JSONL is read to the end for --until (no early stop)")
            }
        }
    }
}

/// What a probe found: the offset of a header frame and the first reading after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Probe {
    header_at: u64,
    first_ms: u64,
    clock: ClockKind,
    period_ms: u32,
}

/// What a probe at an offset saw.
enum Seen {
    Probe(Probe),
    /// The file ended before a header and a reading.
    End,
    /// [`PROBE_LIMIT`] bytes without a header and a reading.
    Nothing,
}

fn probe(f: &mut File, at: u64, size: u64) -> std::io::Result<Seen> {
    f.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; 4 * 1024];
    let mut pos = at;
    let mut synced = at == 0;
    let mut dec: Decoder = Decoder::at(at);
    let mut header: Option<(u64, Header)> = None;
    while pos < size {
        if pos - at >= PROBE_LIMIT {
            return Ok(Seen::Nothing);
        }
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in buf.get(..n).unwrap_or(&[]) {
            pos += 1;
            if !synced {
                if b == 0 {
                    synced = true;
                    dec = Decoder::at(pos);
                }
                continue;
            }
            let Some(ev) = dec.push(b) else {
                continue;
            };
            if let DecodeEvent::Frame { frame, span } = ev {
                match frame {
                    Frame::Header(h) if h.period_ms > 0 => header = Some((span.start, h)),
                    Frame::Reading(w) => {
                        if let Some((header_at, h)) = header {
                            if let Ok(r) = h.from_wire(&w) {
                                return Ok(Seen::Probe(Probe {
                                    header_at,
                                    first_ms: r.timestamp,
                                    clock: h.clock,
                                    period_ms: h.period_ms,
                                }));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(Seen::End)
}

/// The probes of a trusted file, by offset.
struct Survey {
    probes: Vec<Probe>,
    max_period_ms: u64,
}

/// Probes `at` and adds what it finds to `probes`; an untrustworthy finding is an error.
fn probe_into(
    f: &mut File,
    at: u64,
    size: u64,
    probes: &mut Vec<Probe>,
) -> anyhow::Result<Result<(), Distrust>> {
    match probe(f, at, size)? {
        Seen::Probe(p) if p.clock == ClockKind::Boot => {
            Ok(Err(Distrust::BootClock { at: p.header_at }))
        }
        Seen::Probe(p) => {
            probes.push(p);
            Ok(Ok(()))
        }
        Seen::End => Ok(Ok(())),
        Seen::Nothing => Ok(Err(Distrust::NoFrames { at })),
    }
}

/// Orders `probes` by offset (one per header) and checks that time never falls by more
/// than `tolerance_ms` from one to the next.
fn check(probes: &mut Vec<Probe>, tolerance_ms: u64) -> Result<(), Distrust> {
    probes.sort_by_key(|p| p.header_at);
    probes.dedup_by_key(|p| p.header_at);
    for w in probes.windows(2) {
        if let [a, b] = w {
            if b.first_ms.saturating_add(tolerance_ms) < a.first_ms {
                return Err(Distrust::Falls {
                    at: b.header_at,
                    ms: b.first_ms,
                    prev_at: a.header_at,
                    prev_ms: a.first_ms,
                });
            }
        }
    }
    Ok(())
}

fn survey(f: &mut File, size: u64, tolerance_ms: u64) -> anyhow::Result<Result<Survey, Distrust>> {
    let n = MIN_PROBES.max(size.div_ceil(MAX_SPACING));
    let mut probes = Vec::new();
    for k in 0..n {
        // Evenly spread: byte 0, then every size/n bytes.
        let at = u64::try_from(u128::from(size) * u128::from(k) / u128::from(n)).unwrap_or(0);
        if let Err(d) = probe_into(f, at, size, &mut probes)? {
            return Ok(Err(d));
        }
    }
    if let Err(d) = check(&mut probes, tolerance_ms) {
        return Ok(Err(d));
    }
    let max_period_ms = probes
        .iter()
        .map(|p| u64::from(p.period_ms))
        .max()
        .unwrap_or(0);
    Ok(Ok(Survey {
        probes,
        max_period_ms,
    }))
}

/// The time before `--from` where a seek should land, in ms.
pub fn margin(cfg: &EngineConfig, max_period_ms: u64) -> u64 {
    let history = (VALIDATOR_HISTORY + FILL_HISTORY) as u64;
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
pub fn stop_limit(cfg: &EngineConfig, until: u64, max_period_ms: u64) -> u64 {
    until
        .saturating_add(cfg.lateness_ms.saturating_mul(2))
        .saturating_add(cfg.max_gap_ms.max(max_period_ms))
        .saturating_add(max_period_ms)
}

/// Decides how to read the file at `path` for the window of `cfg`: where to start (a seek
/// for `--from`) and when it may stop (for `--until`), each only where the probes show
/// time growing through the file. The notes say what was decided and why.
pub fn plan(
    path: &Path,
    cfg: &EngineConfig,
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
        match resumes(after, plan.start, size, from, plan.stop).with_context(read_err)? {
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
/// that shows up after `start` with a seq above 0 and fewer than [`HISTORY`] readings
/// before `from`. A stream whose session starts after `start` (seq 0) has nothing before.
fn resumes(
    mut f: File,
    start: u64,
    size: u64,
    from: u64,
    stop: Option<StopRule>,
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
        .find(|(_, (seq, _, before, window))| *window && *seq > 0 && *before < HISTORY)
        .map(
            |((sensor, session), (seq, first_ms, before_from, _))| Resumes {
                sensor,
                session,
                seq,
                first_ms,
                before_from,
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

    fn window(from: Option<u64>, until: Option<u64>) -> EngineConfig {
        EngineConfig {
            from,
            until,
            ..EngineConfig::default()
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
