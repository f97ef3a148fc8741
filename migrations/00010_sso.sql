-- SSO: each tenant's OpenID Connect provider, as its admin configured it. The client secret is
-- stored sealed (AES-GCM, internal/secretbox, bound to the tenant), never in the clear.

-- +goose Up

CREATE TABLE sso_configs (
    tenant_id                uuid        PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    issuer                   text        NOT NULL CHECK (octet_length(issuer) BETWEEN 1 AND 2048),
    client_id                text        NOT NULL CHECK (octet_length(client_id) BETWEEN 1 AND 512),
    client_secret_sealed     bytea       NOT NULL CHECK (octet_length(client_secret_sealed) <= 4096),
    -- Lower-case domains whose verified emails may sign in (and be provisioned).
    allowed_domains          text[]      NOT NULL CHECK (cardinality(allowed_domains) BETWEEN 1 AND 100),
    default_role             text        NOT NULL CHECK (default_role IN ('admin', 'member', 'viewer')),
    -- Whether people other than owners may still sign in with a password.
    password_login           boolean     NOT NULL DEFAULT true,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE sso_configs ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_configs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_configs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- +goose Down
DROP TABLE sso_configs;
