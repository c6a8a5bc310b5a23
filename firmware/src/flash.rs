//! The store node's flash under QEMU: a file on the host, read and written through
//! semihosting, with the rules of NOR flash enforced here.
//!
//! QEMU's lm3s6965evb maps the chip's flash as ROM and does not model its controller, so
//! nothing the firmware programs would stay. A host file does stay: it outlives QEMU, so
//! killing QEMU is a power cut and starting it again on the same file is the next power-up.
//! A file accepts any write, though, and code that breaks the rules of real flash would pass
//! every test here and fail on a board. So every operation is checked first with the core's
//! [`NorGeometry`] and [`check_program`]: an erase sets whole blocks to `0xFF`, a write may
//! only clear bits (a 1 over a 0 is refused, not ANDed in), and accesses are aligned and in
//! bounds. A violation is an error, and the file is left as it was.
//!
//! The file is opened `r+b` (semihosting mode 3), which keeps its contents; only when it does
//! not exist is it created `w+b` (mode 7, which would truncate an existing one) and filled with
//! `0xFF`, the erased state. A file shorter than the device (a power cut while it was being
//! filled) is filled up the same way: bytes never written are erased bytes.

use cortex_m_semihosting::{nr, syscall};
use embedded_storage::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use mend_core::{check_program, NorError, NorGeometry};

/// The LM3S6965's flash: erased in 1 KiB pages, programmed in 32-bit words, read by the byte.
pub const PAGE: u32 = 1024;
/// The programming unit.
pub const WORD: u32 = 4;

/// Why a flash operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// The operation breaks a rule of NOR flash.
    Rule(NorError),
    /// A semihosting file call failed (or moved fewer bytes than asked).
    Host,
    /// The file is larger than the device: it belongs to another layout.
    WrongSize,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::Rule(NorError::OutOfBounds) => NorFlashErrorKind::OutOfBounds,
            Self::Rule(NorError::NotAligned) => NorFlashErrorKind::NotAligned,
            _ => NorFlashErrorKind::Other,
        }
    }
}

impl From<NorError> for FlashError {
    fn from(e: NorError) -> Self {
        Self::Rule(e)
    }
}

/// Bytes moved per semihosting call when checking or erasing.
const CHUNK: usize = 64;

/// NOR flash of `geometry.capacity()` bytes in a host file.
pub struct FileFlash {
    handle: usize,
    geometry: NorGeometry,
}

impl FileFlash {
    /// Opens the file `name` (NUL-terminated) as flash of `geometry`, creating and erasing
    /// it if it does not exist.
    pub fn open(name: &[u8], geometry: NorGeometry) -> Result<Self, FlashError> {
        let Some((&0, text)) = name.split_last() else {
            return Err(FlashError::Host);
        };
        let open = |mode: usize| {
            // SAFETY: SYS_OPEN reads the NUL-terminated name (its length excludes the NUL),
            // which lives until the call returns.
            let h = unsafe { syscall(nr::OPEN, &[name.as_ptr() as usize, mode, text.len()]) };
            (h != usize::MAX).then_some(h)
        };
        const READ_WRITE: usize = 3; // "r+b"
        const CREATE: usize = 7; // "w+b"
        let handle = open(READ_WRITE)
            .or_else(|| open(CREATE))
            .ok_or(FlashError::Host)?;
        let mut flash = Self { handle, geometry };
        // SAFETY: SYS_FLEN takes the handle only.
        let len = unsafe { syscall(nr::FLEN, &[handle]) };
        let capacity = geometry.capacity() as usize;
        if len == usize::MAX {
            return Err(FlashError::Host);
        }
        if len > capacity {
            return Err(FlashError::WrongSize);
        }
        let mut at = len;
        while at < capacity {
            let n = (capacity - at).min(CHUNK);
            flash.write_raw(at as u32, &[0xFF; CHUNK][..n])?;
            at += n;
        }
        Ok(flash)
    }

    fn seek(&mut self, offset: u32) -> Result<(), FlashError> {
        // SAFETY: SYS_SEEK takes the handle and an absolute offset.
        match unsafe { syscall(nr::SEEK, &[self.handle, offset as usize]) } {
            0 => Ok(()),
            _ => Err(FlashError::Host),
        }
    }

    /// Reads `buf.len()` bytes at `offset`, unchecked.
    fn read_raw(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        self.seek(offset)?;
        // SAFETY: SYS_READ writes at most `buf.len()` bytes into `buf`; it returns the number
        // of bytes *not* read.
        let left = unsafe {
            syscall(
                nr::READ,
                &[self.handle, buf.as_mut_ptr() as usize, buf.len()],
            )
        };
        if left == 0 {
            Ok(())
        } else {
            Err(FlashError::Host)
        }
    }

