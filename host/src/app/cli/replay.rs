//! The arguments of `mend replay` and `mend inspect`, and the typed plan they build.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use mend_core::{Celsius, FillMethod, ValidateConfig};

use super::parse::{ms_arg, period_arg, positive_ms_arg, range_arg, time_arg, Given};
use mend::engine::EngineConfig;
use mend::input::{Format, InputSource};
use mend::replay::files::{OutputFormat, ReplayFiles, STDOUT};
use mend::replay::plan::ReadPlan;
use mend::replay::ReplayConfig;

/// Fill methods on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FillArg {
    /// Straight line between the neighbours.
    Linear,
    /// Last observation carried forward.
    Locf,
    /// Seeded noise around the line, scaled to the local variability.
    Stochastic,
    /// Report gaps, fill nothing.
    None,
}

impl FillArg {
    /// The core's method.
    pub fn method(self) -> FillMethod {
        match self {
            FillArg::Linear => FillMethod::Linear,
            FillArg::Locf => FillMethod::Locf,
            FillArg::Stochastic => FillMethod::Stochastic,
            FillArg::None => FillMethod::None,
        }
    }
}

/// Output formats of `mend replay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    /// `sensor,session,seq,time,celsius,origin,method,quality,flags`.
    Csv,
    /// The same fields, one JSON object per line.
    Jsonl,
    /// mend frames of the measured readings only: the wire format cannot carry synthetic
    /// records, and a later replay recomputes the fills.
    Mlog,
}

impl From<OutFormat> for OutputFormat {
    fn from(f: OutFormat) -> Self {
        match f {
            OutFormat::Csv => OutputFormat::Csv,
            OutFormat::Jsonl => OutputFormat::Jsonl,
            OutFormat::Mlog => OutputFormat::Mlog,
        }
    }
}

/// Input formats on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum InputFormatArg {
    /// Detect each input's format from its first bytes.
    #[default]
    Auto,
    /// mend frame logs.
    Mlog,
    /// The prototype's JSONL.
    Jsonl,
}

impl InputFormatArg {
    /// The format to read every input as, or `None` to detect each one's.
    pub const fn format(self) -> Option<Format> {
        match self {
            InputFormatArg::Auto => None,
            InputFormatArg::Mlog => Some(Format::Frames),
            InputFormatArg::Jsonl => Some(Format::Jsonl),
        }
    }
}

/// A band in °C, as given.
pub type Band = Given<(Celsius, Celsius)>;

/// The limits of a repair, shared by `replay`, `inspect` and `work`.
#[derive(Debug, Args, Clone)]
pub struct RepairLimits {
    /// How long a stream waits for late or reordered readings.
    #[arg(long, default_value = "30s", value_parser = ms_arg("lateness"))]
    pub lateness: u64,
    /// Gaps longer than this are outages: reported, never filled.
    #[arg(long, default_value = "60s", value_parser = positive_ms_arg("max-gap"))]
    pub max_gap: u64,
    /// The valid band in °C, LO..HI, inclusive.
    #[arg(long, default_value = "50..55", allow_hyphen_values = true, value_parser = range_arg("band"))]
    pub band: Band,
    /// What the sensor can measure at all, in °C, LO..HI (the TMP105's range by default):
    /// a reading outside it is flagged implausible and is not used to fill gaps.
    #[arg(long, default_value = "-55..125", allow_hyphen_values = true, value_parser = range_arg("physical"))]
    pub physical: Band,
}

impl RepairLimits {
    /// The engine settings of these limits (the rest as by default), `--band` checked
    /// within `--physical`.
    pub fn engine(&self) -> anyhow::Result<EngineConfig> {
        let validate = ValidateConfig {
            band: self.band.value,
            physical: self.physical.value,
            ..ValidateConfig::DEFAULT
        };
        validate.check().map_err(|e| {
            anyhow::anyhow!(
                "--band {}: {e} (the sensor's physical range, --physical, is {}..{} °C)",
                self.band.text,
                self.physical.value.0,
                self.physical.value.1
            )
        })?;
        Ok(EngineConfig {
            lateness_ms: self.lateness,
            max_gap_ms: self.max_gap,
            validate,
            ..EngineConfig::default()
        })
    }
}

/// The options shared by `replay` and `inspect`.
#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    /// Capture files: mend frame logs or JSONL, detected automatically; `-` is stdin.
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Replay from this time: RFC 3339 with a zone (2026-01-01T06:00:00Z, …+01:00) or unix seconds.
    #[arg(long, value_parser = time_arg("from"))]
    pub from: Option<u64>,
    /// Replay until this time, inclusive.
    #[arg(long, value_parser = time_arg("until"))]
    pub until: Option<u64>,
    /// The sampling period of JSONL input, 1s when not given (frame logs carry theirs in the
    /// header).
    #[arg(long, value_parser = period_arg())]
    pub period: Option<Given<u32>>,
    /// Lateness, maximum gap and the bands.
    #[command(flatten)]
    pub limits: RepairLimits,
    /// Read every input whole: no seek for --from, no early stop for --until.
    #[arg(long)]
    pub no_seek: bool,
    /// The format of the inputs; `auto` detects each one's from its first bytes.
    #[arg(long, value_enum, default_value_t = InputFormatArg::Auto)]
    pub input_format: InputFormatArg,
}

