//! The gateway's books: which seqs of each (sensor, session) it holds, which it misses, when to
//! ask for them again, and what it may acknowledge.
//!
//! Everything here is pure (time is a number of milliseconds passed in), so the retry and
//! acknowledgement rules are tested without a link. The caller feeds the tracker only frames
//! that are already durable on disk, which is what makes every [`Ack`] it hands out safe: an
//! acknowledgement covers a seq only when that seq is on disk or was given up.

use std::collections::{BTreeMap, BTreeSet};

use mend_core::{Ack, Resend};

/// How often, and how patiently, a missing range is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests per range before it is given up as unrecoverable.
    pub tries: u32,
    /// The wait after the first request; each further request waits twice as long.
    pub first_ms: u64,
    /// The longest wait between two requests.
    pub max_ms: u64,
}

impl RetryPolicy {
    /// The wait after request number `sent` (1 for the first), doubling up to the maximum.
    ///
    /// # Examples
    /// ```
    /// use mend::listen::RetryPolicy;
    /// let p = RetryPolicy { tries: 5, first_ms: 500, max_ms: 3_000 };
    /// assert_eq!([1, 2, 3, 4].map(|n| p.backoff_ms(n)), [500, 1_000, 2_000, 3_000]);
    /// ```
    pub fn backoff_ms(&self, sent: u32) -> u64 {
        let doublings = sent.saturating_sub(1).min(32);
        self.first_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_ms)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            tries: 5,
            first_ms: 1_000,
            max_ms: 16_000,
        }
    }
}

/// What a reading that arrived did to the books.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A seq not seen before, beyond every seq before it (gaps behind it are now missing).
    New,
    /// A seq that was missing: recovered.
    Recovered,
    /// A seq already held (or settled before this run): nothing changes.
    Duplicate,
}

/// Something the gateway must do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Ask the node for a missing range.
    Resend {
        /// The sensor whose readings are missing.
        sensor: u32,
        /// The request (its session and range).
        resend: Resend,
    },
    /// A range was asked for as often as the policy allows and did not come: unrecoverable.
    GaveUp {
        /// The sensor.
        sensor: u32,
        /// The range given up (its session and seqs, both ends included).
        range: Resend,
    },
}

/// One missing range, `from` (the map key) to `to`, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gap {
    to: u32,
    /// Requests sent so far.
    sent: u32,
    /// When the next request (or the give-up) is due.
    due_ms: u64,
}

/// The books of one (sensor, session).
#[derive(Clone, Debug, Default)]
struct Book {
    /// One past the highest seq held or known to exist.
    next: u32,
    /// Missing ranges by first seq; they never overlap and all lie below `next`.
    gaps: BTreeMap<u32, Gap>,
    /// The last seq acknowledged to the node.
    acked: Option<u32>,
    /// When an idle node's heartbeat may next have the last acknowledgement repeated.
    repeat_after_ms: u64,
}

impl Book {
    /// The highest seq such that every seq up to it is held or given up.
    fn settled(&self) -> Option<u32> {
        match self.gaps.first_key_value() {
            Some((&from, _)) => from.checked_sub(1),
            None => self.next.checked_sub(1),
        }
    }

    /// Marks `seq` (below `next`) as held; true when it was missing.
    fn fill(&mut self, seq: u32) -> bool {
        let Some((&from, &gap)) = self.gaps.range(..=seq).next_back() else {
            return false;
        };
        if seq > gap.to {
            return false;
        }
        self.gaps.remove(&from);
        if from < seq {
            self.gaps.insert(from, Gap { to: seq - 1, ..gap });
        }
        if seq < gap.to {
            self.gaps.insert(seq + 1, gap);
        }
        true
    }
}