    /// Writes `data` at `offset`, unchecked.
    fn write_raw(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        self.seek(offset)?;
        // SAFETY: SYS_WRITE reads `data.len()` bytes from `data`; it returns the number of
        // bytes *not* written.
        let left = unsafe {
            syscall(
                nr::WRITE,
                &[self.handle, data.as_ptr() as usize, data.len()],
            )
        };
        if left == 0 {
            Ok(())
        } else {
            Err(FlashError::Host)
        }
    }
}

impl ErrorType for FileFlash {
    type Error = FlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.geometry.check_read(offset, bytes.len() as u32)?;
        self.read_raw(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.geometry.capacity() as usize
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = WORD as usize;
    const ERASE_SIZE: usize = PAGE as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        self.geometry.check_erase(from, to)?;
        let mut at = from;
        while at < to {
            let n = (to - at).min(CHUNK as u32);
            self.write_raw(at, &[0xFF; CHUNK][..n as usize])?;
            at += n;
        }
        Ok(())
    }

    /// Programs `bytes` at `offset`: checked in full (placement, then every byte against
    /// what the flash holds) before anything is written.
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        self.geometry.check_write(offset, bytes.len() as u32)?;
        let mut current = [0u8; CHUNK];
        for (i, data) in bytes.chunks(CHUNK).enumerate() {
            let at = offset + (i * CHUNK) as u32;
            let current = &mut current[..data.len()];
            self.read_raw(at, current)?;
            check_program(at, current, data)?;
        }
        self.write_raw(offset, bytes)
    }
}

/// Programming the same word again is allowed when it only clears bits, which the checks in
/// [`FileFlash::write`] enforce: sequential-storage marks items as removed this way.
impl MultiwriteNorFlash for FileFlash {}

impl embedded_storage_async::nor_flash::ReadNorFlash for FileFlash {
    const READ_SIZE: usize = <Self as ReadNorFlash>::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        ReadNorFlash::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        ReadNorFlash::capacity(self)
    }
}

impl embedded_storage_async::nor_flash::NorFlash for FileFlash {
    const WRITE_SIZE: usize = <Self as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <Self as NorFlash>::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        NorFlash::erase(self, from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        NorFlash::write(self, offset, bytes)
    }
}

impl embedded_storage_async::nor_flash::MultiwriteNorFlash for FileFlash {}

#[cfg(feature = "flash-selftest")]
/// Checks, on a scratch file of its own (`name`, two pages), that this flash refuses what
/// real NOR flash cannot do and keeps its contents when it refuses: the QEMU build's proof
/// that the rules are applied on the way to the file, not only in the core's unit tests.
/// Returns the first step that went wrong.
pub fn self_test(name: &[u8]) -> Result<(), &'static str> {
    let geometry = NorGeometry::try_new(2 * PAGE, 1, WORD, PAGE).map_err(|_| "geometry")?;
    let mut f = FileFlash::open(name, geometry).map_err(|_| "open")?;
    let refused = |r: Result<(), FlashError>, want: NorError| r == Err(FlashError::Rule(want));
    f.erase(0, 2 * PAGE).map_err(|_| "erase")?;
    let mut word = [0u8; 4];
    ReadNorFlash::read(&mut f, 4, &mut word).map_err(|_| "read erased")?;
    if word != [0xFF; 4] {
        return Err("an erased word is not 0xFF");
    }
    f.write(4, &[0x12, 0x34, 0x56, 0x78]).map_err(|_| "write")?;
    f.write(4, &[0x12, 0x34, 0x56, 0x78])
        .map_err(|_| "write the same bits again")?;
    f.write(4, &[0x00, 0x34, 0x56, 0x78])
        .map_err(|_| "clear more bits")?;
    if !refused(
        f.write(4, &[0x00, 0x34, 0x57, 0x78]),
        NorError::SetsBits { offset: 6 },
    ) {
        return Err("a 1 written over a 0 was not refused");
    }
    ReadNorFlash::read(&mut f, 4, &mut word).map_err(|_| "read back")?;
    if word != [0x00, 0x34, 0x56, 0x78] {
        return Err("a refused write changed the flash");
    }
    if !refused(f.write(6, &[0; 4]), NorError::NotAligned) {
        return Err("a misaligned write was not refused");
    }
    if !refused(f.write(2 * PAGE, &[0; 4]), NorError::OutOfBounds) {
        return Err("a write past the end was not refused");
    }
    if !refused(f.erase(0, PAGE / 2), NorError::NotAligned) {
        return Err("an erase of half a page was not refused");
    }
    if !refused(
        ReadNorFlash::read(&mut f, 2 * PAGE - 2, &mut word),
        NorError::OutOfBounds,
    ) {
        return Err("a read past the end was not refused");
    }
    f.erase(0, PAGE).map_err(|_| "erase again")?;
    ReadNorFlash::read(&mut f, 4, &mut word).map_err(|_| "read after erase")?;
    if word != [0xFF; 4] {
        return Err("the erase did not set the bits");
    }
    f.write(4, &[0x00, 0x34, 0x57, 0x78])
        .map_err(|_| "write after the erase")?;
    Ok(())
}
