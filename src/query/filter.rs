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
use crate::model::Status;
use crate::schema::{TermKind, TraceHeader};
use serde::{Deserialize, Serialize};

/// A query's filters, normalized: the name lowercased, the tags distinct and sorted, the dates
/// as millisecond bounds (`start_ms` inclusive, `end_ms` exclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Filters {
    pub status: Option<u8>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl Filters {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Filters::default()
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
    /// case-insensitive name substring, all tags, `[start, end)`): the rules the indexes
    /// resolve, for traces that are not in the indexes (pending traces).
    pub(crate) fn matches_trace(
        &self,
        start_ms: i64,
        status: u8,
        name: &str,
        tags: &[String],
    ) -> bool {
        let (lo, hi) = self.window();
        self.status.is_none_or(|s| s == status)
            && self
                .name
                .as_deref()
                .is_none_or(|needle| contains_ci(name, needle))
            && self.tags.iter().all(|t| tags.contains(t))
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
            });
        }
        tag_ids.sort_unstable();
        let name_ids = match &self.name {
            None => None,
            Some(needle) => {
                let (ids, rows) = match v {
                    Some(v) => match_names(v, needle)?,
                    None => (Vec::new(), 0),
                };
                inputs.push(Input {
                    kind: TermKind::Name,
                    terms: ids.clone(),
                    rows,
                    label: format!("name~{needle} ({} names)", ids.len()),
                });
                Some(ids)
            }
        };
        inputs.sort_by_key(|i| i.rows);
        let (lo_ms, hi_ms) = self.window();
        let empty = inputs.iter().any(|i| i.rows == 0) || lo_ms >= hi_ms;
        Ok(Resolved {
            inputs,
            empty,
            status: self.status,
            name_ids,
            tag_ids,
            lo_ms,
            hi_ms,
        })
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

/// The ids of the live names that contain `needle` (lowercase), and their total row count.
fn match_names(v: &ProjectView<'_>, needle: &str) -> Result<(Vec<u32>, u64)> {
    let mut ids = Vec::new();
    let mut rows = 0;
    for n in v.names()?.iter() {
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

    #[test]
    fn trace_test() {
        let f = Filters {
            status: Some(1),
            name: Some("sup".into()),
            tags: vec!["a".into()],
            start_ms: Some(10),
            end_ms: Some(20),
        };
        let tags = vec!["b".to_string(), "a".to_string()];
        assert!(f.matches_trace(10, 1, "Support-agent", &tags));
        assert!(!f.matches_trace(20, 1, "Support-agent", &tags));
        assert!(!f.matches_trace(10, 0, "Support-agent", &tags));
        assert!(!f.matches_trace(10, 1, "other", &tags));
        assert!(!f.matches_trace(10, 1, "Support-agent", &tags[..1]));
        assert!(contains_ci("ÄBC", "äb"));
    }
}
