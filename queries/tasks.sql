-- Tasks. The list has one query per sort order because each must walk its own index (see
-- migrations/00003_core.sql) for a page to cost the same at any table size; the filters are
-- the same in all of them. Keyset pagination: the cursor carries the last row's sort key and id.
-- The hot reads name their tenant although RLS would add it: the explicit parameter gives the
-- planner the leading index column in generic plans too, and keeps the plan good for any
-- reader that is not under RLS.

-- name: ListProjectTasks :many
-- The task list with no filters, in manual order: the common case, written without optional
-- parts so that the cached generic plan walks tasks_position_idx. (The filtered lists below
-- are planned per call; see tenancy.Search.) The first page starts after (-Infinity, nil UUID).
SELECT sqlc.embed(t), p.key AS project_key
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE t.tenant_id = sqlc.arg(tenant_id) AND t.project_id = sqlc.arg(project_id)
  AND (t.position, t.id) > (sqlc.arg(after_position)::float8, sqlc.arg(after_id)::uuid)
ORDER BY t.position, t.id
LIMIT sqlc.arg(lim);

-- name: GetTask :one
SELECT sqlc.embed(t), p.key AS project_key, p.team_id
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE t.tenant_id = sqlc.arg(tenant_id) AND t.id = sqlc.arg(id);

-- name: GetTaskByKey :one
SELECT sqlc.embed(t), p.key AS project_key, p.team_id
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE p.tenant_id = sqlc.arg(tenant_id) AND p.key = sqlc.arg(project_key) AND t.number = sqlc.arg(number);

-- name: NextTaskNumber :one
-- Locks the project row, so numbers are handed out one at a time per project.
UPDATE projects SET task_seq = task_seq + 1 WHERE id = sqlc.arg(id) RETURNING task_seq, key, team_id, status;

-- name: CreateTask :one
INSERT INTO tasks (tenant_id, id, project_id, number, title, description, status, priority, assignee_id,
                   labels, due_date, parent_id, position, created_by)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(project_id), sqlc.arg(number), sqlc.arg(title),
        sqlc.arg(description), sqlc.arg(status), sqlc.arg(priority), sqlc.narg(assignee_id), sqlc.arg(labels),
        sqlc.narg(due_date), sqlc.narg(parent_id), sqlc.arg(position), sqlc.arg(created_by))
RETURNING *;

-- name: UpdateTask :one
-- A partial update: each set_* flag says whether the field was in the request; a stale
-- expected_version matches nothing.
UPDATE tasks SET
    title       = CASE WHEN @set_title::boolean THEN sqlc.arg(title)::text ELSE title END,
    description = CASE WHEN @set_description::boolean THEN sqlc.arg(description)::text ELSE description END,
    status      = CASE WHEN @set_status::boolean THEN sqlc.arg(status)::text ELSE status END,
    priority    = CASE WHEN @set_priority::boolean THEN sqlc.arg(priority)::smallint ELSE priority END,
    assignee_id = CASE WHEN @set_assignee::boolean THEN sqlc.narg(assignee_id)::uuid ELSE assignee_id END,
    labels      = CASE WHEN @set_labels::boolean THEN sqlc.arg(labels)::text[] ELSE labels END,
    due_date    = CASE WHEN @set_due_date::boolean THEN sqlc.narg(due_date)::date ELSE due_date END,
    parent_id   = CASE WHEN @set_parent::boolean THEN sqlc.narg(parent_id)::uuid ELSE parent_id END,
    position    = CASE WHEN @set_position::boolean THEN sqlc.arg(position)::float8 ELSE position END,
    version     = version + 1,
    updated_at  = now()
WHERE id = sqlc.arg(id) AND (sqlc.narg(expected_version)::integer IS NULL OR version = sqlc.narg(expected_version)::integer)
RETURNING *;

-- name: DeleteTask :execrows
DELETE FROM tasks
WHERE id = sqlc.arg(id) AND (sqlc.narg(expected_version)::integer IS NULL OR version = sqlc.narg(expected_version)::integer);

