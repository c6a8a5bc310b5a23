//! Reading captures: opening an input, detecting its format, and the readers that turn its
//! bytes into [`Item`]s.
//!
//! Both readers, of frame logs ([`FrameReader`]) and of JSONL ([`JsonlReader`]), turn bytes
//! into items in file order, with bounded memory (a read chunk, a line, a few batches), and
//! never stop at bad input: every byte or line they cannot use becomes a [`DeadLetter`] with
//! the reason and the location, and the reading after it is read as if nothing had happened.
//! Every byte read is accounted for in [`ByteCounts`].
//!
//! A replay reads each input on threads of its own: a frame log on one ([`ThreadedReader`]),
//! JSONL split into batches of lines that several threads parse ([`ParallelJsonl`]), with
//! exactly the items and books of the plain readers.

mod batch;
mod books;
mod detect;
mod frames;
mod item;
mod jsonl;
mod reader;
mod reason;
pub mod rotation;
pub(crate) mod salvage;
pub mod seek;
mod threaded;

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::ProgressBar;

pub use books::ByteCounts;
pub use detect::{detect, Format, DETECT_LIMIT};
pub use frames::{FrameContext, FrameReader};
pub use item::{DeadLetter, Item, Location, ReadingItem, StreamMeta};
pub use jsonl::{
    JsonlReader, ParallelJsonl, JSONL_BATCH, JSONL_BATCH_BYTES, JSONL_PARSERS, JSONL_RANGE,
    MAX_LINE,
};
pub use reader::{ItemReader, StopRule, BATCH, CHUNK};
pub use reason::{DeadReason, LineReason};
pub use threaded::ThreadedReader;

use detect::{an_export, evidence, is_a_jsonl_export, not_a_capture, Evidence};

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

    /// Whether the input can be read again from its start: files and bytes in memory, not
    /// standard input, and not a path that names a pipe or a device (`<(zcat log.gz)`,
    /// a FIFO), whose bytes are gone once read. A path that cannot be looked at counts as
    /// a file: opening it gives the error.
    pub fn rereadable(&self) -> bool {
        match self {
            InputSource::Path(p) => std::fs::metadata(p).map_or(true, |m| m.is_file()),
            InputSource::Stdin => false,
            InputSource::Bytes(_) => true,
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
    /// Read a frame log's frames before its first header in the context at the end of the
    /// input it continues (see [`rotation`]).
    pub continues: Option<rotation::Continuation>,
    /// The frame cut short at the end of this frame log is finished by the input that
    /// continues it (see [`rotation::cut_continues`]).
    pub cut_continues: bool,
    /// The end of the input may still be being written (a checkpointed run that is not final
    /// holds back its tail): a frame, or a last line without its newline, cut short there is
    /// left for the next run instead of dead-lettered.
    pub tail_may_grow: bool,
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
    if opts.format.is_none() && format == Format::Jsonl && is_a_jsonl_export(&head) {
        return Err(an_export(&name));
    }
    let reader: Box<dyn Read + Send> = Box::new(Cursor::new(head).chain(raw));
    let counts = ByteCounts {
        total,
        before_seek: opts.start_offset,
        ..ByteCounts::default()
    };
    let jsonl = |reader: Box<dyn Read + Send>| {
        let mut jsonl = JsonlReader::new(
            reader,
            index,
            opts.jsonl_period_ms,
            counts,
            opts.progress.clone(),
        );
        jsonl.tail_may_grow = opts.tail_may_grow;
        jsonl
    };
    if format == Format::Jsonl && opts.threaded {
        let jsonl = jsonl(reader);
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
            if let Some(c) = &opts.continues {
                frames.continue_from(&c.context, c.joined);
            }
            if opts.cut_continues {
                frames.set_cut_continues();
            }
            if opts.tail_may_grow {
                frames.set_tail_may_grow();
            }
            Box::new(frames)
        }
        Format::Jsonl => Box::new(jsonl(reader)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use mend_core::{ClockKind, Frame, Header};

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
}
