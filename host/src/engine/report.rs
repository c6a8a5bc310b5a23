//! What the engine tells about each stream at the end: the report types, and the tally of
//! the frames that are not readings (headers, edge stats, faults, heartbeats, replays),
//! which name streams whose readings may all have been lost.

use std::collections::BTreeMap;

use mend_core::{ClockKind, Counters, FaultKind, Header, Stats};
use serde::Serialize;

use super::config::MAX_LISTED_OUTAGES;

/// An outage as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OutageReport {
    /// The last measured reading before it, ms.
    pub start_ms: u64,
    /// The first measured reading after it, ms.
    pub end_ms: u64,
    /// Readings it swallowed.
    pub missing: u64,
}

/// A sample the edge could not take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FaultReport {
    /// The seq the sample would have had.
    pub seq: u32,
    /// What went wrong on the bus (`no_acknowledge`, `bus`, `timeout`, `invalid_data`).
    pub kind: &'static str,
}

/// The last edge stats frame of a stream, and whether its books balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EdgeReport {
    /// The frame.
    #[serde(skip)]
    pub stats: Stats,
    /// The edge's counters.
    pub counters: Counters,
    /// True when the edge's counters balance (nothing held at a stats point is allowed
    /// for: `in ≥ out`).
    pub balanced: bool,
    /// Readings the edge sent (emitted + late + evicted).
    pub sent: u64,
    /// Frames the edge's ring dropped.
    pub ring_dropped: u32,
    /// Sensor faults the edge counted.
    pub sensor_faults: u32,
}

/// Everything the engine knows about one stream at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    /// The sensor.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// Whether readings had a seq.
    pub has_seq: bool,
    /// The sampling period, ms.
    pub period_ms: u32,
    /// `"unix"` or `"boot"`.
    pub clock: &'static str,
    /// Readings received from the inputs, repeats included.
    pub received: u64,
    /// Records not written again because an earlier checkpointed run wrote them.
    pub already_emitted: u64,
    /// Readings a first pass set aside because they arrived too far out of place.
    pub set_aside: u64,
    /// Readings set aside by the first pass and put in their place by the second.
    pub placed: u64,
    /// Readings held back as the unsettled tail of a checkpointed run (a later run or
    /// `--final` writes them).
    pub held_back: u64,
    /// The books of the pipeline: `in = emitted + late + duplicate + rejected + evicted`.
    pub counters: Counters,
    /// True when the books balance with nothing held.
    pub balanced: bool,
    /// Records written (inside the window).
    pub records: u64,
    /// Measured records written.
    pub measured: u64,
    /// Synthetic records written.
    pub synthetic: u64,
    /// Records of quality good / doubtful / bad.
    pub good: u64,
    /// See `good`.
    pub doubtful: u64,
    /// See `good`.
    pub bad: u64,
    /// Records computed but outside `--from`/`--until`.
    pub outside_window: u64,
    /// Gaps found inside the window (not outages).
    pub gaps: u64,
    /// Readings missing in those gaps.
    pub missing: u64,
    /// Outages inside the window.
    pub outages: u64,
    /// Readings missing in those outages.
    pub missing_in_outages: u64,
    /// The first [`MAX_LISTED_OUTAGES`] outages.
    pub outage_list: Vec<OutageReport>,
    /// Readings received that the node sent again in answer to a resend (replayed frames),
    /// repeats included: measured readings, recovered rather than filled.
    pub recovered_by_resend: u64,
    /// Heartbeat frames received.
    pub heartbeats: u64,
    /// Fault frames received.
    pub faults: u64,
    /// The first faults: seq and kind.
    pub fault_list: Vec<FaultReport>,
    /// The last edge stats frame (boxed: most streams of a long log have ended, and their
    /// reports should stay small).
    pub edge: Option<Box<EdgeReport>>,
    /// The earliest reading received, ms.
    pub first_ms: Option<u64>,
    /// The latest reading received, ms.
    pub last_ms: Option<u64>,
    /// The first record written, ms.
    pub first_out_ms: Option<u64>,
    /// The last record written, ms.
    pub last_out_ms: Option<u64>,
}

/// The name of a clock in the report.
pub(super) fn clock_name(clock: ClockKind) -> &'static str {
    match clock {
        ClockKind::Unix => "unix",
        ClockKind::Boot => "boot",
    }
}

/// The name of a sensor fault in the report.
fn fault_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::NoAcknowledge => "no_acknowledge",
        FaultKind::Bus => "bus",
        FaultKind::Timeout => "timeout",
        FaultKind::InvalidData => "invalid_data",
    }
}

