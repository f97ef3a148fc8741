-- Outbound webhooks: the endpoints a tenant's admins register. Signing secrets are stored
-- sealed (AES-GCM under WEBHOOK_ENCRYPTION_KEY, bound to the tenant and endpoint), since each
-- delivery is signed with them; during a rotation the previous secret signs too, until its end.

-- +goose Up

CREATE TABLE webhook_endpoints (
    tenant_id                  uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                         uuid        NOT NULL,
    url                        text        NOT NULL CHECK (octet_length(url) BETWEEN 1 AND 2048),
    description                text        NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- Exact event types (task.created), a resource's (task.*), or every one (*).
    event_types                text[]      NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 50),
    enabled                    boolean     NOT NULL DEFAULT true,
    -- Why the server turned it off (it failed for too long); cleared when an admin enables it.
    disabled_reason            text        CHECK (octet_length(disabled_reason) <= 500),
    secret_sealed              bytea       NOT NULL CHECK (octet_length(secret_sealed) <= 1024),
    previous_secret_sealed     bytea       CHECK (octet_length(previous_secret_sealed) <= 1024),
    previous_secret_expires_at timestamptz,
    created_by                 uuid        NOT NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
);
CREATE INDEX webhook_endpoints_listing ON webhook_endpoints (tenant_id, created_at DESC, id DESC);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- +goose Down
DROP TABLE webhook_endpoints;
