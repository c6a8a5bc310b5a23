//! A seeded simulator of a faulty sensor and a faulty link, with the ground truth.
//!
//! Recovery can only be measured against a truth. The [`Simulator`] produces the readings a
//! sensor really took — 1 Hz by default, values wandering inside the 50–55 °C band, about 5 %
//! of them out of band — and a [`Link`] damages whatever travels over it: it drops items (about
//! 10 % by default), duplicates them, delays them by a bounded number of places, and flips bits
//! in or truncates encoded frames.
//!
//! Everything is driven by ChaCha8 from a `u64` seed, with separate streams for the sensor and
//! the link, so the same seed gives the same readings on a Cortex-M3 and on a host, and
//! changing a link rate never changes the values the sensor took. Rates are integers in parts
//! per million, so no floating point is involved anywhere.

use core::fmt;

use heapless::Deque;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::reading::{Celsius, Reading};

/// One million: a rate of `PPM` is certainty.
pub const PPM: u32 = 1_000_000;

/// Why a [`SimConfig`] cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimConfigError {
    /// A rate is above 1 000 000 parts per million.
    RateAboveOne,
    /// The sampling period is zero.
    ZeroPeriod,
    /// The band's low end is above its high end.
    ReversedBand,
    /// A reorder rate without room to reorder: the displacement is zero.
    ZeroDisplacement,
}

impl fmt::Display for SimConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RateAboveOne => "a rate is above 1 (1 000 000 ppm)",
            Self::ZeroPeriod => "the sampling period must be positive",
            Self::ReversedBand => "the band's low end is above its high end",
            Self::ZeroDisplacement => "reordering needs a displacement of at least 1",
        })
    }
}

impl core::error::Error for SimConfigError {}

/// What the simulated sensor and link do. Rates are in parts per million.
///
/// # Examples
/// ```
/// use mend_core::{SimConfig, SimConfigError};
/// assert_eq!(SimConfig::ORIGIN.error_ppm, 50_000, "5 % out of band");
/// assert_eq!(SimConfig::ORIGIN.skip_ppm, 100_000, "10 % never arrive");
/// let bad = SimConfig { skip_ppm: 2_000_000, ..SimConfig::ORIGIN };
/// assert_eq!(bad.check(), Err(SimConfigError::RateAboveOne));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The sensor id.
    pub sensor: u32,
    /// The session.
    pub session: u32,
    /// The sampling period in milliseconds.
    pub period_ms: u32,
    /// The timestamp of seq 0.
    pub epoch_ms: u64,
    /// The valid band the values wander in.
    pub band: (Celsius, Celsius),
    /// Readings that are out of band.
    pub error_ppm: u32,
    /// Items the link drops.
    pub skip_ppm: u32,
    /// Items the link sends twice.
    pub duplicate_ppm: u32,
    /// Items the link delays.
    pub reorder_ppm: u32,
    /// The largest delay, in items.
    pub max_displacement: u8,
    /// Frames with one flipped bit.
    pub corrupt_ppm: u32,
    /// Frames cut short (the rest of the frame, delimiter included, is lost).
    pub truncate_ppm: u32,
}

impl SimConfig {
    /// The origin's assumptions: 1 Hz, band 50–55 °C, 5 % out of band, 10 % lost, and nothing
    /// else.
    pub const ORIGIN: SimConfig = SimConfig {
        sensor: 1,
        session: 1,
        period_ms: 1_000,
        epoch_ms: 0,
        band: (Celsius::const_from_int(50), Celsius::const_from_int(55)),
        error_ppm: 50_000,
        skip_ppm: 100_000,
        duplicate_ppm: 0,
        reorder_ppm: 0,
        max_displacement: 1,
        corrupt_ppm: 0,
        truncate_ppm: 0,
    };

    /// A perfect sensor and link: every reading in band, nothing lost or damaged.
    pub const CLEAN: SimConfig = SimConfig {
        error_ppm: 0,
        skip_ppm: 0,
        ..Self::ORIGIN
    };

