//! Build-time settings, read from the environment by `option_env!` when the firmware is
//! compiled.
//!
//! A node has no console to be configured from, so its settings are part of the image. An
//! unparsable value is a compile error, not a surprise in the field:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `MEND_SAMPLES` | samples before a clean exit; `0` runs forever | 100 |
//! | `MEND_PERIOD_MS` | sampling period in milliseconds | 100 |
//! | `MEND_SENSOR` | sensor id in the header | 1 |
//! | `MEND_SESSION` | session (power-up) number in the header | 1 |
//! | `MEND_STATS_EVERY` | a stats frame after this many samples | 16 |
//! | `MEND_SEED` | seed of the simulators (`fault`, `sim-source`) | 42 |
//! | `MEND_LOG_PAGES` | `store`: 1 KiB flash pages of the frame log | 8 |
//! | `MEND_DROP_PPM` | `fault`: frames the link drops, parts per million | 100000 |
//! | `MEND_DUP_PPM` | `fault`: frames sent twice | 50000 |
//! | `MEND_REORDER_PPM` | `fault`: frames delayed by 1–2 places | 50000 |
//! | `MEND_FLIP_PPM` | `fault`: frames with one flipped bit | 30000 |

/// Parses a decimal `u64` at compile time; a bad value stops the build.
const fn parse(value: Option<&str>, default: u64) -> u64 {
    let Some(s) = value else {
        return default;
    };
    let b = s.as_bytes();
    assert!(!b.is_empty(), "a MEND_* setting is empty");
    let mut n: u64 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "a MEND_* setting is not a decimal number"
        );
        n = match n.checked_mul(10) {
            Some(m) => match m.checked_add((b[i] - b'0') as u64) {
                Some(v) => v,
                None => panic!("a MEND_* setting is too large"),
            },
            None => panic!("a MEND_* setting is too large"),
        };
        i += 1;
    }
    n
}

/// Parses a `u32` setting at compile time.
const fn parse_u32(value: Option<&str>, default: u32) -> u32 {
    let n = parse(value, default as u64);
    assert!(
        n <= u32::MAX as u64,
        "a MEND_* setting does not fit 32 bits"
    );
    n as u32
}

/// Samples before a clean semihosting exit; 0 runs forever.
pub const SAMPLES: u32 = parse_u32(option_env!("MEND_SAMPLES"), 100);
/// The sampling period in milliseconds.
pub const PERIOD_MS: u32 = parse_u32(option_env!("MEND_PERIOD_MS"), 100);
/// The sensor id.
pub const SENSOR: u32 = parse_u32(option_env!("MEND_SENSOR"), 1);
/// The session number.
pub const SESSION: u32 = parse_u32(option_env!("MEND_SESSION"), 1);
/// A stats frame after this many samples (0: only at the end).
pub const STATS_EVERY: u32 = parse_u32(option_env!("MEND_STATS_EVERY"), 16);
/// The simulators' seed.
#[cfg_attr(not(any(feature = "fault", feature = "sim-source")), allow(dead_code))]
pub const SEED: u64 = parse(option_env!("MEND_SEED"), 42);
/// `store`: pages of the flash log (each holds 36 records).
#[cfg(feature = "store")]
pub const LOG_PAGES: u32 = parse_u32(option_env!("MEND_LOG_PAGES"), 8);
#[cfg(feature = "store")]
const _: () = assert!(
    LOG_PAGES >= 2 && LOG_PAGES <= 128,
    "MEND_LOG_PAGES must be 2 to 128"
);
/// Link fault rates, parts per million.
#[cfg(feature = "fault")]
pub mod link {
    use super::parse_u32;
    /// Frames dropped.
    pub const DROP_PPM: u32 = parse_u32(option_env!("MEND_DROP_PPM"), 100_000);
    /// Frames sent twice.
    pub const DUP_PPM: u32 = parse_u32(option_env!("MEND_DUP_PPM"), 50_000);
    /// Frames delayed.
    pub const REORDER_PPM: u32 = parse_u32(option_env!("MEND_REORDER_PPM"), 50_000);
    /// Frames with one flipped bit.
    pub const FLIP_PPM: u32 = parse_u32(option_env!("MEND_FLIP_PPM"), 30_000);
}

const _: () = assert!(PERIOD_MS > 0, "MEND_PERIOD_MS must be positive");
