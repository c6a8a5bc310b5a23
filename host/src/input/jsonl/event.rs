//! One line of the prototype's JSONL, parsed strictly: a serde visitor that keeps every
//! field optional and every scalar's type, so that each fault gets its own reason.

use mend_core::Celsius;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::input::reason::LineReason;
use crate::text::timefmt::{LAST_TIME, MAX_TIME_MS};

/// A JSON scalar as found, so that a wrong type can be named precisely.
enum Scalar<'a> {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(std::borrow::Cow<'a, str>),
    Bool(bool),
    Null,
    Compound,
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Unsigned(_) | Scalar::Signed(_) => "an integer",
            Scalar::Float(_) => "a float",
            Scalar::Str(_) => "a string",
            Scalar::Bool(_) => "a boolean",
            Scalar::Null => "null",
            Scalar::Compound => "an array or object",
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Signed(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// One prototype event with every field optional, so that a missing field is reported as
/// such rather than as a parse error. A field given as `null` is present (`Scalar::Null`),
/// so that it is reported as a wrong type, not as missing.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    timestamp: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    event_type: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    temperature: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    status: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    synthetic: Option<Scalar<'a>>,
}

/// A field that is there, whatever its value (`null` included).
fn present<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Scalar<'a>>, D::Error> {
    Scalar::deserialize(d).map(Some)
}

/// Why a JSONL line gave no reading.
pub(super) struct LineError {
    pub(super) reason: LineReason,
    pub(super) detail: String,
}

pub(super) fn line_err(reason: LineReason, detail: impl Into<String>) -> LineError {
    LineError {
        reason,
        detail: detail.into(),
    }
}

/// The lowest and highest temperature a JSONL event may carry, in °C.
pub const JSONL_RANGE: (f64, f64) = (-273.15, 2000.0);

/// Parses one prototype event into `(timestamp_ms, celsius)`.
pub(super) fn parse_event(line: &[u8]) -> Result<(u64, Celsius), LineError> {
    let text = std::str::from_utf8(line)
        .map_err(|e| line_err(LineReason::NotUtf8, format!("line is not UTF-8 text ({e})")))?;
    let first = text.trim_start().as_bytes().first().copied();
    if first != Some(b'{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => line_err(LineReason::NotAnObject, "line is JSON but not an object"),
            Err(e) => malformed(text, &e),
        });
    }
    let ev: Event = serde_json::from_str(text).map_err(|e| malformed(text, &e))?;
    // Lines without an event type are temperature readings; other events are set aside.
    // Names are matched whatever their case: `temperature_sensor` is no other event, and
    // its reading is no less measured.
    match ev.event_type {
        None => {}
        Some(Scalar::Str(s)) if s.eq_ignore_ascii_case("TEMPERATURE_SENSOR") => {}
        Some(Scalar::Str(s)) => {
            return Err(line_err(
                LineReason::OtherEvent,
                format!("event_type {s:?} is not TEMPERATURE_SENSOR: not a temperature reading"),
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("event_type is {}; expected a string", other.kind()),
            ))
        }
    }
    let ts = match ev.timestamp {
        None => {
            return Err(line_err(
                LineReason::MissingField,
                "missing field \"timestamp\"",
            ))
        }
        Some(Scalar::Unsigned(t)) => t,
        Some(Scalar::Signed(t)) => {
            return Err(line_err(
                LineReason::BadTimestamp,
                format!("timestamp {t} is negative"),
            ))
        }
        Some(Scalar::Float(t)) => {
            return Err(line_err(
                LineReason::BadTimestamp,
                format!("timestamp {t} is a float; expected whole unix seconds"),
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("timestamp is {}; expected whole unix seconds", other.kind()),
            ))
        }
    };
    // Every time a row shows is RFC 3339, whose years end at 9999.
    let ts_ms = ts
        .checked_mul(1_000)
        .filter(|&ms| ms <= MAX_TIME_MS)
        .ok_or_else(|| {
            line_err(
                LineReason::BadTimestamp,
                format!("timestamp {ts} is after {LAST_TIME}, the last time RFC 3339 can write"),
            )
        })?;
    let t = match ev.temperature {
        None => {
            return Err(line_err(
                LineReason::MissingField,
                "missing field \"temperature\"",
            ))
        }
        Some(Scalar::Unsigned(v)) => v as f64,
        Some(Scalar::Signed(v)) => v as f64,
        Some(Scalar::Float(v)) => v,
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("temperature is {}; expected a number", other.kind()),
            ))
        }
    };
    if !t.is_finite() {
        return Err(line_err(
            LineReason::NotFinite,
            format!("temperature {t} is not finite"),
        ));
    }
    if t < JSONL_RANGE.0 || t > JSONL_RANGE.1 {
        return Err(line_err(
            LineReason::OutOfRange,
            format!("temperature {t} °C is outside -273.15…2000 °C"),
        ));
    }
    match ev.status {
        None => {}
        Some(Scalar::Str(s))
            if ["normal", "low", "high", "error"]
                .iter()
                .any(|k| s.eq_ignore_ascii_case(k)) => {}
        Some(Scalar::Str(s)) => {
            return Err(line_err(
                LineReason::UnknownStatus,
                format!("status {s:?} is not normal, low, high or error"),
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("status is {}; expected a string", other.kind()),
            ))
        }
    }
    match ev.synthetic {
        None | Some(Scalar::Bool(false)) | Some(Scalar::Null) => {}
        Some(Scalar::Bool(true)) => {
            return Err(line_err(
                LineReason::SyntheticInput,
                "synthetic line written by the prototype; mend recomputes fills",
            ))
        }
        Some(other) => {
            return Err(line_err(
                LineReason::WrongType,
                format!("synthetic is {}; expected a boolean", other.kind()),
            ))
        }
    }
    // Rounded to the nearest 1/256 °C, ties to even; exact for any value a real sensor
    // reports (1/16, 1/8 or 0.5 °C steps).
    let c = Celsius::checked_from_num(t).ok_or_else(|| {
        line_err(
            LineReason::OutOfRange,
            format!("temperature {t} is not representable"),
        )
    })?;
    Ok((ts_ms, c))
}

fn malformed(text: &str, e: &serde_json::Error) -> LineError {
    // Python's json module writes NaN and Infinity, which are not JSON; a number beyond
    // the largest float (1e309) is infinite too, and serde_json says only this about it.
    let lower = text.to_ascii_lowercase();
    if e.to_string().starts_with("number out of range") {
        line_err(
            LineReason::NotFinite,
            format!("a number is too large to be finite ({e})"),
        )
    } else if lower.contains("nan") || lower.contains("infinity") {
        line_err(
            LineReason::NotFinite,
            format!("NaN or Infinity is not a number ({e})"),
        )
    } else if e.is_data() {
        line_err(LineReason::WrongType, format!("{e}"))
    } else {
        line_err(LineReason::MalformedJson, format!("malformed JSON ({e})"))
    }
}
