-- Bulk inserts for cmd/seed, which fills a database with tenants, users, teams, projects and
-- tasks for benchmarks. Each runs inside a tenancy transaction as the application role, so rows
-- go in through row-level security exactly as the API writes them (COPY is refused on RLS
-- tables). One statement inserts a whole batch from parallel arrays; NULLs that arrays of
-- non-null Go types cannot carry are sent as sentinels (the nil UUID, the year 1 for dates).

-- name: SeedTenant :exec
INSERT INTO tenants (id, slug, name, plan) VALUES (sqlc.arg(id), sqlc.arg(slug), sqlc.arg(name), sqlc.arg(plan));

-- name: SeedTenantDirectory :exec
INSERT INTO tenant_directory (slug, tenant_id) VALUES (sqlc.arg(slug), sqlc.arg(tenant_id));

-- name: SeedUsers :exec
-- Every seeded user shares one password hash: argon2id is deliberately slow.
INSERT INTO users (tenant_id, id, email, name, role, status, password_hash, created_at, updated_at)
SELECT sqlc.arg(tenant_id)::uuid, u.id, u.email, u.name, u.role, 'active', sqlc.arg(password_hash)::text,
       u.created_at, u.created_at
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id,
             unnest(sqlc.arg(emails)::text[]) AS email,
             unnest(sqlc.arg(names)::text[]) AS name,
             unnest(sqlc.arg(roles)::text[]) AS role,
             unnest(sqlc.arg(created_ats)::timestamptz[]) AS created_at) AS u;

-- name: SeedTeams :exec
INSERT INTO teams (tenant_id, id, name, key, description, created_at, updated_at)
SELECT sqlc.arg(tenant_id)::uuid, t.id, t.name, t.key, t.description, t.created_at, t.created_at
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id,
             unnest(sqlc.arg(names)::text[]) AS name,
             unnest(sqlc.arg(keys)::text[]) AS key,
             unnest(sqlc.arg(descriptions)::text[]) AS description,
             unnest(sqlc.arg(created_ats)::timestamptz[]) AS created_at) AS t;

-- name: SeedTeamMembers :exec
INSERT INTO team_members (tenant_id, team_id, user_id, role)
SELECT sqlc.arg(tenant_id)::uuid, m.team_id, m.user_id, m.role
FROM (SELECT unnest(sqlc.arg(team_ids)::uuid[]) AS team_id,
             unnest(sqlc.arg(user_ids)::uuid[]) AS user_id,
             unnest(sqlc.arg(roles)::text[]) AS role) AS m;

-- name: SeedProjects :exec
-- task_seq is set to the number of tasks the seeder will insert (numbered 1..task_seq).
INSERT INTO projects (tenant_id, id, team_id, name, key, description, task_seq, created_at, updated_at)
SELECT sqlc.arg(tenant_id)::uuid, p.id, p.team_id, p.name, p.key, p.description, p.task_seq,
       p.created_at, p.created_at
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id,
             unnest(sqlc.arg(team_ids)::uuid[]) AS team_id,
             unnest(sqlc.arg(names)::text[]) AS name,
             unnest(sqlc.arg(keys)::text[]) AS key,
             unnest(sqlc.arg(descriptions)::text[]) AS description,
             unnest(sqlc.arg(task_seqs)::bigint[]) AS task_seq,
             unnest(sqlc.arg(created_ats)::timestamptz[]) AS created_at) AS p;

-- name: SeedTasks :exec
-- One batch of one project's tasks. labels are comma-separated ('' for none); a parent must be
-- in the same batch or already committed.
INSERT INTO tasks (tenant_id, id, project_id, number, title, description, status, priority, assignee_id,
                   labels, due_date, parent_id, position, created_by, created_at, updated_at)
SELECT sqlc.arg(tenant_id)::uuid, t.id, sqlc.arg(project_id)::uuid, t.number, t.title, t.description,
       t.status, t.priority, NULLIF(t.assignee_id, '00000000-0000-0000-0000-000000000000'::uuid),
       string_to_array(t.labels, ','), NULLIF(t.due_date, '0001-01-01'::date),
       NULLIF(t.parent_id, '00000000-0000-0000-0000-000000000000'::uuid), t.number::float8,
       t.created_by, t.created_at, t.updated_at
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id,
             unnest(sqlc.arg(numbers)::bigint[]) AS number,
             unnest(sqlc.arg(titles)::text[]) AS title,
             unnest(sqlc.arg(descriptions)::text[]) AS description,
             unnest(sqlc.arg(statuses)::text[]) AS status,
             unnest(sqlc.arg(priorities)::smallint[]) AS priority,
             unnest(sqlc.arg(assignee_ids)::uuid[]) AS assignee_id,
             unnest(sqlc.arg(labels)::text[]) AS labels,
             unnest(sqlc.arg(due_dates)::date[]) AS due_date,
             unnest(sqlc.arg(parent_ids)::uuid[]) AS parent_id,
             unnest(sqlc.arg(created_bys)::uuid[]) AS created_by,
             unnest(sqlc.arg(created_ats)::timestamptz[]) AS created_at,
             unnest(sqlc.arg(updated_ats)::timestamptz[]) AS updated_at) AS t;

-- name: SeededTenants :many
-- Runs with no tenant set: tenant_directory is the one table without RLS.
SELECT slug, tenant_id FROM tenant_directory
WHERE slug = 'bench' OR slug ~ '^seed-[0-9]+$'
ORDER BY slug;

-- name: SeedBenchTask :one
-- Some task of the bench project, for the benchmark's GET /tasks/{id}.
SELECT p.id AS project_id, t.id AS task_id
FROM projects p JOIN tasks t ON t.tenant_id = p.tenant_id AND t.project_id = p.id
WHERE p.key = 'BENCH'
ORDER BY t.number
LIMIT 1;

-- name: SeedDeleteTasks :execrows
-- Clearing tasks first keeps the cascade from the tenant short: projects do not cascade from
-- teams, and tasks reference users.
DELETE FROM tasks;

-- name: SeedDeleteProjects :execrows
DELETE FROM projects;

-- name: SeedDeleteTenant :execrows
-- Cascades to the tenant's directory entry, users, teams, sessions, keys and audit events.
DELETE FROM tenants WHERE id = sqlc.arg(id);
