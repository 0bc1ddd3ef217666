//! The `query_params` fuzz target; its checks live in `tests/support/targets.rs`, shared with
//! `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../../tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    support::targets::query_params(data);
});
