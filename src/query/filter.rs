//! What a filter means: the one home of every predicate of a list query.
//!
//! For each predicate this module holds
//! - its normalized form ([`Filters`], built by the parser, carried by cursors and compared
//!   after normalization);
//! - its resolution to index terms in one snapshot ([`Filters::resolve`], used by the planner);
//! - its test against a stored row header ([`Resolved::matches_header`], used by the scan
//!   executor) and against a whole trace whose strings are at hand ([`Filters::matches_trace`],
//!   used for pending traces).
//!
//! Adding a filter means a field here with those three parts, a row in the parser's table, and,
//! when it needs a new index, a table in `schema` (ARCHITECTURE.md, "How to add a filter").

use crate::cache::ProjectView;
use crate::error::Result;
use crate::limits::{MAX_METADATA_KEY_CHARS, MAX_METADATA_VALUES_PER_KEY};
use crate::model::{SpanKind, Status};
use crate::query::order::{SortField, SortValue};
use crate::query::ranges::range_input;
use crate::schema::{BodyFacts, Money, SpanRecord, TermKind, TraceBody, TraceHeader};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A query's filters, normalized: the name lowercased, each tag list distinct and sorted, the
/// dates as millisecond bounds (`start_ms` inclusive, `end_ms` exclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Filters {
    pub status: Option<u8>,
    pub name: Option<String>,
    /// The trace carries every one (`tags`).
    pub tags: Vec<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// The trace carries at least one (`anyTags`); empty means no filter.
    pub any_tags: Vec<String>,
    /// The trace carries none (`excludeTags`).
    pub exclude_tags: Vec<String>,
    /// Exact `userId`.
    pub user_id: Option<String>,
    /// Exact `sessionId`.
    pub session_id: Option<String>,
    /// `metadata.KEY=VALUE` pairs, sorted by key (each key once); all must hold.
    pub metadata: Vec<(String, String)>,
    /// Inclusive `durationMs` bounds; a running trace never matches.
    pub duration_ms: Option<(u64, u64)>,
    /// Inclusive `totalCost` bounds, normalized exact decimals (None: unbounded on that side).
    pub cost: Option<(Option<Money>, Option<Money>)>,
    /// Inclusive `totalTokens` bounds.
    pub tokens: Option<(u64, u64)>,
    /// The span conditions: one span of the trace meets every one given.
    pub spans: SpanConds,
}

/// The span conditions of a query, normalized (`spanName` lowercased, `spanKind` and
/// `spanStatus` as codes). A trace matches when at least one of its spans meets every
/// condition given: the same span, not one span per condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SpanConds {
    /// Case-insensitive substring of the span's name (lowercase here).
    pub name: Option<String>,
    /// Exact span model.
    pub model: Option<String>,
    /// `SpanKind::code`.
    pub kind: Option<u8>,
    /// `Status::code`.
    pub status: Option<u8>,
}

impl SpanConds {
    /// How many span conditions are given.
    pub(crate) fn count(&self) -> usize {
        usize::from(self.name.is_some())
            + usize::from(self.model.is_some())
            + usize::from(self.kind.is_some())
            + usize::from(self.status.is_some())
    }

    /// True when no span condition is given.
    pub(crate) fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// True when this one span meets every condition.
    pub(crate) fn matches(&self, s: &SpanRecord) -> bool {
        self.name.as_deref().is_none_or(|needle| {
            s.name
                .as_deref()
                .is_some_and(|name| contains_ci(name, needle))
        }) && self
            .model
            .as_ref()
            .is_none_or(|m| s.model.as_ref() == Some(m))
            && self.kind.is_none_or(|k| k == s.kind)
            && self.status.is_none_or(|st| st == s.status)
    }

