//! Reading captures: format detection, the frame-log reader and the JSONL reader.
//!
//! Both readers turn bytes into [`Item`]s in file order, with bounded memory (a read chunk,
//! a line, a few batches), and never stop at bad input: every byte or line they cannot use
//! becomes a [`DeadLetter`] with the reason and the location, and the reading after it is
//! read as if nothing had happened. Every byte read is accounted for in [`ByteCounts`].
//!
//! A replay reads each input on threads of its own: a frame log on one ([`ThreadedReader`]),
//! JSONL split into batches of lines that several threads parse ([`ParallelJsonl`]), with
//! exactly the items and books of the plain readers.
//!
//! A frame log only makes sense with its session header: a reading frame carries its seq and
//! its offset from the schedule, not its sensor or time. The reader therefore tracks the
//! current [`Header`]; a reading with no usable header before it (the log was cut, or the
//! header was damaged or of an unknown version) is dead-lettered rather than guessed at.

pub mod seek;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;
use mend_core::{
    Celsius, ClockKind, DecodeEvent, Decoder, Fault, Frame, Header, Reading, SkipReason, Stats,
};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The size of one read from a frame log.
pub const CHUNK: usize = 256 * 1024;

/// The longest JSONL line that is parsed; longer lines are dead-lettered.
pub const MAX_LINE: usize = 64 * 1024;

/// How much of a rejected line a dead-letter record quotes.
const QUOTE: usize = 200;

/// Where an input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// A file.
    Path(PathBuf),
    /// Standard input (`-` on the command line).
    Stdin,
    /// Bytes in memory (the library API).
    Bytes(std::sync::Arc<[u8]>),
}

impl InputSource {
    /// The name used in messages and dead-letter records.
    pub fn name(&self) -> String {
        match self {
            InputSource::Path(p) => p.display().to_string(),
            InputSource::Stdin => "-".to_string(),
            InputSource::Bytes(_) => "<memory>".to_string(),
        }
    }

    /// The command-line form: `-` is standard input, anything else a path.
    pub fn from_arg(arg: &Path) -> Self {
        if arg.as_os_str() == "-" {
            InputSource::Stdin
        } else {
            InputSource::Path(arg.to_path_buf())
        }
    }
}

/// The two capture formats mend reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// mend frames: postcard + CRC + COBS, `0x00`-delimited.
    Frames,
    /// The prototype's one-JSON-object-per-line events.
    Jsonl,
}

impl Format {
    /// `"frames"` or `"jsonl"`.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Frames => "frames",
            Format::Jsonl => "jsonl",
        }
    }
}

/// How much of an input format detection reads at most, when the first bytes say nothing
/// (blank space, say): it reads 64 KiB, then twice as much each time, up to this.
pub const DETECT_LIMIT: usize = 4 << 20;

/// What the first bytes of an input show, before any decision for the undecided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Evidence {
    /// Whole frames with a good CRC, at least as many as JSON-object lines.
    Frames,
    /// Lines that are JSON objects (or arrays), more than whole frames.
    Jsonl,
    /// Neither yet: nothing but blank space, or bytes with no frame and no JSON line.
    None,
}

/// Counts the evidence in `head`: whole frames whose CRC holds against lines that start
/// with `{` or `[`.
fn evidence(head: &[u8]) -> Evidence {
    let mut frames: u64 = 0;
    let mut dec: Decoder = Decoder::new();
    for &b in head {
        if let Some(DecodeEvent::Frame { .. }) = dec.push(b) {
            frames += 1;
        }
    }
    let lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(l))
        .filter(|l| {
            matches!(
                l.iter().find(|b| !b.is_ascii_whitespace()),
                Some(b'{') | Some(b'[')
            )
        })
        .count() as u64;
    if frames > 0 && frames >= lines {
        Evidence::Frames
    } else if lines > 0 {
        Evidence::Jsonl
    } else {
        Evidence::None
    }
}

/// True when `head` reads as text: UTF-8 (but for a character cut at the end) without
/// control bytes other than tab, CR, LF and form feed.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A character cut by the end of the head, not a bad byte.
        Err(e) => e.error_len().is_none(),
    };
    valid
        && !head
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C))
}

/// Decides the format of an input from its first bytes, `head`: `None` when it is neither
/// a mend frame log nor the prototype's JSONL (text without a single JSON line, such as a
/// CSV export).
///
/// A frame log shows whole frames whose CRC holds; a JSONL log shows lines that are JSON
/// objects. Whichever shows more wins, so junk before the first line, a multi-byte
/// character cut by the end of `head`, or a damaged frame here and there change nothing.
/// Where neither shows, blank space is JSONL (blank lines, accounted for as such), other
/// text is neither, and binary bytes are a frame log too damaged to show a frame, whose
/// every byte is then accounted for as skipped or damaged. An empty input is a frame log.
///
/// # Examples
/// ```
/// use mend::input::{detect, Format};
/// assert_eq!(detect(b"{\"timestamp\": 1}\n"), Some(Format::Jsonl));
/// let mut junk_first = vec![0u8; 512];
/// junk_first.extend_from_slice(b"\n{\"timestamp\": 1}\n");
/// assert_eq!(detect(&junk_first), Some(Format::Jsonl));
/// assert_eq!(detect(&[0x03, 0x01, 0x05, 0x00]), Some(Format::Frames));
/// assert_eq!(detect(b"  \n\n"), Some(Format::Jsonl));
/// assert_eq!(detect(b"sensor,session,seq,time\n1,2,3,4\n"), None);
/// assert_eq!(detect(b""), Some(Format::Frames));
/// ```
pub fn detect(head: &[u8]) -> Option<Format> {
    match evidence(head) {
        Evidence::Frames => Some(Format::Frames),
        Evidence::Jsonl => Some(Format::Jsonl),
        Evidence::None if head.is_empty() => Some(Format::Frames),
        Evidence::None if head.iter().all(u8::is_ascii_whitespace) => Some(Format::Jsonl),
        Evidence::None if is_text(head) => None,
        Evidence::None => Some(Format::Frames),
    }
}

