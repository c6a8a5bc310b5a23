//! The Stellaris I2C0 master as an [`embedded_hal::i2c::I2c`] bus.
//!
//! Two behaviours of QEMU 7.2's model shape this driver, and both are harmless on the real
//! chip:
//! - A repeated START is ignored: the model keeps the bus in the old direction, so a
//!   write-then-read would read nothing. Between operations of different direction the driver
//!   therefore ends the transfer with STOP and starts a new one. TMP105-class sensors keep
//!   their register pointer across a STOP, so the result is the same.
//! - A missing device shows up as ARBLST|ERROR, not as an address NACK. The driver reports
//!   both as [`ErrorKind::NoAcknowledge`], which is what they mean to a caller.
//!
//! The driver polls the controller's BUSY bit (bounded, never a timer) after each byte.

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
    const MCR: usize = 0x020;

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
    /// Far above one byte time at any clock the chip runs; a stuck controller gives an
    /// error, not a hang.
    const BUSY_POLLS: u32 = 100_000;

    fn reg(offset: usize) -> Reg {
        // SAFETY: every offset used is a register of I2C0's master block.
        unsafe { Self::BASE.offset(offset) }
    }

    /// Configures I2C0 as a master. Call once, after
    /// [`enable_peripherals`](super::enable_peripherals).
    pub fn init() -> Self {
        Self::reg(Self::MCR).write(Self::MCR_MFE);
        Self::reg(Self::MTPR).write(Self::TPR_100K);
        Self { _private: () }
    }

    /// Issues one MCS command and waits for it; on error, releases the bus.
    fn command(&mut self, cmd: u32) -> Result<(), Error> {
        let mcs = Self::reg(Self::MCS);
        mcs.write(cmd);
        let mut polls = 0;
        let status = loop {
            let s = mcs.read();
            if s & Self::BUSY == 0 {
                break s;
            }
            polls += 1;
            if polls >= Self::BUSY_POLLS {
                mcs.write(Self::STOP);
                return Err(Error::Timeout);
            }
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

    /// Writes `bytes` as one transfer from START to STOP. `bytes` is not empty.
    fn write_transfer(
        &mut self,
        address: u8,
        bytes: &mut dyn Iterator<Item = u8>,
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
            if next.is_none() {
                cmd |= Self::STOP;
            }
            self.command(cmd)?;
            first = false;
        }
        Ok(())
    }

    /// Reads `len` bytes as one transfer from START to STOP into the slots of `sink`.
    fn read_transfer(
        &mut self,
        address: u8,
        sink: &mut dyn Iterator<Item = &mut u8>,
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
            // ACK every byte but the last; the last is NACKed and followed by STOP.
            cmd |= if next.is_none() {
                Self::STOP
            } else {
                Self::ACK
            };
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
    /// change of direction is STOP + START (see the module docs). Empty buffers move no
    /// bytes and put nothing on the bus: the controller cannot send an address alone.
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
            if reading {
                let mut slots = group.iter_mut().flat_map(|op| match op {
                    Operation::Read(buf) => buf.iter_mut(),
                    Operation::Write(_) => Default::default(),
                });
                self.read_transfer(address, &mut slots)?;
            } else {
                let mut bytes = group.iter().flat_map(|op| match op {
                    Operation::Write(buf) => buf.iter().copied(),
                    Operation::Read(_) => Default::default(),
                });
                self.write_transfer(address, &mut bytes)?;
            }
            rest = tail;
        }
        Ok(())
    }
}
