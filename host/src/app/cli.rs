//! The command line: clap arguments, and their translation into validated settings.
//!
//! Every argument is checked before any input is opened or any output created, so a typo in
//! `--band` never costs a ten-minute replay, and every complaint names the flag and the value.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mend_core::{Celsius, FillMethod, SimConfig, ValidateConfig};

use mend::engine::EngineConfig;
use mend::generate::{rate_to_ppm, CaptureFormat, GenerateConfig};
use mend::input::{Format, InputSource};
use mend::listen::{Endpoint, ListenConfig, RetryPolicy};
use mend::replay::ReplayConfig;
use mend::text::timefmt::{parse_duration_ms, parse_time, to_rfc3339, MAX_TIME_MS};

mod fleet;
pub use fleet::{ExportArgs, ExportFormat, PublishArgs, StatusArgs, WorkArgs};

/// Replays, repairs, exports and charts captured temperature-sensor logs.
#[derive(Debug, Parser)]
#[command(
    name = "mend",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success (rejected input is in the summary and the dead-letter file); \
                  1 with --strict when anything was rejected; 2 usage or I/O errors; \
                  130 interrupted (unfinished outputs are removed)."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a faulty node, capture it, replay it, and report recovery against the truth.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Write a simulated capture (and its ground truth).
    #[command(after_help = GENERATE_EXAMPLES)]
    Generate(GenerateArgs),
    /// Replay captures in time order: dedup, validate, fill gaps, export.
    #[command(after_help = REPLAY_EXAMPLES)]
    Replay(ReplayArgs),
    /// Show what a capture holds: sensors, sessions, frames, damage, gaps.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Fleet: publish captures into one Redis stream per sensor.
    Publish(PublishArgs),
    /// Fleet: a repair worker, sharing the sensors with the other workers of its group.
    Work(WorkArgs),
    /// Fleet: a sensor's repaired rows from Redis, as `mend replay` writes them.
    Export(ExportArgs),
    /// Fleet: sensors, workers, leases, lag, pending entries and dead letters.
    Status(StatusArgs),
    /// Be the gateway beside a node: append its frames to a capture, acknowledge what is on
    /// disk, ask for what is missing.
    #[command(after_help = LISTEN_EXAMPLES)]
    Listen(ListenArgs),
}

const DEMO_EXAMPLES: &str = "Examples:
  mend demo                          # capture, truth, repaired CSV, chart… in ./mend-demo
  mend demo --out /tmp/d --seed 7 --count 86400";

const GENERATE_EXAMPLES: &str = "Examples:
  mend generate --seed 1 --count 3600 -o sensor.mlog --truth truth.csv
  mend generate --seed 1 --count 3600 --skip-rate 0.1 --duplicate-rate 0.02 \\
      --corrupt-rate 0.005 -o damaged.mlog
  mend generate --seed 2 --count 600 --format jsonl -o old-prototype.jsonl
  mend generate --seed 1 --count 100 -o - | mend replay -";

const REPLAY_EXAMPLES: &str = "Examples:
  mend replay sensor.mlog -o repaired.csv --dlq dead.jsonl
  mend replay a.mlog b.mlog old-prototype.jsonl --chart chart.svg -o all.csv
  mend replay sensor.mlog --from 2026-01-01T06:00:00Z --until 2026-01-01T08:00:00+01:00
  mend replay sensor.mlog --window 1m --aggregates minutes.csv --fill locf
  mend replay live.mlog --checkpoint live.ckpt -o new-rows.csv   # only what is new
  mend replay - --input-format jsonl < events.log";

const INSPECT_EXAMPLES: &str = "Examples:
  mend inspect sensor.mlog
  mend inspect damaged.mlog --list 100
  mend inspect sensor.mlog --from 2026-01-01T06:00:00Z";

const LISTEN_EXAMPLES: &str = "Examples:
  mend listen --tcp 127.0.0.1:5555 -o node.mlog              # until Ctrl-C
  mend listen --serial /dev/ttyUSB0 --baud 115200 -o node.mlog --idle 30s
  mend listen --tcp 127.0.0.1:5555 -o node.mlog --duration 10m && mend replay node.mlog
  mend listen --tcp 127.0.0.1:5555 -o node.mlog --redis redis://127.0.0.1:6379   # and publish";

