-- Runtimes admins define (built-in presets live in the code), and deployments: what should
-- run (desired, written by people) and what does (observed, written by the supervisor).

CREATE TABLE runtimes (
    name       TEXT PRIMARY KEY,
    -- JSON: the runtime's definition, as PUT /api/v1/runtimes/{name} takes it.
    spec       TEXT NOT NULL,
    updated_by TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE deployments (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    -- No cascade: a model cannot be deleted while something is deployed from it.
    model_id          INTEGER NOT NULL REFERENCES models (id),
    -- Exactly one: a pinned version, or an alias the deployment follows.
    version           TEXT,
    alias             TEXT,
    runtime           TEXT    NOT NULL,
    -- JSON {"gpus": N} or {"gpu_memory_gib": X}; NULL: no GPU.
    gpu_request       TEXT,
    -- JSON object of extra environment, JSON array of extra arguments.
    env               TEXT    NOT NULL DEFAULT '{}',
    args              TEXT    NOT NULL DEFAULT '[]',
    autostart         INTEGER NOT NULL DEFAULT 0 CHECK (autostart IN (0, 1)),
    idle_timeout_secs INTEGER,
    desired           TEXT    NOT NULL CHECK (desired IN ('running', 'stopped')),
    state             TEXT    NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'starting', 'running', 'stopping', 'stopped', 'failed')),
    reason            TEXT,
    -- The version the container serves (for an alias: what it resolved to at start).
    serving_version   TEXT,
    container_id      TEXT,
    address           TEXT,
    -- JSON: what admission control gave it; NULL while it holds nothing.
    gpu_allocation    TEXT,
    started_at        TEXT,
    restarts          INTEGER NOT NULL DEFAULT 0,
    created_by        TEXT,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((version IS NULL) <> (alias IS NULL))
);
CREATE INDEX deployments_by_model ON deployments (model_id);
