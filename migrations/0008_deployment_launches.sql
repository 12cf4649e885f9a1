-- What each container start of a deployment ran. Floating tags (`latest`, `server-cuda13`)
-- change under users, so every start keeps the image's content digest, the full argv, the
-- environment (secret values masked), the version's manifest digest and the runtime's
-- definition. Removed with the deployment.
CREATE TABLE deployment_launches (
    id              INTEGER PRIMARY KEY,
    deployment_id   INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    container_id    TEXT    NOT NULL,
    -- The reference the runtime names, and the image ID (sha256:…) Docker resolved it to.
    image           TEXT    NOT NULL,
    image_digest    TEXT,
    -- JSON array: entrypoint (when the runtime replaces it) followed by the arguments.
    argv            TEXT    NOT NULL,
    -- JSON object; values of secret-looking names are masked.
    env             TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    manifest_digest TEXT,
    -- JSON: the runtime definition as GET /api/v1/runtimes/{name} shows it.
    runtime         TEXT    NOT NULL,
    started_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX deployment_launches_by_deployment ON deployment_launches (deployment_id, id);
