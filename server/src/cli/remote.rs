//! The HTTP client behind `--server`: one request at a time to a running `tracestore serve`,
//! with its error envelope turned into a [`CliError`].

use super::CliError;
use serde_json::Value;
use std::time::Duration;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in all (a large retention runs on the server meanwhile).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A running server at a base URL such as `http://127.0.0.1:8080`, spoken to with one key.
pub(super) struct Remote {
    base: reqwest::Url,
    key: String,
    /// Which flag gave the key, for messages (`--admin-key` or `--key`).
    key_flag: &'static str,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    pub(super) fn new(server: &str, key: String, key_flag: &'static str) -> Result<Self, CliError> {
        let base = reqwest::Url::parse(server).map_err(|e| {
            CliError::new(format!(
                "--server {server:?} is not a URL ({e}); pass one such as http://127.0.0.1:8080"
            ))
        })?;
        match base.scheme() {
            "http" => {}
            "https" => {
                return Err(CliError::new(
                    "--server: this build speaks plain http:// only (put the server on a \
                     loopback or private address, or reach it through a tunnel)",
                ))
            }
            other => {
                return Err(CliError::new(format!(
                "--server: unsupported scheme {other:?}; pass a URL such as http://127.0.0.1:8080"
            )))
            }
        }
        if base.cannot_be_a_base() || base.query().is_some() {
            return Err(CliError::new(format!(
                "--server {server:?}: pass the server's base URL, such as http://127.0.0.1:8080"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| CliError::new(format!("cannot start the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
        Ok(Remote {
            base,
            key,
            key_flag,
            client,
            runtime,
        })
    }

    /// The URL of `segments` under the base URL, with `query` pairs.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends one request and returns the `data` of a 2xx envelope.
    pub(super) fn call(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, RemoteError> {
        let url = self.url(segments, query);
        let mut req = self
            .client
            .request(method.clone(), url.clone())
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, text) = self
            .runtime
            .block_on(async {
                let res = req.send().await?;
                let status = res.status();
                let text = res.text().await?;
                Ok::<_, reqwest::Error>((status, text))
            })
            .map_err(|e| {
                RemoteError::other(format!(
                    "cannot reach the server at {}: {}",
                    self.base,
                    error_chain(&e)
                ))
            })?;
        let envelope: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return match envelope {
                Some(mut v) if v.get("data").is_some() => Ok(v["data"].take()),
                _ => Err(RemoteError::other(format!(
                    "{method} {url}: HTTP {status} without the JSON envelope (is {} a tracestore server?)",
                    self.base
                ))),
            };
        }
        let Some(err) = envelope.as_ref().and_then(|v| v.get("error")) else {
            let snippet: String = text.chars().take(200).collect();
            return Err(RemoteError::other(format!(
                "{method} {url}: HTTP {status} (is {} a tracestore server, of this version?): {snippet}",
                self.base
            )));
        };
        let code = err["code"].as_str().unwrap_or("?");
        let message = err["message"].as_str().unwrap_or("");
        let details = err["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| {
                        format!(
                            "{}: {}",
                            x["field"].as_str().unwrap_or("?"),
                            x["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let hint = match status.as_u16() {
            401 => format!(" (check {})", self.key_flag),
            403 if self.key_flag == "--admin-key" => {
                " (--admin-key must be an admin key: `tracestore keys create --admin`)".to_string()
            }
            403 => " (--key must be a project key, not an admin key)".to_string(),
            _ => String::new(),
        };
        Err(RemoteError {
            code: Some(code.to_string()),
            error: CliError::with_details(
                format!(
                    "the server answered HTTP {}: {message} ({code}){hint}",
                    status.as_u16()
                ),
                details,
            ),
        })
    }
}

/// A failed call: the envelope's error code when the server sent one, and the message to print.
#[derive(Debug)]
pub(super) struct RemoteError {
    pub(super) code: Option<String>,
    pub(super) error: CliError,
}

impl RemoteError {
    fn other(message: String) -> Self {
        RemoteError {
            code: None,
            error: CliError::new(message),
        }
    }
}

impl From<RemoteError> for CliError {
    fn from(e: RemoteError) -> Self {
        e.error
    }
}

/// An error with its causes, such as "error sending request: ...: Connection refused".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
