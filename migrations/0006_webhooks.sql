-- Webhooks: URLs admins register to be told of events, each delivery made to them, and how
-- far the delivery worker has read the events table.

CREATE TABLE webhooks (
    id             INTEGER PRIMARY KEY,
    url            TEXT    NOT NULL,
    -- The HMAC-SHA256 key deliveries are signed with. Kept in clear, unlike token secrets:
    -- signing needs the key itself. The API never returns it after it is set.
    secret         TEXT    NOT NULL,
    -- JSON array of event actions, or ["*"] for every action.
    events         TEXT    NOT NULL,
    description    TEXT    NOT NULL DEFAULT '',
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    -- The newest event when the webhook was made: it is told of later events only.
    since_event_id INTEGER NOT NULL,
    created_by     TEXT,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    webhook_id      INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- Sent as X-Hangar-Delivery, the same on every attempt, so receivers can deduplicate.
    uuid            TEXT    NOT NULL UNIQUE,
    -- The event delivered; NULL for a ping.
    event_id        INTEGER,
    action          TEXT    NOT NULL,
    -- The exact bytes sent and signed, the same on every attempt.
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- The last attempt's HTTP status (NULL when no answer came) and what went wrong.
    response_status INTEGER,
    error           TEXT,
    -- When the next attempt is due; NULL once delivered or failed.
    next_attempt_at TEXT    DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_attempt_at TEXT,
    delivered_at    TEXT,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- One row: the id of the last event turned into deliveries. Advanced in the same
-- transaction that inserts them, so a restart neither loses nor repeats an event.
CREATE TABLE webhook_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL
);
INSERT INTO webhook_cursor (id, last_event_id) SELECT 1, COALESCE(MAX(id), 0) FROM events;
