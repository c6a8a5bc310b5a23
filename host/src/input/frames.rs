//! Reading a mend frame log.
//!
//! A frame log only makes sense with its session header: a reading frame carries its seq and
//! its offset from the schedule, not its sensor or time. The reader therefore tracks the
//! current [`Header`]; a reading with no usable header before it (the log was cut, or the
//! header was damaged or of an unknown version) is dead-lettered rather than guessed at.

use std::collections::VecDeque;
use std::io::{self, Read};

use indicatif::ProgressBar;
use mend_core::{ClockKind, DecodeEvent, Decoder, Frame, Header, SkipReason, Span, MAX_FRAME};

use super::books::ByteCounts;
use super::detect::Format;
use super::item::{DeadLetter, Item, Location, ReadingItem, StreamMeta};
use super::reader::{ItemReader, StopRule, BATCH, CHUNK, STOP_RUN};
use super::reason::DeadReason;
use super::salvage::{self, Ending, Piece};
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
    /// is looked into for whole frames (see [`FrameReader::recover`]).
    carry: Vec<u8>,
    /// The items after the one [`ItemReader::next_item`] returned, when a damaged frame gave
    /// more than one (whole frames found inside it, and what is still damaged).
    pending: VecDeque<Item>,
    /// The frame cut short at the end of this input is finished by the input that continues
    /// it (see [`super::rotation`]).
    cut_continues: bool,
    /// A frame cut short at the end of this input is still being written: left for the next
    /// run (see [`FrameReader::set_tail_may_grow`]).
    tail_may_grow: bool,
}

/// What the frames of a log put in force at its end: the session header and the place of the
/// next version-2 reading, and the frame cut short by its last byte, if any. A piece of the
/// same log given as another input (a log rotated mid-session, or split by size) reads its
/// frames before its own first header in this context, and finishes that frame (see
/// [`super::rotation`]).
#[derive(Clone, Debug)]
pub struct FrameContext {
    dec: Decoder,
    /// `None` for a context that only finishes a cut frame (see [`FrameContext::at_end_of`]).
    header: Option<Header>,
}

/// A header whose readings can be read on in a piece that continues its log: a version-2
/// reading is sealed to its header, a version-1 reading is not, so only version 2 carries.
fn carries(h: &Header) -> bool {
    h.period_ms > 0 && h.version >= 2
}

impl FrameContext {
    /// The context at the end of `tail`, the last bytes of a log, with the version-2 header
    /// still in force there. A version-1 reading is not sealed to its header, so only version
    /// 2 can be carried over: its readings decode only under their own header.
    ///
    /// With no such header, the context has no [`header`](Self::header) and only finishes
    /// the frame cut short by the last byte (for instance a piece that ends inside the header
    /// itself); `None` when there is no such frame either (`tail` ends on a delimiter).
    pub fn at_end_of(tail: &[u8]) -> Option<Self> {
        let mut dec: Decoder = Decoder::new();
        let mut header = None;
        for ev in dec.feed(tail) {
            match ev {
                DecodeEvent::Frame {
                    frame: Frame::Header(h),
                    ..
                } => header = carries(&h).then_some(h),
                DecodeEvent::Skipped {
                    reason: SkipReason::UnknownVersion,
                    ..
                } => header = None,
                _ => {}
            }
        }
        match header {
            Some(h) if dec.next_seq().is_some() => Some(Self {
                dec,
                header: Some(h),
            }),
            _ => {
                let cut = dec.unfinished().filter(|c| !c.is_empty())?;
                // A decoder that holds the cut frame and places no reading: nothing is in
                // force.
                let mut only: Decoder = Decoder::new();
                only.feed(cut).for_each(drop);
                Some(Self {
                    dec: only,
                    header: None,
                })
            }
        }
    }

