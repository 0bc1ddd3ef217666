//! Keyset cursors. A cursor carries the position (the last returned `(startTime, id)`), the
//! query's normalized filters and an optional block hint for the bitmap executor. It is
//! URL-safe base64 of `version u8 | postcard(CursorState) | mac[16]`, where the MAC is
//! HMAC-SHA256 keyed by the store's secret over the project name, the version and the payload.
//! Any change to any byte, another project's cursor, or an unknown version is rejected.

use super::parse::Filters;
use crate::limits::MAX_CURSOR_CHARS;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub(crate) const CURSOR_VERSION: u8 = 1;
const MAC_BYTES: usize = 16;
const DOMAIN: &[u8] = b"tracestore.cursor.v1\0";

/// Blocks the bitmap executor may skip when it continues: every block in
/// `resume+1 .. last_block` held only rows newer than the cursor when it was issued, and blocks
/// before the then-last block never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockHint {
    pub last_block: u32,
    pub resume: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CursorState {
    pub filters: Filters,
    pub start_ms: i64,
    pub id: String,
    /// The project's row count when the walk began. Rows allocated later (new traces, and
    /// traces whose startTime moved) are not part of this walk, so no trace can appear twice.
    pub row_limit: u32,
    pub hint: Option<BlockHint>,
}

/// The store's cursor secret, keyed once: HMAC's key setup (two SHA-256 blocks) is done at open,
/// not on every page.
#[derive(Clone)]
pub(crate) struct CursorKey(Hmac<Sha256>);

impl CursorKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        CursorKey(
            <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length"),
        )
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

fn mac(key: &CursorKey, project: &str, signed: &[u8]) -> Hmac<Sha256> {
    let mut m = key.0.clone();
    m.update(DOMAIN);
    m.update(&(project.len() as u32).to_be_bytes());
    m.update(project.as_bytes());
    m.update(signed);
    m
}

pub(crate) fn encode(key: &CursorKey, project: &str, state: &CursorState) -> String {
    let mut bytes = vec![CURSOR_VERSION];
    bytes.extend(postcard::to_allocvec(state).expect("postcard encodes cursor state"));
    let tag = mac(key, project, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag[..MAC_BYTES]);
    let s = URL_SAFE_NO_PAD.encode(bytes);
    debug_assert!(s.len() <= MAX_CURSOR_CHARS);
    s
}

/// Checks what can be checked without the secret: length, alphabet, version.
pub(crate) fn check_shape(token: &str) -> Result<Vec<u8>, String> {
    if token.is_empty() {
        return Err("must not be empty".into());
    }
    if token.len() > MAX_CURSOR_CHARS {
        return Err("is not a cursor issued by this store".into());
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| "is not a cursor issued by this store (bad encoding)".to_string())?;
    if bytes.len() < 1 + MAC_BYTES + 1 {
        return Err("is not a cursor issued by this store (truncated)".into());
    }
    if bytes[0] != CURSOR_VERSION {
        return Err(format!("has unsupported version {}", bytes[0]));
    }
    Ok(bytes)
}

/// Verifies and decodes a cursor for `project`.
pub(crate) fn decode(key: &CursorKey, project: &str, token: &str) -> Result<CursorState, String> {
    let bytes = check_shape(token)?;
    let (signed, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
    mac(key, project, signed)
        .verify_truncated_left(tag)
        .map_err(|_| "is not a cursor issued by this store for this project".to_string())?;
    let (state, rest) = postcard::take_from_bytes::<CursorState>(&signed[1..])
        .map_err(|_| "is not a valid cursor".to_string())?;
    if !rest.is_empty() {
        return Err("is not a valid cursor".into());
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> CursorState {
        CursorState {
            filters: Filters {
                status: Some(1),
                ..Default::default()
            },
            start_ms: 1_700_000_000_000,
            id: "trace-abc".into(),
            row_limit: 77,
            hint: Some(BlockHint {
                last_block: 9,
                resume: Some(3),
            }),
        }
    }

    #[test]
    fn round_trip_and_binding() {
        let secret = CursorKey::new(&[7u8; 32]);
        let c = encode(&secret, "p1", &state());
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode(&secret, "p1", &c).unwrap(), state());
        assert!(decode(&secret, "p2", &c).is_err());
        assert!(decode(&CursorKey::new(&[8u8; 32]), "p1", &c).is_err());
        assert!(decode(&secret, "p1", &c[..c.len() - 1]).is_err());
        assert!(decode(&secret, "p1", "%%%").is_err());
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let secret = CursorKey::new(&[7u8; 32]);
        let c = encode(&secret, "p1", &state());
        let raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut m = raw.clone();
                m[i] ^= 1 << bit;
                let t = URL_SAFE_NO_PAD.encode(&m);
                assert!(decode(&secret, "p1", &t).is_err(), "byte {i} bit {bit}");
            }
        }
    }
}
