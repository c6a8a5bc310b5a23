//! The firmware configurations the tests build, the temperature profile they drive the sensor
//! through, and the host replay (the `mend` library) that reads the captures back.
//!
//! Four builds in all (normal, `fault`, `sim-source`, all three for QEMU, and the hardware
//! build), each in its own target directory.

use std::collections::BTreeMap;

use mend_core::{Celsius, EdgeConfig, EdgePipeline, Frame, Header, Reading, Stats};

use crate::qemu::FirmwareBuild;
use crate::wire::Capture;

/// Samples per run.
pub const SAMPLES: u32 = 100;
/// Sampling period in ms.
pub const PERIOD_MS: u32 = 100;
/// A stats frame every this many samples.
pub const STATS_EVERY: u32 = 16;
/// The node's sensor id and session.
pub const SENSOR: u32 = 7;
/// The node's session.
pub const SESSION: u32 = 3;
/// The simulators' seed.
pub const SEED: u64 = 20_261_126;

/// The firmware's reorder capacity and ring size (`REORDER`, `RING` in `firmware/src/main.rs`);
/// the differential test runs the host pipeline with the same capacities.
pub type FirmwareEdge = EdgePipeline<6, 9>;

/// The LM3S6965's Rust target.
pub const M3: &str = "thumbv7m-none-eabi";

fn common_env() -> Vec<(&'static str, String)> {
    vec![
        ("MEND_SAMPLES", SAMPLES.to_string()),
        ("MEND_PERIOD_MS", PERIOD_MS.to_string()),
        ("MEND_STATS_EVERY", STATS_EVERY.to_string()),
        ("MEND_SENSOR", SENSOR.to_string()),
        ("MEND_SESSION", SESSION.to_string()),
        ("MEND_SEED", SEED.to_string()),
    ]
}

/// The normal build: TMP105 on I2C0, clean link.
pub fn sensor_build() -> FirmwareBuild {
    FirmwareBuild {
        name: "sensor",
        features: &["qemu"],
        target: M3,
        env: common_env(),
    }
}

/// Link damage rates of the fault build, in parts per million.
pub const FAULT_RATES: [(&str, u32); 4] = [
    ("MEND_DROP_PPM", 100_000),
    ("MEND_DUP_PPM", 50_000),
    ("MEND_REORDER_PPM", 50_000),
    ("MEND_FLIP_PPM", 30_000),
];

/// The fault build: TMP105 on I2C0, frames damaged by the core's seeded link simulator.
pub fn fault_build() -> FirmwareBuild {
    let mut env = common_env();
    env.extend(FAULT_RATES.iter().map(|(k, v)| (*k, v.to_string())));
    FirmwareBuild {
        name: "fault",
        features: &["qemu", "fault"],
        target: M3,
        env,
    }
}

/// The hardware build (no `qemu` feature): no semihosting, the report goes to defmt, the
/// frames to UART0, and the node sleeps for good after its last sample.
pub fn hardware_build() -> FirmwareBuild {
    FirmwareBuild {
        name: "hardware",
        features: &[],
        target: M3,
        env: common_env(),
    }
}

/// The differential build: readings from the core's seeded simulator instead of the TMP105.
pub fn sim_build() -> FirmwareBuild {
    FirmwareBuild {
        name: "sim-source",
        features: &["qemu", "sim-source"],
        target: M3,
        env: common_env(),
    }
}

/// Samples of a store node's run (it then idles, answering the gateway).
pub const STORE_SAMPLES: u32 = 20;

/// Samples of the store node whose log fills up.
pub const SMALL_LOG_SAMPLES: u32 = 120;

/// The store-and-forward node (feature `store`): TMP105 on I2C0, a boot counter and a frame
/// log of four 1 KiB pages in its flash file, 20 samples at 20 Hz in real time.
pub fn store_build() -> FirmwareBuild {
    FirmwareBuild {
        name: "store",
        features: &["store"],
        target: M3,
        env: vec![
            ("MEND_SAMPLES", STORE_SAMPLES.to_string()),
            ("MEND_PERIOD_MS", "50".into()),
            ("MEND_STATS_EVERY", "8".into()),
            ("MEND_SENSOR", SENSOR.to_string()),
            ("MEND_LOG_PAGES", "4".into()),
        ],
    }
}

/// The store node's flash self-test (feature `flash-selftest`): it checks the NOR rules of
/// its file flash on a scratch file and exits.
pub fn flash_selftest_build() -> FirmwareBuild {
    FirmwareBuild {
        name: "store-selftest",
        features: &["flash-selftest"],
        target: M3,
        env: vec![("MEND_SENSOR", SENSOR.to_string())],
    }
}

/// A store node whose log (two pages, 72 records) is too small for its 120 samples, with the
/// core's simulator as its sensor so that every reading has its own value.
pub fn small_log_build() -> FirmwareBuild {
    FirmwareBuild {
        name: "store-small-log",
        features: &["store", "sim-source"],
        target: M3,
        env: vec![
            ("MEND_SAMPLES", SMALL_LOG_SAMPLES.to_string()),
            ("MEND_PERIOD_MS", "20".into()),
            ("MEND_STATS_EVERY", "16".into()),
            ("MEND_SENSOR", SENSOR.to_string()),
            ("MEND_SEED", SEED.to_string()),
            ("MEND_LOG_PAGES", "2".into()),
        ],
    }
}

