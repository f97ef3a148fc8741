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
-- The tenant's row follows in the same statement: its plan (tenant_plan, the plan that holds
-- now) and the subscription's status.
WITH tenant AS (
    UPDATE tenants SET plan = sqlc.arg(tenant_plan), subscription_status = sqlc.arg(status), updated_at = now()
    WHERE id = sqlc.arg(tenant_id)
)
UPDATE billing_subscriptions SET
    customer_id = sqlc.narg(customer_id), subscription_id = sqlc.narg(subscription_id),
    status = sqlc.arg(status), plan = sqlc.arg(plan), price_id = sqlc.narg(price_id),
    quantity = sqlc.narg(quantity), current_period_end = sqlc.narg(current_period_end),
    cancel_at_period_end = sqlc.arg(cancel_at_period_end), trial_end = sqlc.narg(trial_end),
    past_due_since = sqlc.narg(past_due_since), state_event_id = sqlc.narg(state_event_id),
    state_at = sqlc.narg(state_at),
    invoice_status = sqlc.narg(invoice_status), invoice_at = sqlc.narg(invoice_at),
    invoice_event_id = sqlc.narg(invoice_event_id), updated_at = now()
WHERE tenant_id = sqlc.arg(tenant_id)
RETURNING *;

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
    sqlc.arg(livemode), sqlc.narg(tenant_id), sqlc.arg(outcome), sqlc.arg(payload)::bytea), false)::boolean AS recorded;

-- name: StripeEventOutcome :one
SELECT coalesce(stripe_event_outcome(sqlc.arg(id)), '')::text AS outcome;

-- name: StripeParkedEvents :one
SELECT stripe_parked_events()::bigint AS parked;

-- name: BillingOwners :one
-- The tenants of a Stripe subscription and customer, uuid.Nil for none.
SELECT coalesce(o.subscription_tenant, '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS subscription_tenant,
       coalesce(o.customer_tenant, '00000000-0000-0000-0000-000000000000'::uuid)::uuid AS customer_tenant
FROM billing_owners(sqlc.arg(subscription_id), sqlc.arg(customer_id)) AS o;

-- name: SetBillingCustomer :one
-- Links the tenant's Stripe customer unless one is linked already; returns the linked one.
UPDATE billing_subscriptions SET customer_id = coalesce(customer_id, sqlc.arg(customer_id)), updated_at = now()
WHERE tenant_id = sqlc.arg(tenant_id)
RETURNING customer_id;

-- name: ListStripeSubscriptions :many
SELECT * FROM stripe_subscriptions ORDER BY created_at, id;

-- name: SaveStripeSubscription :exec
INSERT INTO stripe_subscriptions AS s (tenant_id, id, customer_id, status, plan, price_id, quantity, current_period_end,
    cancel_at_period_end, trial_end, past_due_since, state_event_id, state_at, state_rank)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.narg(customer_id), sqlc.arg(status), sqlc.arg(plan), sqlc.narg(price_id),
    sqlc.narg(quantity), sqlc.narg(current_period_end), sqlc.arg(cancel_at_period_end), sqlc.narg(trial_end),
    sqlc.narg(past_due_since), sqlc.narg(state_event_id), sqlc.narg(state_at), sqlc.arg(state_rank))
ON CONFLICT (tenant_id, id) DO UPDATE SET
    customer_id = coalesce(EXCLUDED.customer_id, s.customer_id), status = EXCLUDED.status, plan = EXCLUDED.plan,
    price_id = EXCLUDED.price_id, quantity = EXCLUDED.quantity, current_period_end = EXCLUDED.current_period_end,
    cancel_at_period_end = EXCLUDED.cancel_at_period_end, trial_end = EXCLUDED.trial_end,
    past_due_since = EXCLUDED.past_due_since, state_event_id = EXCLUDED.state_event_id,
    state_at = EXCLUDED.state_at, state_rank = EXCLUDED.state_rank;

-- name: LinkStripeSubscription :exec
-- A checkout names the subscription before any event of its own: the id is the tenant's from
-- then on, with no state yet (any event of it is newer).
INSERT INTO stripe_subscriptions (tenant_id, id, customer_id, status, plan)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.narg(customer_id), 'incomplete', 'free')
ON CONFLICT (tenant_id, id) DO NOTHING;
