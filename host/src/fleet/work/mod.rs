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
//! Retention is bounded: every commit also stores the engine state at the end of the entries it
//! read (each live stream's reorder buffer, duplicate window, validator and filler histories
//! and clock; see [`EngineState`](crate::engine::EngineState)), and trims the raw stream up to
//! them (`XTRIM MINID`, exact). The next run, or another worker taking over, restores that
//! state and reads only the entries after it, so a long session costs neither Redis memory nor
//! worker time in proportion to its length. Where the state cannot be carried exactly (a
//! reading held by the clock check or set aside for its place waits at the very end; see
//! [`Uncaptured`](crate::engine::Uncaptured)) the run keeps the state stored before and the
//! entries after it, and a later run moves on. With no state stored at all, a settled run trims
//! the sessions that have ended (a newer session of the sensor started), as their rows are all
//! written. The state counts the bytes trimmed, so that positions in the checkpoint still count
//! from the stream's first entry.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;

mod commit;
mod read;
mod run;
mod state;
mod trim;

use super::{connect, field, is_transient, server_ms, Entry, EntryId, Keys, WORKERS_KEY};
use crate::fleet::rows::RowSink;
use crate::replay::ReplayConfig;
use commit::{Commit, Committer, DeadLetter, Done};
use read::{read_range, SensorRead};
use run::{Job, Replayer};
use state::{is_settled, pending_count, release, State};
use trim::{trim_point, Trim};

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
    /// Sensors whose keys it could not use (of another type, or holding what no worker
    /// wrote), with the last error: left alone, while the other sensors are worked.
    pub unusable: BTreeMap<u32, String>,
}

/// Takes the lease `KEYS[1]` for `ARGV[1]` for `ARGV[2]` ms if it is free, or renews it if
/// `ARGV[1]` holds it: 1, or 0 when another worker holds it.
const LEASE_SCRIPT: &str = "\
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

/// What reading one sensor gave.
enum Step {
    /// Nothing to do; `true` when the sensor is settled and nothing is pending.
    Idle(bool),
    /// A run to replay: what it needs, and the frame bytes to replay.
    Run(Box<Prepared>, Vec<u8>),
}

/// A sensor read for a run: everything the run and its commit need but the bytes.
struct Prepared {
    sensor: u32,
    keys: Keys,
    /// The state hash the run starts from.
    state: State,
    /// The raw entries the run covers.
    entries: Vec<Entry>,
    /// Where each entry starts in the bytes, and its ID.
    starts: Vec<(u64, String)>,
    read_bytes: u64,
    /// Entries to acknowledge, sorted.
    to_ack: Vec<EntryId>,
    /// The last entry the run covers.
    covers: EntryId,
    /// The run settles the tail.
    settle: bool,
}

/// A sensor being replayed by the [`Replayer`].
struct Running {
    sensor: u32,
}

/// A repair worker.
pub struct Worker {
    cfg: WorkConfig,
    groups: BTreeSet<u32>,
    held: BTreeSet<u32>,
    report: WorkReport,
    /// Row sinks of committed runs, for the next runs: a run allocates no row buffers.
    spare: Vec<RowSink>,
    /// The thread that replays runs while this one reads the next sensor.
    replayer: Replayer,
    /// Each sensor's last raw entry as this worker last found it, and the server's time
    /// when it first did: a stream whose entry IDs run ahead of the server's clock (it was
    /// set back, or an ID was given by hand) is idle once its last entry has not changed for
    /// the settle time.
    last_seen: BTreeMap<u32, (EntryId, u64)>,
}

impl Worker {
    /// A worker with this configuration.
    pub fn new(cfg: WorkConfig) -> Self {
        Self {
            cfg,
            groups: BTreeSet::new(),
            held: BTreeSet::new(),
            report: WorkReport::default(),
            spare: Vec::new(),
            replayer: Replayer::new(),
            last_seen: BTreeMap::new(),
        }
    }

