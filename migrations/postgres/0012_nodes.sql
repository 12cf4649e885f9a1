-- Nodes (issue 18): Hangar servers that share one catalog, each with its own Docker engine
-- and GPUs. A node registers itself at start and heartbeats while it runs; one that stopped
-- heartbeating is down, and what it runs is shown as unknown. Deployments name the node
-- that runs them; each node's supervisor converges only its own.
CREATE TABLE nodes (
    name         TEXT PRIMARY KEY,
    -- Where the other nodes reach this one's HTTP server (its gateway and API).
    url          TEXT NOT NULL,
    -- JSON: the GPU inventory, as GET /api/v1/system shows it; placement reads it.
    gpus         TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);

-- NULL only for deployments made before nodes existed: the first node to start takes them.
ALTER TABLE deployments ADD COLUMN node TEXT;
CREATE INDEX deployments_by_node ON deployments (node);
