//! Value parsers: each option's text becomes a typed value (a `Celsius` range, a duration
//! in ms, a time) while clap reads the command line, and every complaint names the option
//! and the value.

use std::fmt;

use anyhow::{bail, Context};
use mend_core::Celsius;

use mend::text::timefmt::{parse_duration_ms, parse_time};

/// Why an option's value is unusable; `mend` prints it as its own errors (`mend: …`, exit
/// code 2), not in clap's usage format.
#[derive(Debug)]
pub struct ArgError(String);

impl From<anyhow::Error> for ArgError {
    fn from(e: anyhow::Error) -> Self {
        Self(format!("{e:#}"))
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// A parsed value and the text it was given as, for messages that quote the user.
#[derive(Clone, Debug, PartialEq)]
pub struct Given<T> {
    /// The value.
    pub value: T,
    /// The text on the command line.
    pub text: String,
}

/// A fallible function of an option's name (without `--`) and text.
type Parse<T> = fn(&str, &str) -> anyhow::Result<T>;

/// A value parser for the option `--flag`.
fn parser<T: 'static>(
    flag: &'static str,
    parse: Parse<T>,
) -> impl Fn(&str) -> Result<T, ArgError> + Clone + Send + Sync + 'static {
    move |text| parse(flag, text).map_err(ArgError::from)
}

/// A value parser for the option `--flag` that keeps the text beside the value.
fn given<T: 'static>(
    flag: &'static str,
    parse: Parse<T>,
) -> impl Fn(&str) -> Result<Given<T>, ArgError> + Clone + Send + Sync + 'static {
    move |text| {
        Ok(Given {
            value: parse(flag, text)?,
            text: text.to_string(),
        })
    }
}

/// `LO..HI` in °C for `--flag` (`--band`, `--physical`).
pub fn range_arg(
    flag: &'static str,
) -> impl Fn(&str) -> Result<Given<(Celsius, Celsius)>, ArgError> + Clone + Send + Sync + 'static {
    given(flag, parse_range)
}

/// A time for `--flag`: RFC 3339 with a zone, or unix seconds; in ms.
pub fn time_arg(
    flag: &'static str,
) -> impl Fn(&str) -> Result<u64, ArgError> + Clone + Send + Sync + 'static {
    parser(flag, time)
}

/// A time for `--flag`, with its text.
pub fn given_time_arg(
    flag: &'static str,
) -> impl Fn(&str) -> Result<Given<u64>, ArgError> + Clone + Send + Sync + 'static {
    given(flag, time)
}

/// A duration for `--flag` (`500ms`, `10s`, `2m`), in ms.
pub fn ms_arg(
    flag: &'static str,
) -> impl Fn(&str) -> Result<u64, ArgError> + Clone + Send + Sync + 'static {
    parser(flag, ms)
}

/// A duration longer than zero for `--flag`, in ms.
pub fn positive_ms_arg(
    flag: &'static str,
) -> impl Fn(&str) -> Result<u64, ArgError> + Clone + Send + Sync + 'static {
    parser(flag, positive_ms)
}

/// A worker's lease for `--lease`: at least 100 ms. A worker renews its leases between
/// batches; a lease of a few milliseconds runs out before a batch is written, and every
/// commit of the worker is fenced off while it spins without a word.
pub fn lease_arg() -> impl Fn(&str) -> Result<u64, ArgError> + Clone + Send + Sync + 'static {
    parser("lease", |flag, text| {
        let ms = ms(flag, text)?;
        if ms < 100 {
            bail!("--{flag} {text:?} is too short: a lease must last at least 100ms, or it runs out before a batch is written");
        }
        Ok(ms)
    })
}

/// A sampling period for `--period`: longer than zero, in ms, with its text.
pub fn period_arg() -> impl Fn(&str) -> Result<Given<u32>, ArgError> + Clone + Send + Sync + 'static
{
    given("period", |flag, text| {
        let ms = positive_ms(flag, text)?;
        u32::try_from(ms).with_context(|| format!("--{flag} {text:?} is too long"))
    })
}