    /// True when no condition is given, or some span of the trace meets all of them.
    pub(crate) fn any_matches<'a>(&self, spans: impl IntoIterator<Item = &'a SpanRecord>) -> bool {
        self.is_empty() || spans.into_iter().any(|s| self.matches(s))
    }

    /// True when every condition given here means the same as in `carried`.
    fn agrees_with(&self, carried: &SpanConds) -> bool {
        fn same<T: PartialEq>(given: &Option<T>, carried: &Option<T>) -> bool {
            given.is_none() || given == carried
        }
        same(&self.name, &carried.name)
            && same(&self.model, &carried.model)
            && same(&self.kind, &carried.kind)
            && same(&self.status, &carried.status)
    }
}

impl Filters {
    /// True when every filter given here means the same as in `carried` (a cursor's query);
    /// filters not given are taken from the cursor, so they never disagree.
    pub(crate) fn agrees_with(&self, carried: &Filters) -> bool {
        fn same<T: PartialEq>(given: &Option<T>, carried: &Option<T>) -> bool {
            given.is_none() || given == carried
        }
        fn same_list(given: &[String], carried: &[String]) -> bool {
            given.is_empty() || given == carried
        }
        same(&self.status, &carried.status)
            && same(&self.name, &carried.name)
            && same_list(&self.tags, &carried.tags)
            && same(&self.start_ms, &carried.start_ms)
            && same(&self.end_ms, &carried.end_ms)
            && same_list(&self.any_tags, &carried.any_tags)
            && same_list(&self.exclude_tags, &carried.exclude_tags)
            && same(&self.user_id, &carried.user_id)
            && same(&self.session_id, &carried.session_id)
            && (self.metadata.is_empty() || self.metadata == carried.metadata)
            && same(&self.duration_ms, &carried.duration_ms)
            && same(&self.cost, &carried.cost)
            && same(&self.tokens, &carried.tokens)
            && self.spans.agrees_with(&carried.spans)
    }

    /// True when the trace's `durationMs`, `totalCost` and `totalTokens` lie in the ranges.
    pub(crate) fn in_ranges(&self, start_ms: i64, body: &impl BodyFacts) -> bool {
        let duration = body
            .end_ms()
            .map(|end| u64::try_from(end.saturating_sub(start_ms)).unwrap_or(0));
        let cost_ok = match &self.cost {
            None => true,
            Some((lo, hi)) => match body.total_cost().to_decimal() {
                Ok(c) => {
                    lo.is_none_or(|m| m.to_decimal().is_ok_and(|lo| c >= lo))
                        && hi.is_none_or(|m| m.to_decimal().is_ok_and(|hi| c <= hi))
                }
                Err(_) => false,
            },
        };
        self.duration_ms
            .is_none_or(|(lo, hi)| duration.is_some_and(|d| (lo..=hi).contains(&d)))
            && self
                .tokens
                .is_none_or(|(lo, hi)| (lo..=hi).contains(&body.total_tokens()))
            && cost_ok
    }

    /// True when a range filter is given (they are tested on each row's body).
    pub(crate) fn has_ranges(&self) -> bool {
        self.duration_ms.is_some() || self.cost.is_some() || self.tokens.is_some()
    }

    /// The `name` filter's normal form: lowercase; empty means no filter.
    pub(crate) fn normal_name(raw: &str) -> Option<String> {
        (!raw.is_empty()).then(|| raw.to_lowercase())
    }

    /// The `tags` filter's normal form: comma-separated, each item trimmed, empty items dropped,
    /// distinct, sorted.
    pub(crate) fn normal_tags(raw: &str) -> Vec<String> {
        let mut list: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        list.sort();
        list.dedup();
        list
    }

    /// The date window as `[lo, hi)` milliseconds.
    pub(crate) fn window(&self) -> (i64, i64) {
        (
            self.start_ms.unwrap_or(i64::MIN),
            self.end_ms.unwrap_or(i64::MAX),
        )
    }