    /// Checks the configuration.
    pub const fn check(&self) -> Result<(), SimConfigError> {
        let rates = [
            self.error_ppm,
            self.skip_ppm,
            self.duplicate_ppm,
            self.reorder_ppm,
            self.corrupt_ppm,
            self.truncate_ppm,
        ];
        let mut i = 0;
        while i < rates.len() {
            if rates[i] > PPM {
                return Err(SimConfigError::RateAboveOne);
            }
            i += 1;
        }
        if self.period_ms == 0 {
            Err(SimConfigError::ZeroPeriod)
        } else if self.band.0.to_bits() > self.band.1.to_bits() {
            Err(SimConfigError::ReversedBand)
        } else if self.reorder_ppm > 0 && self.max_displacement == 0 {
            Err(SimConfigError::ZeroDisplacement)
        } else {
            Ok(())
        }
    }
}

/// A reading the simulated sensor took, whether or not it arrives anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TruthPoint {
    /// The reading as taken.
    pub reading: Reading,
    /// True when the simulator placed it out of band on purpose.
    pub out_of_band: bool,
}

/// Draws from a ChaCha8 stream.
#[derive(Clone, Debug)]
struct Dice(ChaCha8Rng);

impl Dice {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(rng)
    }

    /// True with probability `ppm` / 1 000 000.
    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.0.next_u32() % PPM < ppm
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.0.next_u32()) * u64::from(n)) >> 32) as u32
    }
}

/// One sixteenth of a degree in [`Celsius`] bits: the resolution of a 12-bit TMP105.
const SIXTEENTH: i32 = 16;

/// A seeded sensor: readings on a fixed schedule, values on a bounded random walk inside the
/// band (quantised to 1/16 °C like a TMP105), with out-of-band excursions.
///
/// # Examples
/// ```
/// use mend_core::{SimConfig, Simulator};
/// let a: Vec<_> = Simulator::new(7, SimConfig::ORIGIN).take(100).collect();
/// let b: Vec<_> = Simulator::new(7, SimConfig::ORIGIN).take(100).collect();
/// assert_eq!(a, b, "same seed, same readings");
/// assert!(a.iter().enumerate().all(|(i, t)| t.reading.seq == i as u32));
/// assert!(a.iter().all(|t| t.reading.timestamp == u64::from(t.reading.seq) * 1_000));
/// ```
#[derive(Clone, Debug)]
pub struct Simulator {
    config: SimConfig,
    dice: Dice,
    seq: u32,
    level: i32,
    done: bool,
}

impl Simulator {
    /// A sensor with the given seed. The configuration should pass [`SimConfig::check`];
    /// impossible values are clamped rather than trusted.
    pub fn new(seed: u64, config: SimConfig) -> Self {
        let (lo, hi) = (config.band.0.to_bits(), config.band.1.to_bits());
        Self {
            config,
            dice: Dice::new(seed, 0),
            seq: 0,
            level: lo + (hi - lo) / 2 / SIXTEENTH * SIXTEENTH,
            done: false,
        }
    }

    /// The configuration in use.
    pub const fn config(&self) -> &SimConfig {
        &self.config
    }

    fn next_point(&mut self) -> Option<TruthPoint> {
        if self.done {
            return None;
        }
        let c = self.config;
        let (lo, hi) = (c.band.0.to_bits(), c.band.1.to_bits());
        // Random walk of -2..=+2 sixteenths, kept a quarter of a degree inside the band.
        let step = (self.dice.below(5) as i32 - 2) * SIXTEENTH;
        let margin = 4 * SIXTEENTH;
        let (wlo, whi) = if hi - lo > 2 * margin {
            (lo + margin, hi - margin)
        } else {
            (lo, hi)
        };
        self.level = (self.level + step).clamp(wlo, whi.max(wlo));
        let out_of_band = self.dice.chance(c.error_ppm);
        let bits = if out_of_band {
            // 1/16 to 5 °C beyond one edge of the band.
            let excess = (1 + self.dice.below(80) as i32) * SIXTEENTH;
            if self.dice.below(2) == 0 {
                lo.saturating_sub(excess)
            } else {
                hi.saturating_add(excess)
            }
        } else {
            self.level
        };
        let timestamp = c
            .epoch_ms
            .saturating_add(u64::from(self.seq) * u64::from(c.period_ms));
        let reading = Reading::new(
            c.sensor,
            c.session,
            self.seq,
            timestamp,
            Celsius::from_bits(bits),
        );
        match self.seq.checked_add(1) {
            Some(next) => self.seq = next,
            None => self.done = true,
        }
        Some(TruthPoint {
            reading,
            out_of_band,
        })
    }
}

impl Iterator for Simulator {
    type Item = TruthPoint;

    fn next(&mut self) -> Option<TruthPoint> {
        self.next_point()
    }
}

