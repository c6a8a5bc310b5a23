//! A reader on a thread of its own, so that decoding overlaps with the replay.

use std::io;

use super::batch::{hand_over, Ordered};
use super::books::ByteCounts;
use super::detect::Format;
use super::item::Item;
use super::reader::{ItemReader, BATCH};

/// One batch from a reader thread, with the books as of its last item.
struct Batch {
    items: Vec<Item>,
    counts: ByteCounts,
    stopped: bool,
    done: bool,
    error: Option<io::Error>,
}

/// Runs a reader on its own thread, so that decoding (CRC, COBS, postcard or JSON parsing)
/// overlaps with the pipeline, as an ordered batch worker (`batch.rs`) of one lane: memory
/// stays bounded and the items come out exactly as the reader produced them. Emptied batches
/// travel back to the thread to be filled again, so no batch is allocated twice.
pub struct ThreadedReader {
    batches: Ordered<Batch>,
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
        let (empty, recycled) = std::sync::mpsc::channel::<Vec<Item>>();
        let cut = move || {
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
            (batch, last)
        };
        Self {
            batches: Ordered::spawn(1, cut, |batch| batch),
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
        let batch = self.batches.recv()?;
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

    /// The stop point is fixed when the thread starts
    /// ([`OpenOptions::stop`](super::OpenOptions::stop)).
    fn set_stop_after(&mut self, _ms: Option<u64>) {}

    fn stopped_early(&self) -> bool {
        self.stopped
    }
}