/// `mend demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the capture, truth, repaired CSV, chart, dead letters and aggregates go.
    #[arg(long, default_value = "mend-demo")]
    pub out: PathBuf,
    /// The simulation seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Readings the sensor takes (3600 = one hour at 1 Hz).
    #[arg(long, default_value_t = 3600)]
    pub count: u32,
}

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
    #[arg(long, default_value = "1s")]
    pub period: String,
    /// The time of the first reading: RFC 3339 with a zone (2026-01-01T00:00:00Z) or unix seconds.
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    pub start: String,
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

/// The options shared by `replay` and `inspect`.
#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    /// Capture files: mend frame logs or JSONL, detected automatically; `-` is stdin.
    #[arg(required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Replay from this time: RFC 3339 with a zone (2026-01-01T06:00:00Z, …+01:00) or unix seconds.
    #[arg(long)]
    pub from: Option<String>,
    /// Replay until this time, inclusive.
    #[arg(long)]
    pub until: Option<String>,
    /// The sampling period of JSONL input (frame logs carry theirs in the header).
    #[arg(long)]
    pub period: Option<String>,
    /// How long a stream waits for late or reordered readings.
    #[arg(long, default_value = "30s")]
    pub lateness: String,
    /// Gaps longer than this are outages: reported, never filled.
    #[arg(long, default_value = "60s")]
    pub max_gap: String,
    /// The valid band in °C, LO..HI, inclusive.
    #[arg(long, default_value = "50..55", allow_hyphen_values = true)]
    pub band: String,
    /// What the sensor can measure at all, in °C, LO..HI (the TMP105's range by default):
    /// a reading outside it is flagged implausible and is not used to fill gaps.
    #[arg(long, default_value = "-55..125", allow_hyphen_values = true)]
    pub physical: String,
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
    /// Write everything that could not be used here, as JSONL.
    #[arg(long)]
    pub dlq: Option<PathBuf>,
    /// Draw an SVG chart of the repaired series.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// The aggregate window (e.g. 1m); needs --aggregates.
    #[arg(long, requires = "aggregates")]
    pub window: Option<String>,
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

