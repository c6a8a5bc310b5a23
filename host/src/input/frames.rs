//! Reading a mend frame log.
//!
//! A frame log only makes sense with its session header: a reading frame carries its seq and
//! its offset from the schedule, not its sensor or time. The reader therefore tracks the
//! current [`Header`]; a reading with no usable header before it (the log was cut, or the
//! header was damaged or of an unknown version) is dead-lettered rather than guessed at.

use std::io::{self, Read};

use indicatif::ProgressBar;
use mend_core::{ClockKind, DecodeEvent, Decoder, Frame, Header, SkipReason, Span, MAX_FRAME};

use super::books::ByteCounts;
use super::detect::Format;
use super::item::{DeadLetter, Item, Location, ReadingItem, StreamMeta};
use super::reader::{ItemReader, StopRule, BATCH, CHUNK, STOP_RUN};
use super::reason::DeadReason;
use crate::text::timefmt::{LAST_TIME, MAX_TIME_MS};

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
    /// The last bytes of the chunk before this one: where a damaged frame that began there
    /// is looked into for a header (see [`FrameReader::recover`]).
    carry: Vec<u8>,
    /// The item after the one [`ItemReader::next_item`] returned, when a damaged frame gave
    /// two (its damaged part, and a header recovered from its end).
    pending: Option<Item>,
}

/// The first byte of every header frame on the wire.
const HEADER_LEAD: u8 = 1;

/// A damaged frame, and the header found at its end if one was.
enum Damaged {
    /// Nothing in it could be used.
    Whole(DecodeEvent),
    /// Its first bytes, then a whole header frame that was appended to them: a frame torn
    /// off at the end of one capture, with the next capture joined on without a delimiter.
    Split(DecodeEvent, DecodeEvent),
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
            carry: Vec::with_capacity(MAX_FRAME + 1),
            pending: None,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        // The last bytes read so far, however small the reads (a pipe may give a few bytes
        // at a time).
        let chunk = self.buf.get(..self.len).unwrap_or_default();
        self.carry
            .extend_from_slice(&chunk[chunk.len().saturating_sub(MAX_FRAME + 1)..]);
        let excess = self.carry.len().saturating_sub(MAX_FRAME + 1);
        self.carry.drain(..excess);
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

    /// Looks for a header frame at the end of a damaged frame whose delimiter is the byte
    /// before `end` of the current chunk.
    ///
    /// A frame torn off at the end of one capture, and the next capture joined on without a
    /// delimiter (or any bytes without a zero before a capture), make one damaged frame of the
    /// torn bytes and the next capture's header. Lost, that header would take every reading
    /// after it until the next one, since a version-2 reading is checked against its header.
    /// So the end of a damaged frame is decoded as a frame of its own, from each of its last
    /// [`MAX_FRAME`] bytes on, longest first: the first that decodes as a whole header, CRC
    /// and all, is that header (its CRC alone passes bytes that are not once in 65 536
    /// tries, and its tag, version and fields must decode too), and it is put in force as if
    /// a delimiter had come before it. Anything else found there
    /// is not trusted: a reading checks only against its header, and the bytes stay damaged.
    #[cold]
    #[inline(never)]
    fn recover(&mut self, span: Span, reason: SkipReason, end: usize) -> Damaged {
        let whole = DecodeEvent::Skipped { span, reason };
        if !matches!(
            reason,
            SkipReason::BadCrc
                | SkipReason::BadCobs
                | SkipReason::Undecodable
                | SkipReason::Oversized
        ) {
            return Damaged::Whole(whole);
        }
        // The frame's last bytes (delimiter included), from this chunk and the one before.
        let want = usize::try_from(span.len()).map_or(MAX_FRAME + 1, |n| n.min(MAX_FRAME + 1));
        let here = self.buf.get(..end).unwrap_or_default();
        let mut raw: Vec<u8> = Vec::with_capacity(want);
        if here.len() < want {
            let from_carry = (want - here.len()).min(self.carry.len());
            raw.extend_from_slice(&self.carry[self.carry.len() - from_carry..]);
        }
        raw.extend_from_slice(&here[here.len().saturating_sub(want - raw.len())..]);
        // Offsets of `raw` in the input.
        let first = span.end - raw.len() as u64;
        // From the second byte of the damaged frame on: the whole of it was tried already.
        let skip = usize::from(first == span.start);
        for k in skip..raw.len().saturating_sub(1) {
            // A header frame starts with its tag, 0, which COBS writes as the code byte 1
            // (`a_header_frame_starts_with_the_code_byte_1`): only such a byte can begin one.
            if raw[k] != HEADER_LEAD {
                continue;
            }
            let mut dec: Decoder = Decoder::at(first + k as u64);
            let mut got = None;
            for &b in &raw[k..] {
                got = dec.push(b);
            }
            if let Some(DecodeEvent::Frame {
                frame: frame @ Frame::Header(_),
                span: at,
            }) = got
            {
                // The header's decoder goes on from here, with the header in force.
                self.dec = dec;
                let torn = Span {
                    start: span.start,
                    end: at.start,
                };
                return Damaged::Split(
                    DecodeEvent::Skipped { span: torn, reason },
                    DecodeEvent::Frame { frame, span: at },
                );
            }
        }
        Damaged::Whole(whole)
    }