    /// True when a trace passes every filter, tested on its fields directly (exact status,
    /// case-insensitive name substring, all tags, any tag, no excluded tag, `[start, end)`):
    /// the rules the indexes resolve, for traces that are not in the indexes (pending traces).
    /// The span conditions are not in the body: the caller tests them on the trace's spans
    /// (`SpanConds::any_matches`), decoding those only when `spans` is not empty.
    pub(crate) fn matches_trace(&self, start_ms: i64, status: u8, body: &TraceBody) -> bool {
        let (lo, hi) = self.window();
        let tags = &body.tags;
        self.status.is_none_or(|s| s == status)
            && self
                .name
                .as_deref()
                .is_none_or(|needle| contains_ci(&body.name, needle))
            && self.tags.iter().all(|t| tags.contains(t))
            && (self.any_tags.is_empty() || self.any_tags.iter().any(|t| tags.contains(t)))
            && !self.exclude_tags.iter().any(|t| tags.contains(t))
            && self
                .user_id
                .as_ref()
                .is_none_or(|u| body.user_id.as_ref() == Some(u))
            && self
                .session_id
                .as_ref()
                .is_none_or(|s| body.session_id.as_ref() == Some(s))
            && metadata_holds(&self.metadata, &body.metadata)
            && self.in_ranges(start_ms, body)
            && (lo..hi).contains(&start_ms)
    }

