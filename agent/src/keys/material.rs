//! Key material: generating new keys and sealing them under the KEK, and
//! opening sealed rows back into usable signing and verifying keys. The
//! kid, purpose and algorithm are the AEAD's associated data, so a sealed
//! key moved to another row does not open.

use super::*;

impl KeyRing {
    pub(super) fn new_key_row(
        &self,
        purpose: &Purpose,
        alg: Algorithm,
        state: KeyState,
        now: i64,
        activate_at: Option<i64>,
    ) -> Result<KeyRow, Error> {
        let kid = format!(
            "{}-{}",
            purpose.as_str().replace(':', "-"),
            hex::encode(random_bytes::<8>()?)
        );
        let rng = SystemRandom::new();
        let (private, public) = match alg {
            Algorithm::EdDSA => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| Error::Crypto)?;
                let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| Error::Crypto)?;
                (
                    SecretBytes::new(doc.as_ref().to_vec()),
                    pair.public_key().as_ref().to_vec(),
                )
            }
            Algorithm::ES256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| Error::Crypto)?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                        .map_err(|_| Error::Crypto)?;
                (
                    SecretBytes::new(doc.as_ref().to_vec()),
                    pair.public_key().as_ref().to_vec(),
                )
            }
            Algorithm::HS256 => (SecretBytes::new(random_bytes::<32>()?.to_vec()), Vec::new()),
        };
        let sealed = self
            .kek
            .seal(&aad(&kid, purpose.as_str(), alg.as_str()), private.expose())?;
        Ok(KeyRow {
            kid,
            purpose: purpose.as_str().to_string(),
            alg: alg.as_str().to_string(),
            state: state.as_str().to_string(),
            public_key: public,
            sealed_private: Some(sealed),
            created_at: now,
            activate_at,
            activated_at: (state == KeyState::Active).then_some(now),
            retire_at: None,
            retired_at: None,
        })
    }
}

pub(super) fn load_entry(kek: &Kek, row: KeyRow) -> Result<Entry, Error> {
    let kid = row.kid.clone();
    let alg = Algorithm::parse(&row.alg).map_err(|_| corrupt(&kid, "unknown algorithm"))?;
    let state = KeyState::parse(&row.state).ok_or_else(|| corrupt(&kid, "unknown state"))?;
    let purpose = Purpose::parse(&row.purpose).map_err(|_| corrupt(&kid, "unknown purpose"))?;
    let material = match (&row.sealed_private, state) {
        (_, KeyState::Retired) | (None, _) => None,
        (Some(sealed), _) => {
            let private = kek
                .open(&aad(&kid, &row.purpose, &row.alg), sealed)
                .ok_or_else(|| Error::Unseal { kid: kid.clone() })?;
            Some(Arc::new(material_of(&kid, alg, private, &row.public_key)?))
        }
    };
    if material.is_none() && state != KeyState::Retired {
        return Err(corrupt(&kid, "live key without private material"));
    }
    let decoding = match alg {
        Algorithm::EdDSA if row.public_key.len() == 32 => {
            Some(jsonwebtoken::DecodingKey::from_ed_der(&row.public_key))
        }
        Algorithm::ES256 if row.public_key.len() == 65 => {
            Some(jsonwebtoken::DecodingKey::from_ec_der(&row.public_key))
        }
        Algorithm::HS256 => match material.as_deref() {
            Some(Material::Hmac(_, secret)) => {
                jsonwebtoken::DecodingKey::from_secret(secret.expose()).ok()
            }
            _ => None,
        },
        _ => return Err(corrupt(&kid, "public key has the wrong length")),
    };
    Ok(Entry {
        row,
        purpose,
        alg,
        state,
        material,
        decoding,
    })
}

pub(super) fn material_of(
    kid: &str,
    alg: Algorithm,
    private: SecretBytes,
    public: &[u8],
) -> Result<Material, Error> {
    let rng = SystemRandom::new();
    let m = match alg {
        Algorithm::EdDSA => Material::Ed25519(
            Ed25519KeyPair::from_pkcs8(private.expose())
                .map_err(|_| corrupt(kid, "not an Ed25519 PKCS#8 key"))?,
        ),
        Algorithm::ES256 => Material::P256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, private.expose(), &rng)
                .map_err(|_| corrupt(kid, "not a P-256 PKCS#8 key"))?,
        ),
        Algorithm::HS256 => {
            if private.expose().len() < 32 {
                return Err(corrupt(kid, "HMAC secret shorter than 256 bits"));
            }
            Material::Hmac(
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, private.expose()),
                private,
            )
        }
    };
    let derived: &[u8] = match &m {
        Material::Ed25519(p) => p.public_key().as_ref(),
        Material::P256(p) => p.public_key().as_ref(),
        Material::Hmac(..) => &[],
    };
    if derived != public {
        return Err(corrupt(kid, "public key does not match the private key"));
    }
    Ok(m)
}
