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
    /// Entries in its output stream, each a run of consecutive rows (up to 256).
    pub out_entries: u64,
    /// Dead letters of its repair.
    pub dead_letters: u64,
    /// The worker holding its lease, and the ms left on it.
    pub lease: Option<(String, i64)>,
    /// Its tail is settled.
    pub settled: bool,
    /// Why its keys could not be read (one of another type, say): the rest of its line is
    /// what could be read before.
    pub unusable: Option<String>,
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

/// Reads the status of every sensor in the consumer group `group`; a sensor whose keys
/// cannot be read is shown as such, with the others.
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
        let mut s = SensorStatus {
            sensor,
            ..SensorStatus::default()
        };
        match read_sensor(&mut con, group, &mut s) {
            Ok(()) => {}
            Err(e) if super::is_transient(&e) => return Err(e),
            Err(e) => s.unusable = Some(format!("{e:#}")),
        }
        st.sensors.push(s);
    }
    Ok(st)
}

/// Fills in the status of sensor `s.sensor`, as far as its keys can be read.
fn read_sensor(
    con: &mut redis::Connection,
    group: &str,
    s: &mut SensorStatus,
) -> anyhow::Result<()> {
    let k = Keys::new(s.sensor);
    s.raw = xlen(con, &k.raw)?;
    // What is left to repair first: a sensor whose other keys cannot be read still shows it.
    let groups: redis::RedisResult<Vec<BTreeMap<String, redis::Value>>> =
        redis::cmd("XINFO").arg("GROUPS").arg(&k.raw).query(con);
    s.lag = s.raw;
    if let Ok(groups) = groups {
        if let Some(g) = groups.iter().find(
            |g| matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == group.as_bytes()),
        ) {
            let int = |name: &str| match g.get(name) {
                Some(redis::Value::Int(n)) => u64::try_from(*n).ok(),
                _ => None,
            };
            s.pending = int("pending").unwrap_or(0);
            s.lag = int("lag").unwrap_or(s.raw) + s.pending;
        }
    }
    s.out_entries = xlen(con, &k.out)?;
    s.dead_letters = xlen(con, &k.dead)?;
    let holder: Option<String> = redis::cmd("GET")
        .arg(&k.lease)
        .query(con)
        .with_context(|| format!("cannot read {}", k.lease))?;
    if let Some(h) = holder {
        let ttl: i64 = redis::cmd("PTTL").arg(&k.lease).query(con)?;
        s.lease = Some((h, ttl));
    }
    let settled: Option<String> = redis::cmd("HGET")
        .arg(&k.state)
        .arg("settled")
        .query(con)
        .with_context(|| format!("cannot read {}", k.state))?;
    s.settled = settled.as_deref() == Some("1") && s.lag == 0;
    Ok(())
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
        let unusable = self.sensors.iter().filter(|s| s.unusable.is_some()).count();
        if unusable > 0 {
            let _ = writeln!(t, "sensors whose keys cannot be read: {unusable}");
        }
        let _ = writeln!(t, "sensor  raw  lag  pending  out  dead  lease");
        for s in &self.sensors {
            let lease = match &s.lease {
                Some((h, ttl)) => format!("{h} ({ttl} ms left)"),
                None => "-".to_string(),
            };
            let _ = writeln!(
                t,
                "{}  {}  {}  {}  {}  {}  {lease}{}{}",
                s.sensor,
                s.raw,
                s.lag,
                s.pending,
                s.out_entries,
                s.dead_letters,
                if s.settled { "  settled" } else { "" },
                s.unusable
                    .as_ref()
                    .map_or(String::new(), |e| format!("  unusable: {e}"))
            );
        }
        t
    }
}
