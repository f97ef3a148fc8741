-- Files: the metadata of blobs kept in a blob store (a directory or S3), optionally attached to a
-- task, and each tenant's stored bytes, counted exactly by the database itself.

-- +goose Up

CREATE TABLE files (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL,
    -- The task the file is attached to, and that task's project (routing and authorization read
    -- it without a join). Deleting the task, or its project, deletes the row; the blob goes with
    -- the sweep.
    task_id           uuid,
    project_id        uuid,
    uploaded_by       uuid        NOT NULL,
    -- filename is safe to put in a header or a path; original_filename is what the client sent,
    -- for display only (NUL and invalid UTF-8 replaced).
    filename          text        NOT NULL CHECK (octet_length(filename) BETWEEN 1 AND 255),
    original_filename text        NOT NULL CHECK (octet_length(original_filename) <= 1024),
    -- Sniffed from the first bytes, never the client's claim.
    content_type      text        NOT NULL CHECK (octet_length(content_type) <= 255),
    size              bigint      NOT NULL CHECK (size >= 0),
    sha256            bytea       NOT NULL CHECK (octet_length(sha256) = 32),
    -- Chosen by the server: t/<tenant>/<file id>.
    storage_key       text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, storage_key),
    CHECK ((task_id IS NULL) = (project_id IS NULL)),
    FOREIGN KEY (tenant_id, project_id, task_id) REFERENCES tasks (tenant_id, project_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, uploaded_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX files_task ON files (tenant_id, task_id, created_at, id) WHERE task_id IS NOT NULL;

ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON files
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Bytes and files each tenant stores. Only the trigger below writes it, on every insert and
-- delete of a file row, cascades from a deleted task or project included, so the count cannot
-- drift from the rows. The row lock its UPDATE takes is held until COMMIT: concurrent uploads
-- of one tenant check their quota one after another, each against the committed total.
CREATE TABLE storage_usage (
    tenant_id uuid   PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    bytes     bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    files     bigint NOT NULL DEFAULT 0 CHECK (files >= 0)
);
ALTER TABLE storage_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON storage_usage
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Runs as the caller (no SECURITY DEFINER), so row-level security holds inside it too.
-- +goose StatementBegin
CREATE FUNCTION count_file_storage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO storage_usage AS u (tenant_id, bytes, files) VALUES (NEW.tenant_id, NEW.size, 1)
        ON CONFLICT (tenant_id) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes, files = u.files + 1;
        RETURN NEW;
    END IF;
    UPDATE storage_usage SET bytes = bytes - OLD.size, files = files - 1 WHERE tenant_id = OLD.tenant_id;
    RETURN OLD;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER files_count_storage AFTER INSERT OR DELETE ON files
    FOR EACH ROW EXECUTE FUNCTION count_file_storage();

-- +goose Down
DROP TABLE storage_usage;
DROP TABLE files;
DROP FUNCTION count_file_storage();
