//! UART0, the node's only output for frames.
//!
//! Writes wait for room in the transmit FIFO (polling TXFF is a status bit, not a timer, so it
//! is deterministic under QEMU's icount). Frames are short and the UART is the node's link,
//! so blocking on it is the right back-pressure: the ring buffer absorbs the rest.

use super::Reg;

/// UART0 at 115 200 baud, 8N1, FIFOs on.
#[derive(Debug)]
pub struct Uart0 {
    _private: (),
}

impl Uart0 {
    // SAFETY: UART0's register block on the LM3S6965.
    const BASE: Reg = unsafe { Reg::at(0x4000_C000) };
    const DR: usize = 0x000;
    const FR: usize = 0x018;
    const IBRD: usize = 0x024;
    const FBRD: usize = 0x028;
    const LCRH: usize = 0x02C;
    const CTL: usize = 0x030;

    const FR_TXFF: u32 = 1 << 5;
    const FR_BUSY: u32 = 1 << 3;
    /// WLEN = 8 bits, FIFOs enabled.
    const LCRH_8N1_FIFO: u32 = 0x70;
    /// UARTEN | TXE | RXE.
    const CTL_ENABLE: u32 = 0x301;

    fn reg(offset: usize) -> Reg {
        // SAFETY: every offset used is a register of UART0's block.
        unsafe { Self::BASE.offset(offset) }
    }

    /// Configures UART0; only [`Board::take`](super::Board::take) calls it, once.
    pub(super) fn init() -> Self {
        // Baud divisor 12.5 MHz / (16 * 115200) = 6.78: IBRD 6, FBRD round(0.78 * 64) = 50.
        Self::reg(Self::CTL).write(0);
        Self::reg(Self::IBRD).write(6);
        Self::reg(Self::FBRD).write(50);
        Self::reg(Self::LCRH).write(Self::LCRH_8N1_FIFO);
        Self::reg(Self::CTL).write(Self::CTL_ENABLE);
        Self { _private: () }
    }

    /// Sends `bytes`, waiting for FIFO room as needed.
    pub fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            while Self::reg(Self::FR).read() & Self::FR_TXFF != 0 {}
            Self::reg(Self::DR).write(u32::from(b));
        }
    }

    /// Waits until the last byte has left the shift register.
    pub fn flush(&mut self) {
        while Self::reg(Self::FR).read() & Self::FR_BUSY != 0 {}
    }
}
