//! The node's outgoing link: UART0, optionally (feature `fault`) through the core's seeded
//! link simulator, which drops, duplicates, delays and flips bits in frames so that the host's
//! recovery can be checked against a known truth.

use crate::board::uart::Uart0;

#[cfg(feature = "fault")]
use mend_core::{FrameBuf, Link as SimLink, LinkStats, SimConfig};

/// Frames to UART0, damaged on the way in `fault` builds.
pub struct Link {
    uart: Uart0,
    /// Frames the UART could not take in time (`store`), cut short.
    #[cfg(feature = "store")]
    tx_dropped: u32,
    #[cfg(feature = "fault")]
    sim: SimLink<FrameBuf, 4>,
}

#[cfg(feature = "fault")]
/// The damage: the configured rates, a delay of at most two frames, no truncation (a torn
/// frame is a power-loss effect, not a link effect).
pub const DAMAGE: SimConfig = SimConfig {
    skip_ppm: crate::config::link::DROP_PPM,
    duplicate_ppm: crate::config::link::DUP_PPM,
    reorder_ppm: crate::config::link::REORDER_PPM,
    max_displacement: 2,
    corrupt_ppm: crate::config::link::FLIP_PPM,
    truncate_ppm: 0,
    ..SimConfig::CLEAN
};

#[cfg(feature = "fault")]
const _: () = assert!(
    DAMAGE.check().is_ok(),
    "MEND_*_PPM rates must be at most 1000000"
);

impl Link {
    /// The link over `uart`.
    pub fn new(uart: Uart0) -> Self {
        Self {
            uart,
            #[cfg(feature = "store")]
            tx_dropped: 0,
            #[cfg(feature = "fault")]
            sim: SimLink::new(crate::config::SEED, &DAMAGE),
        }
    }

    /// Sends one encoded frame.
    #[cfg(not(any(feature = "fault", feature = "store")))]
    pub fn send(&mut self, frame: &[u8]) {
        self.uart.write_all(frame);
    }

    /// Sends one encoded frame, waiting a bounded time for the UART; a frame it could not
    /// take in time is counted (the log still holds it).
    #[cfg(feature = "store")]
    pub fn send(&mut self, frame: &[u8]) {
        if !self.uart.try_write_all(frame) {
            self.tx_dropped = self.tx_dropped.saturating_add(1);
        }
    }

    /// Frames the UART could not take in time.
    #[cfg(feature = "store")]
    pub fn tx_dropped(&self) -> u32 {
        self.tx_dropped
    }

    /// Sends one encoded frame through the damaging link: first the bit flip (applied to
    /// every copy), then drop / duplicate / delay.
    #[cfg(feature = "fault")]
    pub fn send(&mut self, frame: &[u8]) {
        // The simulator holds frames back, so it keeps its own copies; every frame fits.
        let Ok(mut frame) = FrameBuf::from_slice(frame) else {
            return;
        };
        let keep = self.sim.corrupt(&mut frame);
        frame.truncate(keep);
        let uart = &mut self.uart;
        self.sim.send(frame, |f| uart.write_all(&f));
    }

    /// Delivers anything still held and waits until the UART has sent it.
    #[cfg_attr(feature = "store", allow(dead_code))]
    pub fn flush(&mut self) {
        #[cfg(feature = "fault")]
        {
            let uart = &mut self.uart;
            self.sim.flush(|f| uart.write_all(&f));
        }
        self.uart.flush();
    }

    /// What the damaging link did.
    #[cfg(feature = "fault")]
    pub fn stats(&self) -> LinkStats {
        self.sim.stats()
    }
}
