//! Signed checkpoints: Ed25519 over (host, seq, head hash, Merkle root, time).
//!
//! A checkpoint is what makes the chain *tamper-evident* rather than merely
//! self-consistent: whoever can write the database can recompute every chain
//! hash, but cannot sign. The key ring owns the `audit` signing key; this
//! module only needs the small [`CheckpointSigner`] seam so the key ring can
//! be plugged in without the audit log knowing about rotation or storage.
//! The public key is stored with every checkpoint so `warden audit verify`
//! works offline; checking it against the key ring's published keys (JWKS)
//! is what defeats an attacker who re-signs with a key of their own.

use super::chain::Hash;
use super::Error;
use crate::store::audit::CheckpointRow;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// Signs checkpoints; implemented by the key ring's `audit` key.
pub trait CheckpointSigner: Send + Sync {
    /// Key id recorded with each checkpoint.
    fn kid(&self) -> String;
    /// Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
    /// Raw 32-byte Ed25519 public key.
    fn public_key(&self) -> Vec<u8>;
}

/// An Ed25519 signer over a ring key pair (tests, and a fallback until the
/// key ring is wired).
pub struct RingSigner {
    kid: String,
    pair: Ed25519KeyPair,
}

impl RingSigner {
    /// Generates a fresh key pair.
    pub fn generate(kid: &str) -> Result<RingSigner, Error> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| Error::Signing("cannot generate an Ed25519 key".into()))?;
        RingSigner::from_pkcs8(kid, pkcs8.as_ref())
    }

    /// Loads a PKCS#8 v2 Ed25519 key.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<RingSigner, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| Error::Signing(format!("invalid Ed25519 PKCS#8 key: {e}")))?;
        Ok(RingSigner {
            kid: kid.to_string(),
            pair,
        })
    }
}

impl CheckpointSigner for RingSigner {
    fn kid(&self) -> String {
        self.kid.clone()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.pair.sign(message).as_ref().to_vec())
    }

    fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

/// The exact bytes a checkpoint signature covers: canonical JSON with sorted
/// keys, hashes in lowercase hex, and a `type` for domain separation.
pub fn signing_payload(
    host: &str,
    seq: u64,
    head_hash: &[u8],
    merkle_root: &[u8],
    signed_at_ms: i64,
    kid: &str,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str("{\"head_hash\":\"");
    out.push_str(&hex::encode(head_hash));
    out.push_str("\",\"host\":");
    super::record::canonical(&serde_json::Value::String(host.to_string()), &mut out);
    out.push_str(",\"kid\":");
    super::record::canonical(&serde_json::Value::String(kid.to_string()), &mut out);
    out.push_str(",\"merkle_root\":\"");
    out.push_str(&hex::encode(merkle_root));
    out.push_str(&format!(
        "\",\"seq\":{seq},\"signed_at_ms\":{signed_at_ms},\"type\":\"warden.audit.checkpoint\",\"v\":1}}"
    ));
    out.into_bytes()
}

/// Builds and signs a checkpoint.
pub fn sign(
    signer: &dyn CheckpointSigner,
    host: &str,
    seq: u64,
    head_hash: &Hash,
    merkle_root: &Hash,
    frontier: Vec<u8>,
    signed_at_ms: i64,
) -> Result<CheckpointRow, Error> {
    let kid = signer.kid();
    let public_key = signer.public_key();
    let payload = signing_payload(host, seq, head_hash, merkle_root, signed_at_ms, &kid);
    let signature = signer.sign(&payload)?;
    // kid, key and signature come from separate calls; a key rotation in
    // between would store a checkpoint that never verifies. Check it now and
    // let the next commit retry instead.
    let valid = UnparsedPublicKey::new(&ED25519, &public_key)
        .verify(&payload, &signature)
        .is_ok();
    if !valid || signer.kid() != kid {
        return Err(Error::Signing(format!(
            "checkpoint signature by {kid} does not verify with its public key (key rotated meanwhile?)"
        )));
    }
    Ok(CheckpointRow {
        seq,
        head_hash: head_hash.to_vec(),
        merkle_root: merkle_root.to_vec(),
        frontier,
        signed_at_ms,
        kid,
        public_key,
        signature,
    })
}

/// Checks a checkpoint's signature against its stored public key.
pub fn signature_valid(host: &str, cp: &CheckpointRow) -> bool {
    let payload = signing_payload(
        host,
        cp.seq,
        &cp.head_hash,
        &cp.merkle_root,
        cp.signed_at_ms,
        &cp.kid,
    );
    UnparsedPublicKey::new(&ED25519, &cp.public_key)
        .verify(&payload, &cp.signature)
        .is_ok()
}
