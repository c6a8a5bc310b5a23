//! Where samples come from: the TMP105 on I2C0, or (feature `sim-source`) the core's seeded
//! sensor simulator, for the differential test against the host build of the core.

use mend_core::{FaultKind, Reading};

#[cfg(not(feature = "sim-source"))]
pub use tmp105::Source;

#[cfg(feature = "sim-source")]
pub use simulated::Source;

#[cfg(not(feature = "sim-source"))]
mod tmp105 {
    use embedded_hal::i2c::{Error as _, ErrorKind};
    use mend_tmp105::{Error, Tmp105};

    use super::{FaultKind, Reading};
    use crate::board::i2c::I2c0;
    use crate::config;

    /// The TMP105 at 0x48 on I2C0.
    pub struct Source {
        sensor: Tmp105<I2c0>,
        ready: bool,
    }

    impl Source {
        /// The sensor on `i2c`; it is configured on the first sample.
        pub fn new(i2c: I2c0) -> Self {
            Self {
                sensor: Tmp105::new(i2c, Tmp105::<I2c0>::DEFAULT_ADDRESS),
                ready: false,
            }
        }

        /// Takes sample `seq` at `now_ms`. A bus error is returned as the fault it is; the
        /// sensor is configured again before the next sample, in case it was replaced or
        /// power-cycled.
        pub fn sample(&mut self, seq: u32, now_ms: u64) -> Result<Reading, FaultKind> {
            let result = if self.ready {
                self.sensor.read_celsius()
            } else {
                self.sensor.init().and_then(|()| self.sensor.read_celsius())
            };
            self.ready = result.is_ok();
            match result {
                Ok(celsius) => Ok(Reading::new(
                    config::SENSOR,
                    config::SESSION,
                    seq,
                    now_ms,
                    celsius,
                )),
                Err(Error::I2c(e)) => Err(match e.kind() {
                    ErrorKind::NoAcknowledge(_) => FaultKind::NoAcknowledge,
                    ErrorKind::Other => FaultKind::Timeout,
                    _ => FaultKind::Bus,
                }),
                Err(_) => Err(FaultKind::InvalidData),
            }
        }
    }
}

#[cfg(feature = "sim-source")]
mod simulated {
    use mend_core::{SimConfig, Simulator};

    use super::{FaultKind, Reading};
    use crate::config;

    /// The simulator's settings: the origin's sensor (band 50–55 °C, 5 % out of band) on this
    /// node's id, session and period. The host side of the differential test uses the same.
    pub const SIM: SimConfig = SimConfig {
        sensor: config::SENSOR,
        session: config::SESSION,
        period_ms: config::PERIOD_MS,
        ..SimConfig::ORIGIN
    };

    /// The core's seeded sensor simulator.
    pub struct Source {
        sim: Simulator,
    }

    impl Source {
        /// The simulator, seeded with `MEND_SEED`.
        pub fn new() -> Self {
            Self {
                sim: Simulator::new(config::SEED, SIM),
            }
        }

        /// The simulator's next reading, exactly as it took it (its timestamp is on the
        /// schedule `seq × period`, as the node's clock is).
        pub fn sample(&mut self, _seq: u32, _now_ms: u64) -> Result<Reading, FaultKind> {
            self.sim
                .next()
                .map(|t| t.reading)
                .ok_or(FaultKind::InvalidData)
        }
    }
}
