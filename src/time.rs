//! Millisecond timestamps. Everything stored is a UTC millisecond count; everything rendered is
//! RFC 3339 with exactly three fraction digits.

use crate::error::{Error, Result};
use crate::limits::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use std::fmt;

/// A UTC instant at millisecond precision, between 1970-01-01 and 9999-12-31.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Earliest representable instant.
    pub const MIN: Timestamp = Timestamp(MIN_TIMESTAMP_MS);
    /// Latest representable instant.
    pub const MAX: Timestamp = Timestamp(MAX_TIMESTAMP_MS);

    /// From milliseconds since the Unix epoch; an error outside `MIN..=MAX`.
    pub fn from_millis(ms: i64) -> Result<Self> {
        if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
            return Err(Error::field(
                "timestamp",
                "must be between 1970-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z",
            ));
        }
        Ok(Timestamp(ms))
    }

    pub(crate) fn from_millis_unchecked(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// The current time, truncated to the millisecond.
    pub fn now() -> Self {
        Timestamp(
            Utc::now()
                .timestamp_millis()
                .clamp(MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS),
        )
    }

    /// From a chrono instant; sub-millisecond precision is truncated.
    pub fn from_datetime(dt: DateTime<Utc>) -> Result<Self> {
        Self::from_millis(dt.timestamp_millis())
    }

    /// As a chrono instant.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Parses an RFC 3339 instant (`Z` or an offset, optional fraction) or a bare `YYYY-MM-DD`
    /// (midnight UTC). Sub-millisecond digits are truncated.
    pub fn parse(s: &str) -> Result<Self> {
        let dt = parse_instant(s).ok_or_else(|| {
            Error::field(
                "timestamp",
                "expected an RFC 3339 instant such as 2026-03-14T10:00:00.000Z",
            )
        })?;
        Self::from_datetime(dt)
    }
}

/// Parses an RFC 3339 instant or a bare date, keeping full precision.
pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if s.len() == 10 {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    if s.len() > 64 {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Milliseconds since the epoch, rounded up: `t <= ms_ceil(x)` ⇔ `t >= x` for integer `t`.
pub(crate) fn ms_ceil(dt: DateTime<Utc>) -> i64 {
    let ms = dt.timestamp_millis();
    if !dt.timestamp_subsec_nanos().is_multiple_of(1_000_000) {
        ms + 1
    } else {
        ms
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_three_fraction_digits() {
        let t = Timestamp::parse("2026-03-14T10:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-03-14T10:00:00.000Z");
        let t = Timestamp::parse("2026-03-14T12:00:02.5009+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-14T10:00:02.500Z");
        assert_eq!(
            Timestamp::parse("2026-03-01").unwrap().to_string(),
            "2026-03-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        for s in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-03-14T10:00:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(Timestamp::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn ceil_rounds_sub_millisecond_up() {
        let dt = parse_instant("2026-03-14T10:00:00.0005Z").unwrap();
        assert_eq!(ms_ceil(dt), dt.timestamp_millis() + 1);
        let dt = parse_instant("2026-03-14T10:00:00.001Z").unwrap();
        assert_eq!(ms_ceil(dt), dt.timestamp_millis());
    }
}
