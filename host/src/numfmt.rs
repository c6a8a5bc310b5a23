//! Numbers as outputs print them: exact, canonical and without allocating.
//!
//! A [`Celsius`] is a whole number of 1/256 °C, and 1/256 = 0.00390625 has eight decimals,
//! so every value has an exact, finite decimal form. mend prints that form and nothing else:
//! the integer part, then a point and the fraction digits with trailing zeros removed, and no
//! point at all for a whole number (`50`, `52.5`, `52.0625`, `-0.00390625`). Parsing the text
//! back with any decimal parser gives the same fixed-point value, so a CSV round trip is
//! lossless, and equal values always print the same bytes.

use mend_core::Celsius;

/// Something bytes can be appended to: a `Vec<u8>`, or a [`Line`] on the stack.
pub trait ByteOut {
    /// Appends one byte.
    fn put(&mut self, b: u8);
    /// Appends a slice.
    fn put_slice(&mut self, s: &[u8]);
}

impl ByteOut for Vec<u8> {
    #[inline]
    fn put(&mut self, b: u8) {
        self.push(b);
    }
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
}

/// The longest text a [`Line`] holds; any output row of mend is far shorter.
pub const LINE_CAP: usize = 256;

/// A row being formatted on the stack: short copies are plain byte loops instead of calls
/// to `memmove`, which matters at tens of millions of rows.
///
/// # Examples
/// ```
/// use mend::numfmt::{push_u64, ByteOut, Line};
/// let mut l = Line::new();
/// l.put_slice(b"seq=");
/// push_u64(&mut l, 42);
/// assert_eq!(l.as_slice(), b"seq=42");
/// ```
#[derive(Clone, Debug)]
pub struct Line {
    buf: [u8; LINE_CAP],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_CAP],
            len: 0,
        }
    }

    /// The bytes so far.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&self.buf)
    }

    /// Empties the line.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends another line. Short pieces (the usual case) are copied as one fixed-size
    /// block, which compiles to a few moves instead of a call.
    #[inline]
    pub fn put_line(&mut self, other: &Line) {
        const BLOCK: usize = 64;
        let end = self.len + BLOCK;
        match (self.buf.get_mut(self.len..end), other.buf.get(..BLOCK)) {
            (Some(dst), Some(src)) if other.len <= BLOCK => {
                dst.copy_from_slice(src);
                self.len += other.len;
            }
            _ => self.put_slice(other.as_slice()),
        }
    }
}

impl ByteOut for Line {
    #[inline]
    fn put(&mut self, b: u8) {
        // Bytes beyond the capacity are dropped; no row comes close to it.
        if let Some(x) = self.buf.get_mut(self.len) {
            *x = b;
            self.len += 1;
        }
    }
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        let end = self.len + s.len();
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(s);
            self.len = end;
        }
    }
}

/// Appends the decimal digits of `v` to `out`.
///
/// # Examples
/// ```
/// let mut s = Vec::new();
/// mend::numfmt::push_u64(&mut s, 1_234_567);
/// assert_eq!(s, b"1234567");
/// ```
#[inline]
pub fn push_u64(out: &mut impl ByteOut, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// Appends the exact decimal form of a [`Celsius`] value (see the module docs).
///
/// # Examples
/// ```
/// use mend_core::Celsius;
/// let show = |bits: i32| {
///     let mut s = Vec::new();
///     mend::numfmt::push_celsius(&mut s, Celsius::from_bits(bits));
///     String::from_utf8(s).unwrap()
/// };
/// assert_eq!(show(12_800), "50");
/// assert_eq!(show(13_440), "52.5");
/// assert_eq!(show(13_329), "52.06640625");
/// assert_eq!(show(-1), "-0.00390625");
/// assert_eq!(show(i32::MIN), "-8388608");
/// ```
#[inline]
pub fn push_celsius(out: &mut impl ByteOut, c: Celsius) {
    let bits = i64::from(c.to_bits());
    if bits < 0 {
        out.put(b'-');
    }
    let abs = bits.unsigned_abs();
    push_u64(out, abs >> 8);
    let frac = abs & 0xFF;
    if frac != 0 {
        // frac / 256 = frac × 390 625 / 10^8: exactly eight decimals.
        let mut digits = frac * 390_625;
        let mut n = 8;
        while digits % 10 == 0 {
            digits /= 10;
            n -= 1;
        }
        out.put(b'.');
        let mut buf = [b'0'; 8];
        let mut i = n;
        while i > 0 {
            i -= 1;
            buf[i] = b'0' + (digits % 10) as u8;
            digits /= 10;
        }
        out.put_slice(&buf[..n]);
    }
}

/// The exact decimal form of a [`Celsius`] value as a `String`.
///
/// # Examples
/// ```
/// use mend_core::Celsius;
/// assert_eq!(mend::numfmt::celsius_string(Celsius::from_num(-12.25)), "-12.25");
/// ```
pub fn celsius_string(c: Celsius) -> String {
    let mut v = Vec::with_capacity(16);
    push_celsius(&mut v, c);
    String::from_utf8_lossy(&v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_text() {
        for bits in (-300_000..300_000).chain([i32::MIN, i32::MAX, i32::MIN + 1]) {
            let c = Celsius::from_bits(bits);
            let s = celsius_string(c);
            let back: f64 = s.parse().unwrap();
            assert_eq!(Celsius::from_num(back), c, "{s}");
            assert!(!s.ends_with('0') || !s.contains('.'), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
    }
}
