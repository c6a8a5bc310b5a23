//! Fleet mode: many gateways and a group of repair workers on Redis Streams.
//!
//! One host replays one plant's captures; a fleet outgrows one machine. Rather than invent a
//! distributed log, mend keeps its data in Redis Streams and leaves the repair exactly as it
//! is: a worker is a checkpointed `mend replay` whose input is a sensor's raw stream.
//!
//! - [`publish`] splits captures into one raw stream per sensor (`mend publish` from files,
//!   `mend listen --redis` as a gateway receives them). Every entry is decodable on its own
//!   (the session's header frame, then reading frames), so the concatenated entries of a
//!   sensor are a frame log of that sensor alone.
//! - [`work`] repairs: a worker leases a sensor (one worker per sensor at a time, since order
//!   matters), reads its new entries through a consumer group, replays the sensor's stream
//!   from its checkpoint, and writes the new rows, the new dead letters, the checkpoint and
//!   the `XACK` in one `MULTI`/`EXEC`, fenced by the lease: a crash at any point leaves either
//!   all of them or none, so no row is lost or written twice.
//! - [`export`] reads an output stream back as the CSV or JSONL of `mend replay`.
//! - [`status`] shows sensors, workers, leases, lag, pending entries and dead letters.
//!
//! Every per-sensor key carries the sensor as a hash tag (`mend:{7}:raw`), so the keys of a
//! sensor live in one Redis Cluster slot and the transaction above is legal on a cluster.

pub mod export;
pub mod publish;
pub mod rows;
pub mod status;
pub mod work;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, StreamMark};

/// The Redis URL every fleet command uses unless `--redis` says otherwise.
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// The set of known sensors (a plain key: one slot, read with `SMEMBERS`).
pub const SENSORS_KEY: &str = "mend:sensors";

/// Worker heartbeats: consumer name → unix ms of its last round.
pub const WORKERS_KEY: &str = "mend:workers";

/// Bytes `mend publish` could not use (damaged frames, readings before any header).
pub const PUBLISH_DEAD_KEY: &str = "mend:dead";

/// The keys of one sensor, all hash-tagged with the sensor id.
///
/// # Examples
/// ```
/// let k = mend::fleet::Keys::new(7);
/// assert_eq!(k.raw, "mend:{7}:raw");
/// assert_eq!(k.out, "mend:{7}:out");
/// assert_eq!(k.lease, "mend:{7}:lease");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    /// Raw entries as published (header + reading frames).
    pub raw: String,
    /// Repaired rows, in entries of consecutive rows whose IDs derive from their first
    /// row's `(time, seq)` (see [`rows`]).
    pub out: String,
    /// Dead letters of the repair.
    pub dead: String,
    /// The worker state: checkpoint and marks (a hash).
    pub state: String,
    /// The lease: which worker works the sensor, until it expires.
    pub lease: String,
    /// The last raw entry of a complete capture (`mend publish --end`).
    pub end: String,
}

impl Keys {
    /// The keys of `sensor`.
    pub fn new(sensor: u32) -> Self {
        let k = |what: &str| format!("mend:{{{sensor}}}:{what}");
        Self {
            raw: k("raw"),
            out: k("out"),
            dead: k("dead"),
            state: k("state"),
            lease: k("lease"),
            end: k("end"),
        }
    }
}

/// A stream entry ID, `ms-seq`, ordered as Redis orders them.
///
/// # Examples
/// ```
/// use mend::fleet::EntryId;
/// let id: EntryId = "1700000000000-3".parse().unwrap();
/// assert_eq!(id, EntryId { ms: 1_700_000_000_000, seq: 3 });
/// assert_eq!(id.to_string(), "1700000000000-3");
/// assert!(EntryId { ms: 5, seq: 0 } > EntryId { ms: 4, seq: 9 });
/// assert!("12".parse::<EntryId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    /// The millisecond part.
    pub ms: u64,
    /// The sequence part.
    pub seq: u64,
}