/// Where something was found in an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Location {
    /// A byte range of a frame log.
    Bytes {
        /// The first byte.
        offset: u64,
        /// How many bytes.
        length: u64,
    },
    /// A line of a JSONL log, counted from 1.
    Line {
        /// The line number.
        line: u64,
    },
    /// A reading found wrong only after reordering, where its place in the input is no
    /// longer known: named by its identity instead.
    Released {
        /// The sensor.
        sensor: u32,
        /// The session.
        session: u32,
        /// The seq.
        seq: u32,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Bytes { offset, length } => {
                write!(f, "byte offset {offset} ({length} bytes)")
            }
            Location::Line { line } => write!(f, "line {line}"),
            Location::Released {
                sensor,
                session,
                seq,
            } => write!(f, "sensor {sensor} session {session} seq {seq}"),
        }
    }
}

/// Something that could not be used, where it was, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The index of the input.
    pub input: usize,
    /// Where in the input.
    pub location: Location,
    /// A short machine-readable reason (`bad_crc`, `missing_field`, …).
    pub reason: &'static str,
    /// What was wrong, for people.
    pub detail: String,
}

/// What the stream a reading belongs to is like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamMeta {
    /// Readings carry a sample counter (frame logs) or not (JSONL).
    pub has_seq: bool,
    /// The sampling period in ms.
    pub period_ms: u32,
    /// The session's clock.
    pub clock: ClockKind,
}

/// A reading as read, with where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadingItem {
    /// The index of the input it came from.
    pub input: usize,
    /// The reading.
    pub reading: Reading,
    /// Its stream's properties.
    pub meta: StreamMeta,
    /// Where it was.
    pub at: Location,
    /// Sent again by the node in answer to a resend (a replayed frame): a measured reading
    /// like any other, counted as recovered by resend.
    pub replayed: bool,
}

/// One thing read from an input, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A reading.
    Reading(ReadingItem),
    /// A session header (frame logs).
    Header(Header),
    /// An edge stats frame, with the sensor of the header before it.
    Stats {
        /// The sensor.
        sensor: u32,
        /// The frame.
        stats: Stats,
    },
    /// A heartbeat: the node was alive and had nothing else to send.
    Heartbeat {
        /// The sensor of the header before it.
        sensor: u32,
        /// The session.
        session: u32,
    },
    /// A failed sample reported by the edge.
    Fault {
        /// The sensor.
        sensor: u32,
        /// The session.
        session: u32,
        /// The fault.
        fault: Fault,
    },
    /// Something unusable.
    Dead(DeadLetter),
}

/// The byte books of one input: `good + bad + skipped == read`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByteCounts {
    /// Bytes in good frames (or lines that gave a reading).
    pub good: u64,
    /// Bytes in damaged frames (or rejected lines).
    pub bad: u64,
    /// Bytes that were never a frame (or blank lines).
    pub skipped: u64,
    /// Bytes read.
    pub read: u64,
    /// Bytes not read because a seek started after them (`--from`).
    pub before_seek: u64,
    /// Bytes not read because the input was past `--until`.
    pub after_stop: u64,
    /// The file size, when known: the size when it was opened, or the bytes actually
    /// there if it grew while it was read (then `grown` says by how much).
    pub total: Option<u64>,
    /// Bytes the file grew by while it was read (a capture still being written), all read.
    pub grown: u64,
    /// Good frames (or lines that gave a reading).
    pub good_items: u64,
    /// Damaged frames (or rejected lines).
    pub bad_items: u64,
    /// Skipped spans (or blank lines).
    pub skipped_items: u64,
}

impl ByteCounts {
    /// True when `good + bad + skipped == read`, and, for a file, when
    /// `before_seek + read + after_stop == size`.
    pub fn balanced(&self) -> bool {
        let inner = self.good + self.bad + self.skipped == self.read;
        let outer = self
            .total
            .is_none_or(|t| self.before_seek + self.read + self.after_stop == t);
        inner && outer
    }

    /// These books, with the bytes after an early stop counted as `after_stop` when the
    /// reader `stopped` (a line reader's `read` ends with the line that stopped it).
    fn with_stop(mut self, stopped: bool) -> Self {
        if stopped {
            if let Some(t) = self.total {
                self.after_stop = t.saturating_sub(self.before_seek + self.read);
            }
        }
        self.settled()
    }

    /// These books, with a file that grew while it was read counted at the size it had:
    /// the bytes past its size at the start were read and booked like any other.
    fn settled(mut self) -> Self {
        if let Some(t) = self.total {
            let seen = self.before_seek + self.read + self.after_stop;
            if seen > t {
                self.grown += seen - t;
                self.total = Some(seen);
            }
        }
        self
    }

    /// Adds the books of lines read elsewhere (`read`, `good`, `bad`, `skipped` and their
    /// item counts).
    fn add_read(&mut self, more: &ByteCounts) {
        self.read += more.read;
        self.good += more.good;
        self.bad += more.bad;
        self.skipped += more.skipped;
        self.good_items += more.good_items;
        self.bad_items += more.bad_items;
        self.skipped_items += more.skipped_items;
    }
}

/// Moves `items` to the end of `out` (swapping the vectors when `out` is empty, so nothing is
/// copied) and returns the emptied vector, to be filled again.
fn hand_over(out: &mut Vec<Item>, mut items: Vec<Item>) -> Vec<Item> {
    if out.is_empty() {
        std::mem::swap(out, &mut items);
    } else {
        out.append(&mut items);
    }
    items
}

