-- SSO sign-in: who a provider's subject is in a tenant, and the two short-lived, single-use
-- records of a sign-in (the state that goes to the provider, and the code that goes to the
-- frontend). Both records are looked up by credentials that carry their tenant
-- (tokens.SSOState, tokens.SSOCode), so every lookup runs under the tenant's row-level security.

-- +goose Up

-- Who saved the configuration last: an identity is linked to an owner only while that person
-- is an active owner, so that an admin cannot name a provider they run and become an owner.
ALTER TABLE sso_configs ADD COLUMN saved_by uuid;

-- How a session began, so that reserving passwords to owners ends the others' password sessions.
ALTER TABLE sessions ADD COLUMN method text NOT NULL DEFAULT 'password' CHECK (method IN ('password', 'sso'));

CREATE TABLE sso_identities (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    issuer        text        NOT NULL CHECK (octet_length(issuer) BETWEEN 1 AND 2048),
    subject       text        NOT NULL CHECK (octet_length(subject) BETWEEN 1 AND 255),
    user_id       uuid        NOT NULL,
    -- The email the provider asserted last; the user's own email is not changed by it.
    email         text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    -- The client of the issuer under which the identity was linked or used while an active
    -- owner's configuration was in force: only through that client may it sign in an owner
    -- under a configuration an admin saved.
    vouched_client text       CHECK (octet_length(vouched_client) <= 512),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, issuer, subject),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sso_identities_user ON sso_identities (tenant_id, user_id);

CREATE TABLE sso_states (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            uuid        NOT NULL,
    secret_hash   bytea       NOT NULL,
    -- SHA-256 of the cookie that binds the sign-in to the browser that started it.
    browser_hash  bytea       NOT NULL,
    nonce         text        NOT NULL,
    code_verifier text        NOT NULL,
    -- The provider the flow went to, and the callback URL it was given, as they were at start.
    issuer        text        NOT NULL,
    client_id     text        NOT NULL,
    callback_url  text        NOT NULL,
    -- The frontend to return to (one of the allowed redirect URIs), and its own state.
    redirect_uri  text        NOT NULL,
    app_state     text        CHECK (length(app_state) <= 512),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX sso_states_expiry ON sso_states (tenant_id, expires_at);

CREATE TABLE sso_codes (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    secret_hash bytea       NOT NULL,
    user_id     uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    -- The session the code opened, ended if the code is presented again.
    session_id  uuid,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sso_codes_expiry ON sso_codes (tenant_id, expires_at);

ALTER TABLE sso_identities ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_identities FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_identities
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE sso_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_states
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE sso_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE sso_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sso_codes
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- +goose Down
DROP TABLE sso_codes;
DROP TABLE sso_states;
DROP TABLE sso_identities;
ALTER TABLE sessions DROP COLUMN method;
ALTER TABLE sso_configs DROP COLUMN saved_by;