    /// Resolves the filters to index terms in one snapshot of a project (`None` when the project
    /// does not exist). Status and tag terms resolve by exact lookup; the name substring is
    /// matched over the project's distinct names, never over rows.
    pub(crate) fn resolve(&self, v: Option<&ProjectView<'_>>) -> Result<Resolved> {
        let mut inputs = Vec::new();
        if let Some(st) = self.status {
            let rows = match v {
                Some(v) => v.term_count(TermKind::Status, st as u32)?,
                None => 0,
            };
            let label = format!(
                "status={}",
                Status::from_code(st).map_or("?", |s| s.as_str())
            );
            inputs.push(Input {
                kind: TermKind::Status,
                terms: vec![st as u32],
                rows,
                label,
                extra: None,
            });
        }
        let mut tag_ids = Vec::new();
        for tag in &self.tags {
            let label = format!("tag={tag}");
            let id = match v {
                Some(v) => v.tag_id(tag)?,
                None => None,
            };
            let (terms, rows) = match (v, id) {
                (Some(v), Some(id)) => {
                    tag_ids.push(id);
                    (vec![id], v.term_count(TermKind::Tag, id)?)
                }
                // A tag no trace ever carried: nothing can match.
                _ => (vec![], 0),
            };
            inputs.push(Input {
                kind: TermKind::Tag,
                terms,
                rows,
                label,
                extra: None,
            });
        }
        tag_ids.sort_unstable();
        let any_tag_ids = if self.any_tags.is_empty() {
            None
        } else {
            let (ids, rows) = known_tags(v, &self.any_tags)?;
            inputs.push(Input {
                kind: TermKind::Tag,
                terms: ids.clone(),
                rows,
                label: format!("anyTags={}", self.any_tags.join("|")),
                extra: None,
            });
            Some(ids)
        };
        let (exclude_tag_ids, exclude_rows) = known_tags(v, &self.exclude_tags)?;
        let mut exact = |kind: TermKind, text: &str, label: String| -> Result<Option<u32>> {
            let id = match v {
                Some(v) => v.term_id(kind, text)?,
                None => None,
            };
            let rows = match (v, id) {
                (Some(v), Some(id)) => v.term_count(kind, id)?,
                _ => 0,
            };
            inputs.push(Input {
                kind,
                terms: id.into_iter().collect(),
                rows,
                label,
                extra: None,
            });
            Ok(id)
        };
        let user_id = match &self.user_id {
            Some(u) => Some(exact(TermKind::User, u, format!("userId={u}"))?),
            None => None,
        };
        let session_id = match &self.session_id {
            Some(s) => Some(exact(TermKind::Session, s, format!("sessionId={s}"))?),
            None => None,
        };
        // A pair with a term is exact through its bitmap. A pair without one matches nothing,
        // unless its key went over its distinct-value cap: then the stored metadata decides.
        let mut meta_ids = Vec::new();
        let mut body_metadata = Vec::new();
        for (key, value) in &self.metadata {
            let text = meta_text(key, value);
            let id = match v {
                Some(v) => v.term_id(TermKind::Meta, &text)?,
                None => None,
            };
            let over_cap = match (v, id) {
                (Some(v), None) => match v.term_id(TermKind::MetaKey, key)? {
                    Some(k) => v.term_count(TermKind::MetaKey, k)? > MAX_METADATA_VALUES_PER_KEY,
                    None => false,
                },
                _ => false,
            };
            if over_cap {
                body_metadata.push((key.clone(), value.clone()));
                continue;
            }
            let id = exact(TermKind::Meta, &text, format!("metadata.{key}={value}"))?;
            meta_ids.extend(id);
        }
        meta_ids.sort_unstable();
        // Span conditions: each is one input (a term, or the union of the span names that
        // contain the substring). One alone is exact through its bitmap; with several, the
        // bitmaps give candidates and the same-span check on the candidates' spans decides.
        let sc = &self.spans;
        // `spanStatus=ERROR` beside other span conditions: each of those is read from its
        // pair bitmap (its term on an ERROR span), which holds both on one span, and the status
        // needs no input of its own. With one other condition that is exact.
        let on_error = sc.status == Some(Status::Error.code()) && sc.count() >= 2;
        let pair_rows = |kind: TermKind, ids: &[u32]| -> Result<u64> {
            let mut n = 0;
            if let (Some(v), Some(pair)) = (v, kind.on_error_span()) {
                for id in ids {
                    n += v.term_count(pair, *id)?;
                }
            }
            Ok(n)
        };
        if let Some(m) = &sc.model {
            if on_error {
                let id = match v {
                    Some(v) => v.term_id(TermKind::SpanModel, m)?,
                    None => None,
                };
                let ids: Vec<u32> = id.into_iter().collect();
                inputs.push(Input {
                    kind: TermKind::SpanModelError,
                    rows: pair_rows(TermKind::SpanModel, &ids)?,
                    terms: ids,
                    label: format!("spanModel={m} on an ERROR span"),
                    extra: None,
                });
            } else {
                exact(TermKind::SpanModel, m, format!("spanModel={m}"))?;
            }
        }
        if let Some(needle) = &sc.name {
            let (ids, rows) = match v {
                Some(v) => match_terms(&v.span_names()?, needle)?,
                None => (Vec::new(), 0),
            };
            let (kind, rows, on) = if on_error {
                (
                    TermKind::SpanNameError,
                    pair_rows(TermKind::SpanName, &ids)?,
                    " on an ERROR span",
                )
            } else {
                (TermKind::SpanName, rows, "")
            };
            inputs.push(Input {
                kind,
                terms: ids.clone(),
                rows,
                label: format!("spanName~{needle} ({} names){on}", ids.len()),
                extra: None,
            });
        }
        for (kind, code, label) in [
            (
                TermKind::SpanKind,
                sc.kind,
                sc.kind
                    .map(|k| SpanKind::from_code(k).map_or("?", |k| k.as_str())),
            ),
            (
                TermKind::SpanStatus,
                sc.status,
                sc.status
                    .map(|st| Status::from_code(st).map_or("?", |s| s.as_str())),
            ),
        ] {
            if let (Some(code), Some(label)) = (code, label) {
                if on_error && kind == TermKind::SpanStatus {
                    continue;
                }
                let (param, on) = match kind {
                    TermKind::SpanKind if on_error => ("spanKind", " on an ERROR span"),
                    TermKind::SpanKind => ("spanKind", ""),
                    _ => ("spanStatus", ""),
                };
                let kind = match kind.on_error_span() {
                    Some(pair) if on_error => pair,
                    _ => kind,
                };
                let rows = match v {
                    Some(v) => v.term_count(kind, u32::from(code))?,
                    None => 0,
                };
                inputs.push(Input {
                    kind,
                    terms: vec![u32::from(code)],
                    rows,
                    label: format!("{param}={label}{on}"),
                    extra: None,
                });
            }
        }
        let name_ids = match &self.name {
            None => None,
            Some(needle) => {
                let (ids, rows) = match v {
                    Some(v) => match_terms(&v.names()?, needle)?,
                    None => (Vec::new(), 0),
                };
                inputs.push(Input {
                    kind: TermKind::Name,
                    terms: ids.clone(),
                    rows,
                    label: format!("name~{needle} ({} names)", ids.len()),
                    extra: None,
                });
                Some(ids)
            }
        };
        // The ranges: exact inputs from their value buckets and the sort index.
        if let Some(v) = v {
            if let Some((lo, hi)) = self.duration_ms {
                let d = |x: u64| SortValue::Duration(Some(x));
                let label = format!("durationMs in [{lo}, {}]", bound(hi));
                let hi = (hi != u64::MAX).then(|| d(hi));
                inputs.push(range_input(v, SortField::Duration, d(lo), hi, label)?);
            }
            if let Some((lo, hi)) = &self.cost {
                let c = |m: &Money| {
                    let (i, f) = m.ordered();
                    SortValue::Cost(i, f)
                };
                let label = format!(
                    "totalCost in [{}, {}]",
                    lo.and_then(|m| m.to_decimal().ok())
                        .map_or("0".into(), |d| d.to_string()),
                    hi.and_then(|m| m.to_decimal().ok())
                        .map_or("max".into(), |d| d.to_string())
                );
                let lo = lo.as_ref().map_or(SortValue::Cost(0, 0), c);
                inputs.push(range_input(
                    v,
                    SortField::Cost,
                    lo,
                    hi.as_ref().map(c),
                    label,
                )?);
            }
            if let Some((lo, hi)) = self.tokens {
                let t = SortValue::Tokens;
                let label = format!("totalTokens in [{lo}, {}]", bound(hi));
                let hi = (hi != u64::MAX).then(|| t(hi));
                inputs.push(range_input(v, SortField::Tokens, t(lo), hi, label)?);
            }
        }
        inputs.sort_by_key(|i| i.rows);
        let (lo_ms, hi_ms) = self.window();
        let empty = inputs.iter().any(|i| i.rows == 0) || lo_ms >= hi_ms;
        Ok(Resolved {
            inputs,
            empty,
            status: self.status,
            name_ids,
            tag_ids,
            any_tag_ids,
            exclude_tag_ids,
            exclude_rows,
            user_id,
            session_id,
            meta_ids,
            body_metadata,
            ranges: self.has_ranges().then(|| self.clone()),
            ranges_indexed: v.is_some() && self.has_ranges(),
            spans: (!sc.is_empty()).then(|| sc.clone()),
            span_exact: sc.count() == 1 || (on_error && sc.count() == 2),
            lo_ms,
            hi_ms,
        })
    }
}