/// A source of [`Item`]s.
pub trait ItemReader {
    /// The next item, `None` at the end. Errors are I/O errors only; bad data is an item.
    fn next_item(&mut self) -> io::Result<Option<Item>>;
    /// Appends the next items to `out`, up to [`BATCH`] of them; returns `false` once the
    /// input is exhausted (after appending its last items). Replays read in batches: a
    /// call per batch instead of per item, and a batch moves between threads in one piece.
    fn fill(&mut self, out: &mut Vec<Item>) -> io::Result<bool> {
        while out.len() < BATCH {
            match self.next_item()? {
                Some(item) => out.push(item),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
    /// The byte books so far.
    fn bytes(&self) -> ByteCounts;
    /// The format being read.
    fn format(&self) -> Format;
    /// Stop once readings are later than `ms` (for `--until`): a JSONL reader after the
    /// first, a frame log after a run of [`STOP_RUN`](crate::input::seek::STOP_RUN). Only for
    /// inputs known to grow in time all through; replays set no stop on JSONL, and stop
    /// frame logs by a [`StopRule`] backed by probes.
    fn set_stop_after(&mut self, ms: Option<u64>);
    /// True once the reader stopped early because of [`ItemReader::set_stop_after`].
    fn stopped_early(&self) -> bool;
}

/// When a frame log may stop early, for `--until`: after `run` readings in a row later than
/// `after_ms`, once past byte `from_byte`. [`crate::input::seek::plan`] makes these rules only
/// where probes show time growing through the file, so that the readings skipped cannot
/// matter; the run keeps one outlying reading (a clock glitch) from stopping a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StopRule {
    /// Readings later than this count towards the run, ms.
    pub after_ms: u64,
    /// No stop before this byte offset.
    pub from_byte: u64,
    /// Readings in a row needed to stop.
    pub run: u32,
}

/// Options for opening an input.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The period of JSONL readings, in ms.
    pub jsonl_period_ms: u32,
    /// Start decoding a frame log at this byte offset (a seek for `--from`).
    pub start_offset: u64,
    /// Advance this bar by the bytes read.
    pub progress: Option<ProgressBar>,
    /// Stop a frame log early under this rule (JSONL is always read to the end).
    pub stop: Option<StopRule>,
    /// Decode on a thread of its own ([`ThreadedReader`]).
    pub threaded: bool,
    /// Read as this format instead of detecting it (`--input-format`).
    pub format: Option<Format>,
}

/// Opens an input and detects its format (see [`detect`]), unless `opts.format` names it.
///
/// The error says which file and why (missing, unreadable, neither a frame log nor JSONL).
pub fn open(
    source: &InputSource,
    index: usize,
    opts: &OpenOptions,
) -> anyhow::Result<Box<dyn ItemReader>> {
    let name = source.name();
    let (mut raw, total): (Box<dyn Read + Send>, Option<u64>) = match source {
        InputSource::Path(p) => {
            let mut f = File::open(p).with_context(|| format!("{name}: cannot open input"))?;
            let meta = f
                .metadata()
                .with_context(|| format!("{name}: cannot read metadata"))?;
            if meta.is_dir() {
                anyhow::bail!("{name}: is a directory, not a capture");
            }
            let total = meta.is_file().then_some(meta.len());
            if opts.start_offset > 0 {
                f.seek(SeekFrom::Start(opts.start_offset))
                    .with_context(|| format!("{name}: cannot seek"))?;
            }
            (Box::new(f), total)
        }
        InputSource::Stdin => (Box::new(io::stdin()), None),
        InputSource::Bytes(b) => {
            let start = usize::try_from(opts.start_offset)
                .unwrap_or(usize::MAX)
                .min(b.len());
            let c = Cursor::new(b.clone());
            let mut c = c;
            c.set_position(start as u64);
            (Box::new(c), Some(b.len() as u64))
        }
    };
    // The head: 64 KiB, or more while it shows neither format (see [`detect`]).
    let mut head: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut want = 64 * 1024;
    loop {
        let at_end = read_up_to(&mut raw, &mut head, want)
            .with_context(|| format!("{name}: cannot read"))?;
        let decided =
            opts.format.is_some() || opts.start_offset > 0 || evidence(&head) != Evidence::None;
        if decided || at_end || want >= DETECT_LIMIT {
            break;
        }
        want = (want * 2).min(DETECT_LIMIT);
    }
    let format = match opts.format {
        Some(f) => f,
        // A seek lands only in frame logs.
        None if opts.start_offset > 0 => Format::Frames,
        None => detect(&head).ok_or_else(|| not_a_capture(&name, &head))?,
    };
    let reader: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(raw));
    let counts = ByteCounts {
        total,
        before_seek: opts.start_offset,
        ..ByteCounts::default()
    };
    if format == Format::Jsonl && opts.threaded {
        let jsonl = JsonlReader::new(
            reader,
            index,
            opts.jsonl_period_ms,
            counts,
            opts.progress.clone(),
        );
        return Ok(Box::new(ParallelJsonl::spawn(
            jsonl,
            counts,
            name,
            JSONL_BATCH,
        )));
    }
    let inner: Box<dyn ItemReader + Send> = match format {
        Format::Frames => {
            let mut frames = FrameReader::new(reader, index, counts, opts.progress.clone());
            frames.set_stop_rule(opts.stop);
            Box::new(frames)
        }
        Format::Jsonl => Box::new(JsonlReader::new(
            reader,
            index,
            opts.jsonl_period_ms,
            counts,
            opts.progress.clone(),
        )),
    };
    if opts.threaded {
        Ok(Box::new(ThreadedReader::spawn(inner, counts, format, name)))
    } else {
        Ok(inner)
    }
}