/// A duration argument (`500ms`, `10s`, `2m`) in milliseconds, in clap's usage format.
pub fn duration_arg(text: &str) -> anyhow::Result<u64> {
    parse_duration_ms(text)
}

/// A Redis URL argument, checked before any work starts, in clap's usage format.
pub fn redis_url_arg(text: &str) -> anyhow::Result<String> {
    redis::Client::open(text)
        .with_context(|| "not a usable Redis URL (e.g. redis://127.0.0.1:6379)")?;
    Ok(text.to_string())
}

/// Parses `LO..HI` in °C for the option `--flag`; errors name the option.
fn parse_range(flag: &str, text: &str) -> anyhow::Result<(Celsius, Celsius)> {
    let Some((a, b)) = text.split_once("..") else {
        bail!("--{flag} {text:?}: expected LO..HI in °C, e.g. 50..55");
    };
    let num = |s: &str| -> anyhow::Result<Celsius> {
        let v: f64 = s
            .trim()
            .parse()
            .with_context(|| format!("--{flag} {text:?}: {s:?} is not a number"))?;
        if !v.is_finite() {
            bail!("--{flag} {text:?}: {s:?} is not finite");
        }
        Celsius::checked_from_num(v)
            .with_context(|| format!("--{flag} {text:?}: {s} is out of range"))
    };
    let (lo, hi) = (num(a)?, num(b)?);
    if lo > hi {
        bail!("--{flag} {text:?} is reversed: the low end is above the high end");
    }
    Ok((lo, hi))
}

fn time(flag: &str, text: &str) -> anyhow::Result<u64> {
    parse_time(text).with_context(|| format!("--{flag}"))
}

fn ms(flag: &str, text: &str) -> anyhow::Result<u64> {
    parse_duration_ms(text).with_context(|| format!("--{flag}"))
}

fn positive_ms(flag: &str, text: &str) -> anyhow::Result<u64> {
    let ms = ms(flag, text)?;
    if ms == 0 {
        bail!("--{flag} {text:?} must be longer than zero");
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_band_is_lo_dot_dot_hi_in_celsius() {
        let band = range_arg("band");
        let got = band("50..55.5").unwrap();
        assert_eq!(got.value, (Celsius::from_num(50), Celsius::from_num(55.5)));
        assert_eq!(got.text, "50..55.5");
        for (text, error) in [
            (
                "55..50",
                "--band \"55..50\" is reversed: the low end is above the high end",
            ),
            (
                "50-55",
                "--band \"50-55\": expected LO..HI in °C, e.g. 50..55",
            ),
            (
                "a..55",
                "--band \"a..55\": \"a\" is not a number: invalid float literal",
            ),
            ("inf..55", "--band \"inf..55\": \"inf\" is not finite"),
        ] {
            assert_eq!(band(text).unwrap_err().to_string(), error);
        }
    }

    #[test]
    fn range_errors_name_their_option() {
        let e = range_arg("physical")("125..-55").unwrap_err();
        assert!(e.to_string().starts_with("--physical "), "{e}");
    }

    #[test]
    fn durations_and_times_are_typed_and_errors_name_the_option() {
        assert_eq!(ms_arg("lateness")("30s").unwrap(), 30_000);
        assert!(ms_arg("lateness")("soon")
            .unwrap_err()
            .to_string()
            .starts_with("--lateness: unparseable duration \"soon\""));
        assert_eq!(
            positive_ms_arg("max-gap")("0s").unwrap_err().to_string(),
            "--max-gap \"0s\" must be longer than zero"
        );
        assert_eq!(period_arg()("500ms").unwrap().value, 500);
        assert!(period_arg()("60d")
            .unwrap_err()
            .to_string()
            .contains("is too long"));
        assert_eq!(time_arg("from")("10").unwrap(), 10_000);
        assert_eq!(lease_arg()("15s").unwrap(), 15_000);
        for short in ["0s", "3ms", "99ms"] {
            assert!(lease_arg()(short)
                .unwrap_err()
                .to_string()
                .contains("too short"));
        }
        assert!(time_arg("until")("yesterday")
            .unwrap_err()
            .to_string()
            .starts_with("--until: "));
    }
}