-- name: TaskCreatesCycle :one
-- Whether making parent the parent of id would put id among its own ancestors. The walk goes up
-- from parent one primary-key lookup per level, with no depth limit; UNION (not UNION ALL) drops
-- ancestors already seen, so it ends even if the data already holds a cycle. EXISTS stops at the
-- first match. The step is a LATERAL primary-key probe with LIMIT 1, so the planner cannot turn
-- it into a hash join over every task of the tenant when its statistics are stale.
WITH RECURSIVE ancestors(id) AS (
    SELECT sqlc.arg(parent_id)::uuid
    UNION
    SELECT up.parent_id FROM ancestors a
    CROSS JOIN LATERAL (
        SELECT t.parent_id FROM tasks t
        WHERE t.tenant_id = sqlc.arg(tenant_id)::uuid AND t.id = a.id AND t.parent_id IS NOT NULL
        LIMIT 1
    ) up
)
SELECT EXISTS (SELECT 1 FROM ancestors WHERE ancestors.id = sqlc.arg(id)::uuid);

-- name: ListTasksByPosition :many
-- Sorted by position ascending.
SELECT sqlc.embed(t), p.key AS project_key
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE t.tenant_id = sqlc.arg(tenant_id) AND t.project_id = sqlc.arg(project_id)
  AND (sqlc.narg(statuses)::text[] IS NULL OR t.status = ANY (sqlc.narg(statuses)::text[]))
  AND (NOT @filter_assignee::boolean OR t.assignee_id IS NOT DISTINCT FROM sqlc.narg(assignee_id)::uuid)
  AND (sqlc.narg(label)::text IS NULL OR t.labels @> ARRAY[sqlc.narg(label)::text])
  AND (sqlc.narg(parent_id)::uuid IS NULL OR t.parent_id = sqlc.narg(parent_id)::uuid)
  AND (sqlc.narg(due_before)::date IS NULL OR t.due_date < sqlc.narg(due_before)::date)
  AND (sqlc.narg(due_after)::date IS NULL OR t.due_date > sqlc.narg(due_after)::date)
  AND (sqlc.narg(q)::text IS NULL OR task_search(t.title, t.description) @@ websearch_to_tsquery('simple', sqlc.narg(q)::text))
  AND (sqlc.narg(after_position)::float8 IS NULL OR (t.position, t.id) > (sqlc.narg(after_position)::float8, sqlc.narg(after_id)::uuid))
ORDER BY t.position, t.id
LIMIT sqlc.arg(lim);

