//! The rules of NOR flash, for flash that is only simulated.
//!
//! A store-and-forward node keeps its frames and its boot counter in NOR flash. QEMU does not
//! model flash programming, so the node's QEMU build keeps its "flash" in a host file, and a
//! file accepts any write. Code that would corrupt real flash (programming a word twice with
//! different data, writing across an unerased page, a misaligned or out-of-range access) would
//! then pass every test and fail on the first board. These checks make the simulated flash as
//! strict as the real one: each operation is checked first, and a violation is an error,
//! never a silent success.
//!
//! The rules:
//! - erasing sets every bit of whole erase blocks to 1 (`0xFF` bytes);
//! - programming can only clear bits: a write whose data has a 1 where the flash holds a 0 is
//!   refused (real flash would keep the 0 and store something else than was written);
//!   writing the same bits again, or clearing more, is allowed (multi-write flash);
//! - reads, writes and erases must lie inside the device and be aligned to their unit.
//!
//! The checks are pure functions of the geometry and the bytes, so they are tested here, on
//! the host; the firmware applies them to the bytes it reads back from its file.

use core::fmt;

/// Why a flash operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NorError {
    /// The range does not lie inside the device.
    OutOfBounds,
    /// The offset or length is not a multiple of the operation's unit.
    NotAligned,
    /// A write would set a bit that is 0 in flash to 1; `offset` is the first such byte.
    SetsBits {
        /// The device offset of the first byte that would need a bit set.
        offset: u32,
    },
}

impl fmt::Display for NorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfBounds => f.write_str("flash access outside the device"),
            Self::NotAligned => f.write_str("flash access not aligned to its unit"),
            Self::SetsBits { offset } => write!(
                f,
                "write at byte {offset} sets a bit that only an erase can set"
            ),
        }
    }
}

impl core::error::Error for NorError {}

/// Why a flash geometry cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NorGeometryError {
    /// A unit is 0, or not a power of two.
    BadUnit,
    /// The write unit is not a multiple of the read unit, or the erase unit not a multiple
    /// of the write unit.
    UnitsNotNested,
    /// The capacity is not a whole number of erase blocks.
    PartialBlock,
}

impl fmt::Display for NorGeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadUnit => "a flash unit is 0 or not a power of two",
            Self::UnitsNotNested => "flash units must nest: read | write | erase",
            Self::PartialBlock => "flash capacity is not a whole number of erase blocks",
        })
    }
}

impl core::error::Error for NorGeometryError {}

/// The shape of a NOR flash device: its size and the units it reads, writes and erases in.
///
/// # Examples
/// ```
/// use mend_core::{NorError, NorGeometry};
/// // The LM3S6965's flash: 1 KiB erase blocks, 4-byte words.
/// let g = NorGeometry::try_new(4 * 1024, 1, 4, 1024).unwrap();
/// assert_eq!(g.check_write(1020, 4), Ok(()));
/// assert_eq!(g.check_write(1022, 4), Err(NorError::NotAligned));
/// assert_eq!(g.check_write(4096, 4), Err(NorError::OutOfBounds));
/// assert_eq!(g.check_erase(1024, 3072), Ok(()));
/// assert_eq!(g.check_erase(0, 1000), Err(NorError::NotAligned));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NorGeometry {
    capacity: u32,
    read_size: u32,
    write_size: u32,
    erase_size: u32,
}

impl NorGeometry {
    /// A geometry, or why it cannot be one: every unit a power of two, each dividing the next
    /// (read, write, erase), and the capacity a whole number of erase blocks.
    pub const fn try_new(
        capacity: u32,
        read_size: u32,
        write_size: u32,
        erase_size: u32,
    ) -> Result<Self, NorGeometryError> {
        if !read_size.is_power_of_two()
            || !write_size.is_power_of_two()
            || !erase_size.is_power_of_two()
        {
            return Err(NorGeometryError::BadUnit);
        }
        if write_size % read_size != 0 || erase_size % write_size != 0 {
            return Err(NorGeometryError::UnitsNotNested);
        }
        if capacity % erase_size != 0 {
            return Err(NorGeometryError::PartialBlock);
        }
        Ok(Self {
            capacity,
            read_size,
            write_size,
            erase_size,
        })
    }

