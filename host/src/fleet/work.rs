//! `mend work`: a repair worker of a consumer group.
//!
//! A sensor's readings must be repaired in order (reorder, dedup, gaps), so a sensor is
//! worked by one worker at a time, under a lease that expires: a worker that dies loses its
//! sensors after `--lease`, and another takes them over. It claims the dead worker's pending
//! entries (`XAUTOCLAIM`), and restores the engine from the checkpoint in the sensor's state
//! hash and the engine state stored with it (see below): only the entries after that state
//! are read, and only the rows after the checkpoint's marks are new.
//!
//! Every run commits in one `MULTI`/`EXEC`, watched on the lease: the new rows (with IDs
//! derived from their `(time, seq)`), the new dead letters, the checkpoint, and the `XACK`
//! of the entries it covered. A worker killed before `EXEC` leaves nothing of its run; one
//! killed after it leaves all of it; a worker that lost its lease meanwhile writes nothing.
//!
//! A stream has no end of file. A run that is not final holds back each session's
//! unsettled tail (as `mend replay --checkpoint` without `--final`); the tail is settled
//! once the stream has been idle for `--settle`, or as soon as `mend publish --end` marked
//! the capture complete.
//!
//! Retention is bounded: every commit also stores the engine state at the end of the entries
//! it read (each live stream's reorder buffer, duplicate window, validator and filler
//! histories and clock; see [`EngineState`]), and trims the raw stream up to them
//! (`XTRIM MINID`, exact). The next run, or another worker taking over, restores that state
//! and reads only the entries after it, so a long session costs neither Redis memory nor
//! worker time in proportion to its length. Where the state cannot be carried exactly (a
//! reading held by the clock check or set aside for its place waits at the very end; see
//! [`Uncaptured`]) the run keeps the state stored before and the entries after it, and a
//! later run moves on. With no state stored at all, a settled run trims the sessions that
//! have ended (a newer session of the sensor started), as their rows are all written. The
//! state counts the bytes trimmed, so that positions in the checkpoint still count from the
//! stream's first entry.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::rows::{RowSink, ROWS_PER_ENTRY};
use super::{
    checkpoint_from_json, checkpoint_to_json, connect, field, is_transient, last_entry, server_ms,
    Entry, EntryId, Keys, WORKERS_KEY,
};
use crate::checkpoint::Checkpoint;
use crate::engine::{EngineState, Uncaptured};
use crate::input::seek::InputPlan;
use crate::input::InputSource;
use crate::replay::{first_pass, run_planned, Carry, Outputs, ReplayConfig};

/// What a worker does.
#[derive(Clone, Debug)]
pub struct WorkConfig {
    /// The Redis URL.
    pub redis: String,
    /// The consumer group.
    pub group: String,
    /// This worker's name in the group (unique per worker).
    pub consumer: String,
    /// Idle time after which a stream's tail is settled, ms.
    pub settle_ms: u64,
    /// How long a lease lasts without renewal, ms.
    pub lease_ms: u64,
    /// Entries read per `XREADGROUP`.
    pub count: usize,
    /// The pause between rounds that found nothing to do, ms.
    pub poll_ms: u64,
    /// How long to keep reconnecting to an unreachable Redis before giving up, ms.
    pub retry_for_ms: u64,
    /// Stop once every sensor is settled and nothing is pending (for batch jobs and tests).
    pub exit_when_idle: bool,
    /// The repair settings, as for `mend replay`.
    pub replay: ReplayConfig,
}

/// What a worker did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkReport {
    /// Sensors it committed work for.
    pub sensors: BTreeSet<u32>,
    /// Runs committed.
    pub runs: u64,
    /// Rows written.
    pub rows: u64,
    /// Dead letters written.
    pub dead_letters: u64,
    /// Raw entries acknowledged.
    pub acked: u64,
    /// Runs thrown away because the lease was lost before the commit.
    pub lost_leases: u64,
    /// Raw entries trimmed: repaired, and needed by no later run.
    pub trimmed: u64,
    /// Runs whose engine state could not be stored (their entries stay for the next run).
    pub uncaptured: u64,
    /// Times it reconnected to Redis.
    pub reconnects: u64,
}

