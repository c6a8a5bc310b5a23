//! `mend publish`: captures into one raw stream per sensor.
//!
//! A capture interleaves sensors, and a reading frame means something only after its
//! session's header: in wire format version 2 it carries only the low 7 bits of its seq,
//! placed from the reading before it or from the latest header's base seq. Each entry
//! therefore holds a header frame followed by up to [`READINGS_PER_ENTRY`] frames of that
//! session, byte for byte as captured; an entry that continues a session starts with the
//! session's header re-based on the seq the capture's decoder expected there (the header the
//! node repeats itself, with another base seq). Every entry decodes alone, to the frames the
//! capture decodes to, so a sensor's entries concatenated are a frame log of that sensor
//! alone, which a worker replays as is, and a worker may start at any entry. Publishing the
//! same capture twice appends the same readings twice: the repair deduplicates them by
//! identity, as `mend replay` does with overlapping captures, so nothing downstream changes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use mend_core::{DecodeEvent, Decoder, EncodeError, Frame, Header, SkipReason, Span, MAX_FRAME};

use crate::input::rotation::continuations;
use crate::input::{FrameContext, InputSource};

use super::{connect, Keys, PUBLISH_DEAD_KEY, SENSORS_KEY};
use crate::input::salvage::{self, Ending, Piece};

/// Frames after the header in one raw entry: larger entries cost less memory per reading
/// in Redis (one entry's overhead, one header) and fewer round trips.
pub const READINGS_PER_ENTRY: usize = 64;

/// Entries sent in one pipeline.
const PIPELINE: usize = 512;

/// What `mend publish` does.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// The Redis URL.
    pub redis: String,
    /// The captures (`-`: standard input).
    pub inputs: Vec<PathBuf>,
    /// Mark every sensor published as complete, so workers settle its tail at once.
    pub end: bool,
}

/// What `mend publish` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Frames published, per sensor.
    pub frames: BTreeMap<u32, u64>,
    /// Raw entries added.
    pub entries: u64,
    /// Bytes that were not a usable frame (also in the `mend:dead` stream).
    pub skipped_bytes: u64,
}

impl PublishReport {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: &Self) {
        for (sensor, n) in &other.frames {
            *self.frames.entry(*sensor).or_default() += n;
        }
        self.entries += other.entries;
        self.skipped_bytes += other.skipped_bytes;
    }

    /// Frames published, all sensors.
    pub fn total_frames(&self) -> u64 {
        self.frames.values().sum()
    }
}

/// The frames of one sensor waiting to become an entry.
#[derive(Clone, Debug)]
struct Pending {
    /// The latest header of the sensor, decoded and as captured.
    header: Header,
    header_bytes: Vec<u8>,
    /// The seq the decoder expected before the entry's first frame (version 2).
    next: Option<u32>,
    frames: Vec<u8>,
    count: usize,
}

impl Pending {
    /// The entry: a header that places the frames as the capture placed them, then the
    /// frames. A version-2 reading frame carries only the low bits of its seq, placed from
    /// the reading before it or the latest header's base seq; an entry that continues a
    /// session after another entry starts with the session's header re-based on the seq
    /// the decoder expected there, so it decodes alone, wherever a worker's read begins.
    fn entry(&mut self) -> Result<Vec<u8>, EncodeError> {
        let rebased;
        let header = match self.next {
            Some(next) if self.header.version >= 2 && next != self.header.base_seq => {
                rebased = Frame::Header(self.header.with_base(next)).to_buf()?;
                rebased.as_slice()
            }
            _ => self.header_bytes.as_slice(),
        };
        let mut e = Vec::with_capacity(header.len() + self.frames.len());
        e.extend_from_slice(header);
        e.append(&mut self.frames);
        self.count = 0;
        self.next = None;
        Ok(e)
    }
}

/// Why `mend publish` could not use some bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Not a good frame.
    Damaged(SkipReason),
    /// A good frame before any header: its sensor is unknown.
    NoHeader,
}

