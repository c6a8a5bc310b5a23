//! The ordered batch worker both threaded readers run on: one thread cuts the input into
//! jobs in file order, one or more threads work them (in turn, so the results can be taken
//! back in the order the jobs were cut), and channels of two keep memory bounded.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread;

use super::item::Item;

/// Jobs in flight per channel: enough to keep the threads busy, few enough that memory
/// stays bounded.
const IN_FLIGHT: usize = 2;

/// The results of jobs worked on threads of their own, taken back in the order the jobs were
/// cut.
pub(super) struct Ordered<T> {
    lanes: Vec<Receiver<T>>,
    next: usize,
}

impl<T: Send + 'static> Ordered<T> {
    /// Starts `cut` on a thread: each call gives the next job and whether it is the last.
    /// With one lane, `work` runs on that thread too; with more, each on a thread of its own,
    /// lane `k` working jobs `k`, `k + lanes`, … When the receiving end is dropped (the replay
    /// stopped early), every thread ends at its next hand-over.
    pub(super) fn spawn<J, C, W>(lanes: usize, mut cut: C, work: W) -> Self
    where
        J: Send + 'static,
        C: FnMut() -> (J, bool) + Send + 'static,
        W: Fn(J) -> T + Clone + Send + 'static,
    {
        if lanes <= 1 {
            let (tx, rx) = sync_channel::<T>(IN_FLIGHT);
            thread::spawn(move || loop {
                let (job, last) = cut();
                if tx.send(work(job)).is_err() || last {
                    break;
                }
            });
            return Self {
                lanes: vec![rx],
                next: 0,
            };
        }
        let mut to_lanes = Vec::with_capacity(lanes);
        let mut from_lanes = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (tx_job, rx_job) = sync_channel::<J>(IN_FLIGHT);
            let (tx_out, rx_out) = sync_channel::<T>(IN_FLIGHT);
            let work = work.clone();
            thread::spawn(move || {
                for job in rx_job {
                    if tx_out.send(work(job)).is_err() {
                        break;
                    }
                }
            });
            to_lanes.push(tx_job);
            from_lanes.push(rx_out);
        }
        thread::spawn(move || {
            for k in (0..lanes).cycle() {
                let (job, last) = cut();
                let sent = to_lanes.get(k).is_some_and(|tx| tx.send(job).is_ok());
                if !sent || last {
                    break;
                }
            }
        });
        Self {
            lanes: from_lanes,
            next: 0,
        }
    }

    /// The result of the next job, waiting for it; an error if the threads ended before it.
    pub(super) fn recv(&mut self) -> io::Result<T> {
        let lane = self
            .lanes
            .get(self.next)
            .ok_or_else(|| io::Error::other("no input reader thread"))?;
        self.next = (self.next + 1) % self.lanes.len();
        lane.recv()
            .map_err(|_| io::Error::other("the input reader stopped unexpectedly"))
    }
}

/// Moves `items` to the end of `out` (swapping the vectors when `out` is empty, so nothing is
/// copied) and returns the emptied vector, to be filled again.
pub(super) fn hand_over(out: &mut Vec<Item>, mut items: Vec<Item>) -> Vec<Item> {
    if out.is_empty() {
        std::mem::swap(out, &mut items);
    } else {
        out.append(&mut items);
    }
    items
}
