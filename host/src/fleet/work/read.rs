//! What a worker reads of a sensor before a run: the entries it now owns, the state hash,
//! the stream's last entry, the end mark and the server's clock; and the entries read before.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::fleet::{Entry, EntryId, Keys};

/// A page of `XAUTOCLAIM … JUSTID`: the next cursor, the claimed IDs, the deleted IDs.
type Claimed = (String, Vec<String>, Vec<String>);

/// The replies of a worker's reads of one sensor: the types of its output and dead-letter
/// keys, claimed entries, new entries (`XREADGROUP`), the state hash, the first and the last
/// entry, the end mark, the server's clock.
type Replies = (
    String,
    String,
    Claimed,
    Option<Vec<(String, Vec<Entry>)>>,
    BTreeMap<String, String>,
    Vec<Entry>,
    Vec<Entry>,
    Option<String>,
    (u64, u64),
);

/// A sensor as a worker finds it at the start of a run.
pub(super) struct SensorRead {
    /// Entries to acknowledge once repaired: claimed from a dead worker, or new; sorted.
    pub(super) to_ack: Vec<EntryId>,
    /// The new entries (`XREADGROUP`).
    pub(super) fresh: Vec<Entry>,
    /// The state hash.
    pub(super) hash: BTreeMap<String, String>,
    /// The stream's first entry, if it has any.
    pub(super) first: Option<EntryId>,
    /// The stream's last entry, if it has any.
    pub(super) last: Option<EntryId>,
    /// The last entry of a complete capture (`mend publish --end`).
    pub(super) end: Option<EntryId>,
    /// The server's clock, unix ms.
    pub(super) now: u64,
}

impl SensorRead {
    /// Reads a sensor for consumer `me` of `group`, taking up to `count` new entries.
    pub(super) fn fetch(
        con: &mut redis::Connection,
        k: &Keys,
        group: &str,
        me: &str,
        count: usize,
    ) -> anyhow::Result<Self> {
        // One round trip: the types of the streams a commit writes, entries delivered to a
        // worker that never acknowledged them (ours now), new entries, the state, the
        // stream's first and last entries, the end mark and the clock.
        let (out_type, dead_type, claimed, read, hash, first, last, end, (secs, micros)): Replies =
            redis::pipe()
                .cmd("TYPE")
                .arg(&k.out)
                .cmd("TYPE")
                .arg(&k.dead)
                .cmd("XAUTOCLAIM")
                .arg(&k.raw)
                .arg(group)
                .arg(me)
                .arg(0)
                .arg("0-0")
                .arg("COUNT")
                .arg(1_000)
                .arg("JUSTID")
                .cmd("XREADGROUP")
                .arg("GROUP")
                .arg(group)
                .arg(me)
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(&k.raw)
                .arg(">")
                .cmd("HGETALL")
                .arg(&k.state)
                .cmd("XRANGE")
                .arg(&k.raw)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
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
        // The entries read stay pending, and are claimed again once the keys are mended.
        crate::fleet::streams_only(&[(&k.out, &out_type), (&k.dead, &dead_type)])?;
        let mut to_ack: Vec<EntryId> = Vec::new();
        let (mut cursor, ids, _) = claimed;
        for id in &ids {
            to_ack.push(id.parse()?);
        }
        while cursor != "0-0" {
            let (next, ids, _deleted): Claimed = redis::cmd("XAUTOCLAIM")
                .arg(&k.raw)
                .arg(group)
                .arg(me)
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
        Ok(Self {
            to_ack,
            fresh,
            hash,
            first: first
                .first()
                .map(|(id, _)| id.parse::<EntryId>())
                .transpose()?,
            last: last
                .first()
                .map(|(id, _)| id.parse::<EntryId>())
                .transpose()?,
            end: end.map(|e| e.parse()).transpose()?,
            now: secs * 1_000 + micros / 1_000,
        })
    }
}

/// The raw entries of a sensor from its first one up to `until` (an ID, or `(ID` for up to
/// and without it), read in pages.
pub(super) fn read_range(
    con: &mut redis::Connection,
    k: &Keys,
    until: &str,
) -> anyhow::Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut from = "-".to_string();
    loop {
        let chunk: Vec<Entry> = redis::cmd("XRANGE")
            .arg(&k.raw)
            .arg(&from)
            .arg(until)
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
    Ok(entries)
}