/// The books of every (sensor, session) the gateway has seen.
///
/// # Examples
/// ```
/// use mend::listen::{Arrival, Request, RetryPolicy, Tracker};
/// use mend_core::{Ack, Resend};
/// let mut t = Tracker::new(RetryPolicy { tries: 2, first_ms: 100, max_ms: 100 });
/// // The node says its log gave frames up: what it does not send again is given up.
/// t.node_dropped(7);
/// for seq in [0, 1, 4] {
///     t.reading(7, 3, seq, 0);
/// }
/// assert_eq!(t.missing(), 2);
/// let ask = Resend { session: 3, from: 2, to: 3 };
/// assert_eq!(t.due(0), [Request::Resend { sensor: 7, resend: ask }]);
/// assert_eq!(t.acks(), [Ack { session: 3, seq: 1 }], "not past the gap");
/// assert_eq!(t.reading(7, 3, 2, 50), Arrival::Recovered);
/// assert_eq!(t.due(100), [Request::Resend { sensor: 7, resend: Resend { from: 3, ..ask } }]);
/// assert_eq!(t.due(300), [Request::GaveUp { sensor: 7, range: Resend { from: 3, ..ask } }]);
/// assert_eq!(t.acks(), [Ack { session: 3, seq: 4 }]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    policy: RetryPolicy,
    books: BTreeMap<(u32, u32), Book>,
    /// Sensors whose node said (in a stats frame) that its flash log gave frames up.
    dropping: BTreeSet<u32>,
    /// When the latest acknowledgements were last repeated (see
    /// [`repeat_acks`](Self::repeat_acks)), ms.
    acks_repeated: u64,
}