/// A range's upper bound as shown by `explain`.
fn bound(hi: u64) -> String {
    if hi == u64::MAX {
        "max".into()
    } else {
        hi.to_string()
    }
}

/// One index input of a resolved query: one term, or the union of several (the names that
/// contain a substring), with its live row count.
#[derive(Clone, Debug)]
pub(crate) struct Input {
    pub kind: TermKind,
    pub terms: Vec<u32>,
    pub rows: u64,
    pub label: String,
    /// Rows of the input besides its terms' bitmaps (a range's partly covered ends), read from
    /// the sort index only when an executor first needs them.
    pub extra: Option<Arc<crate::query::ranges::Edges>>,
}

/// Filters resolved against one snapshot.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// Cheapest first: the order in which the bitmap plan intersects them.
    pub inputs: Vec<Input>,
    /// Nothing can match (an unknown tag, a name no trace carries, an empty window).
    pub empty: bool,
    status: Option<u8>,
    /// Sorted; None when the query has no name filter.
    name_ids: Option<Vec<u32>>,
    /// Sorted.
    tag_ids: Vec<u32>,
    /// Sorted; None when the query has no `anyTags` filter.
    any_tag_ids: Option<Vec<u32>>,
    /// Sorted: the ids of the excluded tags that some trace carries (the others exclude
    /// nothing). The bitmap plan subtracts their bitmaps from its candidates.
    pub exclude_tag_ids: Vec<u32>,
    /// Live rows carrying an excluded tag, summed over the tags: an upper bound for estimates.
    pub exclude_rows: u64,
    /// The `userId` term; Some(None) when no trace has that user (the plan is then empty).
    user_id: Option<Option<u32>>,
    session_id: Option<Option<u32>>,
    /// The metadata pairs' terms, sorted.
    meta_ids: Vec<u32>,
    /// Metadata pairs of keys over their value cap, tested on the stored metadata.
    pub body_metadata: Vec<(String, String)>,
    /// The filters, when they hold range filters: the scan tests those on each row's body.
    ranges: Option<Filters>,
    /// The ranges are index inputs (exact), so candidates need no body test for them.
    ranges_indexed: bool,
    /// The span conditions, when any is given. The scan tests them on each row's spans (the
    /// header does not carry span terms); the bitmap plan and the counter only when
    /// `span_exact` is false.
    pub spans: Option<SpanConds>,
    /// True when the span inputs' bitmaps are exact: one span condition alone, or
    /// `spanStatus=ERROR` with one other (read from its pair bitmap).
    span_exact: bool,
    pub lo_ms: i64,
    pub hi_ms: i64,
}

