//! The node's report on hardware: `defmt` over RTT, read by a debug probe when one is attached.
//!
//! The same functions as the semihosting console of QEMU builds ([`crate::host`] with the
//! `qemu` feature), so the report is written once. Without a probe nothing reads the RTT
//! buffer, which starts in non-blocking mode: the messages are dropped, and the node never
//! waits for a debugger (a semihosting call would lock it up).

use defmt_rtt as _;

/// Logs `text` (one line; a trailing newline is dropped, defmt ends every message itself).
pub fn print(text: &str) {
    defmt::info!("{=str}", text.strip_suffix('\n').unwrap_or(text));
}

/// Logs `label` and the decimal `value`.
pub fn print_value(label: &str, value: u32) {
    defmt::info!("{=str}{=u32}", label, value);
}

/// Logs `label`, the decimal `value` and `unit`.
pub fn print_with_unit(label: &str, value: u32, unit: &str) {
    defmt::info!("{=str}{=u32}{=str}", label, value, unit);
}

/// Logs `label` and `value` in hexadecimal.
#[cfg_attr(not(any(feature = "fault", feature = "sim-source")), allow(dead_code))]
pub fn print_hex(label: &str, value: u64) {
    defmt::info!("{=str}{=u64:#018x}", label, value);
}

/// The run is over: on hardware there is nothing to exit to, so the node sleeps for good
/// (no wake-up is armed any more).
pub fn exit_success() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

/// An unrecoverable error: the node resets and starts a new session.
pub fn exit_failure() -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}