impl Unusable {
    /// The short name, as in the dead-letter file's `reason`.
    pub const fn name(self) -> &'static str {
        match self {
            Unusable::Damaged(r) => crate::input::DeadReason::Frame(r),
            Unusable::NoHeader => crate::input::DeadReason::NoHeader,
        }
        .name()
    }
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Damaged(r) => write!(f, "{r}"),
            Unusable::NoHeader => f.write_str("a frame before any header: its sensor is unknown"),
        }
    }
}

/// A capture split into raw entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// `(sensor, header and frames)`, in capture order per sensor.
    pub entries: Vec<(u32, Vec<u8>)>,
    /// The unusable spans and why.
    pub skipped: Vec<(Span, Unusable)>,
}

/// Splits a capture into raw entries, and reports the unusable spans.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Frame, Header, Reading};
/// let h = Header::new(7, 1, 1_000, ClockKind::Unix, 0);
/// let header = Frame::Header(h).to_buf().unwrap().to_vec();
/// let mut capture = header.clone();
/// let r = Reading::new(7, 1, 0, 0, Celsius::from_num(52));
/// let reading = Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap().to_vec();
/// capture.extend_from_slice(&reading);
/// capture.extend_from_slice(b"junk\0");
/// let split = mend::fleet::publish::split(&capture).unwrap();
/// assert_eq!(split.entries, [(7, [header, reading].concat())]);
/// assert_eq!(split.skipped.len(), 1);
/// ```
pub fn split(capture: &[u8]) -> anyhow::Result<Split> {
    Splitter::new().split(capture)
}

/// Splits a capture into raw entries as its bytes arrive, in any chunks: what [`split`]
/// does to a whole capture, for one that grows (`mend listen --redis`).
///
/// Entries come out when they are full, when a header of their sensor ends them, and at
/// every [`flush`](Self::flush); an entry flushed early is simply shorter, and the next one
/// of its session starts with the re-based header, so it still decodes alone. A clone is a
/// savepoint: a publisher keeps the splitter of the last offset it published, and feeds a
/// clone of it, kept only once Redis took the entries.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Frame, Header, Reading};
/// use mend::fleet::publish::{split, Split, Splitter};
/// let h = Header::new(7, 1, 1_000, ClockKind::Unix, 0);
/// let mut capture = Frame::Header(h).to_buf().unwrap().to_vec();
/// let r = Reading::new(7, 1, 0, 0, Celsius::from_num(52));
/// capture.extend_from_slice(&Frame::Reading(h.to_wire(&r).unwrap()).to_buf().unwrap());
/// // Fed byte by byte, it gives what the whole capture gives.
/// let mut s = Splitter::new();
/// let mut out = Split::default();
/// for b in &capture {
///     s.feed(&[*b], &mut out).unwrap();
/// }
/// s.flush(&mut out).unwrap();
/// assert_eq!(out, split(&capture).unwrap());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Splitter {
    dec: Decoder,
    /// The latest header of each sensor, with its frames not yet in an entry.
    pending: BTreeMap<u32, Pending>,
    /// The sensor of the latest header (the owner of the frames that follow).
    current: Option<u32>,
    /// The last bytes of the frame being collected: the whole of a frame that can be good,
    /// and the end of a longer damaged one, where a whole frame may be found (see
    /// [`salvage`](crate::input::salvage)).
    frame: Vec<u8>,
    /// The frame cut short at the end of the capture is finished by the piece of the log
    /// that continues it, and published from there.
    cut_continues: bool,
}

impl Splitter {
    /// A splitter at the start of a capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// A splitter at the start of a piece of a log that goes on from `ctx`, the end of the
    /// piece before it (see [`crate::input::rotation`]): its frames before its first header
    /// belong to the session in force there, and when `join`, its first bytes finish the
    /// frame cut short at the end of that piece.
    ///
    /// # Errors
    /// The header in force cannot be encoded again.
    pub fn continuing(ctx: &FrameContext, join: bool) -> anyhow::Result<Self> {
        let mut s = Self {
            dec: ctx.decoder_at(0, join),
            frame: if join {
                ctx.cut_frame().to_vec()
            } else {
                Vec::new()
            },
            ..Self::default()
        };
        if let Some(h) = ctx.header() {
            let header_bytes = Frame::Header(h)
                .to_buf()
                .with_context(|| format!("cannot write the header of sensor {}", h.sensor))?
                .to_vec();
            s.pending.insert(
                h.sensor,
                Pending {
                    header: h,
                    header_bytes,
                    next: None,
                    frames: Vec::new(),
                    count: 0,
                },
            );
            s.current = Some(h.sensor);
        }
        Ok(s)
    }