/// The frames of each `(sensor, session)` that are not readings, counted for the reports.
#[derive(Debug, Default)]
pub(super) struct FrameTally {
    /// Headers of sessions no reading has been seen of yet.
    headers: BTreeMap<(u32, u32), Header>,
    /// The last edge stats frame.
    edge: BTreeMap<(u32, u32), Stats>,
    /// Faults: how many, and the first ones.
    faults: BTreeMap<(u32, u32), (u64, Vec<FaultReport>)>,
    /// Replayed readings received.
    replayed: BTreeMap<(u32, u32), u64>,
    /// Heartbeats received.
    heartbeats: BTreeMap<(u32, u32), u64>,
}

impl FrameTally {
    /// A header, kept only while no reading of its session has been seen (`known` says
    /// whether one has): the report of a session whose readings were all lost still names
    /// its period and clock.
    pub(super) fn header(&mut self, h: Header, known: bool) {
        if !known {
            self.headers.entry((h.sensor, h.session)).or_insert(h);
        }
    }

    /// How many headers wait for a session no reading has been seen of.
    pub(super) fn headers_waiting(&self) -> usize {
        self.headers.len()
    }

    /// The first reading of a session: its stream reports itself, so its header is not
    /// needed.
    pub(super) fn stream_seen(&mut self, key: (u32, u32)) {
        self.headers.remove(&key);
    }

    /// An edge stats frame; the last one counts.
    pub(super) fn stats(&mut self, sensor: u32, stats: Stats) {
        self.edge.insert((sensor, stats.session), stats);
    }

    /// A sensor fault frame.
    pub(super) fn fault(&mut self, key: (u32, u32), seq: u32, kind: FaultKind) {
        let (n, list) = self.faults.entry(key).or_default();
        *n += 1;
        if list.len() < MAX_LISTED_OUTAGES {
            list.push(FaultReport {
                seq,
                kind: fault_name(kind),
            });
        }
    }

    /// A reading the node sent again in answer to a resend.
    pub(super) fn replayed(&mut self, key: (u32, u32)) {
        *self.replayed.entry(key).or_default() += 1;
    }

    /// A heartbeat frame.
    pub(super) fn heartbeat(&mut self, key: (u32, u32)) {
        *self.heartbeats.entry(key).or_default() += 1;
    }

    /// Adds what was tallied to `out`, the reports of the streams in `(sensor, session)`
    /// order, with a report of its own for each session known only from these frames.
    pub(super) fn complete(&mut self, out: &mut Vec<StreamReport>) {
        let bare = |sensor: u32, session: u32| StreamReport {
            sensor,
            session,
            balanced: true,
            ..StreamReport::default()
        };
        let key = |r: &StreamReport| (r.sensor, r.session);
        // Sessions whose readings were all lost: their header names period and clock.
        let unsorted = !self.headers.is_empty();
        for (_, h) in std::mem::take(&mut self.headers) {
            out.push(StreamReport {
                has_seq: true,
                period_ms: h.period_ms,
                clock: clock_name(h.clock),
                ..bare(h.sensor, h.session)
            });
        }
        if unsorted {
            out.sort_by_key(key);
        }
        let slot = |out: &mut Vec<StreamReport>, k: (u32, u32)| -> usize {
            match out.binary_search_by_key(&k, key) {
                Ok(i) => i,
                Err(i) => {
                    out.insert(i, bare(k.0, k.1));
                    i
                }
            }
        };
        for (k, stats) in &self.edge {
            let i = slot(out, *k);
            let c = stats.counters;
            if let Some(rep) = out.get_mut(i) {
                rep.edge = Some(Box::new(EdgeReport {
                    stats: *stats,
                    counters: c,
                    balanced: u64::from(c.input) >= c.out(),
                    sent: u64::from(c.emitted) + u64::from(c.late) + u64::from(c.evicted),
                    ring_dropped: stats.ring_dropped,
                    sensor_faults: stats.sensor_faults,
                }));
            }
        }
        for (k, (n, list)) in &self.faults {
            let i = slot(out, *k);
            if let Some(rep) = out.get_mut(i) {
                rep.faults = *n;
                rep.fault_list = list.clone();
            }
        }
        for (k, n) in &self.replayed {
            let i = slot(out, *k);
            if let Some(rep) = out.get_mut(i) {
                rep.recovered_by_resend = *n;
            }
        }
        for (k, n) in &self.heartbeats {
            let i = slot(out, *k);
            if let Some(rep) = out.get_mut(i) {
                rep.heartbeats = *n;
            }
        }
    }
}
