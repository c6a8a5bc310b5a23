//! Numbers as outputs print them: exact, canonical and without allocating.
//!
//! A [`Celsius`] is a whole number of 1/256 °C, and 1/256 = 0.00390625 has eight decimals,
//! so every value has an exact, finite decimal form. mend prints that form and nothing else:
//! the integer part, then a point and the fraction digits with trailing zeros removed, and no
//! point at all for a whole number (`50`, `52.5`, `52.0625`, `-0.00390625`). Parsing the text
//! back with any decimal parser gives the same fixed-point value, so a CSV round trip is
//! lossless, and equal values always print the same bytes.
//!
//! Rows are built in fixed-size buffers ([`Line`], [`Short`], [`SliceOut`]) on the hot path.
//! None of mend's rows comes near their size, but a text that does not fit is never cut
//! short quietly: the buffer remembers that it overflowed (its length is set one past its
//! capacity, so that the path of a text that fits does not pay for it), and reading it back
//! ([`Line::text`], [`Short::text`], [`SliceOut::finish`]) is then an [`Overflow`] error.

use mend_core::Celsius;

/// A text did not fit in the fixed-size buffer it was formatted into.
///
/// # Examples
/// ```
/// use mend::text::numfmt::{ByteOut, Short, SHORT_CAP};
/// let mut s = Short::default();
/// s.put_slice(&[b'x'; SHORT_CAP + 1]);
/// let e = s.text().unwrap_err();
/// assert_eq!(e.to_string(), "a text of more than 24 bytes did not fit in its buffer");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// The size of the buffer.
    pub capacity: usize,
}

impl core::fmt::Display for Overflow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "a text of more than {} bytes did not fit in its buffer",
            self.capacity
        )
    }
}

impl std::error::Error for Overflow {}

impl From<Overflow> for std::io::Error {
    fn from(e: Overflow) -> Self {
        std::io::Error::other(e)
    }
}

