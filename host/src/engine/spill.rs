//! Readings far out of place, set aside on a first pass and put back in their place on a
//! second.
//!
//! A stream writes its rows in time order and holds each reading for `--lateness` to let
//! stragglers catch up. A reading that arrives later than that — a log whose halves were
//! joined the wrong way round, a backup appended after the fact — finds its slot already
//! written (as a fill, or as a gap). A tool that sorts the whole file would put the real value
//! there; a single bounded pass cannot. But a file can be read twice.
//!
//! So the first pass sets every such reading aside here instead of writing it off: its
//! identity, value and where it was read (input and position). The readings are sorted by
//! stream and time in runs of bounded size on disk, and the runs merged into one file. If
//! anything was set aside, the replay starts again: the second pass reads the same inputs,
//! skips exactly the readings that were set aside (by input and position), and hands each
//! stream its set-aside readings just before the first reading that follows them. Every
//! reading then arrives within the lateness window, and the rows are those of a replay of the
//! sorted input. Memory stays bounded by the run size, whatever the log's length; the disk
//! holds what was set aside.
//!
//! Standard input cannot be read twice, so a replay of it keeps the single pass, and there a
//! reading that arrives too late is dead-lettered as `late`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use mend_core::{Celsius, ClockKind, Reading};

use crate::fs::ScratchDir;
use crate::input::{Location, ReadingItem, StreamMeta};

/// Readings sorted in memory before a run goes to disk.
pub const RUN_LEN: usize = 1 << 18;

/// Readings a stream's cursor reads from the spill file at a time.
const CURSOR_BLOCK: usize = 32;

/// The size of one spilled reading on disk.
const RECORD: usize = 64;

/// A stream: `(sensor, session)`.
pub type StreamKey = (u32, u32);

/// The sort order of spilled readings: stream, then time, seq, input and position, so that
/// copies of one reading stay in the order they were read.
fn sort_key(r: &ReadingItem) -> (u32, u32, u64, u32, usize, u64) {
    let x = &r.reading;
    (
        x.sensor,
        x.session,
        x.timestamp,
        x.seq,
        r.input,
        position(&r.at),
    )
}

/// The position of an item within its input: a byte offset or a line number. Both grow
/// through an input, which is what lets the second pass skip by position.
pub fn position(at: &Location) -> u64 {
    match *at {
        Location::Bytes { offset, .. } => offset,
        Location::Line { line } => line,
        // Never set aside: such a location is only made after reordering.
        Location::Released { .. } => u64::MAX,
    }
}

fn encode(r: &ReadingItem, out: &mut [u8; RECORD]) {
    let x = &r.reading;
    let (kind, a, b) = match r.at {
        Location::Bytes { offset, length } => (0u8, offset, length),
        Location::Line { line } => (1u8, line, 0),
        Location::Released { seq, .. } => (1u8, u64::from(seq), 0),
    };
    let mut w = Cursor(out.as_mut_slice());
    w.put(&x.sensor.to_le_bytes());
    w.put(&x.session.to_le_bytes());
    w.put(&x.timestamp.to_le_bytes());
    w.put(&x.seq.to_le_bytes());
    w.put(&x.celsius.to_bits().to_le_bytes());
    w.put(&(r.input as u64).to_le_bytes());
    w.put(&a.to_le_bytes());
    w.put(&b.to_le_bytes());
    w.put(&r.meta.period_ms.to_le_bytes());
    w.put(&[
        kind,
        u8::from(r.meta.has_seq) | u8::from(r.replayed) << 1,
        u8::from(r.meta.clock == ClockKind::Boot),
    ]);
}