    /// The context after `bytes`, frames of the same log without a header of their own,
    /// read in this one (their first frame finishing this one's [cut frame](Self::cut_frame)
    /// when `join`, and putting its header in force if it is one); `None` when they hold a
    /// header after all (of another version, or a zero period), or when they put no
    /// version-2 reading's place in force and end on a delimiter.
    pub fn through(&self, bytes: &[u8], join: bool) -> Option<Self> {
        let mut dec = self.decoder_at(0, join);
        let mut header = self.header;
        for (k, ev) in dec.feed(bytes).enumerate() {
            match ev {
                DecodeEvent::Frame {
                    frame: Frame::Header(h),
                    ..
                } if join && k == 0 && carries(&h) => header = Some(h),
                DecodeEvent::Frame {
                    frame: Frame::Header(_),
                    ..
                }
                | DecodeEvent::Skipped {
                    reason: SkipReason::UnknownVersion,
                    ..
                } => return None,
                _ => {}
            }
        }
        let ctx = Self { dec, header };
        let placed = ctx.header.is_some() && ctx.dec.next_seq().is_some();
        (placed || !ctx.cut_frame().is_empty()).then_some(ctx)
    }

    /// The session header in force, if any.
    pub fn header(&self) -> Option<Header> {
        self.header
    }

    /// The bytes after the log's last delimiter: a frame cut in two where the log was split,
    /// whose rest begins the piece that continues it (empty when the log ends on a delimiter).
    pub fn cut_frame(&self) -> &[u8] {
        self.dec.unfinished().unwrap_or_default()
    }

    /// A decoder at `offset` that places version-2 readings as the log's decoder would have
    /// after its last byte; when `join`, the first frame it completes is the log's
    /// [cut frame](Self::cut_frame) finished.
    pub fn decoder_at(&self, offset: u64, join: bool) -> Decoder {
        if join {
            self.dec.continued_at(offset)
        } else {
            self.dec.restarted_at(offset)
        }
    }

    /// Whether `head`, the start of another piece, finishes this log's cut frame: its first
    /// bytes, joined onto the cut frame, make a good frame.
    pub fn joins(&self, head: &[u8]) -> bool {
        if self.cut_frame().is_empty() {
            return false;
        }
        let mut dec = self.decoder_at(0, true);
        let first = dec.feed(head).next();
        matches!(first, Some(DecodeEvent::Frame { .. }))
    }

    /// How far (in seqs) the frame that `head`'s first bytes finish lies from this context's
    /// place: 0 for a header or where no place is in force; `None` when they do not make a
    /// good frame of it (see [`joins`](Self::joins)).
    pub fn joined_distance(&self, head: &[u8]) -> Option<u64> {
        if self.cut_frame().is_empty() {
            return None;
        }
        let mut dec = self.decoder_at(0, true);
        let expect = dec.next_seq();
        let first = dec.feed(head).next()?;
        match first {
            DecodeEvent::Frame {
                frame: Frame::Reading(r) | Frame::Replayed(r),
                ..
            } => Some(expect.map_or(0, |p| u64::from(r.seq.abs_diff(p)))),
            DecodeEvent::Frame { .. } => Some(0),
            DecodeEvent::Skipped { .. } => None,
        }
    }

    /// Whether the readings at the start of `head`, placed in this context, run right up to
    /// the first header of `head`: at least one of them, all placed, and that header of this
    /// context's session with a base seq above the highest of them by at most 64. A reading
    /// placed a multiple of 128 seqs away from its own (the wire format carries its low 7
    /// bits) lies at least 64 seqs from that header's base.
    pub fn leads_to_first_header(&self, head: &[u8]) -> bool {
        let Some(own) = self.header else {
            return false;
        };
        let mut dec = self.decoder_at(0, false);
        let mut highest: Option<u32> = None;
        for ev in dec.feed(head) {
            match ev {
                DecodeEvent::Frame {
                    frame: Frame::Reading(r) | Frame::Replayed(r),
                    ..
                } => highest = Some(highest.map_or(r.seq, |h| h.max(r.seq))),
                DecodeEvent::Frame {
                    frame: Frame::Header(h),
                    ..
                } => {
                    return h.sensor == own.sensor
                        && h.session == own.session
                        && highest.is_some_and(|top| h.base_seq > top && h.base_seq - top <= 64);
                }
                // A reading that does not decode here is not of this session.
                DecodeEvent::Skipped { reason, .. } if reason.is_bad_frame() => return false,
                _ => {}
            }
        }
        false
    }

