//! Reading a mend frame log.
//!
//! A frame log only makes sense with its session header: a reading frame carries its seq and
//! its offset from the schedule, not its sensor or time. The reader therefore tracks the
//! current [`Header`]; a reading with no usable header before it (the log was cut, or the
//! header was damaged or of an unknown version) is dead-lettered rather than guessed at.

use std::io::{self, Read};

use indicatif::ProgressBar;
use mend_core::{ClockKind, DecodeEvent, Decoder, Frame, Header, SkipReason};

use super::books::ByteCounts;
use super::detect::Format;
use super::item::{DeadLetter, Item, Location, ReadingItem, StreamMeta};
use super::reader::{ItemReader, StopRule, BATCH, CHUNK, STOP_RUN};
use super::reason::DeadReason;

/// Reads a mend frame log: decodes frames, tracks the session header, and reports every byte.
pub struct FrameReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    eof: bool,
    dec: Decoder,
    header: Option<Header>,
    header_problem: &'static str,
    input: usize,
    counts: ByteCounts,
    progress: Option<ProgressBar>,
    stop: Option<StopRule>,
    /// Readings in a row later than the stop rule's time.
    beyond: u32,
    stopped: bool,
}

impl<R: Read> FrameReader<R> {
    /// Stop early under `rule` (see [`StopRule`]); `None` reads to the end.
    pub fn set_stop_rule(&mut self, rule: Option<StopRule>) {
        self.stop = rule;
        self.beyond = 0;
    }