impl Resolved {
    /// The header test of the scan executor: the same rules as the indexes, on a row's term ids.
    pub(crate) fn matches_header(&self, h: &TraceHeader) -> bool {
        self.status.is_none_or(|s| s == h.status)
            && self
                .name_ids
                .as_ref()
                .is_none_or(|ids| ids.binary_search(&h.name_id).is_ok())
            && subset(&self.tag_ids, &h.tag_ids)
            && self
                .any_tag_ids
                .as_ref()
                .is_none_or(|ids| meets(ids, &h.tag_ids))
            && !meets(&self.exclude_tag_ids, &h.tag_ids)
            && self.user_id.is_none_or(|u| u.is_some() && u == h.user_id)
            && self
                .session_id
                .is_none_or(|s| s.is_some() && s == h.session_id)
            && subset(&self.meta_ids, &h.meta_ids)
    }

    /// True when a candidate of the index inputs needs its body tested too: a metadata key over
    /// its value cap (the ranges are exact inputs).
    pub(crate) fn needs_body(&self) -> bool {
        !self.body_metadata.is_empty() || (self.ranges.is_some() && !self.ranges_indexed)
    }

    /// True when a row the scan reads (tested on its header only) needs its body tested too: a
    /// range filter, or a metadata key over its value cap.
    pub(crate) fn scan_needs_body(&self) -> bool {
        !self.body_metadata.is_empty() || self.ranges.is_some()
    }

    /// The body test of what the header cannot tell.
    pub(crate) fn matches_body(&self, start_ms: i64, b: &impl BodyFacts) -> bool {
        metadata_holds(&self.body_metadata, b.metadata())
            && self
                .ranges
                .as_ref()
                .is_none_or(|f| f.in_ranges(start_ms, b))
    }

    /// The conditions whose same-span check the bitmaps' candidates must pass: Some with two
    /// or more span conditions (each bitmap says that some span meets one condition, not that
    /// one span meets them all).
    pub(crate) fn span_check(&self) -> Option<&SpanConds> {
        self.spans.as_ref().filter(|_| !self.span_exact)
    }

    /// True when `start_ms` lies in the date window.
    pub(crate) fn in_window(&self, start_ms: i64) -> bool {
        (self.lo_ms..self.hi_ms).contains(&start_ms)
    }
}

/// True when every element of `want` (sorted) is in `have` (sorted).
fn subset(want: &[u32], have: &[u32]) -> bool {
    let mut h = have.iter();
    want.iter().all(|w| h.any(|x| x == w))
}

