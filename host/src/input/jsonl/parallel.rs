//! Reading JSONL on several threads, with exactly the items and books of the plain reader.

use std::io::{self, Read};

use super::line::{jsonl_line, RawLines};
use super::reader::JsonlReader;
use crate::input::batch::{hand_over, Ordered};
use crate::input::books::ByteCounts;
use crate::input::detect::Format;
use crate::input::item::Item;
use crate::input::reader::ItemReader;

/// Lines per batch that the JSONL splitter hands to a parser thread.
pub const JSONL_BATCH: usize = 2048;
/// Threads that parse JSONL lines in a threaded read ([`ParallelJsonl`]).
pub const JSONL_PARSERS: usize = 2;

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
    tail_may_grow: bool,
) -> ParsedLines {
    let mut counts = ByteCounts::default();
    let mut items = Vec::with_capacity(raw.lines.len());
    let mut stopped = false;
    let mut start = 0;
    for l in &raw.lines {
        let kept = raw.bytes.get(start..l.end).unwrap_or_default();
        start = l.end;
        counts.read += l.taken;
        let line = jsonl_line(kept, l.newline, l.line_no, input, period_ms, tail_may_grow);
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
/// runs on every core. It is an ordered batch worker (`batch.rs`): batches are taken back in
/// the order they were cut, so the items, their line numbers and the books are exactly those
/// of [`JsonlReader`], and memory stays bounded.
pub struct ParallelJsonl {
    parsed: Ordered<ParsedLines>,
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
        let (input, period_ms, stop_after, tail_may_grow) = (
            reader.input,
            reader.period_ms,
            reader.stop_after,
            reader.tail_may_grow,
        );
        let cut = move || {
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
            (raw, last)
        };
        let parse = move |raw| parse_lines(raw, input, period_ms, stop_after, tail_may_grow);
        Self {
            parsed: Ordered::spawn(JSONL_PARSERS, cut, parse),
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
        let p = self.parsed.recv()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::jsonl::line::{JSONL_BATCH_BYTES, MAX_LINE};
    use std::io::Cursor;

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
}