/// `mend replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// What to read, and which part of it.
    #[command(flatten)]
    pub read: ReadArgs,
    /// How gaps are filled.
    #[arg(long, value_enum, default_value_t = FillArg::Linear)]
    pub fill: FillArg,
    /// The seed of stochastic fills.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
    pub format: OutFormat,
    /// The output file (default, or `-`: standard output).
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Write everything that could not be used here, as JSONL (`-`: standard output).
    #[arg(long)]
    pub dlq: Option<PathBuf>,
    /// Draw an SVG chart of the repaired series.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// The aggregate window (e.g. 1m); needs --aggregates.
    #[arg(long, requires = "aggregates", value_parser = positive_ms_arg("window"))]
    pub window: Option<u64>,
    /// Write per-window aggregates here, as CSV; needs --window.
    #[arg(long, requires = "window")]
    pub aggregates: Option<PathBuf>,
    /// Write the slots of outages (gaps too long to fill) as rows with an empty celsius and
    /// origin "missing", for tools that want one row per period (CSV and JSONL only).
    #[arg(long)]
    pub emit_outages: bool,
    /// Resume from (and update) this checkpoint: write only what is new since last time.
    /// Each stream's last readings (within --lateness and --max-gap of its newest) are held
    /// back for the next run, since stragglers may still change them.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// With --checkpoint: the log is complete; write the held-back tail too.
    #[arg(long = "final", requires = "checkpoint")]
    pub final_run: bool,
    /// Write the summary as JSON here as well.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Exit with 1 when anything was rejected or dead-lettered.
    #[arg(long)]
    pub strict: bool,
    /// No summary and no progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `mend inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// What to read, and which part of it.
    #[command(flatten)]
    pub read: ReadArgs,
    /// How many skipped byte ranges to list before only counting them.
    #[arg(long, default_value_t = 20)]
    pub list: usize,
}

impl ReadArgs {
    /// Checks the arguments together and builds the plan.
    pub fn plan(&self, fill: FillMethod, seed: u64) -> anyhow::Result<ReadPlan> {
        let engine = self.limits.engine()?;
        if let (Some(f), Some(u)) = (self.from, self.until) {
            if f > u {
                bail!("--from is after --until: the window is empty");
            }
        }
        let sources: Vec<InputSource> = self
            .inputs
            .iter()
            .map(|p| InputSource::from_arg(p))
            .collect();
        if sources.iter().filter(|s| **s == InputSource::Stdin).count() > 1 {
            bail!("standard input (-) can be given only once");
        }
        Ok(ReadPlan {
            sources,
            config: ReplayConfig {
                engine: EngineConfig {
                    fill,
                    seed,
                    from: self.from,
                    until: self.until,
                    ..engine
                },
                jsonl_period_ms: self.period.as_ref().map_or(1_000, |p| p.value),
                input_format: self.input_format.format(),
                tail_may_grow: false,
            },
            seek: !self.no_seek,
        })
    }
}

impl ReplayArgs {
    /// Checks the arguments together and builds the plan.
    pub fn plan(&self) -> anyhow::Result<ReadPlan> {
        let mut plan = self.read.plan(self.fill.method(), self.seed)?;
        plan.config.engine.hold_back = self.checkpoint.is_some() && !self.final_run;
        plan.config.tail_may_grow = plan.config.engine.hold_back;
        plan.config.engine.window_ms = self.window;
        if self.emit_outages && self.format == OutFormat::Mlog {
            bail!("--emit-outages cannot be used with --format mlog: a frame log has no way to say that nothing was measured (use --format csv or jsonl)");
        }
        plan.config.engine.emit_outages = self.emit_outages;
        Ok(plan)
    }

    /// The files the replay writes.
    pub fn files(&self) -> ReplayFiles {
        // `-` is standard output, for every output but the checkpoint.
        let named = |p: &Option<PathBuf>| {
            p.as_ref().map(|p| {
                if p.as_os_str() == "-" {
                    PathBuf::from(STDOUT)
                } else {
                    p.clone()
                }
            })
        };
        ReplayFiles {
            output: self.output.clone(),
            format: self.format.into(),
            dlq: named(&self.dlq),
            chart: named(&self.chart),
            aggregates: named(&self.aggregates),
            checkpoint: self.checkpoint.clone(),
            summary_json: named(&self.summary_json),
        }
    }
}