impl EntryId {
    /// The smallest ID after this one.
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }

    /// The output ID of a row at `(timestamp, seq)` written after `last`: the row's own key
    /// when that is greater (always, for rows of one session in order), else the next ID, so
    /// IDs are derived from the readings and a rewrite gives the same IDs.
    ///
    /// # Examples
    /// ```
    /// use mend::fleet::EntryId;
    /// let last = EntryId { ms: 5_000, seq: 5 };
    /// assert_eq!(EntryId::for_row(6_000, 6, Some(last)), EntryId { ms: 6_000, seq: 6 });
    /// // A row of another session at the same key comes right after the last one.
    /// assert_eq!(EntryId::for_row(5_000, 5, Some(last)), EntryId { ms: 5_000, seq: 6 });
    /// // 0-0 is not a valid stream ID.
    /// assert_eq!(EntryId::for_row(0, 0, None), EntryId { ms: 0, seq: 1 });
    /// ```
    pub fn for_row(timestamp: u64, seq: u32, last: Option<Self>) -> Self {
        let own = Self {
            ms: timestamp,
            seq: u64::from(seq),
        };
        let floor = last.unwrap_or_default();
        if own > floor {
            own
        } else {
            floor.next()
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl std::str::FromStr for EntryId {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, seq) = s
            .split_once('-')
            .with_context(|| format!("{s:?} is not a stream entry ID (ms-seq)"))?;
        Ok(Self {
            ms: ms
                .parse()
                .with_context(|| format!("{s:?} is not a stream entry ID (ms-seq)"))?,
            seq: seq
                .parse()
                .with_context(|| format!("{s:?} is not a stream entry ID (ms-seq)"))?,
        })
    }
}

/// How long a fleet command waits for Redis to answer a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks that each `(key, type)` (a `TYPE` reply) is a stream or not there yet: a worker
/// writes a sensor's rows and dead letters with `XADD`, which fails on a key of another type
/// only when the commit runs, after the rest of it was applied.
///
/// # Errors
/// A key of another type, named with its type.
///
/// # Examples
/// ```
/// use mend::fleet::streams_only;
/// assert!(streams_only(&[("mend:{1}:out", "stream"), ("mend:{1}:dead", "none")]).is_ok());
/// let e = streams_only(&[("mend:{1}:out", "string")]).unwrap_err();
/// assert!(e.to_string().contains("mend:{1}:out holds a string"));
/// ```
pub fn streams_only(types: &[(&str, &str)]) -> anyhow::Result<()> {
    for (key, t) in types {
        if *t != "stream" && *t != "none" {
            anyhow::bail!("{key} holds a {t}, not a stream: rename or delete it");
        }
    }
    Ok(())
}

/// A Redis URL as shown in messages: its password, if any, hidden.
///
/// # Examples
/// ```
/// use mend::fleet::shown_url;
/// assert_eq!(shown_url("redis://:s3cret@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
/// assert_eq!(shown_url("redis://me:pw@host"), "redis://me:***@host");
/// assert_eq!(shown_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_at = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..host_at].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Opens a connection, with an error that names the URL (its password hidden).
///
/// # Errors
/// A malformed URL, or Redis unreachable.
pub fn connect(url: &str) -> anyhow::Result<redis::Connection> {
    let shown = shown_url(url);
    let url_text = url;
    let url = &shown;
    let client =
        redis::Client::open(url_text).with_context(|| format!("{url}: not a usable Redis URL"))?;
    let mut con = client
        .get_connection_with_timeout(CONNECT_TIMEOUT)
        .with_context(|| format!("cannot connect to Redis at {url}"))?;
    con.set_read_timeout(Some(Duration::from_secs(30)))
        .with_context(|| format!("cannot connect to Redis at {url}"))?;
    redis::cmd("PING")
        .query::<String>(&mut con)
        .with_context(|| format!("Redis at {url} does not answer"))?;
    Ok(con)
}

/// True when `e` comes from a connection that failed or went away (or from a Redis still
/// loading its data): a worker waits and reconnects; anything else is a real error.
pub fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<redis::RedisError>().is_some_and(|r| {
            r.is_io_error()
                || r.is_connection_refusal()
                || r.is_connection_dropped()
                || r.is_timeout()
                // LOADING, TRYAGAIN, MASTERDOWN, CLUSTERDOWN: a server that will answer soon.
                || matches!(r.retry_method(), redis::RetryMethod::WaitAndRetry)
        }) || c.downcast_ref::<std::io::Error>().is_some()
    })
}

