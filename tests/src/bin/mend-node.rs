//! `mend-node`: boots the sensor firmware in QEMU as a node on a TCP link, for `mend listen`.
//!
//! ```text
//! cargo run -p mend-tests --release --bin mend-node -- --link tcp:127.0.0.1:5555 \
//!     --flash node.flash --temperatures temps.csv [--period-ms 100] [--wait]
//! ```
//!
//! It boots the store-and-forward node (firmware feature `store`). QEMU listens on the link
//! (`-serial tcp:HOST:PORT,server=on,wait=off`; with `--wait` it waits for the gateway before
//! the node starts). The TMP105 follows the schedule: before each sample the node pauses
//! (lock-step), the runner sets the row's temperature over QMP, and the node goes on. The node
//! takes one sample per seq up to the schedule's last row, keeps every frame in its flash log
//! until the gateway acknowledges it, answers `Resend`, and exits once the gateway holds the
//! whole log. QEMU runs in a scratch directory where `mend-node.flash` links to `--flash`: the
//! node's flash is that file, so it outlives the run, and killing `mend-node` is a power cut
//! (the next run on the same file is the next power-up, with a new session).

use std::path::PathBuf;
use std::process::ExitCode;

use mend_tests::fixtures::{PERIOD_MS, SENSOR, STATS_EVERY};
use mend_tests::{build_firmware, run, FirmwareBuild, RunOptions, Schedule};

const USAGE: &str = "usage: mend-node --link tcp:HOST:PORT --flash FILE --temperatures FILE.csv \
                     [--period-ms N] [--wait]";

struct Args {
    link: String,
    flash: PathBuf,
    temperatures: PathBuf,
    period_ms: u32,
    wait: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut link, mut flash, mut temperatures) = (None, None, None);
    let mut period_ms = PERIOD_MS;
    let mut wait = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--link" => {
                let v = value()?;
                let addr = v
                    .strip_prefix("tcp:")
                    .ok_or(format!("--link {v:?}: expected tcp:HOST:PORT"))?;
                link = Some(addr.to_owned());
            }
            "--flash" => flash = Some(PathBuf::from(value()?)),
            "--temperatures" => temperatures = Some(PathBuf::from(value()?)),
            "--period-ms" => {
                let v = value()?;
                period_ms = v.parse().ok().filter(|&p| p > 0).ok_or(format!(
                    "--period-ms {v:?}: expected a number of ms above 0"
                ))?;
            }
            "--wait" => wait = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        link: link.ok_or("--link is required")?,
        flash: flash.ok_or("--flash is required")?,
        temperatures: temperatures.ok_or("--temperatures is required")?,
        period_ms,
        wait,
    })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("mend-node: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let schedule = match std::fs::read_to_string(&args.temperatures)
        .map_err(|e| e.to_string())
        .and_then(|t| Schedule::parse(&t).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mend-node: {}: {e}", args.temperatures.display());
            return ExitCode::from(2);
        }
    };
    let build = FirmwareBuild {
        name: "node",
        features: &["store"],
        target: "thumbv7m-none-eabi",
        env: vec![
            ("MEND_SAMPLES", schedule.samples().to_string()),
            ("MEND_PERIOD_MS", args.period_ms.to_string()),
            ("MEND_STATS_EVERY", STATS_EVERY.to_string()),
            ("MEND_SENSOR", SENSOR.to_string()),
        ],
    };
    let elf = build_firmware(&build);
    let chardev = format!(
        "tcp:{},server=on,wait={}",
        args.link,
        if args.wait { "on" } else { "off" }
    );
    let profile = |seq| schedule.at(seq);
    // A QMP round trip per sample, and the gateway's acknowledgements after the last: allow
    // the schedule's own time twice, a second per 100 samples, plus a minute.
    let timeout = 60
        + schedule.samples() / 100
        + (u64::from(schedule.samples()) * u64::from(args.period_ms) / 500) as u32;
    let node = run(
        &elf,
        RunOptions {
            profile: Some(&profile),
            uart: Some(&chardev),
            flash: Some(&args.flash),
            timeout_secs: Some(timeout),
            ..RunOptions::default()
        },
    );
    print!("{}", node.console);
    eprint!("{}", node.qemu_stderr);
    if node.status.success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("mend-node: the node ended with {}", node.status);
        ExitCode::from(1)
    }
}
