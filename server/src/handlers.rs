//! The route handlers of the HTTP adapter: list, get, delete, ingest, retention, admin keys,
//! health and the OpenAPI document. Each decodes what HTTP carries (pairs, path, body) and hands
//! it to the library unchanged; routing, authentication and the layers are `api`'s.

use crate::api::{blocking, AppState, Progress, Project, MAX_ADMIN_BODY_BYTES, OPENAPI_JSON};
use crate::error::{created, ok, ApiError, Detail};
use crate::input::{self, BodyError};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracestore::{ErrorCode, Timestamp};

pub(crate) fn project_of(req_project: Option<Extension<Project>>) -> Result<Arc<str>, ApiError> {
    // The auth layer wraps every route that takes this; its absence is a wiring bug.
    req_project
        .map(|p| p.0 .0.clone())
        .ok_or_else(|| ApiError::internal("internal error"))
}

/// The query string's pairs, or a 400 naming every pair that is not UTF-8 or has no name,
/// together with whatever else `also` finds wrong with the pairs that are.
pub(crate) fn query_pairs(
    raw: Option<String>,
    also: impl FnOnce(&[(String, String)]) -> Vec<Detail>,
) -> Result<Vec<(String, String)>, ApiError> {
    let (pairs, mut problems) = input::decode_query(raw.as_deref());
    if problems.is_empty() {
        return Ok(pairs);
    }
    for d in also(&pairs) {
        if !problems.iter().any(|p| p.field == d.field) {
            problems.push(d);
        }
    }
    Err(ApiError::fields(problems))
}

/// The library's own verdict on list-query pairs, as details (empty when it accepts them).
pub(crate) fn list_query_problems(pairs: &[(String, String)]) -> Vec<Detail> {
    match tracestore::QueryRequest::from_params(pairs.iter().map(|(k, v)| (k, v))) {
        Ok(_) => Vec::new(),
        Err(e) => ApiError::from(e).details().to_vec(),
    }
}

/// `GET /api/v1/traces`: the decoded pairs, repeated keys kept, straight to the library.
pub(crate) async fn list_traces(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let pairs = query_pairs(query, list_query_problems)?;
    let page = blocking(&state.store, move |s| s.query_params(&project, pairs)).await?;
    Ok(ok(&page))
}

/// An id that is not valid UTF-8 after percent-decoding names no trace.
pub(crate) fn trace_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    // The library's own answer to an unknown id, so that both are indistinguishable.
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "trace not found"))
}

/// The detail route's one parameter, `payloads`: optional, at most once, `true` (the default:
/// inputs, outputs, attributes and status messages included) or `false` (the span tree alone,
/// read without touching a payload). Every other parameter is refused by name. These are the
/// route's own rules, the only parsing of this route's query.
pub(crate) fn detail_problems(pairs: &[(String, String)]) -> (bool, Vec<Detail>) {
    let (payloads, _, problems) = only_param(pairs, "payloads", |v| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false"),
    });
    (payloads.unwrap_or(true), problems)
}

/// A route whose query takes one parameter, `name`, at most once: its parsed value (None when
/// absent or bad), whether it was given, and the problems (any other parameter is refused by
/// name, a repeat is refused, a bad value gets `parse`'s message).
fn only_param<T>(
    pairs: &[(String, String)],
    name: &str,
    parse: impl Fn(&str) -> Result<T, &'static str>,
) -> (Option<T>, bool, Vec<Detail>) {
    let mut problems = Vec::new();
    let mut value = None;
    let mut seen = 0;
    let problem = |field: &str, message: &str| Detail {
        field: field.to_string(),
        message: message.to_string(),
    };
    for (k, v) in pairs {
        if k != name {
            let shown: String = k.chars().take(64).collect();
            problems.push(problem(
                &shown,
                &format!("unknown parameter; the only parameter is {name}"),
            ));
            continue;
        }
        seen += 1;
        if seen == 2 {
            problems.push(problem(name, "given more than once"));
        }
        if seen == 1 {
            match parse(v) {
                Ok(t) => value = Some(t),
                Err(m) => problems.push(problem(name, m)),
            }
        }
    }
    (value, seen > 0, problems)
}

