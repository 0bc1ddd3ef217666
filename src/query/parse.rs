//! The one parser and validator of the list endpoint's parameters. It takes (key, value) pairs
//! exactly as they arrive in a query string, already percent-decoded, and reports every bad
//! parameter at once. The typed builder goes through the same function.

use super::cursor;
use super::filter::{valid_meta_key, Filters};
use super::order::Order;
use crate::error::{Error, FieldError, Result};
use crate::limits::*;
use crate::model::{SpanKind, Status};
use crate::schema::Money;
use crate::time::{ms_ceil, parse_instant, Timestamp};
use crate::validate::check_id;
use rust_decimal::Decimal;

/// The parameters the endpoint knows.
pub const KNOWN_PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "name",
    "status",
    "tags",
    "startDate",
    "endDate",
    "anyTags",
    "excludeTags",
    "include",
    "userId",
    "sessionId",
    "minDurationMs",
    "maxDurationMs",
    "minCost",
    "maxCost",
    "minTokens",
    "maxTokens",
    "spanName",
    "spanModel",
    "spanKind",
    "spanStatus",
    "orderBy",
];

/// The prefix of the `metadata.KEY` parameters (one per key, at most
/// `MAX_QUERY_METADATA_FILTERS`), which `KNOWN_PARAMS` does not list one by one.
pub const METADATA_PARAM_PREFIX: &str = "metadata.";

/// What a page carries besides its traces: the exact number of matches (`include=total`) and
/// the facet counts over them (`include=facets`). It is not part of a query's meaning, so a
/// cursor neither carries nor constrains it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Include {
    /// `data.total`: the exact number of traces matching every filter.
    pub total: bool,
    /// `data.facets`: status, names and tags over the matching set.
    pub facets: bool,
}

impl Include {
    /// The `include` parameter's values, in the order the API documents them.
    pub const VALUES: [&'static str; 2] = ["total", "facets"];

    /// Parses a comma-separated subset of [`Include::VALUES`]; items are trimmed and exact.
    fn parse(raw: &str) -> Option<Include> {
        let mut inc = Include::default();
        let mut any = false;
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "total" => inc.total = true,
                "facets" => inc.facets = true,
                _ => return None,
            }
            any = true;
        }
        any.then_some(inc)
    }
}

/// A validated list query: filters, page size and an optional cursor. The cursor's signature
/// is checked when the query runs against a store, since only the store holds the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryRequest {
    pub(crate) limit: u32,
    pub(crate) filters: Filters,
    /// The `orderBy` given, if any: with a cursor, an absent order means the cursor's.
    pub(crate) order: Option<Order>,
    pub(crate) cursor: Option<String>,
    pub(crate) include: Include,
}

