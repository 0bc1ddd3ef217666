//! The simple model used by the query tests (pagination, planner, validation, ingest and the
//! concurrent walk): traces only, no spans or scores, plus a walker over every page of a query.
//! Test files reach it as `use support::simple::*;` (its names overlap the full model's).

use std::collections::BTreeMap;
use tracestore::{Page, QueryRequest, Status, Store, Timestamp, TraceInput};

pub use super::checks::{assert_verified, params_ref};
pub use super::query::{ts, MQuery, ModelTrace, BASE_MS};

/// One trace as the model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MTrace {
    pub id: String,
    pub name: String,
    pub status: Status,
    pub start_ms: i64,
    pub tags: Vec<String>,
}

model_trace_fields!(MTrace);

/// A naive model: per project, id -> trace; queries filter and sort a Vec.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub projects: BTreeMap<String, BTreeMap<String, MTrace>>,
}

impl Model {
    pub fn upsert(&mut self, project: &str, t: MTrace) {
        self.projects
            .entry(project.to_string())
            .or_default()
            .insert(t.id.clone(), t);
    }
    pub fn delete(&mut self, project: &str, id: &str) -> bool {
        self.projects
            .get_mut(project)
            .and_then(|m| m.remove(id))
            .is_some()
    }
    pub fn answer(&self, project: &str, q: &MQuery) -> Vec<String> {
        let all = self
            .projects
            .get(project)
            .into_iter()
            .flat_map(|m| m.values());
        q.answer(all).into_iter().map(|t| t.id.clone()).collect()
    }
}

pub fn input(t: &MTrace) -> TraceInput {
    TraceInput {
        status: Some(t.status),
        tags: Some(t.tags.clone()),
        ..TraceInput::new(
            t.id.clone(),
            t.name.clone(),
            Timestamp::from_millis(t.start_ms).unwrap(),
        )
    }
}

/// Walks every page of a query. `limits` gives the page size of each page (cycled); pages after
/// the first carry only the cursor and a limit. Checks that nextCursor is null exactly at the end
/// (a cursor never leads to an empty page). Returns the ids in order.
pub fn walk(store: &Store, project: &str, q: &MQuery, limits: &[u32]) -> Vec<String> {
    let first = QueryRequest::from_params(params_ref(&q.params(limits[0]))).expect("valid query");
    let mut page: Page = store.query(project, &first).expect("query");
    let mut out: Vec<String> = Vec::new();
    let mut i = 1;
    loop {
        assert!(page.traces.len() <= limits[(i - 1) % limits.len()] as usize);
        out.extend(page.traces.iter().map(|t| t.id.clone()));
        let Some(c) = page.next_cursor.clone() else {
            break;
        };
        assert!(!page.traces.is_empty(), "a cursor after an empty page");
        let limit = limits[i % limits.len()];
        let req = QueryRequest::builder()
            .cursor(&c)
            .limit(limit)
            .build()
            .expect("cursor parses");
        page = store.query(project, &req).expect("next page");
        assert!(!page.traces.is_empty(), "nextCursor led to an empty page");
        i += 1;
        assert!(i < 100_000, "walk does not end");
    }
    out
}