/// Something bytes can be appended to: a `Vec<u8>`, a [`Line`] on the stack, or a
/// [`SliceOut`] over an output buffer.
pub trait ByteOut {
    /// Appends one byte.
    fn put(&mut self, b: u8);
    /// Appends a slice.
    fn put_slice(&mut self, s: &[u8]);
    /// Appends the text of a [`Line`] (an overflowed line overflows the output too).
    #[inline]
    fn put_line(&mut self, line: &Line) {
        debug_assert!(line.text().is_ok(), "an overflowed line copied out");
        self.put_slice(line.as_slice());
    }
    /// Appends a fixed-size piece.
    #[inline]
    fn put_array<const N: usize>(&mut self, a: &[u8; N]) {
        self.put_slice(a);
    }
    /// Appends the text of a [`Short`] (an overflowed one overflows the output too).
    #[inline]
    fn put_short(&mut self, s: &Short) {
        debug_assert!(s.text().is_ok(), "an overflowed short text copied out");
        self.put_slice(s.as_slice());
    }
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

/// Pieces of a row up to this long are copied as one fixed-size block.
const BLOCK: usize = 64;

/// Appends to `buf[*len..]`; false (and nothing appended) when there is no room.
#[inline]
#[must_use]
fn put_at(buf: &mut [u8], len: &mut usize, b: u8) -> bool {
    match buf.get_mut(*len) {
        Some(x) => {
            *x = b;
            *len += 1;
            true
        }
        None => false,
    }
}

/// Appends `s` to `buf[*len..]`; false (and nothing appended) when it does not fit.
#[inline]
#[must_use]
fn put_slice_at(buf: &mut [u8], len: &mut usize, s: &[u8]) -> bool {
    let end = *len + s.len();
    match buf.get_mut(*len..end) {
        Some(dst) => {
            dst.copy_from_slice(s);
            *len = end;
            true
        }
        None => false,
    }
}

/// Copies all `N` bytes of `a` (inline moves, no call) but counts only the first `n`; the
/// rest is overwritten by whatever comes next. Without room for all `N`, it copies the `n`;
/// false when even they do not fit.
#[inline]
#[must_use]
fn put_prefix_at<const N: usize>(buf: &mut [u8], len: &mut usize, a: &[u8; N], n: usize) -> bool {
    let dst = buf
        .get_mut(*len..*len + N)
        .and_then(|d| <&mut [u8; N]>::try_from(d).ok());
    match dst {
        Some(dst) if n <= N => {
            *dst = *a;
            *len += n;
            true
        }
        _ => match a.get(..n) {
            Some(text) => put_slice_at(buf, len, text),
            None => false,
        },
    }
}

/// Copies a short line as one block of [`BLOCK`] bytes (a few vector moves instead of a
/// call to `memmove`); false when it does not fit or the line had overflowed.
#[inline]
#[must_use]
fn put_line_at(buf: &mut [u8], len: &mut usize, line: &Line) -> bool {
    match line.buf.first_chunk::<BLOCK>() {
        Some(src) if line.len <= BLOCK => put_prefix_at(buf, len, src, line.len),
        _ => match line.buf.get(..line.len) {
            Some(text) => put_slice_at(buf, len, text),
            None => false,
        },
    }
}

/// A row being formatted on the stack: short copies are plain byte loops instead of calls
/// to `memmove`, which matters at tens of millions of rows.
///
/// # Examples
/// ```
/// use mend::text::numfmt::{push_u64, ByteOut, Line};
/// let mut l = Line::new();
/// l.put_slice(b"seq=");
/// push_u64(&mut l, 42);
/// assert_eq!(l.text()?, b"seq=42");
/// # Ok::<(), mend::text::numfmt::Overflow>(())
/// ```
#[derive(Clone, Debug)]
pub struct Line {
    buf: [u8; LINE_CAP],
    /// The length, or [`Line::OVERFLOWED`].
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

impl Line {
    /// The length of a line something did not fit in: past any real length.
    const OVERFLOWED: usize = LINE_CAP + 1;

    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_CAP],
            len: 0,
        }
    }

    /// The bytes so far, or [`Overflow`] when some did not fit.
    pub fn text(&self) -> Result<&[u8], Overflow> {
        self.buf
            .get(..self.len)
            .ok_or(Overflow { capacity: LINE_CAP })
    }

    /// The bytes that fitted.
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&self.buf)
    }

    /// Empties the line.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The bytes so far, to change in place (the ones that fitted, after an overflow).
    ///
    /// # Examples
    /// ```
    /// use mend::text::numfmt::{ByteOut, Line};
    /// let mut l = Line::new();
    /// l.put_slice(b"12:59");
    /// l.filled_mut()[4] = b'8';
    /// assert_eq!(l.text()?, b"12:58");
    /// # Ok::<(), mend::text::numfmt::Overflow>(())
    /// ```
    pub fn filled_mut(&mut self) -> &mut [u8] {
        let n = self.len.min(LINE_CAP);
        self.buf.get_mut(..n).unwrap_or_default()
    }

    /// How many bytes it holds (past [`LINE_CAP`] after an overflow).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn fits(&mut self, fits: bool) {
        if !fits {
            self.overflow();
        }
    }

    #[cold]
    fn overflow(&mut self) {
        self.len = Self::OVERFLOWED;
    }
}

impl ByteOut for Line {
    #[inline]
    fn put(&mut self, b: u8) {
        let fits = put_at(&mut self.buf, &mut self.len, b);
        self.fits(fits);
    }
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        let fits = put_slice_at(&mut self.buf, &mut self.len, s);
        self.fits(fits);
    }
    #[inline]
    fn put_line(&mut self, line: &Line) {
        let fits = put_line_at(&mut self.buf, &mut self.len, line);
        self.fits(fits);
    }
    #[inline]
    fn put_array<const N: usize>(&mut self, a: &[u8; N]) {
        let fits = put_prefix_at(&mut self.buf, &mut self.len, a, N);
        self.fits(fits);
    }
    #[inline]
    fn put_short(&mut self, s: &Short) {
        let fits = put_prefix_at(&mut self.buf, &mut self.len, &s.buf, usize::from(s.len));
        self.fits(fits);
    }
}

/// Adds one to the decimal digits `digits` in place, keeping their number: true when that
/// worked, false when they were all nines (or none), which leaves them all zeros.
///
/// # Examples
/// ```
/// use mend::text::numfmt::count_up;
/// let mut d = *b"1299";
/// assert!(count_up(&mut d));
/// assert_eq!(&d, b"1300");
/// let mut d = *b"99";
/// assert!(!count_up(&mut d));
/// ```
#[inline]
pub fn count_up(digits: &mut [u8]) -> bool {
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return true;
        }
    }
    false
}

