-- The product core: invitations, teams and their members, projects, tasks, and idempotency
-- records for POST creates. Every table is tenant-owned: tenant_id leads its primary key, its
-- indexes and its foreign keys, so RLS applies and the schema distributes by tenant_id.

-- +goose Up

CREATE INDEX users_list_idx ON users (tenant_id, created_at, id);

-- A user created without a password is invited; the invitation is redeemed once for a password.
CREATE TABLE invitations (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    secret_hash bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX invitations_user_idx ON invitations (tenant_id, user_id);

CREATE TABLE teams (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key         text        NOT NULL CHECK (key ~ '^[A-Z][A-Z0-9]{1,9}$'),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key)
);
CREATE INDEX teams_list_idx ON teams (tenant_id, created_at, id);

CREATE TABLE team_members (
    tenant_id  uuid        NOT NULL,
    team_id    uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('lead', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, team_id, user_id),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX team_members_user_idx ON team_members (tenant_id, user_id);

CREATE TABLE projects (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    team_id     uuid        NOT NULL,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key         text        NOT NULL CHECK (key ~ '^[A-Z]{2,10}$'),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    -- The last task number handed out; bumped under the project's row lock.
    task_seq    bigint      NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id)
);
CREATE INDEX projects_list_idx ON projects (tenant_id, created_at, id);
CREATE INDEX projects_team_idx ON projects (tenant_id, team_id);

CREATE TABLE tasks (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    project_id  uuid        NOT NULL,
    number      bigint      NOT NULL,
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    description text        NOT NULL DEFAULT '' CHECK (length(description) <= 50000),
    status      text        NOT NULL DEFAULT 'backlog'
                            CHECK (status IN ('backlog', 'todo', 'in_progress', 'done', 'canceled')),
    priority    smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 4),
    assignee_id uuid,
    labels      text[]      NOT NULL DEFAULT '{}' CHECK (cardinality(labels) <= 20),
    due_date    date,
    parent_id   uuid,
    position    double precision NOT NULL,
    created_by  uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, project_id, number),
    -- The target of the parent key below: a parent must be in the same project.
    UNIQUE (tenant_id, project_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, assignee_id) REFERENCES users (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
    FOREIGN KEY (tenant_id, project_id, parent_id) REFERENCES tasks (tenant_id, project_id, id)
        ON DELETE SET NULL (parent_id)
);
-- Full-text search over title (weighted higher) and description. The 'simple' configuration
-- does not stem, so it behaves the same for every language a tenant writes in. An expression
-- index rather than a stored column keeps the tsvector out of every row read.
-- +goose StatementBegin
CREATE FUNCTION task_search(title text, description text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN setweight(to_tsvector('simple'::regconfig, title), 'A') ||
       setweight(to_tsvector('simple'::regconfig, description), 'B');
-- +goose StatementEnd

-- One index per sort order of the task list, each leading with tenant and project, so a page
-- costs the same however many tasks the database holds.
CREATE INDEX tasks_position_idx ON tasks (tenant_id, project_id, position, id);
CREATE INDEX tasks_created_idx  ON tasks (tenant_id, project_id, created_at DESC, id DESC);
CREATE INDEX tasks_updated_idx  ON tasks (tenant_id, project_id, updated_at DESC, id DESC);
CREATE INDEX tasks_priority_idx ON tasks (tenant_id, project_id, priority DESC, id DESC);
CREATE INDEX tasks_due_idx      ON tasks (tenant_id, project_id, coalesce(due_date, '9999-12-31'::date), id);
CREATE INDEX tasks_assignee_idx ON tasks (tenant_id, assignee_id) WHERE assignee_id IS NOT NULL;
CREATE INDEX tasks_parent_idx   ON tasks (tenant_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tasks_search_idx   ON tasks USING gin (task_search(title, description));
CREATE INDEX tasks_labels_idx   ON tasks USING gin (labels);

-- POST creates with an Idempotency-Key: the first response is kept for 24 hours and replayed to
-- the same caller sending the same key and body.
CREATE TABLE idempotency_keys (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id       uuid        NOT NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    operation     text        NOT NULL,
    request_hash  bytea       NOT NULL,
    status        integer,
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (tenant_id, created_at);

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE teams ENABLE ROW LEVEL SECURITY;
ALTER TABLE teams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON teams
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON team_members
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON projects
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tasks
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE tasks;
DROP FUNCTION task_search(text, text);
DROP TABLE projects;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE invitations;
