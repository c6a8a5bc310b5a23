//! The Stellaris I2C0 master as an [`embedded_hal::i2c::I2c`] bus.
//!
//! A transaction follows the `embedded-hal` 1.0 contract: one START, a repeated START at each
//! change of direction, and one STOP at the end. Two behaviours of QEMU 7.2's model need a
//! QEMU build (feature `qemu`) to differ:
//! - QEMU ignores a repeated START: the model keeps the bus in the old direction, so a
//!   write-then-read would read nothing. With `qemu`, a change of direction is therefore STOP
//!   and a new START; TMP105-class sensors keep their register pointer across a STOP, so the
//!   result is the same. Real hardware gets the repeated START.
//! - A missing device shows up as ARBLST|ERROR, not as an address NACK. The driver reports
//!   both as [`ErrorKind::NoAcknowledge`], which is what they mean to a caller.
//!
//! The CPU sleeps (`wfi`) while a byte is on the bus: the controller's master interrupt wakes
//! it. The interrupt is unmasked in the NVIC but taken with interrupts disabled, so no handler
//! runs: the driver clears it itself. A controller that never finishes is caught after a few
//! wake-ups (the clock's SysTick always comes), never by spinning.

use embedded_hal::i2c::{self, ErrorKind, NoAcknowledgeSource, Operation, SevenBitAddress};

use super::Reg;

/// A failed I2C transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No device acknowledged the address (or QEMU reported a missing device as lost
    /// arbitration).
    AddressNack,
    /// The device did not acknowledge a data byte.
    DataNack,
    /// Another master won the bus.
    ArbitrationLoss,
    /// The controller stayed busy past the poll limit.
    Timeout,
}

impl i2c::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::AddressNack => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address),
            Error::DataNack => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data),
            Error::ArbitrationLoss => ErrorKind::ArbitrationLoss,
            Error::Timeout => ErrorKind::Other,
        }
    }
}

/// I2C0 in master mode at 100 kHz.
#[derive(Debug)]
pub struct I2c0 {
    _private: (),
}

impl I2c0 {
    // SAFETY: I2C0 master's register block on the LM3S6965.
    const BASE: Reg = unsafe { Reg::at(0x4002_0000) };
    const MSA: usize = 0x000;
    const MCS: usize = 0x004;
    const MDR: usize = 0x008;
    const MTPR: usize = 0x00C;
    const MIMR: usize = 0x010;
    const MICR: usize = 0x01C;
    const MCR: usize = 0x020;
    /// The master interrupt (MIMR, MICR bit 0).
    const MASTER_IRQ: u32 = 0x01;
    /// I2C0's interrupt number in the NVIC.
    const IRQ: u32 = 8;
    // SAFETY: the NVIC's interrupt set-enable and clear-pending registers 0 (IRQs 0–31).
    const NVIC_ISER0: Reg = unsafe { Reg::at(0xE000_E100) };
    // SAFETY: as above.
    const NVIC_ICPR0: Reg = unsafe { Reg::at(0xE000_E280) };

    // MCS as written: commands.
    const RUN: u32 = 0x01;
    const START: u32 = 0x02;
    const STOP: u32 = 0x04;
    const ACK: u32 = 0x08;
    // MCS as read: status.
    const BUSY: u32 = 0x01;
    const ERROR: u32 = 0x02;
    const ADRACK: u32 = 0x04;
    const DATACK: u32 = 0x08;
    const ARBLST: u32 = 0x10;

    /// Master function enable; without it the controller ignores MCS writes.
    const MCR_MFE: u32 = 0x10;
    /// SCL = SYSCLK / (2 * (6 + 4) * (TPR + 1)): 12.5 MHz / 120 = 104 kHz.
    const TPR_100K: u32 = 5;
    /// Wake-ups to wait for one byte. A byte takes 90 µs at 100 kHz and its interrupt ends
    /// the first sleep; any other wake-up (the clock's) is a rare extra. A stuck controller
    /// gives an error, not a hang.
    const MAX_WAKES: u32 = 4;

    fn reg(offset: usize) -> Reg {
        // SAFETY: every offset used is a register of I2C0's master block.
        unsafe { Self::BASE.offset(offset) }
    }

    /// Configures I2C0 as a master; only [`Board::take`](super::Board::take) calls it, once.
    pub(super) fn init() -> Self {
        Self::reg(Self::MCR).write(Self::MCR_MFE);
        Self::reg(Self::MTPR).write(Self::TPR_100K);
        Self::reg(Self::MIMR).write(Self::MASTER_IRQ);
        Self::NVIC_ISER0.write(1 << Self::IRQ);
        Self { _private: () }
    }