/// The state hash of a sensor.
#[derive(Debug, Default)]
struct State {
    checkpoint: Checkpoint,
    /// The last raw entry a commit covered.
    covered: Option<EntryId>,
    /// Bytes of the raw stream a commit covered (dead letters before are written), counted
    /// from the stream's first entry ever, trimmed ones included.
    bytes: u64,
    /// Bytes of the raw stream trimmed from its front: positions in the checkpoint and
    /// `bytes` count them, the entries read now start after them.
    trimmed: u64,
    /// Positions (counted as `bytes`) of readings the clock check held undecided at the end
    /// of the last commit's run: their dead letters come from a later run.
    undecided: Vec<u64>,
    /// The last commit settled the tail.
    settled: bool,
    /// The engine state at the end of the last entry trimmed (see [`EngineState`]): a run
    /// continues from it and reads only the entries still in the stream.
    engine: Option<EngineState>,
    /// The last output ID.
    out_last: Option<EntryId>,
    /// Commits so far: a commit is refused when another came in between.
    version: u64,
}

impl State {
    fn load(con: &mut redis::Connection, k: &Keys) -> anyhow::Result<Self> {
        let h: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(&k.state)
            .query(con)
            .with_context(|| format!("cannot read {}", k.state))?;
        Self::from_hash(&h, k)
    }

    fn from_hash(h: &BTreeMap<String, String>, k: &Keys) -> anyhow::Result<Self> {
        let id = |name: &str| h.get(name).map(|v| v.parse::<EntryId>()).transpose();
        Ok(Self {
            checkpoint: match h.get("checkpoint") {
                Some(t) => checkpoint_from_json(t)
                    .with_context(|| format!("{}: bad checkpoint", k.state))?,
                None => Checkpoint::default(),
            },
            covered: id("covered")?,
            bytes: h.get("bytes").and_then(|b| b.parse().ok()).unwrap_or(0),
            trimmed: h.get("trimmed").and_then(|b| b.parse().ok()).unwrap_or(0),
            settled: h.get("settled").is_some_and(|s| s == "1"),
            undecided: h
                .get("undecided")
                .map(|u| {
                    u.split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::parse)
                        .collect::<Result<Vec<u64>, _>>()
                })
                .transpose()
                .with_context(|| format!("{}: bad undecided positions", k.state))?
                .unwrap_or_default(),
            engine: h
                .get("engine")
                .map(|e| serde_json::from_str(e))
                .transpose()
                .with_context(|| format!("{}: bad engine state", k.state))?,
            out_last: id("out_last")?,
            version: h.get("version").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }
}

/// A page of `XAUTOCLAIM … JUSTID`: the next cursor, the claimed IDs, the deleted IDs.
type Claimed = (String, Vec<String>, Vec<String>);

/// The replies of a worker's reads of one sensor: claimed entries, new entries
/// (`XREADGROUP`), the state hash, the last entry, the end mark, the server's clock.
type SensorRead = (
    Claimed,
    Option<Vec<(String, Vec<Entry>)>>,
    BTreeMap<String, String>,
    Vec<Entry>,
    Option<String>,
    (u64, u64),
);

/// What working one sensor gave.
enum Outcome {
    /// A run was committed.
    Committed,
    /// Nothing to do; `true` when the sensor is settled and nothing is pending.
    Idle(bool),
    /// The lease went to another worker before the commit.
    LostLease,
}

/// A repair worker.
pub struct Worker {
    cfg: WorkConfig,
    groups: BTreeSet<u32>,
    held: BTreeSet<u32>,
    report: WorkReport,
}

impl Worker {
    /// A worker with this configuration.
    pub fn new(cfg: WorkConfig) -> Self {
        Self {
            cfg,
            groups: BTreeSet::new(),
            held: BTreeSet::new(),
            report: WorkReport::default(),
        }
    }

