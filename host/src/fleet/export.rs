//! `mend export`: an output stream back into the CSV/JSONL contract.
//!
//! Output entry IDs are the rows' `(time, seq)`, so `--from` and `--until` are ID ranges
//! and the export reads only the rows it writes.

use std::io::Write;

use anyhow::Context;

use super::rows::csv_to_json;
use super::{connect, field, Entry, Keys};
use crate::output::{RowFormat, CSV_HEADER};

/// Rows read per `XRANGE`.
const CHUNK: usize = 10_000;

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
/// Redis unreachable, an entry that is not a mend row, or a failed write.
pub fn run(cfg: &ExportConfig, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut con = connect(&cfg.redis)?;
    let k = Keys::new(cfg.sensor);
    if cfg.format == RowFormat::Csv {
        out.write_all(CSV_HEADER.as_bytes())?;
        out.write_all(b"\n")?;
    }
    let mut from = cfg.from.map_or("-".to_string(), |f| format!("{f}-0"));
    // `--until` is exclusive: the last ID before its millisecond.
    let until = match cfg.until {
        Some(0) => return Ok(0),
        Some(u) => format!("{}-{}", u - 1, u64::MAX),
        None => "+".to_string(),
    };
    let mut rows = 0u64;
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        let chunk: Vec<Entry> = redis::cmd("XRANGE")
            .arg(&k.out)
            .arg(&from)
            .arg(&until)
            .arg("COUNT")
            .arg(CHUNK)
            .query(&mut con)
            .with_context(|| format!("cannot read {}", k.out))?;
        buf.clear();
        for (id, fields) in &chunk {
            let csv = field(fields, "c")
                .with_context(|| format!("{}: entry {id} is not a mend row", k.out))?;
            match cfg.format {
                RowFormat::Csv => buf.extend_from_slice(csv),
                RowFormat::Jsonl => csv_to_json(csv, &mut buf)?,
            }
        }
        out.write_all(&buf).context("cannot write the export")?;
        rows += chunk.len() as u64;
        match chunk.last() {
            Some((last, _)) if chunk.len() == CHUNK => from = format!("({last}"),
            _ => break,
        }
    }
    out.flush().context("cannot write the export")?;
    Ok(rows)
}
