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

    #[cfg(feature = "store")]
    const IM: usize = 0x038;
    #[cfg(feature = "store")]
    const ICR: usize = 0x044;

    const FR_TXFF: u32 = 1 << 5;
    #[cfg(feature = "store")]
    const FR_RXFE: u32 = 1 << 4;
    /// Receive and receive-timeout interrupts.
    #[cfg(feature = "store")]
    const INT_RX: u32 = (1 << 4) | (1 << 6);
    /// Polls of a full transmit FIFO before a byte is given up: about 20 ms at 12.5 MHz,
    /// some 200 byte times at 115 200 baud.
    #[cfg(feature = "store")]
    const TX_PATIENCE: u32 = 1 << 16;
    #[cfg_attr(feature = "store", allow(dead_code))]
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
    #[cfg_attr(feature = "store", allow(dead_code))]
    pub fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            while Self::reg(Self::FR).read() & Self::FR_TXFF != 0 {}
            Self::reg(Self::DR).write(u32::from(b));
        }
    }

    /// Sends `bytes`, waiting a bounded time for FIFO room: a UART that cannot send (held
    /// by flow control, say) never stalls the node. Returns false, having sent only part of
    /// the frame, when a byte found no room in time; the receiver's decoder skips the torn
    /// frame, and the store node sends it again from its log when asked.
    #[cfg(feature = "store")]
    pub fn try_write_all(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            let mut patience = Self::TX_PATIENCE;
            while Self::reg(Self::FR).read() & Self::FR_TXFF != 0 {
                patience -= 1;
                if patience == 0 {
                    return false;
                }
            }
            Self::reg(Self::DR).write(u32::from(b));
        }
        true
    }

    /// Raises the UART0 interrupt whenever a byte arrives (the handler calls
    /// [`Uart0::drain_rx`]).
    #[cfg(feature = "store")]
    pub fn listen(&mut self) {
        Self::reg(Self::IM).write(Self::INT_RX);
    }

    /// Takes every received byte out of the FIFO, in order, and clears the receive
    /// interrupt. Called from the UART0 interrupt handler, which owns the receive side.
    #[cfg(feature = "store")]
    pub fn drain_rx(mut take: impl FnMut(u8)) {
        while Self::reg(Self::FR).read() & Self::FR_RXFE == 0 {
            // The low byte is the data; bits 8-11 flag framing, parity, break and overrun
            // errors, which the frame check catches anyway.
            take(Self::reg(Self::DR).read() as u8);
        }
        Self::reg(Self::ICR).write(Self::INT_RX);
    }

    /// Waits until the last byte has left the shift register.
    #[cfg_attr(feature = "store", allow(dead_code))]
    pub fn flush(&mut self) {
        while Self::reg(Self::FR).read() & Self::FR_BUSY != 0 {}
    }
}
