-- name: CreateFile :one
INSERT INTO files (tenant_id, id, task_id, project_id, uploaded_by, filename, original_filename, content_type, size, sha256, storage_key)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.narg(task_id), sqlc.narg(project_id), sqlc.arg(uploaded_by), sqlc.arg(filename),
        sqlc.arg(original_filename), sqlc.arg(content_type), sqlc.arg(size), sqlc.arg(sha256), sqlc.arg(storage_key))
RETURNING *;

-- name: GetFile :one
SELECT sqlc.embed(f), p.team_id AS team_id
FROM files f LEFT JOIN projects p ON p.tenant_id = f.tenant_id AND p.id = f.project_id
WHERE f.id = sqlc.arg(id);

-- name: DeleteFile :one
DELETE FROM files WHERE id = sqlc.arg(id) RETURNING *;

-- name: ListTaskFiles :many
SELECT * FROM files
WHERE tenant_id = sqlc.arg(tenant_id) AND task_id = sqlc.arg(task_id)
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL
       OR (created_at, id) > (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at, id
LIMIT sqlc.arg(lim);

-- name: StorageUsed :one
-- The tenant's stored bytes; inside an upload's transaction, after its insert, this includes the
-- upload and the row stays locked until COMMIT.
SELECT coalesce((SELECT bytes FROM storage_usage), 0)::bigint AS bytes;

-- name: ExistingStorageKeys :many
-- Which of keys still have metadata: the sweep's question, asked in the keys' tenant.
SELECT storage_key FROM files WHERE storage_key = ANY(sqlc.arg(keys)::text[]);

-- name: DeleteTaskFiles :many
-- A task's attachments, deleted with it (rather than by the cascade) to learn their blobs.
DELETE FROM files WHERE task_id = sqlc.arg(task_id) RETURNING storage_key;

-- name: DeleteProjectFiles :many
DELETE FROM files WHERE project_id = sqlc.arg(project_id) RETURNING storage_key;

-- name: ShareProjectForAttachment :one
-- An upload's hold on the project of its task until COMMIT, taken before the hold on the task
-- (the order a project's deletion locks them in): a deletion of either, which locks the row for
-- update before collecting the files' blobs, waits for the upload, or the upload for the
-- deletion, so no attachment slips in unseen between the two.
SELECT status FROM projects WHERE id = sqlc.arg(id) FOR SHARE;

-- name: ShareTaskForAttachment :one
SELECT project_id FROM tasks WHERE id = sqlc.arg(id) FOR SHARE;

-- name: LockTaskForDelete :one
SELECT id FROM tasks WHERE id = sqlc.arg(id) FOR UPDATE;
