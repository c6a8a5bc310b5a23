//! The byte books of one input: every byte read lies in a good frame (or line), a bad one,
//! or a skipped span, and a seek or an early stop says which bytes were never read, so that
//! nothing is lost silently.

use serde::Serialize;

/// The byte books of one input: `good + bad + skipped + held == read`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByteCounts {
    /// Bytes in good frames (or lines that gave a reading).
    pub good: u64,
    /// Bytes in damaged frames (or rejected lines).
    pub bad: u64,
    /// Bytes that were never a frame (or blank lines).
    pub skipped: u64,
    /// Bytes at the end of the input that a frame (or line) is still being written into,
    /// left for the next run by a checkpointed run that is not final (it reads them again).
    pub held: u64,
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
    /// Of the good frames, those found whole inside damaged ones (the zero before or after
    /// them lost, or their bytes joined onto a torn frame) and kept.
    pub recovered_items: u64,
}

impl ByteCounts {
    /// True when `good + bad + skipped + held == read`, and, for a file, when
    /// `before_seek + read + after_stop == size`.
    pub fn balanced(&self) -> bool {
        let inner = self.good + self.bad + self.skipped + self.held == self.read;
        let outer = self
            .total
            .is_none_or(|t| self.before_seek + self.read + self.after_stop == t);
        inner && outer
    }

    /// These books, with the bytes after an early stop counted as `after_stop` when the
    /// reader `stopped` (a line reader's `read` ends with the line that stopped it).
    pub(crate) fn with_stop(mut self, stopped: bool) -> Self {
        if stopped {
            if let Some(t) = self.total {
                self.after_stop = t.saturating_sub(self.before_seek + self.read);
            }
        }
        self.settled()
    }

    /// These books, with a file that grew while it was read counted at the size it had:
    /// the bytes past its size at the start were read and booked like any other.
    pub(crate) fn settled(mut self) -> Self {
        if let Some(t) = self.total {
            let seen = self.before_seek + self.read + self.after_stop;
            if seen > t {
                self.grown += seen - t;
                self.total = Some(seen);
            }
        }
        self
    }

    /// Adds the books of lines read elsewhere (`read`, `good`, `bad`, `skipped`, `held` and
    /// their item counts, the recovered ones included).
    pub(crate) fn add_read(&mut self, more: &ByteCounts) {
        self.read += more.read;
        self.good += more.good;
        self.bad += more.bad;
        self.skipped += more.skipped;
        self.held += more.held;
        self.good_items += more.good_items;
        self.bad_items += more.bad_items;
        self.skipped_items += more.skipped_items;
        self.recovered_items += more.recovered_items;
    }
}