    /// This splitter, for a capture whose last frame, cut short, is finished by the piece of
    /// the log that continues it (see [`crate::input::rotation::cut_continues`]): it is
    /// published from there, and is not unusable here.
    #[must_use]
    pub fn with_cut_continuing(mut self) -> Self {
        self.cut_continues = true;
        self
    }

    /// Feeds the whole of `capture` and finishes: its entries and unusable spans.
    ///
    /// # Errors
    /// A re-based header that cannot be encoded.
    pub fn split(mut self, capture: &[u8]) -> anyhow::Result<Split> {
        let mut out = Split::default();
        self.feed(capture, &mut out)?;
        self.finish(&mut out)?;
        Ok(out)
    }

    /// The capture offset of the next byte to be fed.
    pub fn position(&self) -> u64 {
        self.dec.position()
    }

    /// Takes the next bytes of the capture; adds the entries they complete and the spans
    /// they make unusable to `out`.
    ///
    /// # Errors
    /// A re-based header that cannot be encoded.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Split) -> anyhow::Result<()> {
        for &b in bytes {
            // The seq the decoder expects before this byte: the place of a version-2
            // reading frame ending here (the place changes only when a frame ends).
            let next = self.dec.next_seq();
            self.frame.push(b);
            if self.frame.len() > 2 * (MAX_FRAME + 1) {
                self.frame.drain(..MAX_FRAME + 1);
            }
            if let Some(ev) = self.dec.push(b) {
                self.event(ev, next, Ending::Delimiter, out)?;
                self.frame.clear();
            }
        }
        Ok(())
    }

    /// Ends every entry begun: everything fed so far is in `out`, but for a frame cut short.
    ///
    /// # Errors
    /// A re-based header that cannot be encoded.
    pub fn flush(&mut self, out: &mut Split) -> anyhow::Result<()> {
        for (s, p) in &mut self.pending {
            flush(*s, p, out)?;
        }
        Ok(())
    }

    /// Ends the capture: a frame cut short is unusable, and every entry begun is ended.
    ///
    /// # Errors
    /// A re-based header that cannot be encoded.
    pub fn finish(&mut self, out: &mut Split) -> anyhow::Result<()> {
        if let Some(ev) = self.dec.finish() {
            if !self.cut_continues {
                self.event(ev, None, Ending::Cut, out)?;
            }
            self.frame.clear();
        }
        self.flush(out)
    }

    /// Drops the frames fed but not yet in an entry, keeping what places the frames to come
    /// (the latest headers, the decoder's state): the bytes fed so far are somebody else's
    /// to publish.
    pub fn forget(&mut self) {
        for p in self.pending.values_mut() {
            p.frames.clear();
            p.count = 0;
            p.next = None;
        }
    }

    fn event(
        &mut self,
        ev: DecodeEvent,
        next: Option<u32>,
        ending: Ending,
        out: &mut Split,
    ) -> anyhow::Result<()> {
        // Taken out while the frame is handled, and put back for its room to be reused.
        let buf = std::mem::take(&mut self.frame);
        let raw = &buf[buf.len() - buf.len().min(ending.last_bytes())..];
        let done = self.handle(ev, raw, next, ending, out);
        self.frame = buf;
        done
    }

    fn handle(
        &mut self,
        ev: DecodeEvent,
        raw: &[u8],
        next: Option<u32>,
        ending: Ending,
        out: &mut Split,
    ) -> anyhow::Result<()> {
        match ev {
            DecodeEvent::Frame { frame, span } => {
                // A frame that finishes one cut short at the end of the piece before has
                // bytes of that piece before its span.
                debug_assert!(raw.len() as u64 >= span.len(), "the frame's bytes");
                self.frame_of(frame, raw, span, next, out)
            }
            DecodeEvent::Skipped { span, reason } => {
                // As `mend replay` does: whole frames inside a damaged one are kept.
                let Some(found) = salvage::look_inside(&self.dec, raw, span, reason, ending) else {
                    self.skipped(span, reason, out);
                    return Ok(());
                };
                let first = span.end - raw.len() as u64;
                let at = |x: u64| usize::try_from(x - first).unwrap_or(usize::MAX);
                for piece in found.pieces {
                    match piece {
                        Piece::Frame(f) => {
                            let mut bytes = raw
                                .get(at(f.span.start)..at(f.span.end))
                                .unwrap_or_default()
                                .to_vec();
                            if ending == Ending::Cut || f.span.end < span.end {
                                // The zero it lost is put back, so that its entry decodes.
                                bytes.push(0);
                            }
                            self.frame_of(f.frame, &bytes, f.span, f.next, out)?;
                        }
                        Piece::Damaged(span) => self.skipped(span, reason, out),
                    }
                }
                self.dec = found.dec;
                Ok(())
            }
        }
    }

    /// Takes a frame whose `bytes` (with a delimiter) were found at `span`, `next` being
    /// the seq the decoder expected before it.
    fn frame_of(
        &mut self,
        frame: Frame,
        bytes: &[u8],
        span: Span,
        next: Option<u32>,
        out: &mut Split,
    ) -> anyhow::Result<()> {
        match frame {
            Frame::Header(h) => {
                if let Some(p) = self.pending.get_mut(&h.sensor) {
                    flush(h.sensor, p, out)?;
                }
                self.pending.insert(
                    h.sensor,
                    Pending {
                        header: h,
                        header_bytes: bytes.to_vec(),
                        next: None,
                        frames: Vec::new(),
                        count: 0,
                    },
                );
                self.current = Some(h.sensor);
            }
            _ => match self
                .current
                .and_then(|s| self.pending.get_mut(&s).map(|p| (s, p)))
            {
                Some((s, p)) => {
                    if p.count == 0 {
                        p.next = next;
                    }
                    p.frames.extend_from_slice(bytes);
                    p.count += 1;
                    if p.count >= READINGS_PER_ENTRY {
                        flush(s, p, out)?;
                    }
                }
                None => out.skipped.push((span, Unusable::NoHeader)),
            },
        }
        Ok(())
    }

    /// Reports the span of a damaged or skipped frame.
    fn skipped(&mut self, span: Span, reason: SkipReason, out: &mut Split) {
        // As in `mend replay`: readings after a header of an unknown version belong to no
        // known session.
        if reason == SkipReason::UnknownVersion {
            self.current = None;
        }
        out.skipped.push((span, Unusable::Damaged(reason)));
    }
}

