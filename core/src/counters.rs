//! Accounting: every reading that enters a stage leaves it exactly once, and the counters say
//! how. A stage that cannot balance its books has lost data silently, which mend never does.

use core::fmt;

use serde::{Deserialize, Serialize};

/// The books of one stage: how many readings came in, and how each one left.
///
/// The identity `input = emitted + late + duplicate + rejected + evicted + held` holds after
/// every operation of every stage, where `held` is what the stage still holds (the reorder
/// buffer's contents, for example).
///
/// # Examples
/// ```
/// use mend_core::Counters;
/// let mut c = Counters::default();
/// c.input = 5;
/// c.emitted = 3;
/// c.duplicate = 1;
/// assert!(c.balanced(1));
/// assert!(!c.balanced(0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counters {
    /// Readings that entered the stage.
    pub input: u32,
    /// Released in order.
    pub emitted: u32,
    /// Released out of order, because a later reading had already gone out.
    pub late: u32,
    /// Recognised as a reading seen before, and not released again.
    pub duplicate: u32,
    /// Refused, with a reason.
    pub rejected: u32,
    /// Released early, because the buffer was full.
    pub evicted: u32,
}

impl Counters {
    /// All readings that have left the stage, by any way.
    pub const fn out(&self) -> u64 {
        self.emitted as u64
            + self.late as u64
            + self.duplicate as u64
            + self.rejected as u64
            + self.evicted as u64
    }

    /// True when `input = emitted + late + duplicate + rejected + evicted + held`.
    pub const fn balanced(&self, held: usize) -> bool {
        self.input as u64 == self.out() + held as u64
    }

    /// Adds another stage's (or another run's) counts to these.
    pub fn add(&mut self, other: &Counters) {
        self.input = self.input.wrapping_add(other.input);
        self.emitted = self.emitted.wrapping_add(other.emitted);
        self.late = self.late.wrapping_add(other.late);
        self.duplicate = self.duplicate.wrapping_add(other.duplicate);
        self.rejected = self.rejected.wrapping_add(other.rejected);
        self.evicted = self.evicted.wrapping_add(other.evicted);
    }
}

impl fmt::Display for Counters {
    /// `in=… emitted=… late=… duplicate=… rejected=… evicted=…`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in={} emitted={} late={} duplicate={} rejected={} evicted={}",
            self.input, self.emitted, self.late, self.duplicate, self.rejected, self.evicted
        )
    }
}