/// The checkpoint as a worker stores it in the sensor's state hash.
#[derive(Serialize, Deserialize)]
struct StoredCheckpoint {
    seen: Vec<u64>,
    streams: Vec<StreamMark>,
}

/// The checkpoint as JSON for the state hash.
pub fn checkpoint_to_json(ck: &Checkpoint) -> anyhow::Result<String> {
    serde_json::to_string(&StoredCheckpoint {
        seen: ck.seen.clone(),
        streams: ck.streams.values().copied().collect(),
    })
    .context("cannot encode a checkpoint")
}

/// The checkpoint from the state hash.
///
/// # Examples
/// ```
/// use mend::checkpoint::{Checkpoint, StreamMark};
/// use mend::fleet::{checkpoint_from_json, checkpoint_to_json};
/// let mut ck = Checkpoint::default();
/// ck.streams.insert((1, 2), StreamMark {
///     sensor: 1, session: 2, last_timestamp: 9_000, last_seq: 9, last_celsius_bits: 13_440,
///     agg_through: None, ended: true,
/// });
/// assert_eq!(checkpoint_from_json(&checkpoint_to_json(&ck).unwrap()).unwrap(), ck);
/// assert!(checkpoint_from_json("nonsense").is_err());
/// ```
pub fn checkpoint_from_json(text: &str) -> anyhow::Result<Checkpoint> {
    let s: StoredCheckpoint =
        serde_json::from_str(text).context("the stored checkpoint is not a mend checkpoint")?;
    Ok(Checkpoint {
        inputs: Vec::new(),
        seen: s.seen,
        streams: s
            .streams
            .into_iter()
            .map(|m| ((m.sensor, m.session), m))
            .collect(),
    })
}

/// One stream entry: its ID and its field-value pairs.
pub type Entry = (String, Vec<Vec<u8>>);

/// The value of `field` in an entry's flat field-value list.
pub fn field<'a>(fields: &'a [Vec<u8>], name: &str) -> Option<&'a [u8]> {
    fields
        .chunks_exact(2)
        .find(|kv| kv.first().is_some_and(|k| k == name.as_bytes()))
        .and_then(|kv| kv.get(1))
        .map(Vec::as_slice)
}

/// The sensors Redis knows of, in order.
pub fn sensors(con: &mut redis::Connection) -> anyhow::Result<Vec<u32>> {
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(SENSORS_KEY)
        .query(con)
        .context("cannot list sensors")?;
    let mut ids: Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The last entry ID of a stream, if it has one.
pub fn last_entry(con: &mut redis::Connection, key: &str) -> anyhow::Result<Option<EntryId>> {
    let last: Vec<Entry> = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(con)
        .with_context(|| format!("cannot read {key}"))?;
    last.first().map(|(id, _)| id.parse()).transpose()
}

/// The last entry ID ever added to a stream, trimmed or not (`XINFO STREAM`'s
/// `last-generated-id`); `None` for a stream that does not exist or never had an entry.
pub fn last_generated(con: &mut redis::Connection, key: &str) -> anyhow::Result<Option<EntryId>> {
    let info: redis::RedisResult<BTreeMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("STREAM").arg(key).query(con);
    let info = match info {
        Ok(i) => i,
        // No such key: nothing was ever added.
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {key}")),
    };
    let id = match info.get("last-generated-id") {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s.clone(),
        _ => anyhow::bail!("{key}: XINFO STREAM names no last-generated-id"),
    };
    let id: EntryId = id.parse()?;
    Ok((id != EntryId::default()).then_some(id))
}

/// The server's clock, unix ms (the clock of auto-generated entry IDs).
pub fn server_ms(con: &mut redis::Connection) -> anyhow::Result<u64> {
    let (s, us): (u64, u64) = redis::cmd("TIME")
        .query(con)
        .context("cannot read the server's time")?;
    Ok(s * 1_000 + us / 1_000)
}