/// Ends the entry `p` of `sensor` has begun, if any.
fn flush(sensor: u32, p: &mut Pending, out: &mut Split) -> anyhow::Result<()> {
    if p.count > 0 {
        let e = p.entry().with_context(|| {
            format!(
                "cannot write the header of sensor {sensor}, session {}",
                p.header.session
            )
        })?;
        out.entries.push((sensor, e));
    }
    Ok(())
}

/// Adds a split's entries to the raw streams of their sensors (announcing the sensors) and
/// its unusable spans to the dead-letter stream, naming `input`; returns what it published.
///
/// # Errors
/// Redis unreachable or refusing a command: some of the entries may have been added, and
/// sending them again is harmless (workers deduplicate readings by identity).
pub fn send(
    con: &mut redis::Connection,
    input: &str,
    split: &Split,
) -> anyhow::Result<PublishReport> {
    let mut report = PublishReport::default();
    let mut pipe = redis::pipe();
    let mut queued = 0;
    let mut batch = std::collections::BTreeSet::new();
    for (sensor, bytes) in &split.entries {
        batch.insert(*sensor);
        // Frames in an entry: each ends with its 0x00 delimiter.
        let frames = bytes.iter().filter(|b| **b == 0).count() as u64;
        *report.frames.entry(*sensor).or_default() += frames.saturating_sub(1);
        pipe.cmd("XADD")
            .arg(&Keys::new(*sensor).raw)
            .arg("*")
            .arg("f")
            .arg(bytes.as_slice())
            .ignore();
        queued += 1;
        if queued >= PIPELINE {
            // A sensor is announced once its stream has entries.
            pipe.cmd("SADD").arg(SENSORS_KEY).arg(&batch).ignore();
            pipe.query::<()>(con)
                .with_context(|| format!("{input}: cannot publish"))?;
            pipe = redis::pipe();
            queued = 0;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        pipe.cmd("SADD").arg(SENSORS_KEY).arg(&batch).ignore();
    }
    for (span, reason) in &split.skipped {
        pipe.cmd("XADD")
            .arg(PUBLISH_DEAD_KEY)
            .arg("*")
            .arg("input")
            .arg(input)
            .arg("offset")
            .arg(span.start)
            .arg("length")
            .arg(span.len())
            .arg("reason")
            .arg(reason.name())
            .arg("detail")
            .arg(reason.to_string())
            .ignore();
        queued += 1;
        report.skipped_bytes += span.len();
    }
    // Redis refuses an empty pipeline (nothing new, or a multiple of PIPELINE entries).
    if queued > 0 {
        pipe.query::<()>(con)
            .with_context(|| format!("{input}: cannot publish"))?;
    }
    report.entries = split.entries.len() as u64;
    Ok(report)
}

fn read_input(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    }
    Ok(bytes)
}

