//! A worker's commit: the new rows, the new dead letters, the checkpoint and state, the
//! `XACK` and the trim of one sensor in one `MULTI`/`EXEC`, fenced by the lease and by the
//! state's version — all of it or none.

use std::sync::mpsc;

use anyhow::Context;

use super::trim::Trim;
use crate::checkpoint::Checkpoint;
use crate::engine::EngineState;
use crate::fleet::rows::RowSink;
use crate::fleet::{checkpoint_to_json, EntryId, Keys};

/// A dead-letter record as the replay writes it.
#[derive(Debug, serde::Deserialize)]
pub(super) struct DeadLetter {
    pub(super) offset: u64,
    pub(super) length: u64,
    pub(super) reason: String,
    pub(super) detail: String,
}

/// Everything one commit writes for a sensor: owned, so that it can be written on another
/// thread while the worker reads and replays the next sensor.
pub(super) struct Commit {
    pub(super) sensor: u32,
    pub(super) keys: Keys,
    pub(super) group: String,
    /// This worker's name: the lease must hold it.
    pub(super) me: String,
    pub(super) lease_ms: u64,
    /// The version of the state the run started from: another commit in between makes
    /// this one stale.
    pub(super) version: u64,
    /// The last output ID before this run's rows.
    pub(super) out_last: Option<EntryId>,
    /// Bytes trimmed from the raw stream's front before this run.
    pub(super) trimmed: u64,
    pub(super) rows: RowSink,
    pub(super) dead: Vec<DeadLetter>,
    /// Where each raw entry read starts in the bytes replayed, and its ID.
    pub(super) starts: Vec<(u64, String)>,
    pub(super) checkpoint: Checkpoint,
    /// The last raw entry the run covered.
    pub(super) covers: EntryId,
    /// The bytes the run replayed.
    pub(super) read_bytes: u64,
    /// The run settled the tail.
    pub(super) settle: bool,
    /// Positions of readings left undecided, counted from the bytes replayed.
    pub(super) undecided: Vec<u64>,
    /// The engine state at the end of the run, when it could be captured.
    pub(super) engine: Option<EngineState>,
    /// The raw entries to acknowledge, sorted.
    pub(super) to_ack: Vec<EntryId>,
    pub(super) trim: Option<Trim>,
}

