-- Authentication: the pre-login tenant directory, sessions with their refresh-token rotation
-- families, API keys, and the append-only audit log.

-- +goose Up

-- Before login the tenant is unknown, and RLS on tenants hides every row. This global table
-- maps a public slug to its tenant id and holds nothing else, so the login path can resolve
-- the tenant without any role that bypasses RLS.
CREATE TABLE tenant_directory (
    slug      text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
    tenant_id uuid NOT NULL UNIQUE REFERENCES tenants (id) ON DELETE CASCADE
);
-- Only insert (at sign-up) and read: the app may not rename or remove another tenant's entry.
REVOKE UPDATE, DELETE ON tenant_directory FROM tasker_app;

-- One session is one refresh-token rotation family.
CREATE TABLE sessions (
    tenant_id      uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id             uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text CHECK (revoked_reason IN ('logout', 'revoked', 'reuse', 'user_deactivated')),
    user_agent     text        NOT NULL DEFAULT '' CHECK (length(user_agent) <= 512),
    ip             text        NOT NULL DEFAULT '' CHECK (length(ip) <= 64),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_idx ON sessions (tenant_id, user_id, created_at DESC) WHERE revoked_at IS NULL;

-- Refresh tokens: only a SHA-256 of the 256-bit secret is stored. A token with used_at set has
-- been rotated into successor_id; presenting it again (after the grace window) is reuse.
-- successor_sealed lets a concurrent refresh inside the grace window get the same successor
-- without the server keeping any secret in the clear (see internal/tokens).
CREATE TABLE refresh_tokens (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    session_id   uuid        NOT NULL,
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    used_at      timestamptz,
    successor_id uuid,
    successor_sealed bytea,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, session_id) REFERENCES sessions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (tenant_id, session_id);

CREATE TABLE api_keys (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid        NOT NULL,
    created_by   uuid        NOT NULL,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    prefix       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX api_keys_active_idx ON api_keys (tenant_id, created_at DESC) WHERE revoked_at IS NULL;

-- Who did what to which resource. Written in the same transaction as the change it records;
-- the application may only append.
CREATE TABLE audit_events (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            uuid        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    actor_user_id uuid,
    actor_key_id  uuid,
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   uuid,
    ip            text        NOT NULL DEFAULT '',
    data          jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_time_idx ON audit_events (tenant_id, created_at DESC, id DESC);
REVOKE UPDATE, DELETE ON audit_events FROM tasker_app;

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sessions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE api_keys;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE tenant_directory;
