//! Stack high-water mark by painting.
//!
//! cortex-m-rt (feature `paint-stack`) fills everything between the end of static RAM and the
//! initial stack pointer with a known word before `main`. At exit the node scans up from the
//! bottom for the first word that is no longer the paint: everything above it was used. The
//! figure is exact to the word, unless the stack happened to store the paint value itself at
//! its deepest point, which could only make it smaller by a few words.

use cortex_m_rt::STACK_PAINT_VALUE;

extern "C" {
    /// The lowest address the stack may reach (end of `.bss`/`.uninit`), from `link.x`.
    static mut _stack_end: u32;
    /// The initial stack pointer (end of RAM), from `link.x`.
    static mut _stack_start: u32;
}

/// Bytes of static RAM (`.data`, `.bss`, `.uninit`): from the start of RAM to the stack's
/// lower bound.
pub fn static_ram_bytes() -> u32 {
    const RAM_START: usize = 0x2000_0000;
    (core::ptr::addr_of!(_stack_end) as usize - RAM_START) as u32
}

/// The deepest the stack has been since boot, in bytes.
pub fn peak_bytes() -> u32 {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut addr = bottom;
    while addr < top {
        // SAFETY: [bottom, top) is the stack region reserved by the linker script; it is
        // RAM, word aligned, and reading a word of it (in use or not) has no side effect.
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    (top - addr) as u32
}
