//! Simulated captures with their ground truth.
//!
//! Recovery claims are only worth what they are measured against. `mend generate` runs the
//! core's seeded [`Simulator`] through the same [`EdgePipeline`] a node runs, sends the
//! frames over a seeded faulty [`Link`], damages bytes, and writes what a host would have
//! captured — next to the truth: every reading the sensor took.

use std::io::{self, Write};

use anyhow::{bail, Context};
use mend_core::{
    ClockKind, EdgeConfig, EdgePipeline, FrameBuf, Link, SimConfig, Simulator, TruthPoint, PPM,
};

use crate::text::numfmt::{push_celsius, push_u64};
use crate::text::timefmt::push_time;

/// The CSV header of a truth file.
pub const TRUTH_HEADER: &str = "sensor,session,seq,time,celsius,out_of_band";

/// The capture formats `mend generate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// mend frames.
    Mlog,
    /// The prototype's JSONL events.
    Jsonl,
}

/// What to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerateConfig {
    /// The seed of the sensor and the link.
    pub seed: u64,
    /// How many readings the sensor takes.
    pub count: u32,
    /// The sensor and link rates, period, epoch and band.
    pub sim: SimConfig,
    /// The output format.
    pub format: CaptureFormat,
}

impl GenerateConfig {
    /// The session a seed stands for: one power-up per seed.
    pub const fn session_of(seed: u64) -> u32 {
        (seed ^ (seed >> 32)) as u32
    }

    /// A configuration with all rates zero: a clean capture.
    pub fn clean(seed: u64, count: u32) -> Self {
        Self {
            seed,
            count,
            sim: SimConfig {
                session: Self::session_of(seed),
                ..SimConfig::CLEAN
            },
            format: CaptureFormat::Mlog,
        }
    }
}

/// A rate in `[0, 1]` as parts per million; NaN and out-of-range values are errors.
///
/// # Examples
/// ```
/// assert_eq!(mend::generate::rate_to_ppm("skip", 0.1).unwrap(), 100_000);
/// assert!(mend::generate::rate_to_ppm("skip", 1.5).is_err());
/// assert!(mend::generate::rate_to_ppm("skip", f64::NAN).is_err());
/// ```
pub fn rate_to_ppm(name: &str, rate: f64) -> anyhow::Result<u32> {
    if !(0.0..=1.0).contains(&rate) {
        bail!("--{name}-rate {rate} is not a rate between 0 and 1");
    }
    Ok((rate * f64::from(PPM)).round() as u32)
}

/// What a generation produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenerateStats {
    /// Readings the sensor took.
    pub readings: u64,
    /// Readings the simulator put out of band.
    pub out_of_band: u64,
    /// Frames (or lines) sent to the link.
    pub sent: u64,
    /// Frames (or lines) the link dropped.
    pub dropped: u64,
    /// Extra copies the link delivered.
    pub duplicated: u64,
    /// Items the link delayed.
    pub delayed: u64,
    /// Items with a flipped bit.
    pub corrupted: u64,
    /// Items cut short.
    pub truncated: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Appends one truth row.
fn push_truth(buf: &mut Vec<u8>, t: &TruthPoint) {
    let r = &t.reading;
    push_u64(buf, u64::from(r.sensor));
    buf.push(b',');
    push_u64(buf, u64::from(r.session));
    buf.push(b',');
    push_u64(buf, u64::from(r.seq));
    buf.push(b',');
    push_time(buf, r.timestamp);
    buf.push(b',');
    push_celsius(buf, r.celsius);
    buf.push(b',');
    buf.extend_from_slice(if t.out_of_band { b"true" } else { b"false" });
    buf.push(b'\n');
}

