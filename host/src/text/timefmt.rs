//! Time as users write it and as outputs show it.
//!
//! Outputs print every timestamp as RFC 3339 UTC with milliseconds, always 24 bytes for the
//! years 1970–9999, so that columns line up and a text sort is a time sort. Formatting runs
//! once per output row, so it is a small days-to-civil conversion into a stack buffer with
//! no allocation. Parsing is for the command line only and leans on `humantime`.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};

use crate::text::numfmt::{ByteOut, Short};

/// The last millisecond RFC 3339 can write, `9999-12-31T23:59:59.999Z`.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// [`MAX_TIME_MS`] as text: readings after it are dead-lettered as `bad_timestamp`, so that
/// every row's time is RFC 3339.
///
/// # Examples
/// ```
/// use mend::text::timefmt::{to_rfc3339, LAST_TIME, MAX_TIME_MS};
/// assert_eq!(to_rfc3339(MAX_TIME_MS), LAST_TIME);
/// ```
pub const LAST_TIME: &str = "9999-12-31T23:59:59.999Z";

/// The longest text [`format_ms`] writes (a year beyond 9999 takes more digits).
pub const MAX_TIME_LEN: usize = 32;

/// The digits of the latest year a `u64` of milliseconds reaches.
const MAX_YEAR_DIGITS: usize = {
    let (mut year, _, _) = civil_from_days(u64::MAX / 86_400_000);
    let mut n = 1;
    while year >= 10 {
        year /= 10;
        n += 1;
    }
    n
};

/// The length of `-MM-DDTHH:MM:SS.mmmZ`, after the year.
const AFTER_YEAR: usize = 20;

// Every time fits: the slices of a [`format_ms`] text below cannot fail.
const _: () = assert!(MAX_YEAR_DIGITS + AFTER_YEAR <= MAX_TIME_LEN);

/// Civil date `(year, month, day)` of a day count since 1970-01-01 (proleptic Gregorian).
///
/// The algorithm is the classic era-based one (H. Hinnant, "chrono-compatible low-level date
/// algorithms"), in unsigned arithmetic because mend never goes before 1970.
///
/// # Examples
/// ```
/// assert_eq!(mend::text::timefmt::civil_from_days(0), (1970, 1, 1));
/// assert_eq!(mend::text::timefmt::civil_from_days(20_819), (2027, 1, 1));
/// ```
pub const fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn two(out: &mut [u8], at: usize, v: u32) {
    crate::text::numfmt::put_pair(out, at, v);
}

/// Writes `ms` (milliseconds since 1970-01-01T00:00:00Z) as `YYYY-MM-DDTHH:MM:SS.mmmZ` into
/// `out` and returns the length used.
///
/// # Examples
/// ```
/// let mut buf = [0u8; mend::text::timefmt::MAX_TIME_LEN];
/// let n = mend::text::timefmt::format_ms(5_000, &mut buf);
/// assert_eq!(&buf[..n], b"1970-01-01T00:00:05.000Z");
/// let n = mend::text::timefmt::format_ms(1_767_225_600_123, &mut buf);
/// assert_eq!(&buf[..n], b"2026-01-01T00:00:00.123Z");
/// ```
pub fn format_ms(ms: u64, out: &mut [u8; MAX_TIME_LEN]) -> usize {
    let secs = ms / 1_000;
    let milli = (ms % 1_000) as u32;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let sod = (secs % 86_400) as u32;
    // Year: at least four digits, more if needed (u64 milliseconds reach year 584 million).
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut y = year;
    loop {
        digits[n] = b'0' + (y % 10) as u8;
        n += 1;
        y /= 10;
        if y == 0 {
            break;
        }
    }
    while n < 4 {
        digits[n] = b'0';
        n += 1;
    }
    for (i, d) in digits[..n].iter().rev().enumerate() {
        out[i] = *d;
    }
    let rest = b"-MM-DDTHH:MM:SS.mmmZ";
    out[n..n + rest.len()].copy_from_slice(rest);
    two(out, n + 1, month);
    two(out, n + 4, day);
    two(out, n + 7, sod / 3_600);
    two(out, n + 10, sod / 60 % 60);
    two(out, n + 13, sod % 60);
    out[n + 16] = b'0' + (milli / 100) as u8;
    two(out, n + 17, milli % 100);
    n + rest.len()
}

