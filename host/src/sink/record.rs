//! Where repaired records go: the [`RecordSink`] trait, a [`Tee`] of several sinks, and
//! the in-memory [`VecSink`] of the library API.

use std::io;

use mend_core::{Key, Outage, Record};

use crate::input::StreamMeta;

/// Where repaired records go.
pub trait RecordSink {
    /// One output record of a stream, in time order within the stream.
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()>;
    /// An outage (a gap too long to fill) inside the replay window.
    fn outage(&mut self, _outage: &Outage) -> io::Result<()> {
        Ok(())
    }
    /// One slot of an outage (see [`Outage::slots`]) inside the replay window, in time order
    /// with the stream's records, for output on a regular grid (`--emit-outages`). Sinks
    /// that have no use for it ignore it.
    fn missing(&mut self, _outage: &Outage, _slot: Key, _meta: &StreamMeta) -> io::Result<()> {
        Ok(())
    }
    /// Flushes buffered output.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Several sinks fed with the same records.
#[derive(Default)]
pub struct Tee<'a> {
    /// The sinks, fed in order.
    pub sinks: Vec<Box<dyn RecordSink + 'a>>,
}

impl<'a> Tee<'a> {
    /// The one sink when there is only one (a call less per record), else the tee.
    pub fn single_or_all(&mut self) -> &mut (dyn RecordSink + 'a) {
        if self.sinks.len() == 1 {
            &mut *self.sinks[0]
        } else {
            self
        }
    }
}

impl RecordSink for Tee<'_> {
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()> {
        for s in &mut self.sinks {
            s.record(rec, meta)?;
        }
        Ok(())
    }

    fn outage(&mut self, o: &Outage) -> io::Result<()> {
        for s in &mut self.sinks {
            s.outage(o)?;
        }
        Ok(())
    }

    fn missing(&mut self, o: &Outage, slot: Key, meta: &StreamMeta) -> io::Result<()> {
        for s in &mut self.sinks {
            s.missing(o, slot, meta)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        for s in &mut self.sinks {
            s.flush()?;
        }
        Ok(())
    }
}

/// A record as the library API returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutRecord {
    /// The record.
    pub record: Record,
    /// False when the input had no seq (JSONL): `record.reading.seq` is then meaningless.
    pub has_seq: bool,
}

/// Collects records in memory (for the library API and tests).
#[derive(Default)]
pub struct VecSink {
    /// The records, in output order.
    pub records: Vec<OutRecord>,
    /// The outages inside the window.
    pub outages: Vec<Outage>,
    /// The outage slots inside the window (with `--emit-outages`), in output order.
    pub missing: Vec<(Outage, Key)>,
}

impl RecordSink for VecSink {
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()> {
        self.records.push(OutRecord {
            record: *rec,
            has_seq: meta.has_seq,
        });
        Ok(())
    }

    fn outage(&mut self, o: &Outage) -> io::Result<()> {
        self.outages.push(*o);
        Ok(())
    }

    fn missing(&mut self, o: &Outage, slot: Key, _meta: &StreamMeta) -> io::Result<()> {
        self.missing.push((*o, slot));
        Ok(())
    }
}
