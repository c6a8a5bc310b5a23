//! The node's clock: SysTick as a one-shot wake-up timer, and no tick at all in between.
//!
//! A periodic 1 kHz tick woke the CPU a thousand times a second to count milliseconds, which
//! at 1 Hz sampling cost several times the sampling itself. Here the counter is armed for
//! exactly the time left until the next sample (or the longest its 24 bits allow), the CPU
//! sleeps in `wfi`, and the one interrupt adds the armed interval to the clock. Between
//! interrupts the time is the interval's start plus what the counter has counted down, so
//! the clock stays exact to the tick however long the node is awake.
//!
//! The main loop never polls a timer. Under QEMU's `-icount shift=0,sleep=off` that makes
//! every run identical, and virtual time jumps ahead while the CPU sleeps, so a minute of
//! sampling takes a fraction of a second.

use core::cell::Cell;

use cortex_m::interrupt::{self, CriticalSection, Mutex};
use cortex_m::peripheral::{syst::SystClkSource, SCB, SYST};
use cortex_m_rt::exception;

use crate::board::SYSCLK_HZ;

/// SysTick counts the core clock: this many counts make a millisecond.
const TICKS_PER_MS: u32 = SYSCLK_HZ / 1_000;
/// The longest interval SysTick's 24-bit counter can time (1.34 s at 12.5 MHz).
const MAX_INTERVAL: u32 = 1 << 24;

/// A time since [`start`]: milliseconds, and counts into the next one. Kept in two parts so
/// that the clock needs no 64-bit division (half a KiB of flash, and slow on a Cortex-M0).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Instant {
    ms: u64,
    counts: u32,
}

impl Instant {
    /// `self` plus `counts`.
    fn plus(self, counts: u32) -> Self {
        // Below 2^25: `self.counts` is under a millisecond, `counts` at most 24 bits.
        let sum = self.counts + counts;
        Self {
            ms: self.ms + u64::from(sum / TICKS_PER_MS),
            counts: sum % TICKS_PER_MS,
        }
    }
}

/// Where the running interval started, and how long it is. The counter reloads with the
/// same interval when it ends, so time is kept even when nothing re-arms it.
#[derive(Clone, Copy)]
struct Interval {
    start: Instant,
    length: u32,
}

static INTERVAL: Mutex<Cell<Interval>> = Mutex::new(Cell::new(Interval {
    start: Instant { ms: 0, counts: 0 },
    length: MAX_INTERVAL,
}));

#[exception]
fn SysTick() {
    interrupt::free(|cs| {
        let cell = INTERVAL.borrow(cs);
        let mut i = cell.get();
        i.start = i.start.plus(i.length);
        cell.set(i);
    });
}

/// Starts the clock at 0, counting the core clock.
pub fn start(mut syst: SYST) -> Clock {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(MAX_INTERVAL - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    Clock { syst }
}

/// A 64-bit millisecond clock on SysTick counts.
pub struct Clock {
    syst: SYST,
}

impl Clock {
    /// The time now. An interval is over when its counter reaches 0, which also pends the
    /// interrupt; until the handler has run (interrupts are off here), the interval is
    /// counted as over all the same. A counter at 0 without a pending interrupt has just
    /// been re-armed, or its handler has run: nothing is counted yet.
    fn now(cs: &CriticalSection) -> Instant {
        let mut i = INTERVAL.borrow(cs).get();
        // The pending bit before and after the counter, so that the two agree.
        let (pending, left) = loop {
            let before = SCB::is_pendst_pending();
            let left = SYST::get_current();
            if SCB::is_pendst_pending() == before {
                break (before, left);
            }
        };
        if pending {
            i.start = i.start.plus(i.length);
        }
        let counted = if left == 0 { 0 } else { i.length - left };
        i.start.plus(counted)
    }

    /// Milliseconds since boot.
    pub fn now_ms(&mut self) -> u64 {
        interrupt::free(Self::now).ms
    }

    /// Sleeps (`wfi`) until the clock reads at least `deadline_ms`, with one wake-up per
    /// 1.34 s of sleep at most.
    #[cfg_attr(feature = "store", allow(dead_code))]
    pub fn sleep_until(&mut self, deadline_ms: u64) {
        self.sleep_until_or(deadline_ms, |_| false);
    }

    /// [`sleep_until`](Self::sleep_until), but also returns as soon as `wake` is true. `wake`
    /// is asked with interrupts off, just before each sleep, so an interrupt that makes it
    /// true either comes before the check or ends the sleep: it is never slept through.
    /// Returns true when the deadline has come.
    pub fn sleep_until_or(
        &mut self,
        deadline_ms: u64,
        wake: impl Fn(&CriticalSection) -> bool,
    ) -> bool {
        loop {
            let done = interrupt::free(|cs| {
                let now = Self::now(cs);
                if now.ms >= deadline_ms {
                    return Some(true);
                }
                if wake(cs) {
                    return Some(false);
                }
                // Re-arm: the new interval starts now and ends at the deadline, or as late
                // as the counter reaches.
                let length = match u32::try_from(deadline_ms - now.ms) {
                    Ok(ms) if ms <= MAX_INTERVAL / TICKS_PER_MS => ms * TICKS_PER_MS - now.counts,
                    _ => MAX_INTERVAL,
                }
                .max(2);
                self.syst.set_reload(length - 1);
                self.syst.clear_current();
                SCB::clear_pendst();
                INTERVAL.borrow(cs).set(Interval { start: now, length });
                // Interrupts are off, but the SysTick's (or another interrupt) still ends the
                // sleep; its handler runs when the critical section ends.
                cortex_m::asm::wfi();
                None
            });
            if let Some(due) = done {
                return due;
            }
        }
    }

    /// Stops the clock, so that virtual time stands still while the node waits for the test
    /// harness (lock-step mode); [`resume`](Self::resume) restarts it where it stopped.
    #[cfg(feature = "qemu")]
    #[cfg_attr(feature = "store", allow(dead_code))]
    pub fn pause(&mut self) {
        self.syst.disable_counter();
    }

    /// Restarts the clock after [`pause`](Self::pause).
    #[cfg(feature = "qemu")]
    #[cfg_attr(feature = "store", allow(dead_code))]
    pub fn resume(&mut self) {
        self.syst.enable_counter();
    }
}
