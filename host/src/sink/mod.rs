//! Writing results: atomic files, and the CSV, JSONL and frame-log record writers.
//!
//! Two promises shape this module. An output appears complete or not at all: everything is
//! written to a temporary file next to the destination, synced, and renamed over it at the
//! end, so a crash or a full disk never leaves a half-written CSV that looks finished, and an
//! input is never opened for writing. And a rerun gives the same bytes: rows are formatted by
//! hand from integers (no floats, no locale, no run timestamps), which is also what keeps
//! writing from dominating the replay time.

pub mod aggregates;
pub mod dlq;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use mend_core::{ClockKind, Frame, Header, Key, Origin, Outage, Record};

use crate::fs::background::{BackgroundWriter, Block, BlockWrite, SYNC_EVERY};
use crate::input::StreamMeta;
use crate::text::numfmt::{push_celsius, push_u64, ByteOut, Line, Short, SliceOut, LINE_CAP};
use crate::text::timefmt::{push_time, TimeFormatter};

/// The CSV header of repaired records.
pub const CSV_HEADER: &str = "sensor,session,seq,time,celsius,origin,method,quality,flags";

/// The temporary files of [`AtomicFile`]s not yet committed or dropped.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the list was held leaves it usable: it is only a list of paths.
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the temporary file of every [`AtomicFile`] not yet committed, so that an
/// interrupted run leaves nothing behind: its outputs never appear, and no half-written
/// `.NAME.mend-tmp-PID` file stays next to them. `mend` calls it on Ctrl-C and on
/// termination signals, then exits.
pub fn remove_temporary_files() {
    for tmp in pending().drain(..) {
        let _ = fs::remove_file(tmp);
    }
}

/// True when no process `pid` runs; false when one does or it cannot be told (no `/proc`).
fn is_dead(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Removes the `.NAME.mend-tmp-PID` files in `dir` of the output `name` that a run which
/// was killed outright (`SIGKILL`, a power cut) left behind: only files of that exact
/// pattern, only when process PID is gone. A file of a run still going is left alone.
fn remove_stale_temporary_files(dir: &Path, name: &std::ffi::OsStr) {
    let Some(name) = name.to_str() else {
        return;
    };
    let prefix = format!(".{name}.mend-tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && pid != std::process::id() && is_dead(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A file that appears at its path only when [`AtomicFile::commit`] succeeds.
///
/// It is written on a thread of its own ([`BackgroundWriter`]), and synced as it grows.
///
/// A destination that exists and is not a regular file (`/dev/null`, a FIFO, a terminal) is
/// written in place instead: renaming over a device would replace the device.
///
/// # Examples
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.csv");
/// let mut f = mend::sink::AtomicFile::create(&path).unwrap();
/// f.write_all(b"hello\n").unwrap();
/// assert!(!path.exists(), "nothing there before the commit");
/// f.commit().unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello\n");
/// ```
pub struct AtomicFile {
    dest: PathBuf,
    /// The temporary file, or `None` when writing in place.
    tmp: Option<PathBuf>,
    w: Option<BackgroundWriter>,
}

impl AtomicFile {
    /// Creates the temporary file next to `dest`. Fails, naming the path, when the
    /// directory does not exist or is not writable.
    pub fn create(dest: &Path) -> anyhow::Result<Self> {
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file path", dest.display()))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dest.is_dir() {
            anyhow::bail!("{}: is a directory", dest.display());
        }
        if let Ok(meta) = fs::metadata(dest) {
            if !meta.is_file() {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .with_context(|| format!("{}: cannot write output", dest.display()))?;
                return Ok(Self {
                    dest: dest.to_path_buf(),
                    tmp: None,
                    w: Some(BackgroundWriter::new(file, None)),
                });
            }
        }
        remove_stale_temporary_files(&dir, name);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".mend-tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let file = {
            // Created and listed at once, so that an interrupt cannot fall in between.
            let mut list = pending();
            let file = File::create(&tmp)
                .with_context(|| format!("{}: cannot write output", dest.display()))?;
            list.push(tmp.clone());
            file
        };
        Ok(Self {
            dest: dest.to_path_buf(),
            tmp: Some(tmp),
            // Synced as it grows, so that the sync before the rename has little left to do.
            w: Some(BackgroundWriter::new(file, Some(SYNC_EVERY))),
        })
    }

    /// The destination path.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes, syncs to disk and renames the file into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let dest = self.dest.clone();
        let w = self.w.take().context("output already committed")?;
        let file = w
            .finish()
            .with_context(|| format!("{}: cannot write output", dest.display()))?;
        let Some(tmp) = self.tmp.clone() else {
            return Ok(());
        };
        file.sync_all()
            .with_context(|| format!("{}: cannot sync output", dest.display()))?;
        {
            // An interrupt removes the file either before the rename (which then fails) or
            // not at all.
            let mut list = pending();
            if !list.contains(&tmp) {
                anyhow::bail!("{}: interrupted", dest.display());
            }
            fs::rename(&tmp, &dest)
                .with_context(|| format!("{}: cannot move output into place", dest.display()))?;
            list.retain(|t| *t != tmp);
        }
        self.tmp = None;
        Ok(())
    }
}

