-- name: CreateProject :one
INSERT INTO projects (tenant_id, id, team_id, name, key, description)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(team_id), sqlc.arg(name), sqlc.arg(key), sqlc.arg(description))
RETURNING *;

-- name: GetProject :one
SELECT * FROM projects WHERE id = sqlc.arg(id);

-- name: ListProjects :many
SELECT * FROM projects
WHERE (sqlc.narg(team_id)::uuid IS NULL OR team_id = sqlc.narg(team_id)::uuid)
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL
       OR (created_at, id) > (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY created_at, id
LIMIT sqlc.arg(lim);

-- name: UpdateProject :one
UPDATE projects SET
    team_id     = CASE WHEN @set_team::boolean THEN sqlc.arg(team_id)::uuid ELSE team_id END,
    name        = CASE WHEN @set_name::boolean THEN sqlc.arg(name)::text ELSE name END,
    description = CASE WHEN @set_description::boolean THEN sqlc.arg(description)::text ELSE description END,
    status      = CASE WHEN @set_status::boolean THEN sqlc.arg(status)::text ELSE status END,
    updated_at  = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: DeleteProject :execrows
DELETE FROM projects WHERE id = sqlc.arg(id);

-- name: ProjectHasTasks :one
SELECT EXISTS (SELECT 1 FROM tasks WHERE project_id = sqlc.arg(project_id));

-- name: LockProject :one
-- Holds the project while deciding to delete it (creating a task updates the same row, its
-- number sequence, so no task can slip in between the check and the delete), and while a task's
-- parent changes, so two parent changes in a project take turns at the cycle check.
SELECT * FROM projects WHERE id = sqlc.arg(id) FOR UPDATE;
