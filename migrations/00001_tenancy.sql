-- The tenancy core: tenants and their users, each behind row-level security.
-- Tables are owned by tasker_owner (migrations run as it); the server runs as tasker_app, which
-- owns nothing and cannot bypass RLS (see internal/migrate/bootstrap.sql for both roles).

-- +goose Up
CREATE TABLE tenants (
    id                  uuid        PRIMARY KEY,
    slug                text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
    name                text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan                text        NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'enterprise')),
    subscription_status text        NOT NULL DEFAULT 'none',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- A tenant sees only its own row. A tenant is created inside a transaction whose app.tenant_id is
-- already the new tenant's id, so no bypass is needed for sign-up either.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

CREATE TABLE users (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            uuid        NOT NULL,
    email         text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'invited', 'deactivated')),
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Email is unique within a tenant, case-insensitively.
CREATE UNIQUE INDEX users_tenant_email_key ON users (tenant_id, lower(email));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- +goose Down
DROP TABLE users;
DROP TABLE tenants;