    /// The items of one decoder event, in order, `end` being where the event's delimiter ends
    /// in the current chunk: one, none, or two when a damaged frame ends in a header.
    fn take(&mut self, ev: DecodeEvent, end: usize) -> [Option<Item>; 2] {
        match ev {
            DecodeEvent::Skipped { span, reason } => match self.recover(span, reason, end) {
                Damaged::Whole(ev) => [self.handle(ev), None],
                Damaged::Split(torn, header) => [self.handle(torn), self.handle(header)],
            },
            ev => [self.handle(ev), None],
        }
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
                            // Every time a row shows is RFC 3339, whose years end at 9999.
                            Ok(reading) if reading.timestamp > MAX_TIME_MS => Some(self.dead(
                                span,
                                DeadReason::BadTimestamp,
                                format!(
                                    "reading seq {}: its time, {} ms, is after {LAST_TIME}, \
                                     the last time RFC 3339 can write",
                                    w.seq, reading.timestamp
                                ),
                            )),
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
            // The chunk byte by byte, as far as it goes, the batch has room, or a frame is
            // damaged (looked into below, outside this loop).
            let mut pos = self.pos;
            let mut damaged = None;
            while let Some(&b) = self.buf.get(pos).filter(|_| pos < self.len) {
                pos += 1;
                if let Some(ev) = self.dec.push(b) {
                    if !matches!(ev, DecodeEvent::Frame { .. }) {
                        damaged = Some(ev);
                        break;
                    }
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
            if let Some(ev) = damaged {
                out.extend(self.take(ev, pos).into_iter().flatten());
            }
        }
        Ok(true)
    }

    fn next_item(&mut self) -> io::Result<Option<Item>> {
        if let Some(item) = self.pending.take() {
            return Ok(Some(item));
        }
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
                let end = self.pos;
                let mut items = self.take(ev, end).into_iter().flatten();
                if let Some(first) = items.next() {
                    self.pending = items.next();
                    return Ok(Some(first));
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

    /// A capture of `n` readings of `sensor` session `session`, as a node sends it.
    fn capture(sensor: u32, session: u32, n: u32) -> Vec<u8> {
        let mut enc = mend_core::Encoder::new();
        let h = Header::new(sensor, session, 1_000, ClockKind::Unix, 1_767_225_600_000);
        let mut log = enc.to_buf(&Frame::Header(h)).unwrap().to_vec();
        for seq in 0..n {
            let w = mend_core::WireReading {
                seq,
                offset_ms: 0,
                celsius_delta: i32::try_from(seq).unwrap() * 3,
            };
            log.extend_from_slice(&enc.to_buf(&Frame::Reading(w)).unwrap());
        }
        log
    }

    /// Gives at most `step` bytes a read, as a pipe may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// The readings of `v`: sensor, session, seq, time, value.
    fn readings(v: &[Item]) -> Vec<(u32, u32, u32, u64, i32)> {
        v.iter()
            .filter_map(|i| match i {
                Item::Reading(r) => {
                    let x = r.reading;
                    Some((x.sensor, x.session, x.seq, x.timestamp, x.celsius.to_bits()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_header_frame_starts_with_the_code_byte_1() {
        for (sensor, session, period) in [(0, 0, 1), (1, 1, 1_000), (u32::MAX, 77, 250)] {
            for base in [0, 1, 300, u32::MAX] {
                let h = Header::new(sensor, session, period, ClockKind::Boot, 9).with_base(base);
                let b = mend_core::Encoder::new().to_buf(&Frame::Header(h)).unwrap();
                assert_eq!(b[0], HEADER_LEAD, "{h:?}");
            }
        }
    }

    /// A capture torn in its last frame, with another joined on without a delimiter: the
    /// torn bytes are dead-lettered and the second capture's header is kept, so none of its
    /// readings is lost, however the bytes arrive.
    #[test]
    fn a_header_joined_onto_a_torn_frame_is_kept() {
        let a = capture(1, 5, 40);
        let b = capture(1, 6, 40);
        // Session 5 loses its last frame's second half and its delimiter.
        let torn = a.len() - 4;
        let mut joined = a[..torn].to_vec();
        joined.extend_from_slice(&b);
        // And a capture after junk without a zero.
        joined.extend_from_slice(b"\x11\x22\x33junk");
        joined.extend_from_slice(&capture(2, 1, 10));
        let mut want = readings(&items(&a).0);
        want.pop();
        want.extend(readings(&items(&b).0));
        want.extend(readings(&items(&capture(2, 1, 10)).0));
        assert_eq!(want.len(), 39 + 40 + 10);

        let (v, books) = items(&joined);
        assert_eq!(readings(&v), want);
        assert_eq!(reasons(&v), ["bad_cobs", "bad_cobs"]);
        assert!(books.balanced(), "{books:?}");
        assert_eq!(books.read, joined.len() as u64);

        // The batch path, and reads of a few bytes (a frame spread over many of them).
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            let mut r = FrameReader::new(
                Trickle {
                    bytes: &joined,
                    step,
                },
                0,
                books_of(&joined),
                None,
            );
            let mut got = Vec::new();
            while r.fill(&mut got).unwrap() {}
            assert_eq!(readings(&got), want, "reads of {step} bytes");
            assert_eq!(
                reasons(&got),
                ["bad_cobs", "bad_cobs"],
                "reads of {step} bytes"
            );
            assert!(r.bytes().balanced(), "{:?}", r.bytes());
        }
    }

    /// Only a header is taken from the end of a damaged frame: a reading there could be
    /// checked only against a header, and stays damaged with the rest.
    #[test]
    fn nothing_but_a_header_is_taken_from_a_damaged_frame() {
        let a = capture(1, 5, 10);
        let mut log = a[..a.len() - 1].to_vec(); // the last reading loses its delimiter
        let tail = capture(1, 5, 12);
        let next = &tail[a.len()..]; // reading 10's frame, then 11's
        log.extend_from_slice(next);
        let (v, books) = items(&log);
        let seqs: Vec<u32> = readings(&v).iter().map(|r| r.2).collect();
        assert_eq!(seqs, (0..9).chain([11]).collect::<Vec<_>>());
        assert_eq!(reasons(&v).len(), 1);
        assert!(books.balanced(), "{books:?}");
    }
}
