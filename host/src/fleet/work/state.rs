//! A sensor's state hash as a worker reads it, and the questions a worker asks of a sensor's
//! keys: entries pending, settled, lease given back.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::checkpoint::Checkpoint;
use crate::engine::EngineState;
use crate::fleet::{checkpoint_from_json, last_entry, EntryId, Keys};

/// The state hash of a sensor.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) checkpoint: Checkpoint,
    /// The last raw entry a commit covered.
    pub(super) covered: Option<EntryId>,
    /// Bytes of the raw stream a commit covered (dead letters before are written), counted
    /// from the stream's first entry ever, trimmed ones included.
    pub(super) bytes: u64,
    /// Bytes of the raw stream trimmed from its front: positions in the checkpoint and
    /// `bytes` count them, the entries read now start after them.
    pub(super) trimmed: u64,
    /// Positions (counted as `bytes`) of readings the clock check held undecided at the end
    /// of the last commit's run: their dead letters come from a later run.
    pub(super) undecided: Vec<u64>,
    /// The last commit settled the tail.
    pub(super) settled: bool,
    /// The engine state at the end of the last entry trimmed (see [`EngineState`]): a run
    /// continues from it and reads only the entries still in the stream.
    pub(super) engine: Option<EngineState>,
    /// The last output ID.
    pub(super) out_last: Option<EntryId>,
    /// Commits so far: a commit is refused when another came in between.
    pub(super) version: u64,
}

impl State {
    pub(super) fn load(con: &mut redis::Connection, k: &Keys) -> anyhow::Result<Self> {
        let h: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(&k.state)
            .query(con)
            .with_context(|| format!("cannot read {}", k.state))?;
        Self::from_hash(&h, k)
    }

    pub(super) fn from_hash(h: &BTreeMap<String, String>, k: &Keys) -> anyhow::Result<Self> {
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

/// Entries delivered to the group and not acknowledged.
pub(super) fn pending_count(
    con: &mut redis::Connection,
    k: &Keys,
    group: &str,
) -> anyhow::Result<u64> {
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
pub(super) fn is_settled(
    con: &mut redis::Connection,
    k: &Keys,
    group: &str,
) -> anyhow::Result<bool> {
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
pub(super) fn release(con: &mut redis::Connection, k: &Keys, me: &str) -> anyhow::Result<()> {
    let holder: Option<String> = redis::cmd("GET").arg(&k.lease).query(con)?;
    if holder.as_deref() == Some(me) {
        redis::cmd("DEL").arg(&k.lease).query::<()>(con)?;
    }
    Ok(())
}