/// `mend listen`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("link").required(true).args(["tcp", "serial"])))]
pub struct ListenArgs {
    /// Connect to the node's UART served over TCP (e.g. QEMU's
    /// `-serial tcp:127.0.0.1:PORT,server=on,wait=off`), reconnecting when it drops.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
    /// Read the node's UART from a serial port.
    #[arg(long, value_name = "PATH")]
    pub serial: Option<PathBuf>,
    /// The serial port's baud rate.
    #[arg(long, default_value_t = 115_200, requires = "serial")]
    pub baud: u32,
    /// The capture to append to (created when missing, never truncated).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Stop after this long without a byte from the node (e.g. 30s).
    #[arg(long, value_parser = duration_arg)]
    pub idle: Option<u64>,
    /// Stop after this long (e.g. 10m).
    #[arg(long, value_parser = duration_arg)]
    pub duration: Option<u64>,
    /// Requests for a missing range before it is given up as unrecoverable.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// The wait after the first request for a missing range; it doubles after each request,
    /// up to 16 times this.
    #[arg(long, value_parser = duration_arg, default_value = "1s")]
    pub retry_after: u64,
    /// The longest time received frames wait for their fsync (and acknowledgement) while the
    /// node streams.
    #[arg(long, value_parser = duration_arg, default_value = "50ms")]
    pub sync_every: u64,
    /// Capture only: send no acknowledgements and no resend requests, for a node that does
    /// not read its link (missing readings are reported as still missing).
    #[arg(long)]
    pub no_downlink: bool,
    /// Also publish the frames into the fleet's raw streams in this Redis (e.g.
    /// redis://127.0.0.1:6379), once they are on disk, as `mend publish` would; while Redis
    /// is down, capturing goes on and publishing catches up from the capture later.
    #[arg(long, value_name = "URL", value_parser = redis_url_arg)]
    pub redis: Option<String>,
    /// No status line and no summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// A Redis URL argument, checked before any work starts.
fn redis_url_arg(text: &str) -> anyhow::Result<String> {
    redis::Client::open(text)
        .with_context(|| "not a usable Redis URL (e.g. redis://127.0.0.1:6379)")?;
    Ok(text.to_string())
}

/// A duration argument (`500ms`, `10s`, `2m`) in milliseconds.
fn duration_arg(text: &str) -> anyhow::Result<u64> {
    parse_duration_ms(text)
}

impl ListenArgs {
    /// Checks the arguments and builds the settings.
    pub fn plan(&self) -> anyhow::Result<ListenConfig> {
        let endpoint = match (&self.tcp, &self.serial) {
            (Some(addr), None) => {
                if addr
                    .rsplit_once(':')
                    .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                {
                    bail!("--tcp {addr:?}: expected HOST:PORT, e.g. 127.0.0.1:5555");
                }
                Endpoint::Tcp(addr.clone())
            }
            (None, Some(path)) => Endpoint::Serial {
                path: path.clone(),
                baud: self.baud,
            },
            _ => bail!("give exactly one of --tcp and --serial"),
        };
        if self.retry_after == 0 {
            bail!("--retry-after must be longer than 0");
        }
        Ok(ListenConfig {
            endpoint,
            capture: self.output.clone(),
            idle_ms: self.idle,
            duration_ms: self.duration,
            retry: RetryPolicy {
                tries: self.retries,
                first_ms: self.retry_after,
                max_ms: self.retry_after.saturating_mul(16),
            },
            sync_ms: self.sync_every,
            downlink: !self.no_downlink,
            redis: self.redis.clone(),
        })
    }
}

/// Parses `LO..HI` in °C for `--band`.
///
/// # Examples
/// ```
/// use mend_core::Celsius;
/// let (lo, hi) = mend::cli::parse_band("50..55.5").unwrap();
/// assert_eq!((lo, hi), (Celsius::from_num(50), Celsius::from_num(55.5)));
/// assert!(mend::cli::parse_band("55..50").is_err());
/// assert!(mend::cli::parse_band("50-55").is_err());
/// ```
pub fn parse_band(text: &str) -> anyhow::Result<(Celsius, Celsius)> {
    parse_range("band", text)
}

/// Parses `LO..HI` in °C for the option `--flag`; errors name the option.
///
/// # Examples
/// ```
/// let e = mend::cli::parse_range("physical", "125..-55").unwrap_err();
/// assert!(e.to_string().contains("--physical"));
/// ```
pub fn parse_range(flag: &str, text: &str) -> anyhow::Result<(Celsius, Celsius)> {
    let Some((a, b)) = text.split_once("..") else {
        bail!("--{flag} {text:?}: expected LO..HI in °C, e.g. 50..55");
    };
    let num = |s: &str| -> anyhow::Result<Celsius> {
        let v: f64 = s
            .trim()
            .parse()
            .with_context(|| format!("--{flag} {text:?}: {s:?} is not a number"))?;
        if !v.is_finite() {
            bail!("--{flag} {text:?}: {s:?} is not finite");
        }
        Celsius::checked_from_num(v)
            .with_context(|| format!("--{flag} {text:?}: {s} is out of range"))
    };
    let (lo, hi) = (num(a)?, num(b)?);
    if lo > hi {
        bail!("--{flag} {text:?} is reversed: the low end is above the high end");
    }
    Ok((lo, hi))
}

fn positive_ms(flag: &str, text: &str) -> anyhow::Result<u64> {
    let ms = parse_duration_ms(text).with_context(|| format!("--{flag}"))?;
    if ms == 0 {
        bail!("--{flag} {text:?} must be longer than zero");
    }
    Ok(ms)
}

fn period_ms(text: &str) -> anyhow::Result<u32> {
    let ms = positive_ms("period", text)?;
    u32::try_from(ms).with_context(|| format!("--period {text:?} is too long"))
}

/// Validated settings of `replay` and `inspect`.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    /// The inputs.
    pub sources: Vec<InputSource>,
    /// The replay settings.
    pub config: ReplayConfig,
    /// Take the shortcuts for --from and --until (seek, early stop) where the input allows.
    pub seek: bool,
}

