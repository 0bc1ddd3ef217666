//! The cursor envelope, shared by every engine. A cursor carries the query's normalized filters
//! and order, the position (the last returned sort key), and whatever the engine needs to
//! resume, which is opaque here. It is URL-safe base64 of
//! `version u8 | postcard(CursorState) | mac[16]`, where the MAC is HMAC-SHA256 keyed by the
//! store's secret over the engine's name, the project name, the version and the payload. Any
//! change to any byte, another project's or another engine's cursor, or an unknown version is
//! rejected.

use super::filter::Filters;
use super::order::{Order, Position};
use crate::limits::MAX_CURSOR_CHARS;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The envelope's version byte. The payload layout changed once (the order and the engine's
/// resume bytes replaced redb row numbers in the envelope) without a new version byte, since
/// cursors are not stored: the MAC's domain changed with it, so a cursor from an older build
/// fails verification like any foreign cursor (a 400 on `cursor`, never a misread).
pub(crate) const CURSOR_VERSION: u8 = 1;
const MAC_BYTES: usize = 16;
const DOMAIN: &[u8] = b"tracestore.cursor.v1.engine\0";

/// What a cursor carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CursorState {
    pub filters: Filters,
    pub order: Order,
    /// The sort key of the last trace the page returned.
    pub position: Position,
    /// The engine's own resume state (for redb: the walk's row limit and a block hint).
    pub resume: Vec<u8>,
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

fn mac(key: &CursorKey, engine: &str, project: &str, signed: &[u8]) -> Hmac<Sha256> {
    let mut m = key.0.clone();
    m.update(DOMAIN);
    m.update(&(engine.len() as u32).to_be_bytes());
    m.update(engine.as_bytes());
    m.update(&(project.len() as u32).to_be_bytes());
    m.update(project.as_bytes());
    m.update(signed);
    m
}

/// Signs `state` for `project` of `engine`.
pub(crate) fn encode(key: &CursorKey, engine: &str, project: &str, state: &CursorState) -> String {
    let mut bytes = vec![CURSOR_VERSION];
    bytes.extend(postcard::to_allocvec(state).expect("postcard encodes cursor state"));
    let tag = mac(key, engine, project, &bytes).finalize().into_bytes();
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

/// Verifies and decodes a cursor for `project` of `engine`.
pub(crate) fn decode(
    key: &CursorKey,
    engine: &str,
    project: &str,
    token: &str,
) -> Result<CursorState, String> {
    let bytes = check_shape(token)?;
    let (signed, tag) = bytes.split_at(bytes.len() - MAC_BYTES);
    mac(key, engine, project, signed)
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
            order: Order::StartTimeDesc,
            position: Position {
                start_ms: 1_700_000_000_000,
                id: "trace-abc".into(),
            },
            resume: vec![77, 1, 9, 1, 3],
        }
    }

    #[test]
    fn round_trip_and_binding() {
        let secret = CursorKey::new(&[7u8; 32]);
        let c = encode(&secret, "redb", "p1", &state());
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode(&secret, "redb", "p1", &c).unwrap(), state());
        assert!(decode(&secret, "redb", "p2", &c).is_err());
        assert!(decode(&secret, "clickhouse", "p1", &c).is_err());
        assert!(decode(&CursorKey::new(&[8u8; 32]), "redb", "p1", &c).is_err());
        assert!(decode(&secret, "redb", "p1", &c[..c.len() - 1]).is_err());
        assert!(decode(&secret, "redb", "p1", "%%%").is_err());
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let secret = CursorKey::new(&[7u8; 32]);
        let c = encode(&secret, "redb", "p1", &state());
        let raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut m = raw.clone();
                m[i] ^= 1 << bit;
                let t = URL_SAFE_NO_PAD.encode(&m);
                assert!(
                    decode(&secret, "redb", "p1", &t).is_err(),
                    "byte {i} bit {bit}"
                );
            }
        }
    }
}
