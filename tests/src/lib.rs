//! # mend-tests
//!
//! The end-to-end harness: it builds the sensor firmware, boots it in QEMU's `lm3s6965evb`
//! with a TMP105 on I2C0, sets the sensor's temperature over QMP, captures the node's UART0
//! frame stream and its semihosting report, and hands both to the tests in `tests/`.
//!
//! Why lock-step: QEMU runs the node under `-icount shift=0,sleep=off`, so a minute of
//! sampling passes in a fraction of a second of wall time, far too fast to change the
//! temperature "mid-run" by the clock. When its semihosting command line has the word
//! `lockstep`, the node stops its clock before each sample, announces `sample N` on the
//! semihosting console and waits for one byte. The harness sets sample N's temperature over
//! QMP and only then sends the byte. Every run is therefore identical, and the test knows
//! exactly which temperature each sample saw.
//!
//! The QEMU command line is the firmware's own `cargo run` runner, read from
//! `firmware/.cargo/config.toml`, so the tests boot exactly what a user boots.
//!
//! There is no silent skip: without `qemu-system-arm` every test fails and says what to
//! install.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod budget;
mod console;
pub mod fixtures;
mod golden;
mod node;
pub mod proxy;
mod qemu;
mod qmp;
mod schedule;
mod wire;

pub use budget::{
    assert_flash_budget, assert_flash_within, flash_bytes, FLASH_BUDGET, STORE_FLASH_BUDGET,
};
pub use console::{
    assert_ram_budget, assert_ram_within, console_number, mask_memory_figures, RAM_BUDGET,
    STORE_RAM_BUDGET,
};
pub use golden::assert_golden;
pub use node::{free_port, StoreNode};
pub use qemu::{
    build_firmware, firmware_dir, run, FirmwareBuild, Run, RunOptions, StopCondition, FLASH_NAME,
};
pub use qmp::Qmp;
pub use schedule::Schedule;
pub use wire::{decode_capture, millidegrees_to_celsius_bits, Capture};