/// Formats timestamps like [`format_ms`], remembering the date of the last one: rows come
/// in time order, so the calendar arithmetic runs once per day instead of once per row.
///
/// # Examples
/// ```
/// let mut f = mend::text::timefmt::TimeFormatter::default();
/// let mut out = Vec::new();
/// f.push(&mut out, 86_399_999);
/// f.push(&mut out, 86_400_000);
/// assert_eq!(out, b"1970-01-01T23:59:59.999Z1970-01-02T00:00:00.000Z");
/// ```
#[derive(Clone, Debug, Default)]
pub struct TimeFormatter {
    day: Option<u64>,
    /// Everything up to and including the `T` of that day.
    date: Short,
}

impl TimeFormatter {
    /// Appends `ms` as RFC 3339 UTC with milliseconds.
    #[inline]
    pub fn push(&mut self, out: &mut impl ByteOut, ms: u64) {
        let secs = ms / 1_000;
        let day = secs / 86_400;
        if self.day != Some(day) {
            let mut full = [0u8; MAX_TIME_LEN];
            let n = format_ms(day * 86_400_000, &mut full);
            self.date.clear();
            // Up to and including the `T`: n ≥ 4 + AFTER_YEAR > 13, n ≤ MAX_TIME_LEN.
            self.date.put_slice(&full[..n - 13]);
            self.day = Some(day);
        }
        out.put_short(&self.date);
        let sod = (secs % 86_400) as u32;
        let milli = (ms % 1_000) as u32;
        let mut t = *b"HH:MM:SS.mmmZ";
        two(&mut t, 0, sod / 3_600);
        two(&mut t, 3, sod / 60 % 60);
        two(&mut t, 6, sod % 60);
        t[9] = b'0' + (milli / 100) as u8;
        two(&mut t, 10, milli % 100);
        out.put_array(&t);
    }
}

/// `ms` as an owned RFC 3339 string (for messages and summaries, not for rows).
///
/// # Examples
/// ```
/// assert_eq!(mend::text::timefmt::to_rfc3339(86_400_000), "1970-01-02T00:00:00.000Z");
/// ```
pub fn to_rfc3339(ms: u64) -> String {
    let mut buf = [0u8; MAX_TIME_LEN];
    let n = format_ms(ms, &mut buf);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Parses a point in time: RFC 3339 with its zone (`2026-11-26T08:00:00Z`,
/// `2026-11-26T09:00:00+01:00`, fractions allowed; a time without a zone is refused with a
/// hint) or unix seconds (`1764144000`, or with a fraction such as `1764144000.5`). Returns
/// milliseconds since the epoch.
///
/// # Examples
/// ```
/// use mend::text::timefmt::parse_time;
/// assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1_500);
/// assert_eq!(parse_time("1970-01-01T01:00:02+01:00").unwrap(), 2_000);
/// let e = parse_time("2026-01-01T06:00:00").unwrap_err().to_string();
/// assert!(e.contains("no zone"), "{e}");
/// assert_eq!(parse_time("42").unwrap(), 42_000);
/// assert_eq!(parse_time("1.25").unwrap(), 1_250);
/// assert!(parse_time("yesterday").is_err());
/// ```
pub fn parse_time(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty() || frac.contains('.') {
            bail!("unparseable time {text:?}: expected RFC 3339 (2026-11-26T08:00:00Z) or unix seconds");
        }
        let secs: u64 = int
            .parse()
            .with_context(|| format!("time {text:?} is out of range"))?;
        let mut ms: u64 = 0;
        for (i, d) in frac.bytes().take(3).enumerate() {
            ms += u64::from(d - b'0') * [100, 10, 1][i];
        }
        if frac.bytes().skip(3).any(|d| d != b'0') {
            bail!("{}", finer_than_ms(text));
        }
        return secs
            .checked_mul(1_000)
            .and_then(|s| s.checked_add(ms))
            .with_context(|| format!("time {text:?} is out of range"));
    }
    let (utc, offset_ms) = split_zone(text, t)?;
    let st = humantime::parse_rfc3339_weak(&utc).map_err(|e| {
        anyhow::anyhow!(
            "unparseable time {text:?} ({e}): expected RFC 3339 (2026-11-26T08:00:00Z, 2026-11-26T09:00:00+01:00) or unix seconds"
        )
    })?;
    let d = st
        .duration_since(UNIX_EPOCH)
        .with_context(|| format!("time {text:?} is before 1970"))?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        bail!("{}", finer_than_ms(text));
    }
    let local =
        i128::try_from(d.as_millis()).with_context(|| format!("time {text:?} is out of range"))?;
    u64::try_from(local - i128::from(offset_ms))
        .with_context(|| format!("time {text:?} is before 1970 or out of range"))
}