impl AtomicFile {
    /// Runs `op` on the writer; an error names the destination.
    fn with_writer<T>(
        &mut self,
        op: impl FnOnce(&mut BackgroundWriter) -> io::Result<T>,
    ) -> io::Result<T> {
        let w = self
            .w
            .as_mut()
            .ok_or_else(|| io::Error::other("output already committed"))?;
        op(w).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.dest.display())))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.with_writer(|w| w.write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with_writer(|w| w.write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.w {
            Some(_) => self.with_writer(Write::flush),
            None => Ok(()),
        }
    }
}

impl BlockWrite for AtomicFile {
    fn write_block(&mut self, block: &mut Block) -> io::Result<()> {
        self.with_writer(|w| w.write_block(block))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(&tmp);
            pending().retain(|t| *t != tmp);
        }
    }
}

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

/// Appends `,origin,method,quality,flags\n`.
#[inline]
fn push_csv_tail(buf: &mut impl ByteOut, rec: &Record) {
    buf.put(b',');
    buf.put_slice(rec.origin.name().as_bytes());
    buf.put(b',');
    if let Some(m) = method_name(rec) {
        buf.put_slice(m.as_bytes());
    }
    buf.put(b',');
    buf.put_slice(rec.quality.name().as_bytes());
    buf.put(b',');
    push_flags(buf, rec);
    buf.put(b'\n');
}

fn push_flags(buf: &mut impl ByteOut, rec: &Record) {
    if rec.flags.is_empty() {
        return;
    }
    let mut first = true;
    for f in rec.flags.iter() {
        if !first {
            buf.put(b';');
        }
        buf.put_slice(f.name().as_bytes());
        first = false;
    }
}

fn method_name(rec: &Record) -> Option<&'static str> {
    match rec.origin {
        Origin::Measured => None,
        Origin::Synthetic(s) => Some(s.method.name()),
    }
}

/// Appends one CSV row (with its newline) in the [`CSV_HEADER`] layout.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Flag, Flags, Quality, Reading, Record};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: true, period_ms: 1_000, clock: ClockKind::Unix };
/// let flags = Flags::EMPTY.with(Flag::OutOfBand);
/// let rec = Record::measured(Reading::new(1, 7, 42, 5_000, Celsius::from_num(57.25)), flags.quality(), flags);
/// let mut row = Vec::new();
/// mend::sink::push_csv_row(&mut row, &rec, &meta);
/// assert_eq!(row, b"1,7,42,1970-01-01T00:00:05.000Z,57.25,measured,,doubtful,out_of_band\n");
/// ```
pub fn push_csv_row(buf: &mut Vec<u8>, rec: &Record, meta: &StreamMeta) {
    let r = &rec.reading;
    push_csv_head(
        buf,
        (r.sensor, r.session),
        meta.has_seq.then_some(r.seq),
        r.timestamp,
    );
    buf.push(b',');
    push_celsius(buf, r.celsius);
    push_csv_tail(buf, rec);
}