impl QueryRequest {
    /// Parses query-string pairs (already percent-decoded). Every rule of the contract lives
    /// here: unknown or repeated parameters, ranges, formats. The error lists every bad field.
    pub fn from_params<K: AsRef<str>, V: AsRef<str>>(
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Result<QueryRequest> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut raw: [Option<String>; KNOWN_PARAMS.len()] = Default::default();
        let mut metadata: Vec<(String, String)> = Vec::new();
        for (count, (k, v)) in params.into_iter().enumerate() {
            let (k, v) = (k.as_ref(), v.as_ref());
            if count >= MAX_PARAMS {
                errors.push(FieldError::new(
                    "query",
                    format!("at most {MAX_PARAMS} parameters"),
                ));
                break;
            }
            let slot = KNOWN_PARAMS.iter().position(|p| *p == k);
            if slot.is_none() && !k.starts_with(METADATA_PARAM_PREFIX) {
                let shown: String = k.chars().take(64).collect();
                errors.push(FieldError::new(
                    shown,
                    format!(
                        "unknown parameter; known parameters are {}, and {}KEY",
                        KNOWN_PARAMS.join(", "),
                        METADATA_PARAM_PREFIX
                    ),
                ));
                continue;
            }
            if seen.iter().any(|s| s == k) {
                if !errors.iter().any(|e| e.field() == k) {
                    errors.push(FieldError::new(k, "given more than once"));
                }
                continue;
            }
            seen.push(k.to_string());
            if v.len() > MAX_PARAM_VALUE_BYTES {
                errors.push(FieldError::new(
                    k,
                    format!("at most {MAX_PARAM_VALUE_BYTES} bytes"),
                ));
                continue;
            }
            match slot {
                Some(slot) => raw[slot] = Some(v.to_string()),
                None => metadata.push((k.to_string(), v.to_string())),
            }
        }
        let [limit, cursor, name, status, tags, start, end, any_tags, exclude_tags, include, user, session, min_dur, max_dur, min_cost, max_cost, min_tok, max_tok, span_name, span_model, span_kind, span_status, order_by] =
            raw;
        let mut bad = |field: &str, msg: String| {
            if !errors.iter().any(|e| e.field() == field) {
                errors.push(FieldError::new(field, msg));
            }
        };

        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(s) => match parse_limit(&s) {
                Some(n) => n,
                None => {
                    bad(
                        "limit",
                        format!("must be an integer from {MIN_LIMIT} to {MAX_LIMIT}"),
                    );
                    DEFAULT_LIMIT
                }
            },
        };
        let mut filters = Filters::default();
        if let Some(n) = name {
            if n.chars().count() > MAX_QUERY_NAME_CHARS {
                bad(
                    "name",
                    format!("must be at most {MAX_QUERY_NAME_CHARS} characters"),
                );
            } else {
                filters.name = Filters::normal_name(&n);
            }
        }
        if let Some(s) = status {
            match Status::parse(&s) {
                Some(st) => filters.status = Some(st.code()),
                None => bad("status", "must be OK or ERROR".into()),
            }
        }
        for (field, raw, slot) in [
            ("tags", tags, &mut filters.tags),
            ("anyTags", any_tags, &mut filters.any_tags),
            ("excludeTags", exclude_tags, &mut filters.exclude_tags),
        ] {
            if let Some(t) = raw {
                match tag_list(&t) {
                    Ok(list) => *slot = list,
                    Err(m) => bad(field, m),
                }
            }
        }
        for (field, raw, slot) in [
            ("userId", user, &mut filters.user_id),
            ("sessionId", session, &mut filters.session_id),
        ] {
            match raw.as_deref() {
                None | Some("") => {}
                Some(v) => match check_id(v, MAX_USER_ID_BYTES) {
                    Ok(()) => *slot = Some(v.to_string()),
                    Err(m) => bad(field, m),
                },
            }
        }
        const COUNT: &str = "a non-negative integer (decimal digits only)";
        const COST: &str = "a decimal >= 0 (digits with an optional fraction, no sign or exponent)";
        let whole =
            |(lo, hi): (Option<u64>, Option<u64>)| (lo.unwrap_or(0), hi.unwrap_or(u64::MAX));
        filters.duration_ms = range(
            ("minDurationMs", min_dur),
            ("maxDurationMs", max_dur),
            read_count,
            COUNT,
            &mut bad,
        )
        .map(whole);
        filters.tokens = range(
            ("minTokens", min_tok),
            ("maxTokens", max_tok),
            read_count,
            COUNT,
            &mut bad,
        )
        .map(whole);
        filters.cost = range(
            ("minCost", min_cost),
            ("maxCost", max_cost),
            read_cost,
            COST,
            &mut bad,
        )
        .map(|(lo, hi)| (lo.map(Money::from_decimal), hi.map(Money::from_decimal)));
        // Span conditions: one span of the trace meets every one given.
        if let Some(n) = span_name {
            if n.chars().count() > MAX_QUERY_SPAN_NAME_CHARS {
                bad(
                    "spanName",
                    format!("must be at most {MAX_QUERY_SPAN_NAME_CHARS} characters"),
                );
            } else {
                filters.spans.name = Filters::normal_name(&n);
            }
        }
        filters.spans.model = span_model.filter(|m| !m.is_empty());
        if let Some(k) = span_kind {
            match SpanKind::parse(&k) {
                Some(kind) => filters.spans.kind = Some(kind.code()),
                None => {
                    let all: Vec<&str> = SpanKind::ALL.iter().map(|k| k.as_str()).collect();
                    bad("spanKind", format!("must be one of {}", all.join(", ")));
                }
            }
        }
        if let Some(s) = span_status {
            match Status::parse(&s) {
                Some(st) => filters.spans.status = Some(st.code()),
                None => bad("spanStatus", "must be OK or ERROR".into()),
            }
        }
        let mut given_keys = 0;
        for (param, value) in metadata {
            let key = &param[METADATA_PARAM_PREFIX.len()..];
            given_keys += 1;
            if !valid_meta_key(key) {
                bad(
                    &param,
                    format!(
                        "the key must be 1 to {MAX_METADATA_KEY_CHARS} characters of A-Z, a-z, \
                         0-9, '_', '.' and '-'"
                    ),
                );
            } else if !value.is_empty() {
                filters.metadata.push((key.to_string(), value));
            }
        }
        if given_keys > MAX_QUERY_METADATA_FILTERS {
            bad(
                "metadata",
                format!("at most {MAX_QUERY_METADATA_FILTERS} metadata.KEY parameters"),
            );
        }
        filters.metadata.sort();
        let include = match include {
            None => Include::default(),
            Some(s) => Include::parse(&s).unwrap_or_else(|| {
                bad(
                    "include",
                    format!(
                        "must be a comma-separated list of {}",
                        Include::VALUES.join(", ")
                    ),
                );
                Include::default()
            }),
        };
        let order = order_by.and_then(|s| {
            let o = Order::parse(&s);
            if o.is_none() {
                let values: Vec<&str> = Order::ALL.iter().map(|o| o.as_str()).collect();
                bad("orderBy", format!("must be one of {}", values.join(", ")));
            }
            o
        });
        let start_dt = start.as_deref().and_then(|s| {
            let dt = parse_instant(s);
            if dt.is_none() {
                bad(
                    "startDate",
                    "must be an RFC 3339 instant or YYYY-MM-DD".into(),
                );
            }
            dt
        });
        let end_dt = end.as_deref().and_then(|s| {
            let dt = parse_instant(s);
            if dt.is_none() {
                bad(
                    "endDate",
                    "must be an RFC 3339 instant or YYYY-MM-DD".into(),
                );
            }
            dt
        });
        if let (Some(s), Some(e)) = (start_dt, end_dt) {
            if e < s {
                bad("endDate", "must not be before startDate".into());
            }
        }
        filters.start_ms = start_dt.map(ms_ceil);
        filters.end_ms = end_dt.map(ms_ceil);
        if let Some(c) = &cursor {
            if let Err(m) = cursor::check_shape(c) {
                bad("cursor", m);
            }
        }
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        Ok(QueryRequest {
            limit,
            filters,
            order,
            cursor,
            include,
        })
    }

    /// A builder for the same query without strings.
    pub fn builder() -> QueryBuilder {
        QueryBuilder::default()
    }

    /// Page size.
    pub fn limit(&self) -> u32 {
        self.limit
    }
    /// The cursor token, if this request continues a query.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
    /// What the page carries besides its traces.
    pub fn include(&self) -> Include {
        self.include
    }
    /// The order the query walks in (`orderBy`; newest first when not given).
    pub fn order(&self) -> Order {
        self.order.unwrap_or_default()
    }
}

