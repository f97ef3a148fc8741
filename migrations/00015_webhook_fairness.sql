-- Webhook deliveries after a second attack: a lease outlives its endpoint (an attempt in flight
-- keeps its tenant's slot after the endpoint is deleted); a redelivery starts a new round whose
-- jobs alone may send (jobs of an earlier round, still scheduled, step aside); and the tenant's
-- pending deliveries can be counted cheaply, to give a large backlog a lower priority.

-- +goose Up
ALTER TABLE webhook_leases DROP CONSTRAINT webhook_leases_tenant_id_endpoint_id_fkey;
ALTER TABLE webhook_leases ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;

ALTER TABLE webhook_deliveries ADD COLUMN round integer NOT NULL DEFAULT 0;

CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (tenant_id) WHERE status = 'pending';

-- +goose Down
DROP INDEX webhook_deliveries_pending;
ALTER TABLE webhook_deliveries DROP COLUMN round;
ALTER TABLE webhook_leases DROP CONSTRAINT webhook_leases_tenant_id_fkey;
ALTER TABLE webhook_leases ADD FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE;
