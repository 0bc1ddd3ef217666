//! The cursor envelope, shared by every engine. A cursor carries the query's normalized filters
//! and order, the position (the last returned sort key), and whatever the engine needs to
//! resume, which is opaque here.
//!
//! It is URL-safe base64 of `version u8 | nonce[24] | XChaCha20-Poly1305(postcard(CursorState))`
//! with the tag at the end. The encryption key and a nonce key are derived from the store's
//! secret with HMAC-SHA256 under distinct labels. The nonce is synthetic (HMAC of the associated
//! data and the plaintext under the nonce key), so the same page always gets the same cursor and
//! no random source is needed per page; distinct payloads get distinct nonces. The associated
//! data binds the version, the engine's name and the project, so a holder can read neither the
//! filters nor the position, and any changed byte, another project's or another engine's
//! cursor, or an unknown version is rejected.

use super::filter::Filters;
use super::order::{Order, Position};
use crate::limits::MAX_CURSOR_CHARS;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Version 3 encrypts the payload (1 signed it in the clear; 2 was never released); version 4
/// adds the `anyTags` and `excludeTags` filters to the carried query; version 5 adds the span
/// conditions (`spanName`, `spanModel`, `spanKind`, `spanStatus`). A cursor of another
/// version is refused with "unsupported version": a walk begun before an upgrade starts over.
pub(crate) const CURSOR_VERSION: u8 = 5;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const DOMAIN: &[u8] = b"tracestore.cursor.v3\0";

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

/// The keys derived from the store's cursor secret, set up once at open rather than per page.
#[derive(Clone)]
pub(crate) struct CursorKey {
    aead: XChaCha20Poly1305,
    nonce: Hmac<Sha256>,
}

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(label);
    m.finalize().into_bytes().into()
}

impl CursorKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let enc = derive(secret, b"tracestore.cursor.encryption-key");
        let iv = derive(secret, b"tracestore.cursor.nonce-key");
        CursorKey {
            aead: XChaCha20Poly1305::new(&enc.into()),
            nonce: <Hmac<Sha256> as KeyInit>::new_from_slice(&iv)
                .expect("HMAC takes any key length"),
        }
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// The associated data: what a cursor is bound to without carrying it.
fn aad(engine: &str, project: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(DOMAIN.len() + 9 + engine.len() + project.len());
    a.extend_from_slice(DOMAIN);
    a.push(CURSOR_VERSION);
    a.extend_from_slice(&(engine.len() as u32).to_be_bytes());
    a.extend_from_slice(engine.as_bytes());
    a.extend_from_slice(&(project.len() as u32).to_be_bytes());
    a.extend_from_slice(project.as_bytes());
    a
}

/// Encrypts `state` for `project` of `engine`.
pub(crate) fn encode(key: &CursorKey, engine: &str, project: &str, state: &CursorState) -> String {
    let plain = postcard::to_allocvec(state).expect("postcard encodes cursor state");
    let aad = aad(engine, project);
    let mut n = key.nonce.clone();
    n.update(&aad);
    n.update(&plain);
    let digest = n.finalize().into_bytes();
    let nonce = XNonce::try_from(&digest[..NONCE_BYTES]).expect("24 of 32 digest bytes");
    let sealed = key
        .aead
        .encrypt(
            &nonce,
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .expect("encryption of a small buffer cannot fail");
    let mut bytes = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
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
    if bytes.len() < 1 + NONCE_BYTES + TAG_BYTES + 1 {
        return Err("is not a cursor issued by this store (truncated)".into());
    }
    if bytes[0] != CURSOR_VERSION {
        return Err(format!("has unsupported version {}", bytes[0]));
    }
    Ok(bytes)
}

/// Decrypts and decodes a cursor for `project` of `engine`.
pub(crate) fn decode(
    key: &CursorKey,
    engine: &str,
    project: &str,
    token: &str,
) -> Result<CursorState, String> {
    let bytes = check_shape(token)?;
    let (nonce, sealed) = bytes[1..].split_at(NONCE_BYTES);
    let nonce = XNonce::try_from(nonce).map_err(|_| "is not a valid cursor".to_string())?;
    let aad = aad(engine, project);
    let plain = key
        .aead
        .decrypt(
            &nonce,
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| "is not a cursor issued by this store for this project".to_string())?;
    let (state, rest) = postcard::take_from_bytes::<CursorState>(&plain)
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
                value: crate::query::order::SortValue::None,
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
    fn opaque_and_deterministic() {
        let secret = CursorKey::new(&[7u8; 32]);
        let mut st = state();
        st.filters.name = Some("support-agent".into());
        let c = encode(&secret, "redb", "p1", &st);
        assert_eq!(c, encode(&secret, "redb", "p1", &st));
        let raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        for needle in [&b"support"[..], b"trace-abc"] {
            assert!(!raw.windows(needle.len()).any(|w| w == needle));
        }
        let mut other = st.clone();
        other.position.id = "trace-abd".into();
        let d = encode(&secret, "redb", "p1", &other);
        assert_ne!(c[..40], d[..40], "distinct payloads get distinct nonces");
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
