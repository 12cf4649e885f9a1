-- The registry: models, their versions, the files of each version, the blobs those
-- files name, and aliases. Timestamps are UTC RFC 3339 text, which sorts as time.

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL DEFAULT '',
    -- JSON array of strings.
    tags        TEXT    NOT NULL DEFAULT '[]',
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE versions (
    id              INTEGER PRIMARY KEY,
    model_id        INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'ready')),
    description     TEXT    NOT NULL DEFAULT '',
    -- JSON object.
    metadata        TEXT    NOT NULL DEFAULT '{}',
    -- Set once, at publish: sha256 over the sorted "path digest size" lines.
    manifest_digest TEXT,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    published_at    TEXT,
    UNIQUE (model_id, name),
    CHECK ((state = 'ready') = (manifest_digest IS NOT NULL))
);

-- A row exists only once the blob's bytes are durable under blobs/.
CREATE TABLE blobs (
    digest     TEXT    PRIMARY KEY,
    size       INTEGER NOT NULL CHECK (size >= 0),
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE files (
    version_id INTEGER NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    digest     TEXT    NOT NULL REFERENCES blobs (digest),
    size       INTEGER NOT NULL CHECK (size >= 0),
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (version_id, path)
);
CREATE INDEX files_by_digest ON files (digest);

CREATE TABLE aliases (
    model_id   INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    version_id INTEGER NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (model_id, name)
);
CREATE INDEX aliases_by_version ON aliases (version_id);

-- Defence in depth under the checks in catalog/: the files of a ready version never change.
CREATE TRIGGER files_of_ready_versions_are_immutable_insert
BEFORE INSERT ON files
WHEN (SELECT state FROM versions WHERE id = NEW.version_id) = 'ready'
BEGIN
    SELECT RAISE(ABORT, 'version is ready; its files cannot change');
END;

CREATE TRIGGER files_of_ready_versions_are_immutable_update
BEFORE UPDATE ON files
WHEN (SELECT state FROM versions WHERE id = OLD.version_id) = 'ready'
BEGIN
    SELECT RAISE(ABORT, 'version is ready; its files cannot change');
END;
