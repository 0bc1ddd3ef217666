//! The query layer: parse → plan → execute.
//!
//! - `parse` turns (key, value) pairs into a validated [`QueryRequest`]; it never sees storage.
//! - `cursor` signs and verifies continuation tokens.
//! - `plan` resolves filters to index terms in one snapshot and chooses an executor.
//! - `exec` runs the chosen plan and returns one page of hits.

pub(crate) mod cursor;
pub(crate) mod exec;
pub(crate) mod parse;
pub(crate) mod plan;

pub use parse::{QueryBuilder, QueryRequest, KNOWN_PARAMS};
pub use plan::{Explain, ExplainInput, PlanKind};