/// Reads from `raw` until `head` holds `want` bytes or the input ends; true at the end.
fn read_up_to(raw: &mut dyn Read, head: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let mut got = head.len();
    head.resize(want.max(got), 0);
    let mut at_end = false;
    while got < head.len() {
        match raw.read(head.get_mut(got..).unwrap_or_default()) {
            Ok(0) => {
                at_end = true;
                break;
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok(at_end)
}

/// The error for an input that is neither format, quoting its first line.
fn not_a_capture(name: &str, head: &[u8]) -> anyhow::Error {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut quoted = String::from_utf8_lossy(first).trim_end().to_string();
    if quoted.len() > 80 {
        let mut cut = 80;
        while !quoted.is_char_boundary(cut) {
            cut -= 1;
        }
        quoted.truncate(cut);
        quoted.push('…');
    }
    let hint = if quoted.starts_with("sensor,session,seq,time,") {
        " (it is a CSV export of mend replay, not a capture)"
    } else {
        ""
    };
    anyhow::anyhow!(
        "{name}: not a mend capture or prototype JSONL{hint}: it is text without a single JSON line, starting {quoted:?}; \
         give --input-format mlog or jsonl to read it anyway"
    )
}

/// Items per batch of [`ItemReader::fill`].
pub const BATCH: usize = 4096;

/// One batch from a reader thread, with the books as of its last item.
struct Batch {
    items: Vec<Item>,
    counts: ByteCounts,
    stopped: bool,
    done: bool,
    error: Option<io::Error>,
}

/// Runs a reader on its own thread, so that decoding (CRC, COBS, postcard or JSON parsing)
/// overlaps with the pipeline. Batches go through a channel of two, so memory stays bounded
/// and order is kept: the items come out exactly as the reader produced them. Emptied
/// batches travel back to the thread to be filled again, so no batch is allocated twice.
pub struct ThreadedReader {
    rx: std::sync::mpsc::Receiver<Batch>,
    empty: std::sync::mpsc::Sender<Vec<Item>>,
    current: std::collections::VecDeque<Item>,
    counts: ByteCounts,
    stopped: bool,
    done: bool,
    format: Format,
}

impl ThreadedReader {
    /// Starts `inner` (the input called `name`) on a thread; `counts` are the books before
    /// the first item. A read error is reported with the name and the byte offset.
    pub fn spawn(
        mut inner: Box<dyn ItemReader + Send>,
        counts: ByteCounts,
        format: Format,
        name: String,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
        let (empty, recycled) = std::sync::mpsc::channel::<Vec<Item>>();
        std::thread::spawn(move || loop {
            // A batch that came back (or a new one), with room for a whole batch: a merge
            // of several inputs may hand back an empty vector without any.
            let mut items = recycled.try_recv().unwrap_or_default();
            items.clear();
            items.reserve(BATCH);
            let (done, error) = match inner.fill(&mut items) {
                Ok(more) => (!more, None),
                Err(e) => {
                    let at = inner.bytes();
                    let e = io::Error::new(
                        e.kind(),
                        format!(
                            "{name}: cannot read at byte {}: {e}",
                            at.before_seek + at.read
                        ),
                    );
                    (false, Some(e))
                }
            };
            let last = done || error.is_some();
            let batch = Batch {
                items,
                counts: inner.bytes(),
                stopped: inner.stopped_early(),
                done,
                error,
            };
            // A closed channel means the replay stopped early (an output failed).
            if tx.send(batch).is_err() || last {
                break;
            }
        });
        Self {
            rx,
            empty,
            current: std::collections::VecDeque::new(),
            counts,
            stopped: false,
            done: false,
            format,
        }
    }

    /// Waits for the next batch; `None` once the thread sent its last one.
    fn receive(&mut self) -> io::Result<Option<Vec<Item>>> {
        if self.done {
            return Ok(None);
        }
        let batch = self
            .rx
            .recv()
            .map_err(|_| io::Error::other("the input reader stopped unexpectedly"))?;
        self.counts = batch.counts;
        self.stopped = batch.stopped;
        self.done = batch.done;
        if let Some(e) = batch.error {
            self.done = true;
            return Err(e);
        }
        Ok(Some(batch.items))
    }
}

impl ItemReader for ThreadedReader {
    fn next_item(&mut self) -> io::Result<Option<Item>> {
        loop {
            if let Some(item) = self.current.pop_front() {
                return Ok(Some(item));
            }
            match self.receive()? {
                Some(items) => self.current = items.into(),
                None => return Ok(None),
            }
        }
    }

    fn fill(&mut self, out: &mut Vec<Item>) -> io::Result<bool> {
        if !self.current.is_empty() {
            out.extend(self.current.drain(..));
            return Ok(true);
        }
        match self.receive()? {
            Some(items) => {
                let emptied = hand_over(out, items);
                // The thread may have finished; then the batch is simply dropped.
                let _ = self.empty.send(emptied);
                Ok(!self.done)
            }
            None => Ok(false),
        }
    }

    fn bytes(&self) -> ByteCounts {
        self.counts
    }

    fn format(&self) -> Format {
        self.format
    }

    /// The stop point is fixed when the thread starts ([`OpenOptions::stop`]).
    fn set_stop_after(&mut self, _ms: Option<u64>) {}

    fn stopped_early(&self) -> bool {
        self.stopped
    }
}

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

    fn dead(&self, span: mend_core::Span, reason: &'static str, detail: String) -> Item {
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
                Some(self.dead(span, reason.name(), format!("{what}: {reason}")))
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
                                "zero_period",
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
                                "no_header",
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
                                "bad_timestamp",
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
                            "no_header",
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
                            "no_header",
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
                            "no_header",
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

    /// A rule of [`STOP_RUN`](crate::input::seek::STOP_RUN) readings, from the start.
    fn set_stop_after(&mut self, ms: Option<u64>) {
        self.set_stop_rule(ms.map(|after_ms| StopRule {
            after_ms,
            from_byte: 0,
            run: crate::input::seek::STOP_RUN,
        }));
    }

    fn stopped_early(&self) -> bool {
        self.stopped
    }
}

/// A JSON scalar as found, so that a wrong type can be named precisely.
enum Scalar<'a> {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(std::borrow::Cow<'a, str>),
    Bool(bool),
    Null,
    Compound,
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Unsigned(_) | Scalar::Signed(_) => "an integer",
            Scalar::Float(_) => "a float",
            Scalar::Str(_) => "a string",
            Scalar::Bool(_) => "a boolean",
            Scalar::Null => "null",
            Scalar::Compound => "an array or object",
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Signed(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// One prototype event with every field optional, so that a missing field is reported as
/// such rather than as a parse error. A field given as `null` is present (`Scalar::Null`),
/// so that it is reported as a wrong type, not as missing.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    timestamp: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    event_type: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    temperature: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    status: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    synthetic: Option<Scalar<'a>>,
}

/// A field that is there, whatever its value (`null` included).
fn present<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Scalar<'a>>, D::Error> {
    Scalar::deserialize(d).map(Some)
}

/// Why a JSONL line gave no reading: the `reason` of its dead-letter record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LineReason {
    /// The line is longer than [`MAX_LINE`].
    LineTooLong,
    /// The line is not UTF-8.
    NotUtf8,
    /// The line is not JSON at all.
    MalformedJson,
    /// The line is JSON, but not an object.
    NotAnObject,
    /// A field the reading needs (`timestamp`, `temperature`) is absent.
    MissingField,
    /// A field has the wrong JSON type (`null` included).
    WrongType,
    /// The timestamp is negative, fractional or too large.
    BadTimestamp,
    /// A number is NaN, infinite, or too large for a float (`1e309`).
    NotFinite,
    /// The temperature is outside what any thermometer reports.
    OutOfRange,
    /// An event of another type than `TEMPERATURE_SENSOR`: set aside, not a reading.
    OtherEvent,
    /// A status other than `normal`, `low`, `high` or `error`.
    UnknownStatus,
    /// A fill the prototype wrote (`"synthetic": true`): mend recomputes fills.
    SyntheticInput,
}

