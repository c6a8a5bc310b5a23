//! The edge pipeline: everything a sensor node does between taking a sample and handing bytes
//! to its link, in one type with no hidden allocation.
//!
//! validate → reorder/dedup → encode → ring. The same type runs in an interrupt-driven
//! firmware (push from the sampling tick, poll frames from the UART-ready path) and in a host
//! loop (the simulator and `mend generate` use it), which is what makes the bytes of the two
//! builds comparable one for one.
//!
//! Its size is `size_of::<EdgePipeline<N, Q, K>>()`: `N` held readings, `Q` encoded frames of
//! [`MAX_FRAME`](crate::MAX_FRAME) bytes, `K` validator history values, and a few counters.
//! The README lists measured sizes for the configurations the firmware and the host use.

use crate::counters::Counters;
use crate::frame::{
    ClockKind, EncodeError, Encoder, Fault, FaultKind, Frame, FrameBuf, Header, Heartbeat, Stats,
};
use crate::quality::{Flags, Quality};
use crate::reading::Reading;
use crate::reorder::{Admit, Release, Reorder, ReorderError};
use crate::ring::{Overflow, Ring};
use crate::validate::{ValidateConfig, ValidateConfigError, Validator};

/// How an edge pipeline is set up.
///
/// # Examples
/// ```
/// use mend_core::EdgeConfig;
/// let c = EdgeConfig::new(7, 1, 1_000);
/// assert_eq!(c.header.period_ms, 1_000);
/// assert_eq!(c.lateness_ms, 2_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeConfig {
    /// The session header: sensor, session, period, clock.
    pub header: Header,
    /// The validation limits.
    pub validate: ValidateConfig,
    /// How long the reorder buffer waits for stragglers, in milliseconds.
    pub lateness_ms: u64,
    /// A stats frame (and a repeated header) after this many readings; 0 for only at flush.
    /// A version-2 header is also repeated before any reading that lands 64 or more seqs
    /// from the one before it, so that every reading frame carries its seq in one byte.
    pub stats_every: u32,
    /// What the ring does when full.
    pub overflow: Overflow,
}

impl EdgeConfig {
    /// Defaults for a node with a boot clock: default validation, a lateness of two periods,
    /// stats every 60 readings, and a ring that drops its oldest frame when full.
    pub const fn new(sensor: u32, session: u32, period_ms: u32) -> Self {
        Self {
            header: Header::new(sensor, session, period_ms, ClockKind::Boot, 0),
            validate: ValidateConfig::DEFAULT,
            lateness_ms: 2 * period_ms as u64,
            stats_every: 60,
            overflow: Overflow::DropOldest,
        }
    }
}

/// Why a reading was refused at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EdgeReject {
    /// The reading is not of this pipeline's sensor and session.
    WrongSession,
    /// The timestamp is too far off the schedule to encode.
    OffSchedule,
    /// The reorder buffer could not check it for duplicates.
    Reorder(ReorderError),
}

/// What happened to a pushed reading.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, EdgeConfig, EdgePipeline, EdgeReject, Flags, PushOutcome, Reading};
/// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
/// let r = Reading::new(7, 1, 0, 0, Celsius::from_num(52));
/// assert_eq!(edge.push(r), PushOutcome::Taken(Flags::EMPTY));
/// assert_eq!(edge.push(r), PushOutcome::Duplicate(Flags::EMPTY));
/// let stranger = Reading { sensor: 8, ..r };
/// assert_eq!(edge.push(stranger).rejected(), Some(EdgeReject::WrongSession));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushOutcome {
    /// Validated (with these flags) and taken: held for reordering, or already released.
    Taken(Flags),
    /// Validated (with these flags), then found to repeat a reading taken before: counted,
    /// not sent again.
    Duplicate(Flags),
    /// Refused, and counted as rejected.
    Rejected {
        /// Why.
        why: EdgeReject,
        /// The validator's flags; empty when it was refused before validation.
        flags: Flags,
    },
}

impl PushOutcome {
    /// The validator's flags (empty when the reading was refused before validation).
    pub const fn flags(&self) -> Flags {
        match self {
            Self::Taken(flags) | Self::Duplicate(flags) | Self::Rejected { flags, .. } => *flags,
        }
    }

