-- name: CreateTeam :one
INSERT INTO teams (tenant_id, id, name, key, description)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(name), sqlc.arg(key), sqlc.arg(description))
RETURNING *;

-- name: GetTeam :one
SELECT * FROM teams WHERE id = sqlc.arg(id);

-- name: ListTeams :many
SELECT * FROM teams
WHERE sqlc.narg(after_created_at)::timestamptz IS NULL
   OR (created_at, id) > (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid)
ORDER BY created_at, id
LIMIT sqlc.arg(lim);

-- name: UpdateTeam :one
UPDATE teams SET
    name        = CASE WHEN @set_name::boolean THEN sqlc.arg(name)::text ELSE name END,
    key         = CASE WHEN @set_key::boolean THEN sqlc.arg(key)::text ELSE key END,
    description = CASE WHEN @set_description::boolean THEN sqlc.arg(description)::text ELSE description END,
    updated_at  = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: DeleteTeam :execrows
DELETE FROM teams WHERE id = sqlc.arg(id);

-- name: TeamHasProjects :one
SELECT EXISTS (SELECT 1 FROM projects WHERE team_id = sqlc.arg(team_id));

-- name: ListTeamMembers :many
SELECT m.team_id, m.role AS team_role, m.created_at AS added_at, sqlc.embed(u)
FROM team_members m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id
WHERE m.team_id = sqlc.arg(team_id)
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL
       OR (m.created_at, m.user_id) > (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY m.created_at, m.user_id
LIMIT sqlc.arg(lim);

-- name: PutTeamMember :one
INSERT INTO team_members (tenant_id, team_id, user_id, role)
VALUES (sqlc.arg(tenant_id), sqlc.arg(team_id), sqlc.arg(user_id), sqlc.arg(role))
ON CONFLICT (tenant_id, team_id, user_id) DO UPDATE SET role = EXCLUDED.role
RETURNING *;

-- name: DeleteTeamMember :execrows
DELETE FROM team_members WHERE team_id = sqlc.arg(team_id) AND user_id = sqlc.arg(user_id);

-- name: IsTeamMember :one
SELECT EXISTS (SELECT 1 FROM team_members WHERE team_id = sqlc.arg(team_id) AND user_id = sqlc.arg(user_id));

-- name: LockTeam :one
-- Holds the team while deciding to delete it; a project being created for it waits, and then
-- finds it gone, or is seen by the check.
SELECT * FROM teams WHERE id = sqlc.arg(id) FOR UPDATE;