/// What a [`Link`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Items handed to the link.
    pub sent: u32,
    /// Items delivered, duplicates included.
    pub delivered: u32,
    /// Items dropped.
    pub dropped: u32,
    /// Extra copies delivered.
    pub duplicated: u32,
    /// Items delivered later than their turn.
    pub delayed: u32,
    /// Frames with a flipped bit.
    pub corrupted: u32,
    /// Frames cut short.
    pub truncated: u32,
}

/// A seeded faulty link carrying items of type `T` (readings, or encoded frames), holding at
/// most `D` delayed items.
///
/// Each item is dropped with the skip rate; otherwise it is sent, and sent again with the
/// duplicate rate. Each copy is delayed with the reorder rate, by 1 to `max_displacement`
/// later sends (never more than `D` items wait at once), so disorder is bounded.
///
/// # Examples
/// ```
/// use mend_core::{Link, SimConfig};
/// let lossy = SimConfig { skip_ppm: 500_000, ..SimConfig::CLEAN };
/// let mut link: Link<u32, 4> = Link::new(9, &lossy);
/// let mut out = Vec::new();
/// for i in 0..1000 {
///     link.send(i, |x| out.push(x));
/// }
/// link.flush(|x| out.push(x));
/// assert!(out.windows(2).all(|w| w[0] < w[1]), "dropping never reorders");
/// assert_eq!(out.len() as u32, link.stats().delivered);
/// assert_eq!(link.stats().dropped + link.stats().delivered, 1000);
/// assert!((400..600).contains(&out.len()));
/// ```
#[derive(Clone, Debug)]
pub struct Link<T, const D: usize> {
    config: SimConfig,
    dice: Dice,
    held: Deque<(T, u8), D>,
    stats: LinkStats,
}

impl<T: Clone, const D: usize> Link<T, D> {
    /// A link with the given seed; only the link rates of `config` are used.
    pub fn new(seed: u64, config: &SimConfig) -> Self {
        Self {
            config: *config,
            dice: Dice::new(seed, 1),
            held: Deque::new(),
            stats: LinkStats::default(),
        }
    }

    /// Sends one item; `deliver` gets whatever comes out of the link now.
    pub fn send(&mut self, item: T, mut deliver: impl FnMut(T)) {
        self.stats.sent = self.stats.sent.saturating_add(1);
        self.tick(&mut deliver);
        if self.dice.chance(self.config.skip_ppm) {
            self.stats.dropped = self.stats.dropped.saturating_add(1);
            return;
        }
        let copies = if self.dice.chance(self.config.duplicate_ppm) {
            self.stats.duplicated = self.stats.duplicated.saturating_add(1);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.dice.chance(self.config.reorder_ppm) {
                1 + self
                    .dice
                    .below(u32::from(self.config.max_displacement.max(1))) as u8
            } else {
                0
            };
            if delay == 0 || self.held.is_full() {
                self.emit(item.clone(), &mut deliver);
            } else {
                self.stats.delayed = self.stats.delayed.saturating_add(1);
                // Cannot fail: fullness was checked just above.
                let _ = self.held.push_back((item.clone(), delay));
            }
        }
    }

    fn emit(&mut self, item: T, deliver: &mut impl FnMut(T)) {
        self.stats.delivered = self.stats.delivered.saturating_add(1);
        deliver(item);
    }

    /// Ages the delayed items by one send and delivers those whose time has come, in the
    /// order they were delayed.
    fn tick(&mut self, deliver: &mut impl FnMut(T)) {
        for _ in 0..self.held.len() {
            let Some((item, delay)) = self.held.pop_front() else {
                break;
            };
            if delay <= 1 {
                self.emit(item, deliver);
            } else {
                let _ = self.held.push_back((item, delay - 1));
            }
        }
    }

    /// Delivers everything still delayed, as at the end of a capture.
    pub fn flush(&mut self, mut deliver: impl FnMut(T)) {
        while let Some((item, _)) = self.held.pop_front() {
            self.emit(item, &mut deliver);
        }
    }