impl LineReason {
    /// The name in dead-letter records and summaries.
    ///
    /// # Examples
    /// ```
    /// use mend::input::LineReason;
    /// assert_eq!(LineReason::OtherEvent.as_str(), "other_event");
    /// assert_eq!(LineReason::LineTooLong.to_string(), "line_too_long");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            LineReason::LineTooLong => "line_too_long",
            LineReason::NotUtf8 => "not_utf8",
            LineReason::MalformedJson => "malformed_json",
            LineReason::NotAnObject => "not_an_object",
            LineReason::MissingField => "missing_field",
            LineReason::WrongType => "wrong_type",
            LineReason::BadTimestamp => "bad_timestamp",
            LineReason::NotFinite => "not_finite",
            LineReason::OutOfRange => "out_of_range",
            LineReason::OtherEvent => "other_event",
            LineReason::UnknownStatus => "unknown_status",
            LineReason::SyntheticInput => "synthetic_input",
        }
    }
}

impl std::fmt::Display for LineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a JSONL line gave no reading.
struct LineError {
    reason: LineReason,
    detail: String,
}

fn line_err(reason: LineReason, detail: impl Into<String>) -> LineError {
    LineError {
        reason,
        detail: detail.into(),
    }
}

/// The lowest and highest temperature a JSONL event may carry, in °C.
pub const JSONL_RANGE: (f64, f64) = (-273.15, 2000.0);

/// Parses one prototype event into `(timestamp_ms, celsius)`.
fn parse_event(line: &[u8]) -> Result<(u64, Celsius), LineError> {
    let text = std::str::from_utf8(line)
        .map_err(|e| line_err(LineReason::NotUtf8, format!("line is not UTF-8 text ({e})")))?;
    let first = text.trim_start().as_bytes().first().copied();
    if first != Some(b'{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => line_err(LineReason::NotAnObject, "line is JSON but not an object"),
            Err(e) => malformed(text, &e),
        });
    }
    let ev: Event = serde_json::from_str(text).map_err(|e| malformed(text, &e))?;
    // Lines without an event type are temperature readings; other events are set aside.
    match ev.event_type {
        None => {}
        Some(Scalar::Str(s)) if s == "TEMPERATURE_SENSOR" => {}
        Some(Scalar::Str(s)) => {
            return Err(line_err(
                LineReason::OtherEvent,
                format!("event_type {s:?} is not TEMPERATURE_SENSOR: not a temperature reading"),
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("event_type is {}; expected a string", other.kind()),
            ))
        }
    }
    let ts = match ev.timestamp {
        None => {
            return Err(line_err(
                LineReason::MissingField,
                "missing field \"timestamp\"",
            ))
        }
        Some(Scalar::Unsigned(t)) => t,
        Some(Scalar::Signed(t)) => {
            return Err(line_err(
                LineReason::BadTimestamp,
                format!("timestamp {t} is negative"),
            ))
        }
        Some(Scalar::Float(t)) => {
            return Err(line_err(
                LineReason::BadTimestamp,
                format!("timestamp {t} is a float; expected whole unix seconds"),
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("timestamp is {}; expected whole unix seconds", other.kind()),
            ))
        }
    };
    let ts_ms = ts.checked_mul(1_000).ok_or_else(|| {
        line_err(
            LineReason::BadTimestamp,
            format!("timestamp {ts} is out of range"),
        )
    })?;
    let t = match ev.temperature {
        None => {
            return Err(line_err(
                LineReason::MissingField,
                "missing field \"temperature\"",
            ))
        }
        Some(Scalar::Unsigned(v)) => v as f64,
        Some(Scalar::Signed(v)) => v as f64,
        Some(Scalar::Float(v)) => v,
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("temperature is {}; expected a number", other.kind()),
            ))
        }
    };
    if !t.is_finite() {
        return Err(line_err(
            LineReason::NotFinite,
            format!("temperature {t} is not finite"),
        ));
    }
    if t < JSONL_RANGE.0 || t > JSONL_RANGE.1 {
        return Err(line_err(
            LineReason::OutOfRange,
            format!("temperature {t} °C is outside -273.15…2000 °C"),
        ));
    }
    match ev.status {
        None => {}
        Some(Scalar::Str(s)) if matches!(&*s, "normal" | "low" | "high" | "error") => {}
        Some(Scalar::Str(s)) => {
            return Err(line_err(
                LineReason::UnknownStatus,
                format!("status {s:?} is not normal, low, high or error"),
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("status is {}; expected a string", other.kind()),
            ))
        }
    }
    match ev.synthetic {
        None | Some(Scalar::Bool(false)) | Some(Scalar::Null) => {}
        Some(Scalar::Bool(true)) => {
            return Err(line_err(
                LineReason::SyntheticInput,
                "synthetic line written by the prototype; mend recomputes fills",
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("synthetic is {}; expected a boolean", other.kind()),
            ))
        }
    }
    // Rounded to the nearest 1/256 °C, ties to even; exact for any value a real sensor
    // reports (1/16, 1/8 or 0.5 °C steps).
    let c = Celsius::checked_from_num(t).ok_or_else(|| {
        line_err(
            LineReason::OutOfRange,
            format!("temperature {t} is not representable"),
        )
    })?;
    Ok((ts_ms, c))
}

fn malformed(text: &str, e: &serde_json::Error) -> LineError {
    // Python's json module writes NaN and Infinity, which are not JSON; a number beyond
    // the largest float (1e309) is infinite too, and serde_json says only this about it.
    let lower = text.to_ascii_lowercase();
    if e.to_string().starts_with("number out of range") {
        line_err(
            LineReason::NotFinite,
            format!("a number is too large to be finite ({e})"),
        )
    } else if lower.contains("nan") || lower.contains("infinity") {
        line_err(
            LineReason::NotFinite,
            format!("NaN or Infinity is not a number ({e})"),
        )
    } else if e.is_data() {
        line_err(LineReason::WrongType, format!("{e}"))
    } else {
        line_err(LineReason::MalformedJson, format!("malformed JSON ({e})"))
    }
}

/// Reads the prototype's JSONL log: one event per line, strictly validated.
pub struct JsonlReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    line_no: u64,
    input: usize,
    period_ms: u32,
    counts: ByteCounts,
    progress: Option<ProgressBar>,
    stop_after: Option<u64>,
    stopped: bool,
    done: bool,
}

impl<R: Read> JsonlReader<R> {
    /// A reader of `inner`, the input numbered `input`, whose readings are `period_ms` apart.
    pub fn new(
        inner: R,
        input: usize,
        period_ms: u32,
        counts: ByteCounts,
        progress: Option<ProgressBar>,
    ) -> Self {
        Self {
            inner: BufReader::with_capacity(CHUNK, inner),
            line: Vec::with_capacity(256),
            line_no: 0,
            input,
            period_ms,
            counts,
            progress,
            stop_after: None,
            stopped: false,
            done: false,
        }
    }