impl Tracker {
    /// Empty books.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            books: BTreeMap::new(),
            dropping: BTreeSet::new(),
            acks_repeated: 0,
        }
    }

    /// The node of `sensor` says its flash log gave frames up (a stats frame with a log drop
    /// count above 0): from now on, a range it does not send again after the retries is
    /// given up. Until a node says so, nothing is given up: it still holds every frame the
    /// gateway has not acknowledged, and the gateway keeps asking, at the longest backoff.
    pub fn node_dropped(&mut self, sensor: u32) {
        self.dropping.insert(sensor);
    }

    /// Learns a seq that was on disk before this run. Seqs held in the capture are never asked
    /// for; a seq missing between them is, as if it had just gone missing: the node still
    /// holds it unless an earlier run acknowledged past it (then the node says it no longer
    /// has it, and the range is given up as usual).
    pub fn seed(&mut self, sensor: u32, session: u32, seq: u32, now_ms: u64) {
        // The same books as a reading arriving now; only the gateway's counts differ.
        let _ = self.reading(sensor, session, seq, now_ms);
    }

    /// A durable reading (or fault frame, which settles its seq too) of `seq` arrived at
    /// `now_ms`, sent live or replayed: the books tell which seqs were missing.
    pub fn reading(&mut self, sensor: u32, session: u32, seq: u32, now_ms: u64) -> Arrival {
        let book = self.books.entry((sensor, session)).or_default();
        if seq >= book.next {
            Self::open(book, seq, now_ms);
            book.next = seq.saturating_add(1);
            Arrival::New
        } else if book.fill(seq) {
            Arrival::Recovered
        } else {
            Arrival::Duplicate
        }
    }

    /// The node says (in a heartbeat) that `next` is the seq it samples next: every seq
    /// below it exists, and those not held are missing.
    pub fn reached(&mut self, sensor: u32, session: u32, next: u32, now_ms: u64) {
        let book = self.books.entry((sensor, session)).or_default();
        if next > book.next {
            Self::open(book, next, now_ms);
            book.next = next;
        }
        // Everything the node has is held and acknowledged, yet the node still sends: the
        // acknowledgement may have been lost, and no later one would replace it. Repeat it,
        // at most once per first backoff.
        let all_held = book.settled() == next.checked_sub(1);
        if all_held && book.acked == book.settled() && now_ms >= book.repeat_after_ms {
            book.acked = None;
            book.repeat_after_ms = now_ms.saturating_add(self.policy.first_ms);
        }
    }

    /// Opens the gap from `book.next` to just below `seq`, asked for at once.
    fn open(book: &mut Book, seq: u32, now_ms: u64) {
        if seq > book.next {
            book.gaps.insert(
                book.next,
                Gap {
                    to: seq - 1,
                    sent: 0,
                    due_ms: now_ms,
                },
            );
        }
    }

    /// The resend requests due at `now_ms`, and the ranges given up after the last request
    /// went unanswered for its backoff.
    pub fn due(&mut self, now_ms: u64) -> Vec<Request> {
        let mut out = Vec::new();
        for (&(sensor, session), book) in &mut self.books {
            let mut given_up = Vec::new();
            for (&from, gap) in &mut book.gaps {
                if gap.due_ms > now_ms {
                    continue;
                }
                let range = Resend {
                    session,
                    from,
                    to: gap.to,
                };
                if gap.sent >= self.policy.tries && self.dropping.contains(&sensor) {
                    given_up.push(from);
                    out.push(Request::GaveUp { sensor, range });
                } else if gap.sent >= self.policy.tries {
                    // The node has dropped nothing: it still holds the range. Ask again.
                    gap.due_ms = now_ms.saturating_add(self.policy.max_ms);
                    out.push(Request::Resend {
                        sensor,
                        resend: range,
                    });
                } else {
                    gap.sent += 1;
                    gap.due_ms = now_ms.saturating_add(self.policy.backoff_ms(gap.sent));
                    out.push(Request::Resend {
                        sensor,
                        resend: range,
                    });
                }
            }
            for from in given_up {
                book.gaps.remove(&from);
            }
        }
        out
    }

    /// The acknowledgements to send: for each session whose settled prefix grew since the
    /// last call, the highest seq up to which everything is on disk or given up.
    pub fn acks(&mut self) -> Vec<Ack> {
        let mut out = Vec::new();
        for (&(_, session), book) in &mut self.books {
            if let Some(seq) = book.settled() {
                if book.acked.is_none_or(|a| seq > a) {
                    book.acked = Some(seq);
                    out.push(Ack { session, seq });
                }
            }
        }
        out
    }

    /// Once `every_ms` passed since the last repeat, makes the next [`acks`](Self::acks)
    /// repeat the latest acknowledgement of each session. An acknowledgement is sent again
    /// only when it grows, and one lost on the way is never followed by a larger one once
    /// nothing new arrives (a node that finished sampling, or a session a power cut ended):
    /// the node would keep that part of its log, and wait, for ever. Each repeat costs a few
    /// bytes a session.
    ///
    /// # Examples
    /// ```
    /// use mend::listen::{RetryPolicy, Tracker};
    /// use mend_core::Ack;
    /// let mut t = Tracker::new(RetryPolicy::default());
    /// t.reading(7, 3, 0, 0);
    /// assert_eq!(t.acks(), [Ack { session: 3, seq: 0 }]);
    /// assert_eq!(t.acks(), [], "sent once");
    /// t.repeat_acks(1_000, 2_000);
    /// assert_eq!(t.acks(), [], "not yet");
    /// t.repeat_acks(2_000, 2_000);
    /// assert_eq!(t.acks(), [Ack { session: 3, seq: 0 }], "lost on the way, maybe: again");
    /// assert_eq!(t.acks(), []);
    /// ```
    pub fn repeat_acks(&mut self, now: u64, every_ms: u64) {
        if now.saturating_sub(self.acks_repeated) >= every_ms {
            self.acks_repeated = now;
            self.forget_acks();
        }
    }

    /// Forgets which acknowledgements were sent (after a reconnect the node may have missed
    /// them): the next [`acks`](Self::acks) repeats the latest of each session.
    pub fn forget_acks(&mut self) {
        for book in self.books.values_mut() {
            book.acked = None;
        }
    }

    /// Seqs still missing (asked for, not yet given up).
    pub fn missing(&self) -> u64 {
        self.books
            .values()
            .flat_map(|b| b.gaps.iter())
            .map(|(&from, gap)| u64::from(gap.to - from) + 1)
            .sum()
    }

    /// The missing ranges, as (sensor, range), in order.
    pub fn missing_ranges(&self) -> Vec<(u32, Resend)> {
        self.books
            .iter()
            .flat_map(|(&(sensor, session), b)| {
                b.gaps.iter().map(move |(&from, gap)| {
                    (
                        sensor,
                        Resend {
                            session,
                            from,
                            to: gap.to,
                        },
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const P: RetryPolicy = RetryPolicy {
        tries: 3,
        first_ms: 100,
        max_ms: 250,
    };

    fn resend(session: u32, from: u32, to: u32) -> Request {
        Request::Resend {
            sensor: 1,
            resend: Resend { session, from, to },
        }
    }

    #[test]
    fn gaps_are_exactly_the_seqs_not_received() {
        let mut t = Tracker::new(P);
        for seq in [0, 1, 2, 5, 6, 9] {
            assert_eq!(t.reading(1, 1, seq, 0), Arrival::New);
        }
        assert_eq!(t.due(0), [resend(1, 3, 4), resend(1, 7, 8)]);
        assert_eq!(t.missing(), 4);
        assert_eq!(t.reading(1, 1, 7, 1), Arrival::Recovered);
        assert_eq!(t.reading(1, 1, 7, 1), Arrival::Duplicate);
        assert_eq!(t.reading(1, 1, 2, 1), Arrival::Duplicate);
        assert_eq!(t.missing(), 3);
        assert_eq!(
            t.missing_ranges(),
            [
                (
                    1,
                    Resend {
                        session: 1,
                        from: 3,
                        to: 4
                    }
                ),
                (
                    1,
                    Resend {
                        session: 1,
                        from: 8,
                        to: 8
                    }
                )
            ]
        );
    }

    #[test]
    fn filling_the_middle_of_a_gap_splits_it() {
        let mut t = Tracker::new(P);
        t.reading(1, 1, 10, 0);
        assert_eq!(t.due(0), [resend(1, 0, 9)]);
        t.reading(1, 1, 4, 0);
        t.reading(1, 1, 0, 0);
        t.reading(1, 1, 9, 0);
        assert_eq!(
            t.missing_ranges(),
            [
                (
                    1,
                    Resend {
                        session: 1,
                        from: 1,
                        to: 3
                    }
                ),
                (
                    1,
                    Resend {
                        session: 1,
                        from: 5,
                        to: 8
                    }
                )
            ]
        );
    }

    #[test]
    fn requests_back_off_and_give_up_after_the_last_try() {
        let mut t = Tracker::new(P);
        t.node_dropped(1);
        t.reading(1, 2, 0, 0);
        t.reading(1, 2, 3, 0);
        let mut sent = Vec::new();
        let mut gave_up = None;
        for now in (0..2_000).step_by(10) {
            for r in t.due(now) {
                match r {
                    Request::Resend { .. } => sent.push(now),
                    Request::GaveUp { range, .. } => gave_up = Some((now, range)),
                }
            }
        }
        // Waits of 100, 200 and 250 (the cap) after the three requests.
        assert_eq!(sent, [0, 100, 300]);
        assert_eq!(
            gave_up,
            Some((
                550,
                Resend {
                    session: 2,
                    from: 1,
                    to: 2
                }
            ))
        );
        assert_eq!(t.missing(), 0);
    }

    #[test]
    fn nothing_is_given_up_until_the_node_says_its_log_dropped_frames() {
        let mut t = Tracker::new(RetryPolicy { tries: 1, ..P });
        t.reading(1, 2, 0, 0);
        t.reading(1, 2, 3, 0);
        let mut asked = 0;
        for now in (0..20_000).step_by(10) {
            for r in t.due(now) {
                assert!(matches!(r, Request::Resend { .. }), "{r:?} at {now} ms");
                asked += 1;
            }
        }
        assert!(asked > 10, "asked {asked} times: it keeps asking");
        assert_eq!(t.missing(), 2);
        assert!(t.acks().iter().all(|a| a.seq < 1));
        t.node_dropped(1);
        let later = t.due(40_000);
        assert!(matches!(later[..], [Request::GaveUp { .. }]), "{later:?}");
        assert_eq!(t.acks(), [Ack { session: 2, seq: 3 }]);
    }

    #[test]
    fn acks_cover_only_what_is_held_or_given_up() {
        let mut t = Tracker::new(RetryPolicy { tries: 0, ..P });
        t.node_dropped(1);
        assert!(t.acks().is_empty());
        t.reading(1, 4, 1, 0);
        assert!(t.acks().is_empty(), "seq 0 is missing: nothing settled");
        t.reading(1, 4, 0, 0);
        assert_eq!(t.acks(), [Ack { session: 4, seq: 1 }]);
        assert!(t.acks().is_empty(), "sent once");
        t.reading(1, 4, 5, 0);
        assert!(t.acks().is_empty(), "2..=4 missing");
        t.due(0); // no tries: given up at once
        assert_eq!(t.acks(), [Ack { session: 4, seq: 5 }]);
        t.forget_acks();
        assert_eq!(
            t.acks(),
            [Ack { session: 4, seq: 5 }],
            "repeated after a reconnect"
        );
    }

    #[test]
    fn seeded_seqs_are_never_asked_for_and_holes_between_them_are() {
        let mut t = Tracker::new(P);
        for seq in (0..=40).filter(|s| !(12..=13).contains(s)) {
            t.seed(1, 1, seq, 0);
        }
        assert_eq!(t.reading(1, 1, 20, 0), Arrival::Duplicate);
        t.reading(1, 1, 42, 0);
        assert_eq!(t.due(0), [resend(1, 12, 13), resend(1, 41, 41)]);
        assert_eq!(
            t.acks(),
            [Ack {
                session: 1,
                seq: 11
            }]
        );
        assert_eq!(t.reading(1, 1, 12, 5), Arrival::Recovered);
    }

    #[test]
    fn an_idle_node_gets_its_last_acknowledgement_again_in_case_it_was_lost() {
        let mut t = Tracker::new(P);
        for seq in 0..10 {
            t.reading(1, 3, seq, 0);
        }
        assert_eq!(t.acks(), [Ack { session: 3, seq: 9 }]);
        assert!(t.acks().is_empty());
        t.reached(1, 3, 10, 1_000);
        assert_eq!(t.acks(), [Ack { session: 3, seq: 9 }], "repeated");
        t.reached(1, 3, 10, 1_000 + P.first_ms - 1);
        assert!(t.acks().is_empty(), "not more often than the first backoff");
        t.reached(1, 3, 10, 1_000 + P.first_ms);
        assert_eq!(t.acks(), [Ack { session: 3, seq: 9 }]);
        // A heartbeat past what is held asks for the tail instead.
        t.reached(1, 3, 12, 5_000);
        assert!(t.acks().is_empty());
        assert_eq!(t.missing(), 2);
    }

    #[test]
    fn heartbeats_reveal_a_lost_tail() {
        let mut t = Tracker::new(P);
        t.reading(1, 1, 0, 0);
        t.reached(1, 1, 3, 0);
        t.reached(1, 1, 2, 0);
        assert_eq!(t.due(0), [resend(1, 1, 2)]);
    }

    #[test]
    fn sessions_are_kept_apart() {
        let mut t = Tracker::new(P);
        t.reading(1, 1, 0, 0);
        t.reading(1, 2, 2, 0);
        assert_eq!(t.due(0), [resend(2, 0, 1)]);
        assert_eq!(t.acks(), [Ack { session: 1, seq: 0 }]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Reading(u32),
        Heartbeat(u32),
        Wait(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u32..48).prop_map(Op::Reading),
            1 => (0u32..48).prop_map(Op::Heartbeat),
            2 => (0u64..300).prop_map(Op::Wait),
        ]
    }

    proptest::proptest! {
        /// Random arrivals, heartbeats and waits against a set model: the missing seqs are
        /// exactly those below the highest known that are neither held nor given up, every
        /// request asks only for missing seqs, and no ack covers a seq not held or given up.
        #[test]
        fn the_books_match_a_set_model(ops in proptest::collection::vec(op(), 1..80)) {
            let mut t = Tracker::new(P);
            t.node_dropped(1);
            let (mut held, mut given_up) = (BTreeSet::new(), BTreeSet::new());
            let mut next = 0u32;
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Reading(seq) => {
                        let missing = seq < next && !held.contains(&seq) && !given_up.contains(&seq);
                        let want = if seq >= next {
                            Arrival::New
                        } else if missing {
                            Arrival::Recovered
                        } else {
                            Arrival::Duplicate
                        };
                        proptest::prop_assert_eq!(t.reading(1, 1, seq, now), want);
                        held.insert(seq);
                        next = next.max(seq + 1);
                    }
                    Op::Heartbeat(n) => {
                        t.reached(1, 1, n, now);
                        next = next.max(n);
                    }
                    Op::Wait(ms) => now += ms,
                }
                for r in t.due(now) {
                    match r {
                        Request::Resend { resend, .. } => {
                            for s in resend.from..=resend.to {
                                proptest::prop_assert!(!held.contains(&s) && !given_up.contains(&s));
                            }
                        }
                        Request::GaveUp { range, .. } => {
                            for s in range.from..=range.to {
                                proptest::prop_assert!(!held.contains(&s));
                                given_up.insert(s);
                            }
                        }
                    }
                }
                let model: BTreeSet<u32> = (0..next)
                    .filter(|s| !held.contains(s) && !given_up.contains(s))
                    .collect();
                let books: BTreeSet<u32> = t
                    .missing_ranges()
                    .iter()
                    .flat_map(|(_, r)| r.from..=r.to)
                    .collect();
                proptest::prop_assert_eq!(t.missing(), model.len() as u64);
                proptest::prop_assert_eq!(&books, &model);
                for ack in t.acks() {
                    for s in 0..=ack.seq {
                        proptest::prop_assert!(held.contains(&s) || given_up.contains(&s));
                    }
                    proptest::prop_assert!(model.first().is_none_or(|&m| ack.seq < m));
                }
            }
        }
    }
}
