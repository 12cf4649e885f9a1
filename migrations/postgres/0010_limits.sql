-- Fair-use limits on the gateway (issue 17), per user or per token. NULL: no limit of that
-- kind.
CREATE TABLE limits (
    -- `user:NAME` or `token:ID`.
    subject TEXT PRIMARY KEY,
    requests_per_minute BIGINT,
    tokens_per_day BIGINT,
    concurrent BIGINT,
    updated_at TEXT NOT NULL DEFAULT utc_now(),
    updated_by TEXT
);
