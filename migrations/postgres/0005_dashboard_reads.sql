-- What the dashboard's pages read, at the scale of benches/dashboard.sh (1,000 models,
-- 10,000 versions): found by a seek, never by sorting, counting or summing whole tables.

-- A model's versions, newest first, a page at a time.
CREATE INDEX versions_by_model ON versions (model_id, id);

-- A model's latest published version, for the models list and the model page.
CREATE INDEX versions_latest_ready ON versions (model_id, state, published_at, id);

-- How many versions each model has, kept by triggers.
ALTER TABLE models ADD COLUMN version_count BIGINT NOT NULL DEFAULT 0;
CREATE FUNCTION versions_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE models SET version_count = version_count + 1 WHERE id = NEW.model_id;
    ELSE
        UPDATE models SET version_count = version_count - 1 WHERE id = OLD.model_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER versions_counted AFTER INSERT OR DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION versions_counted();

-- The system page's counts and byte sums, kept by triggers as rows come and go (cascading
-- deletes fire them too), instead of counting and summing four tables on every view.
CREATE TABLE catalog_totals (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    models        BIGINT NOT NULL,
    versions      BIGINT NOT NULL,
    files         BIGINT NOT NULL,
    blobs         BIGINT NOT NULL,
    -- Sum of file sizes: what the versions would take without dedup.
    logical_bytes BIGINT NOT NULL,
    -- Sum of blob sizes: what is on disk.
    stored_bytes  BIGINT NOT NULL
);
INSERT INTO catalog_totals (id, models, versions, files, blobs, logical_bytes, stored_bytes)
VALUES (1, 0, 0, 0, 0, 0, 0);

CREATE FUNCTION catalog_totals_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'models' THEN
        UPDATE catalog_totals SET models = models + CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
    ELSIF TG_TABLE_NAME = 'versions' THEN
        UPDATE catalog_totals SET versions = versions + CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
    ELSIF TG_TABLE_NAME = 'files' THEN
        IF TG_OP = 'INSERT' THEN
            UPDATE catalog_totals SET files = files + 1, logical_bytes = logical_bytes + NEW.size;
        ELSIF TG_OP = 'UPDATE' THEN
            UPDATE catalog_totals SET logical_bytes = logical_bytes - OLD.size + NEW.size;
        ELSE
            UPDATE catalog_totals SET files = files - 1, logical_bytes = logical_bytes - OLD.size;
        END IF;
    ELSE
        IF TG_OP = 'INSERT' THEN
            UPDATE catalog_totals SET blobs = blobs + 1, stored_bytes = stored_bytes + NEW.size;
        ELSIF TG_OP = 'UPDATE' THEN
            UPDATE catalog_totals SET stored_bytes = stored_bytes - OLD.size + NEW.size;
        ELSE
            UPDATE catalog_totals SET blobs = blobs - 1, stored_bytes = stored_bytes - OLD.size;
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER models_totals AFTER INSERT OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION catalog_totals_kept();
CREATE TRIGGER versions_totals AFTER INSERT OR DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION catalog_totals_kept();
CREATE TRIGGER files_totals AFTER INSERT OR DELETE OR UPDATE OF size ON files
    FOR EACH ROW EXECUTE FUNCTION catalog_totals_kept();
CREATE TRIGGER blobs_totals AFTER INSERT OR DELETE OR UPDATE OF size ON blobs
    FOR EACH ROW EXECUTE FUNCTION catalog_totals_kept();