-- name: ListTasksByCreatedAt :many
-- Sorted by created_at, newest first.
SELECT sqlc.embed(t), p.key AS project_key
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE t.tenant_id = sqlc.arg(tenant_id) AND t.project_id = sqlc.arg(project_id)
  AND (sqlc.narg(statuses)::text[] IS NULL OR t.status = ANY (sqlc.narg(statuses)::text[]))
  AND (NOT @filter_assignee::boolean OR t.assignee_id IS NOT DISTINCT FROM sqlc.narg(assignee_id)::uuid)
  AND (sqlc.narg(label)::text IS NULL OR t.labels @> ARRAY[sqlc.narg(label)::text])
  AND (sqlc.narg(parent_id)::uuid IS NULL OR t.parent_id = sqlc.narg(parent_id)::uuid)
  AND (sqlc.narg(due_before)::date IS NULL OR t.due_date < sqlc.narg(due_before)::date)
  AND (sqlc.narg(due_after)::date IS NULL OR t.due_date > sqlc.narg(due_after)::date)
  AND (sqlc.narg(q)::text IS NULL OR task_search(t.title, t.description) @@ websearch_to_tsquery('simple', sqlc.narg(q)::text))
  AND (sqlc.narg(after_created_at)::timestamptz IS NULL OR (t.created_at, t.id) < (sqlc.narg(after_created_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY t.created_at DESC, t.id DESC
LIMIT sqlc.arg(lim);

-- name: ListTasksByUpdatedAt :many
-- Sorted by updated_at, newest first.
SELECT sqlc.embed(t), p.key AS project_key
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE t.tenant_id = sqlc.arg(tenant_id) AND t.project_id = sqlc.arg(project_id)
  AND (sqlc.narg(statuses)::text[] IS NULL OR t.status = ANY (sqlc.narg(statuses)::text[]))
  AND (NOT @filter_assignee::boolean OR t.assignee_id IS NOT DISTINCT FROM sqlc.narg(assignee_id)::uuid)
  AND (sqlc.narg(label)::text IS NULL OR t.labels @> ARRAY[sqlc.narg(label)::text])
  AND (sqlc.narg(parent_id)::uuid IS NULL OR t.parent_id = sqlc.narg(parent_id)::uuid)
  AND (sqlc.narg(due_before)::date IS NULL OR t.due_date < sqlc.narg(due_before)::date)
  AND (sqlc.narg(due_after)::date IS NULL OR t.due_date > sqlc.narg(due_after)::date)
  AND (sqlc.narg(q)::text IS NULL OR task_search(t.title, t.description) @@ websearch_to_tsquery('simple', sqlc.narg(q)::text))
  AND (sqlc.narg(after_updated_at)::timestamptz IS NULL OR (t.updated_at, t.id) < (sqlc.narg(after_updated_at)::timestamptz, sqlc.narg(after_id)::uuid))
ORDER BY t.updated_at DESC, t.id DESC
LIMIT sqlc.arg(lim);

-- name: ListTasksByPriority :many
-- Sorted by priority, urgent first.
SELECT sqlc.embed(t), p.key AS project_key
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE t.tenant_id = sqlc.arg(tenant_id) AND t.project_id = sqlc.arg(project_id)
  AND (sqlc.narg(statuses)::text[] IS NULL OR t.status = ANY (sqlc.narg(statuses)::text[]))
  AND (NOT @filter_assignee::boolean OR t.assignee_id IS NOT DISTINCT FROM sqlc.narg(assignee_id)::uuid)
  AND (sqlc.narg(label)::text IS NULL OR t.labels @> ARRAY[sqlc.narg(label)::text])
  AND (sqlc.narg(parent_id)::uuid IS NULL OR t.parent_id = sqlc.narg(parent_id)::uuid)
  AND (sqlc.narg(due_before)::date IS NULL OR t.due_date < sqlc.narg(due_before)::date)
  AND (sqlc.narg(due_after)::date IS NULL OR t.due_date > sqlc.narg(due_after)::date)
  AND (sqlc.narg(q)::text IS NULL OR task_search(t.title, t.description) @@ websearch_to_tsquery('simple', sqlc.narg(q)::text))
  AND (sqlc.narg(after_priority)::smallint IS NULL OR (t.priority, t.id) < (sqlc.narg(after_priority)::smallint, sqlc.narg(after_id)::uuid))
ORDER BY t.priority DESC, t.id DESC
LIMIT sqlc.arg(lim);

-- name: ListTasksByDueDate :many
-- Sorted by due date, soonest first, tasks without one last ('infinity' stands in for them; the
-- cursor's date travels as text so that it can be 'infinity' too).
SELECT sqlc.embed(t), p.key AS project_key
FROM tasks t JOIN projects p ON p.tenant_id = t.tenant_id AND p.id = t.project_id
WHERE t.tenant_id = sqlc.arg(tenant_id) AND t.project_id = sqlc.arg(project_id)
  AND (sqlc.narg(statuses)::text[] IS NULL OR t.status = ANY (sqlc.narg(statuses)::text[]))
  AND (NOT @filter_assignee::boolean OR t.assignee_id IS NOT DISTINCT FROM sqlc.narg(assignee_id)::uuid)
  AND (sqlc.narg(label)::text IS NULL OR t.labels @> ARRAY[sqlc.narg(label)::text])
  AND (sqlc.narg(parent_id)::uuid IS NULL OR t.parent_id = sqlc.narg(parent_id)::uuid)
  AND (sqlc.narg(due_before)::date IS NULL OR t.due_date < sqlc.narg(due_before)::date)
  AND (sqlc.narg(due_after)::date IS NULL OR t.due_date > sqlc.narg(due_after)::date)
  AND (sqlc.narg(q)::text IS NULL OR task_search(t.title, t.description) @@ websearch_to_tsquery('simple', sqlc.narg(q)::text))
  AND (sqlc.narg(after_due_date)::text IS NULL OR (coalesce(t.due_date, 'infinity'::date), t.id) > (sqlc.narg(after_due_date)::text::date, sqlc.narg(after_id)::uuid))
ORDER BY coalesce(t.due_date, 'infinity'::date), t.id
LIMIT sqlc.arg(lim);

-- name: LastTaskPosition :one
-- The end of the project's manual order, where a new task goes by default.
SELECT coalesce(max(position), 0)::float8 FROM tasks WHERE tenant_id = sqlc.arg(tenant_id) AND project_id = sqlc.arg(project_id);