    /// A reader of `inner`, the input numbered `input`, whose first byte is at
    /// `counts.before_seek`.
    pub fn new(inner: R, input: usize, counts: ByteCounts, progress: Option<ProgressBar>) -> Self {
        Self {
            inner,
            buf: vec![0u8; CHUNK].into_boxed_slice(),
            pos: 0,
            len: 0,
            eof: false,
            dec: Decoder::at(counts.before_seek),
            header: None,
            header_problem: "no header frame before it",
            input,
            counts,
            progress,
            stop: None,
            beyond: 0,
            stopped: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.pos = 0;
                    self.len = n;
                    self.eof = n == 0;
                    if let Some(p) = &self.progress {
                        p.inc(n as u64);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn dead(&self, span: mend_core::Span, reason: DeadReason, detail: String) -> Item {
        Item::Dead(DeadLetter {
            input: self.input,
            location: Location::Bytes {
                offset: span.start,
                length: span.len(),
            },
            reason,
            detail,
        })
    }

    #[inline]
    fn handle(&mut self, ev: DecodeEvent) -> Option<Item> {
        match ev {
            DecodeEvent::Skipped { span, reason } => {
                if reason.is_bad_frame() {
                    self.counts.bad += span.len();
                    self.counts.bad_items += 1;
                } else {
                    self.counts.skipped += span.len();
                    self.counts.skipped_items += 1;
                }
                if reason == SkipReason::UnknownVersion {
                    self.header = None;
                    self.header_problem = "its session header has an unknown format version";
                }
                let what = if reason.is_bad_frame() {
                    "damaged frame"
                } else {
                    "skipped bytes"
                };
                Some(self.dead(span, DeadReason::Frame(reason), format!("{what}: {reason}")))
            }
            DecodeEvent::Frame { frame, span } => {
                self.counts.good += span.len();
                self.counts.good_items += 1;
                let replayed = matches!(frame, Frame::Replayed(_));
                match frame {
                    Frame::Header(h) => {
                        if h.period_ms == 0 {
                            self.header = None;
                            self.header_problem = "its session header has a zero period";
                            return Some(self.dead(
                                span,
                                DeadReason::ZeroPeriod,
                                format!(
                                    "header of sensor {} session {} has a sampling period of 0",
                                    h.sensor, h.session
                                ),
                            ));
                        }
                        self.header = Some(h);
                        Some(Item::Header(h))
                    }
                    Frame::Reading(w) | Frame::Replayed(w) => {
                        let Some(h) = self.header else {
                            return Some(self.dead(
                                span,
                                DeadReason::NoHeader,
                                format!(
                                    "reading seq {} cannot be placed: {}",
                                    w.seq, self.header_problem
                                ),
                            ));
                        };
                        match h.from_wire(&w) {
                            Ok(reading) => {
                                if let Some(rule) = self.stop {
                                    if reading.timestamp > rule.after_ms
                                        && h.clock == ClockKind::Unix
                                    {
                                        self.beyond = self.beyond.saturating_add(1);
                                        self.stopped =
                                            self.beyond >= rule.run && span.start >= rule.from_byte;
                                    } else {
                                        self.beyond = 0;
                                    }
                                }
                                Some(Item::Reading(ReadingItem {
                                    input: self.input,
                                    reading,
                                    meta: StreamMeta {
                                        has_seq: true,
                                        period_ms: h.period_ms,
                                        clock: h.clock,
                                    },
                                    at: Location::Bytes {
                                        offset: span.start,
                                        length: span.len(),
                                    },
                                    replayed,
                                }))
                            }
                            Err(e) => Some(self.dead(
                                span,
                                DeadReason::BadTimestamp,
                                format!("reading seq {}: {e}", w.seq),
                            )),
                        }
                    }
                    Frame::Stats(stats) => match self.header {
                        Some(h) => Some(Item::Stats {
                            sensor: h.sensor,
                            stats,
                        }),
                        None => Some(self.dead(
                            span,
                            DeadReason::NoHeader,
                            format!(
                                "stats frame of session {} cannot be placed: {}",
                                stats.session, self.header_problem
                            ),
                        )),
                    },
                    Frame::Heartbeat(beat) => match self.header {
                        Some(h) => Some(Item::Heartbeat {
                            sensor: h.sensor,
                            session: beat.session,
                        }),
                        None => Some(self.dead(
                            span,
                            DeadReason::NoHeader,
                            format!(
                                "heartbeat of session {} cannot be placed: {}",
                                beat.session, self.header_problem
                            ),
                        )),
                    },
                    // Gateway-to-node frames in a capture (a log of both directions): good
                    // bytes that carry no reading.
                    Frame::Ack(_) | Frame::Resend(_) => None,
                    Frame::Fault(fault) => match self.header {
                        Some(h) => Some(Item::Fault {
                            sensor: h.sensor,
                            session: h.session,
                            fault,
                        }),
                        None => Some(self.dead(
                            span,
                            DeadReason::NoHeader,
                            format!(
                                "fault frame for seq {} cannot be placed: {}",
                                fault.seq, self.header_problem
                            ),
                        )),
                    },
                }
            }
        }
    }
}

impl<R: Read> ItemReader for FrameReader<R> {
    fn fill(&mut self, out: &mut Vec<Item>) -> io::Result<bool> {
        if self.stopped {
            return Ok(false);
        }
        while out.len() < BATCH {
            if self.pos >= self.len {
                if self.eof {
                    return Ok(false);
                }
                self.refill()?;
                if self.eof {
                    if let Some(item) = self.dec.finish().and_then(|ev| self.handle(ev)) {
                        out.push(item);
                    }
                    return Ok(false);
                }
            }
            // The chunk byte by byte, as far as it goes or the batch has room.
            let mut pos = self.pos;
            while let Some(&b) = self.buf.get(pos).filter(|_| pos < self.len) {
                pos += 1;
                if let Some(ev) = self.dec.push(b) {
                    if let Some(item) = self.handle(ev) {
                        out.push(item);
                    }
                    if self.stopped {
                        self.pos = pos;
                        return Ok(false);
                    }
                    if out.len() >= BATCH {
                        break;
                    }
                }
            }
            self.pos = pos;
        }
        Ok(true)
    }

    fn next_item(&mut self) -> io::Result<Option<Item>> {
        if self.stopped {
            return Ok(None);
        }
        loop {
            if self.pos >= self.len {
                if self.eof {
                    return Ok(None);
                }
                self.refill()?;
                if self.eof {
                    let ev = self.dec.finish();
                    return Ok(ev.and_then(|ev| self.handle(ev)));
                }
            }
            let chunk = &self.buf[self.pos..self.len];
            let mut used = 0;
            let mut found = None;
            for &b in chunk {
                used += 1;
                if let Some(ev) = self.dec.push(b) {
                    found = Some(ev);
                    break;
                }
            }
            self.pos += used;
            if let Some(ev) = found {
                if let Some(item) = self.handle(ev) {
                    return Ok(Some(item));
                }
            }
        }
    }

    fn bytes(&self) -> ByteCounts {
        let mut c = self.counts;
        // Only bytes the decoder has attributed count as read; after an early stop, the rest
        // of the chunk (and of the file) was never looked at.
        let end = if self.stopped {
            self.dec.frame_start()
        } else {
            self.dec.position()
        };
        c.read = end.saturating_sub(c.before_seek);
        if self.stopped {
            if let Some(t) = c.total {
                c.after_stop = t.saturating_sub(end);
            }
        }
        c.settled()
    }

    fn format(&self) -> Format {
        Format::Frames
    }

    /// A rule of [`STOP_RUN`] readings, from the start.
    fn set_stop_after(&mut self, ms: Option<u64>) {
        self.set_stop_rule(ms.map(|after_ms| StopRule {
            after_ms,
            from_byte: 0,
            run: STOP_RUN,
        }));
    }

    fn stopped_early(&self) -> bool {
        self.stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::reader::test_support::{books_of, read_all, reasons};
    use mend_core::ClockKind;
    use std::io::Cursor;

    fn items(bytes: &[u8]) -> (Vec<Item>, ByteCounts) {
        read_all(FrameReader::new(
            Cursor::new(bytes),
            0,
            books_of(bytes),
            None,
        ))
    }

    #[test]
    fn frame_log_bytes_are_all_accounted_for() {
        let h = Header::new(1, 1, 1_000, ClockKind::Unix, 0);
        let mut log = b"junk\0".to_vec();
        log.extend_from_slice(
            &mend_core::Frame::Reading(mend_core::WireReading {
                seq: 0,
                offset_ms: 0,
                celsius_delta: 1,
            })
            .to_buf()
            .unwrap(),
        );
        log.extend_from_slice(&Frame::Header(h).to_buf().unwrap());
        let r = Frame::Reading(mend_core::WireReading {
            seq: 1,
            offset_ms: 0,
            celsius_delta: 2,
        })
        .to_buf()
        .unwrap();
        log.extend_from_slice(&r);
        log.extend_from_slice(&r[..3]);
        let (v, bytes) = items(&log);
        assert_eq!(reasons(&v), ["bad_cobs", "no_header", "truncated"]);
        assert!(bytes.balanced(), "{bytes:?}");
        assert_eq!(bytes.read, log.len() as u64);
        assert!(v.iter().any(
            |i| matches!(i, Item::Reading(r) if r.reading.seq == 1 && r.reading.timestamp == 1_000)
        ));
    }
}
