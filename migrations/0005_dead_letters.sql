-- Decision bundles PostgreSQL refused (a value out of a column's range, a NUL byte, a non-finite
-- number): kept here with the reason instead of blocking the outbox behind them (DESIGN §7).
-- ``payload`` is the bundle's JSON with every non-ASCII character escaped, so whatever the
-- database refused in a jsonb or text column can still be held as text.
-- ``resolution``: 'sanitized' when a cleaned copy of the bundle was recorded in its place
-- (NUL bytes dropped, out-of-range numbers clamped or nulled), 'held' when only this row has it.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    cluster_id  text        NOT NULL,
    request_uid text        NOT NULL,
    reason      text        NOT NULL,
    sqlstate    text,
    resolution  text        NOT NULL CHECK (resolution IN ('sanitized', 'held')),
    payload     text        NOT NULL,
    decided_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cluster_id, request_uid)
);
CREATE INDEX dead_letters_recent ON dead_letters (cluster_id, created_at DESC);
