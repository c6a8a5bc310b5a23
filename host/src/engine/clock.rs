//! Clock glitches: one outlying timestamp is set aside, two that agree are a new clock.
//!
//! A node's clock sometimes jumps for one reading (a corrupted RTC read, a bad NTP answer):
//! one reading stamped 24 days ahead among readings a second apart. Taken at its word, that
//! reading would drag the reorder buffer's watermark 24 days forward, and every honest
//! reading after it would look late. A clock that really changed (an NTP step, a node that
//! was off for a day) looks the same for one reading, but the readings after it agree with
//! it.
//!
//! So a reading that does not fit the stream's clock is held back, alone, until the next
//! reading decides: if the next reading fits the held one, the clock moved and both go on;
//! if it fits the old clock, the held reading was a glitch and is set aside as
//! `clock_jump`. "Fits" uses the seq where readings have one: a reading `n` seqs after
//! another should be `n` periods after it. Input without a seq (the prototype's JSONL) has
//! only time, and a reading behind the newest one may just be late, so there a reading is
//! held when it jumps ahead of the newest, or back before the oldest: one that falls inside
//! the time the stream has covered is a late reading, and is put in its place.

use serde::{Deserialize, Serialize};

use crate::input::ReadingItem;

/// Repeats of the held reading kept with it; past this, the jump is taken as real.
const MAX_HELD: usize = 8;

/// Decides, reading by reading, which timestamps belong to the stream's clock.
#[derive(Clone, Debug)]
pub struct ClockGuard {
    tolerance_ms: u64,
    has_seq: bool,
    /// The reading the clock was last confirmed by: `(seq, timestamp)`.
    last: Option<(u32, u64)>,
    /// The newest timestamp of a confirmed reading.
    frontier: Option<u64>,
    /// The oldest timestamp of a confirmed reading (kept without a seq only).
    earliest: Option<u64>,
    /// A reading that did not fit, with its repeats, waiting for the next one.
    held: Vec<ReadingItem>,
}

/// What a guard with nothing held knows of its stream's clock, to continue in a later run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardState {
    tolerance_ms: u64,
    has_seq: bool,
    last: Option<(u32, u64)>,
    frontier: Option<u64>,
    #[serde(default)]
    earliest: Option<u64>,
}

/// What [`ClockGuard::admit`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Readings that fit the clock, to pass on in this order.
    pub pass: Vec<ReadingItem>,
    /// Readings set aside as clock glitches.
    pub glitches: Vec<ReadingItem>,
}

impl ClockGuard {
    /// A guard that lets readings deviate from the stream's clock by up to `tolerance_ms`.
    pub fn new(tolerance_ms: u64, has_seq: bool) -> Self {
        Self {
            tolerance_ms,
            has_seq,
            last: None,
            frontier: None,
            earliest: None,
            held: Vec::new(),
        }
    }

    /// What the guard knows, when it holds no reading (a held reading waits for the next one
    /// to decide, and carries where it was read: it cannot move to a later run's input).
    ///
    /// # Examples
    /// ```
    /// use mend::engine::clock::ClockGuard;
    /// let g = ClockGuard::new(60_000, true);
    /// let state = g.state().unwrap();
    /// assert_eq!(ClockGuard::from_state(state).state(), Some(state));
    /// ```
    pub fn state(&self) -> Option<GuardState> {
        self.held.is_empty().then_some(GuardState {
            tolerance_ms: self.tolerance_ms,
            has_seq: self.has_seq,
            last: self.last,
            frontier: self.frontier,
            earliest: self.earliest,
        })
    }

    /// The guard [`ClockGuard::state`] described.
    pub fn from_state(s: GuardState) -> Self {
        Self {
            tolerance_ms: s.tolerance_ms,
            has_seq: s.has_seq,
            last: s.last,
            frontier: s.frontier,
            earliest: s.earliest,
            held: Vec::new(),
        }
    }