fn decode(b: &[u8; RECORD]) -> ReadingItem {
    fn u32_at(b: &[u8], i: usize) -> u32 {
        let mut x = [0u8; 4];
        x.copy_from_slice(b.get(i..i + 4).unwrap_or(&[0; 4]));
        u32::from_le_bytes(x)
    }
    fn u64_at(b: &[u8], i: usize) -> u64 {
        let mut x = [0u8; 8];
        x.copy_from_slice(b.get(i..i + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(x)
    }
    let (a, len) = (u64_at(b, 32), u64_at(b, 40));
    ReadingItem {
        input: usize::try_from(u64_at(b, 24)).unwrap_or(usize::MAX),
        reading: Reading::new(
            u32_at(b, 0),
            u32_at(b, 4),
            u32_at(b, 16),
            u64_at(b, 8),
            Celsius::from_bits(u32_at(b, 20) as i32),
        ),
        meta: StreamMeta {
            period_ms: u32_at(b, 48),
            has_seq: b[53] & 1 != 0,
            clock: if b[54] != 0 {
                ClockKind::Boot
            } else {
                ClockKind::Unix
            },
        },
        at: if b[52] == 0 {
            Location::Bytes {
                offset: a,
                length: len,
            }
        } else {
            Location::Line { line: a }
        },
        replayed: b[53] & 2 != 0,
    }
}

/// A write position in a fixed buffer (the record layout is fixed, so it always fits).
struct Cursor<'a>(&'a mut [u8]);

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let buf = std::mem::take(&mut self.0);
        let (head, tail) = buf.split_at_mut(bytes.len().min(buf.len()));
        head.copy_from_slice(bytes.get(..head.len()).unwrap_or_default());
        self.0 = tail;
    }
}

/// Collects the readings a first pass set aside.
pub struct SpillWriter {
    /// Made with the first reading set aside: most passes set nothing aside, and a
    /// directory made and removed per pass costs a fleet worker, which replays a sensor per
    /// pass, a few percent of its time.
    dir: Option<ScratchDir>,
    buf: Vec<ReadingItem>,
    runs: Vec<PathBuf>,
    /// Per input, the positions set aside, in input order.
    skips: Vec<Option<BufWriter<File>>>,
    count: u64,
}

impl SpillWriter {
    /// An empty spill; its temporary directory is made when the first reading is set
    /// aside.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            dir: None,
            buf: Vec::new(),
            runs: Vec::new(),
            skips: Vec::new(),
            count: 0,
        })
    }

    /// Readings set aside so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// The temporary directory, made on first use.
    fn dir(&mut self) -> io::Result<&std::path::Path> {
        if self.dir.is_none() {
            self.dir = Some(ScratchDir::new()?);
        }
        self.dir
            .as_ref()
            .map(ScratchDir::path)
            .ok_or_else(|| io::Error::other("spill: no directory"))
    }

    /// True when nothing was set aside.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sets a reading aside.
    pub fn push(&mut self, r: ReadingItem) -> io::Result<()> {
        if self.skips.len() <= r.input {
            self.skips.resize_with(r.input + 1, || None);
        }
        if self.skips.get(r.input).is_some_and(Option::is_none) {
            let path = self.dir()?.join(format!("skip-{}", r.input));
            let file = Some(BufWriter::new(File::create(path)?));
            if let Some(slot) = self.skips.get_mut(r.input) {
                *slot = file;
            }
        }
        let slot = self
            .skips
            .get_mut(r.input)
            .ok_or_else(|| io::Error::other("spill: input index out of range"))?;
        if let Some(w) = slot.as_mut() {
            w.write_all(&position(&r.at).to_le_bytes())?;
        }
        self.buf.push(r);
        self.count += 1;
        if self.buf.len() >= RUN_LEN {
            self.write_run()?;
        }
        Ok(())
    }

    fn write_run(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.buf.sort_by_key(sort_key);
        let run = format!("run-{}", self.runs.len());
        let path = self.dir()?.join(run);
        let mut w = BufWriter::new(File::create(&path)?);
        let mut rec = [0u8; RECORD];
        for r in self.buf.drain(..) {
            encode(&r, &mut rec);
            w.write_all(&rec)?;
        }
        w.flush()?;
        self.runs.push(path);
        Ok(())
    }

    /// Sorts and merges what was set aside into one file, indexed by stream.
    pub fn finish(mut self) -> io::Result<SpillSet> {
        self.write_run()?;
        for w in self.skips.iter_mut().flatten() {
            w.flush()?;
        }
        let dir = self.dir()?.to_path_buf();
        let merged = dir.join("merged");
        let mut out = BufWriter::new(File::create(&merged)?);
        let mut readers: Vec<BufReader<File>> = self
            .runs
            .iter()
            .map(|p| File::open(p).map(BufReader::new))
            .collect::<io::Result<_>>()?;
        let mut heads: Vec<Option<ReadingItem>> = readers
            .iter_mut()
            .map(read_one)
            .collect::<io::Result<_>>()?;
        let mut index: BTreeMap<StreamKey, (u64, u64)> = BTreeMap::new();
        let mut n: u64 = 0;
        let mut rec = [0u8; RECORD];
        loop {
            let next = heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|r| (sort_key(r), i)))
                .min();
            let Some((_, i)) = next else { break };
            let (Some(head), Some(reader)) = (heads.get_mut(i), readers.get_mut(i)) else {
                break;
            };
            let Some(r) = head.take() else { break };
            *head = read_one(reader)?;
            encode(&r, &mut rec);
            out.write_all(&rec)?;
            let e = index
                .entry((r.reading.sensor, r.reading.session))
                .or_insert((n, 0));
            e.1 += 1;
            n += 1;
        }
        out.flush()?;
        drop(out);
        for p in &self.runs {
            std::fs::remove_file(p)?;
        }
        let skips = (0..self.skips.len())
            .map(|i| {
                self.skips
                    .get(i)
                    .and_then(Option::as_ref)
                    .map(|_| dir.join(format!("skip-{i}")))
            })
            .collect();
        Ok(SpillSet {
            file: File::open(&merged)?,
            index,
            skips,
            count: n,
            _dir: self.dir.take(),
        })
    }
}