/// The error for a time given finer than the readings' own milliseconds: rounded either way,
/// a window would take or leave a reading it should not.
fn finer_than_ms(text: &str) -> String {
    format!("time {text:?} is finer than a millisecond, as no reading's time is: give at most 3 decimals")
}

/// Splits the zone off an RFC 3339 time: the time as UTC text for humantime (`…Z`) and the
/// offset to subtract, in ms. A time without a zone is an error: it could mean UTC or local
/// time, and guessing either shifts a replay window by hours without a word.
fn split_zone(text: &str, t: &str) -> anyhow::Result<(String, i64)> {
    if t.ends_with(['Z', 'z']) {
        return Ok((t.to_string(), 0));
    }
    let b = t.as_bytes();
    if b.len() > 6 {
        let (head, zone) = t.split_at(t.len() - 6);
        let z = zone.as_bytes();
        let digits = |i: usize, j: usize| -> Option<i64> {
            let s = zone.get(i..j)?;
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())
                .flatten()
        };
        let has_time = head.contains(['T', 't', ' ']);
        if has_time && matches!(z.first(), Some(b'+') | Some(b'-')) && z.get(3) == Some(&b':') {
            let (Some(h), Some(m)) = (digits(1, 3), digits(4, 6)) else {
                bail!("time {text:?}: bad zone offset {zone:?}, expected e.g. +01:00");
            };
            if h > 23 || m > 59 {
                bail!("time {text:?}: zone offset {zone:?} is out of range");
            }
            let sign = if z.first() == Some(&b'-') { -1 } else { 1 };
            return Ok((format!("{head}Z"), sign * (h * 60 + m) * 60_000));
        }
    }
    if t.contains(':') {
        bail!(
            "time {text:?} has no zone: add Z for UTC ({t}Z) or an offset such as +01:00 ({t}+01:00)"
        );
    }
    bail!(
        "unparseable time {text:?}: expected RFC 3339 (2026-11-26T08:00:00Z, 2026-11-26T09:00:00+01:00) or unix seconds"
    )
}

/// Parses a duration such as `500ms`, `1s`, `5m` or `1h 30m`, in milliseconds.
///
/// # Examples
/// ```
/// use mend::text::timefmt::parse_duration_ms;
/// assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
/// assert_eq!(parse_duration_ms("5m").unwrap(), 300_000);
/// assert!(parse_duration_ms("soon").is_err());
/// ```
pub fn parse_duration_ms(text: &str) -> anyhow::Result<u64> {
    let d: Duration = humantime::parse_duration(text.trim()).map_err(|e| {
        anyhow::anyhow!("unparseable duration {text:?} ({e}): expected e.g. 500ms, 1s, 5m")
    })?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        bail!("duration {text:?} is finer than a millisecond");
    }
    u64::try_from(d.as_millis()).with_context(|| format!("duration {text:?} is too long"))
}