    /// Reads up to `max` lines (and about [`JSONL_BATCH_BYTES`]) into `raw`; returns
    /// `false` at the end of the input.
    fn read_lines(&mut self, raw: &mut RawLines, max: usize) -> io::Result<bool> {
        while raw.lines.len() < max && raw.bytes.len() < JSONL_BATCH_BYTES {
            let (taken, newline) = self.read_line()?;
            if taken == 0 {
                return Ok(false);
            }
            self.line_no += 1;
            raw.bytes.extend_from_slice(&self.line);
            raw.lines.push(RawLine {
                end: raw.bytes.len(),
                taken,
                newline,
                line_no: self.line_no,
            });
        }
        Ok(true)
    }

    /// Reads one line into `self.line`, at most [`MAX_LINE`] bytes of it; returns the bytes
    /// the line took in the file and whether it ended with a newline.
    fn read_line(&mut self) -> io::Result<(u64, bool)> {
        self.line.clear();
        let mut taken: u64 = 0;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok((taken, false));
            }
            let (used, newline) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = MAX_LINE + 1 - self.line.len().min(MAX_LINE + 1);
            let keep = used.min(room);
            self.line.extend_from_slice(&buf[..keep]);
            self.inner.consume(used);
            taken += used as u64;
            self.counts.read += used as u64;
            if let Some(p) = &self.progress {
                p.inc(used as u64);
            }
            if newline {
                return Ok((taken, true));
            }
        }
    }
}

/// Lines per batch that the JSONL splitter hands to a parser thread.
pub const JSONL_BATCH: usize = 2048;
/// A batch of JSONL lines ends once it holds this many bytes, so that long lines cannot
/// make batches (and memory) large: a batch is at most this plus one [`MAX_LINE`].
pub const JSONL_BATCH_BYTES: usize = 1 << 20;
/// Threads that parse JSONL lines in a threaded read ([`ParallelJsonl`]).
pub const JSONL_PARSERS: usize = 2;

/// JSONL lines as read, for a parser thread: their bytes back to back, and per line where
/// it ends in them, what it took in the file, whether it had a newline, and its number.
struct RawLines {
    bytes: Vec<u8>,
    lines: Vec<RawLine>,
    /// The input ended after these lines (or could not be read further: `error`).
    last: bool,
    error: Option<io::Error>,
}

struct RawLine {
    end: usize,
    taken: u64,
    newline: bool,
    line_no: u64,
}

/// What a parser thread made of [`RawLines`]: the items, and the books of the lines it
/// looked at (all of them, or up to the one that stopped the input).
struct ParsedLines {
    items: Vec<Item>,
    counts: ByteCounts,
    stopped: bool,
    last: bool,
    error: Option<io::Error>,
}

/// Parses a batch of lines as [`JsonlReader`] would, one after the other.
fn parse_lines(
    raw: RawLines,
    input: usize,
    period_ms: u32,
    stop_after: Option<u64>,
) -> ParsedLines {
    let mut counts = ByteCounts::default();
    let mut items = Vec::with_capacity(raw.lines.len());
    let mut stopped = false;
    let mut start = 0;
    for l in &raw.lines {
        let kept = raw.bytes.get(start..l.end).unwrap_or_default();
        start = l.end;
        counts.read += l.taken;
        let line = jsonl_line(kept, l.newline, l.line_no, input, period_ms);
        if let Some((item, ts)) = counts.book(line, l.taken) {
            items.push(item);
            if ts.is_some_and(|t| stop_after.is_some_and(|s| t > s)) {
                stopped = true;
                break;
            }
        }
    }
    ParsedLines {
        items,
        counts,
        stopped,
        last: raw.last,
        error: raw.error,
    }
}

/// Reads JSONL on threads of its own: one splits the input into batches of lines, and
/// [`JSONL_PARSERS`] parse them in turn, so that parsing (most of the work of a JSONL replay)
/// runs on every core. Batches are taken back in the order they were cut, so the items, their
/// line numbers and the books are exactly those of [`JsonlReader`]. Channels of two batches
/// keep memory bounded.
pub struct ParallelJsonl {
    parsed: Vec<std::sync::mpsc::Receiver<ParsedLines>>,
    next: usize,
    pending: std::collections::VecDeque<Item>,
    counts: ByteCounts,
    stopped: bool,
    done: bool,
}

impl ParallelJsonl {
    /// Starts the splitter on `reader` (the input called `name`) and the parsers, with
    /// `batch` lines per batch; `counts` are the books before the first line.
    pub fn spawn<R: Read + Send + 'static>(
        mut reader: JsonlReader<R>,
        counts: ByteCounts,
        name: String,
        batch: usize,
    ) -> Self {
        let (input, period_ms, stop_after) = (reader.input, reader.period_ms, reader.stop_after);
        let mut to_parsers = Vec::with_capacity(JSONL_PARSERS);
        let mut parsed = Vec::with_capacity(JSONL_PARSERS);
        for _ in 0..JSONL_PARSERS {
            let (tx_raw, rx_raw) = std::sync::mpsc::sync_channel::<RawLines>(2);
            let (tx_out, rx_out) = std::sync::mpsc::sync_channel::<ParsedLines>(2);
            std::thread::spawn(move || {
                for raw in rx_raw {
                    // A closed channel: the replay is done with this input.
                    if tx_out
                        .send(parse_lines(raw, input, period_ms, stop_after))
                        .is_err()
                    {
                        break;
                    }
                }
            });
            to_parsers.push(tx_raw);
            parsed.push(rx_out);
        }
        std::thread::spawn(move || {
            for k in 0.. {
                let mut raw = RawLines {
                    bytes: Vec::with_capacity(batch * 128),
                    lines: Vec::with_capacity(batch),
                    last: false,
                    error: None,
                };
                match reader.read_lines(&mut raw, batch) {
                    Ok(more) => raw.last = !more,
                    Err(e) => {
                        let at = reader.counts.before_seek + reader.counts.read;
                        raw.error = Some(io::Error::new(
                            e.kind(),
                            format!("{name}: cannot read at byte {at}: {e}"),
                        ));
                        raw.last = true;
                    }
                }
                let last = raw.last;
                let sent = to_parsers
                    .get(k % JSONL_PARSERS)
                    .is_some_and(|tx| tx.send(raw).is_ok());
                if !sent || last {
                    break;
                }
            }
        });
        Self {
            parsed,
            next: 0,
            pending: std::collections::VecDeque::new(),
            counts,
            stopped: false,
            done: false,
        }
    }
}

