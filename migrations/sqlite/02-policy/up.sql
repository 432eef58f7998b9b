-- Policy: the last registry source that validated, so the agent can start
-- and answer checks from it when the policy files are broken or missing.
-- One row; replaced as a whole in one transaction on every successful load.
CREATE TABLE policy_cache (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     TEXT NOT NULL,
    saved_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE policy_cache_file (
    name TEXT PRIMARY KEY NOT NULL,
    text TEXT NOT NULL
) STRICT;
