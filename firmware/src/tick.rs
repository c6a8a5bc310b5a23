//! The node's clock: SysTick at 1 kHz, counting milliseconds since boot.
//!
//! The main loop sleeps in `wfi` until the next sample is due and never polls a timer. Under
//! QEMU's `-icount shift=0,sleep=off` that makes every run identical, and virtual time jumps
//! ahead while the CPU sleeps, so a minute of sampling takes a fraction of a second.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::exception;

use crate::board::SYSCLK_HZ;

/// Milliseconds since [`start`], wrapping after 49 days (see [`Clock`]).
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // Single core, and only this handler writes: a load and a store are enough.
    MILLIS.store(
        MILLIS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Starts SysTick at 1 kHz from the core clock.
pub fn start(mut syst: SYST) -> Clock {
    syst.set_reload(SYSCLK_HZ / 1_000 - 1);
    syst.set_clock_source(SystClkSource::Core);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    Clock {
        syst,
        last: 0,
        high: 0,
    }
}

/// A 64-bit millisecond clock on top of the wrapping 32-bit tick counter.
pub struct Clock {
    syst: SYST,
    last: u32,
    high: u64,
}

impl Clock {
    /// Milliseconds since boot. Call at least once every 49 days.
    pub fn now_ms(&mut self) -> u64 {
        let now = MILLIS.load(Ordering::Relaxed);
        if now < self.last {
            self.high += 1 << 32;
        }
        self.last = now;
        self.high | u64::from(now)
    }

    /// Sleeps (`wfi`) until the clock reads at least `deadline_ms`.
    pub fn sleep_until(&mut self, deadline_ms: u64) {
        while self.now_ms() < deadline_ms {
            // An interrupt between the check and `wfi` only delays the wake-up by one tick,
            // and the next tick always comes.
            cortex_m::asm::wfi();
        }
    }

    /// Stops the clock, so that virtual time stands still while the node waits for the test
    /// harness (lock-step mode); [`resume`](Self::resume) restarts it where it stopped.
    pub fn pause(&mut self) {
        self.syst.disable_counter();
    }

    /// Restarts the clock after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        self.syst.enable_counter();
    }
}