/// Writes a simulated capture to `capture`, and the truth to `truth` if given.
///
/// # Examples
/// A clean capture holds exactly one reading frame per reading:
/// ```
/// use mend::generate::{generate, GenerateConfig};
/// let mut capture = Vec::new();
/// let stats = generate(&GenerateConfig::clean(1, 100), &mut capture, None).unwrap();
/// assert_eq!(stats.readings, 100);
/// let out = mend::replay_bytes(&capture, &mend::ReplayConfig::default()).unwrap();
/// assert_eq!(out.records.len(), 100);
/// assert!(out.records.iter().all(|r| !r.record.is_synthetic()));
/// ```
pub fn generate(
    cfg: &GenerateConfig,
    capture: &mut dyn Write,
    mut truth: Option<&mut dyn Write>,
) -> anyhow::Result<GenerateStats> {
    cfg.sim.check().context("invalid simulation settings")?;
    let mut stats = GenerateStats::default();
    let mut row = Vec::with_capacity(64 * 1024);
    if let Some(t) = truth.as_mut() {
        t.write_all(TRUTH_HEADER.as_bytes())?;
        t.write_all(b"\n")?;
    }
    let sim = Simulator::new(cfg.seed, cfg.sim);
    let mut link: Link<FrameBuf, 8> = Link::new(cfg.seed, &cfg.sim);
    let mut jlink: Link<Vec<u8>, 8> = Link::new(cfg.seed, &cfg.sim);
    let mut edge_cfg = EdgeConfig::new(cfg.sim.sensor, cfg.sim.session, cfg.sim.period_ms);
    edge_cfg.header.clock = ClockKind::Unix;
    edge_cfg.header.epoch_ms = cfg.sim.epoch_ms;
    edge_cfg.validate.band = cfg.sim.band;
    let mut edge: Box<EdgePipeline<64, 1024>> =
        Box::new(EdgePipeline::try_new(edge_cfg).context("invalid edge settings for this band")?);
    let mut delivered: Vec<FrameBuf> = Vec::with_capacity(4);
    let mut jdelivered: Vec<Vec<u8>> = Vec::with_capacity(4);
    let mut out = io::BufWriter::with_capacity(1 << 20, capture);
    let mut bytes: u64 = 0;
    let (lo, hi) = cfg.sim.band;
    for t in sim.take(cfg.count as usize) {
        stats.readings += 1;
        stats.out_of_band += u64::from(t.out_of_band);
        if let Some(w) = truth.as_mut() {
            push_truth(&mut row, &t);
            if row.len() > 60 * 1024 {
                w.write_all(&row)?;
                row.clear();
            }
        }
        match cfg.format {
            CaptureFormat::Mlog => {
                edge.push(t.reading);
                send_frames(
                    &mut edge,
                    &mut link,
                    &mut delivered,
                    &mut out,
                    &mut bytes,
                    false,
                )?;
            }
            CaptureFormat::Jsonl => {
                let c = t.reading.celsius;
                let status = if c < lo {
                    "low"
                } else if c > hi {
                    "high"
                } else {
                    "normal"
                };
                let mut line = Vec::with_capacity(128);
                line.extend_from_slice(b"{\"timestamp\": ");
                push_u64(&mut line, t.reading.timestamp / 1_000);
                line.extend_from_slice(
                    b", \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": ",
                );
                push_celsius(&mut line, c);
                line.extend_from_slice(b", \"status\": \"");
                line.extend_from_slice(status.as_bytes());
                line.extend_from_slice(b"\"}");
                jlink.send(line, |x| jdelivered.push(x));
                write_damaged(&mut jlink, &mut jdelivered, b"\n", &mut out, &mut bytes)?;
            }
        }
    }
    match cfg.format {
        CaptureFormat::Mlog => {
            edge.flush();
            send_frames(
                &mut edge,
                &mut link,
                &mut delivered,
                &mut out,
                &mut bytes,
                true,
            )?;
        }
        CaptureFormat::Jsonl => {
            jlink.flush(|x| jdelivered.push(x));
            write_damaged(&mut jlink, &mut jdelivered, b"\n", &mut out, &mut bytes)?;
        }
    }
    out.flush()?;
    if let Some(w) = truth.as_mut() {
        w.write_all(&row)?;
        w.flush()?;
    }
    let ls = match cfg.format {
        CaptureFormat::Mlog => link.stats(),
        CaptureFormat::Jsonl => jlink.stats(),
    };
    stats.sent = u64::from(ls.sent);
    stats.dropped = u64::from(ls.dropped);
    stats.duplicated = u64::from(ls.duplicated);
    stats.delayed = u64::from(ls.delayed);
    stats.corrupted = u64::from(ls.corrupted);
    stats.truncated = u64::from(ls.truncated);
    stats.bytes = bytes;
    Ok(stats)
}

fn send_frames(
    edge: &mut EdgePipeline<64, 1024>,
    link: &mut Link<FrameBuf, 8>,
    delivered: &mut Vec<FrameBuf>,
    out: &mut dyn Write,
    bytes: &mut u64,
    flush: bool,
) -> io::Result<()> {
    while let Some(f) = edge.poll_frame() {
        link.send(f, |x| delivered.push(x));
        write_damaged(link, delivered, &[], out, bytes)?;
    }
    if flush {
        link.flush(|x| delivered.push(x));
        write_damaged(link, delivered, &[], out, bytes)?;
    }
    Ok(())
}

/// Damages each delivered item with the link's corruption rates and writes what is left of
/// it, followed by `end` (nothing for frames, a newline for JSONL lines).
fn write_damaged<T: AsMut<[u8]> + Clone>(
    link: &mut Link<T, 8>,
    delivered: &mut Vec<T>,
    end: &[u8],
    out: &mut dyn Write,
    bytes: &mut u64,
) -> io::Result<()> {
    for mut item in delivered.drain(..) {
        let item = item.as_mut();
        let n = link.corrupt(item);
        let part = item.get(..n).unwrap_or(item);
        out.write_all(part)?;
        out.write_all(end)?;
        *bytes += (part.len() + end.len()) as u64;
    }
    Ok(())
}
