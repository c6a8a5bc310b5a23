//! `mend listen`: the gateway beside a node.
//!
//! The gateway is where "acknowledged" must mean "durable": the node erases what the gateway
//! acknowledges, so an acknowledgement sent before the bytes reach the disk would turn a
//! gateway crash into lost readings. Every byte from the link is appended to the capture as
//! it arrives; decoded frames wait until the capture is synced, and only then enter the
//! [`Tracker`], which hands out acknowledgements and resend requests. Syncs are batched: after
//! each quiet moment on the link and at least every [`ListenConfig::sync_ms`] while it
//! streams.
//!
//! The capture is the received byte stream itself, so `mend replay` and `mend inspect` read
//! it like any capture, and a torn frame (a dropped link, a crash) costs that frame only.
//! The live decoder sees exactly the bytes the capture holds, in the same order, so the
//! gateway's books are the books a later replay of the capture would keep.
//!
//! Which seqs of a session exist: a session starts at seq 0; a reading or heartbeat beyond
//! the highest seq held opens a gap below it. Seqs already in the capture when a run starts
//! count as settled (an earlier run acknowledged them or gave them up). A gap is asked for
//! with backoff ([`RetryPolicy`]) and given up after the last try: the node did not send it
//! again, so it is gone from its log or was never stored.
//!
//! With `--redis`, the frames the capture holds on disk are also published into the fleet's
//! raw streams, at the point where they are acknowledged ([`Publisher`]): the capture stays
//! the durable store, and a Redis that is down delays the publishing, never the capture.

mod capture;
mod link;
mod publisher;
mod report;
mod tracker;

pub use capture::Capture;
pub use link::{connect, Conn, Endpoint, Got};
pub use publisher::{PublishProgress, Publisher, RedisState, RedisStatus};
pub use report::{LinkState, ListenReport, SessionSeen, StopReason, MAX_LISTED_RANGES};
pub use tracker::{Arrival, Request, RetryPolicy, Tracker};

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mend_core::{DecodeEvent, Decoder, Frame};

/// A listening run's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenConfig {
    /// Where the node is.
    pub endpoint: Endpoint,
    /// The capture to append to.
    pub capture: PathBuf,
    /// Stop after this long without a byte from the link (connected or not).
    pub idle_ms: Option<u64>,
    /// Stop after this long.
    pub duration_ms: Option<u64>,
    /// How missing readings are asked for.
    pub retry: RetryPolicy,
    /// The longest time received bytes wait for their sync (and acknowledgement) while the
    /// link streams.
    pub sync_ms: u64,
    /// Send acknowledgements and resend requests. Off for a node that does not read its
    /// link: bytes written to it stay unread, and a TCP connection closed with unread bytes
    /// is reset, which can discard the node's last bytes still in flight.
    pub downlink: bool,
    /// Also publish the frames on disk into the raw streams of the Redis at this URL.
    pub redis: Option<String>,
}

/// What the status line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The link.
    pub link: LinkState,
    /// Readings received for the first time.
    pub received: u64,
    /// Readings recovered by resend.
    pub recovered: u64,
    /// Seqs still missing.
    pub missing: u64,
    /// Bad bytes on the link.
    pub bad_bytes: u64,
    /// The publishing, with `--redis`.
    pub redis: Option<RedisStatus>,
}

/// How long one read waits before the gateway looks at its timers.
const POLL: Duration = Duration::from_millis(20);
/// The first wait before reconnecting; it doubles up to [`MAX_RECONNECT_MS`].
const FIRST_RECONNECT_MS: u64 = 100;
/// The longest wait before reconnecting.
const MAX_RECONNECT_MS: u64 = 2_000;
/// How often the latest acknowledgement of every session is sent again, in case it was lost
/// on the way (see [`Tracker::repeat_acks`]).
const ACK_REPEAT_MS: u64 = 2_000;

static LISTENING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

/// Called from a signal handler: when a listening run is active, asks it to stop (it syncs
/// the capture and returns) and returns true; otherwise returns false.
pub fn request_stop() -> bool {
    if LISTENING.load(Ordering::SeqCst) {
        STOP.store(true, Ordering::SeqCst);
        true
    } else {
        false
    }
}

/// Marks a listening run as active, so that [`request_stop`] stops it gracefully; returns
/// the test for [`run`]'s `stop`.
pub fn arm_stop() -> fn() -> bool {
    STOP.store(false, Ordering::SeqCst);
    LISTENING.store(true, Ordering::SeqCst);
    || STOP.load(Ordering::SeqCst)
}