    /// Issues one MCS command and sleeps until it is done; on error, releases the bus.
    fn command(&mut self, cmd: u32) -> Result<(), Error> {
        let mcs = Self::reg(Self::MCS);
        // With interrupts disabled, `wfi` still wakes on the pending interrupt, and the
        // status check before it cannot miss one.
        let status = cortex_m::interrupt::free(|_| {
            mcs.write(cmd);
            let mut wakes = 0;
            let status = loop {
                let s = mcs.read();
                if s & Self::BUSY == 0 {
                    break Some(s);
                }
                if wakes >= Self::MAX_WAKES {
                    break None;
                }
                wakes += 1;
                cortex_m::asm::wfi();
            };
            Self::reg(Self::MICR).write(Self::MASTER_IRQ);
            Self::NVIC_ICPR0.write(1 << Self::IRQ);
            status
        });
        let Some(status) = status else {
            mcs.write(Self::STOP);
            return Err(Error::Timeout);
        };
        if status & Self::ERROR == 0 {
            return Ok(());
        }
        if cmd & Self::STOP == 0 {
            mcs.write(Self::STOP);
        }
        Err(if status & Self::ADRACK != 0 {
            Error::AddressNack
        } else if status & Self::DATACK != 0 {
            Error::DataNack
        } else if status & Self::ARBLST != 0 {
            // QEMU's report of an absent device (see the module docs).
            Error::AddressNack
        } else {
            Error::ArbitrationLoss
        })
    }

    /// Writes `bytes` (not empty) from a START (repeated, if the bus is held) and ends with
    /// STOP when `stop`, else keeps the bus for a repeated START.
    fn write_transfer(
        &mut self,
        address: u8,
        bytes: &mut dyn Iterator<Item = u8>,
        stop: bool,
    ) -> Result<(), Error> {
        Self::reg(Self::MSA).write(u32::from(address) << 1);
        let mut next = bytes.next();
        let mut first = true;
        while let Some(b) = next {
            next = bytes.next();
            Self::reg(Self::MDR).write(u32::from(b));
            let mut cmd = Self::RUN;
            if first {
                cmd |= Self::START;
            }
            if next.is_none() && stop {
                cmd |= Self::STOP;
            }
            self.command(cmd)?;
            first = false;
        }
        Ok(())
    }

    /// Reads into the slots of `sink` (not empty) from a START (repeated, if the bus is held)
    /// and ends with STOP when `stop`, else keeps the bus for a repeated START.
    fn read_transfer(
        &mut self,
        address: u8,
        sink: &mut dyn Iterator<Item = &mut u8>,
        stop: bool,
    ) -> Result<(), Error> {
        Self::reg(Self::MSA).write(u32::from(address) << 1 | 1);
        let mut next = sink.next();
        let mut first = true;
        while let Some(slot) = next {
            next = sink.next();
            let mut cmd = Self::RUN;
            if first {
                cmd |= Self::START;
            }
            // ACK every byte but the last; the last is NACKed, then STOP or a repeated START.
            if next.is_some() {
                cmd |= Self::ACK;
            } else if stop {
                cmd |= Self::STOP;
            }
            self.command(cmd)?;
            *slot = Self::reg(Self::MDR).read() as u8;
            first = false;
        }
        Ok(())
    }
}

impl i2c::ErrorType for I2c0 {
    type Error = Error;
}

impl i2c::I2c<SevenBitAddress> for I2c0 {
    /// Runs the operations; consecutive operations of one direction form one transfer, and a
    /// change of direction is a repeated START (STOP + START in QEMU builds, see the module
    /// docs). Empty buffers move no bytes and put nothing on the bus: the controller cannot
    /// send an address alone.
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let mut rest = operations;
        while let Some(first) = rest.first() {
            let reading = matches!(first, Operation::Read(_));
            let run = rest
                .iter()
                .position(|op| matches!(op, Operation::Read(_)) != reading)
                .unwrap_or(rest.len());
            let (group, tail) = rest.split_at_mut(run);
            // The last transfer that moves bytes ends with STOP; QEMU needs one after each.
            let stop = cfg!(feature = "qemu")
                || tail.iter().all(|op| match op {
                    Operation::Read(buf) => buf.is_empty(),
                    Operation::Write(buf) => buf.is_empty(),
                });
            if reading {
                let mut slots = group.iter_mut().flat_map(|op| match op {
                    Operation::Read(buf) => buf.iter_mut(),
                    Operation::Write(_) => Default::default(),
                });
                self.read_transfer(address, &mut slots, stop)?;
            } else {
                let mut bytes = group.iter().flat_map(|op| match op {
                    Operation::Write(buf) => buf.iter().copied(),
                    Operation::Read(_) => Default::default(),
                });
                self.write_transfer(address, &mut bytes, stop)?;
            }
            rest = tail;
        }
        Ok(())
    }
}
