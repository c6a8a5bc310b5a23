//! One JSONL line as read: blank, a reading, or a dead letter quoting it; and lines read in
//! a batch, for a parser thread.

use std::io;

use mend_core::{ClockKind, Reading};

use super::event::{line_err, parse_event};
use crate::input::books::ByteCounts;
use crate::input::item::{DeadLetter, Item, Location, ReadingItem, StreamMeta};
use crate::input::reason::{DeadReason, LineReason};

/// The longest JSONL line that is parsed; longer lines are dead-lettered.
pub const MAX_LINE: usize = 64 * 1024;

/// How much of a rejected line a dead-letter record quotes.
const QUOTE: usize = 200;

/// A batch of JSONL lines ends once it holds this many bytes, so that long lines cannot
/// make batches (and memory) large: a batch is at most this plus one [`MAX_LINE`].
pub const JSONL_BATCH_BYTES: usize = 1 << 20;

/// JSONL lines as read, for a parser thread: their bytes back to back, and per line where
/// it ends in them, what it took in the file, whether it had a newline, and its number.
pub(super) struct RawLines {
    pub(super) bytes: Vec<u8>,
    pub(super) lines: Vec<RawLine>,
    /// The input ended after these lines (or could not be read further: `error`).
    pub(super) last: bool,
    pub(super) error: Option<io::Error>,
}

pub(super) struct RawLine {
    pub(super) end: usize,
    pub(super) taken: u64,
    pub(super) newline: bool,
    pub(super) line_no: u64,
}

/// What one JSONL line is.
pub(super) enum JsonlLine {
    /// Blank (whitespace only): skipped.
    Blank,
    /// A reading, and its time in ms.
    Reading(Item, u64),
    /// A line that could not be used.
    Bad(Item),
    /// The last line, without its newline, that does not parse: still being written, it is
    /// left for the next run (see [`crate::input::OpenOptions::tail_may_grow`]).
    Held,
}

/// Makes sense of one JSONL line: `kept` is the line as read (at most [`MAX_LINE`] + 1
/// bytes of it, its newline included when `newline`), `line_no` its number from 1;
/// `tail_may_grow` when the input may still be being written.
pub(super) fn jsonl_line(
    kept: &[u8],
    newline: bool,
    line_no: u64,
    input: usize,
    period_ms: u32,
    tail_may_grow: bool,
) -> JsonlLine {
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
        Err(_) if !newline && tail_may_grow => JsonlLine::Held,
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
                reason: DeadReason::Line(e.reason),
                detail: format!("{}{torn}: {quoted}", e.detail),
            }))
        }
    }
}

impl ByteCounts {
    /// Books one JSONL line of `taken` bytes; returns its item, if any, and its time if it
    /// is a reading.
    pub(super) fn book(&mut self, line: JsonlLine, taken: u64) -> Option<(Item, Option<u64>)> {
        match line {
            JsonlLine::Blank => {
                self.skipped += taken;
                self.skipped_items += 1;
                None
            }
            JsonlLine::Held => {
                self.held += taken;
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
