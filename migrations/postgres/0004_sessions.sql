-- Browser sessions of the dashboard. Only a sha256 of the cookie is stored; the CSRF token
-- is per session and must come back with every form and every unsafe API call.

CREATE TABLE sessions (
    id_hash    TEXT    PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       TEXT    NOT NULL,
    -- Unix seconds.
    expires_at BIGINT  NOT NULL,
    created_at TEXT    NOT NULL DEFAULT utc_now()
);
CREATE INDEX sessions_by_user ON sessions (user_id);