    /// Damages one encoded frame in place, with the corruption and truncation rates: flips
    /// one bit, or cuts the frame short. Returns the length to send.
    ///
    /// # Examples
    /// ```
    /// use mend_core::{Link, SimConfig};
    /// let always = SimConfig { corrupt_ppm: 1_000_000, ..SimConfig::CLEAN };
    /// let mut link: Link<(), 1> = Link::new(1, &always);
    /// let mut frame = [1u8, 2, 3, 0];
    /// assert_eq!(link.corrupt(&mut frame), 4);
    /// let flipped: u32 = frame.iter().zip([1u8, 2, 3, 0]).map(|(a, b)| (a ^ b).count_ones()).sum();
    /// assert_eq!(flipped, 1);
    /// ```
    pub fn corrupt(&mut self, frame: &mut [u8]) -> usize {
        let len = frame.len();
        let bits = u32::try_from(len.saturating_mul(8)).unwrap_or(u32::MAX);
        if self.dice.chance(self.config.corrupt_ppm) && bits > 0 {
            let bit = self.dice.below(bits);
            if let Some(b) = frame.get_mut((bit / 8) as usize) {
                *b ^= 1 << (bit % 8);
                self.stats.corrupted = self.stats.corrupted.saturating_add(1);
            }
        }
        if self.dice.chance(self.config.truncate_ppm) && len > 1 {
            self.stats.truncated = self.stats.truncated.saturating_add(1);
            return 1 + self.dice.below(u32::try_from(len - 1).unwrap_or(u32::MAX)) as usize;
        }
        len
    }

    /// What the link did so far.
    pub const fn stats(&self) -> LinkStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn origin_rates_are_met_over_a_long_run() {
        let n = 100_000;
        let truth: Vec<TruthPoint> = Simulator::new(42, SimConfig::ORIGIN).take(n).collect();
        let oob = truth.iter().filter(|t| t.out_of_band).count();
        assert!((4_500..5_500).contains(&oob), "{oob} out of band");
        let band = SimConfig::ORIGIN.band;
        for t in &truth {
            let inside = t.reading.celsius >= band.0 && t.reading.celsius <= band.1;
            assert_eq!(inside, !t.out_of_band, "{t:?}");
            assert_eq!(t.reading.celsius.to_bits() % 16, 0, "1/16 °C steps");
        }
        let mut link: Link<Reading, 8> = Link::new(42, &SimConfig::ORIGIN);
        let mut got = 0usize;
        for t in &truth {
            link.send(t.reading, |_| got += 1);
        }
        link.flush(|_| got += 1);
        assert!((89_000..91_000).contains(&got), "{got} delivered");
    }

    #[test]
    fn disorder_is_bounded_and_nothing_but_drops_is_lost() {
        let cfg = SimConfig {
            skip_ppm: 0,
            duplicate_ppm: 100_000,
            reorder_ppm: 200_000,
            max_displacement: 3,
            ..SimConfig::CLEAN
        };
        let mut link: Link<u32, 8> = Link::new(5, &cfg);
        let mut out = Vec::new();
        for i in 0..10_000u32 {
            link.send(i, |x| out.push((x, i)));
        }
        link.flush(|x| out.push((x, u32::MAX)));
        let s = link.stats();
        assert_eq!(out.len() as u32, 10_000 + s.duplicated);
        assert!(s.delayed > 1_000 && s.duplicated > 500);
        // Every item comes out at most 3 sends after it went in (or at the final flush).
        for (x, at) in &out {
            assert!(*at == u32::MAX || at - x <= 3, "{x} came out at send {at}");
        }
        let mut distinct: Vec<u32> = out.iter().map(|(x, _)| *x).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 10_000);
    }

    #[test]
    fn link_rates_do_not_change_the_values() {
        let a: Vec<_> = Simulator::new(3, SimConfig::ORIGIN).take(50).collect();
        let b: Vec<_> = Simulator::new(
            3,
            SimConfig {
                skip_ppm: 0,
                reorder_ppm: 9,
                ..SimConfig::ORIGIN
            },
        )
        .take(50)
        .collect();
        assert_eq!(a, b);
        let c: Vec<_> = Simulator::new(4, SimConfig::ORIGIN).take(50).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn truncation_keeps_at_least_one_byte() {
        let cfg = SimConfig {
            truncate_ppm: PPM,
            ..SimConfig::CLEAN
        };
        let mut link: Link<(), 1> = Link::new(1, &cfg);
        for _ in 0..100 {
            let mut f = [1u8, 2, 3, 4, 0];
            let n = link.corrupt(&mut f);
            assert!((1..5).contains(&n));
        }
        assert_eq!(link.corrupt(&mut [0u8]), 1);
        assert_eq!(link.corrupt(&mut []), 0);
    }
}
