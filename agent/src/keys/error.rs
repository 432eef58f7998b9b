//! What can go wrong with keys. KEK problems are start-up errors (the agent
//! must not run with keys it cannot open); life-cycle conflicts are operator
//! errors with their own API codes.

use std::path::PathBuf;

/// What went wrong with the key ring or its key-encryption key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no key-encryption key: set WARDEN_KEK_FILE, keys.kek_file, or provide the `warden-kek` systemd credential (production mode never generates one)")]
    KekMissing,
    #[error("cannot read key-encryption key {path}: {source}")]
    KekRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key-encryption key {path} is invalid: {reason}")]
    KekInvalid { path: PathBuf, reason: String },
    #[error("key {kid} cannot be decrypted: wrong key-encryption key or tampered key store")]
    Unseal { kid: String },
    #[error(
        "invalid key purpose {0:?}: expected jwt, task, audit, webhook:<name> or outbound:<name>"
    )]
    BadPurpose(String),
    #[error("unsupported algorithm {0:?}: expected EdDSA, ES256 or HS256")]
    BadAlgorithm(String),
    #[error("algorithm {alg} cannot be used for purpose {purpose}")]
    AlgorithmNotAllowed { alg: &'static str, purpose: String },
    #[error("no active key for purpose {0}")]
    NoActiveKey(String),
    #[error("unknown key {0}")]
    UnknownKey(String),
    #[error("a rotation is already pending for purpose {purpose} (key {kid})")]
    RotationPending { purpose: String, kid: String },
    #[error("nothing to roll back for purpose {0}: no pending key and no previous key still in its grace period")]
    NothingToRollBack(String),
    #[error("key {0} is the active signing key; rotate first, then retire it")]
    RetireActive(String),
    #[error("key {0} is not an asymmetric signing key")]
    NotAsymmetric(String),
    #[error("key generation failed")]
    Crypto,
    #[error("stored key {kid} is invalid: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}