    /// Works until every sensor is settled (with `exit_when_idle`) or forever, reconnecting
    /// to Redis when it goes away for up to `retry_for_ms`.
    ///
    /// # Errors
    /// Redis unreachable for longer than `retry_for_ms`, or a real error.
    pub fn run(mut self) -> anyhow::Result<WorkReport> {
        let mut con: Option<redis::Connection> = None;
        let mut down_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = match con.as_mut() {
                Some(c) => self.round(c),
                None => match connect(&self.cfg.redis) {
                    Ok(c) => {
                        if down_since.take().is_some() {
                            self.report.reconnects += 1;
                            eprintln!("mend work: reconnected to {}", self.cfg.redis);
                        }
                        backoff = Duration::from_millis(50);
                        con = Some(c);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok((worked, settled)) => {
                    if worked == 0 {
                        // With no sensor yet, wait for the first one.
                        if settled && self.cfg.exit_when_idle {
                            return Ok(self.report);
                        }
                        std::thread::sleep(Duration::from_millis(self.cfg.poll_ms));
                    }
                }
                Err(e) if is_transient(&e) => {
                    let since = *down_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_millis(self.cfg.retry_for_ms) {
                        return Err(e.context(format!(
                            "Redis at {} unreachable for {} ms; giving up",
                            self.cfg.redis,
                            since.elapsed().as_millis()
                        )));
                    }
                    if con.is_some() {
                        eprintln!("mend work: {e:#}; reconnecting");
                    }
                    con = None;
                    // Leases may lapse while Redis is away: claim them again.
                    self.held.clear();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One pass over the sensors: `(runs committed, every sensor settled)`.
    fn round(&mut self, con: &mut redis::Connection) -> anyhow::Result<(u64, bool)> {
        let now = server_ms(con)?;
        redis::cmd("HSET")
            .arg(WORKERS_KEY)
            .arg(&self.cfg.consumer)
            .arg(now)
            .query::<()>(con)
            .context("cannot record the heartbeat")?;
        let beats: BTreeMap<String, u64> = redis::cmd("HGETALL")
            .arg(WORKERS_KEY)
            .query(con)
            .context("cannot read the workers")?;
        let live = beats
            .values()
            .filter(|t| now.saturating_sub(**t) <= self.cfg.lease_ms.max(1_000))
            .count()
            .max(1);
        let sensors = super::sensors(con)?;
        let share = sensors.len().div_ceil(live);
        // Start at a place of our own so that workers do not all reach for the same sensor.
        let start = self.cfg.consumer.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        }) % sensors.len().max(1);
        let mut worked = 0;
        let mut settled = !sensors.is_empty();
        let mut others = Vec::new();
        for i in 0..sensors.len() {
            let Some(&sensor) = sensors.get((start + i) % sensors.len()) else {
                continue;
            };
            let k = Keys::new(sensor);
            let have = if self.held.contains(&sensor) || self.held.len() < share {
                self.lease(con, &k)?
            } else {
                false
            };
            if !have {
                self.held.remove(&sensor);
                others.push(k);
                continue;
            }
            self.held.insert(sensor);
            match self.work_sensor(con, sensor, &k)? {
                Outcome::Committed => {
                    worked += 1;
                    settled = false;
                }
                Outcome::Idle(s) => settled &= s,
                Outcome::LostLease => {
                    self.report.lost_leases += 1;
                    self.held.remove(&sensor);
                    settled = false;
                }
            }
            if self.held.len() > share {
                release(con, &k, &self.cfg.consumer)?;
                self.held.remove(&sensor);
            }
        }
        // Whether the other workers' sensors are settled matters only to a worker about to
        // exit: asking every round would cost a few round trips per sensor.
        if worked == 0 && settled && self.cfg.exit_when_idle {
            for k in &others {
                if !is_settled(con, k, &self.cfg.group)? {
                    settled = false;
                    break;
                }
            }
        }
        Ok((worked, settled))
    }

    /// Takes or renews the lease of a sensor: true when this worker holds it.
    fn lease(&self, con: &mut redis::Connection, k: &Keys) -> anyhow::Result<bool> {
        let me = &self.cfg.consumer;
        let set: Option<String> = redis::cmd("SET")
            .arg(&k.lease)
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(self.cfg.lease_ms)
            .query(con)
            .with_context(|| format!("cannot take {}", k.lease))?;
        if set.is_some() {
            return Ok(true);
        }
        let holder: Option<String> = redis::cmd("GET")
            .arg(&k.lease)
            .query(con)
            .with_context(|| format!("cannot read {}", k.lease))?;
        if holder.as_deref() == Some(me.as_str()) {
            redis::cmd("PEXPIRE")
                .arg(&k.lease)
                .arg(self.cfg.lease_ms)
                .query::<()>(con)
                .with_context(|| format!("cannot renew {}", k.lease))?;
            return Ok(true);
        }
        Ok(false)
    }

    fn ensure_group(
        &mut self,
        con: &mut redis::Connection,
        sensor: u32,
        k: &Keys,
    ) -> anyhow::Result<()> {
        if self.groups.contains(&sensor) {
            return Ok(());
        }
        let made: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&k.raw)
            .arg(&self.cfg.group)
            .arg("0")
            .arg("MKSTREAM")
            .query(con);
        match made {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create the group on {}", k.raw))
            }
        }
        self.groups.insert(sensor);
        Ok(())
    }

    /// Claims, reads, replays and commits one sensor.
    fn work_sensor(
        &mut self,
        con: &mut redis::Connection,
        sensor: u32,
        k: &Keys,
    ) -> anyhow::Result<Outcome> {
        self.ensure_group(con, sensor, k)?;
        let group = self.cfg.group.clone();
        let me = self.cfg.consumer.clone();
        // One round trip: entries delivered to a worker that never acknowledged them (ours
        // now), new entries, the state, the stream's last entry, the end mark and the clock.
        let (claimed, read, hash, last, end, (secs, micros)): SensorRead = redis::pipe()
            .cmd("XAUTOCLAIM")
            .arg(&k.raw)
            .arg(&group)
            .arg(&me)
            .arg(0)
            .arg("0-0")
            .arg("COUNT")
            .arg(1_000)
            .arg("JUSTID")
            .cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&group)
            .arg(&me)
            .arg("COUNT")
            .arg(self.cfg.count)
            .arg("STREAMS")
            .arg(&k.raw)
            .arg(">")
            .cmd("HGETALL")
            .arg(&k.state)
            .cmd("XREVRANGE")
            .arg(&k.raw)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("GET")
            .arg(&k.end)
            .cmd("TIME")
            .query(con)
            .with_context(|| format!("cannot read {}", k.raw))?;
        let mut to_ack: Vec<EntryId> = Vec::new();
        let (mut cursor, ids, _) = claimed;
        for id in &ids {
            to_ack.push(id.parse()?);
        }
        while cursor != "0-0" {
            let (next, ids, _deleted): Claimed = redis::cmd("XAUTOCLAIM")
                .arg(&k.raw)
                .arg(&group)
                .arg(&me)
                .arg(0)
                .arg(&cursor)
                .arg("COUNT")
                .arg(1_000)
                .arg("JUSTID")
                .query(con)
                .with_context(|| format!("cannot claim the pending entries of {}", k.raw))?;
            for id in &ids {
                to_ack.push(id.parse()?);
            }
            cursor = next;
        }
        let fresh: Vec<Entry> = read
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .collect();
        for (id, _) in &fresh {
            to_ack.push(id.parse()?);
        }
        // Claimed before the read, so no entry is in both; kept sorted for the XACK.
        to_ack.sort_unstable();
        to_ack.dedup();
        let state = State::from_hash(&hash, k)?;
        // A stream trimmed up to its last entry is empty: its last entry is the last covered.
        let Some(last) = last
            .first()
            .map(|(id, _)| id.parse::<EntryId>())
            .transpose()?
            .max(state.covered)
        else {
            return Ok(Outcome::Idle(true));
        };
        let covers = to_ack.iter().copied().max().max(state.covered);
        let Some(covers) = covers else {
            return Ok(Outcome::Idle(false));
        };
        let end: Option<EntryId> = end.map(|e| e.parse()).transpose()?;
        let now = secs * 1_000 + micros / 1_000;
        let complete = end.is_some_and(|e| e >= last);
        let idle = now.saturating_sub(last.ms) >= self.cfg.settle_ms;
        let settle = covers == last && (complete || idle);
        if to_ack.is_empty() && (!settle || state.settled) {
            let pending = pending_count(con, k, &group)?;
            return Ok(Outcome::Idle(
                state.settled && covers == last && pending == 0,
            ));
        }
        // The sensor's stream up to `covers`: what was read before, then what is new.
        let mut entries: Vec<Entry> = Vec::new();
        let old_until = match fresh.first() {
            Some((first, _)) => format!("({first}"),
            None => covers.to_string(),
        };
        let mut from = "-".to_string();
        loop {
            let chunk: Vec<Entry> = redis::cmd("XRANGE")
                .arg(&k.raw)
                .arg(&from)
                .arg(&old_until)
                .arg("COUNT")
                .arg(10_000)
                .query(con)
                .with_context(|| format!("cannot read {}", k.raw))?;
            let Some((tail, _)) = chunk.last() else {
                break;
            };
            from = format!("({tail}");
            let n = chunk.len();
            entries.extend(chunk);
            if n < 10_000 {
                break;
            }
        }
        entries.extend(fresh);
        let mut bytes = Vec::new();
        let mut starts: Vec<(u64, &str)> = Vec::with_capacity(entries.len());
        for (id, fields) in &entries {
            starts.push((bytes.len() as u64, id.as_str()));
            bytes.extend_from_slice(field(fields, "f").unwrap_or_default());
        }
        let (rows, dead, checkpoint, captured, undecided) =
            self.replay(bytes.clone(), &state, settle)?;
        // Dead letters of bytes an earlier commit covered were written by it.
        let dead: Vec<DeadLetter> = dead
            .into_iter()
            .filter(|d| {
                let at = d.offset + state.trimmed;
                at >= state.bytes || state.undecided.contains(&at)
            })
            .collect();
        // With the engine state at the end of what it read, the next run needs none of
        // these entries. Without it, the next run continues from the state stored before
        // (and needs every entry after it), or, with none stored, replays the stream from
        // its start, which needs only the sessions that have not ended (and all of them
        // after a run that held back a tail).
        let (trim, engine) = match captured {
            Ok(engine) => (
                entries.last().is_some().then_some(Trim {
                    min_id: covers.next(),
                    entries: entries.len() as u64,
                    bytes: bytes.len() as u64,
                }),
                Some(engine),
            ),
            Err(why) => {
                self.report.uncaptured += 1;
                eprintln!(
                    "mend work: sensor {sensor}: raw entries kept for the next run, since {why}"
                );
                let trim = if settle && state.engine.is_none() {
                    trim_point(&entries, &checkpoint, covers)?
                } else {
                    None
                };
                (trim, None)
            }
        };

        // The commit: rows, dead letters, state and acknowledgement, or nothing.
        if !self.lease(con, k)? {
            return Ok(Outcome::LostLease);
        }
        // Fenced twice: the lease must still be ours, and the state must be the one this run
        // started from. A worker paused past its lease may find the lease free again and
        // take it back, but another worker has committed meanwhile: its run is stale.
        redis::cmd("WATCH")
            .arg(&k.lease)
            .arg(&k.state)
            .query::<()>(con)
            .context("cannot watch the lease")?;
        let (holder, version): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("GET")
            .arg(&k.lease)
            .cmd("HGET")
            .arg(&k.state)
            .arg("version")
            .query(con)
            .with_context(|| format!("cannot read {}", k.lease))?;
        if holder.as_deref() != Some(me.as_str()) || version.unwrap_or(0) != state.version {
            redis::cmd("UNWATCH").query::<()>(con)?;
            return Ok(Outcome::LostLease);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut out_last = state.out_last;
        for (i, chunk) in rows.rows.chunks(ROWS_PER_ENTRY).enumerate() {
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
                .arg(&k.out)
                .arg(id.to_string())
                .arg("c")
                .arg(rows.text(from..from + chunk.len()))
                .arg("t")
                .arg(times)
                .ignore();
        }
        for d in &dead {
            let at = starts.partition_point(|(s, _)| *s <= d.offset);
            let (entry_start, entry_id) = at
                .checked_sub(1)
                .and_then(|i| starts.get(i))
                .copied()
                .unwrap_or((0, "0-0"));
            pipe.cmd("XADD")
                .arg(&k.dead)
                .arg("*")
                .arg("input")
                .arg(format!("{}/{entry_id}", k.raw))
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
            .arg(&k.state)
            .arg("checkpoint")
            .arg(checkpoint_to_json(&checkpoint)?)
            .arg("covered")
            .arg(covers.to_string())
            .arg("bytes")
            .arg(state.trimmed + bytes.len() as u64)
            .arg("trimmed")
            .arg(state.trimmed + trim.as_ref().map_or(0, |t| t.bytes))
            .arg("settled")
            .arg(if settle { "1" } else { "0" })
            .arg("undecided")
            .arg(
                undecided
                    .iter()
                    .map(|p| (p + state.trimmed).to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg("version")
            .arg(state.version + 1);
        if let Some(e) = &engine {
            let json = serde_json::to_string(e).context("cannot encode the engine state")?;
            pipe.arg("engine").arg(json);
        }
        if let Some(o) = out_last {
            pipe.arg("out_last").arg(o.to_string());
        }
        pipe.ignore();
        if !to_ack.is_empty() {
            pipe.cmd("XACK").arg(&k.raw).arg(&group);
            for id in &to_ack {
                pipe.arg(id.to_string());
            }
            pipe.ignore();
        }
        if let Some(t) = &trim {
            // Exact, not `~`: the stream starts where the state says it does.
            pipe.cmd("XTRIM")
                .arg(&k.raw)
                .arg("MINID")
                .arg(t.min_id.to_string())
                .ignore();
        }
        pipe.cmd("PEXPIRE")
            .arg(&k.lease)
            .arg(self.cfg.lease_ms)
            .ignore();
        let done: Option<()> = pipe
            .query(con)
            .with_context(|| format!("cannot commit sensor {sensor}"))?;
        if done.is_none() {
            return Ok(Outcome::LostLease);
        }
        self.report.sensors.insert(sensor);
        self.report.runs += 1;
        self.report.rows += rows.rows.len() as u64;
        self.report.dead_letters += dead.len() as u64;
        self.report.acked += to_ack.len() as u64;
        self.report.trimmed += trim.map_or(0, |t| t.entries);
        Ok(Outcome::Committed)
    }

    /// Replays a sensor's stream from its checkpoint: the new rows, the dead letters, and
    /// the new checkpoint.
    fn replay(&self, bytes: Vec<u8>, state: &State, settle: bool) -> anyhow::Result<RunResult> {
        let sources = [InputSource::Bytes(bytes.into())];
        let plans = [InputPlan::default()];
        let mut cfg = self.cfg.replay.clone();
        cfg.engine.hold_back = !settle;
        // The stream may start after sessions that were trimmed once they had ended.
        cfg.engine.resume_ended = true;
        // Positions count from the stream's first entry ever; the bytes start after the
        // trimmed ones.
        let mut checkpoint = state.checkpoint.clone();
        for seen in &mut checkpoint.seen {
            *seen = seen.saturating_sub(state.trimmed);
        }
        let mut pass = first_pass(&sources)?;
        loop {
            let mut sink = RowSink::default();
            let mut dead: Vec<u8> = Vec::new();
            let mut carry = Carry {
                restore: state.engine.clone(),
                ..Carry::default()
            };
            let result = run_planned(
                &sources,
                &plans,
                &cfg,
                checkpoint.clone(),
                pass,
                Outputs {
                    records: &mut sink,
                    dead_letters: Some(Box::new(&mut dead)),
                    aggregates: None,
                    progress: None,
                    keep_dead_letters: 0,
                    carry: Some(&mut carry),
                },
            )?;
            match result.spill {
                Some(set) => pass = crate::engine::Pass::Second(set),
                None => {
                    let dead = dead
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_slice(l).context("cannot read a dead letter"))
                        .collect::<anyhow::Result<Vec<DeadLetter>>>()?;
                    let mut checkpoint = result.checkpoint;
                    for seen in &mut checkpoint.seen {
                        *seen += state.trimmed;
                    }
                    let captured = carry.captured.context("the replay left no engine state")?;
                    return Ok((sink, dead, checkpoint, captured, carry.undecided));
                }
            }
        }
    }
}

/// What a run over a sensor's stream gives: the new rows, the dead letters, the checkpoint,
/// the engine state for the next run (or why there is none), and the positions of readings
/// left undecided.
type RunResult = (
    RowSink,
    Vec<DeadLetter>,
    Checkpoint,
    Result<EngineState, Uncaptured>,
    Vec<u64>,
);

/// Where a commit trims a raw stream.
struct Trim {
    /// `XTRIM MINID`: the first entry kept.
    min_id: EntryId,
    /// Entries dropped.
    entries: u64,
    /// Their bytes.
    bytes: u64,
}

/// How far a sensor's raw stream can be trimmed after a settled run over `entries`
/// (everything up to `covers`) that wrote `checkpoint`: the entries before the first one of
/// a session that has not ended. An ended session (a newer one of its sensor started) has
/// all its records written, and a reading of it that comes again does not end the live
/// session (see [`EngineConfig::resume_ended`](crate::engine::EngineConfig)), so a run
/// without its entries writes what a run with them writes. A live session's entries stay:
/// its validation history, gap neighbours and clock check are rebuilt from them by every run.
fn trim_point(
    entries: &[Entry],
    checkpoint: &Checkpoint,
    covers: EntryId,
) -> anyhow::Result<Option<Trim>> {
    let mut bytes = 0u64;
    let mut dropped = 0u64;
    for (id, fields) in entries {
        let id: EntryId = id.parse()?;
        let f = field(fields, "f").unwrap_or_default();
        let mut dec: mend_core::Decoder = mend_core::Decoder::new();
        let session = dec.feed(f).next().and_then(|ev| match ev {
            mend_core::DecodeEvent::Frame {
                frame: mend_core::Frame::Header(h),
                ..
            } => Some((h.sensor, h.session)),
            _ => None,
        });
        let ended = session
            .and_then(|s| checkpoint.streams.get(&s))
            .is_some_and(|m| m.ended);
        if !ended || id > covers {
            return Ok((dropped > 0).then_some(Trim {
                min_id: id,
                entries: dropped,
                bytes,
            }));
        }
        dropped += 1;
        bytes += f.len() as u64;
    }
    Ok((dropped > 0).then_some(Trim {
        min_id: covers.next(),
        entries: dropped,
        bytes,
    }))
}

/// A dead-letter record as the replay writes it.
#[derive(Debug, serde::Deserialize)]
struct DeadLetter {
    offset: u64,
    length: u64,
    reason: String,
    detail: String,
}

/// Entries delivered to the group and not acknowledged.
fn pending_count(con: &mut redis::Connection, k: &Keys, group: &str) -> anyhow::Result<u64> {
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg(&k.raw)
        .arg(group)
        .query(con)
        .with_context(|| format!("cannot read the pending entries of {}", k.raw))?;
    Ok(match summary {
        redis::Value::Array(v) => match v.first() {
            Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        },
        _ => 0,
    })
}

/// True when the sensor's last commit settled its whole stream and nothing is pending.
fn is_settled(con: &mut redis::Connection, k: &Keys, group: &str) -> anyhow::Result<bool> {
    let state = State::load(con, k)?;
    let last = last_entry(con, &k.raw)?.max(state.covered);
    if last.is_none() {
        return Ok(true);
    }
    if !(state.settled && state.covered == last) {
        return Ok(false);
    }
    let groups: redis::RedisResult<redis::Value> =
        redis::cmd("XINFO").arg("GROUPS").arg(&k.raw).query(con);
    if groups.is_err() {
        return Ok(false);
    }
    Ok(pending_count(con, k, group)? == 0)
}

/// Gives a lease back, if this worker still holds it.
fn release(con: &mut redis::Connection, k: &Keys, me: &str) -> anyhow::Result<()> {
    let holder: Option<String> = redis::cmd("GET").arg(&k.lease).query(con)?;
    if holder.as_deref() == Some(me) {
        redis::cmd("DEL").arg(&k.lease).query::<()>(con)?;
    }
    Ok(())
}
