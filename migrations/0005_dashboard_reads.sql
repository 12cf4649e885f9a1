-- What the dashboard's pages read, at the scale of benches/dashboard.sh (1,000 models,
-- 10,000 versions): found by a seek, never by sorting, counting or summing whole tables.

-- A model's versions, newest first, a page at a time. Without it SQLite sorts every version
-- of the model (computing each one's columns) before it can stop at the end of the page.
CREATE INDEX versions_by_model ON versions (model_id, id);

-- A model's latest published version, for the models list and the model page.
CREATE INDEX versions_latest_ready ON versions (model_id, state, published_at, id);

-- How many versions each model has, kept by triggers: counting them for every row of the
-- models list cost more than the rest of the list.
ALTER TABLE models ADD COLUMN version_count INTEGER NOT NULL DEFAULT 0;
UPDATE models SET version_count = (SELECT COUNT(*) FROM versions v WHERE v.model_id = models.id);
CREATE TRIGGER versions_counted AFTER INSERT ON versions
BEGIN
    UPDATE models SET version_count = version_count + 1 WHERE id = NEW.model_id;
END;
CREATE TRIGGER versions_uncounted AFTER DELETE ON versions
BEGIN
    UPDATE models SET version_count = version_count - 1 WHERE id = OLD.model_id;
END;

-- The system page's counts and byte sums, kept by triggers as rows come and go (cascading
-- deletes fire them too), instead of counting and summing four tables on every view.
CREATE TABLE catalog_totals (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    models        INTEGER NOT NULL,
    versions      INTEGER NOT NULL,
    files         INTEGER NOT NULL,
    blobs         INTEGER NOT NULL,
    -- Sum of file sizes: what the versions would take without dedup.
    logical_bytes INTEGER NOT NULL,
    -- Sum of blob sizes: what is on disk.
    stored_bytes  INTEGER NOT NULL
);
INSERT INTO catalog_totals (id, models, versions, files, blobs, logical_bytes, stored_bytes)
VALUES (1, (SELECT COUNT(*) FROM models), (SELECT COUNT(*) FROM versions), (SELECT COUNT(*) FROM files),
        (SELECT COUNT(*) FROM blobs), (SELECT COALESCE(SUM(size), 0) FROM files),
        (SELECT COALESCE(SUM(size), 0) FROM blobs));

CREATE TRIGGER models_added AFTER INSERT ON models
BEGIN
    UPDATE catalog_totals SET models = models + 1;
END;
CREATE TRIGGER models_removed AFTER DELETE ON models
BEGIN
    UPDATE catalog_totals SET models = models - 1;
END;
CREATE TRIGGER versions_added AFTER INSERT ON versions
BEGIN
    UPDATE catalog_totals SET versions = versions + 1;
END;
CREATE TRIGGER versions_removed AFTER DELETE ON versions
BEGIN
    UPDATE catalog_totals SET versions = versions - 1;
END;
CREATE TRIGGER files_added AFTER INSERT ON files
BEGIN
    UPDATE catalog_totals SET files = files + 1, logical_bytes = logical_bytes + NEW.size;
END;
CREATE TRIGGER files_changed AFTER UPDATE OF size ON files
BEGIN
    UPDATE catalog_totals SET logical_bytes = logical_bytes - OLD.size + NEW.size;
END;
CREATE TRIGGER files_removed AFTER DELETE ON files
BEGIN
    UPDATE catalog_totals SET files = files - 1, logical_bytes = logical_bytes - OLD.size;
END;
CREATE TRIGGER blobs_added AFTER INSERT ON blobs
BEGIN
    UPDATE catalog_totals SET blobs = blobs + 1, stored_bytes = stored_bytes + NEW.size;
END;
CREATE TRIGGER blobs_changed AFTER UPDATE OF size ON blobs
BEGIN
    UPDATE catalog_totals SET stored_bytes = stored_bytes - OLD.size + NEW.size;
END;
CREATE TRIGGER blobs_removed AFTER DELETE ON blobs
BEGIN
    UPDATE catalog_totals SET blobs = blobs - 1, stored_bytes = stored_bytes - OLD.size;
END;
