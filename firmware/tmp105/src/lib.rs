//! # mend-tmp105
//!
//! An integer driver for TMP105/LM75-class I2C temperature sensors, generic over
//! [`embedded_hal::i2c::I2c`].
//!
//! Why not an existing driver crate: the well-kept ones convert through `f32` and `core::fmt`,
//! which alone would more than double the flash of mend's node, and some read at 9-bit
//! resolution. mend keeps temperatures as [`fixed::types::I24F8`] (the same type as
//! `mend_core::Celsius`, step 1/256 °C), and the sensor's 12-bit register (step 1/16 °C) maps
//! onto it exactly: the register's two bytes, read as a big-endian `i16`, already count
//! 1/256 °C. No rounding happens anywhere, so what the sensor measured is what mend stores.
//!
//! ```
//! use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
//! use mend_tmp105::Tmp105;
//!
//! let expectations = [
//!     Transaction::write(0x48, vec![0x01, 0x60]),      // config: 12-bit resolution
//!     Transaction::write_read(0x48, vec![0x01], vec![0x60]),
//!     Transaction::write_read(0x48, vec![0x00], vec![0x34, 0x80]),
//! ];
//! let mut sensor = Tmp105::new(Mock::new(&expectations), Tmp105::<Mock>::DEFAULT_ADDRESS);
//! sensor.init().unwrap();
//! assert_eq!(sensor.read_celsius().unwrap().to_bits(), 52 * 256 + 128); // 52.5 °C
//! sensor.destroy().done();
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use core::fmt;

use embedded_hal::i2c::{I2c, SevenBitAddress};
use fixed::types::I24F8;

/// A driver error, generic over the bus error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The I2C transfer failed.
    I2c(E),
    /// The configuration register did not read back as written: the device is not a
    /// TMP105-class sensor, or it did not take the setting.
    ConfigMismatch {
        /// What was written.
        wrote: u8,
        /// What was read back.
        read: u8,
    },
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::I2c(e) => write!(f, "I2C transfer failed: {e:?}"),
            Error::ConfigMismatch { wrote, read } => write!(
                f,
                "configuration register reads {read:#04x} after writing {wrote:#04x}"
            ),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// A TMP105 (or LM75-class) sensor on an I2C bus.
#[derive(Debug)]
pub struct Tmp105<I2C> {
    i2c: I2C,
    address: SevenBitAddress,
}

impl<I2C: I2c> Tmp105<I2C> {
    /// The address with A0 and A1 tied low.
    pub const DEFAULT_ADDRESS: SevenBitAddress = 0x48;
    /// The temperature register (read-only, two bytes, big-endian, left-justified).
    pub const REG_TEMPERATURE: u8 = 0x00;
    /// The configuration register (one byte).
    pub const REG_CONFIG: u8 = 0x01;
    /// Configuration: resolution bits R1:R0 = 11, 12-bit (0.0625 °C), continuous conversion.
    pub const CONFIG_12_BIT: u8 = 0x60;

    /// A driver for the sensor at `address`. It does not touch the bus; call
    /// [`init`](Self::init) before reading.
    pub const fn new(i2c: I2C, address: SevenBitAddress) -> Self {
        Self { i2c, address }
    }

    /// Sets 12-bit resolution and checks that the sensor took it.
    ///
    /// The sensor powers up at 9-bit resolution (0.5 °C); without this, readings would be
    /// coarser than mend's contract promises.
    pub fn init(&mut self) -> Result<(), Error<I2C::Error>> {
        self.i2c
            .write(self.address, &[Self::REG_CONFIG, Self::CONFIG_12_BIT])
            .map_err(Error::I2c)?;
        let mut config = [0u8];
        self.i2c
            .write_read(self.address, &[Self::REG_CONFIG], &mut config)
            .map_err(Error::I2c)?;
        if config[0] & Self::CONFIG_12_BIT != Self::CONFIG_12_BIT {
            return Err(Error::ConfigMismatch {
                wrote: Self::CONFIG_12_BIT,
                read: config[0],
            });
        }
        Ok(())
    }

    /// Reads the temperature, exactly.
    ///
    /// The pointer register is set on every read, so a reading is correct whatever was
    /// accessed before.
    pub fn read_celsius(&mut self) -> Result<I24F8, Error<I2C::Error>> {
        let mut raw = [0u8; 2];
        self.i2c
            .write_read(self.address, &[Self::REG_TEMPERATURE], &mut raw)
            .map_err(Error::I2c)?;
        Ok(celsius_from_register(raw))
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }
}

/// Converts the temperature register's two bytes to 1/256 °C, exactly.
///
/// At 12-bit resolution the register holds a left-justified two's-complement count of
/// 1/16 °C: `raw12 = i16 >> 4`, and `raw12 * 16` is the value in 1/256 °C. The low four bits
/// (always zero on a TMP105 at 12 bits) are cleared, so an LM75-class part that reports fewer
/// bits is read at its own resolution.
///
/// # Examples
/// ```
/// use mend_tmp105::celsius_from_register;
/// assert_eq!(celsius_from_register([0x7F, 0xF0]).to_bits(), 2047 * 16); // +127.9375 °C
/// assert_eq!(celsius_from_register([0x32, 0x10]).to_bits(), 50 * 256 + 16); // 50.0625 °C
/// assert_eq!(celsius_from_register([0xFF, 0xF0]).to_bits(), -16); // -0.0625 °C
/// assert_eq!(celsius_from_register([0xC9, 0x00]).to_bits(), -55 * 256); // -55 °C
/// ```
pub const fn celsius_from_register(raw: [u8; 2]) -> I24F8 {
    let raw12 = i16::from_be_bytes(raw) >> 4;
    I24F8::from_bits(raw12 as i32 * 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_12_bit_code_maps_exactly() {
        for raw12 in -2048i16..=2047 {
            let bytes = (raw12 << 4).to_be_bytes();
            let c = celsius_from_register(bytes);
            assert_eq!(c.to_bits(), i32::from(raw12) * 16);
            // and the value is raw12 / 16 °C with no rounding
            assert_eq!(c.to_num::<f64>(), f64::from(raw12) / 16.0);
        }
    }

    #[test]
    fn low_nibble_is_ignored() {
        assert_eq!(celsius_from_register([0x19, 0x0F]).to_bits(), 25 * 256);
    }
}
