-- name: CreateBillingSubscription :exec
-- At sign-up: every tenant has its row, whose lock is its billing lock.
INSERT INTO billing_subscriptions (tenant_id) VALUES (sqlc.arg(tenant_id)) ON CONFLICT DO NOTHING;

-- name: GetBillingSubscription :one
SELECT * FROM billing_subscriptions;

-- name: LockBillingSubscription :one
-- Takes the tenant's billing lock until COMMIT (see the migration): the row is made if a tenant
-- somehow has none, and locked either way. FOR NO KEY UPDATE-strength, so rows referencing the
-- tenant are not blocked.
INSERT INTO billing_subscriptions AS b (tenant_id) VALUES (sqlc.arg(tenant_id))
ON CONFLICT (tenant_id) DO UPDATE SET tenant_id = b.tenant_id
RETURNING *;

-- name: SaveBillingSubscription :one
UPDATE billing_subscriptions SET
    customer_id = sqlc.narg(customer_id), subscription_id = sqlc.narg(subscription_id),
    status = sqlc.arg(status), plan = sqlc.arg(plan), price_id = sqlc.narg(price_id),
    quantity = sqlc.narg(quantity), current_period_end = sqlc.narg(current_period_end),
    cancel_at_period_end = sqlc.arg(cancel_at_period_end), trial_end = sqlc.narg(trial_end),
    past_due_since = sqlc.narg(past_due_since), state_event_id = sqlc.narg(state_event_id),
    state_at = sqlc.narg(state_at), state_rank = sqlc.arg(state_rank),
    invoice_status = sqlc.narg(invoice_status), invoice_at = sqlc.narg(invoice_at),
    invoice_event_id = sqlc.narg(invoice_event_id), updated_at = now()
WHERE tenant_id = sqlc.arg(tenant_id)
RETURNING *;

-- name: SetTenantPlan :exec
UPDATE tenants SET plan = sqlc.arg(plan), subscription_status = sqlc.arg(status), updated_at = now()
WHERE id = sqlc.arg(id);

-- name: TenantExists :one
-- With the tenant set to id, RLS shows its row only if it exists: a webhook's metadata may name
-- any id.
SELECT EXISTS (SELECT 1 FROM tenants WHERE id = sqlc.arg(id));

-- name: CountSeats :one
-- Users who hold a seat: everyone not deactivated (an invitation holds one).
SELECT count(*) FROM users WHERE status <> 'deactivated';

-- name: CountProjects :one
SELECT count(*) FROM projects;

-- name: BillingUsage :one
SELECT (SELECT count(*) FROM users WHERE status <> 'deactivated') AS seats,
       (SELECT count(*) FROM projects) AS projects,
       coalesce((SELECT bytes FROM storage_usage), 0)::bigint AS storage_bytes;

-- name: RecordStripeEvent :one
SELECT coalesce(stripe_event_record(sqlc.arg(id), sqlc.arg(type), sqlc.arg(created), sqlc.arg(api_version),
    sqlc.arg(livemode), sqlc.narg(tenant_id), sqlc.arg(outcome), sqlc.arg(payload)), false)::boolean AS recorded;

-- name: StripeEventOutcome :one
SELECT coalesce(stripe_event_outcome(sqlc.arg(id)), '')::text AS outcome;

-- name: StripeLastEventCreated :one
SELECT coalesce(stripe_last_event_created(), 'epoch'::timestamptz)::timestamptz AS created;

-- name: StripeParkedEvents :one
SELECT stripe_parked_events()::bigint AS parked;

-- name: BillingTenantOf :one
SELECT coalesce(billing_tenant_of(sqlc.arg(subscription_id), sqlc.arg(customer_id)), '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS tenant_id;
