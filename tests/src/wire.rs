//! Reading a UART capture back, and the sensor model's arithmetic.
//!
//! Decoding goes through `mend_core`'s streaming decoder, the same code the host tool uses, so
//! a test that passes here passes for `mend replay` too.

use mend_core::{DecodeEvent, Decoder, Frame, SkipReason, Span};

/// A decoded capture: every good frame with its byte span, and every skipped span with why.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// Good frames, in stream order.
    pub frames: Vec<(Frame, Span)>,
    /// Damaged or stray bytes, in stream order.
    pub skipped: Vec<(Span, SkipReason)>,
    /// The capture's length in bytes.
    pub len: u64,
}

impl Capture {
    /// Bytes in good frames plus bytes skipped: equals [`len`](Self::len) when every byte is
    /// accounted for.
    pub fn accounted_bytes(&self) -> u64 {
        let good: u64 = self.frames.iter().map(|(_, s)| s.len()).sum();
        let bad: u64 = self.skipped.iter().map(|(s, _)| s.len()).sum();
        good + bad
    }
}

/// Decodes a whole capture.
pub fn decode_capture(bytes: &[u8]) -> Capture {
    let mut capture = Capture {
        len: bytes.len() as u64,
        ..Capture::default()
    };
    let mut decoder: Decoder = Decoder::new();
    let mut events: Vec<DecodeEvent> = decoder.feed(bytes).collect();
    events.extend(decoder.finish());
    for event in events {
        match event {
            DecodeEvent::Frame { frame, span } => capture.frames.push((frame, span)),
            DecodeEvent::Skipped { span, reason } => capture.skipped.push((span, reason)),
        }
    }
    capture
}

/// What a TMP105 in QEMU reports at 12-bit resolution after `qom-set temperature`
/// (milli-degrees), in 1/256 °C.
///
/// QEMU stores `millidegrees * 256 / 1000` (C division, towards zero) in a 16-bit register and
/// the 12-bit read drops the low four bits. For multiples of 62.5 m°C the result is the set
/// value exactly; the tests use multiples of 125 m°C, which `qom-set`'s integer can express.
///
/// # Examples
/// ```
/// use mend_tests::millidegrees_to_celsius_bits;
/// assert_eq!(millidegrees_to_celsius_bits(52_500), 52 * 256 + 128);
/// assert_eq!(millidegrees_to_celsius_bits(50_125), 50 * 256 + 32);
/// assert_eq!(millidegrees_to_celsius_bits(-125), -32);
/// assert_eq!(millidegrees_to_celsius_bits(50_010), 50 * 256); // below 1/16 °C: truncated
/// ```
pub fn millidegrees_to_celsius_bits(millidegrees: i32) -> i32 {
    let register = (i64::from(millidegrees) * 256 / 1000) as i16;
    i32::from(register & !0xF)
}