    /// Readings held until the next one decides whether they fit.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Where the held readings were read (see [`crate::engine::spill::position`]).
    pub fn held_positions(&self) -> impl Iterator<Item = u64> + '_ {
        self.held
            .iter()
            .map(|h| crate::engine::spill::position(&h.at))
    }

    /// The newest timestamp the clock has confirmed (held readings excluded).
    pub fn frontier(&self) -> Option<u64> {
        self.frontier
    }

    /// True when `r` fits a clock set by the reading `(seq, ts)`: `n` seqs later should be
    /// `n` periods later. Without seqs, against the confirmed clock (`ahead_only`) a reading
    /// behind the newest may just be late: only a jump ahead, or back before the oldest
    /// reading, is suspicious.
    fn fits(&self, (seq, ts): (u32, u64), r: &ReadingItem, ahead_only: bool) -> bool {
        let t = i128::from(r.reading.timestamp);
        let tol = i128::from(self.tolerance_ms);
        let expected = if self.has_seq {
            let dseq = i128::from(r.reading.seq) - i128::from(seq);
            i128::from(ts) + dseq * i128::from(r.meta.period_ms)
        } else {
            i128::from(ts)
        };
        if ahead_only && !self.has_seq {
            t - expected <= tol && self.earliest.is_none_or(|e| t >= i128::from(e) - tol)
        } else {
            (t - expected).abs() <= tol
        }
    }

    fn confirm(&mut self, r: ReadingItem, v: &mut Verdict) {
        let x = &r.reading;
        self.last = Some(match (self.has_seq, self.last) {
            // Without a seq the reference is the newest time, so a late reading does not
            // make the readings after it look like a jump.
            (false, Some((s, t))) if t > x.timestamp => (s, t),
            _ => (x.seq, x.timestamp),
        });
        self.frontier = Some(self.frontier.map_or(x.timestamp, |f| f.max(x.timestamp)));
        if !self.has_seq {
            self.earliest = Some(self.earliest.map_or(x.timestamp, |e| e.min(x.timestamp)));
        }
        v.pass.push(r);
    }

    /// The common case, without a buffer: with nothing held, a reading that fits the clock
    /// is confirmed at once (true); any other reading must go through [`ClockGuard::admit`]
    /// (false, nothing changed).
    #[inline]
    pub fn confirm_if_fits(&mut self, r: &ReadingItem) -> bool {
        let fits = self.held.is_empty() && self.last.is_some_and(|last| self.fits(last, r, true));
        if fits {
            let x = &r.reading;
            if self.has_seq || self.last.is_some_and(|(_, t)| t <= x.timestamp) {
                self.last = Some((x.seq, x.timestamp));
            } else if self.earliest.is_none_or(|e| x.timestamp < e) {
                self.earliest = Some(x.timestamp);
            }
            self.frontier = Some(self.frontier.map_or(x.timestamp, |f| f.max(x.timestamp)));
        }
        fits
    }

    fn same_identity(a: &ReadingItem, b: &ReadingItem) -> bool {
        a.reading.seq == b.reading.seq && a.reading.timestamp == b.reading.timestamp
    }

    /// Takes the next reading of the stream, in arrival order; what it decides is appended to
    /// `v` (a buffer the caller reuses, so that no reading costs an allocation).
    ///
    /// # Examples
    /// ```
    /// use mend::engine::clock::{ClockGuard, Verdict};
    /// use mend::input::{Location, ReadingItem, StreamMeta};
    /// use mend_core::{Celsius, ClockKind, Reading};
    ///
    /// let item = |seq: u32, ts: u64| ReadingItem {
    ///     input: 0,
    ///     reading: Reading::new(1, 1, seq, ts, Celsius::from_num(52)),
    ///     meta: StreamMeta { has_seq: true, period_ms: 1_000, clock: ClockKind::Unix },
    ///     at: Location::Line { line: u64::from(seq) },
    ///     replayed: false,
    /// };
    /// let mut g = ClockGuard::new(60_000, true);
    /// let mut v = Verdict::default();
    /// g.admit(item(0, 0), &mut v);
    /// assert_eq!(v.pass.len(), 1);
    /// // Seq 1 stamped 24 days ahead: held.
    /// let mut v = Verdict::default();
    /// g.admit(item(1, 24 * 86_400_000), &mut v);
    /// assert!(v.pass.is_empty() && v.glitches.is_empty());
    /// // Seq 2 fits the old clock: seq 1 was a glitch.
    /// g.admit(item(2, 2_000), &mut v);
    /// assert_eq!(v.glitches.len(), 1);
    /// assert_eq!(v.pass.iter().map(|r| r.reading.seq).collect::<Vec<_>>(), [2]);
    /// ```
    pub fn admit(&mut self, r: ReadingItem, v: &mut Verdict) {
        if let Some(first) = self.held.first() {
            if Self::same_identity(first, &r) && self.held.len() < MAX_HELD {
                // A repeat of the held reading tells nothing about the clock.
                self.held.push(r);
                return;
            }
            let held_at = (first.reading.seq, first.reading.timestamp);
            if self.fits(held_at, &r, false) || self.held.len() >= MAX_HELD {
                // The clock moved: the held reading was the first of the new clock.
                for h in std::mem::take(&mut self.held) {
                    self.last = Some((h.reading.seq, h.reading.timestamp));
                    self.frontier = None;
                    self.confirm(h, v);
                }
            } else {
                v.glitches.append(&mut self.held);
            }
        }
        match self.last {
            None => self.confirm(r, v),
            Some(last) if self.fits(last, &r, true) => self.confirm(r, v),
            Some(_) => self.held.push(r),
        }
    }

    /// Ends the stream. A held reading that nothing after it contradicted is passed on —
    /// unless its seq says it is a glitch: a reading stamped behind readings with lower seqs
    /// cannot be placed without breaking their order.
    pub fn finish(&mut self) -> Verdict {
        let mut v = Verdict::default();
        let behind = |h: &ReadingItem, f: Option<u64>| f.is_some_and(|f| h.reading.timestamp < f);
        for h in std::mem::take(&mut self.held) {
            if self.has_seq && behind(&h, self.frontier) {
                v.glitches.push(h);
            } else {
                self.confirm(h, &mut v);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Location, StreamMeta};
    use mend_core::{Celsius, ClockKind, Reading};

    fn item(has_seq: bool, seq: u32, ts: u64) -> ReadingItem {
        ReadingItem {
            input: 0,
            reading: Reading::new(1, 1, seq, ts, Celsius::from_num(52)),
            meta: StreamMeta {
                has_seq,
                period_ms: 1_000,
                clock: ClockKind::Unix,
            },
            at: Location::Line {
                line: u64::from(seq),
            },
            replayed: false,
        }
    }

    fn run(has_seq: bool, readings: &[(u32, u64)]) -> (Vec<u32>, Vec<u32>) {
        let mut g = ClockGuard::new(60_000, has_seq);
        let (mut pass, mut glitch) = (Vec::new(), Vec::new());
        for &(s, t) in readings {
            let mut v = Verdict::default();
            g.admit(item(has_seq, s, t), &mut v);
            pass.extend(v.pass.iter().map(|r| r.reading.seq));
            glitch.extend(v.glitches.iter().map(|r| r.reading.seq));
        }
        let v = g.finish();
        pass.extend(v.pass.iter().map(|r| r.reading.seq));
        glitch.extend(v.glitches.iter().map(|r| r.reading.seq));
        (pass, glitch)
    }

    const DAY: u64 = 86_400_000;

    #[test]
    fn one_reading_far_ahead_is_a_glitch() {
        let (pass, glitch) = run(true, &[(0, 0), (1, 24 * DAY), (2, 2_000), (3, 3_000)]);
        assert_eq!((pass, glitch), (vec![0, 2, 3], vec![1]));
        let (pass, glitch) = run(false, &[(0, 0), (1, 24 * DAY), (2, 2_000), (3, 3_000)]);
        assert_eq!((pass, glitch), (vec![0, 2, 3], vec![1]));
    }

    #[test]
    fn one_reading_far_behind_is_a_glitch_where_seqs_or_the_covered_time_say_so() {
        let r = [(10, 2 * DAY), (11, DAY), (12, 2 * DAY + 2_000)];
        assert_eq!(run(true, &r), (vec![10, 12], vec![11]));
        // Without a seq, a day before the oldest reading and not followed by one that
        // agrees: a glitch too.
        assert_eq!(run(false, &r), (vec![10, 12], vec![11]));
        // Without a seq, a reading behind the newest but inside the time covered may be a
        // late one: it goes on.
        let r = [
            (10, 0),
            (11, 50_000),
            (12, 100_000),
            (13, 150_000),
            (14, 20_000),
            (15, 200_000),
        ];
        assert_eq!(run(false, &r), (vec![10, 11, 12, 13, 14, 15], vec![]));
        // Before the oldest, followed by readings that agree with it: the first half of a
        // log read after the second.
        let r = [
            (10, 2 * DAY),
            (11, DAY),
            (12, DAY + 1_000),
            (13, DAY + 2_000),
        ];
        assert_eq!(run(false, &r), (vec![10, 11, 12, 13], vec![]));
    }

    #[test]
    fn a_clock_that_moves_for_good_is_followed() {
        let r = [
            (0, 0),
            (1, 1_000),
            (2, DAY),
            (3, DAY + 1_000),
            (4, DAY + 2_000),
        ];
        assert_eq!(run(true, &r), (vec![0, 1, 2, 3, 4], vec![]));
        // A node off for a day, without seqs: the same.
        assert_eq!(run(false, &r), (vec![0, 1, 2, 3, 4], vec![]));
    }

    #[test]
    fn a_seq_gap_is_not_a_jump() {
        // 1 000 seqs lost: 1 000 periods later is where seq 1 001 belongs.
        let r = [(0, 0), (1_001, 1_001_000), (1_002, 1_002_000)];
        assert_eq!(run(true, &r), (vec![0, 1_001, 1_002], vec![]));
    }

    #[test]
    fn repeats_of_a_glitch_share_its_fate_and_a_last_jump_is_kept() {
        let r = [(0, 0), (1, DAY), (1, DAY), (2, 2_000)];
        assert_eq!(run(true, &r), (vec![0, 2], vec![1, 1]));
        // Nothing after it: nothing says it was wrong.
        assert_eq!(run(true, &[(0, 0), (1, DAY)]), (vec![0, 1], vec![]));
        // Unless it is stamped behind a lower seq.
        let r = [(0, DAY), (1, DAY + 1_000), (2, 2_000)];
        assert_eq!(run(true, &r), (vec![0, 1], vec![2]));
    }

    #[test]
    fn two_glitches_in_a_row_that_disagree_are_both_set_aside() {
        let r = [(0, 0), (1, DAY), (2, 2 * DAY), (3, 3_000)];
        assert_eq!(run(true, &r), (vec![0, 3], vec![1, 2]));
    }
}
