//! Reading the prototype's JSONL log line by line.

use std::io::{self, BufRead, BufReader, Read};

use indicatif::ProgressBar;

use super::line::{jsonl_line, RawLine, RawLines, JSONL_BATCH_BYTES, MAX_LINE};
use crate::input::books::ByteCounts;
use crate::input::detect::Format;
use crate::input::item::Item;
use crate::input::reader::{ItemReader, CHUNK};

/// Reads the prototype's JSONL log: one event per line, strictly validated.
pub struct JsonlReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    line_no: u64,
    pub(super) input: usize,
    pub(super) period_ms: u32,
    pub(super) counts: ByteCounts,
    progress: Option<ProgressBar>,
    pub(super) stop_after: Option<u64>,
    /// A last line without its newline that does not parse is still being written: left
    /// for the next run (see [`crate::input::OpenOptions::tail_may_grow`]).
    pub(crate) tail_may_grow: bool,
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
            tail_may_grow: false,
            stopped: false,
            done: false,
        }
    }

    /// Reads up to `max` lines (and about [`JSONL_BATCH_BYTES`]) into `raw`; returns
    /// `false` at the end of the input.
    pub(super) fn read_lines(&mut self, raw: &mut RawLines, max: usize) -> io::Result<bool> {
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
                self.tail_may_grow,
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
    use crate::input::reader::test_support::{books_of, read_all, reasons};
    use mend_core::Celsius;
    use std::io::Cursor;

    fn items(bytes: &[u8]) -> (Vec<Item>, ByteCounts) {
        read_all(JsonlReader::new(
            Cursor::new(bytes),
            0,
            1_000,
            books_of(bytes),
            None,
        ))
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
}
