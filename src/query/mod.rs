//! The query layer: parse → plan → execute.
//!
//! Shared by every engine:
//! - `parse` turns (key, value) pairs into a validated [`QueryRequest`]; it never sees storage;
//! - `filter` is what each filter means (normal form, resolution to index terms, row tests);
//! - `order` is the sort order and a position in it;
//! - `cursor` is the signed envelope of a continuation.
//!
//! The redb engine's executor (run by `engine::redb::run`):
//! - `plan` resolves the filters in one snapshot and chooses an executor;
//! - `exec` runs the chosen plan and returns one page of hits;
//! - `count` counts the whole matching set (totals and facets) from the same indexes;
//! - `spans` reads a trace's spans for the same-span check of the span conditions.

pub(crate) mod count;
pub(crate) mod cursor;
pub(crate) mod exec;
pub(crate) mod filter;
pub(crate) mod order;
pub(crate) mod parse;
pub(crate) mod plan;
pub(crate) mod ranges;
pub(crate) mod sorted;
pub(crate) mod spans;

pub(crate) use filter::Filters;
pub use order::Order;
pub(crate) use order::Position;
pub use parse::{Include, QueryBuilder, QueryRequest, KNOWN_PARAMS, METADATA_PARAM_PREFIX};
pub use plan::{Explain, ExplainInput, PlanKind};
