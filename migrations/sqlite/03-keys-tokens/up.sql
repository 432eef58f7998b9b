-- Keys and tokens: the key ring, login sessions (refresh-token families),
-- refresh tokens (stored hashed) and per-user revocation epochs.

-- Every signing/MAC key the agent holds. Private material is sealed with the
-- key-encryption key (AEAD, the kid/purpose/alg as associated data) and wiped
-- (set NULL) once the key is retired.
CREATE TABLE keys (
    kid            TEXT PRIMARY KEY NOT NULL,
    purpose        TEXT NOT NULL,
    alg            TEXT NOT NULL CHECK (alg IN ('EdDSA', 'ES256', 'HS256')),
    state          TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retiring', 'retired')),
    public_key     BLOB NOT NULL,
    sealed_private BLOB,
    created_at     INTEGER NOT NULL,
    activate_at    INTEGER,
    activated_at   INTEGER,
    retire_at      INTEGER,
    retired_at     INTEGER
) STRICT;
CREATE INDEX keys_by_purpose ON keys(purpose, state);

-- Bumped to revoke every session (and every access token) of a user at once:
-- tokens carry the epoch they were issued under.
CREATE TABLE user_epochs (
    user_id TEXT PRIMARY KEY NOT NULL,
    epoch   INTEGER NOT NULL
) STRICT;

-- One login = one session = one refresh-token family.
CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY NOT NULL,
    user_id             TEXT NOT NULL,
    org_id              TEXT NOT NULL,
    roles               TEXT NOT NULL, -- JSON array, to detect role changes
    amr                 TEXT NOT NULL, -- JSON array
    device_id           TEXT,
    epoch               INTEGER NOT NULL,
    auth_time           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    last_refresh_at     INTEGER NOT NULL,
    revoked_at          INTEGER,
    revoked_reason      TEXT
) STRICT;
CREATE INDEX sessions_by_user ON sessions(user_id);

-- Refresh tokens, by SHA-256 of the opaque token (never the token itself).
-- A superseded token names its successor so reuse within the grace window can
-- be told apart from theft.
CREATE TABLE refresh_tokens (
    hash          BLOB PRIMARY KEY NOT NULL,
    session_id    TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    superseded_at INTEGER,
    successor     BLOB
) STRICT;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);
