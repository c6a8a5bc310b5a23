//! Telling a mend frame log from the prototype's JSONL by the first bytes of an input, and
//! the error for an input that is neither.

use mend_core::{DecodeEvent, Decoder, MAX_FRAME};
use serde::Serialize;

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
pub(super) enum Evidence {
    /// Whole frames with a good CRC, at least as many as JSON-object lines.
    Frames,
    /// Lines that are JSON objects (or arrays), more than whole frames.
    Jsonl,
    /// Neither yet: nothing but blank space, or bytes with no frame and no JSON line.
    None,
}

/// Counts the evidence in `head`: whole frames whose CRC holds against lines that look like
/// JSON objects (see [`json_like`]).
pub(super) fn evidence(head: &[u8]) -> Evidence {
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
        .filter(|l| json_like(l))
        .count() as u64;
    if frames > 0 && frames >= lines {
        Evidence::Frames
    } else if lines > 0 {
        Evidence::Jsonl
    } else {
        Evidence::None
    }
}

/// A line that looks like one JSON object or array: text that starts with `{` or `[` and
/// ends with `}` or `]`. Binary junk has lines that start with `{` now and then; one that
/// also ends right and is UTF-8 is rare enough not to outweigh the frames after it.
fn json_like(line: &[u8]) -> bool {
    let t = line.trim_ascii();
    matches!(
        (t.first(), t.last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    ) && std::str::from_utf8(t).is_ok()
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
/// every byte is then accounted for as skipped or damaged. An empty input is a frame log, and
/// so is one shorter than a frame without a line end (the middle of a frame, where a log was
/// split twice), even when its bytes happen to be text.
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
/// assert_eq!(detect(b"|#"), Some(Format::Frames));
/// ```
pub fn detect(head: &[u8]) -> Option<Format> {
    match evidence(head) {
        Evidence::Frames => Some(Format::Frames),
        Evidence::Jsonl => Some(Format::Jsonl),
        Evidence::None if head.is_empty() => Some(Format::Frames),
        Evidence::None if head.iter().all(u8::is_ascii_whitespace) => Some(Format::Jsonl),
        // Too short for a frame and with no line end: a piece of a frame log split on both
        // sides inside one frame (its bytes may happen to be text), joined to the pieces
        // around it, or dead-lettered.
        Evidence::None if head.len() <= MAX_FRAME && !head.contains(&b'\n') => Some(Format::Frames),
        Evidence::None if is_text(head) => None,
        Evidence::None => Some(Format::Frames),
    }
}

/// True when the first JSON line of `head` is a row of `mend replay --format jsonl` (its
/// `time`, `celsius` and `origin`, none of the prototype's `timestamp` or `temperature`):
/// an output fed back in, whose every line would be dead-lettered as `missing_field`.
pub(super) fn is_a_jsonl_export(head: &[u8]) -> bool {
    let Some(line) = head.split(|&b| b == b'\n').find(|l| json_like(l)) else {
        return false;
    };
    let Ok(serde_json::Value::Object(row)) = serde_json::from_slice(line) else {
        return false;
    };
    ["time", "celsius", "origin"]
        .iter()
        .all(|k| row.contains_key(*k))
        && !["timestamp", "temperature"]
            .iter()
            .any(|k| row.contains_key(*k))
}

/// The error for a JSONL export of `mend replay` given as an input.
pub(super) fn an_export(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{name}: not a capture: it is a JSONL export of mend replay (rows with time, celsius and \
         origin), not the prototype's JSONL; replay the capture it was made from, or give \
         --input-format jsonl to read it anyway"
    )
}

/// The error for an input that is neither format, quoting its first line.
pub(super) fn not_a_capture(name: &str, head: &[u8]) -> anyhow::Error {
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
