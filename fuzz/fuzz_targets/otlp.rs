//! The `otlp` fuzz target: any OTLP request body, protobuf or JSON, either fails to decode or
//! is ingested without error into a store that then verifies clean. The mapping must turn
//! every decodable request into spans that pass the ordinary ingest validation.
//!
//! Input: the first byte picks the encoding (even: protobuf, odd: JSON), the rest is the body.
#![no_main]

use tracestore::{OtlpEncoding, OtlpRequest, Store};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let encoding = if first % 2 == 0 {
        OtlpEncoding::Protobuf
    } else {
        OtlpEncoding::Json
    };
    let Ok(request) = OtlpRequest::decode(body, encoding) else {
        return;
    };
    let store = Store::in_memory().expect("an in-memory store opens");
    let outcome = store
        .ingest_otlp("p", &request)
        .expect("a decoded OTLP request ingests");
    // A span id sent twice is stored once, so accepted + rejected can be below the count.
    assert!(outcome.accepted_spans + outcome.rejected_spans <= request.span_count() as u64);
    assert_eq!(outcome.rejected_spans > 0, outcome.error_message.is_some());
    let violations = store.verify().expect("verify runs");
    assert!(violations.is_empty(), "{violations:?}");
});
