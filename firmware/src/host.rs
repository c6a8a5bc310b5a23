//! Semihosting: the node's report to whoever runs it, kept apart from the frame stream.
//!
//! Text goes to the semihosting console (QEMU's terminal, or the chardev given with
//! `-semihosting-config chardev=`), never to UART0. Numbers are formatted by hand: `core::fmt`
//! would cost several KiB of flash for a handful of integers.

use cortex_m_semihosting::{debug, nr, syscall1};

/// Writes `text` to the semihosting console (SYS_WRITE0, in chunks of up to 31 bytes, so no
/// host file handle is ever opened or leaked).
pub fn print(text: &str) {
    print_bytes(text.as_bytes());
}

/// Writes ASCII `bytes` to the semihosting console. Taking bytes rather than `&str` spares the
/// formatting code a UTF-8 check (and its table) in flash.
fn print_bytes(bytes: &[u8]) {
    for chunk in bytes.chunks(31) {
        let mut buf = [0u8; 32];
        buf[..chunk.len()].copy_from_slice(chunk);
        // SAFETY: SYS_WRITE0 reads the NUL-terminated string at `buf`, which lives until the
        // call returns.
        unsafe {
            syscall1(nr::WRITE0, buf.as_ptr() as usize);
        }
    }
}

/// Writes `label`, the decimal `value` and a newline.
pub fn print_value(label: &str, value: u32) {
    print_with_unit(label, value, "");
}

/// Writes `label`, the decimal `value`, `unit` and a newline.
pub fn print_with_unit(label: &str, value: u32, unit: &str) {
    print(label);
    let mut digits = [0u8; 10];
    print_bytes(decimal(value, &mut digits));
    print(unit);
    print("\n");
}

/// Writes `label`, `value` in hexadecimal (`0x` and 16 digits) and a newline. 64-bit values
/// are printed in hex because 64-bit division would cost almost 1 KiB of flash.
#[cfg_attr(not(any(feature = "fault", feature = "sim-source")), allow(dead_code))]
pub fn print_hex(label: &str, value: u64) {
    print(label);
    let mut digits = *b"0x0000000000000000\n";
    for (i, d) in digits[2..18].iter_mut().enumerate() {
        let nibble = (value >> (60 - 4 * i)) & 0xF;
        *d = b"0123456789abcdef"[nibble as usize];
    }
    print_bytes(&digits);
}

/// Formats `value` in decimal into `buf`, returning the digits.
fn decimal(mut value: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg_attr(feature = "store", allow(dead_code))]
/// True when the semihosting command line (QEMU's `-semihosting-config arg=...`) has the
/// word `token`.
pub fn cmdline_has(token: &str) -> bool {
    let mut buf = [0u8; 64];
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes at most block[1] bytes into `buf` and the length into
    // block[1]; both live until the call returns.
    let rc = unsafe { syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    if rc != 0 {
        return false; // no command line, or longer than the buffer: not ours
    }
    let len = block[1].min(buf.len());
    buf[..len]
        .split(|&b| b == b' ')
        .any(|word| word == token.as_bytes())
}

#[cfg_attr(feature = "store", allow(dead_code))]
/// Blocks until the host sends one byte on the semihosting console.
pub fn wait_for_host() {
    // SAFETY: SYS_READC takes no argument block and only returns a character.
    unsafe {
        syscall1(nr::READC, 0);
    }
}

#[cfg_attr(
    all(feature = "store", not(feature = "flash-selftest")),
    allow(dead_code)
)]
/// Ends the run: QEMU exits with status 0.
pub fn exit_success() -> ! {
    debug::exit(debug::EXIT_SUCCESS);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Ends the run: QEMU exits with status 1.
pub fn exit_failure() -> ! {
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
