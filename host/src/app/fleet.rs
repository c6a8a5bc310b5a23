//! The fleet subcommands, wired to files and the terminal.

use std::process::ExitCode;

use super::cli::{ExportArgs, ExportFormat, PublishArgs, StatusArgs, WorkArgs};
use super::exit::{EXIT_OK, EXIT_REJECTED};
use mend::fleet::export::ExportConfig;
use mend::fleet::publish::PublishConfig;
use mend::fleet::work::{WorkConfig, Worker};
use mend::replay::outputs::MainOut;
use mend::sink::RowFormat;

/// `mend publish`.
pub fn publish(a: &PublishArgs) -> anyhow::Result<ExitCode> {
    let r = mend::fleet::publish::run(&PublishConfig {
        redis: a.redis.clone(),
        inputs: a.inputs.clone(),
        end: a.end,
    })?;
    let frames: u64 = r.frames.values().sum();
    eprintln!(
        "published {frames} frames of {} sensors in {} entries; {} bytes unusable (in mend:dead){}",
        r.frames.len(),
        r.entries,
        r.skipped_bytes,
        if a.end { "; marked complete" } else { "" }
    );
    Ok(ExitCode::from(EXIT_OK))
}

/// `mend work`.
pub fn work(a: &WorkArgs) -> anyhow::Result<ExitCode> {
    let cfg = WorkConfig {
        redis: a.redis.clone(),
        group: a.group.clone(),
        consumer: a.consumer.clone(),
        settle_ms: a.settle,
        lease_ms: a.lease.max(1),
        count: a.count.max(1),
        poll_ms: a.poll,
        retry_for_ms: a.retry_for,
        exit_when_idle: a.exit_when_idle,
        replay: a.replay_config()?,
    };
    let r = Worker::new(cfg).run()?;
    eprintln!(
        "worker {}: {} sensors, {} runs, {} rows, {} dead letters, {} entries acknowledged, {} reconnects, {} leases lost, {} entries trimmed, {} runs kept their entries",
        a.consumer,
        r.sensors.len(),
        r.runs,
        r.rows,
        r.dead_letters,
        r.acked,
        r.reconnects,
        r.lost_leases,
        r.trimmed,
        r.uncaptured
    );
    for (sensor, why) in &r.unusable {
        eprintln!("worker {}: sensor {sensor} not worked: {why}", a.consumer);
    }
    Ok(ExitCode::from(if r.unusable.is_empty() {
        EXIT_OK
    } else {
        EXIT_REJECTED
    }))
}

/// `mend export`.
pub fn export(a: &ExportArgs) -> anyhow::Result<ExitCode> {
    if let (Some(f), Some(u)) = (a.from, a.until) {
        if f > u {
            anyhow::bail!("--from is after --until: the window is empty");
        }
    }
    let cfg = ExportConfig {
        redis: a.redis.clone(),
        sensor: a.sensor,
        from: a.from,
        // --until is inclusive, the export's bound exclusive.
        until: a.until.map(|u| u.saturating_add(1)),
        format: match a.format {
            ExportFormat::Csv => RowFormat::Csv,
            ExportFormat::Jsonl => RowFormat::Jsonl,
        },
    };
    let mut out = MainOut::open(a.output.as_deref())?;
    mend::fleet::export::run(&cfg, &mut out)?;
    out.finish()?;
    Ok(ExitCode::from(EXIT_OK))
}

/// `mend status`.
pub fn status(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let st = mend::fleet::status::read(&a.redis, &a.group)?;
    print!("{}", st.to_text());
    Ok(ExitCode::from(EXIT_OK))
}