fn read_one(r: &mut impl Read) -> io::Result<Option<ReadingItem>> {
    let mut rec = [0u8; RECORD];
    match r.read_exact(&mut rec) {
        Ok(()) => Ok(Some(decode(&rec))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a first pass set aside, sorted by stream and time, for the second pass.
pub struct SpillSet {
    file: File,
    index: BTreeMap<StreamKey, (u64, u64)>,
    skips: Vec<Option<PathBuf>>,
    count: u64,
    _dir: Option<ScratchDir>,
}

impl SpillSet {
    /// Readings set aside.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when nothing was set aside.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The set-aside readings of one stream, in time order; `None` when it has none.
    pub fn cursor(&self, key: StreamKey) -> io::Result<Option<SpillCursor>> {
        let Some(&(start, count)) = self.index.get(&key) else {
            return Ok(None);
        };
        Ok(Some(SpillCursor {
            file: self.file.try_clone()?,
            next: start,
            end: start + count,
            block: Vec::new(),
            at: 0,
        }))
    }

    /// The positions set aside from input `i`, in input order.
    pub fn skips(&self, i: usize) -> io::Result<SkipList> {
        let reader = match self.skips.get(i).and_then(Option::as_ref) {
            Some(p) => Some(BufReader::new(File::open(p)?)),
            None => None,
        };
        let mut s = SkipList { reader, next: None };
        s.advance()?;
        Ok(s)
    }
}

/// One stream's set-aside readings, read a block at a time.
pub struct SpillCursor {
    file: File,
    next: u64,
    end: u64,
    block: Vec<ReadingItem>,
    at: usize,
}

impl SpillCursor {
    /// The next reading, without taking it.
    pub fn peek(&mut self) -> io::Result<Option<&ReadingItem>> {
        if self.at >= self.block.len() {
            self.refill()?;
        }
        Ok(self.block.get(self.at))
    }

    /// Takes the next reading.
    pub fn pop(&mut self) -> io::Result<Option<ReadingItem>> {
        if self.at >= self.block.len() {
            self.refill()?;
        }
        let r = self.block.get(self.at).copied();
        if r.is_some() {
            self.at += 1;
        }
        Ok(r)
    }

    fn refill(&mut self) -> io::Result<()> {
        self.block.clear();
        self.at = 0;
        let n = (self.end - self.next).min(CURSOR_BLOCK as u64);
        if n == 0 {
            return Ok(());
        }
        let mut buf = vec![0u8; n as usize * RECORD];
        self.file
            .read_exact_at(&mut buf, self.next * RECORD as u64)?;
        for chunk in buf.chunks_exact(RECORD) {
            let mut rec = [0u8; RECORD];
            rec.copy_from_slice(chunk);
            self.block.push(decode(&rec));
        }
        self.next += n;
        Ok(())
    }
}

/// The positions of one input whose readings were set aside, consumed in input order.
pub struct SkipList {
    reader: Option<BufReader<File>>,
    next: Option<u64>,
}

impl SkipList {
    fn advance(&mut self) -> io::Result<()> {
        self.next = None;
        if let Some(r) = self.reader.as_mut() {
            let mut b = [0u8; 8];
            match r.read_exact(&mut b) {
                Ok(()) => self.next = Some(u64::from_le_bytes(b)),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// True when the reading at `at` was set aside (and so is taken from the spill instead).
    pub fn take(&mut self, at: &Location) -> io::Result<bool> {
        let pos = position(at);
        while self.next.is_some_and(|n| n < pos) {
            self.advance()?;
        }
        if self.next == Some(pos) {
            self.advance()?;
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(input: usize, sensor: u32, seq: u32, ts: u64, at: u64) -> ReadingItem {
        ReadingItem {
            input,
            reading: Reading::new(sensor, 1, seq, ts, Celsius::from_bits(13_440 + seq as i32)),
            meta: StreamMeta {
                has_seq: true,
                period_ms: 1_000,
                clock: ClockKind::Boot,
            },
            at: Location::Bytes {
                offset: at,
                length: 11,
            },
            replayed: seq % 2 == 1,
        }
    }

    #[test]
    fn a_spilled_reading_comes_back_unchanged() {
        let r = item(3, 7, 9, 123_456, 999);
        let mut rec = [0u8; RECORD];
        encode(&r, &mut rec);
        assert_eq!(decode(&rec), r);
        let j = ReadingItem {
            at: Location::Line { line: 42 },
            meta: StreamMeta {
                has_seq: false,
                period_ms: 500,
                clock: ClockKind::Unix,
            },
            ..r
        };
        encode(&j, &mut rec);
        assert_eq!(decode(&rec), j);
    }

    /// A pass that sets nothing aside makes no directory; the first reading set aside
    /// makes it, and it goes with the set.
    #[test]
    fn the_directory_is_made_by_the_first_reading_set_aside() {
        let w = SpillWriter::new().unwrap();
        assert!(w.dir.is_none());
        drop(w);
        let mut w = SpillWriter::new().unwrap();
        w.push(item(0, 1, 1, 1_000, 0)).unwrap();
        let path = w.dir.as_ref().map(|d| d.path().to_path_buf()).unwrap();
        assert!(path.is_dir());
        let set = w.finish().unwrap();
        assert_eq!(set.len(), 1);
        assert!(path.is_dir());
        drop(set);
        assert!(!path.exists());
    }

    #[test]
    fn streams_come_back_sorted_across_runs_and_skips_by_input() {
        let mut w = SpillWriter::new().unwrap();
        // More than one run, so the merge is exercised: force small runs by pushing many.
        let mut all = Vec::new();
        for i in 0..(RUN_LEN as u64 + 100) {
            let sensor = (i % 3) as u32;
            let ts = (i * 7_919) % 100_000;
            let r = item((i % 2) as usize, sensor, (ts / 10) as u32, ts, i * 11);
            all.push(r);
            w.push(r).unwrap();
        }
        let set = w.finish().unwrap();
        assert_eq!(set.len(), all.len() as u64);
        for sensor in 0..3 {
            let mut want: Vec<ReadingItem> = all
                .iter()
                .filter(|r| r.reading.sensor == sensor)
                .copied()
                .collect();
            want.sort_by_key(sort_key);
            let mut c = set.cursor((sensor, 1)).unwrap().unwrap();
            let mut got = Vec::new();
            while let Some(r) = c.pop().unwrap() {
                got.push(r);
            }
            assert_eq!(got, want, "sensor {sensor}");
        }
        assert!(set.cursor((9, 1)).unwrap().is_none());
        let mut skips = set.skips(1).unwrap();
        assert!(!skips
            .take(&Location::Bytes {
                offset: 0,
                length: 11
            })
            .unwrap());
        assert!(skips
            .take(&Location::Bytes {
                offset: 11,
                length: 11
            })
            .unwrap());
        assert!(!skips
            .take(&Location::Bytes {
                offset: 12,
                length: 11
            })
            .unwrap());
        assert!(skips
            .take(&Location::Bytes {
                offset: 33,
                length: 11
            })
            .unwrap());
        let mut none = set.skips(5).unwrap();
        assert!(!none.take(&Location::Line { line: 1 }).unwrap());
    }
}