impl Commit {
    /// Writes it all, or nothing: false when the lease or the state changed hands first.
    pub(super) fn write(&self, con: &mut redis::Connection) -> anyhow::Result<bool> {
        // Fenced twice: the lease must still be ours, and the state must be the one this run
        // started from. A worker paused past its lease may find the lease free again and
        // take it back, but another worker has committed meanwhile: its run is stale.
        // The WATCH and the reads in one round trip: Redis runs them in order.
        // The streams written are watched too, and must be streams: an XADD to a key of
        // another type fails only inside the EXEC, after the rest of the commit (the state,
        // the XACK, the trim) was applied.
        let (holder, version, out_type, dead_type): (Option<String>, Option<u64>, String, String) =
            redis::pipe()
                .cmd("WATCH")
                .arg(&self.keys.lease)
                .arg(&self.keys.state)
                .arg(&self.keys.out)
                .arg(&self.keys.dead)
                .ignore()
                .cmd("GET")
                .arg(&self.keys.lease)
                .cmd("HGET")
                .arg(&self.keys.state)
                .arg("version")
                .cmd("TYPE")
                .arg(&self.keys.out)
                .cmd("TYPE")
                .arg(&self.keys.dead)
                .query(con)
                .with_context(|| format!("cannot read {}", self.keys.lease))?;
        if let Err(e) = crate::fleet::streams_only(&[
            (&self.keys.out, &out_type),
            (&self.keys.dead, &dead_type),
        ]) {
            redis::cmd("UNWATCH").query::<()>(con)?;
            return Err(e.context(format!("cannot commit sensor {}", self.sensor)));
        }
        if holder.as_deref() != Some(self.me.as_str()) || version.unwrap_or(0) != self.version {
            redis::cmd("UNWATCH").query::<()>(con)?;
            return Ok(false);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut out_last = self.out_last;
        for (i, e) in self.rows.entries.iter().enumerate() {
            let id = EntryId::for_row(e.timestamp, e.seq, out_last);
            out_last = Some(id);
            pipe.cmd("XADD")
                .arg(&self.keys.out)
                .arg(id.to_string())
                .arg("r")
                .arg(self.rows.stored(i))
                .ignore();
        }
        for d in &self.dead {
            let at = self.starts.partition_point(|(s, _)| *s <= d.offset);
            let (entry_start, entry_id) = at
                .checked_sub(1)
                .and_then(|i| self.starts.get(i))
                .map_or((0, "0-0"), |(start, id)| (*start, id.as_str()));
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
            .arg(checkpoint_to_json(&self.checkpoint)?)
            .arg("covered")
            .arg(self.covers.to_string())
            .arg("bytes")
            .arg(self.trimmed + self.read_bytes)
            .arg("trimmed")
            .arg(self.trimmed + self.trim.as_ref().map_or(0, |t| t.bytes))
            .arg("settled")
            .arg(if self.settle { "1" } else { "0" })
            .arg("undecided")
            .arg(
                self.undecided
                    .iter()
                    .map(|p| (p + self.trimmed).to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg("version")
            .arg(self.version + 1);
        if let Some(e) = &self.engine {
            let json = serde_json::to_string(e).context("cannot encode the engine state")?;
            pipe.arg("engine").arg(json);
        }
        if let Some(o) = out_last {
            pipe.arg("out_last").arg(o.to_string());
        }
        pipe.ignore();
        if !self.to_ack.is_empty() {
            pipe.cmd("XACK").arg(&self.keys.raw).arg(&self.group);
            for id in &self.to_ack {
                pipe.arg(id.to_string());
            }
            pipe.ignore();
        }
        if let Some(t) = &self.trim {
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

/// What a commit gave, for the worker's report.
pub(super) struct Done {
    pub(super) sensor: u32,
    /// Written (true), or stale: the lease or the state changed hands first (false).
    pub(super) result: anyhow::Result<bool>,
    pub(super) rows: u64,
    pub(super) dead_letters: u64,
    pub(super) acked: u64,
    pub(super) trimmed: u64,
    /// The run's rows, written or not: their buffers serve the next run.
    pub(super) sink: RowSink,
}

/// Writes commits on a connection of its own, one at a time, while the worker reads and
/// replays the next sensor: Redis's work on one sensor overlaps the worker's on the next.
///
/// At most one commit is in flight; the worker waits for it before it submits another,
/// before it works the same sensor again, and at the end of every round.
pub(super) struct Committer {
    jobs: Option<mpsc::SyncSender<Commit>>,
    done: mpsc::Receiver<Done>,
    /// The sensor of the commit in flight.
    in_flight: Option<u32>,
}

impl Committer {
    /// A committer writing on `con`.
    pub(super) fn new(mut con: redis::Connection) -> Self {
        let (jobs, todo) = mpsc::sync_channel::<Commit>(0);
        let (finished, done) = mpsc::channel();
        std::thread::spawn(move || {
            for c in todo {
                let d = Done {
                    sensor: c.sensor,
                    result: c.write(&mut con),
                    rows: c.rows.rows(),
                    dead_letters: c.dead.len() as u64,
                    acked: c.to_ack.len() as u64,
                    trimmed: c.trim.as_ref().map_or(0, |t| t.entries),
                    sink: c.rows,
                };
                if finished.send(d).is_err() {
                    break;
                }
            }
        });
        Self {
            jobs: Some(jobs),
            done,
            in_flight: None,
        }
    }

    /// Hands `c` over, after the commit in flight (returned) is done.
    ///
    /// # Errors
    /// The commit thread is gone.
    pub(super) fn submit(&mut self, c: Commit) -> anyhow::Result<Option<Done>> {
        let before = self.wait()?;
        let sensor = c.sensor;
        self.jobs
            .as_ref()
            .context("the commit thread is gone")?
            .send(c)
            .ok()
            .context("the commit thread is gone")?;
        self.in_flight = Some(sensor);
        Ok(before)
    }

    /// The sensor of the commit in flight, if any.
    pub(super) fn in_flight(&self) -> Option<u32> {
        self.in_flight
    }

    /// Waits for the commit in flight, if any.
    ///
    /// # Errors
    /// The commit thread is gone.
    pub(super) fn wait(&mut self) -> anyhow::Result<Option<Done>> {
        if self.in_flight.take().is_none() {
            return Ok(None);
        }
        self.done
            .recv()
            .map(Some)
            .ok()
            .context("the commit thread is gone")
    }
}
