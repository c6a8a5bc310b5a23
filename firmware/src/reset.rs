//! Why the node started: the LM3S6965's reset cause register (RESC), read once at boot and
//! cleared, so that the next reset reports only its own cause.
//!
//! RESC accumulates a bit per cause: external pin (0), power-on (1), brown-out (2),
//! watchdog (3), software (4). When several are set the most specific one wins: a watchdog
//! or software reset is what the node most needs to report, and power-on (or a brown-out,
//! which is a power loss too) is the plain case. The external reset pin has no variant of its
//! own on the wire and reads as unknown, like a register with no bit set.
//!
//! QEMU's lm3s6965evb (`hw/arm/stellaris.c`) does not model the reset cause: its system
//! control block keeps RESC as a plain register that starts at 0 and holds what the firmware
//! writes, and no reset sets a cause bit. Measured with QEMU 7.2: RESC reads 0 at power-up,
//! after a QMP `system_reset` and after a watchdog reset, so under QEMU every session's header
//! says [`ResetReason::Unknown`]; the boot report prints the raw value (`reset cause: 0`).

use mend_core::ResetReason;

use crate::board::Reg;

// SAFETY: the Stellaris system control block's reset cause register.
const RESC: Reg = unsafe { Reg::at(0x400F_E05C) };

const EXTERNAL: u32 = 1 << 0;
const POWER_ON: u32 = 1 << 1;
const BROWN_OUT: u32 = 1 << 2;
const WATCHDOG: u32 = 1 << 3;
const SOFTWARE: u32 = 1 << 4;

/// Reads and clears the reset cause: the reason, and RESC as it was.
pub fn take() -> (ResetReason, u32) {
    let raw = RESC.read();
    RESC.write(0);
    (reason(raw), raw)
}

/// The reason RESC's bits give.
fn reason(raw: u32) -> ResetReason {
    let _ = EXTERNAL; // the reset pin: no variant of its own
    if raw & WATCHDOG != 0 {
        ResetReason::Watchdog
    } else if raw & SOFTWARE != 0 {
        ResetReason::Software
    } else if raw & (POWER_ON | BROWN_OUT) != 0 {
        ResetReason::PowerOn
    } else {
        ResetReason::Unknown
    }
}