    /// Why the reading was refused; `None` when it was taken or was a duplicate.
    pub const fn rejected(&self) -> Option<EdgeReject> {
        match self {
            Self::Rejected { why, .. } => Some(*why),
            _ => None,
        }
    }
}

/// validate → reorder/dedup → encode → ring, with `N` readings in the reorder buffer, `Q`
/// frames in the ring and `K` values of validator history.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, DecodeEvent, Decoder, EdgeConfig, EdgePipeline, Frame, Reading};
/// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
/// let readings = [0u32, 2, 1].map(|seq| Reading::new(7, 1, seq, u64::from(seq) * 1_000, Celsius::from_num(52)));
/// let mut wire = Vec::new();
/// edge.drain(readings, |frame| wire.extend_from_slice(frame));
/// let mut dec: Decoder = Decoder::new();
/// let seqs: Vec<u32> = dec.feed(&wire).filter_map(|e| match e {
///     DecodeEvent::Frame { frame: Frame::Reading(r), .. } => Some(r.seq),
///     _ => None,
/// }).collect();
/// assert_eq!(seqs, [0, 1, 2], "reordered at the edge");
/// assert!(edge.counters().balanced(0));
/// ```
#[derive(Clone, Debug)]
pub struct EdgePipeline<const N: usize, const Q: usize, const K: usize = 32> {
    config: EdgeConfig,
    validator: Validator<K>,
    reorder: Reorder<N>,
    ring: Ring<Q>,
    encoder: Encoder,
    rejected: u32,
    doubtful: u32,
    bad: u32,
    faults: u32,
    frames_sent: u32,
    log_dropped: u32,
    since_stats: u32,
    started: bool,
    /// The schedule (`epoch + seq × period`) of the last reading checked and of the last one
    /// released: readings in order get the next one by an addition. A Cortex-M0 has no
    /// 64-bit multiply.
    checked: Option<(u32, u64)>,
    released: Option<(u32, u64)>,
}

/// `epoch + seq × period` from the schedule of the seq before, or afresh.
#[inline(always)]
fn next_schedule(last: Option<(u32, u64)>, seq: u32, h: &Header) -> Option<u64> {
    match last {
        Some((prev, at)) if prev.checked_add(1) == Some(seq) => {
            at.checked_add(u64::from(h.period_ms))
        }
        _ => h.schedule(seq),
    }
}

impl<const N: usize, const Q: usize, const K: usize> EdgePipeline<N, Q, K> {
    /// A pipeline, or why its validation limits cannot be used.
    pub fn try_new(config: EdgeConfig) -> Result<Self, ValidateConfigError> {
        let validator = Validator::try_new(config.validate)?;
        Ok(Self {
            config,
            validator,
            reorder: Reorder::new(config.lateness_ms),
            ring: Ring::new(config.overflow),
            encoder: Encoder::new(),
            rejected: 0,
            doubtful: 0,
            bad: 0,
            faults: 0,
            frames_sent: 0,
            log_dropped: 0,
            since_stats: 0,
            started: false,
            checked: None,
            released: None,
        })
    }

