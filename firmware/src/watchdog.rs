//! Watchdog timer 0: a node that hangs resets itself.
//!
//! The LM3S6965's watchdog counts down from its load value; the first time it reaches 0 it
//! raises its interrupt and reloads, the second time (interrupt still not cleared) it resets
//! the chip when reset is enabled. The node never enables the interrupt in the NVIC: the first
//! timeout only marks it, and feeding the dog (clearing the interrupt, which reloads the
//! counter) is the main loop's job, once per wake-up. So a main loop that stops for two
//! timeouts, [`TIMEOUT_MS`] each, resets the node.
//!
//! QEMU 7.2 models this watchdog for lm3s6965evb (the `luminary-watchdog` device, a variant of
//! the CMSDK APB watchdog) and resets the machine on its second timeout: a store build whose
//! main loop did not feed it rebooted every 4 s (a new session each time), and the QEMU build
//! runs with it armed. The reset cause register does not say so under QEMU (see
//! [`reset`](crate::reset)).

use crate::board::{Reg, SYSCLK_HZ};

// SAFETY: the run-mode clock gating register 0 of the system control block.
const RCGC0: Reg = unsafe { Reg::at(0x400F_E100) };
const RCGC0_WDT: u32 = 1 << 3;

// SAFETY: watchdog timer 0's register block on the LM3S6965.
const BASE: Reg = unsafe { Reg::at(0x4000_0000) };
const LOAD: usize = 0x000;
const CTL: usize = 0x008;
const ICR: usize = 0x00C;
/// INTEN (starts the counter; cannot be cleared but by a reset) and RESEN.
const CTL_RUN_AND_RESET: u32 = 0b11;

/// Time to each timeout; two without a feed reset the node. Longer than any sleep between
/// two wake-ups (a sampling period, or SysTick's 1.34 s at most).
pub const TIMEOUT_MS: u32 = 2_000;

fn reg(offset: usize) -> Reg {
    // SAFETY: every offset used is a register of the watchdog's block.
    unsafe { BASE.offset(offset) }
}

/// The running watchdog.
pub struct Watchdog {
    _private: (),
}

impl Watchdog {
    /// Starts the watchdog; from now on it must be fed.
    pub fn start() -> Self {
        RCGC0.set_bits(RCGC0_WDT);
        reg(LOAD).write(SYSCLK_HZ / 1_000 * TIMEOUT_MS);
        reg(CTL).write(CTL_RUN_AND_RESET);
        Self { _private: () }
    }

    /// Feeds the dog: clears the timeout and reloads the counter.
    pub fn feed(&mut self) {
        reg(ICR).write(1);
    }
}
