-- Latency distributions per deployment and minute (issue 17), so charts show p50 and p95,
-- not only means. A row is one bucket of a log-scale histogram that holds requests (the
-- bucket scheme is `domain::latency`); only buckets with requests have rows, so a minute of
-- one deployment is a handful of rows, whatever its traffic. Kept, like `usage_minutes`.
CREATE TABLE usage_latency (
    -- Minutes since the epoch.
    minute BIGINT NOT NULL,
    deployment TEXT NOT NULL,
    -- The model served (scoped callers see only their models' deployments).
    model TEXT NOT NULL,
    -- 0: time to the end of the answer; 1: time to the first streamed event.
    measure BIGINT NOT NULL,
    bucket BIGINT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (minute, deployment, model, measure, bucket)
);