/// `GET /api/v1/traces/{id}[?payloads=false]`: the trace with its spans and scores; with
/// `payloads=false`, without any payload field (`Store::get_trace_tree`).
pub(crate) async fn get_trace(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let pairs = query_pairs(query, |pairs| detail_problems(pairs).1)?;
    let (payloads, problems) = detail_problems(&pairs);
    if !problems.is_empty() {
        return Err(ApiError::fields(problems));
    }
    let id = trace_id(path)?;
    let detail = blocking(&state.store, move |s| {
        if payloads {
            s.get_trace(&project, &id)
        } else {
            s.get_trace_tree(&project, &id)
        }
    })
    .await?;
    Ok(ok(&detail))
}

pub(crate) async fn delete_trace(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let id = trace_id(path)?;
    let deleted_id = id.clone();
    blocking(&state.store, move |s| s.delete_trace(&project, &id)).await?;
    Ok(ok(
        &serde_json::json!({ "id": deleted_id, "deleted": true }),
    ))
}

const BEFORE_FORMAT: &str =
    "must be an RFC 3339 instant or YYYY-MM-DD (midnight UTC) between 1970-01-01 and 9999-12-31";

/// The retention route's one parameter, `before`: required, once, in `startDate`'s formats.
/// Every other parameter is refused by name. These are the route's own rules: the list
/// query's parameters are not involved.
pub(crate) fn retention_problems(pairs: &[(String, String)]) -> (Option<Timestamp>, Vec<Detail>) {
    let (cutoff, given, mut problems) = only_param(pairs, "before", |v| {
        retention_cutoff(v).ok_or(BEFORE_FORMAT)
    });
    if !given {
        problems.push(Detail {
            field: "before".to_string(),
            message: "required: traces that started before this instant are deleted".to_string(),
        });
    }
    (cutoff, problems)
}

/// `before` as `endDate` reads it: a trace started before `before` when its millisecond
/// startTime is below `before` rounded up to the next millisecond.
pub(crate) fn retention_cutoff(value: &str) -> Option<Timestamp> {
    let t = Timestamp::parse(value).ok()?;
    let sub_millisecond = value.split_once('.').is_some_and(|(_, frac)| {
        frac.bytes()
            .take_while(u8::is_ascii_digit)
            .skip(3)
            .any(|d| d != b'0')
    });
    if sub_millisecond {
        Timestamp::from_millis(t.as_millis() + 1).ok()
    } else {
        Some(t)
    }
}

/// `DELETE /api/v1/traces?before=INSTANT`: retention for the key's project.
pub(crate) async fn delete_before(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let pairs = query_pairs(query, |pairs| retention_problems(pairs).1)?;
    let (cutoff, problems) = retention_problems(&pairs);
    let cutoff = match cutoff {
        Some(c) if problems.is_empty() => c,
        _ => return Err(ApiError::fields(problems)),
    };
    let deleted = blocking(&state.store, move |s| {
        s.delete_before(&project, cutoff, |_| {})
    })
    .await?;
    Ok(ok(&serde_json::json!({ "deleted": deleted })))
}

/// The whole body of a JSON request: 415 unless it is declared JSON, 413 at once for a
/// declared length over `limit` (and as soon as more than `limit` arrives), 408 when it has
/// not all arrived within the body read timeout.
pub(crate) async fn json_body(
    state: &AppState,
    progress: Option<&Arc<Progress>>,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    input::require_json(headers)
        .map_err(|m| ApiError::from(tracestore::Error::unsupported_media_type(m)))?;
    let too_large = || ApiError::from(tracestore::Error::payload_too_large(limit));
    if input::declared_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    if let Some(p) = progress {
        p.reading_body.store(true, Ordering::SeqCst);
    }
    let read = input::read_body(body, limit, state.body_read_timeout).await;
    if let Some(p) = progress {
        p.reading_body.store(false, Ordering::SeqCst);
    }
    read.map_err(|e| match e {
        BodyError::TooLarge => too_large(),
        BodyError::TimedOut => tracestore::Error::request_timeout().into(),
        BodyError::Read(m) => ApiError::field("body", format!("could not be read: {m}")),
    })
}

