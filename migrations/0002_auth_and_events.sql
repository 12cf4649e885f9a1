-- Users, API tokens and the audit log; who created, published and moved things.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'maintainer', 'admin')),
    -- argon2id PHC string.
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    -- The first characters of the secret, to look it up and to show it; not secret.
    prefix       TEXT    NOT NULL,
    -- sha256 of the whole token, hex. The token itself is never stored.
    secret_hash  TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL CHECK (role IN ('viewer', 'maintainer', 'admin')),
    -- JSON array of model-name globs the token is limited to; NULL: every model.
    models       TEXT,
    -- Unix seconds; NULL: never expires.
    expires_at   INTEGER,
    last_used_at TEXT,
    revoked_at   TEXT,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX tokens_by_prefix ON tokens (prefix);
CREATE INDEX tokens_by_user ON tokens (user_id);

-- Every mutation, written in the same transaction as the change it records.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor       TEXT,
    actor_id    INTEGER,
    token_id    INTEGER,
    remote_addr TEXT,
    action      TEXT    NOT NULL,
    model       TEXT,
    target      TEXT    NOT NULL,
    -- JSON object.
    details     TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_model ON events (model, id);
CREATE INDEX events_by_actor ON events (actor, id);
CREATE INDEX events_by_action ON events (action, id);

ALTER TABLE models ADD COLUMN created_by TEXT;
ALTER TABLE versions ADD COLUMN created_by TEXT;
ALTER TABLE versions ADD COLUMN published_by TEXT;
ALTER TABLE aliases ADD COLUMN updated_by TEXT;
