//! The arguments of the fleet commands (`publish`, `work`, `export`, `status`).

use std::path::PathBuf;

use clap::Args;

use super::{FillArg, ReadArgs};
use mend::fleet::DEFAULT_REDIS;
use mend::replay::ReplayConfig;

/// `mend publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Captures (mend frame logs); `-` is stdin.
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// The Redis server.
    #[arg(long, default_value = DEFAULT_REDIS)]
    pub redis: String,
    /// The captures are complete: workers settle these sensors' tails at once.
    #[arg(long)]
    pub end: bool,
}

/// `mend work`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// The Redis server.
    #[arg(long, default_value = DEFAULT_REDIS)]
    pub redis: String,
    /// The consumer group the workers share.
    #[arg(long, default_value = "mend")]
    pub group: String,
    /// This worker's name, unique in the group.
    #[arg(long)]
    pub consumer: String,
    /// Settle a sensor's tail once its stream has been idle this long.
    #[arg(long, default_value = "10s")]
    pub settle: String,
    /// A sensor's lease lasts this long without renewal: a dead worker's sensors are taken
    /// over after it.
    #[arg(long, default_value = "15s")]
    pub lease: String,
    /// Raw entries read per XREADGROUP (each holds up to 64 readings).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// The pause between rounds that found nothing to do.
    #[arg(long, default_value = "100ms")]
    pub poll: String,
    /// Keep reconnecting to an unreachable Redis this long before giving up (exit 2).
    #[arg(long, default_value = "5m")]
    pub retry_for: String,
    /// Exit once every sensor is settled and nothing is pending.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// How to fill gaps, as for `mend replay`.
    #[arg(long, value_enum, default_value_t = FillArg::Linear)]
    pub fill: FillArg,
    /// The seed of stochastic fills.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How long a stream waits for late or reordered readings.
    #[arg(long, default_value = "30s")]
    pub lateness: String,
    /// Gaps longer than this are outages: reported, never filled.
    #[arg(long, default_value = "60s")]
    pub max_gap: String,
    /// The valid band in °C, LO..HI, inclusive.
    #[arg(long, default_value = "50..55", allow_hyphen_values = true)]
    pub band: String,
    /// What the sensor can measure at all, in °C, LO..HI.
    #[arg(long, default_value = "-55..125", allow_hyphen_values = true)]
    pub physical: String,
    /// Write a `missing` row for every slot of an outage, as `mend replay --emit-outages`.
    #[arg(long)]
    pub emit_outages: bool,
}

impl WorkArgs {
    /// The repair settings, checked as `mend replay` checks them.
    pub fn replay_config(&self) -> anyhow::Result<ReplayConfig> {
        let read = ReadArgs {
            inputs: Vec::new(),
            from: None,
            until: None,
            period: None,
            lateness: self.lateness.clone(),
            max_gap: self.max_gap.clone(),
            band: self.band.clone(),
            physical: self.physical.clone(),
            no_seek: true,
            input_format: super::InputFormatArg::Mlog,
        };
        let mut cfg = read.plan(self.fill.method(), self.seed)?.config;
        cfg.engine.emit_outages = self.emit_outages;
        Ok(cfg)
    }
}

/// Row formats of `mend export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// `sensor,session,seq,time,celsius,origin,method,quality,flags`.
    Csv,
    /// The same fields, one JSON object per line.
    Jsonl,
}

/// `mend export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The Redis server.
    #[arg(long, default_value = DEFAULT_REDIS)]
    pub redis: String,
    /// The sensor whose output stream to export.
    #[arg(long)]
    pub sensor: u32,
    /// Rows from this time: RFC 3339 with a zone or unix seconds.
    #[arg(long)]
    pub from: Option<String>,
    /// Rows until this time, inclusive.
    #[arg(long)]
    pub until: Option<String>,
    /// The row format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// The output file (`-` or absent: standard output).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
}

/// `mend status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Redis server.
    #[arg(long, default_value = DEFAULT_REDIS)]
    pub redis: String,
    /// The consumer group of the workers.
    #[arg(long, default_value = "mend")]
    pub group: String,
}
