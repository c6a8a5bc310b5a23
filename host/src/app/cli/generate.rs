//! The arguments of `mend generate`, and the simulation settings they build.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use mend_core::SimConfig;

use super::parse::{given_time_arg, period_arg, Given};
use mend::generate::{rate_to_ppm, CaptureFormat, GenerateConfig};
use mend::text::timefmt::{to_rfc3339, MAX_TIME_MS};

/// Capture formats of `mend generate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GenFormat {
    /// mend frames.
    Mlog,
    /// The prototype's JSONL.
    Jsonl,
}

/// `mend generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The seed of the sensor and the link.
    #[arg(long)]
    pub seed: u64,
    /// Readings the sensor takes.
    #[arg(long)]
    pub count: u32,
    /// The sampling period (e.g. 1s, 500ms).
    #[arg(long, default_value = "1s", value_parser = period_arg())]
    pub period: Given<u32>,
    /// The time of the first reading: RFC 3339 with a zone (2026-01-01T00:00:00Z) or unix seconds.
    #[arg(long, default_value = "2026-01-01T00:00:00Z", value_parser = given_time_arg("start"))]
    pub start: Given<u64>,
    /// The sensor id.
    #[arg(long, default_value_t = 1)]
    pub sensor: u32,
    /// Fraction of readings out of band (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of frames the link drops.
    #[arg(long, default_value_t = 0.0)]
    pub skip_rate: f64,
    /// Fraction of frames the link sends twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_rate: f64,
    /// Fraction of frames the link delays (by up to 3 places).
    #[arg(long, default_value_t = 0.0)]
    pub reorder_rate: f64,
    /// Fraction of frames with one flipped bit.
    #[arg(long, default_value_t = 0.0)]
    pub corrupt_rate: f64,
    /// Fraction of frames cut short (torn writes).
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// The capture format.
    #[arg(long, value_enum, default_value_t = GenFormat::Mlog)]
    pub format: GenFormat,
    /// The capture file (`-`: standard output).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Also write the truth: every reading the sensor took, as CSV.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

impl GenerateArgs {
    /// Checks the arguments together and builds the settings.
    pub fn plan(&self) -> anyhow::Result<GenerateConfig> {
        let period_ms = self.period.value;
        let epoch_ms = self.start.value;
        let last_ms = u64::from(self.count.saturating_sub(1))
            .checked_mul(u64::from(period_ms))
            .and_then(|span| epoch_ms.checked_add(span))
            .filter(|&t| t <= MAX_TIME_MS);
        if last_ms.is_none() {
            bail!(
                "--start {}: {} readings every {} would end after {}, the last time mend can write; start earlier or take fewer readings",
                self.start.text,
                self.count,
                self.period.text,
                to_rfc3339(MAX_TIME_MS)
            );
        }
        let sim = SimConfig {
            sensor: self.sensor,
            session: GenerateConfig::session_of(self.seed),
            period_ms,
            epoch_ms,
            error_ppm: rate_to_ppm("error", self.error_rate)?,
            skip_ppm: rate_to_ppm("skip", self.skip_rate)?,
            duplicate_ppm: rate_to_ppm("duplicate", self.duplicate_rate)?,
            reorder_ppm: rate_to_ppm("reorder", self.reorder_rate)?,
            max_displacement: 3,
            corrupt_ppm: rate_to_ppm("corrupt", self.corrupt_rate)?,
            truncate_ppm: rate_to_ppm("truncate", self.truncate_rate)?,
            ..SimConfig::ORIGIN
        };
        sim.check()
            .map_err(|e| anyhow::anyhow!("invalid simulation settings: {e}"))?;
        if self.format == GenFormat::Jsonl && period_ms % 1_000 != 0 {
            bail!("--period {}: JSONL timestamps are whole seconds, so the period must be a whole number of seconds", self.period.text);
        }
        Ok(GenerateConfig {
            seed: self.seed,
            count: self.count,
            sim,
            format: match self.format {
                GenFormat::Mlog => CaptureFormat::Mlog,
                GenFormat::Jsonl => CaptureFormat::Jsonl,
            },
        })
    }
}