/// `POST /api/v1/traces`: the body goes to the library, which validates it.
pub(crate) async fn ingest_traces(
    State(state): State<AppState>,
    project: Option<Extension<Project>>,
    progress: Option<Extension<Arc<Progress>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let project = project_of(project)?;
    let limit = tracestore::limits::MAX_BATCH_BYTES;
    let body = json_body(&state, progress.as_deref(), &headers, body, limit).await?;
    let summary = blocking(&state.store, move |s| s.ingest_json(&project, &body)).await?;
    Ok(ok(&summary))
}

/// What `POST /api/v1/admin/keys` asks for.
enum KeyRequest {
    Project(String),
    Admin,
}

/// `{"project": "NAME"}` or `{"admin": true}` (`"admin": false` may go with a project).
fn key_request(body: &[u8]) -> Result<KeyRequest, ApiError> {
    const SHAPE: &str = r#"must be a JSON object: {"project": "NAME"} or {"admin": true}"#;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::field("body", format!("is not valid JSON ({e}); {SHAPE}")))?;
    let Some(object) = value.as_object() else {
        return Err(ApiError::field("body", SHAPE));
    };
    let mut problems = Vec::new();
    let mut project = None;
    let mut admin = None;
    for (k, v) in object {
        match (k.as_str(), v) {
            ("project", serde_json::Value::String(p)) => project = Some(p.clone()),
            ("project", _) => problems.push(("project", "must be a string".to_string())),
            ("admin", serde_json::Value::Bool(a)) => admin = Some(*a),
            ("admin", _) => problems.push(("admin", "must be true or false".to_string())),
            (other, _) => problems.push((
                other,
                "unknown field; the fields are project and admin".to_string(),
            )),
        }
    }
    if problems.is_empty() {
        match (project, admin.unwrap_or(false)) {
            (Some(p), false) => return Ok(KeyRequest::Project(p)),
            (None, true) => return Ok(KeyRequest::Admin),
            (Some(_), true) => problems.push((
                "admin",
                "an admin key belongs to no project; give either project or admin: true"
                    .to_string(),
            )),
            (None, false) => problems.push((
                "project",
                "required: the project the key is for (or admin: true for an admin key)"
                    .to_string(),
            )),
        }
    }
    Err(ApiError::fields(
        problems
            .into_iter()
            .map(|(field, message)| Detail {
                field: field.chars().take(64).collect(),
                message,
            })
            .collect(),
    ))
}

/// `POST /api/v1/admin/keys`: a new project or admin key, its plaintext shown once.
pub(crate) async fn create_key(
    State(state): State<AppState>,
    progress: Option<Extension<Arc<Progress>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = json_body(
        &state,
        progress.as_deref(),
        &headers,
        body,
        MAX_ADMIN_BODY_BYTES,
    )
    .await?;
    let request = key_request(&body)?;
    let new = blocking(&state.store, move |s| match request {
        KeyRequest::Project(p) => s.create_api_key(&p),
        KeyRequest::Admin => s.create_admin_key(),
    })
    .await?;
    tracing::info!(prefix = %new.prefix, project = %new.project, admin = new.admin, "key created");
    Ok(created(&serde_json::json!({
        "key": new.key,
        "prefix": new.prefix,
        "project": new.project,
        "admin": new.admin,
    })))
}

/// `GET /api/v1/admin/keys`: every key's prefix, project and dates, never a key.
pub(crate) async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = blocking(&state.store, |s| s.list_api_keys()).await?;
    Ok(ok(&serde_json::json!({ "keys": keys })))
}

/// `DELETE /api/v1/admin/keys/{prefix}`: revokes the keys with this prefix (`ts_` optional).
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no unrevoked key has this prefix");
    let Ok(Path(prefix)) = path else {
        return Err(not_found());
    };
    let shown = prefix.clone();
    let revoked = blocking(&state.store, move |s| s.revoke_api_key(&prefix)).await?;
    if revoked == 0 {
        return Err(not_found());
    }
    tracing::info!(prefix = %shown.chars().take(64).collect::<String>(), revoked, "key revoked");
    Ok(ok(&serde_json::json!({ "revoked": revoked })))
}

