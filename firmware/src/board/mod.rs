//! The LM3S6965's peripherals that the node uses, and nothing more.
//!
//! There is no register PAC for this chip (the `lm3s6965` crate has interrupt bindings only),
//! so each driver names its few registers as constants. All `unsafe` of the firmware's
//! peripheral access sits in [`Reg`], the one place that turns an address into a volatile load
//! or store.

#[cfg(not(feature = "sim-source"))]
pub mod i2c;
pub mod uart;

use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

/// A 32-bit memory-mapped peripheral register at a fixed address.
#[derive(Clone, Copy, Debug)]
pub struct Reg(usize);

impl Reg {
    /// The register at `address`.
    ///
    /// # Safety
    /// `address` must be a 4-byte aligned register of this chip's peripheral space, whose
    /// reads and writes have no effect on memory that Rust code owns.
    pub const unsafe fn at(address: usize) -> Self {
        Self(address)
    }

    /// The register at `offset` from `self`.
    ///
    /// # Safety
    /// As for [`Reg::at`], for the resulting address.
    pub const unsafe fn offset(self, offset: usize) -> Self {
        Self(self.0 + offset)
    }

    /// A volatile load.
    #[inline]
    pub fn read(self) -> u32 {
        // SAFETY: `at` requires a valid, aligned peripheral register, and a load of one cannot
        // touch Rust-owned memory.
        unsafe { ptr::read_volatile(self.0 as *const u32) }
    }

    /// A volatile store.
    #[inline]
    pub fn write(self, value: u32) {
        // SAFETY: as for `read`; a store to a peripheral register cannot alias Rust memory.
        unsafe { ptr::write_volatile(self.0 as *mut u32, value) }
    }

    /// Sets the bits of `mask`, keeping the others.
    #[inline]
    pub fn set_bits(self, mask: u32) {
        self.write(self.read() | mask);
    }
}

/// The system clock of the board as QEMU models it and as the chip runs out of reset with the
/// PLL bypassed: 12.5 MHz.
pub const SYSCLK_HZ: u32 = 12_500_000;

/// System control: the clock gates of the peripherals.
mod sysctl {
    use super::Reg;

    // SAFETY: the Stellaris system control block's run-mode clock gating registers.
    pub const RCGC1: Reg = unsafe { Reg::at(0x400F_E104) };
    // SAFETY: as above.
    pub const RCGC2: Reg = unsafe { Reg::at(0x400F_E108) };

    pub const RCGC1_UART0: u32 = 1 << 0;
    pub const RCGC1_I2C0: u32 = 1 << 12;
    pub const RCGC2_GPIOA: u32 = 1 << 0;
    pub const RCGC2_GPIOB: u32 = 1 << 1;
}

/// The GPIO ports whose pins carry UART0 (PA0/PA1) and I2C0 (PB2 SCL, PB3 SDA).
mod gpio {
    use super::Reg;

    // SAFETY: GPIO port A and B register blocks of the LM3S6965.
    pub const PORT_A: Reg = unsafe { Reg::at(0x4000_4000) };
    // SAFETY: as above.
    pub const PORT_B: Reg = unsafe { Reg::at(0x4000_5000) };

    pub const AFSEL: usize = 0x420;
    pub const ODR: usize = 0x50C;
    pub const DEN: usize = 0x51C;
}

/// The board's peripherals that the node drives, each configured and owned once.
///
/// Their drivers have no public constructor: [`Board::take`] is the only way to get them, and
/// it hands them out once, so two drivers of one peripheral cannot exist.
pub struct Board {
    /// UART0, the link.
    pub uart0: uart::Uart0,
    /// I2C0, the sensor's bus.
    #[cfg(not(feature = "sim-source"))]
    pub i2c0: i2c::I2c0,
}

impl Board {
    /// Clocks and configures the peripherals and returns their drivers; `None` on every
    /// call after the first.
    pub fn take() -> Option<Self> {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        // A load and a store inside a critical section: a Cortex-M0 has no atomic swap.
        cortex_m::interrupt::free(|_| {
            if TAKEN.load(Ordering::Relaxed) {
                return None;
            }
            TAKEN.store(true, Ordering::Relaxed);
            enable_peripherals();
            Some(Self {
                uart0: uart::Uart0::init(),
                #[cfg(not(feature = "sim-source"))]
                i2c0: i2c::I2c0::init(),
            })
        })
    }
}

/// Clocks the peripherals the node uses and hands their pins to them.
fn enable_peripherals() {
    sysctl::RCGC1.set_bits(sysctl::RCGC1_UART0 | sysctl::RCGC1_I2C0);
    sysctl::RCGC2.set_bits(sysctl::RCGC2_GPIOA | sysctl::RCGC2_GPIOB);
    // SAFETY: offsets of documented registers inside the GPIO blocks.
    let (a_afsel, a_den, b_afsel, b_odr, b_den) = unsafe {
        (
            gpio::PORT_A.offset(gpio::AFSEL),
            gpio::PORT_A.offset(gpio::DEN),
            gpio::PORT_B.offset(gpio::AFSEL),
            gpio::PORT_B.offset(gpio::ODR),
            gpio::PORT_B.offset(gpio::DEN),
        )
    };
    a_afsel.set_bits(0b11);
    a_den.set_bits(0b11);
    b_afsel.set_bits(0b1100);
    b_odr.set_bits(0b1000); // SDA is open drain
    b_den.set_bits(0b1100);
}
