//! JWT encoding and signature verification.
//!
//! Signing is ours (ring: the compact JWS is two base64url segments and a
//! signature over them); verification goes through `jsonwebtoken`, an
//! independent implementation, with the algorithm pinned to the one of the
//! key named by `kid`, so a token can never choose how it is checked.

use super::{Claims, Invalid};
use crate::keys::{Algorithm, KeyHandle};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use serde::Serialize;
use std::sync::LazyLock;

/// Longest token we look at; ours are well under 2 KiB.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// Signs `claims` with `key` into a compact JWS.
pub fn encode(key: &KeyHandle, claims: &Claims) -> Result<String, super::Error> {
    let header = serde_json::to_vec(&Header {
        alg: key.alg().as_str(),
        typ: "JWT",
        kid: key.kid(),
    })
    .map_err(|e| super::Error::Encode(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| super::Error::Encode(e.to_string()))?;
    let mut out = String::with_capacity(64 + header.len() * 4 / 3 + payload.len() * 4 / 3 + 90);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
    Ok(out)
}

/// The parts of the header verification needs.
pub struct Unverified {
    pub kid: String,
    pub alg: Option<Algorithm>,
}

/// Reads the header without trusting it. Rejects `alg: none` in any casing
/// and any algorithm we never issue as `BadAlgorithm`; a missing or malformed
/// `kid` as `Malformed`.
pub fn peek(token: &str) -> Result<Unverified, Invalid> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Err(Invalid::Malformed);
    }
    if token.split('.').count() != 3 {
        return Err(Invalid::Malformed);
    }
    let header = match jsonwebtoken::decode_header(token) {
        Ok(h) => h,
        Err(_) => return Err(classify_bad_header(token)),
    };
    let alg = match header.alg {
        jsonwebtoken::Algorithm::EdDSA => Some(Algorithm::EdDSA),
        jsonwebtoken::Algorithm::ES256 => Some(Algorithm::ES256),
        jsonwebtoken::Algorithm::HS256 => Some(Algorithm::HS256),
        _ => None,
    };
    let kid = header.kid.ok_or(Invalid::Malformed)?;
    if kid.is_empty()
        || kid.len() > 128
        || !kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Invalid::Malformed);
    }
    Ok(Unverified { kid, alg })
}

/// Algorithm names the JWT library parses; a header naming one of these
/// failed for another reason.
const KNOWN_ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384",
    "PS512", "EdDSA",
];

// Cold path: tell "alg none / unsupported alg" apart from plain garbage.
fn classify_bad_header(token: &str) -> Invalid {
    let Some(segment) = token.split('.').next() else {
        return Invalid::Malformed;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(segment) else {
        return Invalid::Malformed;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(map)) => match map.get("alg") {
            Some(serde_json::Value::String(alg)) if !KNOWN_ALGS.contains(&alg.as_str()) => {
                Invalid::BadAlgorithm
            }
            _ => Invalid::Malformed,
        },
        _ => Invalid::Malformed,
    }
}

fn validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(alg);
    // Time, issuer and audience are checked by us against the injected clock,
    // on every use (cached or not); the library checks alg and signature.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    v
}

static VALIDATION_EDDSA: LazyLock<jsonwebtoken::Validation> =
    LazyLock::new(|| validation(jsonwebtoken::Algorithm::EdDSA));
static VALIDATION_ES256: LazyLock<jsonwebtoken::Validation> =
    LazyLock::new(|| validation(jsonwebtoken::Algorithm::ES256));
static VALIDATION_HS256: LazyLock<jsonwebtoken::Validation> =
    LazyLock::new(|| validation(jsonwebtoken::Algorithm::HS256));

/// Checks the signature of `token` with `key` (algorithm pinned to the
/// key's) and decodes its claims.
pub fn verify(token: &str, key: &KeyHandle) -> Result<Claims, Invalid> {
    let decoding = key.decoding_key().ok_or(Invalid::UnknownKid)?;
    let validation: &jsonwebtoken::Validation = match key.alg() {
        Algorithm::EdDSA => &VALIDATION_EDDSA,
        Algorithm::ES256 => &VALIDATION_ES256,
        Algorithm::HS256 => &VALIDATION_HS256,
    };
    match jsonwebtoken::decode::<Claims>(token, decoding, validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => Invalid::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::MissingAlgorithm => Invalid::BadAlgorithm,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_)
            | ErrorKind::InvalidClaimFormat(_) => Invalid::Malformed,
            // Anything else is a failure to prove authenticity.
            _ => Invalid::BadSignature,
        }),
    }
}