impl ItemReader for ParallelJsonl {
    fn next_item(&mut self) -> io::Result<Option<Item>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            let mut batch = Vec::new();
            let more = self.fill(&mut batch)?;
            self.pending = batch.into();
            if !more && self.pending.is_empty() {
                return Ok(None);
            }
        }
    }

    fn fill(&mut self, out: &mut Vec<Item>) -> io::Result<bool> {
        if !self.pending.is_empty() {
            out.extend(self.pending.drain(..));
            return Ok(true);
        }
        if self.done || self.stopped {
            return Ok(false);
        }
        let k = self.next % JSONL_PARSERS;
        self.next += 1;
        let p = self
            .parsed
            .get(k)
            .ok_or_else(|| io::Error::other("no JSONL parser"))?
            .recv()
            .map_err(|_| io::Error::other("the input reader stopped unexpectedly"))?;
        if let Some(e) = p.error {
            self.done = true;
            return Err(e);
        }
        self.counts.add_read(&p.counts);
        hand_over(out, p.items);
        self.stopped = p.stopped;
        self.done = p.last;
        Ok(!(self.done || self.stopped))
    }

    fn bytes(&self) -> ByteCounts {
        self.counts.with_stop(self.stopped)
    }

    fn format(&self) -> Format {
        Format::Jsonl
    }

    /// The stop point is fixed when the threads start (that of the [`JsonlReader`]).
    fn set_stop_after(&mut self, _ms: Option<u64>) {}

    fn stopped_early(&self) -> bool {
        self.stopped
    }
}

/// What one JSONL line is.
enum JsonlLine {
    /// Blank (whitespace only): skipped.
    Blank,
    /// A reading, and its time in ms.
    Reading(Item, u64),
    /// A line that could not be used.
    Bad(Item),
}

/// Makes sense of one JSONL line: `kept` is the line as read (at most [`MAX_LINE`] + 1
/// bytes of it, its newline included when `newline`), `line_no` its number from 1.
fn jsonl_line(kept: &[u8], newline: bool, line_no: u64, input: usize, period_ms: u32) -> JsonlLine {
    let mut body: &[u8] = kept;
    if newline {
        body = body.strip_suffix(b"\n").unwrap_or(body);
    }
    body = body.strip_suffix(b"\r").unwrap_or(body);
    if line_no == 1 {
        body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    }
    // An over-long line is never blank: only its first bytes were kept, and a reading may
    // follow the blank space they hold.
    if kept.len() <= MAX_LINE && body.iter().all(u8::is_ascii_whitespace) {
        return JsonlLine::Blank;
    }
    let result = if kept.len() > MAX_LINE {
        Err(line_err(
            LineReason::LineTooLong,
            format!("line is longer than {MAX_LINE} bytes"),
        ))
    } else {
        parse_event(body)
    };
    match result {
        Ok((timestamp, celsius)) => JsonlLine::Reading(
            Item::Reading(ReadingItem {
                input,
                reading: Reading::new(0, 0, 0, timestamp, celsius),
                meta: StreamMeta {
                    has_seq: false,
                    period_ms,
                    clock: ClockKind::Unix,
                },
                at: Location::Line { line: line_no },
                replayed: false,
            }),
            timestamp,
        ),
        Err(e) => {
            let mut quoted = String::from_utf8_lossy(body).into_owned();
            if quoted.len() > QUOTE {
                let mut cut = QUOTE;
                while !quoted.is_char_boundary(cut) {
                    cut -= 1;
                }
                quoted.truncate(cut);
                quoted.push('…');
            }
            let torn = if newline {
                ""
            } else {
                " (last line has no newline: torn write?)"
            };
            JsonlLine::Bad(Item::Dead(DeadLetter {
                input,
                location: Location::Line { line: line_no },
                reason: e.reason.as_str(),
                detail: format!("{}{torn}: {quoted}", e.detail),
            }))
        }
    }
}

impl ByteCounts {
    /// Books one JSONL line of `taken` bytes; returns its item, if any, and its time if it
    /// is a reading.
    fn book(&mut self, line: JsonlLine, taken: u64) -> Option<(Item, Option<u64>)> {
        match line {
            JsonlLine::Blank => {
                self.skipped += taken;
                self.skipped_items += 1;
                None
            }
            JsonlLine::Reading(item, ts) => {
                self.good += taken;
                self.good_items += 1;
                Some((item, Some(ts)))
            }
            JsonlLine::Bad(item) => {
                self.bad += taken;
                self.bad_items += 1;
                Some((item, None))
            }
        }
    }
}

impl<R: Read> ItemReader for JsonlReader<R> {
    fn next_item(&mut self) -> io::Result<Option<Item>> {
        loop {
            if self.done || self.stopped {
                return Ok(None);
            }
            let (len, newline) = self.read_line()?;
            if len == 0 {
                self.done = true;
                return Ok(None);
            }
            self.line_no += 1;
            let line = jsonl_line(
                &self.line,
                newline,
                self.line_no,
                self.input,
                self.period_ms,
            );
            if let Some((item, ts)) = self.counts.book(line, len) {
                if ts.is_some_and(|t| self.stop_after.is_some_and(|s| t > s)) {
                    self.stopped = true;
                }
                return Ok(Some(item));
            }
        }
    }

    fn bytes(&self) -> ByteCounts {
        self.counts.with_stop(self.stopped)
    }

    fn format(&self) -> Format {
        Format::Jsonl
    }

    fn set_stop_after(&mut self, ms: Option<u64>) {
        self.stop_after = ms;
    }