/// The index text of a metadata pair.
pub(crate) fn meta_text(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// True when a `metadata.*` key is well-formed: 1 to `MAX_METADATA_KEY_CHARS` characters of
/// `[A-Za-z0-9_.-]` (so `=` never occurs in a key and `key=value` is unambiguous).
pub(crate) fn valid_meta_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_METADATA_KEY_CHARS
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The top-level pairs of a trace's metadata (JSON object text) that a `metadata.KEY` filter
/// can match: a string value as is; a number, `true`, `false` or `null` as its canonical JSON
/// text (`2.50` is `2.5`); objects, arrays and keys a filter cannot name are left out.
pub(crate) fn metadata_pairs(metadata: &str) -> Vec<(String, String)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(metadata)
    else {
        return Vec::new();
    };
    map.into_iter()
        .filter(|(k, _)| valid_meta_key(k))
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => return None,
                other => other.to_string(),
            };
            Some((k, text))
        })
        .collect()
}

/// True when every wanted pair is among the metadata's pairs.
fn metadata_holds(want: &[(String, String)], metadata: &str) -> bool {
    if want.is_empty() {
        return true;
    }
    let have = metadata_pairs(metadata);
    want.iter().all(|w| have.contains(w))
}

/// True when the sorted lists share an element.
fn meets(a: &[u32], b: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// The ids of the tags of `tags` that some trace ever carried (sorted), and the sum of their
/// live row counts. A tag never carried has no id and matches nothing.
fn known_tags(v: Option<&ProjectView<'_>>, tags: &[String]) -> Result<(Vec<u32>, u64)> {
    let (mut ids, mut rows) = (Vec::new(), 0);
    if let Some(v) = v {
        for tag in tags {
            if let Some(id) = v.tag_id(tag)? {
                ids.push(id);
                rows += v.term_count(TermKind::Tag, id)?;
            }
        }
    }
    ids.sort_unstable();
    Ok((ids, rows))
}

/// The ids of the live terms of a dictionary (trace names, span names) that contain `needle`
/// (lowercase), and their total row count (for span names an upper bound: a trace may carry
/// several of them).
fn match_terms(dict: &[crate::cache::TermEntry], needle: &str) -> Result<(Vec<u32>, u64)> {
    let mut ids = Vec::new();
    let mut rows = 0;
    for n in dict.iter() {
        if n.count > 0 && contains_ci(&n.text, needle) {
            ids.push(n.id);
            rows += n.count;
        }
    }
    ids.sort_unstable();
    Ok((ids, rows))
}

/// Case-insensitive substring test; `needle` is already lowercase.
fn contains_ci(hay: &str, needle: &str) -> bool {
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return n.is_empty()
            || h.windows(n.len())
                .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b));
    }
    hay.to_lowercase().contains(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(Filters::normal_tags(" b, a,,a ,"), vec!["a", "b"]);
        assert_eq!(Filters::normal_name("Support").as_deref(), Some("support"));
        assert_eq!(Filters::normal_name(""), None);
    }

    fn body(name: &str, tags: &[&str], metadata: &str) -> TraceBody {
        TraceBody {
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            end_ms: None,
            created_ms: 0,
            metadata: metadata.into(),
            total_cost: crate::schema::Money::from_decimal(Default::default()),
            total_tokens: 0,
            span_count: 0,
            score_count: 0,
            user_id: Some("u1".into()),
            session_id: None,
        }
    }

    #[test]
    fn trace_test() {
        let f = Filters {
            status: Some(1),
            name: Some("sup".into()),
            tags: vec!["a".into()],
            start_ms: Some(10),
            end_ms: Some(20),
            ..Default::default()
        };
        let b = body("Support-agent", &["b", "a"], "{}");
        assert!(f.matches_trace(10, 1, &b));
        assert!(!f.matches_trace(20, 1, &b));
        assert!(!f.matches_trace(10, 0, &b));
        assert!(!f.matches_trace(10, 1, &body("other", &["a"], "{}")));
        assert!(!f.matches_trace(10, 1, &body("Support-agent", &["b"], "{}")));
        assert!(contains_ci("ÄBC", "äb"));
        let any = Filters {
            any_tags: vec!["x".into(), "a".into()],
            exclude_tags: vec!["c".into()],
            ..Default::default()
        };
        assert!(any.matches_trace(0, 0, &b));
        assert!(!any.matches_trace(0, 0, &body("n", &["b"], "{}")));
        assert!(!any.matches_trace(0, 0, &body("n", &["a", "c"], "{}")));
        let who = Filters {
            user_id: Some("u1".into()),
            metadata: vec![("env".into(), "prod".into()), ("tier".into(), "2.5".into())],
            ..Default::default()
        };
        assert!(who.matches_trace(0, 0, &body("n", &[], r#"{"env":"prod","tier":2.50}"#)));
        assert!(who.matches_trace(0, 0, &body("n", &[], r#"{"tier":"2.5","env":"prod"}"#)));
        assert!(!who.matches_trace(0, 0, &body("n", &[], r#"{"env":"prod","tier":"2.50"}"#)));
        assert!(!who.matches_trace(0, 0, &body("n", &[], r#"{"env":["prod"],"tier":2.5}"#)));
    }

    fn span(name: Option<&str>, model: Option<&str>, kind: SpanKind, status: Status) -> SpanRecord {
        SpanRecord {
            parent_id: None,
            kind: kind.code(),
            status: status.code(),
            name: name.map(str::to_string),
            start_ms: None,
            end_ms: None,
            model: model.map(str::to_string),
            input_tokens: None,
            output_tokens: None,
            total_tokens: 0,
            cost: None,
        }
    }

    #[test]
    fn span_conditions_hold_on_one_span() {
        let spans = [
            span(
                Some("Chat-Completion"),
                Some("gpt-4o"),
                SpanKind::Llm,
                Status::Ok,
            ),
            span(Some("search"), None, SpanKind::Tool, Status::Error),
            span(None, Some("claude"), SpanKind::Llm, Status::Error),
        ];
        let conds = |name: Option<&str>,
                     model: Option<&str>,
                     kind: Option<SpanKind>,
                     status: Option<Status>| SpanConds {
            name: name.map(str::to_string),
            model: model.map(str::to_string),
            kind: kind.map(SpanKind::code),
            status: status.map(Status::code),
        };
        assert!(SpanConds::default().any_matches(&[]));
        assert!(conds(Some("chat"), Some("gpt-4o"), Some(SpanKind::Llm), None).any_matches(&spans));
        // An ERROR span and a TOOL span, and an ERROR TOOL span: `search`.
        assert!(conds(None, None, Some(SpanKind::Tool), Some(Status::Error)).any_matches(&spans));
        // gpt-4o and ERROR are on two different spans.
        assert!(!conds(None, Some("gpt-4o"), None, Some(Status::Error)).any_matches(&spans));
        // A span without a name never meets a name condition.
        assert!(!conds(Some("c"), Some("claude"), None, None).any_matches(&spans));
        // The model is exact.
        assert!(!conds(None, Some("GPT-4o"), None, None).any_matches(&spans));
        assert_eq!(conds(Some("x"), None, None, Some(Status::Ok)).count(), 2);
        // Agreement with a cursor's conditions: a given condition must be equal.
        let carried = conds(Some("chat"), Some("gpt-4o"), None, None);
        assert!(conds(Some("chat"), None, None, None).agrees_with(&carried));
        assert!(!conds(None, None, Some(SpanKind::Llm), None).agrees_with(&carried));
    }

    #[test]
    fn metadata_pairs_are_canonical_scalars() {
        let mut p = metadata_pairs(
            r#"{"s":"x","n":2.50,"i":7,"t":true,"z":null,"o":{"a":1},"a":[1],"bad key":1}"#,
        );
        p.sort();
        let want: Vec<(String, String)> = [
            ("i", "7"),
            ("n", "2.5"),
            ("s", "x"),
            ("t", "true"),
            ("z", "null"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(p, want);
        assert!(valid_meta_key("a.b-c_9") && !valid_meta_key("") && !valid_meta_key("a=b"));
        assert!(!valid_meta_key(&"k".repeat(65)));
        assert!(meets(&[1, 4, 9], &[2, 9]) && !meets(&[1, 4], &[2, 3]) && !meets(&[], &[1]));
    }
}
