//! Helpers and the model of `http_isolation_prop.rs`, which alone declares this module (the
//! other test binaries share `common` only):
//!
//! - [`rng`]: the seeded xorshift generator that drives every case;
//! - [`time`]: civil dates, the contract's timestamp rendering and date filter spellings;
//! - [`model`]: the in-test model of a project's traces and the expected served objects;
//! - [`filter`]: random list filters and the model's answer to them;
//! - [`http`]: a raw-body client, page walks and the test server's config.

pub mod filter;
pub mod http;
pub mod model;
pub mod rng;
pub mod time;
