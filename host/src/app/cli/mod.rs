//! The command line: clap arguments, parsed into typed values, and the settings they build.
//!
//! Every argument is checked before any input is opened or any output created, so a typo in
//! `--band` never costs a ten-minute replay, and every complaint names the flag and the value.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod fleet;
mod generate;
mod listen;
mod parse;
mod replay;

pub use fleet::{ExportArgs, ExportFormat, PublishArgs, StatusArgs, WorkArgs};
pub use generate::GenerateArgs;
pub use listen::ListenArgs;
use parse::ArgError;
pub use replay::{InspectArgs, ReplayArgs};

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

/// Parses the command line. Usage errors clap finds are printed by clap, which exits (with
/// 2; `--help` and `--version` with 0); an unusable option value is returned, to be printed
/// as mend's own errors are.
pub fn parse() -> anyhow::Result<Cli> {
    Cli::try_parse().map_err(|e| own_error(e).unwrap_or_else(|e| e.exit()))
}

/// An option value a value parser of mend refused, as mend's own error; any other clap
/// error as it is.
fn own_error(e: clap::Error) -> Result<anyhow::Error, clap::Error> {
    use std::error::Error;
    match e.source().and_then(|s| s.downcast_ref::<ArgError>()) {
        Some(a) => Ok(anyhow::anyhow!("{a}")),
        None => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mend::replay::plan::ReadPlan;
    use mend_core::Celsius;

    /// Parses as `mend` does: refused values are mend's errors, anything else clap's.
    fn cli(args: Vec<&str>) -> anyhow::Result<Cli> {
        Cli::try_parse_from(args).map_err(|e| own_error(e).unwrap_or_else(anyhow::Error::from))
    }

    fn replay(args: &[&str]) -> anyhow::Result<ReadPlan> {
        let mut all = vec!["mend", "replay", "in.mlog"];
        all.extend_from_slice(args);
        match cli(all)?.command {
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
            // mend's own message, not clap's usage format.
            assert!(err.starts_with("--"), "{args:?}: {err}");
        }
    }

    #[test]
    fn generate_rates_are_fractions() {
        let parse = |rate: &str| {
            let rate = format!("--skip-rate={rate}");
            let cli = cli(vec![
                "mend", "generate", "--seed", "1", "--count", "5", &rate, "-o", "x",
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