    /// The device's size in bytes.
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// `offset..offset + len` lies inside the device and both ends are multiples of `unit`.
    const fn check(&self, offset: u32, len: u32, unit: u32) -> Result<(), NorError> {
        let Some(end) = offset.checked_add(len) else {
            return Err(NorError::OutOfBounds);
        };
        if end > self.capacity {
            return Err(NorError::OutOfBounds);
        }
        if offset % unit != 0 || len % unit != 0 {
            return Err(NorError::NotAligned);
        }
        Ok(())
    }

    /// Checks a read of `len` bytes at `offset`.
    pub const fn check_read(&self, offset: u32, len: u32) -> Result<(), NorError> {
        self.check(offset, len, self.read_size)
    }

    /// Checks the placement of a write of `len` bytes at `offset` (its data is checked by
    /// [`check_program`]).
    pub const fn check_write(&self, offset: u32, len: u32) -> Result<(), NorError> {
        self.check(offset, len, self.write_size)
    }

    /// Checks an erase of `from..to`: whole erase blocks inside the device.
    pub const fn check_erase(&self, from: u32, to: u32) -> Result<(), NorError> {
        if to < from {
            return Err(NorError::OutOfBounds);
        }
        self.check(from, to - from, self.erase_size)
    }
}

/// Checks that programming `data` over `current` (the flash's bytes at device offset
/// `offset`) only clears bits; the flash then holds `data` exactly.
///
/// # Examples
/// ```
/// use mend_core::{check_program, NorError};
/// assert_eq!(check_program(0, &[0xFF, 0x0F], &[0x7E, 0x0F]), Ok(()), "clears bits only");
/// assert_eq!(
///     check_program(8, &[0xF0, 0x0F], &[0xF0, 0x1F]),
///     Err(NorError::SetsBits { offset: 9 }),
///     "0x0F cannot become 0x1F without an erase"
/// );
/// ```
pub fn check_program(offset: u32, current: &[u8], data: &[u8]) -> Result<(), NorError> {
    if current.len() != data.len() {
        return Err(NorError::OutOfBounds);
    }
    match current.iter().zip(data).position(|(c, d)| d & !c != 0) {
        None => Ok(()),
        Some(i) => Err(NorError::SetsBits {
            offset: offset.saturating_add(u32::try_from(i).unwrap_or(u32::MAX)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A flash device in RAM that applies the checks, as the firmware's file-backed flash
    /// does, and refuses a violation before it changes anything.
    struct Flash {
        geometry: NorGeometry,
        bytes: Vec<u8>,
    }

    impl Flash {
        fn new(geometry: NorGeometry) -> Self {
            Self {
                geometry,
                bytes: vec![0xFF; geometry.capacity() as usize],
            }
        }

        fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), NorError> {
            self.geometry.check_write(offset, data.len() as u32)?;
            let at = offset as usize..offset as usize + data.len();
            check_program(offset, &self.bytes[at.clone()], data)?;
            self.bytes[at].copy_from_slice(data);
            Ok(())
        }

        fn erase(&mut self, from: u32, to: u32) -> Result<(), NorError> {
            self.geometry.check_erase(from, to)?;
            self.bytes[from as usize..to as usize].fill(0xFF);
            Ok(())
        }
    }

    const SMALL: NorGeometry = match NorGeometry::try_new(64, 1, 4, 16) {
        Ok(g) => g,
        Err(_) => panic!("a valid geometry"),
    };

    #[test]
    fn geometries_must_nest_and_fill_whole_blocks() {
        assert_eq!(
            NorGeometry::try_new(64, 1, 3, 16),
            Err(NorGeometryError::BadUnit)
        );
        assert_eq!(
            NorGeometry::try_new(64, 1, 0, 16),
            Err(NorGeometryError::BadUnit)
        );
        assert_eq!(
            NorGeometry::try_new(64, 8, 4, 16),
            Err(NorGeometryError::UnitsNotNested)
        );
        assert_eq!(
            NorGeometry::try_new(64, 1, 32, 16),
            Err(NorGeometryError::UnitsNotNested)
        );
        assert_eq!(
            NorGeometry::try_new(72, 1, 4, 16),
            Err(NorGeometryError::PartialBlock)
        );
        assert!(NorGeometry::try_new(64, 1, 4, 16).is_ok());
    }

    #[test]
    fn bounds_and_alignment_of_each_operation() {
        let g = SMALL;
        assert_eq!(g.check_read(63, 1), Ok(()));
        assert_eq!(g.check_read(63, 2), Err(NorError::OutOfBounds));
        assert_eq!(g.check_read(u32::MAX, 2), Err(NorError::OutOfBounds));
        assert_eq!(g.check_write(60, 4), Ok(()));
        assert_eq!(g.check_write(57, 4), Err(NorError::NotAligned));
        assert_eq!(g.check_write(60, 2), Err(NorError::NotAligned));
        assert_eq!(g.check_write(64, 4), Err(NorError::OutOfBounds));
        assert_eq!(g.check_erase(16, 48), Ok(()));
        assert_eq!(g.check_erase(16, 16), Ok(()), "an empty erase is no error");
        assert_eq!(g.check_erase(8, 24), Err(NorError::NotAligned));
        assert_eq!(g.check_erase(48, 80), Err(NorError::OutOfBounds));
        assert_eq!(g.check_erase(32, 16), Err(NorError::OutOfBounds));
    }

    #[test]
    fn writes_clear_bits_and_only_an_erase_sets_them() {
        let mut f = Flash::new(SMALL);
        assert_eq!(f.write(4, &[0x12, 0x34, 0x56, 0x78]), Ok(()));
        assert_eq!(&f.bytes[4..8], &[0x12, 0x34, 0x56, 0x78]);
        // The same word again, and with more bits cleared: allowed (multi-write).
        assert_eq!(f.write(4, &[0x12, 0x34, 0x56, 0x78]), Ok(()));
        assert_eq!(f.write(4, &[0x00, 0x34, 0x56, 0x78]), Ok(()));
        // A 1 over a 0: refused, and nothing changes.
        assert_eq!(
            f.write(4, &[0x00, 0x34, 0x57, 0x78]),
            Err(NorError::SetsBits { offset: 6 })
        );
        assert_eq!(&f.bytes[4..8], &[0x00, 0x34, 0x56, 0x78]);
        // The erase of the block sets the bits again; its neighbour is untouched.
        f.write(16, &[0; 4]).unwrap();
        assert_eq!(f.erase(0, 16), Ok(()));
        assert!(f.bytes[..16].iter().all(|&b| b == 0xFF));
        assert_eq!(&f.bytes[16..20], &[0; 4]);
        assert_eq!(f.write(4, &[0x00, 0x34, 0x57, 0x78]), Ok(()));
    }

    #[test]
    fn a_program_of_mismatched_lengths_is_an_error() {
        assert_eq!(
            check_program(0, &[0xFF; 4], &[0; 3]),
            Err(NorError::OutOfBounds)
        );
    }

    proptest! {
        /// Against a model that programs by AND: a write is accepted exactly when AND-ing
        /// leaves the data as written, and then the flash holds what the model holds.
        #[test]
        fn writes_are_accepted_exactly_when_they_only_clear_bits(
            ops in proptest::collection::vec(
                (0u32..16, proptest::collection::vec(any::<u8>(), 4), any::<bool>()),
                1..40,
            )
        ) {
            let mut f = Flash::new(SMALL);
            let mut model = vec![0xFFu8; 64];
            for (word, data, erase) in ops {
                let at = (word * 4) as usize;
                if erase {
                    let block = at / 16 * 16;
                    f.erase(block as u32, block as u32 + 16).unwrap();
                    model[block..block + 16].fill(0xFF);
                    continue;
                }
                let anded: Vec<u8> =
                    model[at..at + 4].iter().zip(&data).map(|(m, d)| m & d).collect();
                let result = f.write(word * 4, &data);
                prop_assert_eq!(result.is_ok(), anded == data);
                if result.is_ok() {
                    model[at..at + 4].copy_from_slice(&data);
                }
                prop_assert_eq!(&f.bytes, &model);
            }
        }
    }
}
