//! A worker's commit: the new rows, the new dead letters, the checkpoint and state, the
//! `XACK` and the trim of one sensor in one `MULTI`/`EXEC`, fenced by the lease and by the
//! state's version — all of it or none.

use anyhow::Context;

use super::state::State;
use super::trim::Trim;
use crate::checkpoint::Checkpoint;
use crate::engine::EngineState;
use crate::fleet::rows::{RowSink, ROWS_PER_ENTRY};
use crate::fleet::{checkpoint_to_json, EntryId, Keys};

/// A dead-letter record as the replay writes it.
#[derive(Debug, serde::Deserialize)]
pub(super) struct DeadLetter {
    pub(super) offset: u64,
    pub(super) length: u64,
    pub(super) reason: String,
    pub(super) detail: String,
}

/// Everything one commit writes for a sensor.
pub(super) struct Commit<'a> {
    pub(super) sensor: u32,
    pub(super) keys: &'a Keys,
    pub(super) group: &'a str,
    /// This worker's name: the lease must hold it.
    pub(super) me: &'a str,
    pub(super) lease_ms: u64,
    /// The state the run started from.
    pub(super) state: &'a State,
    pub(super) rows: &'a RowSink,
    pub(super) dead: &'a [DeadLetter],
    /// Where each raw entry read starts in the bytes replayed, and its ID.
    pub(super) starts: &'a [(u64, &'a str)],
    pub(super) checkpoint: &'a Checkpoint,
    /// The last raw entry the run covered.
    pub(super) covers: EntryId,
    /// The bytes the run replayed.
    pub(super) read_bytes: u64,
    /// The run settled the tail.
    pub(super) settle: bool,
    /// Positions of readings left undecided, counted from the bytes replayed.
    pub(super) undecided: &'a [u64],
    /// The engine state at the end of the run, when it could be captured.
    pub(super) engine: Option<&'a EngineState>,
    /// The raw entries to acknowledge, sorted.
    pub(super) to_ack: &'a [EntryId],
    pub(super) trim: Option<&'a Trim>,
}

impl Commit<'_> {
    /// Writes it all, or nothing: false when the lease or the state changed hands first.
    pub(super) fn write(&self, con: &mut redis::Connection) -> anyhow::Result<bool> {
        // Fenced twice: the lease must still be ours, and the state must be the one this run
        // started from. A worker paused past its lease may find the lease free again and
        // take it back, but another worker has committed meanwhile: its run is stale.
        redis::cmd("WATCH")
            .arg(&self.keys.lease)
            .arg(&self.keys.state)
            .query::<()>(con)
            .context("cannot watch the lease")?;
        let (holder, version): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("GET")
            .arg(&self.keys.lease)
            .cmd("HGET")
            .arg(&self.keys.state)
            .arg("version")
            .query(con)
            .with_context(|| format!("cannot read {}", self.keys.lease))?;
        if holder.as_deref() != Some(self.me) || version.unwrap_or(0) != self.state.version {
            redis::cmd("UNWATCH").query::<()>(con)?;
            return Ok(false);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut out_last = self.state.out_last;
        for (i, chunk) in self.rows.rows.chunks(ROWS_PER_ENTRY).enumerate() {
            let Some(first) = chunk.first() else {
                continue;
            };
            let id = EntryId::for_row(first.timestamp, first.seq, out_last);
            out_last = Some(id);
            let from = i * ROWS_PER_ENTRY;
            let mut times = Vec::with_capacity(chunk.len() * 8);
            for row in chunk {
                times.extend_from_slice(&row.timestamp.to_le_bytes());
            }
            pipe.cmd("XADD")
                .arg(&self.keys.out)
                .arg(id.to_string())
                .arg("c")
                .arg(self.rows.text(from..from + chunk.len()))
                .arg("t")
                .arg(times)
                .ignore();
        }
        for d in self.dead {
            let at = self.starts.partition_point(|(s, _)| *s <= d.offset);
            let (entry_start, entry_id) = at
                .checked_sub(1)
                .and_then(|i| self.starts.get(i))
                .copied()
                .unwrap_or((0, "0-0"));
            pipe.cmd("XADD")
                .arg(&self.keys.dead)
                .arg("*")
                .arg("input")
                .arg(format!("{}/{entry_id}", self.keys.raw))
                .arg("offset")
                .arg(d.offset - entry_start)
                .arg("length")
                .arg(d.length)
                .arg("reason")
                .arg(&d.reason)
                .arg("detail")
                .arg(&d.detail)
                .ignore();
        }
        pipe.cmd("HSET")
            .arg(&self.keys.state)
            .arg("checkpoint")
            .arg(checkpoint_to_json(self.checkpoint)?)
            .arg("covered")
            .arg(self.covers.to_string())
            .arg("bytes")
            .arg(self.state.trimmed + self.read_bytes)
            .arg("trimmed")
            .arg(self.state.trimmed + self.trim.map_or(0, |t| t.bytes))
            .arg("settled")
            .arg(if self.settle { "1" } else { "0" })
            .arg("undecided")
            .arg(
                self.undecided
                    .iter()
                    .map(|p| (p + self.state.trimmed).to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg("version")
            .arg(self.state.version + 1);
        if let Some(e) = self.engine {
            let json = serde_json::to_string(e).context("cannot encode the engine state")?;
            pipe.arg("engine").arg(json);
        }
        if let Some(o) = out_last {
            pipe.arg("out_last").arg(o.to_string());
        }
        pipe.ignore();
        if !self.to_ack.is_empty() {
            pipe.cmd("XACK").arg(&self.keys.raw).arg(self.group);
            for id in self.to_ack {
                pipe.arg(id.to_string());
            }
            pipe.ignore();
        }
        if let Some(t) = self.trim {
            // Exact, not `~`: the stream starts where the state says it does.
            pipe.cmd("XTRIM")
                .arg(&self.keys.raw)
                .arg("MINID")
                .arg(t.min_id.to_string())
                .ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&self.keys.lease)
            .arg(self.lease_ms)
            .ignore();
        let done: Option<()> = pipe
            .query(con)
            .with_context(|| format!("cannot commit sensor {}", self.sensor))?;
        Ok(done.is_some())
    }
}