/// Appends one JSONL object (with its newline): the CSV fields, `seq` and `method` null when
/// absent, `celsius` an exact decimal number.
///
/// # Examples
/// ```
/// use mend_core::{Celsius, ClockKind, Flags, Quality, Reading, Record};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: false, period_ms: 1_000, clock: ClockKind::Unix };
/// let rec = Record::measured(Reading::new(0, 0, 0, 1_000, Celsius::from_num(52)), Quality::Good, Flags::EMPTY);
/// let mut row = Vec::new();
/// mend::sink::push_json_row(&mut row, &rec, &meta);
/// assert_eq!(
///     String::from_utf8(row).unwrap(),
///     "{\"sensor\":0,\"session\":0,\"seq\":null,\"time\":\"1970-01-01T00:00:01.000Z\",\"celsius\":52,\"origin\":\"measured\",\"method\":null,\"quality\":\"good\",\"flags\":\"\"}\n"
/// );
/// ```
pub fn push_json_row(buf: &mut Vec<u8>, rec: &Record, meta: &StreamMeta) {
    let r = &rec.reading;
    push_json_head(
        buf,
        (r.sensor, r.session),
        meta.has_seq.then_some(r.seq),
        r.timestamp,
    );
    buf.extend_from_slice(b",\"celsius\":");
    push_celsius(buf, r.celsius);
    buf.extend_from_slice(b",\"origin\":\"");
    buf.extend_from_slice(rec.origin.name().as_bytes());
    buf.extend_from_slice(b"\",\"method\":");
    match method_name(rec) {
        Some(m) => {
            buf.push(b'"');
            buf.extend_from_slice(m.as_bytes());
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"quality\":\"");
    buf.extend_from_slice(rec.quality.name().as_bytes());
    buf.extend_from_slice(b"\",\"flags\":\"");
    push_flags(buf, rec);
    buf.extend_from_slice(b"\"}\n");
}

/// Appends the CSV row (with its newline) of an outage slot: the [`CSV_HEADER`] layout with
/// an empty `celsius`, origin `missing`, and empty `method`, `quality` and `flags`.
///
/// # Examples
/// ```
/// use mend_core::{ClockKind, Key, Outage};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: true, period_ms: 1_000, clock: ClockKind::Unix };
/// let o = Outage {
///     sensor: 1, session: 7,
///     before: Key { timestamp: 0, seq: 0 }, after: Key { timestamp: 90_000, seq: 90 },
///     missing: 89,
/// };
/// let mut row = Vec::new();
/// mend::sink::push_missing_csv_row(&mut row, &o, Key { timestamp: 5_000, seq: 5 }, &meta);
/// assert_eq!(row, b"1,7,5,1970-01-01T00:00:05.000Z,,missing,,,\n");
/// ```
pub fn push_missing_csv_row(buf: &mut Vec<u8>, o: &Outage, slot: Key, meta: &StreamMeta) {
    let seq = meta.has_seq.then_some(slot.seq);
    push_csv_head(buf, (o.sensor, o.session), seq, slot.timestamp);
    buf.extend_from_slice(b",,");
    buf.extend_from_slice(MISSING.as_bytes());
    buf.extend_from_slice(b",,,\n");
}

/// Appends the JSONL object (with its newline) of an outage slot: the fields of
/// [`push_json_row`], with `celsius`, `method` and `quality` null and origin `missing`.
///
/// # Examples
/// ```
/// use mend_core::{ClockKind, Key, Outage};
/// use mend::input::StreamMeta;
/// let meta = StreamMeta { has_seq: false, period_ms: 1_000, clock: ClockKind::Unix };
/// let o = Outage {
///     sensor: 0, session: 0,
///     before: Key { timestamp: 0, seq: 0 }, after: Key { timestamp: 90_000, seq: 0 },
///     missing: 89,
/// };
/// let mut row = Vec::new();
/// mend::sink::push_missing_json_row(&mut row, &o, Key { timestamp: 1_000, seq: 1 }, &meta);
/// assert_eq!(
///     String::from_utf8(row).unwrap(),
///     "{\"sensor\":0,\"session\":0,\"seq\":null,\"time\":\"1970-01-01T00:00:01.000Z\",\"celsius\":null,\"origin\":\"missing\",\"method\":null,\"quality\":null,\"flags\":\"\"}\n"
/// );
/// ```
pub fn push_missing_json_row(buf: &mut Vec<u8>, o: &Outage, slot: Key, meta: &StreamMeta) {
    let seq = meta.has_seq.then_some(slot.seq);
    push_json_head(buf, (o.sensor, o.session), seq, slot.timestamp);
    buf.extend_from_slice(b",\"celsius\":null,\"origin\":\"");
    buf.extend_from_slice(MISSING.as_bytes());
    buf.extend_from_slice(b"\",\"method\":null,\"quality\":null,\"flags\":\"\"}\n");
}

/// The fields every CSV row starts with: `sensor,session,seq,time` (seq empty without one).
#[inline]
fn push_csv_head(buf: &mut Vec<u8>, (sensor, session): (u32, u32), seq: Option<u32>, ts: u64) {
    push_u64(buf, u64::from(sensor));
    buf.push(b',');
    push_u64(buf, u64::from(session));
    buf.push(b',');
    if let Some(q) = seq {
        push_u64(buf, u64::from(q));
    }
    buf.push(b',');
    push_time(buf, ts);
}

/// The fields every JSONL row starts with: `{"sensor":…,"session":…,"seq":…,"time":"…"`.
fn push_json_head(buf: &mut Vec<u8>, (sensor, session): (u32, u32), seq: Option<u32>, ts: u64) {
    buf.extend_from_slice(b"{\"sensor\":");
    push_u64(buf, u64::from(sensor));
    buf.extend_from_slice(b",\"session\":");
    push_u64(buf, u64::from(session));
    buf.extend_from_slice(b",\"seq\":");
    match seq {
        Some(q) => push_u64(buf, u64::from(q)),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"time\":\"");
    push_time(buf, ts);
    buf.push(b'"');
}

/// The `origin` of an outage slot's row.
pub const MISSING: &str = "missing";

/// The row formats of [`RowWriter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    /// [`CSV_HEADER`] columns.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Writes records as CSV or JSONL rows.
///
/// Rows are formatted straight into a [`Block`], which is handed to the writer whenever it
/// is full: a [`BackgroundWriter`] takes it whole, without a copy.
pub struct RowWriter<W: BlockWrite> {
    w: W,
    format: RowFormat,
    block: Block,
    json: Vec<u8>,
    time: TimeFormatter,
    cache: CsvCache,
}

/// Pieces of CSV rows that repeat: the `sensor,session,` prefix of the last stream, the
/// text of recent values, and the row tails (`,origin,method,quality,flags\n`), of which
/// there are only a few hundred kinds.
struct CsvCache {
    prefix_of: Option<(u32, u32)>,
    prefix: Short,
    /// The last seq and its text: the next row's seq is usually one more.
    seq: Option<(u32, Short)>,
    /// Texts of recent values, by a hash of their bits.
    values: Vec<(i32, Short)>,
    tails: Vec<Option<Line>>,
}

impl CsvCache {
    const VALUES: usize = 4096;

    fn new() -> Self {
        Self {
            prefix_of: None,
            prefix: Short::default(),
            seq: None,
            values: vec![(0, Short::default()); Self::VALUES],
            tails: vec![None; 5 * 3 * 128],
        }
    }

    #[inline]
    fn row(
        &mut self,
        out: &mut impl ByteOut,
        rec: &Record,
        meta: &StreamMeta,
        tf: &mut TimeFormatter,
    ) {
        let r = &rec.reading;
        if self.prefix_of != Some((r.sensor, r.session)) {
            self.prefix.clear();
            push_u64(&mut self.prefix, u64::from(r.sensor));
            self.prefix.put(b',');
            push_u64(&mut self.prefix, u64::from(r.session));
            self.prefix.put(b',');
            self.prefix_of = Some((r.sensor, r.session));
        }
        out.put_short(&self.prefix);
        if meta.has_seq {
            let text = match &mut self.seq {
                Some((last, text)) if last.checked_add(1) == Some(r.seq) => {
                    text.increment();
                    *last = r.seq;
                    text
                }
                slot => {
                    let (_, text) = slot.insert((r.seq, Short::default()));
                    push_u64(text, u64::from(r.seq));
                    text
                }
            };
            out.put_short(text);
        }
        out.put(b',');
        tf.push(out, r.timestamp);
        out.put(b',');
        let bits = r.celsius.to_bits();
        // Fibonacci hashing: readings step by 1/8 or 1/16 °C, so the low bits alone would
        // crowd them into a few slots.
        let slot = ((bits as u32).wrapping_mul(0x9E37_79B9) >> 20) as usize % Self::VALUES;
        match self.values.get_mut(slot) {
            Some((b, text)) if *b == bits && !text.is_empty() => out.put_short(text),
            Some(entry) => {
                let mut text = Short::default();
                push_celsius(&mut text, r.celsius);
                out.put_short(&text);
                *entry = (bits, text);
            }
            None => push_celsius(out, r.celsius),
        }
        let kind = match rec.origin {
            Origin::Measured => 0,
            Origin::Synthetic(src) => match src.method {
                mend_core::FillMethod::Linear => 1,
                mend_core::FillMethod::Locf => 2,
                mend_core::FillMethod::Stochastic => 3,
                mend_core::FillMethod::None => 4,
            },
        };
        let idx = (kind * 3 + rec.quality as usize) * 128 + usize::from(rec.flags.bits() & 0x7F);
        match self.tails.get(idx) {
            Some(Some(t)) => out.put_line(t),
            _ => {
                let mut t = Line::new();
                push_csv_tail(&mut t, rec);
                out.put_slice(t.as_slice());
                if let Some(x) = self.tails.get_mut(idx) {
                    *x = Some(t);
                }
            }
        }
    }
}

impl<W: BlockWrite> RowWriter<W> {
    /// A writer; the CSV header is written at once.
    pub fn new(mut w: W, format: RowFormat) -> io::Result<Self> {
        if format == RowFormat::Csv {
            w.write_all(CSV_HEADER.as_bytes())?;
            w.write_all(b"\n")?;
        }
        Ok(Self {
            w,
            format,
            block: Block::new(),
            json: Vec::with_capacity(2 * LINE_CAP),
            time: TimeFormatter::default(),
            cache: CsvCache::new(),
        })
    }

    /// The underlying writer (call [`RecordSink::flush`] first: rows not yet handed over
    /// are dropped).
    pub fn into_inner(self) -> W {
        self.w
    }

    /// Moves the row in `self.json` into the block, or past it when it does not fit.
    fn put_json(&mut self) -> io::Result<()> {
        match self.block.spare().get_mut(..self.json.len()) {
            Some(dst) => {
                dst.copy_from_slice(&self.json);
                self.block.advance(self.json.len());
            }
            None => {
                self.w.write_block(&mut self.block)?;
                self.w.write_all(&self.json)?;
            }
        }
        Ok(())
    }
}

impl<W: BlockWrite> RecordSink for RowWriter<W> {
    #[inline]
    fn record(&mut self, rec: &Record, meta: &StreamMeta) -> io::Result<()> {
        match self.format {
            RowFormat::Csv => {
                // A CSV row is shorter than LINE_CAP, and a block that is not full has
                // SLACK > LINE_CAP bytes of room.
                let mut out = SliceOut::new(self.block.spare());
                self.cache.row(&mut out, rec, meta, &mut self.time);
                let n = out.len();
                self.block.advance(n);
            }
            RowFormat::Jsonl => {
                self.json.clear();
                push_json_row(&mut self.json, rec, meta);
                self.put_json()?;
            }
        }
        if self.block.is_full() {
            self.w.write_block(&mut self.block)?;
        }
        Ok(())
    }

    fn missing(&mut self, o: &Outage, slot: Key, meta: &StreamMeta) -> io::Result<()> {
        self.json.clear();
        match self.format {
            RowFormat::Csv => push_missing_csv_row(&mut self.json, o, slot, meta),
            RowFormat::Jsonl => push_missing_json_row(&mut self.json, o, slot, meta),
        }
        self.put_json()?;
        if self.block.is_full() {
            self.w.write_block(&mut self.block)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.write_block(&mut self.block)?;
        self.w.flush()
    }
}

/// Re-encodes measured records as a mend frame log: a header whenever the stream changes
/// and every 60 readings, then reading frames.
///
/// Synthetic records are left out: the wire format has no way to say "made up", and a later
/// replay recomputes the same fills. Records without a seq (JSONL input) are numbered in
/// output order.
pub struct MlogWriter<W: Write> {
    w: W,
    current: Option<(Header, u32)>,
    counters: std::collections::BTreeMap<(u32, u32), u32>,
    since_header: u32,
    enc: mend_core::Encoder,
}

impl<W: Write> MlogWriter<W> {
    /// A writer to `w`.
    pub fn new(w: W) -> Self {
        Self {
            w,
            current: None,
            counters: std::collections::BTreeMap::new(),
            since_header: 0,
            enc: mend_core::Encoder::new(),
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
        if !meta.has_seq {
            let n = self.counters.entry((r.sensor, r.session)).or_insert(0);
            r.seq = *n;
            *n = n.wrapping_add(1);
        }
        let period = meta.period_ms.max(1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use mend_core::{Celsius, ClockKind, Flags, Quality, Reading, Source};

    /// The cached row writer gives exactly the plain rows.
    #[test]
    fn cached_rows_equal_plain_rows() {
        let mut w = RowWriter::new(Vec::new(), RowFormat::Csv).unwrap();
        let mut want = format!("{CSV_HEADER}\n").into_bytes();
        let mut x: u64 = 7;
        for i in 0..20_000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let bits = ((x >> 40) as i32 % 40_000) - 20_000;
            let flags = Flags::try_from_bits((x >> 8) as u8 & 0x7F).unwrap();
            let mut rec = Record::measured(
                Reading::new(
                    (x % 3) as u32,
                    (x >> 3) as u32 % 2,
                    i as u32,
                    i * 997 + (x % 100_000_000),
                    Celsius::from_bits(bits),
                ),
                flags.quality(),
                flags,
            );
            if x % 5 == 0 {
                rec.origin = Origin::Synthetic(Source {
                    method: mend_core::FillMethod::ALL[(x % 4) as usize],
                    before: None,
                    after: None,
                });
                rec.quality = Quality::Doubtful;
            }
            let meta = StreamMeta {
                has_seq: x % 7 != 0,
                period_ms: 1_000,
                clock: ClockKind::Unix,
            };
            w.record(&rec, &meta).unwrap();
            push_csv_row(&mut want, &rec, &meta);
        }
        w.flush().unwrap();
        assert_eq!(
            String::from_utf8(w.into_inner()).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
