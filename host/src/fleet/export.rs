//! `mend export`: an output stream back into the CSV/JSONL contract.
//!
//! The stored rows are written with the functions `mend replay` writes its rows with (see
//! [`rows`](super::rows)); `--from` and `--until` keep or leave each row by its own time.

use std::io::Write;

use anyhow::Context;

use super::rows::decode;
use super::{connect, field, Entry, Keys};
use crate::sink::{RowFormat, CSV_HEADER};

/// Entries read per `XRANGE`.
const CHUNK: usize = 1_000;

/// What `mend export` does.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// The Redis URL.
    pub redis: String,
    /// The sensor.
    pub sensor: u32,
    /// The first time to export, unix ms (inclusive).
    pub from: Option<u64>,
    /// The time to stop at, unix ms (exclusive).
    pub until: Option<u64>,
    /// CSV or JSONL.
    pub format: RowFormat,
}

/// Writes the sensor's rows to `out`, and returns how many.
///
/// # Errors
/// Redis unreachable, a sensor not in the fleet, an entry that is not a mend row, or a
/// failed write.
pub fn run(cfg: &ExportConfig, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut con = connect(&cfg.redis)?;
    let k = Keys::new(cfg.sensor);
    let known = super::sensors(&mut con)?;
    if !known.contains(&cfg.sensor) {
        let some: Vec<String> = known.iter().take(10).map(u32::to_string).collect();
        let more = if known.len() > 10 { ", …" } else { "" };
        anyhow::bail!(
            "sensor {}: not in this fleet, no capture of it was published (sensors: {}{more})",
            cfg.sensor,
            if some.is_empty() {
                "none".to_string()
            } else {
                some.join(", ")
            }
        );
    }
    if cfg.format == RowFormat::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
        out.write_all(b"\n")?;
    }
    // Rows of several sessions interleave, and an entry's ID only bounds its first row's
    // time: every entry is read, and every row kept or left by its own time.
    let mut from = "-".to_string();
    let keep = |t: u64| cfg.from.is_none_or(|f| t >= f) && cfg.until.is_none_or(|u| t < u);
    let mut rows = 0u64;
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        let chunk: Vec<Entry> = redis::cmd("XRANGE")
            .arg(&k.out)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(CHUNK)
            .query(&mut con)
            .with_context(|| format!("cannot read {}", k.out))?;
        buf.clear();
        for (id, fields) in &chunk {
            let bad = || format!("{}: entry {id} is not a mend row entry", k.out);
            let stored = field(fields, "r").with_context(bad)?;
            for row in decode(stored).with_context(bad)? {
                if keep(row.timestamp()) {
                    rows += 1;
                    row.write(cfg.format, &mut buf);
                }
            }
        }
        out.write_all(&buf).context("cannot write the export")?;
        match chunk.last() {
            Some((last, _)) if chunk.len() == CHUNK => from = format!("({last}"),
            _ => break,
        }
    }
    out.flush().context("cannot write the export")?;
    Ok(rows)
}
