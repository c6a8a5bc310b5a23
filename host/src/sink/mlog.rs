//! Frame logs: measured records re-encoded in mend's wire format.

use std::collections::BTreeMap;
use std::io::{self, Write};

use mend_core::{ClockKind, Encoder, Frame, Header, Key, Outage, Record};

use super::record::RecordSink;
use crate::input::StreamMeta;

/// Re-encodes measured records as a mend frame log: a header whenever the stream changes
/// and every 60 readings, then reading frames.
///
/// Synthetic records are left out: the wire format has no way to say "made up", and a later
/// replay recomputes the same fills. Records without a seq (JSONL input) are numbered by
/// their slot, the periods since the stream's first reading here (and always above the one
/// before), so that a later replay finds the same gaps; their session is that first reading's
/// unix second, so that two logs converted apart never give two readings one identity.
pub struct MlogWriter<W: Write> {
    w: W,
    current: Option<(Header, u32)>,
    /// For each stream without seqs: its session here, its first reading's time and the
    /// last seq given.
    slots: BTreeMap<(u32, u32), (u32, u64, u32)>,
    since_header: u32,
    enc: Encoder,
}

impl<W: Write> MlogWriter<W> {
    /// A writer to `w`.
    pub fn new(w: W) -> Self {
        Self {
            w,
            current: None,
            slots: BTreeMap::new(),
            since_header: 0,
            enc: Encoder::new(),
        }
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.w
    }

    fn frame(&mut self, f: &Frame) -> io::Result<()> {
        let buf = self
            .enc
            .to_buf(f)
            .map_err(|e| io::Error::other(format!("cannot encode a frame: {e}")))?;
        self.w.write_all(&buf)
    }
}

impl<W: Write> RecordSink for MlogWriter<W> {
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()> {
        if rec.is_synthetic() {
            return Ok(());
        }
        let mut r = rec.reading;
        let period = meta.period_ms.max(1);
        if !meta.has_seq {
            let t = r.timestamp;
            let session = u32::try_from(t / 1_000).unwrap_or(u32::MAX);
            match self.slots.get_mut(&(r.sensor, r.session)) {
                Some((session, first, last)) => {
                    let slot =
                        (t.saturating_sub(*first) + u64::from(period / 2)) / u64::from(period);
                    let slot = u32::try_from(slot).unwrap_or(u32::MAX);
                    *last = slot.max(last.saturating_add(1));
                    r.session = *session;
                    r.seq = *last;
                }
                None => {
                    self.slots.insert((r.sensor, r.session), (session, t, 0));
                    r.session = session;
                    r.seq = 0;
                }
            }
        }
        let same = self
            .current
            .is_some_and(|(h, _)| h.sensor == r.sensor && h.session == r.session);
        let wire = match self.current {
            Some((h, _)) if same && self.since_header < 60 && self.enc.places(r.seq) => {
                h.to_wire(&r).ok()
            }
            _ => None,
        };
        let wire = match wire {
            Some(w) => w,
            None => {
                // A fresh header, with an epoch that puts this reading on schedule.
                let epoch = r
                    .timestamp
                    .saturating_sub(u64::from(r.seq) * u64::from(period));
                let clock = if meta.clock == ClockKind::Boot {
                    ClockKind::Boot
                } else {
                    ClockKind::Unix
                };
                let h = Header::new(r.sensor, r.session, period, clock, epoch).with_base(r.seq);
                self.frame(&Frame::Header(h))?;
                self.current = Some((h, 0));
                self.since_header = 0;
                h.to_wire(&r).map_err(|e| {
                    io::Error::other(format!(
                        "cannot write sensor {} session {} seq {} at {} ms as a frame: {e}",
                        r.sensor, r.session, r.seq, r.timestamp
                    ))
                })?
            }
        };
        self.since_header += 1;
        self.frame(&Frame::Reading(wire))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Refused: a frame log has no way to say "nothing was measured here".
    fn missing(&mut self, _o: &Outage, _slot: Key, _meta: &StreamMeta) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the mlog format cannot carry outage slots (write CSV or JSONL to emit outages)",
        ))
    }
}