    /// The configuration in use.
    pub const fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Queues the session header, once; every other call does it too if it has not happened
    /// yet. A node calls it at boot so that the header leaves before the first sample.
    pub fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.queue(&Frame::Header(self.config.header));
        }
    }

    /// Encodes `frame` straight into the ring's next slot. A full ring counts what it gives
    /// up (see [`Ring::dropped`]).
    fn queue(&mut self, frame: &Frame) {
        let encoder = &mut self.encoder;
        match self.ring.push_with(|slot| encoder.encode_into(frame, slot)) {
            Ok(_) => {}
            // Every frame kind fits MAX_FRAME (tested), and every reading is placed by a
            // header first; count a failure anyway rather than panic.
            Err(EncodeError::BufferTooSmall | EncodeError::UnknownVersion)
            | Err(EncodeError::NeedsHeader) => self.rejected = self.rejected.saturating_add(1),
        }
    }

    /// Queues the session header, based at the seq a decoder expects next.
    fn queue_header(&mut self) {
        let h = &self.config.header;
        let base = self.encoder.next_seq().unwrap_or(h.base_seq);
        self.queue(&Frame::Header(h.with_base(base)));
    }

    /// Queues a reading frame, after a header based at its seq when the decoder would not
    /// place it from the readings before.
    fn queue_reading(&mut self, w: crate::frame::WireReading) {
        let h = &self.config.header;
        if h.version >= 2 && !self.encoder.places(w.seq) {
            self.queue(&Frame::Header(h.with_base(w.seq)));
        }
        self.queue(&Frame::Reading(w));
    }

    fn send_release(&mut self, release: Release) {
        // Every held reading passed `Header::to_wire` when it was pushed, so its schedule
        // fits a u64.
        let h = &self.config.header;
        let r = &release.reading;
        let w = match next_schedule(self.released, r.seq, h) {
            Some(at) => {
                self.released = Some((r.seq, at));
                h.wire_at(at, r)
            }
            None => h.wire_checked_before(r),
        };
        self.queue_reading(w);
    }

    /// Takes one sample.
    pub fn push(&mut self, reading: Reading) -> PushOutcome {
        self.start();
        let refuse = |why| PushOutcome::Rejected {
            why,
            flags: Flags::EMPTY,
        };
        let h = &self.config.header;
        if reading.sensor != h.sensor || reading.session != h.session {
            self.rejected = self.rejected.saturating_add(1);
            return refuse(EdgeReject::WrongSession);
        }
        let scheduled = next_schedule(self.checked, reading.seq, h);
        if h.offset_from(scheduled, reading.seq, reading.timestamp)
            .is_err()
        {
            self.rejected = self.rejected.saturating_add(1);
            return refuse(EdgeReject::OffSchedule);
        }
        self.checked = scheduled.map(|at| (reading.seq, at));
        let flags = self.validator.check(&reading);
        match flags.quality() {
            Quality::Good => {}
            Quality::Doubtful => self.doubtful = self.doubtful.saturating_add(1),
            Quality::Bad => self.bad = self.bad.saturating_add(1),
        }
        let outcome = match self.reorder.push(reading) {
            Admit::Held => PushOutcome::Taken(flags),
            Admit::Duplicate => PushOutcome::Duplicate(flags),
            Admit::Rejected(e) => PushOutcome::Rejected {
                why: EdgeReject::Reorder(e),
                flags,
            },
            Admit::Released(r) => {
                self.send_release(r);
                PushOutcome::Taken(flags)
            }
        };
        while let Some(r) = self.reorder.pop_ready() {
            self.send_release(r);
        }
        self.since_stats = self.since_stats.saturating_add(1);
        if self.config.stats_every > 0 && self.since_stats >= self.config.stats_every {
            self.queue_stats();
        }
        outcome
    }

    /// Records a sample that could not be taken: counts it and queues a fault frame.
    pub fn sensor_fault(&mut self, seq: u32, kind: FaultKind) {
        self.start();
        self.faults = self.faults.saturating_add(1);
        self.queue(&Frame::Fault(Fault { seq, kind }));
    }

    /// Queues a heartbeat: the node calls it at the end of a period in which it sent
    /// nothing else, with the seq it will sample next.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{DecodeEvent, Decoder, EdgeConfig, EdgePipeline, Frame, Heartbeat};
    /// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
    /// edge.heartbeat(3);
    /// let mut wire = Vec::new();
    /// while edge.poll_frame_with(|f| wire.extend_from_slice(f)).is_some() {}
    /// let mut dec: Decoder = Decoder::new();
    /// let last = dec.feed(&wire).last();
    /// assert!(matches!(last, Some(DecodeEvent::Frame {
    ///     frame: Frame::Heartbeat(Heartbeat { session: 1, seq: 3 }), ..
    /// })));
    /// ```
    pub fn heartbeat(&mut self, seq: u32) {
        self.start();
        let session = self.config.header.session;
        self.queue(&Frame::Heartbeat(Heartbeat { session, seq }));
    }

    fn queue_stats(&mut self) {
        self.since_stats = 0;
        let stats = self.stats();
        self.queue(&Frame::Stats(stats));
        self.queue_header();
    }

    /// The next encoded frame for the link, oldest first.
    pub fn poll_frame(&mut self) -> Option<FrameBuf> {
        let f = self.ring.pop()?;
        self.frames_sent = self.frames_sent.saturating_add(1);
        Some(f)
    }

    /// Hands the next encoded frame to `send` without copying it out of the ring, oldest
    /// first; `None` when nothing is queued.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{EdgeConfig, EdgePipeline};
    /// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
    /// edge.start();
    /// let mut wire = Vec::new();
    /// while edge.poll_frame_with(|frame| wire.extend_from_slice(frame)).is_some() {}
    /// assert_eq!(wire.last(), Some(&0), "the header frame, delimiter included");
    /// ```
    pub fn poll_frame_with<R>(&mut self, send: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let r = self.ring.pop_with(send)?;
        self.frames_sent = self.frames_sent.saturating_add(1);
        Some(r)
    }

    /// Records how many frames the node's flash log has given up since power-up (a
    /// store-and-forward node keeps its frames in a log until they are acknowledged); the
    /// stats frames carry the figure from then on.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{EdgeConfig, EdgePipeline};
    /// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
    /// edge.set_log_dropped(3);
    /// assert_eq!(edge.stats().log_dropped, 3);
    /// ```
    pub fn set_log_dropped(&mut self, dropped: u32) {
        self.log_dropped = dropped;
    }

    /// Queues the session header again, based at the seq the next reading will have. A node
    /// calls it after it put other frames on the link (replayed readings under their own
    /// headers), which moved the place where the gateway's decoder expects the next reading.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{EdgeConfig, EdgePipeline, Frame, Header, Decoder, DecodeEvent};
    /// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
    /// edge.start();
    /// edge.announce();
    /// let mut wire = Vec::new();
    /// while edge.poll_frame_with(|f| wire.extend_from_slice(f)).is_some() {}
    /// let mut dec: Decoder = Decoder::new();
    /// let headers = dec.feed(&wire).filter(|e| matches!(e, DecodeEvent::Frame { frame: Frame::Header(_), .. })).count();
    /// assert_eq!(headers, 2);
    /// ```
    pub fn announce(&mut self) {
        if self.started {
            self.queue_header();
        } else {
            self.start();
        }
    }

    /// At shutdown: releases every held reading and queues a final stats frame.
    pub fn flush(&mut self) {
        self.start();
        while let Some(r) = self.reorder.pop_any() {
            self.send_release(r);
        }
        self.queue_stats();
    }

    /// Pushes every reading, handing each frame to `send` as soon as it is queued (as a node
    /// that drains its ring after each sample does), then flushes and hands over the rest.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Celsius, DecodeEvent, Decoder, EdgeConfig, EdgePipeline, Frame, Reading};
    /// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
    /// let readings = [0u32, 2, 1].map(|seq| Reading::new(7, 1, seq, u64::from(seq) * 1_000, Celsius::from_num(52)));
    /// let mut wire = Vec::new();
    /// edge.drain(readings, |frame| wire.extend_from_slice(frame));
    /// let mut dec: Decoder = Decoder::new();
    /// let seqs: Vec<u32> = dec.feed(&wire).filter_map(|e| match e {
    ///     DecodeEvent::Frame { frame: Frame::Reading(r), .. } => Some(r.seq),
    ///     _ => None,
    /// }).collect();
    /// assert_eq!(seqs, [0, 1, 2]);
    /// assert_eq!((edge.held(), edge.queued()), (0, 0));
    /// ```
    pub fn drain(
        &mut self,
        readings: impl IntoIterator<Item = Reading>,
        mut send: impl FnMut(&[u8]),
    ) {
        let sent: Result<(), core::convert::Infallible> = self.try_drain(readings, |frame| {
            send(frame);
            Ok(())
        });
        // The only error there is cannot be made.
        let Ok(()) = sent;
    }

    /// [`EdgePipeline::drain`], stopping at the first error of `send`: the frame it refused
    /// is gone from the ring, the readings not yet pushed are not taken, and the pipeline
    /// is not flushed.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Celsius, EdgeConfig, EdgePipeline, Reading};
    /// let mut edge: EdgePipeline<4, 8> = EdgePipeline::try_new(EdgeConfig::new(7, 1, 1_000)).unwrap();
    /// let readings = (0..3).map(|seq| Reading::new(7, 1, seq, u64::from(seq) * 1_000, Celsius::from_num(52)));
    /// let mut room = 2;
    /// let sent = edge.try_drain(readings, |_| if room == 0 { Err("link down") } else { room -= 1; Ok(()) });
    /// assert_eq!(sent, Err("link down"));
    /// ```
    pub fn try_drain<E>(
        &mut self,
        readings: impl IntoIterator<Item = Reading>,
        mut send: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for r in readings {
            self.push(r);
            self.send_queued(&mut send)?;
        }
        self.flush();
        self.send_queued(&mut send)
    }

    /// Hands every queued frame to `send`, oldest first, until one fails.
    fn send_queued<E>(&mut self, send: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        while let Some(sent) = self.poll_frame_with(&mut *send) {
            sent?;
        }
        Ok(())
    }

    /// The books: the reorder stage's counts plus the readings refused before it.
    pub fn counters(&self) -> Counters {
        let mut c = self.reorder.counters();
        c.input = c.input.saturating_add(self.rejected);
        c.rejected = c.rejected.saturating_add(self.rejected);
        c
    }

    /// How many readings the reorder buffer holds.
    pub fn held(&self) -> usize {
        self.reorder.len()
    }

    /// How many frames wait in the ring.
    pub fn queued(&self) -> usize {
        self.ring.len()
    }

    /// The stats frame as it would be sent now.
    pub fn stats(&self) -> Stats {
        Stats {
            session: self.config.header.session,
            counters: self.counters(),
            doubtful: self.doubtful,
            bad: self.bad,
            sensor_faults: self.faults,
            ring_dropped: self.ring.dropped(),
            frames_sent: self.frames_sent,
            log_dropped: self.log_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{DecodeEvent, Decoder};
    use crate::reading::Celsius;
    use crate::simulate::{Link, SimConfig, Simulator};
    use std::vec::Vec;

    type Tiny = EdgePipeline<4, 4>;

    fn drain<const N: usize, const Q: usize>(p: &mut EdgePipeline<N, Q>, wire: &mut Vec<u8>) {
        while let Some(f) = p.poll_frame() {
            wire.extend_from_slice(&f);
        }
    }

    fn frames(wire: &[u8]) -> Vec<Frame> {
        let mut d: Decoder = Decoder::new();
        d.feed(wire)
            .map(|e| match e {
                DecodeEvent::Frame { frame, .. } => frame,
                DecodeEvent::Skipped { span, reason } => panic!("{span}: {reason}"),
            })
            .collect()
    }

    #[test]
    fn wrong_session_and_off_schedule_are_rejected_and_counted() {
        let mut p = Tiny::try_new(EdgeConfig::new(1, 1, 1000)).unwrap();
        let ok = Reading::new(1, 1, 0, 0, Celsius::from_num(52));
        assert_eq!(
            p.push(Reading { session: 9, ..ok }).rejected(),
            Some(EdgeReject::WrongSession)
        );
        assert_eq!(
            p.push(Reading {
                timestamp: u64::MAX,
                ..ok
            })
            .rejected(),
            Some(EdgeReject::OffSchedule)
        );
        assert_eq!(p.push(ok), PushOutcome::Taken(Flags::EMPTY));
        assert_eq!(p.push(ok), PushOutcome::Duplicate(Flags::EMPTY));
        let c = p.counters();
        assert_eq!((c.input, c.rejected, c.duplicate), (4, 2, 1));
        assert!(c.balanced(p.held()));
    }

    #[test]
    fn stats_frames_carry_balanced_counters_and_repeat_the_header() {
        let mut cfg = EdgeConfig::new(3, 2, 1000);
        cfg.stats_every = 5;
        let mut p: EdgePipeline<4, 64> = EdgePipeline::try_new(cfg).unwrap();
        let mut wire = Vec::new();
        for t in Simulator::new(
            1,
            SimConfig {
                sensor: 3,
                session: 2,
                ..SimConfig::CLEAN
            },
        )
        .take(12)
        {
            p.push(t.reading);
            drain(&mut p, &mut wire);
            assert!(p.counters().balanced(p.held()));
        }
        p.flush();
        drain(&mut p, &mut wire);
        let fs = frames(&wire);
        assert_eq!(fs[0], Frame::Header(cfg.header));
        let stats: Vec<Stats> = fs
            .iter()
            .filter_map(|f| match f {
                Frame::Stats(s) => Some(*s),
                _ => None,
            })
            .collect();
        assert_eq!(stats.len(), 3, "after 5, after 10, and at flush");
        for s in &stats {
            assert!(s
                .counters
                .balanced((s.counters.input - s.counters.out() as u32) as usize));
        }
        let last = stats.last().unwrap().counters;
        assert_eq!((last.input, last.emitted), (12, 12));
        let headers = fs.iter().filter(|f| matches!(f, Frame::Header(_))).count();
        assert_eq!(headers, 4);
        let readings = fs.iter().filter(|f| matches!(f, Frame::Reading(_))).count();
        assert_eq!(readings, 12);
    }

    #[test]
    fn a_header_places_every_reading_after_a_jump_and_readings_stay_9_bytes() {
        let mut p: EdgePipeline<4, 256> =
            EdgePipeline::try_new(EdgeConfig::new(1, 1, 1000)).unwrap();
        let seqs: Vec<u32> = (0..10)
            .chain(100..110)
            .chain(3_000_000..3_000_010)
            .collect();
        for &seq in &seqs {
            let r = Reading::new(1, 1, seq, u64::from(seq) * 1000, Celsius::from_num(52));
            assert_eq!(p.push(r).rejected(), None);
        }
        p.flush();
        let mut wire = Vec::new();
        let mut sizes = Vec::new();
        while let Some(f) = p.poll_frame() {
            sizes.push(f.len());
            wire.extend_from_slice(&f);
        }
        let fs = frames(&wire);
        let bases: Vec<u32> = fs
            .iter()
            .filter_map(|f| match f {
                Frame::Header(h) => Some(h.base_seq),
                _ => None,
            })
            .collect();
        assert_eq!(
            bases,
            [0, 100, 3_000_000, 3_000_010],
            "start, two jumps, flush"
        );
        let got: Vec<u32> = fs
            .iter()
            .filter_map(|f| match f {
                Frame::Reading(w) => Some(w.seq),
                _ => None,
            })
            .collect();
        assert_eq!(got, seqs);
        for (f, n) in fs.iter().zip(&sizes) {
            if matches!(f, Frame::Reading(_)) {
                assert_eq!(*n, 9, "{f:?}");
            }
        }
    }

    #[test]
    fn a_stalled_link_overflows_the_ring_with_a_count() {
        let mut p = Tiny::try_new(EdgeConfig::new(1, 1, 1000)).unwrap();
        for t in Simulator::new(1, SimConfig::CLEAN).take(20) {
            p.push(t.reading);
        }
        assert_eq!(p.queued(), 4);
        assert!(p.stats().ring_dropped > 0);
        // Header + 18 released readings went into a ring of 4.
        assert_eq!(p.stats().ring_dropped, 1 + 18 - 4);
    }

    #[test]
    fn the_edge_reorders_what_a_faulty_link_delivers() {
        let sim = SimConfig {
            skip_ppm: 0,
            duplicate_ppm: 100_000,
            reorder_ppm: 300_000,
            max_displacement: 2,
            ..SimConfig::CLEAN
        };
        let mut link: Link<Reading, 4> = Link::new(11, &sim);
        let mut arrivals = Vec::new();
        for t in Simulator::new(11, sim).take(500) {
            link.send(t.reading, |r| arrivals.push(r));
        }
        link.flush(|r| arrivals.push(r));
        let mut p: EdgePipeline<8, 1024> =
            EdgePipeline::try_new(EdgeConfig::new(1, 1, 1000)).unwrap();
        let mut wire = Vec::new();
        p.drain(arrivals, |f| wire.extend_from_slice(f));
        let seqs: Vec<u32> = frames(&wire)
            .iter()
            .filter_map(|f| match f {
                Frame::Reading(r) => Some(r.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (0..500).collect::<Vec<u32>>());
        assert_eq!(p.counters().duplicate, link.stats().duplicated);
    }

    /// The loop every caller wrote before `drain` existed.
    fn by_hand<const N: usize, const Q: usize>(
        p: &mut EdgePipeline<N, Q>,
        input: &[Reading],
    ) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        for r in input {
            p.push(*r);
            while let Some(f) = p.poll_frame() {
                frames.push(f.to_vec());
            }
        }
        p.flush();
        while let Some(f) = p.poll_frame() {
            frames.push(f.to_vec());
        }
        frames
    }

    #[test]
    fn try_drain_stops_at_the_first_error_and_does_not_flush() {
        let mut p: EdgePipeline<4, 64> =
            EdgePipeline::try_new(EdgeConfig::new(1, 1, 1000)).unwrap();
        let input: Vec<Reading> = (0..10)
            .map(|s| Reading::new(1, 1, s, u64::from(s) * 1000, Celsius::from_num(52)))
            .collect();
        let mut sent = 0;
        let r = p.try_drain(input.iter().copied(), |_| {
            if sent == 3 {
                return Err(sent);
            }
            sent += 1;
            Ok(())
        });
        assert_eq!(r, Err(3));
        // Header, then readings 0 and 1 as 2 and 3 pushed them out; the fourth frame
        // (reading 2, pushed out by 4) was refused: 5 readings taken, 2 still held.
        assert_eq!((p.counters().input, p.held()), (5, 2));
        assert_eq!(p.stats().frames_sent, 4, "the refused frame left the ring");
    }

    proptest::proptest! {
        /// `drain` sends exactly the frames, in exactly the order, of the loop it replaces.
        #[test]
        fn drain_is_the_push_poll_flush_poll_loop(
            input in proptest::collection::vec((0u32..2, 0u32..30, 0u64..40_000), 0..80),
        ) {
            let input: Vec<Reading> = input
                .into_iter()
                .map(|(session, seq, ts)| Reading::new(1, session, seq, ts, Celsius::from_bits(seq as i32)))
                .collect();
            let mut cfg = EdgeConfig::new(1, 1, 1000);
            cfg.stats_every = 7;
            let mut a: EdgePipeline<4, 4> = EdgePipeline::try_new(cfg).unwrap();
            let mut b = a.clone();
            let want = by_hand(&mut a, &input);
            let mut got = Vec::new();
            b.drain(input.iter().copied(), |f| got.push(f.to_vec()));
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(b.stats(), a.stats());
        }

        /// Every reading frame stands for exactly the reading that was pushed, whatever the
        /// order of seqs (the schedule is carried from one seq to the next when they follow
        /// each other, and computed afresh when they do not).
        #[test]
        fn reading_frames_carry_the_readings_exactly(
            input in proptest::collection::vec((0u32..12, -3_000i64..3_000), 0..60),
            epoch in proptest::prop_oneof![0u64..10, u64::MAX - 100_000..=u64::MAX],
        ) {
            let mut cfg = EdgeConfig::new(1, 1, 1000);
            cfg.header.epoch_ms = epoch;
            let mut p: EdgePipeline<4, 256> = EdgePipeline::try_new(cfg).unwrap();
            let mut pushed = std::collections::BTreeSet::new();
            for (seq, jitter) in input {
                let at = i128::from(epoch) + i128::from(seq) * 1000 + i128::from(jitter);
                let Ok(ts) = u64::try_from(at) else { continue };
                let r = Reading::new(1, 1, seq, ts, Celsius::from_bits(seq as i32 * 7));
                if p.push(r).rejected().is_none() {
                    pushed.insert(r);
                }
            }
            p.flush();
            let mut wire = Vec::new();
            drain(&mut p, &mut wire);
            for f in frames(&wire) {
                if let Frame::Reading(w) = f {
                    let r = cfg.header.from_wire(&w).unwrap();
                    proptest::prop_assert!(pushed.contains(&r), "{:?} was never pushed", r);
                }
            }
        }

        /// Whatever arrives — repeats, strangers, disorder, clock jumps — the books balance
        /// after every push, every poll and the flush, and every frame decodes.
        #[test]
        fn the_books_balance_after_every_step(
            input in proptest::collection::vec((0u32..3, 0u32..2, 0u32..40, 0u64..60_000, -2000i32..20000), 0..200),
        ) {
            let mut p: EdgePipeline<4, 16> = EdgePipeline::try_new(EdgeConfig::new(1, 1, 1000)).unwrap();
            let mut wire = Vec::new();
            let (mut duplicate, mut rejected) = (0, 0);
            for (sensor, session, seq, ts, bits) in input {
                match p.push(Reading::new(sensor, session, seq, ts, Celsius::from_bits(bits))) {
                    PushOutcome::Taken(_) => {}
                    PushOutcome::Duplicate(_) => duplicate += 1,
                    PushOutcome::Rejected { .. } => rejected += 1,
                }
                // Each outcome says what the books count.
                proptest::prop_assert_eq!((p.counters().duplicate, p.counters().rejected), (duplicate, rejected));
                proptest::prop_assert!(p.counters().balanced(p.held()));
                if seq % 3 == 0 {
                    drain(&mut p, &mut wire);
                }
            }
            p.flush();
            drain(&mut p, &mut wire);
            proptest::prop_assert!(p.counters().balanced(0));
            frames(&wire);
        }
    }
}
