//! The arguments of the fleet commands (`publish`, `work`, `export`, `status`).

use std::path::PathBuf;

use clap::Args;

use super::parse::{lease_arg, ms_arg, time_arg};
use super::replay::{FillArg, RepairLimits};
use mend::engine::EngineConfig;
use mend::fleet::DEFAULT_REDIS;
use mend::input::Format;
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
    #[arg(long, default_value = "10s", value_parser = ms_arg("settle"))]
    pub settle: u64,
    /// A sensor's lease lasts this long without renewal: a dead worker's sensors are taken
    /// over after it.
    #[arg(long, default_value = "15s", value_parser = lease_arg())]
    pub lease: u64,
    /// Raw entries read per XREADGROUP (each holds up to 64 readings).
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// The pause between rounds that found nothing to do.
    #[arg(long, default_value = "100ms", value_parser = ms_arg("poll"))]
    pub poll: u64,
    /// Keep reconnecting to an unreachable Redis this long before giving up (exit 2).
    #[arg(long, default_value = "5m", value_parser = ms_arg("retry-for"))]
    pub retry_for: u64,
    /// Exit once every sensor is settled and nothing is pending.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// How to fill gaps, as for `mend replay`.
    #[arg(long, value_enum, default_value_t = FillArg::Linear)]
    pub fill: FillArg,
    /// The seed of stochastic fills.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Lateness, maximum gap and the bands, as for `mend replay`.
    #[command(flatten)]
    pub limits: RepairLimits,
    /// Write a `missing` row for every slot of an outage, as `mend replay --emit-outages`.
    #[arg(long)]
    pub emit_outages: bool,
}

impl WorkArgs {
    /// The repair settings, checked as `mend replay` checks them.
    pub fn replay_config(&self) -> anyhow::Result<ReplayConfig> {
        Ok(ReplayConfig {
            engine: EngineConfig {
                fill: self.fill.method(),
                seed: self.seed,
                emit_outages: self.emit_outages,
                ..self.limits.engine()?
            },
            jsonl_period_ms: 1_000,
            input_format: Some(Format::Frames),
            // A worker reads each entry once: a torn frame at the end of a stream is not read
            // again by its next run.
            tail_may_grow: false,
        })
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
    #[arg(long, value_parser = time_arg("from"))]
    pub from: Option<u64>,
    /// Rows until this time, inclusive.
    #[arg(long, value_parser = time_arg("until"))]
    pub until: Option<u64>,
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
