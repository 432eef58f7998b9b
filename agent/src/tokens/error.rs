//! Token failures, split in two: [`Invalid`] is an answer (a token that does
//! not verify is a normal outcome, reported as a `reason`), [`Error`] is a
//! failed operation (issue, refresh, revoke) mapped to an HTTP error.

/// Why a token did not verify. Each maps to one stable `reason` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// Not a compact JWS, bad base64/JSON, missing or malformed `kid`, oversized.
    Malformed,
    /// `alg` is `none`, unsupported, or not the algorithm of the key named by `kid`.
    BadAlgorithm,
    /// No key with that `kid` may verify (never existed, retired, other purpose).
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    /// An access token where a task token is required, or the reverse.
    WrongType,
    /// Its session was revoked, or its user epoch is stale.
    Revoked,
}

impl Invalid {
    pub fn code(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::BadAlgorithm => "bad_algorithm",
            Invalid::UnknownKid => "unknown_kid",
            Invalid::BadSignature => "bad_signature",
            Invalid::Expired => "expired",
            Invalid::NotYetValid => "not_yet_valid",
            Invalid::WrongIssuer => "wrong_issuer",
            Invalid::WrongAudience => "wrong_audience",
            Invalid::WrongType => "wrong_type",
            Invalid::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What went wrong issuing, refreshing or revoking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("unknown subject: the user has no roles in that org")]
    UnknownSubject,
    #[error("refresh token is not valid")]
    RefreshInvalid,
    #[error("refresh token has expired")]
    RefreshExpired,
    #[error("refresh token was already used; the session has been revoked")]
    RefreshReused,
    #[error("session has been revoked")]
    SessionRevoked,
    #[error("token is not valid: {0}")]
    TokenInvalid(Invalid),
    #[error(transparent)]
    Keys(#[from] crate::keys::Error),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("cannot encode token: {0}")]
    Encode(String),
}

impl Error {
    pub(crate) fn input(field: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}