    /// How many of the readings at the start of `head` (before its first header) decode in
    /// this context, its first frame finishing this one's cut frame when `join` (that frame
    /// not counted; a header then puts its place in force), and how many seqs the first of
    /// them lies from where it belongs (readings lost or reordered between the two pieces: a
    /// context of the same session further on places them too, but further from its place).
    pub fn fits(&self, head: &[u8], join: bool) -> (usize, u64) {
        let mut dec = self.decoder_at(0, join);
        let mut n = 0;
        // Where the piece's first reading belongs in this context: one past the context's
        // place, or past the frame joined (the last reading of the piece before, at its place
        // in any context of its session), or at the place of a header joined.
        let mut expect = dec.next_seq();
        let mut skipped = 0;
        let mut first = join;
        for &b in head {
            let Some(ev) = dec.push(b) else { continue };
            match ev {
                DecodeEvent::Frame {
                    frame: Frame::Header(_),
                    ..
                } if first => expect = dec.next_seq(),
                DecodeEvent::Frame {
                    frame: Frame::Header(_),
                    ..
                } => break,
                DecodeEvent::Frame {
                    frame: Frame::Reading(_) | Frame::Replayed(_),
                    ..
                } if first => expect = expect.map(|p| p.wrapping_add(1)),
                DecodeEvent::Frame {
                    frame: Frame::Reading(r) | Frame::Replayed(r),
                    ..
                } => {
                    if n == 0 {
                        skipped = expect.map_or(0, |p| u64::from(r.seq.abs_diff(p)));
                    }
                    n += 1;
                }
                _ => {}
            }
            first = false;
        }
        (n, skipped)
    }
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
            pending: VecDeque::new(),
            cut_continues: false,
            tail_may_grow: false,
        }
    }

    /// Reads the frames before this input's first header in `ctx`, the context at the end
    /// of the piece of the log this one continues; when `join`, its first bytes finish the
    /// frame cut short there. Called before the first byte is read.
    pub fn continue_from(&mut self, ctx: &FrameContext, join: bool) {
        self.dec = ctx.decoder_at(self.dec.position(), join);
        if let Some(h) = ctx.header {
            self.header = Some(h);
        }
    }

    /// The frame cut short at the end of this input is finished by the input that continues
    /// it: its bytes are booked as good, and the frame is read there.
    pub fn set_cut_continues(&mut self) {
        self.cut_continues = true;
    }

    /// The end of this input may still be being written (a checkpointed run that is not
    /// final): a frame cut short there is left for the next run, which reads it again, instead
    /// of being dead-lettered as `truncated`.
    pub fn set_tail_may_grow(&mut self) {
        self.tail_may_grow = true;
    }

    /// The end of the input: the frame cut short there, if any, not finished by the input
    /// that continues this one and not left for the next run.
    fn finish_input(&mut self) -> Option<DecodeEvent> {
        let ev = self.dec.finish()?;
        match ev {
            DecodeEvent::Skipped {
                span,
                reason: SkipReason::Truncated,
            } if self.cut_continues || self.tail_may_grow => {
                if self.cut_continues {
                    // The start of a good frame, counted where it ends.
                    self.counts.good += span.len();
                } else {
                    self.counts.held += span.len();
                }
                None
            }
            ev => Some(ev),
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

    /// Looks for whole frames inside a damaged frame worth a look (see [`salvage`]) that
    /// ends as `ending` says, its last byte the one before `end` of the current chunk: gives
    /// the events of its parts in order.
    #[cold]
    #[inline(never)]
    fn recover(
        &mut self,
        span: Span,
        reason: SkipReason,
        end: usize,
        ending: Ending,
    ) -> Vec<DecodeEvent> {
        let whole = DecodeEvent::Skipped { span, reason };
        // The frame's last bytes (delimiter included), from this chunk and the one before.
        let most = ending.last_bytes();
        let want = usize::try_from(span.len()).map_or(most, |n| n.min(most));
        let here = self.buf.get(..end).unwrap_or_default();
        let mut raw: Vec<u8> = Vec::with_capacity(want);
        if here.len() < want {
            let from_carry = (want - here.len()).min(self.carry.len());
            raw.extend_from_slice(&self.carry[self.carry.len() - from_carry..]);
        }
        raw.extend_from_slice(&here[here.len().saturating_sub(want - raw.len())..]);
        let Some(found) = salvage::look_inside(&self.dec, &raw, span, reason, ending) else {
            return vec![whole];
        };
        // The decoder goes on after the damaged frame, with what its frames put in force (a
        // header, or the place of a reading).
        self.dec = found.dec;
        found
            .pieces
            .into_iter()
            .map(|piece| match piece {
                Piece::Frame(f) => {
                    self.counts.recovered_items += 1;
                    DecodeEvent::Frame {
                        frame: f.frame,
                        span: f.span,
                    }
                }
                Piece::Damaged(span) => DecodeEvent::Skipped { span, reason },
            })
            .collect()
    }

    /// Adds the items of one decoder event to `out`, in order, `end` being where the
    /// event's bytes end in the current chunk: one, none, or more when whole frames were
    /// found inside a damaged frame.
    fn take(&mut self, ev: DecodeEvent, end: usize, ending: Ending, out: &mut impl Extend<Item>) {
        match ev {
            DecodeEvent::Skipped { span, reason } if salvage::worth_a_look(reason, ending) => {
                for ev in self.recover(span, reason, end, ending) {
                    out.extend(self.handle(ev));
                }
            }
            ev => out.extend(self.handle(ev)),
        }
    }

    /// [`take`](Self::take) into [`pending`](Self::pending).
    fn take_pending(&mut self, ev: DecodeEvent, end: usize, ending: Ending) {
        let mut pending = std::mem::take(&mut self.pending);
        self.take(ev, end, ending, &mut pending);
        self.pending = pending;
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
                    if let Some(ev) = self.finish_input() {
                        self.take(ev, 0, Ending::Cut, out);
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
                self.take(ev, pos, Ending::Delimiter, out);
            }
        }
        Ok(true)
    }

    fn next_item(&mut self) -> io::Result<Option<Item>> {
        if let Some(item) = self.pending.pop_front() {
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
                    if let Some(ev) = self.finish_input() {
                        self.take_pending(ev, 0, Ending::Cut);
                    }
                    return Ok(self.pending.pop_front());
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
                self.take_pending(ev, self.pos, Ending::Delimiter);
                if let Some(first) = self.pending.pop_front() {
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
    use crate::input::salvage::{
        HEADER_LEAD, READING_MAX, READING_TAGS, RECOVERED_AHEAD, RECOVERED_BEHIND,
    };
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

        // Whole, and in reads of a few bytes (a frame spread over many of them).
        let (got, reasons, _) = read_both_ways(&joined);
        assert_eq!(got, want);
        assert_eq!(reasons, ["bad_cobs", "bad_cobs"]);
    }

    /// Where each frame of `log` ends: the offsets of its delimiters.
    fn delimiters(log: &[u8]) -> Vec<usize> {
        log.iter()
            .enumerate()
            .filter_map(|(i, b)| (*b == 0).then_some(i))
            .collect()
    }

    /// Reads `log` item by item, and in batches from reads of a few bytes (a frame spread
    /// over several of them, and over the carry between reads) up to 1 MiB; checks that all
    /// give the same readings and reasons and balanced books, and returns the readings and
    /// the dead letters' reasons and spans.
    #[allow(clippy::type_complexity)]
    fn read_both_ways(
        log: &[u8],
    ) -> (
        Vec<(u32, u32, u32, u64, i32)>,
        Vec<&'static str>,
        Vec<(u64, u64)>,
    ) {
        let (v, books) = items(log);
        assert!(books.balanced(), "{books:?}");
        assert_eq!(books.read, log.len() as u64);
        // The batch path too: `items` reads item by item.
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            let mut r = FrameReader::new(Trickle { bytes: log, step }, 0, books_of(log), None);
            let mut got = Vec::new();
            while r.fill(&mut got).unwrap() {}
            assert_eq!(readings(&got), readings(&v), "reads of {step} bytes");
            assert_eq!(reasons(&got), reasons(&v), "reads of {step} bytes");
            assert!(r.bytes().balanced(), "{:?}", r.bytes());
        }
        let spans = v
            .iter()
            .filter_map(|i| match i {
                Item::Dead(d) => match d.location {
                    Location::Bytes { offset, length } => Some((offset, length)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        (readings(&v), reasons(&v), spans)
    }

    /// A link that loses the zero between two frames loses neither of them, wherever it
    /// was: between the header and a reading, or between two readings.
    #[test]
    fn a_lost_delimiter_loses_neither_frame() {
        let log = capture(1, 5, 12);
        let want = readings(&items(&log).0);
        let ends = delimiters(&log);
        let last = ends[ends.len() - 1];
        for &at in &ends {
            let mut lost = log.clone();
            lost.remove(at);
            let (got, reasons, _) = read_both_ways(&lost);
            assert_eq!(got, want, "delimiter at {at} lost");
            assert!(reasons.is_empty(), "delimiter at {at} lost: {reasons:?}");
            // The last frame, cut before its delimiter, is found whole alone.
            let found = if at == last { 1 } else { 2 };
            assert_eq!(
                items(&lost).1.recovered_items,
                found,
                "delimiter at {at} lost"
            );
        }
        // Two, three and four in a row: the frames between are found as well.
        for run in 2..=4 {
            for from in 0..ends.len() - run {
                let mut lost = log.clone();
                for &at in ends[from..from + run].iter().rev() {
                    lost.remove(at);
                }
                let (got, reasons, _) = read_both_ways(&lost);
                assert_eq!(got, want, "{run} delimiters from {from} lost");
                assert!(reasons.is_empty(), "{run} from {from}: {reasons:?}");
                assert_eq!(items(&lost).1.recovered_items, run as u64 + 1);
            }
        }
    }

    /// A whole frame that lost its delimiter, between a torn frame before it and a torn
    /// frame after it (with a whole one after that), is kept, however much of each was
    /// torn off.
    #[test]
    fn a_whole_frame_between_two_torn_ones_is_kept() {
        let log = capture(1, 5, 12);
        let want = readings(&items(&log).0);
        let ends = delimiters(&log);
        // Seqs 3 and 5 lose their delimiter and at least one byte before it; 4 only its
        // delimiter.
        let (three, five) = (ends[4] - ends[3], ends[6] - ends[5]);
        let kept: Vec<_> = want
            .iter()
            .filter(|r| ![3, 5].contains(&r.2))
            .copied()
            .collect();
        for a in 2..three {
            for b in 2..five {
                let mut torn = log.clone();
                torn.drain(ends[6] + 1 - b..=ends[6]);
                torn.remove(ends[5]);
                torn.drain(ends[4] + 1 - a..=ends[4]);
                let (got, _, spans) = read_both_ways(&torn);
                assert_eq!(got, kept, "torn by {a} and {b}");
                let dead: u64 = spans.iter().map(|s| s.1).sum();
                assert_eq!(dead as usize, three - a + five - b, "torn by {a} and {b}");
            }
        }
    }

    /// A delimiter changed into another byte costs that byte alone.
    #[test]
    fn a_corrupted_delimiter_costs_that_byte_alone() {
        let log = capture(1, 5, 12);
        let want = readings(&items(&log).0);
        let ends = delimiters(&log);
        for &at in &ends[..ends.len() - 1] {
            for byte in [0x01, 0x07, 0x08, 0x55, 0xFF] {
                let mut bad = log.clone();
                bad[at] = byte;
                let (got, reasons, spans) = read_both_ways(&bad);
                assert_eq!(got, want, "delimiter at {at} made {byte:#x}");
                assert_eq!(spans, [(at as u64, 1)], "delimiter at {at} made {byte:#x}");
                assert_eq!(reasons.len(), 1);
            }
        }
    }

    /// A reading torn short and joined onto the next frame: the torn bytes are the dead
    /// letter, and the next reading is kept.
    #[test]
    fn a_reading_joined_onto_a_torn_frame_is_kept() {
        let log = capture(1, 5, 12);
        let want = readings(&items(&log).0);
        let ends = delimiters(&log);
        // Reading 4 loses its last two bytes and its delimiter.
        let (start, end) = (ends[4] + 1, ends[5]);
        let mut torn = log[..end - 2].to_vec();
        torn.extend_from_slice(&log[end + 1..]);
        let (got, reasons, spans) = read_both_ways(&torn);
        let mut without = want.clone();
        without.remove(4);
        assert_eq!(got, without);
        assert_eq!(reasons.len(), 1);
        assert_eq!(spans, [(start as u64, (end - 2 - start) as u64)]);
    }

    /// The header of sensor 1's session 5, a reading a second from 2026-01-01.
    fn header_5() -> Header {
        Header::new(1, 5, 1_000, ClockKind::Unix, 1_767_225_600_000)
    }

    /// A live reading at `seq`, on time, at the header's temperature.
    fn flat_reading(seq: u32) -> Frame {
        Frame::Reading(mend_core::WireReading {
            seq,
            offset_ms: 0,
            celsius_delta: 0,
        })
    }

    /// A reading found inside a damaged frame is taken only if it is at most
    /// [`RECOVERED_AHEAD`] seqs ahead of the one expected: further, bytes that happen to pass
    /// for a reading are likelier than the frames a link drops in a row.
    #[test]
    fn a_reading_far_ahead_is_not_taken_from_a_damaged_frame() {
        let (h, reading) = (header_5(), flat_reading);
        for (ahead, taken) in [(RECOVERED_AHEAD, true), (RECOVERED_AHEAD + 1, false)] {
            let mut enc = mend_core::Encoder::new();
            let mut log = enc.to_buf(&Frame::Header(h)).unwrap().to_vec();
            for seq in 0..5 {
                log.extend_from_slice(&enc.to_buf(&reading(seq)).unwrap());
            }
            // Seq 5 torn, and `ahead` seqs after it one joined on.
            let torn = enc.to_buf(&reading(5)).unwrap().to_vec();
            log.extend_from_slice(&torn[..torn.len() - 3]);
            let far = 5 + ahead;
            log.extend_from_slice(&enc.to_buf(&reading(far)).unwrap());
            log.extend_from_slice(&enc.to_buf(&reading(far + 1)).unwrap());
            let (got, reasons, _) = read_both_ways(&log);
            let seqs: Vec<u32> = got.iter().map(|r| r.2).collect();
            let mut want: Vec<u32> = (0..5).collect();
            if taken {
                want.push(far);
            }
            want.push(far + 1);
            assert_eq!(seqs, want, "{ahead} ahead");
            assert_eq!(reasons.len(), 1);
        }
    }

    /// A reading the link delayed or sent again, found inside a damaged frame, is taken if it
    /// is at most [`RECOVERED_BEHIND`] seqs behind the one expected.
    #[test]
    fn a_reading_a_little_behind_is_taken_from_a_damaged_frame() {
        let (h, reading) = (header_5(), flat_reading);
        for (behind, taken) in [
            (1, true),
            (RECOVERED_BEHIND, true),
            (RECOVERED_BEHIND + 1, false),
        ] {
            let mut enc = mend_core::Encoder::new();
            let mut log = enc.to_buf(&Frame::Header(h)).unwrap().to_vec();
            for seq in 0..20 {
                log.extend_from_slice(&enc.to_buf(&reading(seq)).unwrap());
            }
            // A copy of an earlier reading, its delimiter lost, then seq 20.
            let late = 20 - behind;
            let copy = enc.to_buf(&reading(late)).unwrap().to_vec();
            log.extend_from_slice(&copy[..copy.len() - 1]);
            log.extend_from_slice(&enc.to_buf(&reading(20)).unwrap());
            log.extend_from_slice(&enc.to_buf(&reading(21)).unwrap());
            let (got, reasons, _) = read_both_ways(&log);
            let seqs: Vec<u32> = got.iter().map(|r| r.2).collect();
            let mut want: Vec<u32> = (0..20).collect();
            if taken {
                want.push(late);
            }
            want.extend([20, 21]);
            assert_eq!(seqs, want, "{behind} behind");
            assert_eq!(reasons.len(), usize::from(!taken), "{behind} behind");
        }
    }

    /// A run of lost delimiters: the frame at the end is found after the frames before it,
    /// although it is further ahead of what was expected before them than a frame the link
    /// dropped would be. (Up to what fits in one frame's length: a longer run is oversized,
    /// and only its last [`MAX_FRAME`](mend_core::MAX_FRAME) bytes are looked into.)
    #[test]
    fn a_run_of_lost_delimiters_loses_no_frame() {
        let log = capture(1, 5, 30);
        let want = readings(&items(&log).0);
        let ends = delimiters(&log);
        for run in [RECOVERED_AHEAD as usize + 2, RECOVERED_AHEAD as usize + 3] {
            let mut joined = log.clone();
            for &at in ends[10..10 + run].iter().rev() {
                joined.remove(at);
            }
            let (got, reasons, _) = read_both_ways(&joined);
            assert_eq!(got, want, "{run} delimiters lost");
            assert!(reasons.is_empty(), "{run} delimiters lost: {reasons:?}");
        }
    }

    /// Every version-2 reading frame starts with a COBS code byte and then its tag, one of
    /// [`READING_TAGS`], and is at most [`READING_MAX`] bytes long before its delimiter.
    #[test]
    fn a_reading_frame_has_its_tag_second() {
        let h = Header::new(1, 1, 1_000, ClockKind::Unix, 0).with_base(0);
        for seq in [0, 1, 63, 64, 127, 128, 1_000, u32::MAX] {
            for offset_ms in [0, 1, -1, i32::MAX, i32::MIN] {
                for celsius_delta in [0, 1, -1, i32::MAX, i32::MIN] {
                    let w = mend_core::WireReading {
                        seq,
                        offset_ms,
                        celsius_delta,
                    };
                    for (tag, f) in [(7, Frame::Reading(w)), (8, Frame::Replayed(w))] {
                        let mut enc = mend_core::Encoder::new();
                        enc.to_buf(&Frame::Header(h.with_base(seq))).unwrap();
                        let b = enc.to_buf(&f).unwrap();
                        assert_eq!(b[1], tag, "{f:?}");
                        assert!(READING_TAGS.contains(&b[1]));
                        assert!(b.len() - 1 <= READING_MAX, "{f:?}: {} bytes", b.len());
                    }
                }
            }
        }
    }

    /// Only headers and version-2 readings are taken from inside a damaged frame: a
    /// version-1 reading is checked by its CRC alone, and stays damaged with the rest.
    #[test]
    fn a_version_1_reading_is_not_taken_from_a_damaged_frame() {
        fn v1_reading(seq: u32) -> Vec<u8> {
            let w = mend_core::WireReading {
                seq,
                offset_ms: 0,
                celsius_delta: 0,
            };
            let mut buf = [0u8; 32];
            let mut body = postcard::to_slice(&(1u8, w), &mut buf).unwrap().to_vec();
            body.extend_from_slice(&mend_core::CRC.checksum(&body).to_le_bytes());
            // COBS by the book: these frames are shorter than 254 bytes.
            let mut out = Vec::new();
            for block in body.split(|b| *b == 0) {
                out.push(u8::try_from(block.len() + 1).unwrap());
                out.extend_from_slice(block);
            }
            out.push(0);
            out
        }
        let h = Header::new(1, 5, 1_000, ClockKind::Unix, 0);
        let mut log = mend_core::Encoder::new()
            .to_buf(&Frame::Header(h))
            .unwrap()
            .to_vec();
        for seq in 0..6 {
            log.extend(v1_reading(seq));
        }
        let (whole, _, _) = read_both_ways(&log);
        assert_eq!(whole.len(), 6, "version-1 readings are read");
        let at = delimiters(&log)[3];
        log.remove(at);
        let (got, reasons, _) = read_both_ways(&log);
        let seqs: Vec<u32> = got.iter().map(|r| r.2).collect();
        assert_eq!(seqs, [0, 1, 4, 5]);
        assert_eq!(reasons.len(), 1);
    }
}
