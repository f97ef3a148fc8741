-- Webhook deliveries after a third attack: a lease names the delivery its attempt is for, so a
-- delivery is never attempted twice at once (a redelivery while an attempt of the round before
-- is still in flight waits for it); and an endpoint whose last answer was slow is marked, so its
-- deliveries go to the lane of failing endpoints with the failing ones.

-- +goose Up
ALTER TABLE webhook_leases ADD COLUMN delivery_id uuid;
CREATE INDEX webhook_leases_delivery ON webhook_leases (tenant_id, delivery_id);
ALTER TABLE webhook_endpoints ADD COLUMN slow boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN slow;
DROP INDEX webhook_leases_delivery;
ALTER TABLE webhook_leases DROP COLUMN delivery_id;