/// Refuses an input that is not a frame log.
fn frames_only(name: &str, head: &[u8]) -> anyhow::Result<()> {
    if crate::input::detect(head) != Some(crate::input::Format::Frames) {
        anyhow::bail!(
            "{name}: not a mend frame log; mend publish takes frame logs only (replay a JSONL log with mend replay)"
        );
    }
    Ok(())
}

/// Publishes the captures.
///
/// # Errors
/// Unreadable inputs, and Redis unreachable or refusing a command.
pub fn run(cfg: &PublishConfig) -> anyhow::Result<PublishReport> {
    let mut con = connect(&cfg.redis)?;
    let mut report = PublishReport::default();
    let sources: Vec<InputSource> = cfg
        .inputs
        .iter()
        .map(|p| InputSource::from_arg(p))
        .collect();
    // Every file is looked at before anything is sent, so that one that cannot be published
    // fails the run with nothing of the others half published (standard input, read once,
    // is looked at in its turn).
    for path in &cfg.inputs {
        if let InputSource::Path(p) = InputSource::from_arg(path) {
            let mut head = Vec::new();
            std::fs::File::open(&p)
                .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
                .with_context(|| format!("{}: cannot read", p.display()))?;
            frames_only(&p.display().to_string(), &head)?;
        }
    }
    let continues = continuations(&sources, &vec![0; sources.len()]);
    let cut_continues = crate::input::rotation::cut_continues(&continues);
    for (i, path) in cfg.inputs.iter().enumerate() {
        let capture = read_input(path)?;
        let name = path.display().to_string();
        let head = capture
            .get(..capture.len().min(64 * 1024))
            .unwrap_or_default();
        frames_only(&name, head)?;
        let mut splitter = match continues.get(i).and_then(Option::as_ref) {
            Some(c) => Splitter::continuing(&c.context, c.joined)?,
            None => Splitter::new(),
        };
        if cut_continues.get(i).copied().unwrap_or(false) {
            splitter = splitter.with_cut_continuing();
        }
        let split = splitter
            .split(&capture)
            .with_context(|| format!("{name}: cannot publish"))?;
        report.add(&send(&mut con, &name, &split)?);
    }
    if cfg.end {
        for sensor in report.frames.keys() {
            let k = Keys::new(*sensor);
            // The last entry ever added: a worker may have trimmed the stream already.
            if let Some(last) = super::last_generated(&mut con, &k.raw)? {
                redis::cmd("SET")
                    .arg(&k.end)
                    .arg(last.to_string())
                    .query::<()>(&mut con)
                    .with_context(|| format!("cannot mark sensor {sensor} complete"))?;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mend_core::{ClockKind, Encoder, WireReading};

    /// The frames a decoder reads from `bytes`, and how many spans it skipped.
    fn frames(bytes: &[u8]) -> (Vec<Frame>, usize) {
        let mut dec: Decoder = Decoder::new();
        let mut out = Vec::new();
        let mut skipped = 0;
        for ev in dec.feed(bytes) {
            match ev {
                DecodeEvent::Frame { frame, .. } => out.push(frame),
                DecodeEvent::Skipped { .. } => skipped += 1,
            }
        }
        skipped += usize::from(dec.finish().is_some());
        (out, skipped)
    }

    /// A version-2 capture of two sensors, each with a header, then readings with gaps, far
    /// more than one entry holds, the sensors taking turns (each turn after its header).
    fn capture() -> (Vec<u8>, Vec<(u32, u32)>) {
        let mut enc = Encoder::new();
        let mut log = Vec::new();
        let mut sent = Vec::new();
        let mut seqs = [0u32; 2];
        for turn in 0..4u32 {
            let sensor = 7 + turn % 2;
            let slot = (turn % 2) as usize;
            let h = Header::new(sensor, 3, 1_000, ClockKind::Boot, 0).with_base(seqs[slot]);
            log.extend_from_slice(&enc.to_buf(&Frame::Header(h)).unwrap());
            for i in 0..150u32 {
                let seq = seqs[slot];
                let w = WireReading {
                    seq,
                    offset_ms: 0,
                    celsius_delta: i as i32,
                };
                log.extend_from_slice(&enc.to_buf(&Frame::Reading(w)).unwrap());
                sent.push((sensor, seq));
                // Lost readings: up to 40 seqs at a time.
                seqs[slot] = seq + 1 + (i * 7) % 41;
            }
        }
        (log, sent)
    }

    #[test]
    fn every_entry_of_a_version_2_capture_decodes_alone_to_the_captured_readings() {
        let (log, sent) = capture();
        let (whole, skipped) = frames(&log);
        assert_eq!(skipped, 0);
        assert_eq!(whole.len(), sent.len() + 4);
        let split = split(&log).unwrap();
        assert!(split.entries.len() > 8, "sessions span several entries");
        assert_entries_decode_alone(&split, &sent);
    }

    #[test]
    fn a_capture_fed_in_chunks_and_flushed_after_each_gives_entries_that_decode_alone() {
        let (log, sent) = capture();
        let mut s = Splitter::new();
        let mut out = Split::default();
        // Chunks that end inside frames, each followed by a flush (a gateway's sync).
        for chunk in log.chunks(37) {
            s.feed(chunk, &mut out).unwrap();
            s.flush(&mut out).unwrap();
        }
        s.finish(&mut out).unwrap();
        assert!(out.entries.len() > split(&log).unwrap().entries.len());
        assert_entries_decode_alone(&out, &sent);
    }

    /// Whole frames inside damaged ones (a delimiter lost, a frame torn short and joined onto
    /// the next) are published as `mend replay` keeps them, whole or fed in small chunks, and
    /// every entry still decodes alone.
    #[test]
    fn frames_found_inside_damaged_ones_are_published_as_replay_keeps_them() {
        use crate::input::{ByteCounts, FrameReader, Item, ItemReader};
        // Two sensors taking turns, every seq sent.
        let mut enc = Encoder::new();
        let mut log = Vec::new();
        // Each frame's reading, in order (`None`: a header).
        let mut ids = Vec::new();
        for turn in 0..4u32 {
            let base = turn / 2 * 150;
            let h = Header::new(7 + turn % 2, 3, 1_000, ClockKind::Boot, 0).with_base(base);
            log.extend_from_slice(&enc.to_buf(&Frame::Header(h)).unwrap());
            ids.push(None);
            for seq in base..base + 150 {
                let w = WireReading {
                    seq,
                    offset_ms: 0,
                    celsius_delta: seq as i32,
                };
                log.extend_from_slice(&enc.to_buf(&Frame::Reading(w)).unwrap());
                ids.push(Some((7 + turn % 2, seq)));
            }
        }
        let ends: Vec<usize> = (0..log.len()).filter(|i| log[*i] == 0).collect();
        let mut damaged = Vec::new();
        let mut from = 0;
        let mut whole = Vec::new();
        for (n, &end) in ends.iter().enumerate() {
            // Headers are spared: the readings after a lost one are lost with it.
            let torn = ids[n].is_some() && matches!(n % 9, 5 | 7);
            match n % 9 {
                // The delimiter lost: alone, and between two torn frames.
                3 | 6 => damaged.extend_from_slice(&log[from..end]),
                // Torn: the last two bytes and the delimiter lost.
                5 | 7 if torn => damaged.extend_from_slice(&log[from..end - 2]),
                _ => damaged.extend_from_slice(&log[from..=end]),
            }
            if !torn {
                whole.extend(ids[n]);
            }
            from = end + 1;
        }
        // And the capture cut just before its last delimiter.
        assert_eq!(damaged.pop(), Some(0));
        let mut reader = FrameReader::new(
            std::io::Cursor::new(damaged.clone()),
            0,
            ByteCounts::default(),
            None,
        );
        let mut kept = Vec::new();
        while let Some(item) = reader.next_item().unwrap() {
            if let Item::Reading(r) = item {
                kept.push((r.reading.sensor, r.reading.seq));
            }
        }
        assert_eq!(kept, whole, "every reading whose frame is whole is kept");
        let (plain, _) = frames(&damaged);
        let plain = plain
            .iter()
            .filter(|f| matches!(f, Frame::Reading(_)))
            .count();
        assert!(
            kept.len() > plain + 50,
            "{} kept, {plain} without a look inside",
            kept.len()
        );
        for chunk in [damaged.len(), 3] {
            let mut s = Splitter::new();
            let mut out = Split::default();
            for c in damaged.chunks(chunk) {
                s.feed(c, &mut out).unwrap();
            }
            s.finish(&mut out).unwrap();
            let mut got = Vec::new();
            for (sensor, entry) in &out.entries {
                let (frames, skipped) = frames(entry);
                assert_eq!(skipped, 0, "an entry of sensor {sensor} decodes alone");
                got.extend(frames.iter().filter_map(|f| match f {
                    Frame::Reading(w) => Some((*sensor, w.seq)),
                    _ => None,
                }));
            }
            got.sort_unstable();
            let mut want = kept.clone();
            want.sort_unstable();
            assert_eq!(got, want, "chunks of {chunk}");
        }
    }

    /// Every entry decodes alone, starting with its session's header, and the entries hold
    /// exactly the readings `sent`.
    #[track_caller]
    fn assert_entries_decode_alone(split: &Split, sent: &[(u32, u32)]) {
        assert!(split.skipped.is_empty());
        let mut got = Vec::new();
        for (sensor, entry) in &split.entries {
            let (frames, skipped) = frames(entry);
            assert_eq!(skipped, 0, "an entry of sensor {sensor} decodes alone");
            let Some(Frame::Header(h)) = frames.first() else {
                panic!("an entry starts with its header");
            };
            assert_eq!((h.sensor, h.session), (*sensor, 3));
            for f in &frames[1..] {
                match f {
                    Frame::Reading(w) => got.push((*sensor, w.seq)),
                    other => panic!("unexpected frame {other:?}"),
                }
            }
        }
        got.sort_unstable();
        let mut want = sent.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn a_version_1_capture_is_published_byte_for_byte() {
        let h = Header {
            version: 1,
            ..Header::new(5, 1, 1_000, ClockKind::Boot, 0)
        };
        let mut log = Frame::Header(h).to_buf().unwrap().to_vec();
        for seq in 0..100 {
            let w = WireReading {
                seq,
                offset_ms: 0,
                celsius_delta: 0,
            };
            log.extend_from_slice(&Frame::Reading(w).to_buf().unwrap());
        }
        let split = split(&log).unwrap();
        let header_len = log.iter().position(|b| *b == 0).unwrap() + 1;
        let joined: Vec<u8> = split
            .entries
            .iter()
            .flat_map(|(_, e)| {
                assert_eq!(e[..header_len], log[..header_len], "the header as captured");
                e[header_len..].to_vec()
            })
            .collect();
        assert_eq!(joined, log[header_len..]);
    }
}