impl Default for QueryRequest {
    fn default() -> Self {
        QueryRequest {
            limit: DEFAULT_LIMIT,
            filters: Filters::default(),
            order: None,
            cursor: None,
            include: Include::default(),
        }
    }
}

/// An inclusive range from two optional bounds, each read by `read` (None: malformed, reported
/// with `what`); an empty bound is malformed, and max < min is an error on the max. None when
/// neither bound is given or one is bad.
fn range<T: PartialOrd + Copy>(
    (lo_field, lo_raw): (&str, Option<String>),
    (hi_field, hi_raw): (&str, Option<String>),
    read: impl Fn(&str) -> Option<T>,
    what: &str,
    bad: &mut impl FnMut(&str, String),
) -> Option<(Option<T>, Option<T>)> {
    let mut ok = true;
    let mut bound = |field: &str, raw: Option<String>| {
        let raw = raw?;
        let v = read(&raw);
        if v.is_none() {
            bad(field, format!("must be {what}"));
            ok = false;
        }
        v
    };
    let (lo, hi) = (bound(lo_field, lo_raw), bound(hi_field, hi_raw));
    if !ok {
        return None;
    }
    if let (Some(a), Some(b)) = (lo, hi) {
        if b < a {
            bad(hi_field, format!("must not be less than {lo_field}"));
            return None;
        }
    }
    (lo.is_some() || hi.is_some()).then_some((lo, hi))
}

