-- Fair-use limits on the gateway (issue 17), per user or per token. NULL: no limit of that
-- kind.
CREATE TABLE limits (
    -- `user:NAME` or `token:ID`.
    subject TEXT PRIMARY KEY,
    requests_per_minute INTEGER,
    tokens_per_day INTEGER,
    concurrent INTEGER,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_by TEXT
);
