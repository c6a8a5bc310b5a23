//! `mend status`: the fleet at a glance.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;

use super::{connect, server_ms, Keys, PUBLISH_DEAD_KEY, WORKERS_KEY};

/// One sensor's line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SensorStatus {
    /// The sensor.
    pub sensor: u32,
    /// Raw entries in its stream.
    pub raw: u64,
    /// Entries not yet delivered to the group (`lag`) plus those delivered and not
    /// acknowledged: entries not yet repaired.
    pub lag: u64,
    /// Entries delivered and not acknowledged.
    pub pending: u64,
    /// Rows in its output stream.
    pub rows: u64,
    /// Dead letters of its repair.
    pub dead_letters: u64,
    /// The worker holding its lease, and the ms left on it.
    pub lease: Option<(String, i64)>,
    /// Its tail is settled.
    pub settled: bool,
}

/// The fleet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetStatus {
    /// Per sensor, in order.
    pub sensors: Vec<SensorStatus>,
    /// Workers and the ms since their last round.
    pub workers: BTreeMap<String, u64>,
    /// Dead letters of `mend publish` (unusable bytes).
    pub publish_dead_letters: u64,
}

fn xlen(con: &mut redis::Connection, key: &str) -> anyhow::Result<u64> {
    redis::cmd("XLEN")
        .arg(key)
        .query(con)
        .with_context(|| format!("cannot read {key}"))
}

/// Reads the status of every sensor in the consumer group `group`.
///
/// # Errors
/// Redis unreachable.
pub fn read(url: &str, group: &str) -> anyhow::Result<FleetStatus> {
    let mut con = connect(url)?;
    let now = server_ms(&mut con)?;
    let beats: BTreeMap<String, u64> = redis::cmd("HGETALL")
        .arg(WORKERS_KEY)
        .query(&mut con)
        .context("cannot read the workers")?;
    let mut st = FleetStatus {
        workers: beats
            .into_iter()
            .map(|(w, t)| (w, now.saturating_sub(t)))
            .collect(),
        publish_dead_letters: xlen(&mut con, PUBLISH_DEAD_KEY)?,
        ..FleetStatus::default()
    };
    for sensor in super::sensors(&mut con)? {
        let k = Keys::new(sensor);
        let mut s = SensorStatus {
            sensor,
            raw: xlen(&mut con, &k.raw)?,
            rows: xlen(&mut con, &k.out)?,
            dead_letters: xlen(&mut con, &k.dead)?,
            ..SensorStatus::default()
        };
        let groups: redis::RedisResult<Vec<BTreeMap<String, redis::Value>>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&k.raw)
            .query(&mut con);
        s.lag = s.raw;
        if let Ok(groups) = groups {
            if let Some(g) = groups.iter().find(|g| {
                matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes())
            }) {
                let int = |name: &str| match g.get(name) {
                    Some(redis::Value::Int(n)) => u64::try_from(*n).ok(),
                    _ => None,
                };
                s.pending = int("pending").unwrap_or(0);
                s.lag = int("lag").unwrap_or(s.raw) + s.pending;
            }
        }
        let holder: Option<String> = redis::cmd("GET").arg(&k.lease).query(&mut con)?;
        if let Some(h) = holder {
            let ttl: i64 = redis::cmd("PTTL").arg(&k.lease).query(&mut con)?;
            s.lease = Some((h, ttl));
        }
        let settled: Option<String> = redis::cmd("HGET")
            .arg(&k.state)
            .arg("settled")
            .query(&mut con)?;
        s.settled = settled.as_deref() == Some("1") && s.lag == 0;
        st.sensors.push(s);
    }
    Ok(st)
}

impl FleetStatus {
    /// The status as text for people.
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let lag: u64 = self.sensors.iter().map(|s| s.lag).sum();
        let pending: u64 = self.sensors.iter().map(|s| s.pending).sum();
        let dead: u64 = self.sensors.iter().map(|s| s.dead_letters).sum();
        let settled = self.sensors.iter().filter(|s| s.settled).count();
        let _ = writeln!(
            t,
            "sensors: {} ({settled} settled); entries not yet repaired: {lag} ({pending} pending); dead letters: {dead} (+{} from publish)",
            self.sensors.len(),
            self.publish_dead_letters
        );
        let _ = writeln!(t, "workers: {}", self.workers.len());
        for (w, age) in &self.workers {
            let leases = self
                .sensors
                .iter()
                .filter(|s| s.lease.as_ref().is_some_and(|(h, _)| h == w))
                .count();
            let _ = writeln!(t, "  {w}: last seen {age} ms ago, {leases} leases");
        }
        let _ = writeln!(t, "sensor  raw  lag  pending  rows  dead  lease");
        for s in &self.sensors {
            let lease = match &s.lease {
                Some((h, ttl)) => format!("{h} ({ttl} ms left)"),
                None => "-".to_string(),
            };
            let _ = writeln!(
                t,
                "{}  {}  {}  {}  {}  {}  {lease}{}",
                s.sensor,
                s.raw,
                s.lag,
                s.pending,
                s.rows,
                s.dead_letters,
                if s.settled { "  settled" } else { "" }
            );
        }
        t
    }
}