/// Every frame of a capture with the session of the header it came under (`None` before the
/// first header).
pub fn by_session(capture: &Capture) -> Vec<(Option<u32>, Frame)> {
    let mut session = None;
    capture
        .frames
        .iter()
        .map(|(f, _)| {
            if let Frame::Header(h) = f {
                session = Some(h.session);
            }
            (session, *f)
        })
        .collect()
}

/// The header the node announces.
pub fn header() -> Header {
    edge_config().header
}

/// The node's edge configuration, as the firmware builds it from the settings above.
pub fn edge_config() -> EdgeConfig {
    let mut c = EdgeConfig::new(SENSOR, SESSION, PERIOD_MS);
    c.stats_every = STATS_EVERY;
    c
}

/// The temperature profile, in 1/16 °C, for sample `seq`:
/// - 0–39: a ramp from 48 °C to 57.75 °C in quarter degrees, through the 50–55 °C band;
/// - 40–49: an excursion to 60 °C;
/// - 50–59: back to 52.5 °C;
/// - 60–69: an excursion to 45 °C;
/// - 70–99: a ramp down from 55.125 °C in sixteenths, odd ones included.
pub fn profile_sixteenths(seq: u32) -> i32 {
    let s = seq as i32;
    match seq {
        0..=39 => 48 * 16 + 4 * s,
        40..=49 => 60 * 16,
        50..=59 => 52 * 16 + 8,
        60..=69 => 45 * 16,
        _ => 55 * 16 + 2 - (s - 70),
    }
}

/// The profile as `qom-set` takes it: milli-degrees, rounded up so that QEMU's truncating
/// conversion lands on the sixteenth exactly.
pub fn profile_millidegrees(seq: u32) -> i32 {
    (profile_sixteenths(seq) * 125 + 1).div_euclid(2)
}

/// The profile in [`Celsius`] (1/256 °C).
pub fn profile_celsius(seq: u32) -> Celsius {
    Celsius::from_bits(profile_sixteenths(seq) * 16)
}

/// True when the profile is outside the default valid band 50–55 °C at `seq`.
pub fn profile_out_of_band(seq: u32) -> bool {
    let t = profile_sixteenths(seq);
    !(50 * 16..=55 * 16).contains(&t)
}

/// The readings of a capture, by seq, converted with the header they came under. A seq seen
/// twice must carry the same reading both times (a duplicate is a copy, never a variant).
///
/// # Panics
/// If a header announces another session, or two copies of a seq differ.
pub fn readings_by_seq(capture: &Capture) -> BTreeMap<u32, Reading> {
    let mut current = None;
    let mut out = BTreeMap::new();
    for (frame, span) in &capture.frames {
        match frame {
            Frame::Header(h) => {
                // Repeated headers differ only in where they place the readings after them
                // (and a capture of format version 1 only in its version).
                assert_eq!(
                    Header {
                        version: header().version,
                        ..h.with_base(0)
                    },
                    header(),
                    "the node announced another session at {span}"
                );
                current = Some(*h);
            }
            Frame::Reading(w) | Frame::Replayed(w) => {
                // A reading whose header was lost on the link still belongs to the one
                // session this node announces (checked above for every header that arrived).
                let h = current.unwrap_or_else(header);
                let r = h
                    .from_wire(w)
                    .unwrap_or_else(|e| panic!("reading at {span}: {e}"));
                if let Some(prev) = out.insert(w.seq, r) {
                    assert_eq!(prev, r, "two different readings with seq {}", w.seq);
                }
            }
            Frame::Stats(_)
            | Frame::Fault(_)
            | Frame::Ack(_)
            | Frame::Resend(_)
            | Frame::Heartbeat(_) => {}
        }
    }
    out
}

/// The stats frames of a capture with their position (frame index) in the stream.
pub fn stats_frames(capture: &Capture) -> Vec<(usize, Stats)> {
    capture
        .frames
        .iter()
        .enumerate()
        .filter_map(|(i, (f, _))| match f {
            Frame::Stats(s) => Some((i, *s)),
            _ => None,
        })
        .collect()
}

/// Replays a capture with the host library, as `mend replay` does: the node's period comes
/// from its header, gaps are filled linearly, the band is the default 50–55 °C.
///
/// # Panics
/// If the replay fails (it only fails on I/O, and this one reads memory).
pub fn host_replay(capture: &[u8]) -> mend::ReplayOutput {
    mend::replay_bytes(capture, &mend::ReplayConfig::default())
        .unwrap_or_else(|e| panic!("mend replay failed: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::millidegrees_to_celsius_bits;

    #[test]
    fn the_millidegrees_set_over_qmp_read_back_as_the_profile() {
        for seq in 0..SAMPLES {
            assert_eq!(
                millidegrees_to_celsius_bits(profile_millidegrees(seq)),
                profile_celsius(seq).to_bits(),
                "seq {seq}"
            );
        }
    }

    #[test]
    fn the_profile_ramps_through_the_band_and_leaves_it_both_ways() {
        let c = |seq| profile_celsius(seq).to_num::<f64>();
        assert_eq!((c(0), c(39)), (48.0, 57.75));
        assert_eq!((c(40), c(60)), (60.0, 45.0));
        assert_eq!((c(70), c(71)), (55.125, 55.0625), "odd sixteenths too");
        assert!(profile_out_of_band(0) && !profile_out_of_band(8) && profile_out_of_band(29));
        assert!(!profile_out_of_band(50) && !profile_out_of_band(99));
    }
}
