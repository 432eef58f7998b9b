//! The key-encryption key (KEK) and the AEAD that seals private keys at rest.
//!
//! Why a KEK: the SQLite file is copied into backups and read by tools; a
//! stolen copy must not yield signing keys. The KEK lives outside the state
//! directory (a systemd credential or a root-only file), so the database alone
//! is useless. Dev mode may generate one under the state directory, loudly,
//! because convenience there is worth more than the protection.

use super::Error;
use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use std::path::{Path, PathBuf};

/// File name of the KEK inside `$CREDENTIALS_DIRECTORY` (systemd
/// `LoadCredential=warden-kek:/etc/warden/kek`).
pub const CREDENTIAL_NAME: &str = "warden-kek";
/// File name of the generated development KEK inside the state directory.
pub const DEV_KEK_FILE: &str = "dev-kek.key";

/// Where the KEK came from; shown at start-up and in status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// Read from a file (config, `WARDEN_KEK_FILE` or systemd credential).
    File(PathBuf),
    /// Generated (or reused) development KEK in the state directory.
    Dev(PathBuf),
}

/// Private bytes: no Debug, no Serialize, overwritten on drop.
pub(crate) struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub(crate) fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // Best effort: the optimiser may keep copies, but not this one.
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

/// The key-encryption key.
pub struct Kek {
    key: LessSafeKey,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// Builds a KEK from 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Kek> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Kek {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Generates a random KEK (tests and dev mode).
    pub fn generate() -> Result<Kek, Error> {
        let bytes = random_bytes::<32>()?;
        Kek::from_bytes(&bytes).ok_or(Error::Crypto)
    }

    /// Reads a KEK file: 32 raw bytes, 64 hex digits or base64 of 32 bytes.
    /// Files readable by other users are refused.
    pub fn load(path: &Path) -> Result<Kek, Error> {
        let invalid = |reason: &str| Error::KekInvalid {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(|source| Error::KekRead {
            path: path.to_path_buf(),
            source,
        })?;
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o007 != 0 {
                return Err(invalid(
                    "it is accessible to other users (chmod 0600 or 0400)",
                ));
            }
        }
        let raw = SecretBytes::new(std::fs::read(path).map_err(|source| Error::KekRead {
            path: path.to_path_buf(),
            source,
        })?);
        let bytes = decode_kek(raw.expose())
            .ok_or_else(|| invalid("expected 32 raw bytes, 64 hex digits or base64 of 32 bytes"))?;
        Kek::from_bytes(bytes.expose()).ok_or_else(|| invalid("not a valid AES-256 key"))
    }

    /// Resolves the KEK: `configured` path, else `WARDEN_KEK_FILE`, else the
    /// systemd credential; without any, production fails and dev generates
    /// (or reuses) one under `state_dir`.
    pub fn resolve(
        configured: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        production: bool,
        state_dir: &Path,
    ) -> Result<(Kek, KekSource), Error> {
        let from_env = env("WARDEN_KEK_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let from_creds = env("CREDENTIALS_DIRECTORY")
            .filter(|v| !v.is_empty())
            .map(|d| Path::new(&d).join(CREDENTIAL_NAME))
            .filter(|p| p.exists());
        if let Some(path) = configured
            .map(Path::to_path_buf)
            .or(from_env)
            .or(from_creds)
        {
            return Ok((Kek::load(&path)?, KekSource::File(path)));
        }
        if production {
            return Err(Error::KekMissing);
        }
        let path = state_dir.join(DEV_KEK_FILE);
        if !path.exists() {
            let bytes = random_bytes::<32>()?;
            write_private(&path, hex::encode(bytes).as_bytes()).map_err(|source| {
                Error::KekRead {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        tracing::warn!(
            path = %path.display(),
            "DEVELOPMENT KEY-ENCRYPTION KEY in use: private keys are sealed with a key stored next to them; never run production like this"
        );
        Ok((Kek::load(&path)?, KekSource::Dev(path)))
    }

    /// Seals `plaintext` with a fresh random nonce; output is nonce || ciphertext || tag.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| Error::Crypto)?;
        let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&in_out);
        in_out.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    /// Opens what [`Kek::seal`] produced; `None` on any mismatch (wrong KEK,
    /// wrong associated data, tampering).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<SecretBytes> {
        if sealed.len() < NONCE_LEN + aead::MAX_TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = SecretBytes::new(ciphertext.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut in_out.0)
            .ok()?
            .len();
        in_out.0.truncate(len);
        Some(in_out)
    }
}

fn decode_kek(raw: &[u8]) -> Option<SecretBytes> {
    if raw.len() == 32 {
        return Some(SecretBytes::new(raw.to_vec()));
    }
    let text = std::str::from_utf8(raw).ok()?.trim();
    if text.len() == 64 {
        if let Ok(b) = hex::decode(text) {
            return Some(SecretBytes::new(b));
        }
    }
    let b = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .filter(|b| b.len() == 32)?;
    Some(SecretBytes::new(b))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Random bytes from the system CSPRNG (the only randomness source).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    crate::random::bytes::<N>().map_err(|_| Error::Crypto)
}