impl ReadArgs {
    /// Checks the arguments and builds the settings.
    pub fn plan(&self, fill: FillMethod, seed: u64) -> anyhow::Result<ReadPlan> {
        let band = parse_band(&self.band)?;
        let physical = parse_range("physical", &self.physical)?;
        let validate = ValidateConfig {
            band,
            physical,
            ..ValidateConfig::DEFAULT
        };
        validate.check().map_err(|e| {
            anyhow::anyhow!(
                "--band {}: {e} (the sensor's physical range, --physical, is {}..{} °C)",
                self.band,
                physical.0,
                physical.1
            )
        })?;
        let from = self
            .from
            .as_deref()
            .map(|t| parse_time(t).context("--from"))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|t| parse_time(t).context("--until"))
            .transpose()?;
        if let (Some(f), Some(u)) = (from, until) {
            if f > u {
                bail!("--from is after --until: the window is empty");
            }
        }
        let jsonl_period_ms = match &self.period {
            Some(p) => period_ms(p)?,
            None => 1_000,
        };
        let lateness_ms = parse_duration_ms(&self.lateness).context("--lateness")?;
        let max_gap_ms = positive_ms("max-gap", &self.max_gap)?;
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
                    max_gap_ms,
                    lateness_ms,
                    validate,
                    seed,
                    from,
                    until,
                    window_ms: None,
                    hold_back: false,
                    emit_outages: false,
                    resume_ended: false,
                },
                jsonl_period_ms,
                input_format: self.input_format.format(),
            },
            seek: !self.no_seek,
        })
    }
}

impl ReplayArgs {
    /// Checks the arguments and builds the settings.
    pub fn plan(&self) -> anyhow::Result<ReadPlan> {
        let mut plan = self.read.plan(self.fill.method(), self.seed)?;
        plan.config.engine.hold_back = self.checkpoint.is_some() && !self.final_run;
        if let Some(w) = &self.window {
            plan.config.engine.window_ms = Some(positive_ms("window", w)?);
        }
        if self.emit_outages && self.format == OutFormat::Mlog {
            bail!("--emit-outages cannot be used with --format mlog: a frame log has no way to say that nothing was measured (use --format csv or jsonl)");
        }
        plan.config.engine.emit_outages = self.emit_outages;
        Ok(plan)
    }
}

impl GenerateArgs {
    /// Checks the arguments and builds the settings.
    pub fn plan(&self) -> anyhow::Result<GenerateConfig> {
        let period_ms = period_ms(&self.period)?;
        let epoch_ms = parse_time(&self.start).context("--start")?;
        let last_ms = u64::from(self.count.saturating_sub(1))
            .checked_mul(u64::from(period_ms))
            .and_then(|span| epoch_ms.checked_add(span))
            .filter(|&t| t <= MAX_TIME_MS);
        if last_ms.is_none() {
            bail!(
                "--start {}: {} readings every {} would end after {}, the last time mend can write; start earlier or take fewer readings",
                self.start,
                self.count,
                self.period,
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
            bail!("--period {}: JSONL timestamps are whole seconds, so the period must be a whole number of seconds", self.period);
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn replay(args: &[&str]) -> anyhow::Result<ReadPlan> {
        let mut all = vec!["mend", "replay", "in.mlog"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all)?.command {
            Command::Replay(r) => r.plan(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn settings_are_checked_before_any_work() {
        let p = replay(&[
            "--from",
            "10",
            "--until",
            "1970-01-01T00:00:20Z",
            "--band",
            "-5..55.5",
        ])
        .unwrap();
        let e = &p.config.engine;
        assert_eq!((e.from, e.until), (Some(10_000), Some(20_000)));
        assert_eq!(e.validate.band.0, Celsius::from_num(-5));
        assert_eq!((e.lateness_ms, e.max_gap_ms), (30_000, 60_000));
        assert!(!e.emit_outages);
        assert!(
            replay(&["--emit-outages"])
                .unwrap()
                .config
                .engine
                .emit_outages
        );
        for (args, needle) in [
            (&["--band", "60..50"][..], "reversed"),
            (&["--band", "50..500"][..], "physical range"),
            (&["--band", "a..b"][..], "not a number"),
            (&["--period", "0s"][..], "longer than zero"),
            (&["--window", "0s", "--aggregates", "a.csv"][..], "--window"),
            (&["--from", "20", "--until", "10"][..], "after --until"),
            (
                &["--emit-outages", "--format", "mlog"][..],
                "--emit-outages cannot be used with --format mlog",
            ),
        ] {
            let err = format!("{:#}", replay(args).unwrap_err());
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn generate_rates_are_fractions() {
        let parse = |rate: &str| {
            let cli = Cli::try_parse_from([
                "mend",
                "generate",
                "--seed",
                "1",
                "--count",
                "5",
                &format!("--skip-rate={rate}"),
                "-o",
                "x",
            ])
            .unwrap();
            match cli.command {
                Command::Generate(g) => g.plan(),
                _ => unreachable!(),
            }
        };
        assert_eq!(parse("0.25").unwrap().sim.skip_ppm, 250_000);
        assert!(parse("NaN").is_err());
        assert!(parse("-0.1").is_err());
    }
}
