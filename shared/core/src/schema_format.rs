//! JSON Schema pieces for values the YAML types hold as text and parse at
//! load (durations, times) and for maps with closed keys. A leaf: the types'
//! `#[schemars(...)]` attributes name these, and `crate::schema` builds the
//! whole schemas above every type.

use std::borrow::Cow;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// The units `humantime::parse_duration` reads (case matters: `M` is months, `m` minutes).
const DURATION_UNITS: &[&str] = &[
    "nanos", "nsec", "ns", "usec", "us", "µs", "millis", "msec", "ms", "seconds", "second", "secs", "sec", "s",
    "minutes", "minute", "mins", "min", "m", "hours", "hour", "hrs", "hr", "h", "days", "day", "d", "weeks", "week",
    "wks", "wk", "w", "months", "month", "M", "years", "year", "yrs", "yr", "y",
];

/// A duration as `humantime::parse_duration` reads it (the registry's
/// `max_ttl`): spans of a number, an optional fraction and a unit, e.g.
/// `30m`, `4h`, `1h 30m`, `1.5days`. Used by `#[schemars(schema_with)]` on a
/// field that holds the text and is parsed at load.
pub(crate) fn duration(_: &mut SchemaGenerator) -> Schema {
    // a number's digits may hold spaces, and a unit needs no space before the next span: as humantime reads them
    let span = format!(r"[0-9][0-9\s]*(?:\.[0-9\s]*[0-9][0-9\s]*)?(?:{})\s*", DURATION_UNITS.join("|"));
    json_schema!({
        "type": "string",
        "pattern": format!(r"^\s*(?:{span})+$"),
        "examples": ["30m", "4h", "1h 30m", "2days"]
    })
}

/// A time as chrono reads it (RFC 3339, e.g. `2027-01-01T00:00:00Z`; a
/// space for the `T` and an offset without its colon are read too), or
/// nothing. No `format: date-time`: validators read that as strict RFC 3339
/// and would refuse spellings the parser takes.
pub(crate) fn timestamp(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "examples": ["2027-01-01T00:00:00Z"]
    })
}

/// The keys of a map keyed by an enum of unit variants: their names as a
/// string `enum`, which schemars turns into the map's `properties` with no
/// others allowed. (The enum's own schema, a `oneOf` of described `const`s,
/// would leave the keys open, and serde refuses any other key.)
pub(crate) struct Keys<T>(PhantomData<T>);

impl<T: JsonSchema> JsonSchema for Keys<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Keys_of_{}", T::schema_name()).into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let of = T::json_schema(generator);
        let names: Vec<serde_json::Value> = of
            .get("oneOf")
            .and_then(serde_json::Value::as_array)
            .map(|variants| variants.iter().filter_map(|v| v.get("const").cloned()).collect())
            .unwrap_or_default();
        assert!(!names.is_empty(), "Keys<{}> is for enums of unit variants", T::schema_name());
        json_schema!({ "type": "string", "enum": names })
    }
}