    /// Works until every sensor is settled (with `exit_when_idle`) or forever, reconnecting
    /// to Redis when it goes away for up to `retry_for_ms`.
    ///
    /// # Errors
    /// Redis unreachable for longer than `retry_for_ms`, or a real error.
    pub fn run(mut self) -> anyhow::Result<WorkReport> {
        // The worker's connection, and the committer's (a connection of its own).
        let mut con: Option<(redis::Connection, Committer)> = None;
        let mut down_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = match con.as_mut() {
                Some((c, commits)) => self.round(c, commits),
                None => match connect(&self.cfg.redis)
                    .and_then(|c| Ok((c, Committer::new(connect(&self.cfg.redis)?))))
                {
                    Ok(c) => {
                        if down_since.take().is_some() {
                            self.report.reconnects += 1;
                            eprintln!(
                                "mend work: reconnected to {}",
                                super::shown_url(&self.cfg.redis)
                            );
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
                            if let Some((c, _)) = con.as_mut() {
                                self.leave(c);
                            }
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
                            super::shown_url(&self.cfg.redis),
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

    /// Gives back the leases this worker holds and takes it off the list of workers, as it
    /// exits with nothing left to do: the next worker need not wait for them to lapse, nor
    /// count it among the live. At best: what fails here lapses on its own.
    fn leave(&mut self, con: &mut redis::Connection) {
        for sensor in std::mem::take(&mut self.held) {
            let _ = release(con, &Keys::new(sensor), &self.cfg.consumer);
        }
        let _ = redis::cmd("HDEL")
            .arg(WORKERS_KEY)
            .arg(&self.cfg.consumer)
            .query::<()>(con);
    }

    /// One pass over the sensors: `(runs committed, every sensor settled)`.
    fn round(
        &mut self,
        con: &mut redis::Connection,
        commits: &mut Committer,
    ) -> anyhow::Result<(u64, bool)> {
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
        let mut running: Option<Running> = None;
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
            // Its last run must be in before its state is read again.
            if running.as_ref().is_some_and(|r| r.sensor == sensor) {
                self.finish(&mut running, con, commits)?;
            }
            if commits.in_flight() == Some(sensor) {
                self.book(commits.wait()?)?;
            }
            // Three stages overlap: this sensor is read while the one before is replayed,
            // and the one before that committed.
            let step = match self.prepare(con, sensor, &k) {
                Ok(step) => {
                    self.report.unusable.remove(&sensor);
                    step
                }
                Err(e) if is_transient(&e) => return Err(e),
                Err(e) => {
                    // One sensor's keys that cannot be used stop that sensor, not the
                    // worker: the others are worked, and it is tried again next round.
                    let why = format!("{e:#}");
                    if self.report.unusable.get(&sensor) != Some(&why) {
                        eprintln!("mend work: sensor {sensor} left alone: {why}");
                    }
                    self.report.unusable.insert(sensor, why);
                    release(con, &k, &self.cfg.consumer)?;
                    self.held.remove(&sensor);
                    continue;
                }
            };
            match step {
                Step::Idle(s) => settled &= s,
                Step::Run(prep, bytes) => {
                    worked += 1;
                    settled = false;
                    self.finish(&mut running, con, commits)?;
                    running = Some(self.spawn_replay(prep, bytes)?);
                }
            }
            if self.held.len() > share {
                if running.as_ref().is_some_and(|r| r.sensor == sensor) {
                    self.finish(&mut running, con, commits)?;
                }
                if commits.in_flight() == Some(sensor) {
                    self.book(commits.wait()?)?;
                }
                release(con, &k, &self.cfg.consumer)?;
                self.held.remove(&sensor);
            }
        }
        self.finish(&mut running, con, commits)?;
        self.book(commits.wait()?)?;
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
    ///
    /// One round trip, and atomic: a worker takes a sensor's lease twice per run (before it
    /// reads the sensor and before it commits), and a lease held already took three.
    fn lease(&self, con: &mut redis::Connection, k: &Keys) -> anyhow::Result<bool> {
        let held: i64 = redis::cmd("EVAL")
            .arg(LEASE_SCRIPT)
            .arg(1)
            .arg(&k.lease)
            .arg(&self.cfg.consumer)
            .arg(self.cfg.lease_ms)
            .query(con)
            .with_context(|| format!("cannot take {}", k.lease))?;
        Ok(held == 1)
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

    /// Claims and reads one sensor: what its next run replays, or nothing to do (`true` when
    /// it is settled and nothing is pending).
    fn prepare(
        &mut self,
        con: &mut redis::Connection,
        sensor: u32,
        k: &Keys,
    ) -> anyhow::Result<Step> {
        self.ensure_group(con, sensor, k)?;
        let group = &self.cfg.group;
        let SensorRead {
            to_ack,
            fresh,
            hash,
            first,
            last,
            end,
            now,
        } = SensorRead::fetch(con, k, group, &self.cfg.consumer, self.cfg.count)?;
        let state = State::from_hash(&hash, k)?;
        // A stream trimmed up to its last entry is empty: its last entry is the last covered.
        let Some(last) = last.max(state.covered) else {
            return Ok(Step::Idle(true));
        };
        let covers = to_ack.iter().copied().max().max(state.covered);
        let Some(covers) = covers else {
            return Ok(Step::Idle(false));
        };
        let complete = end.is_some_and(|e| e >= last);
        let since = match self.last_seen.get(&sensor) {
            Some((seen, at)) if *seen == last => *at,
            _ => now,
        };
        self.last_seen.insert(sensor, (last, since));
        let idle = now.saturating_sub(last.ms.min(since)) >= self.cfg.settle_ms;
        let settle = covers == last && (complete || idle);
        if to_ack.is_empty() && (!settle || state.settled) {
            let pending = pending_count(con, k, group)?;
            return Ok(Step::Idle(state.settled && covers == last && pending == 0));
        }
        // The sensor's stream up to `covers`: what was read before, then what is new. A
        // stream that starts with the new entries (all before them trimmed) has nothing
        // before them, and the round trip that would read it is saved.
        let fresh_first = fresh
            .first()
            .map(|(id, _)| id.parse::<EntryId>())
            .transpose()?;
        let mut entries = match fresh_first {
            Some(f) if first == Some(f) => Vec::new(),
            Some(f) => read_range(con, k, &format!("({f}"))?,
            None => read_range(con, k, &covers.to_string())?,
        };
        entries.extend(fresh);
        let total: usize = entries
            .iter()
            .map(|(_, fields)| field(fields, "f").map_or(0, <[u8]>::len))
            .sum();
        let mut bytes = Vec::with_capacity(total);
        let mut starts: Vec<(u64, String)> = Vec::with_capacity(entries.len());
        for (id, fields) in &entries {
            starts.push((bytes.len() as u64, id.clone()));
            bytes.extend_from_slice(field(fields, "f").unwrap_or_default());
        }
        Ok(Step::Run(
            Box::new(Prepared {
                sensor,
                keys: k.clone(),
                state,
                entries,
                starts,
                read_bytes: bytes.len() as u64,
                to_ack,
                covers,
                settle,
            }),
            bytes,
        ))
    }

    /// Replays a prepared sensor on the replay thread, while this one reads the next.
    fn spawn_replay(&mut self, prep: Box<Prepared>, bytes: Vec<u8>) -> anyhow::Result<Running> {
        let sensor = prep.sensor;
        self.replayer.start(Job {
            cfg: self.cfg.replay.clone(),
            prep,
            bytes,
            sink: self.spare.pop().unwrap_or_default(),
        })?;
        Ok(Running { sensor })
    }

    /// Waits for the replay in `running`, if any, and hands its commit to the committer.
    fn finish(
        &mut self,
        running: &mut Option<Running>,
        con: &mut redis::Connection,
        commits: &mut Committer,
    ) -> anyhow::Result<()> {
        let Some(r) = running.take() else {
            return Ok(());
        };
        let (prep, result) = self
            .replayer
            .wait()
            .with_context(|| format!("sensor {}: the replay thread failed", r.sensor))?;
        let Prepared {
            sensor,
            keys: k,
            state,
            entries,
            starts,
            read_bytes,
            to_ack,
            covers,
            settle,
        } = *prep;
        let (rows, dead, checkpoint, captured, undecided) = result?;
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
                    bytes: read_bytes,
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
        if !self.lease(con, &k)? {
            self.report.lost_leases += 1;
            self.held.remove(&sensor);
            return Ok(());
        }
        let done = commits.submit(Commit {
            sensor,
            keys: k,
            group: self.cfg.group.clone(),
            me: self.cfg.consumer.clone(),
            lease_ms: self.cfg.lease_ms,
            version: state.version,
            out_last: state.out_last,
            trimmed: state.trimmed,
            rows,
            dead,
            starts,
            checkpoint,
            covers,
            read_bytes,
            settle,
            undecided,
            engine,
            to_ack,
            trim,
        })?;
        self.book(done)
    }

    /// Books what a commit gave in the report.
    ///
    /// # Errors
    /// The commit failed.
    fn book(&mut self, done: Option<Done>) -> anyhow::Result<()> {
        let Some(d) = done else {
            return Ok(());
        };
        // A run being read, one replayed and one committed: three sinks go round.
        if self.spare.len() < 3 {
            self.spare.push(d.sink);
        }
        if d.result? {
            self.report.sensors.insert(d.sensor);
            self.report.runs += 1;
            self.report.rows += d.rows;
            self.report.dead_letters += d.dead_letters;
            self.report.acked += d.acked;
            self.report.trimmed += d.trimmed;
        } else {
            self.report.lost_leases += 1;
            self.held.remove(&d.sensor);
        }
        Ok(())
    }
}
