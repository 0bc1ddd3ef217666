//! Request input for the HTTP adapter, below the contract's rules: query-string bytes decoded
//! into UTF-8 pairs, the ingest Content-Type, and request bodies read against a size limit and
//! a deadline. No query-parameter rule lives here; the pairs go to the library as decoded.

use crate::error::Detail;
use axum::body::{Body, HttpBody};
use axum::http::{header, HeaderMap};
use std::pin::Pin;
use std::time::Duration;

/// Longest part of a client's value quoted back in a message.
const MAX_QUOTED_CHARS: usize = 64;

/// The query string as `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a
/// byte, a `%` without two hex digits itself; empty `&&` segments skipped), exactly as
/// `form_urlencoded::parse` reads it, except that a pair whose name or value is not UTF-8
/// after decoding, or whose name is empty, is not passed on: it is reported instead, named
/// by its parameter. Returns the good pairs in order and the problems in order.
pub(crate) fn decode_query(raw: Option<&str>) -> (Vec<(String, String)>, Vec<Detail>) {
    let mut pairs = Vec::new();
    let mut problems = Vec::new();
    for segment in raw.unwrap_or_default().split('&') {
        if segment.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
        let key = match String::from_utf8(percent_decode(raw_key)) {
            Ok(k) => k,
            Err(_) => {
                // A name that is not text can only be shown as it was sent.
                problems.push(Detail {
                    field: quote(raw_key),
                    message: "the parameter name is not valid UTF-8 after percent-decoding"
                        .to_string(),
                });
                continue;
            }
        };
        if key.is_empty() {
            problems.push(Detail {
                field: String::new(),
                message: format!(
                    "the parameter name is empty (in `{}`); write name=value",
                    quote(segment)
                ),
            });
            continue;
        }
        match String::from_utf8(percent_decode(raw_value)) {
            Ok(value) => pairs.push((key, value)),
            Err(_) => problems.push(Detail {
                field: quote(&key),
                message: "the value is not valid UTF-8 after percent-decoding".to_string(),
            }),
        }
    }
    (pairs, problems)
}

fn quote(s: &str) -> String {
    s.chars().take(MAX_QUOTED_CHARS).collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn hex(c: &u8) -> Option<u8> {
    (*c as char).to_digit(16).map(|d| d as u8)
}

/// `Ok` when the body is declared `application/json` (parameters such as `; charset=utf-8`
/// allowed); otherwise the message for a 415.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(
            "missing Content-Type; send the body as JSON with Content-Type: application/json"
                .to_string(),
        );
    };
    let Ok(text) = value.to_str() else {
        return Err("the Content-Type is not readable; expected application/json".to_string());
    };
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(format!(
            "Content-Type must be application/json, not {}",
            quote(text.trim())
        ))
    }
}

/// The body length the client declared, when it declared one.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit arrived (or was declared).
    TooLarge,
    /// The whole body did not arrive before the deadline.
    TimedOut,
    /// The connection failed or the framing was broken.
    Read(String),
}

/// Reads the whole body: at most `limit` bytes, all of them within `deadline`.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, BodyError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(deadline, collect(body, limit)).await {
        Ok(r) => r,
        Err(_) => Err(BodyError::TimedOut),
    }
}

async fn collect(mut body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(out),
            Some(Err(e)) => return Err(BodyError::Read(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn fields(problems: &[Detail]) -> Vec<&str> {
        problems.iter().map(|d| d.field.as_str()).collect()
    }

    #[test]
    fn decodes_like_form_urlencoded() {
        for raw in [
            "limit=10&name=a+b%20c",
            "tags=a,b&&status=OK&",
            "name=%&x=%4&y=%zz&z=%41",
            "cursor",
            "name=%E2%9C%93&limit=1&limit=2",
            "a=b=c",
        ] {
            let (pairs, problems) = decode_query(Some(raw));
            let want: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect();
            assert_eq!(pairs, want, "{raw}");
            assert!(problems.is_empty(), "{raw}");
        }
        assert_eq!(decode_query(None), (vec![], vec![]));
        assert_eq!(decode_query(Some("")), (vec![], vec![]));
    }

    #[test]
    fn names_non_utf8_and_empty_names() {
        let (pairs, problems) = decode_query(Some("name=%FF%FE&limit=5&%FFx=1&=x&status=%C3"));
        assert_eq!(pairs, vec![("limit".to_string(), "5".to_string())]);
        assert_eq!(fields(&problems), vec!["name", "%FFx", "", "status"]);
        assert!(problems[0].message.contains("not valid UTF-8"));
        assert!(problems[1].message.contains("name is not valid UTF-8"));
        assert!(problems[2].message.contains("parameter name is empty"));
        let (_, problems) = decode_query(Some("="));
        assert_eq!(fields(&problems), vec![""]);
    }

    #[test]
    fn only_json_is_accepted() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            require_json(&h)
        };
        for good in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            " application/json ;charset=UTF-8",
        ] {
            assert!(with(good).is_ok(), "{good}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "application/json-seq",
            "",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        assert!(require_json(&HeaderMap::new())
            .unwrap_err()
            .contains("missing Content-Type"));
    }

    #[tokio::test]
    async fn reads_within_limit_and_deadline() {
        let got = read_body(Body::from("hello"), 5, Duration::from_secs(5)).await;
        assert_eq!(got.unwrap(), b"hello");
        let got = read_body(Body::from("hello!"), 5, Duration::from_secs(5)).await;
        assert!(matches!(got, Err(BodyError::TooLarge)));
    }
}