/// The most bytes a [`Short`] holds: any `u64`, and any [`Celsius`] text.
pub const SHORT_CAP: usize = 24;

/// A short text held by value, small enough to keep many of them (a cache of formatted
/// numbers): it is copied out as one fixed-size block.
///
/// # Examples
/// ```
/// use mend::text::numfmt::{push_celsius, ByteOut, Line, Short};
/// let mut s = Short::default();
/// push_celsius(&mut s, mend_core::Celsius::from_num(-12.25));
/// let mut l = Line::new();
/// l.put_short(&s);
/// assert_eq!(l.text()?, b"-12.25");
/// # Ok::<(), mend::text::numfmt::Overflow>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Short {
    buf: [u8; SHORT_CAP],
    /// The length, or [`Short::OVERFLOWED`].
    len: u8,
}

impl Short {
    /// The length of a text something did not fit in: past any real length.
    const OVERFLOWED: u8 = SHORT_CAP as u8 + 1;

    /// The text, or [`Overflow`] when some of it did not fit.
    pub fn text(&self) -> Result<&[u8], Overflow> {
        self.buf.get(..usize::from(self.len)).ok_or(Overflow {
            capacity: SHORT_CAP,
        })
    }

    /// The bytes that fitted.
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&self.buf)
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl ByteOut for Short {
    #[inline]
    fn put(&mut self, b: u8) {
        let mut len = usize::from(self.len);
        self.len = if put_at(&mut self.buf, &mut len, b) {
            len as u8
        } else {
            Self::OVERFLOWED
        };
    }
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        let mut len = usize::from(self.len);
        self.len = if put_slice_at(&mut self.buf, &mut len, s) {
            len as u8
        } else {
            Self::OVERFLOWED
        };
    }
}

/// Bytes appended straight into a slice of an output buffer, so that a row is formatted
/// where it will be written from, without a copy. Give it at least [`LINE_CAP`] bytes for a
/// row: bytes that do not fit make [`SliceOut::finish`] an error.
///
/// # Examples
/// ```
/// use mend::text::numfmt::{push_u64, ByteOut, SliceOut};
/// let mut buf = [0u8; 16];
/// let mut out = SliceOut::new(&mut buf);
/// out.put_slice(b"n=");
/// push_u64(&mut out, 7);
/// let n = out.finish()?;
/// assert_eq!(&buf[..n], b"n=7");
/// let mut out = SliceOut::new(&mut buf);
/// push_u64(&mut out, u64::MAX);
/// assert!(out.finish().is_err(), "20 digits do not fit in 16 bytes");
/// # Ok::<(), mend::text::numfmt::Overflow>(())
/// ```
#[derive(Debug)]
pub struct SliceOut<'a> {
    buf: &'a mut [u8],
    /// The length, or one past the end of `buf` once something did not fit.
    len: usize,
}

impl<'a> SliceOut<'a> {
    /// Appends from the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of bytes written, or [`Overflow`] when some did not fit.
    pub fn finish(self) -> Result<usize, Overflow> {
        if self.len > self.buf.len() {
            return Err(Overflow {
                capacity: self.buf.len(),
            });
        }
        Ok(self.len)
    }

    #[inline]
    fn fits(&mut self, fits: bool) {
        if !fits {
            self.overflow();
        }
    }

    #[cold]
    fn overflow(&mut self) {
        self.len = self.buf.len() + 1;
    }
}

impl ByteOut for SliceOut<'_> {
    #[inline]
    fn put(&mut self, b: u8) {
        let fits = put_at(self.buf, &mut self.len, b);
        self.fits(fits);
    }
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        let fits = put_slice_at(self.buf, &mut self.len, s);
        self.fits(fits);
    }
    #[inline]
    fn put_line(&mut self, line: &Line) {
        let fits = put_line_at(self.buf, &mut self.len, line);
        self.fits(fits);
    }
    #[inline]
    fn put_array<const N: usize>(&mut self, a: &[u8; N]) {
        let fits = put_prefix_at(self.buf, &mut self.len, a, N);
        self.fits(fits);
    }
    #[inline]
    fn put_short(&mut self, s: &Short) {
        let fits = put_prefix_at(self.buf, &mut self.len, &s.buf, usize::from(s.len));
        self.fits(fits);
    }
}

