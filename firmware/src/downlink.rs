//! The downlink: what the gateway sends back on UART0 (`Ack`, `Resend`), received by
//! interrupt into a bounded buffer and decoded with the core's [`Decoder`].
//!
//! The interrupt handler only moves bytes from the receive FIFO into the buffer, so a
//! gateway that talks while the node is busy (writing flash, sending a replay) loses nothing
//! up to the buffer's size. A byte that finds the buffer full is dropped and counted; the frame
//! it belonged to then fails its check, and the gateway, which gets no answer, asks again.

use core::cell::RefCell;

use cortex_m::interrupt::{self as irq, CriticalSection, Mutex};
use cortex_m::peripheral::NVIC;
use lm3s6965::interrupt;
use mend_core::{Ack, DecodeEvent, Decoder, Frame, Resend};

use crate::board::uart::Uart0;

/// Bytes the buffer holds: sixteen `Ack` frames.
const CAPACITY: usize = 128;

/// A byte queue filled by the interrupt handler and emptied by the main loop.
struct Rx {
    bytes: [u8; CAPACITY],
    head: usize,
    len: usize,
    dropped: u32,
}

impl Rx {
    fn push(&mut self, b: u8) {
        if self.len >= CAPACITY {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        let mut at = self.head + self.len;
        if at >= CAPACITY {
            at -= CAPACITY;
        }
        if let Some(slot) = self.bytes.get_mut(at) {
            *slot = b;
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.bytes.get(self.head).copied();
        self.head = if self.head + 1 >= CAPACITY {
            0
        } else {
            self.head + 1
        };
        self.len -= 1;
        b
    }
}

static RX: Mutex<RefCell<Rx>> = Mutex::new(RefCell::new(Rx {
    bytes: [0; CAPACITY],
    head: 0,
    len: 0,
    dropped: 0,
}));

#[interrupt]
fn UART0() {
    irq::free(|cs| {
        let mut rx = RX.borrow(cs).borrow_mut();
        Uart0::drain_rx(|b| rx.push(b));
    });
}

/// True when received bytes wait in the buffer (checked before the node goes to sleep).
pub fn pending(cs: &CriticalSection) -> bool {
    RX.borrow(cs).borrow().len > 0
}

/// A command from the gateway.
#[derive(Clone, Copy, Debug)]
pub enum Command {
    /// Erase what the gateway has stored.
    Ack(Ack),
    /// Send a range again.
    Resend(Resend),
}

/// The receiving side of the link.
pub struct Downlink {
    decoder: Decoder,
    skipped: u32,
    ignored: u32,
}

impl Downlink {
    /// Starts receiving: UART0's receive interrupt on, the buffer empty.
    pub fn start(uart: &mut Uart0) -> Self {
        uart.listen();
        // SAFETY: the handler above only touches the buffer, inside a critical section; no
        // priority-based critical section depends on UART0 being masked.
        unsafe { NVIC::unmask(lm3s6965::Interrupt::UART0) };
        Self {
            decoder: Decoder::new(),
            skipped: 0,
            ignored: 0,
        }
    }

    /// The next complete command in what was received, if any.
    pub fn next(&mut self) -> Option<Command> {
        loop {
            let b = irq::free(|cs| RX.borrow(cs).borrow_mut().pop())?;
            match self.decoder.push(b) {
                Some(DecodeEvent::Frame {
                    frame: Frame::Ack(a),
                    ..
                }) => return Some(Command::Ack(a)),
                Some(DecodeEvent::Frame {
                    frame: Frame::Resend(r),
                    ..
                }) => return Some(Command::Resend(r)),
                Some(DecodeEvent::Frame { .. }) => self.ignored = self.ignored.saturating_add(1),
                Some(DecodeEvent::Skipped { .. }) => self.skipped = self.skipped.saturating_add(1),
                None => {}
            }
        }
    }

    /// Damaged spans the decoder skipped, frames that were no command, and bytes the full
    /// buffer dropped.
    pub fn losses(&self) -> (u32, u32, u32) {
        let dropped = irq::free(|cs| RX.borrow(cs).borrow().dropped);
        (self.skipped, self.ignored, dropped)
    }
}