    fn stopped_early(&self) -> bool {
        self.stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(bytes: &[u8]) -> (Vec<Item>, ByteCounts) {
        let src = InputSource::Bytes(bytes.to_vec().into());
        let mut r = open(
            &src,
            0,
            &OpenOptions {
                jsonl_period_ms: 1_000,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        let mut v = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            v.push(i);
        }
        (v, r.bytes())
    }

    fn reasons(v: &[Item]) -> Vec<&'static str> {
        v.iter()
            .filter_map(|i| match i {
                Item::Dead(d) => Some(d.reason),
                _ => None,
            })
            .collect()
    }

    /// Every kind of JSONL line, many times over (more than a batch of bytes), ending in a
    /// torn line.
    fn jsonl_corpus() -> Vec<u8> {
        let mut text = String::from("\u{FEFF}");
        for i in 0..400u64 {
            let ts = 1_700_000_000 + i;
            text.push_str(&match i % 9 {
                0 => format!("{{\"timestamp\": {ts}, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\"}}\r\n"),
                1 => "not json\n".to_string(),
                2 => "   \n".to_string(),
                3 => format!("{{\"timestamp\": {ts}.5, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 51}}\n"),
                4 => format!("[{ts}]\n"),
                // Every other one of these is too long: 23 of them pass JSONL_BATCH_BYTES.
                5 => format!("{{\"timestamp\": {ts}, \"temperature\": 50, \"pad\": \"{}\"}}\n", "x".repeat(if (i / 9) % 2 == 0 { MAX_LINE + 10 } else { 3 })),
                _ => format!("{{\"timestamp\": {ts}, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": {}, \"status\": \"normal\"}}\n", 50 + i % 7),
            });
        }
        text.push_str("{\"timestamp\": 1800000000, \"event_type\": \"TEMP");
        text.into_bytes()
    }

    #[test]
    fn parallel_jsonl_reads_exactly_what_the_sequential_reader_reads() {
        let bytes = jsonl_corpus();
        assert!(bytes.len() > JSONL_BATCH_BYTES);
        let start = ByteCounts {
            total: Some(bytes.len() as u64),
            ..ByteCounts::default()
        };
        let reader = |stop: Option<u64>| {
            let mut r = JsonlReader::new(Cursor::new(bytes.clone()), 3, 1_000, start, None);
            r.set_stop_after(stop);
            r
        };
        for stop in [None, Some(1_700_000_200_000), Some(0)] {
            let mut seq = reader(stop);
            let mut want = Vec::new();
            while let Some(item) = seq.next_item().unwrap() {
                want.push(item);
            }
            assert!(want.len() > 2 || stop == Some(0));
            for batch in [1, 3, 7, 64, JSONL_BATCH] {
                let mut par = ParallelJsonl::spawn(reader(stop), start, "t".into(), batch);
                let mut got = Vec::new();
                loop {
                    let mut b = Vec::new();
                    let more = par.fill(&mut b).unwrap();
                    got.extend(b);
                    if !more {
                        break;
                    }
                }
                assert!(got == want, "stop {stop:?}, batch {batch}: items differ");
                assert_eq!(par.bytes(), seq.bytes(), "stop {stop:?}, batch {batch}");
                assert!(par.bytes().balanced());
                assert_eq!(par.stopped_early(), seq.stopped_early());
            }
        }
    }

    #[test]
    fn jsonl_lines_are_validated_one_by_one() {
        let log = concat!(
            "{\"timestamp\": 1, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52.5, \"status\": \"normal\"}\n",
            "not json\n",
            "[1, 2]\n",
            "{\"timestamp\": 2, \"event_type\": \"TEMPERATURE_SENSOR\", \"status\": \"normal\"}\n",
            "{\"timestamp\": 3, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": NaN, \"status\": \"normal\"}\n",
            "{\"timestamp\": 4, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": \"52\", \"status\": \"normal\"}\n",
            "{\"timestamp\": 5.5, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52, \"status\": \"normal\"}\n",
            "{\"timestamp\": -6, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52, \"status\": \"normal\"}\n",
            "\n",
            "{\"timestamp\": 7, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 52, \"status\": \"odd\"}\n",
            "{\"timestamp\": 8, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 53, \"status\": \"normal\", \"synthetic\": true}\n",
            "{\"timestamp\": 9, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 1e300, \"status\": \"normal\"}\n",
            "{\"timestamp\": 10, \"event_type\": \"TEMPERATURE_SENSOR\", \"temperature\": 51, \"status\": \"high\"}",
        );
        let (v, bytes) = items(log.as_bytes());
        assert_eq!(
            reasons(&v),
            [
                "malformed_json",
                "not_an_object",
                "missing_field",
                "not_finite",
                "wrong_type",
                "bad_timestamp",
                "bad_timestamp",
                "unknown_status",
                "synthetic_input",
                "out_of_range"
            ]
        );
        let readings: Vec<(u64, Celsius)> = v
            .iter()
            .filter_map(|i| match i {
                Item::Reading(r) => Some((r.reading.timestamp, r.reading.celsius)),
                _ => None,
            })
            .collect();
        assert_eq!(
            readings,
            [
                (1_000, Celsius::from_num(52.5)),
                (10_000, Celsius::from_num(51))
            ]
        );
        assert!(bytes.balanced());
        assert_eq!(bytes.read, log.len() as u64);
        assert_eq!(bytes.skipped, 1);
    }

    #[test]
    fn an_input_that_grows_while_it_is_read_keeps_balanced_books() {
        // The size when opened was `opened`; the reader found more bytes than that.
        let h = Header::new(1, 1, 1_000, ClockKind::Unix, 0);
        let mut log = Frame::Header(h).to_buf().unwrap().to_vec();
        let jsonl = concat!(
            "{\"timestamp\": 1, \"temperature\": 52}\n",
            "{\"timestamp\": 2, \"temperature\": 53}\n",
        );
        for i in 0..3 {
            let r = Frame::Reading(mend_core::WireReading {
                seq: i,
                offset_ms: 0,
                celsius_delta: 1,
            });
            log.extend_from_slice(&r.to_buf().unwrap());
        }
        let grown = |opened: u64| ByteCounts {
            total: Some(opened),
            ..ByteCounts::default()
        };
        let mut frames = FrameReader::new(Cursor::new(log.clone()), 0, grown(10), None);
        while frames.next_item().unwrap().is_some() {}
        let mut lines = JsonlReader::new(Cursor::new(jsonl), 0, 1_000, grown(5), None);
        while lines.next_item().unwrap().is_some() {}
        for (b, size) in [(frames.bytes(), log.len()), (lines.bytes(), jsonl.len())] {
            assert!(b.balanced(), "{b:?}");
            assert_eq!(b.read, size as u64);
            assert_eq!(b.total, Some(size as u64));
            assert!(b.grown > 0);
        }
        let line = crate::text::summary::input_line(&crate::replay::InputReport {
            name: "live.mlog".into(),
            format: Format::Frames,
            bytes: frames.bytes(),
            balanced: true,
            stopped_early: false,
        });
        assert!(line.contains("grew by"), "{line}");
        assert!(!line.contains('✗'), "{line}");
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