/// Appends the decimal digits of `v` to `out`.
///
/// # Examples
/// ```
/// let mut s = Vec::new();
/// mend::text::numfmt::push_u64(&mut s, 1_234_567);
/// assert_eq!(s, b"1234567");
/// ```
#[inline]
pub fn push_u64(out: &mut impl ByteOut, v: u64) {
    // Byte by byte: at most 20 stores, cheaper than a call to `memmove` for a few digits.
    for &d in itoa::Buffer::new().format(v).as_bytes() {
        out.put(d);
    }
}

/// `"00"`, `"01"`, … `"99"`, back to back.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Writes the two digits of `v % 100` at `out[at..at + 2]`.
///
/// # Examples
/// ```
/// let mut t = *b"HH:MM";
/// mend::text::numfmt::put_pair(&mut t, 3, 7);
/// assert_eq!(&t, b"HH:07");
/// ```
#[inline]
pub fn put_pair(out: &mut [u8], at: usize, v: u32) {
    let i = (v % 100) as usize * 2;
    if let (Some(dst), Some(src)) = (out.get_mut(at..at + 2), PAIRS.get(i..i + 2)) {
        dst.copy_from_slice(src);
    }
}

/// Appends the exact decimal form of a [`Celsius`] value (see the module docs).
///
/// # Examples
/// ```
/// use mend_core::Celsius;
/// let show = |bits: i32| {
///     let mut s = Vec::new();
///     mend::text::numfmt::push_celsius(&mut s, Celsius::from_bits(bits));
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
/// assert_eq!(mend::text::numfmt::celsius_string(Celsius::from_num(-12.25)), "-12.25");
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
    fn integers_print_as_std_prints_them() {
        let edges = (0..20).flat_map(|p| {
            let t = 10u64.pow(p);
            [t - 1, t, t + 1]
        });
        for v in (0..100_000u64).chain(edges).chain([u64::MAX, u64::MAX - 1]) {
            let mut line = Line::new();
            push_u64(&mut line, v);
            assert_eq!(line.text().unwrap(), v.to_string().as_bytes());
            let mut short = Short::default();
            push_u64(&mut short, v);
            assert_eq!(short.text().unwrap(), v.to_string().as_bytes());
            // Counting the digits up gives the next number, unless it needs one digit more.
            let mut digits = v.to_string().into_bytes();
            let next = (u128::from(v) + 1).to_string().into_bytes();
            let counted = count_up(&mut digits);
            assert_eq!(counted, next.len() == digits.len(), "{v}");
            if counted {
                assert_eq!(digits, next);
            } else {
                assert!(digits.iter().all(|&d| d == b'0'), "{v}");
            }
        }
    }

    #[test]
    fn a_text_too_long_for_its_buffer_is_an_error_not_a_shorter_text() {
        let mut line = Line::new();
        line.put_slice(&[b'a'; LINE_CAP]);
        assert_eq!(line.text().unwrap().len(), LINE_CAP, "exactly full is fine");
        line.put(b'b');
        assert_eq!(line.text(), Err(Overflow { capacity: LINE_CAP }));
        line.clear();
        assert_eq!(line.text().unwrap(), b"");

        let mut short = Short::default();
        push_u64(&mut short, u64::MAX);
        short.put_slice(b"0123");
        assert_eq!(short.text().unwrap(), b"184467440737095516150123");
        short.put(b'9');
        assert!(short.text().is_err());

        // An overflowed piece overflows the text it is copied into.
        let mut buf = [0u8; 2 * LINE_CAP];
        let mut out = SliceOut::new(&mut buf);
        out.put_short(&short);
        assert!(out.finish().is_err());
        let mut out = SliceOut::new(&mut buf);
        let mut long = Line::new();
        long.put_slice(&[b'x'; LINE_CAP + 1]);
        out.put_line(&long);
        assert!(out.finish().is_err());
        let mut into = Line::new();
        into.put_short(&short);
        assert!(into.text().is_err());

        // Every way into a slice that is too small.
        let mut small = [0u8; 4];
        let mut out = SliceOut::new(&mut small);
        out.put_array(b"12345");
        assert_eq!(out.finish(), Err(Overflow { capacity: 4 }));
        let mut out = SliceOut::new(&mut small);
        push_celsius(&mut out, Celsius::from_num(-12.25));
        assert!(out.finish().is_err());
        let mut out = SliceOut::new(&mut small);
        let mut four = Short::default();
        four.put_slice(b"1234");
        out.put_short(&four);
        assert_eq!(out.finish(), Ok(4));
    }

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
