-- Foundation: facts about this agent's local state that outlive a restart.
CREATE TABLE agent_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
