//! API keys for adapters such as the HTTP server. Only a SHA-256 hash of each key is stored;
//! the plaintext is returned once, at creation.

use crate::error::{Error, Result};
use crate::schema::ApiKeyRecord;
use crate::store::Store;
use crate::time::Timestamp;
use crate::validate::check_project;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The key format: `ts_` + 8 hex prefix chars + `_` + 43 base64url secret chars.
const KEY_PREFIX: &str = "ts_";
/// Longest key accepted before hashing.
pub const MAX_API_KEY_BYTES: usize = 128;

/// A newly created key. `key` is the only copy of the plaintext.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewApiKey {
    /// The plaintext key: shown once, never stored.
    pub key: String,
    /// The key's public prefix, by which it is listed and revoked.
    pub prefix: String,
    /// The project the key belongs to; empty for an admin key.
    pub project: String,
    /// An admin key: it manages keys and belongs to no project.
    pub admin: bool,
}

/// Who a key speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// A project key: every read and write it makes is in this project.
    Project(String),
    /// An admin key: key management, no project data.
    Admin,
}

/// What `list_api_keys` shows of a key: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ApiKeyInfo {
    /// The key's public prefix.
    pub prefix: String,
    /// The project the key belongs to; empty for an admin key.
    pub project: String,
    /// An admin key.
    pub admin: bool,
    /// When the key was created.
    pub created_at: Timestamp,
    /// When it was revoked; null while it is valid.
    pub revoked_at: Option<Timestamp>,
}

fn hash(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two byte strings of equal length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Admin keys are stored with this (otherwise invalid, since a project name has at least one
/// byte) project, so the key record needs no new field.
const ADMIN_PROJECT: &str = "";

/// The prefix as `list_api_keys` prints it, accepted with or without the `ts_` of the key.
fn normal_prefix(prefix: &str) -> &str {
    prefix.strip_prefix(KEY_PREFIX).unwrap_or(prefix)
}

impl Store {
    /// Creates a key for `project` and returns its plaintext, once.
    pub fn create_api_key(&self, project: &str) -> Result<NewApiKey> {
        check_project(project)?;
        self.new_key(project)
    }

    /// Creates an admin key (key management, no project) and returns its plaintext, once.
    pub fn create_admin_key(&self) -> Result<NewApiKey> {
        self.new_key(ADMIN_PROJECT)
    }

    fn new_key(&self, project: &str) -> Result<NewApiKey> {
        let mut raw = [0u8; 36];
        getrandom::fill(&mut raw).map_err(|e| Error::storage(e.to_string()))?;
        let prefix: String = raw[..4].iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("{KEY_PREFIX}{prefix}_{}", URL_SAFE_NO_PAD.encode(&raw[4..]));
        let rec = ApiKeyRecord {
            prefix: prefix.clone(),
            project: project.to_string(),
            created_ms: Timestamp::now().as_millis(),
            revoked_ms: None,
        };
        self.engine().put_api_key(&hash(&key), &rec)?;
        Ok(NewApiKey {
            key,
            prefix,
            project: project.to_string(),
            admin: project == ADMIN_PROJECT,
        })
    }

    /// The project a key belongs to: `UNAUTHORIZED` for a malformed, unknown or revoked key,
    /// `FORBIDDEN` for an admin key (it reaches no project's data).
    pub fn authenticate(&self, key: &str) -> Result<String> {
        match self.authenticate_principal(key)? {
            Principal::Project(p) => Ok(p),
            Principal::Admin => Err(Error::forbidden("an admin key reaches no project's data")),
        }
    }

    /// Who a key speaks for, or `UNAUTHORIZED` for a malformed, unknown or revoked key. Each
    /// call reads the store, so a key revoked a moment ago is refused at once.
    pub fn authenticate_principal(&self, key: &str) -> Result<Principal> {
        if key.len() > MAX_API_KEY_BYTES || !key.starts_with(KEY_PREFIX) {
            return Err(Error::unauthorized("invalid API key"));
        }
        let Some(rec) = self.engine().api_key(&hash(key))? else {
            return Err(Error::unauthorized("invalid API key"));
        };
        // The lookup is by hash; compare the embedded prefix in constant time as well, so a
        // key is accepted only when both agree.
        let given_prefix = key
            .get(KEY_PREFIX.len()..KEY_PREFIX.len() + 8)
            .unwrap_or("");
        if !ct_eq(given_prefix.as_bytes(), rec.prefix.as_bytes()) {
            return Err(Error::unauthorized("invalid API key"));
        }
        if rec.revoked_ms.is_some() {
            return Err(Error::unauthorized("invalid API key"));
        }
        Ok(if rec.project == ADMIN_PROJECT {
            Principal::Admin
        } else {
            Principal::Project(rec.project)
        })
    }

    /// Every key's prefix, project and dates.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let mut out = Vec::new();
        for r in self.engine().api_keys()? {
            out.push(ApiKeyInfo {
                prefix: r.prefix,
                admin: r.project == ADMIN_PROJECT,
                project: r.project,
                created_at: Timestamp::from_millis_unchecked(r.created_ms),
                revoked_at: r.revoked_ms.map(Timestamp::from_millis_unchecked),
            });
        }
        out.sort_by(|a, b| (a.created_at, &a.prefix).cmp(&(b.created_at, &b.prefix)));
        Ok(out)
    }

    /// Revokes every key with this prefix (as listed, with or without `ts_`); returns how many
    /// were revoked.
    pub fn revoke_api_key(&self, prefix: &str) -> Result<usize> {
        self.engine()
            .revoke_api_keys(normal_prefix(prefix), Timestamp::now().as_millis())
    }
}