pub(crate) async fn healthz() -> Response {
    ok(&serde_json::json!({ "status": "ok" }))
}

pub(crate) async fn openapi() -> Response {
    let mut res = (StatusCode::OK, OPENAPI_JSON).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

pub(crate) async fn no_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fields(d: &[Detail]) -> Vec<&str> {
        d.iter().map(|d| d.field.as_str()).collect()
    }

    #[test]
    fn retention_takes_before_only() {
        let (t, p) = retention_problems(&pairs(&[("before", "2026-03-01")]));
        assert!(p.is_empty());
        assert_eq!(t.unwrap().to_string(), "2026-03-01T00:00:00.000Z");
        let (_, p) = retention_problems(&[]);
        assert_eq!(fields(&p), vec!["before"]);
        assert!(p[0].message.contains("required"));
        let (_, p) = retention_problems(&pairs(&[("before", "yesterday"), ("limit", "5")]));
        assert_eq!(fields(&p), vec!["before", "limit"]);
        let (_, p) = retention_problems(&pairs(&[("before", "2026-03-01"), ("before", "x")]));
        assert_eq!(fields(&p), vec!["before"]);
        assert!(p[0].message.contains("more than once"));
        let (_, p) = retention_problems(&pairs(&[("before", "1969-12-31")]));
        assert_eq!(fields(&p), vec!["before"]);
    }

    #[test]
    fn detail_takes_payloads_only() {
        let (p, d) = detail_problems(&[]);
        assert!(p && d.is_empty());
        let (p, d) = detail_problems(&pairs(&[("payloads", "false")]));
        assert!(!p && d.is_empty());
        let (p, d) = detail_problems(&pairs(&[("payloads", "true")]));
        assert!(p && d.is_empty());
        for bad in ["", "False", "0", "no", "true "] {
            let (_, d) = detail_problems(&pairs(&[("payloads", bad)]));
            assert_eq!(fields(&d), vec!["payloads"], "{bad:?}");
        }
        let (_, d) = detail_problems(&pairs(&[("payloads", "false"), ("payloads", "false")]));
        assert_eq!(fields(&d), vec!["payloads"]);
        assert!(d[0].message.contains("more than once"));
        let (_, d) = detail_problems(&pairs(&[("limit", "1"), ("payloads", "x")]));
        assert_eq!(fields(&d), vec!["limit", "payloads"]);
    }

    #[test]
    fn retention_rounds_sub_milliseconds_up() {
        let at = |s: &str| retention_cutoff(s).unwrap().to_string();
        assert_eq!(at("2026-03-01T00:00:00Z"), "2026-03-01T00:00:00.000Z");
        assert_eq!(at("2026-03-01T00:00:00.0010Z"), "2026-03-01T00:00:00.001Z");
        assert_eq!(at("2026-03-01T00:00:00.0001Z"), "2026-03-01T00:00:00.001Z");
        assert_eq!(
            at("2026-03-01T01:00:00.5000001+01:00"),
            "2026-03-01T00:00:00.501Z"
        );
    }

    #[test]
    fn key_requests() {
        assert!(matches!(
            key_request(br#"{"project":"acme"}"#),
            Ok(KeyRequest::Project(p)) if p == "acme"
        ));
        assert!(matches!(
            key_request(br#"{"project":"acme","admin":false}"#),
            Ok(KeyRequest::Project(_))
        ));
        assert!(matches!(
            key_request(br#"{"admin":true}"#),
            Ok(KeyRequest::Admin)
        ));
        for (body, want) in [
            (&br#"{}"#[..], vec!["project"]),
            (br#"{"admin":false}"#, vec!["project"]),
            (br#"{"project":"a","admin":true}"#, vec!["admin"]),
            (br#"{"project":1}"#, vec!["project"]),
            (br#"{"admin":"yes"}"#, vec!["admin"]),
            (br#"{"name":"a"}"#, vec!["name"]),
            (br#"[]"#, vec!["body"]),
            (b"not json", vec!["body"]),
            (b"", vec!["body"]),
        ] {
            let e = key_request(body).err().expect("refused");
            assert_eq!(e.code(), ErrorCode::Validation);
            assert_eq!(
                fields(e.details()),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
