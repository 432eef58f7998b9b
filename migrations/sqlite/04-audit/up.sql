-- Audit: the append-only, hash-chained local log (see agent/src/audit/mod.rs
-- for the design). Rows are only ever inserted, and deleted by retention after
-- shipping (never updated).

-- One row per record. `record` holds the canonical encoding, byte for byte
-- what the chain hashes; `hash` is the chain hash after this record:
-- SHA-256(previous hash || RFC 6962 leaf hash of `record`).
CREATE TABLE audit_log (
    seq    INTEGER PRIMARY KEY NOT NULL,
    ts_ms  INTEGER NOT NULL,
    record TEXT    NOT NULL,
    hash   BLOB    NOT NULL
) STRICT;

CREATE INDEX audit_log_ts ON audit_log(ts_ms);

-- The head as of the last commit, written in the same transaction as the
-- records. Lets a verifier notice a log truncated after the last checkpoint.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
) STRICT;

-- Signed checkpoints: Ed25519 over (host, seq, head hash, Merkle root, time).
-- The public key is stored with each checkpoint so verification works
-- offline; `frontier` is the RFC 6962 compact range at `seq` so the Merkle
-- root can be extended after older records are pruned.
CREATE TABLE audit_checkpoint (
    seq          INTEGER PRIMARY KEY NOT NULL,
    head_hash    BLOB    NOT NULL,
    merkle_root  BLOB    NOT NULL,
    frontier     BLOB    NOT NULL,
    signed_at_ms INTEGER NOT NULL,
    kid          TEXT    NOT NULL,
    public_key   BLOB    NOT NULL,
    signature    BLOB    NOT NULL
) STRICT;

-- Shipping position per sink: every record with seq <= shipped_seq is
-- durably in the sink.
CREATE TABLE audit_shipped (
    sink        TEXT    PRIMARY KEY NOT NULL,
    shipped_seq INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) STRICT;

-- Retention: records with seq <= through_seq were deleted after shipping.
-- through_seq is always the seq of a checkpoint, which anchors the chain.
CREATE TABLE audit_pruned (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    through_seq INTEGER NOT NULL
) STRICT;