/// A duration in milliseconds the way users write it back (`1s`, `500ms`, `5m`).
///
/// # Examples
/// ```
/// assert_eq!(mend::text::timefmt::human_ms(60_000), "1m");
/// assert_eq!(mend::text::timefmt::human_ms(1_500), "1s 500ms");
/// ```
pub fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// Appends `ms` as RFC 3339 UTC with milliseconds (the `time` column of every output).
///
/// # Examples
/// ```
/// let mut row = Vec::new();
/// mend::text::timefmt::push_time(&mut row, 5_000);
/// assert_eq!(row, b"1970-01-01T00:00:05.000Z");
/// ```
#[inline]
pub fn push_time(buf: &mut Vec<u8>, ms: u64) {
    let mut t = [0u8; MAX_TIME_LEN];
    let n = format_ms(ms, &mut t);
    buf.extend_from_slice(&t[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_matches_humantime_for_many_days() {
        let mut buf = [0u8; MAX_TIME_LEN];
        for day in (0..200_000u64)
            .step_by(37)
            .chain([59, 60, 365, 11_016, 2_932_896])
        {
            let ms = day * 86_400_000 + 45_296_789;
            let n = format_ms(ms, &mut buf);
            let ours = std::str::from_utf8(&buf[..n]).unwrap().to_string();
            let theirs = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms))
                .to_string();
            assert_eq!(ours, theirs, "day {day}");
        }
    }

    #[test]
    fn the_cached_formatter_agrees_with_the_plain_one() {
        let mut f = TimeFormatter::default();
        let mut buf = [0u8; MAX_TIME_LEN];
        for ms in (0..400_000_000_000u64)
            .step_by(7_777_777)
            .chain([u64::MAX, 0, 5])
        {
            let mut got = Vec::new();
            f.push(&mut got, ms);
            let n = format_ms(ms, &mut buf);
            assert_eq!(got, &buf[..n], "{ms}");
        }
    }

    #[test]
    fn the_latest_time_takes_the_most_year_digits_and_fits() {
        let mut buf = [0u8; MAX_TIME_LEN];
        let n = format_ms(u64::MAX, &mut buf);
        assert_eq!(&buf[..n], b"584556019-04-03T14:25:51.615Z");
        assert_eq!(n, MAX_YEAR_DIGITS + AFTER_YEAR);
        assert!(n <= MAX_TIME_LEN);
        let mut f = TimeFormatter::default();
        let mut line = crate::text::numfmt::Line::new();
        f.push(&mut line, u64::MAX);
        assert_eq!(line.text().unwrap(), &buf[..n]);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let mut buf = [0u8; MAX_TIME_LEN];
        let n = format_ms(u64::MAX, &mut buf);
        assert!(n <= MAX_TIME_LEN);
        assert!(std::str::from_utf8(&buf[..n]).unwrap().ends_with('Z'));
    }

    #[test]
    fn bad_times_and_durations_are_errors() {
        for t in [
            "",
            "2026-13-01T00:00:00Z",
            "1.2.3",
            ".5",
            "99999999999999999999",
            "1969-12-31T00:00:00Z",
            // Finer than a millisecond: before, rounded down, so that --from took a reading
            // from before it.
            "2026-01-02T01:00:00.5001Z",
            "1767315600.5001",
        ] {
            assert!(parse_time(t).is_err(), "{t}");
        }
        assert_eq!(parse_time("1.500000").unwrap(), 1_500);
        assert_eq!(parse_time("1970-01-01T00:00:01.500000Z").unwrap(), 1_500);
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z").unwrap(),
            1_767_225_600_000
        );
        assert!(parse_duration_ms("1us").is_err());
        assert!(parse_duration_ms("").is_err());
        assert_eq!(parse_duration_ms("1h 30m").unwrap(), 5_400_000);
    }
}
