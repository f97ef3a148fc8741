-- Undated tasks sort after every date in the due-date order. The stand-in was 9999-12-31, which
-- a task may be due on; 'infinity' is after every date a task can have.

-- +goose Up
DROP INDEX tasks_due_idx;
CREATE INDEX tasks_due_idx ON tasks (tenant_id, project_id, coalesce(due_date, 'infinity'::date), id);

-- +goose Down
DROP INDEX tasks_due_idx;
CREATE INDEX tasks_due_idx ON tasks (tenant_id, project_id, coalesce(due_date, '9999-12-31'::date), id);