/// The session the frames that follow belong to, per the latest header.
type Current = Option<(u32, u32)>;

/// The gateway's state between reads.
struct Gateway {
    capture: Capture,
    decoder: Decoder,
    /// Decoded, not yet durable.
    pending: Vec<DecodeEvent>,
    tracker: Tracker,
    current: Current,
    /// Sessions the capture announced (before this run or during it).
    known: BTreeSet<(u32, u32)>,
    report: ListenReport,
    /// With `--redis`.
    publisher: Option<Publisher>,
}

/// Refuses a capture that exists and is not a frame log (the prototype's JSONL, a CSV): the
/// frames appended to it would be read back as one damaged frame with everything before them.
fn refuse_other_formats(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut head = Vec::new();
    f.take(64 * 1024)
        .read_to_end(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let what = match crate::input::detect(&head) {
        Some(crate::input::Format::Frames) => return Ok(()),
        Some(crate::input::Format::Jsonl) => "is JSONL, not a frame capture",
        None => "is not a mend capture",
    };
    anyhow::bail!(
        "{}: {what}: listen appends frames, so give it a capture of its own",
        path.display()
    )
}

/// Listens until `stop` returns true, the link is idle or the duration runs out; calls
/// `status` after every change.
///
/// # Errors
/// The capture cannot be opened, read, written or synced (a link that fails is reconnected,
/// and a Redis that fails is retried: never an error), or the Redis URL is malformed.
pub fn run(
    cfg: &ListenConfig,
    stop: &dyn Fn() -> bool,
    status: &mut dyn FnMut(&Status),
) -> anyhow::Result<ListenReport> {
    let started = Instant::now();
    let ms = |t: Instant| u64::try_from(t.duration_since(started).as_millis()).unwrap_or(u64::MAX);
    let name = cfg.capture.display().to_string();
    let publisher = cfg
        .redis
        .as_deref()
        .map(|url| Publisher::new(url, &cfg.capture))
        .transpose()
        .context("not a usable Redis URL")?;
    refuse_other_formats(&cfg.capture)?;
    let capture = Capture::open(&cfg.capture).with_context(|| format!("{name}: cannot open"))?;
    let mut g = Gateway {
        report: ListenReport {
            capture_start: capture.start_len(),
            ..ListenReport::default()
        },
        capture,
        decoder: Decoder::new(),
        pending: Vec::new(),
        tracker: Tracker::new(cfg.retry),
        current: None,
        known: BTreeSet::new(),
        publisher,
    };
    g.prime().with_context(|| format!("{name}: cannot read"))?;

    let mut conn: Option<Box<dyn Conn>> = None;
    let mut state = LinkState::Connecting;
    let mut reconnect_at = 0u64;
    let mut reconnect_wait = FIRST_RECONNECT_MS;
    let mut last_byte = 0u64;
    let mut last_sync = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut shown = None;
    let stop_reason = loop {
        let now = ms(Instant::now());
        if stop() {
            break StopReason::Interrupted;
        }
        if cfg.duration_ms.is_some_and(|d| now >= d) {
            break StopReason::Duration;
        }
        if cfg
            .idle_ms
            .is_some_and(|d| now.saturating_sub(last_byte) >= d)
        {
            break StopReason::Idle;
        }
        let Some(c) = conn.as_mut() else {
            if now >= reconnect_at {
                match connect(&cfg.endpoint, POLL) {
                    Ok(c) => {
                        conn = Some(c);
                        state = LinkState::Up;
                        g.report.connects += 1;
                        reconnect_wait = FIRST_RECONNECT_MS;
                        // The node may have missed the last ones.
                        g.tracker.forget_acks();
                    }
                    Err(e) => {
                        g.report.last_link_error = Some(format!("cannot connect: {e}"));
                        reconnect_at = now + reconnect_wait;
                        reconnect_wait = (reconnect_wait * 2).min(MAX_RECONNECT_MS);
                    }
                }
            } else {
                std::thread::sleep(POLL.min(Duration::from_millis(reconnect_at - now)));
            }
            // With the link down, what is on disk still goes out when Redis is back.
            g.publish(ms(Instant::now()), false)
                .with_context(|| format!("{name}: cannot publish"))?;
            g.show(state, &mut shown, status);
            continue;
        };
        let mut quiet = false;
        let mut dropped = false;
        match link::read(c.as_mut(), &mut buf) {
            Ok(Got::Bytes(n)) => {
                last_byte = ms(Instant::now());
                let bytes = buf.get(..n).unwrap_or_default();
                g.receive(bytes)
                    .with_context(|| format!("{name}: cannot write"))?;
            }
            Ok(Got::Quiet) => quiet = true,
            Ok(Got::Closed) => dropped = true,
            Err(e) => {
                g.report.last_link_error = Some(format!("read failed: {e}"));
                dropped = true;
            }
        }
        if dropped {
            conn = None;
            state = LinkState::Down;
            g.report.drops += 1;
            g.end_torn_frame()
                .with_context(|| format!("{name}: cannot write"))?;
            reconnect_at = ms(Instant::now()) + reconnect_wait;
        }
        let now = ms(Instant::now());
        if g.capture.is_dirty()
            && (quiet || dropped || now.saturating_sub(last_sync) >= cfg.sync_ms)
        {
            g.sync(now)
                .with_context(|| format!("{name}: cannot sync"))?;
            last_sync = now;
        }
        if let Some(c) = conn.as_mut().filter(|_| cfg.downlink) {
            if let Err(e) = g.talk(c.as_mut(), now) {
                g.report.last_link_error = Some(format!("write failed: {e}"));
                conn = None;
                state = LinkState::Down;
                g.report.drops += 1;
                reconnect_at = now + reconnect_wait;
            }
        }
        // After the acknowledgements: a slow Redis delays the publishing, not them.
        g.publish(now, false)
            .with_context(|| format!("{name}: cannot publish"))?;
        g.show(state, &mut shown, status);
    };
    // Everything received is made durable, and acknowledged when the link is still there.
    let now = ms(Instant::now());
    g.sync(now)
        .with_context(|| format!("{name}: cannot sync"))?;
    if let Some(c) = conn.as_mut().filter(|_| cfg.downlink) {
        let _ = g.talk(c.as_mut(), now);
    }
    // One more try for what is not yet published; the summary says what is left.
    g.publish(now, true)
        .with_context(|| format!("{name}: cannot publish"))?;
    LISTENING.store(false, Ordering::SeqCst);
    let mut report = g.report;
    report.stop = Some(stop_reason);
    report.appended = g.capture.appended();
    report.still_missing = g.tracker.missing();
    report.missing_ranges = g.tracker.missing_ranges();
    report.elapsed_ms = ms(Instant::now());
    report.redis = g.publisher.map(Publisher::into_progress);
    Ok(report)
}

impl Gateway {
    /// Reads the capture as it was: the decoder continues where its bytes end, the seqs it
    /// holds are settled, and its sessions are not new.
    fn prime(&mut self) -> std::io::Result<()> {
        let mut file = std::fs::File::open(self.capture.path())?;
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = file.read(&mut chunk)?;
            let Some(bytes) = chunk.get(..n).filter(|b| !b.is_empty()) else {
                if let Some(p) = self.publisher.as_mut() {
                    p.start();
                }
                return Ok(());
            };
            if let Some(p) = self.publisher.as_mut() {
                p.prime(bytes);
            }
            for ev in self.decoder.feed(bytes) {
                let DecodeEvent::Frame { frame, .. } = ev else {
                    continue;
                };
                match frame {
                    Frame::Header(h) => {
                        self.current = Some((h.sensor, h.session));
                        self.known.insert((h.sensor, h.session));
                    }
                    Frame::Reading(w) | Frame::Replayed(w) => {
                        if let Some((sensor, session)) = self.current {
                            self.tracker.seed(sensor, session, w.seq, 0);
                        }
                    }
                    Frame::Fault(f) => {
                        if let Some((sensor, session)) = self.current {
                            self.tracker.seed(sensor, session, f.seq, 0);
                        }
                    }
                    Frame::Stats(st) if st.log_dropped > 0 => {
                        if let Some((sensor, _)) = self.current {
                            self.tracker.node_dropped(sensor);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Appends received bytes to the capture and decodes them (their frames wait for the
    /// next sync).
    fn receive(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.report.bytes += bytes.len() as u64;
        self.capture.append(bytes)?;
        self.pending.extend(self.decoder.feed(bytes));
        Ok(())
    }

    /// The link dropped: a frame cut short is ended, in the capture and in the decoder alike.
    fn end_torn_frame(&mut self) -> std::io::Result<()> {
        if self.decoder.position() != self.decoder.frame_start() {
            self.capture.seal()?;
            self.pending.extend(self.decoder.push(0));
        }
        Ok(())
    }

    /// Syncs the capture and lets what it now holds durably into the books.
    fn sync(&mut self, now: u64) -> std::io::Result<()> {
        if self.capture.sync()? {
            self.report.syncs += 1;
        }
        for ev in std::mem::take(&mut self.pending) {
            self.apply(ev, now);
        }
        Ok(())
    }

    fn apply(&mut self, ev: DecodeEvent, now: u64) {
        let r = &mut self.report;
        let (frame, cur) = match ev {
            DecodeEvent::Frame { frame, .. } => (frame, self.current),
            DecodeEvent::Skipped { span, reason } => {
                let e = r.bad.entry(reason.name()).or_default();
                e.0 += 1;
                e.1 += span.len();
                return;
            }
        };
        r.frames += 1;
        match frame {
            Frame::Header(h) => {
                self.current = Some((h.sensor, h.session));
                if self.known.insert((h.sensor, h.session)) {
                    r.sessions.push(SessionSeen {
                        sensor: h.sensor,
                        session: h.session,
                        reset: h.reset,
                    });
                }
            }
            Frame::Reading(w) | Frame::Replayed(w) => {
                if matches!(frame, Frame::Replayed(_)) {
                    r.replayed_frames += 1;
                }
                let Some((sensor, session)) = cur else {
                    r.unplaced += 1;
                    return;
                };
                match self.tracker.reading(sensor, session, w.seq, now) {
                    Arrival::New => r.readings += 1,
                    Arrival::Recovered => r.recovered += 1,
                    Arrival::Duplicate => r.duplicates += 1,
                }
            }
            Frame::Fault(f) => {
                r.faults += 1;
                if let Some((sensor, session)) = cur {
                    self.tracker.reading(sensor, session, f.seq, now);
                }
            }
            Frame::Heartbeat(beat) => {
                r.heartbeats += 1;
                if let Some((sensor, session)) = cur.filter(|c| c.1 == beat.session) {
                    self.tracker.reached(sensor, session, beat.seq, now);
                }
            }
            Frame::Stats(st) => {
                r.stats += 1;
                if st.log_dropped > 0 {
                    if let Some((sensor, _)) = cur {
                        self.tracker.node_dropped(sensor);
                    }
                }
            }
            // Gateway-to-node frames echoed back: counted as frames, nothing more.
            Frame::Ack(_) | Frame::Resend(_) => {}
        }
    }

    /// Publishes what the capture holds on disk (with `--redis`), when Redis can be tried.
    fn publish(&mut self, now: u64, now_or_never: bool) -> anyhow::Result<()> {
        match self.publisher.as_mut() {
            Some(p) => p.publish(self.capture.synced_len(), now, now_or_never),
            None => Ok(()),
        }
    }

    /// Sends the resend requests due and the acknowledgements the books allow.
    fn talk(&mut self, conn: &mut dyn Conn, now: u64) -> std::io::Result<()> {
        let mut out = Vec::new();
        for req in self.tracker.due(now) {
            match req {
                Request::Resend { resend, .. } => {
                    self.report.resends_sent += 1;
                    out.extend(frame_bytes(&Frame::Resend(resend))?);
                }
                Request::GaveUp { sensor, range } => {
                    self.report.unrecoverable += u64::from(range.to - range.from) + 1;
                    if self.report.unrecoverable_ranges.len() <= MAX_LISTED_RANGES {
                        self.report.unrecoverable_ranges.push((sensor, range));
                    }
                }
            }
        }
        self.tracker.repeat_acks(now, ACK_REPEAT_MS);
        for ack in self.tracker.acks() {
            self.report.acks_sent += 1;
            out.extend(frame_bytes(&Frame::Ack(ack))?);
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
            conn.flush()?;
        }
        Ok(())
    }

    fn show(&self, link: LinkState, shown: &mut Option<Status>, status: &mut dyn FnMut(&Status)) {
        let now = Status {
            link,
            received: self.report.readings,
            recovered: self.report.recovered,
            missing: self.tracker.missing(),
            bad_bytes: self.report.bad_bytes(),
            redis: self.publisher.as_ref().map(Publisher::status),
        };
        if *shown != Some(now) {
            status(&now);
            *shown = Some(now);
        }
    }
}

/// The bytes of a gateway-to-node frame.
fn frame_bytes(frame: &Frame) -> std::io::Result<mend_core::FrameBuf> {
    frame.to_buf().map_err(std::io::Error::other)
}