/// Decimal digits only (leading zeros allowed; no sign, exponent or fraction).
fn read_count(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// Digits with an optional fraction (no sign or exponent), as an exact decimal.
fn read_cost(raw: &str) -> Option<Decimal> {
    let (int, frac) = raw.split_once('.').unwrap_or((raw, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(int) && digits(frac)) {
        return None;
    }
    raw.parse().ok()
}

/// A comma-separated tag list (`tags`, `anyTags`, `excludeTags`) in its normal form, within the
/// query's limits.
fn tag_list(raw: &str) -> std::result::Result<Vec<String>, String> {
    let list = Filters::normal_tags(raw);
    if list.len() > MAX_QUERY_TAGS {
        Err(format!("at most {MAX_QUERY_TAGS} tags"))
    } else if list.iter().any(|t| t.chars().count() > MAX_TAG_CHARS) {
        Err(format!(
            "each tag must be at most {MAX_TAG_CHARS} characters"
        ))
    } else {
        Ok(list)
    }
}

fn parse_limit(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = s.parse().ok()?;
    (MIN_LIMIT..=MAX_LIMIT).contains(&n).then_some(n)
}

/// Builds a [`QueryRequest`] from typed values; `build` applies exactly the rules of
/// [`QueryRequest::from_params`].
#[derive(Clone, Debug, Default)]
pub struct QueryBuilder {
    params: Vec<(String, String)>,
}

impl QueryBuilder {
    fn set(mut self, k: &'static str, v: String) -> Self {
        self.params.retain(|(p, _)| p != k);
        self.params.push((k.to_string(), v));
        self
    }
    /// Page size, 1..=100.
    pub fn limit(self, n: u32) -> Self {
        self.set("limit", n.to_string())
    }
    /// Case-insensitive substring of the trace name.
    pub fn name(self, s: &str) -> Self {
        self.set("name", s.to_string())
    }
    /// OK or ERROR.
    pub fn status(self, s: Status) -> Self {
        self.set("status", s.as_str().to_string())
    }
    /// The trace must carry every one of these tags.
    pub fn tags<I: IntoIterator<Item = S>, S: AsRef<str>>(self, tags: I) -> Self {
        let v: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self.set("tags", v.join(","))
    }
    /// The trace must carry at least one of these tags.
    pub fn any_tags<I: IntoIterator<Item = S>, S: AsRef<str>>(self, tags: I) -> Self {
        let v: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self.set("anyTags", v.join(","))
    }
    /// The trace must carry none of these tags.
    pub fn exclude_tags<I: IntoIterator<Item = S>, S: AsRef<str>>(self, tags: I) -> Self {
        let v: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_string()).collect();
        self.set("excludeTags", v.join(","))
    }
    /// Exact `userId`.
    pub fn user_id(self, id: &str) -> Self {
        self.set("userId", id.to_string())
    }
    /// Exact `sessionId`.
    pub fn session_id(self, id: &str) -> Self {
        self.set("sessionId", id.to_string())
    }
    /// The trace's top-level metadata `key` equals `value` (a string as is; a number, boolean
    /// or null as its canonical JSON text). Several keys must all hold.
    pub fn metadata(mut self, key: &str, value: &str) -> Self {
        let param = format!("{METADATA_PARAM_PREFIX}{key}");
        self.params.retain(|(p, _)| *p != param);
        self.params.push((param, value.to_string()));
        self
    }
    /// Span condition: a case-insensitive substring of a span's name. Span conditions hold
    /// together on one span of the trace.
    pub fn span_name(self, s: &str) -> Self {
        self.set("spanName", s.to_string())
    }
    /// Span condition: a span's exact model.
    pub fn span_model(self, s: &str) -> Self {
        self.set("spanModel", s.to_string())
    }
    /// Span condition: a span's kind.
    pub fn span_kind(self, k: SpanKind) -> Self {
        self.set("spanKind", k.as_str().to_string())
    }
    /// Span condition: a span's status.
    pub fn span_status(self, s: Status) -> Self {
        self.set("spanStatus", s.as_str().to_string())
    }
    /// Inclusive bounds on `durationMs` (a running trace never matches).
    pub fn duration_ms(self, min: Option<u64>, max: Option<u64>) -> Self {
        self.bounds(("minDurationMs", "maxDurationMs"), min, max)
    }
    /// Inclusive bounds on `totalCost`, compared exactly.
    pub fn cost(self, min: Option<Decimal>, max: Option<Decimal>) -> Self {
        self.bounds(("minCost", "maxCost"), min, max)
    }
    /// Inclusive bounds on `totalTokens`.
    pub fn tokens(self, min: Option<u64>, max: Option<u64>) -> Self {
        self.bounds(("minTokens", "maxTokens"), min, max)
    }
    fn bounds<T: std::fmt::Display>(
        mut self,
        (lo, hi): (&'static str, &'static str),
        min: Option<T>,
        max: Option<T>,
    ) -> Self {
        self.params.retain(|(p, _)| p != lo && p != hi);
        for (k, v) in [(lo, min), (hi, max)] {
            if let Some(v) = v {
                self = self.set(k, v.to_string());
            }
        }
        self
    }
    /// Also count the matches (`data.total`) and/or their facets (`data.facets`).
    pub fn include(self, include: Include) -> Self {
        let mut v = Vec::new();
        if include.total {
            v.push("total");
        }
        if include.facets {
            v.push("facets");
        }
        if v.is_empty() {
            // Nothing to include is the default; an empty `include` parameter is an error.
            let mut b = self;
            b.params.retain(|(p, _)| p != "include");
            return b;
        }
        self.set("include", v.join(","))
    }
    /// The sort order (`orderBy`).
    pub fn order_by(self, order: Order) -> Self {
        self.set("orderBy", order.as_str().to_string())
    }
    /// Keep traces with `startTime >= t`.
    pub fn start_date(self, t: Timestamp) -> Self {
        self.set("startDate", t.to_string())
    }
    /// Keep traces with `startTime < t`.
    pub fn end_date(self, t: Timestamp) -> Self {
        self.set("endDate", t.to_string())
    }
    /// Continue the query a previous page's `next_cursor` came from.
    pub fn cursor(self, c: &str) -> Self {
        self.set("cursor", c.to_string())
    }
    /// Validates and builds.
    pub fn build(self) -> Result<QueryRequest> {
        QueryRequest::from_params(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(params: &[(&str, &str)]) -> Vec<String> {
        match QueryRequest::from_params(params.iter().copied()) {
            Ok(_) => vec![],
            Err(e) => e.details().iter().map(|d| d.field().to_string()).collect(),
        }
    }

    #[test]
    fn limits() {
        for bad in ["0", "101", "-1", "abc", "5.0", "", "+5", " 5", "1000"] {
            assert_eq!(fields(&[("limit", bad)]), vec!["limit"], "{bad:?}");
        }
        for good in ["1", "100", "050"] {
            assert!(fields(&[("limit", good)]).is_empty(), "{good:?}");
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let f = fields(&[
            ("limit", "0"),
            ("status", "meh"),
            ("start_date", "x"),
            ("endDate", "y"),
        ]);
        assert_eq!(f, vec!["start_date", "limit", "status", "endDate"]);
        assert_eq!(
            fields(&[("status", "OK"), ("status", "OK")]),
            vec!["status"]
        );
    }

    #[test]
    fn normalizes() {
        let q = QueryRequest::from_params([
            ("tags", " b, a,,a ,"),
            ("name", "Support"),
            ("status", "error"),
        ])
        .unwrap();
        assert_eq!(q.filters.tags, vec!["a", "b"]);
        assert_eq!(q.filters.name.as_deref(), Some("support"));
        assert_eq!(q.filters.status, Some(Status::Error.code()));
        let q = QueryRequest::from_params([("name", "")]).unwrap();
        assert_eq!(q.filters, Filters::default());
    }

    #[test]
    fn dates() {
        assert!(fields(&[("startDate", "2026-03-01"), ("endDate", "2026-03-01")]).is_empty());
        assert_eq!(
            fields(&[("startDate", "2026-03-02"), ("endDate", "2026-03-01")]),
            vec!["endDate"]
        );
        let q = QueryRequest::from_params([("startDate", "2026-03-01T00:00:00+01:00")]).unwrap();
        assert_eq!(
            q.filters.start_ms,
            Some(
                Timestamp::parse("2026-02-28T23:00:00Z")
                    .unwrap()
                    .as_millis()
            )
        );
    }

    #[test]
    fn span_conditions() {
        let q = QueryRequest::from_params([
            ("spanName", "Chat"),
            ("spanModel", "GPT-4o"),
            ("spanKind", "llm"),
            ("spanStatus", "error"),
        ])
        .unwrap();
        assert_eq!(q.filters.spans.name.as_deref(), Some("chat"));
        assert_eq!(q.filters.spans.model.as_deref(), Some("GPT-4o"));
        assert_eq!(q.filters.spans.kind, Some(SpanKind::Llm.code()));
        assert_eq!(q.filters.spans.status, Some(Status::Error.code()));
        let b = QueryRequest::builder()
            .span_name("Chat")
            .span_model("GPT-4o")
            .span_kind(SpanKind::Llm)
            .span_status(Status::Error)
            .build()
            .unwrap();
        assert_eq!(q, b);
        let q = QueryRequest::from_params([("spanName", ""), ("spanModel", "")]).unwrap();
        assert_eq!(q.filters, Filters::default());
        assert_eq!(
            fields(&[
                ("spanKind", ""),
                ("spanStatus", ""),
                ("spanName", &"x".repeat(257))
            ]),
            vec!["spanName", "spanKind", "spanStatus"]
        );
        let at = |p: &str| KNOWN_PARAMS.iter().position(|k| *k == p).unwrap();
        assert_eq!(
            [
                at("spanName"),
                at("spanModel"),
                at("spanKind"),
                at("spanStatus")
            ],
            [
                at("maxTokens") + 1,
                at("maxTokens") + 2,
                at("maxTokens") + 3,
                at("maxTokens") + 4
            ]
        );
    }

    #[test]
    fn builder_equals_params() {
        let a = QueryRequest::builder()
            .status(Status::Error)
            .tags(["v2", "production"])
            .limit(20)
            .build()
            .unwrap();
        let b = QueryRequest::from_params([
            ("tags", "production,v2"),
            ("status", "ERROR"),
            ("limit", "20"),
        ])
        .unwrap();
        assert_eq!(a, b);
    }
}
