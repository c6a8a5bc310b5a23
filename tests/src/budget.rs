//! The flash budget: how much of the 16 KiB (32 KiB for the store node) a firmware image
//! takes, read from its ELF file.
//!
//! `memory.x` already makes an image that does not fit a link error; this puts the figure in
//! the tests' output, and fails a test that finds an image over budget by any other way.

use std::fs;
use std::path::Path;

/// Largest flash image: the node is budgeted for a 16 KiB part.
pub const FLASH_BUDGET: u32 = 16 * 1024;

/// Largest flash image of the store-and-forward node (feature `store`): a 32 KiB part.
pub const STORE_FLASH_BUDGET: u32 = 32 * 1024;

/// Where RAM starts on the LM3S6965: load segments below it are in flash.
const RAM_START: u32 = 0x2000_0000;

/// Bytes of flash an ELF image occupies: the end of its last loaded segment in flash (code,
/// read-only data, and the initial values of `.data`).
///
/// # Panics
/// When the file is not a little-endian 32-bit ELF image.
pub fn flash_bytes(elf: &Path) -> u32 {
    let bytes = fs::read(elf).unwrap_or_else(|e| panic!("read {}: {e}", elf.display()));
    flash_bytes_of(&bytes).unwrap_or_else(|| panic!("{} is not a 32-bit ELF", elf.display()))
}

fn flash_bytes_of(elf: &[u8]) -> Option<u32> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    if elf.get(..6)? != b"\x7fELF\x01\x01" {
        return None;
    }
    let phoff = u32_at(0x1C)? as usize;
    let phentsize = usize::from(u16_at(0x2A)?);
    let phnum = usize::from(u16_at(0x2C)?);
    let mut end = 0;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        const PT_LOAD: u32 = 1;
        let (kind, paddr, filesz) = (u32_at(ph)?, u32_at(ph + 12)?, u32_at(ph + 16)?);
        if kind == PT_LOAD && paddr < RAM_START && filesz > 0 {
            end = end.max(paddr + filesz);
        }
    }
    Some(end)
}

/// Checks an image against [`FLASH_BUDGET`] and returns the bytes it takes.
///
/// # Panics
/// When the image is over budget.
pub fn assert_flash_budget(elf: &Path) -> u32 {
    assert_flash_within(elf, FLASH_BUDGET)
}

/// Checks an image against `budget` bytes of flash ([`STORE_FLASH_BUDGET`] for the store
/// node) and returns the bytes it takes.
///
/// # Panics
/// When the image is over budget.
pub fn assert_flash_within(elf: &Path, budget: u32) -> u32 {
    let used = flash_bytes(elf);
    assert!(
        used <= budget,
        "{} takes {used} bytes of flash, over the {budget}-byte budget",
        elf.display()
    );
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header with one program header per `(type, paddr, filesz)`.
    fn elf(segments: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut b = vec![0u8; 0x34];
        b[..6].copy_from_slice(b"\x7fELF\x01\x01");
        b[0x1C..0x20].copy_from_slice(&0x34u32.to_le_bytes());
        b[0x2A..0x2C].copy_from_slice(&32u16.to_le_bytes());
        b[0x2C..0x2E].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for &(kind, paddr, filesz) in segments {
            let mut ph = [0u8; 32];
            ph[0..4].copy_from_slice(&kind.to_le_bytes());
            ph[12..16].copy_from_slice(&paddr.to_le_bytes());
            ph[16..20].copy_from_slice(&filesz.to_le_bytes());
            b.extend_from_slice(&ph);
        }
        b
    }

    #[test]
    fn flash_is_the_end_of_the_last_loaded_flash_segment() {
        // Vector table + text, rodata, .data's initial values; RAM and non-load segments
        // do not count.
        let image = elf(&[
            (1, 0, 0x400),
            (1, 0x400, 0x2000),
            (1, 0x2400, 60),
            (1, RAM_START, 0x100),
            (6, 0, 0x5000),
        ]);
        assert_eq!(flash_bytes_of(&image), Some(0x2400 + 60));
        assert_eq!(flash_bytes_of(b"not an elf"), None);
    }

    #[test]
    fn over_budget_fails() {
        let dir = std::env::temp_dir().join(format!("mend-flash-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("big.elf");
        fs::write(&path, elf(&[(1, 0, FLASH_BUDGET + 1)])).unwrap();
        let result = std::panic::catch_unwind(|| assert_flash_budget(&path));
        fs::write(&path, elf(&[(1, 0, FLASH_BUDGET)])).unwrap();
        assert_eq!(assert_flash_budget(&path), FLASH_BUDGET);
        let _ = fs::remove_dir_all(&dir);
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("over the 16384-byte budget"), "{message}");
    }

    #[test]
    fn the_store_node_has_a_budget_of_its_own() {
        let dir = std::env::temp_dir().join(format!("mend-flash-store-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.elf");
        fs::write(&path, elf(&[(1, 0, FLASH_BUDGET + 1)])).unwrap();
        assert_eq!(
            assert_flash_within(&path, STORE_FLASH_BUDGET),
            FLASH_BUDGET + 1
        );
        fs::write(&path, elf(&[(1, 0, STORE_FLASH_BUDGET + 1)])).unwrap();
        let result = std::panic::catch_unwind(|| assert_flash_within(&path, STORE_FLASH_BUDGET));
        let _ = fs::remove_dir_all(&dir);
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("over the 32768-byte budget"), "{message}");
    }
}
