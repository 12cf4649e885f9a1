-- Usage accounting (issue 17): every request the gateway relayed, kept for
-- `usage_raw_retention_hours`, and per-minute rollups, kept. Written outside the catalog's
-- write count (no cache depends on them).

CREATE TABLE usage_requests (
    id INTEGER PRIMARY KEY,
    -- When the request arrived, in milliseconds since the epoch.
    at_ms INTEGER NOT NULL,
    deployment TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    -- The caller's user name ('' when anonymous) and token (0: a session or none).
    user TEXT NOT NULL DEFAULT '',
    token_id INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL,
    -- NULL: the server's answer said nothing of its tokens.
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    -- Time to the first streamed token; NULL for an answer that was not streamed.
    ttft_ms REAL,
    total_ms REAL NOT NULL
);
CREATE INDEX usage_requests_at ON usage_requests (at_ms);

CREATE TABLE usage_minutes (
    -- Minutes since the epoch.
    minute INTEGER NOT NULL,
    deployment TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    user TEXT NOT NULL,
    token_id INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    -- Answers with a status of 400 or more.
    errors INTEGER NOT NULL,
    -- Requests whose tokens are unknown (the server sent no usage).
    unmetered INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_ms REAL NOT NULL,
    ttft_ms REAL NOT NULL,
    ttft_count INTEGER NOT NULL,
    PRIMARY KEY (minute, deployment, model, version, user, token_id)
) WITHOUT ROWID;
CREATE INDEX usage_minutes_by_model ON usage_minutes (model, minute);
