-- Billing: each tenant's Stripe subscription as the webhooks last left it, the log of Stripe
-- events received (each id once), and the narrow SECURITY DEFINER functions through which a
-- webhook, which arrives with no tenant, finds one and records its event.

-- +goose Up

-- One row per tenant, made at sign-up (and here for tenants that exist): the tenant's Stripe
-- customer, and a copy of its current subscription (chosen among stripe_subscriptions). Its row
-- lock is the tenant's billing lock: a webhook changing the subscription and every create that
-- counts against a plan limit (seats, projects, storage) take it first, so limit checks are
-- exact under concurrency and never race a plan change.
CREATE TABLE billing_subscriptions (
    tenant_id            uuid        PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- Stripe's customer; one Stripe customer belongs to at most one tenant.
    customer_id          text        UNIQUE CHECK (octet_length(customer_id) <= 255),
    -- The current subscription (see stripe_subscriptions), and what follows is its state.
    subscription_id      text        CHECK (octet_length(subscription_id) <= 255),
    -- Stripe's subscription status, or 'none' before any subscription.
    status               text        NOT NULL DEFAULT 'none' CHECK (status IN ('none', 'incomplete',
                             'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')),
    -- The plan the subscription's price is for (free when the price is unknown to us).
    plan                 text        NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'enterprise')),
    price_id             text        CHECK (octet_length(price_id) <= 255),
    quantity             bigint      CHECK (quantity >= 0),
    current_period_end   timestamptz,
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    trial_end            timestamptz,
    -- When the subscription last went past_due: access holds for the grace period from then.
    past_due_since       timestamptz,
    -- The Stripe event the current subscription's state was last taken from, and when Stripe
    -- made it.
    state_event_id       text,
    state_at             timestamptz,
    -- The last invoice event: paid or payment_failed, and when.
    invoice_status       text        CHECK (invoice_status IN ('paid', 'payment_failed')),
    invoice_at           timestamptz,
    invoice_event_id     text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE billing_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON billing_subscriptions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
-- For billing_owners alone (owned by tasker_owner, which FORCE binds like anyone).
CREATE POLICY billing_lookup ON billing_subscriptions FOR SELECT TO tasker_owner USING (true);

ALTER TABLE billing_subscriptions NO FORCE ROW LEVEL SECURITY;
INSERT INTO billing_subscriptions (tenant_id) SELECT id FROM tenants ON CONFLICT DO NOTHING;
ALTER TABLE billing_subscriptions FORCE ROW LEVEL SECURITY;

-- Every Stripe subscription of a tenant, each with the state of the newest event seen for it:
-- an event older than that state (or as old and of a lower rank) never overwrites it, since
-- Stripe delivers out of order. Keeping each subscription apart is what makes the order of
-- deliveries not matter across subscriptions too: the tenant's current one is chosen from the
-- set (billing.Current), whatever order their events came in.
CREATE TABLE stripe_subscriptions (
    tenant_id            uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- Stripe's id; one subscription belongs to at most one tenant.
    id                   text        NOT NULL UNIQUE CHECK (octet_length(id) BETWEEN 1 AND 255),
    customer_id          text        CHECK (octet_length(customer_id) <= 255),
    status               text        NOT NULL CHECK (status IN ('incomplete', 'incomplete_expired', 'trialing',
                             'active', 'past_due', 'canceled', 'unpaid', 'paused')),
    plan                 text        NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    price_id             text        CHECK (octet_length(price_id) <= 255),
    quantity             bigint      CHECK (quantity >= 0),
    current_period_end   timestamptz,
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    trial_end            timestamptz,
    past_due_since       timestamptz,
    -- NULL until an event of the subscription itself: a checkout links the id before that.
    state_event_id       text,
    state_at             timestamptz,
    state_rank           smallint    NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE stripe_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE stripe_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stripe_subscriptions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY billing_lookup ON stripe_subscriptions FOR SELECT TO tasker_owner USING (true);

-- Every Stripe event received, once per id. Not tenant-owned (an event may name no tenant of
-- ours), so the application role has no privilege on it at all: it goes through the functions
-- below, which only record and answer yes or no.
CREATE TABLE stripe_events (
    id          text        PRIMARY KEY CHECK (octet_length(id) BETWEEN 1 AND 255),
    type        text        NOT NULL CHECK (octet_length(type) <= 255),
    created     timestamptz NOT NULL,
    api_version text        NOT NULL CHECK (octet_length(api_version) <= 64),
    livemode    boolean     NOT NULL,
    tenant_id   uuid        REFERENCES tenants (id) ON DELETE SET NULL,
    -- applied: it changed the tenant's billing; stale: older than the state it would change;
    -- ignored: a type we do not act on; unmatched: no tenant of ours; conflict: it named a
    -- tenant other than the one its customer belongs to; parked: we could not read it (an API
    -- version we do not speak), kept to be applied once we can.
    outcome     text        NOT NULL CHECK (outcome IN ('applied', 'stale', 'ignored', 'unmatched', 'conflict', 'parked')),
    -- The body exactly as received, for parked events (and the record of any other): bytes,
    -- since a signed body that is not text must still be kept.
    payload     bytea       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_parked ON stripe_events (received_at) WHERE outcome = 'parked';
REVOKE ALL ON stripe_events FROM tasker_app;

-- Records event id with its outcome, in the caller's transaction, and says whether this call
-- recorded it: false when it was recorded before (a duplicate delivery), so the caller applies
-- nothing. A concurrent delivery of the same id waits here on the first one's row until that
-- transaction ends, then gets false if it committed. A parked event may be recorded again, with
-- the outcome of the delivery that could read it.
-- +goose StatementBegin
CREATE FUNCTION stripe_event_record(event_id text, event_type text, event_created timestamptz, event_api_version text,
                                    event_livemode boolean, event_tenant uuid, event_outcome text, event_payload bytea)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    INSERT INTO public.stripe_events AS e (id, type, created, api_version, livemode, tenant_id, outcome, payload)
    VALUES (event_id, event_type, event_created, event_api_version, event_livemode, event_tenant, event_outcome, event_payload)
    ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome, tenant_id = EXCLUDED.tenant_id,
        api_version = EXCLUDED.api_version, payload = EXCLUDED.payload, updated_at = now()
        WHERE e.outcome = 'parked' AND EXCLUDED.outcome <> 'parked'
    RETURNING true
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION stripe_event_record(text, text, timestamptz, text, boolean, uuid, text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stripe_event_record(text, text, timestamptz, text, boolean, uuid, text, bytea) TO tasker_app;

-- Whether event_id was recorded, and with what outcome (NULL: never), for the reconciler and
-- for parked deliveries.
-- +goose StatementBegin
CREATE FUNCTION stripe_event_outcome(event_id text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT outcome FROM public.stripe_events WHERE id = event_id
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION stripe_event_outcome(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stripe_event_outcome(text) TO tasker_app;

-- How many events are parked, for the metrics.
-- +goose StatementBegin
CREATE FUNCTION stripe_parked_events() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT count(*) FROM public.stripe_events WHERE outcome = 'parked'
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION stripe_parked_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stripe_parked_events() TO tasker_app;

-- The tenants a Stripe subscription and a Stripe customer belong to (NULL: none of ours): the
-- credential-first lookup of a webhook, which names only Stripe's ids. Only tenant ids come
-- back.
-- +goose StatementBegin
CREATE FUNCTION billing_owners(stripe_subscription text, stripe_customer text,
                               OUT subscription_tenant uuid, OUT customer_tenant uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT (SELECT tenant_id FROM public.stripe_subscriptions WHERE id = stripe_subscription),
           (SELECT tenant_id FROM public.billing_subscriptions WHERE customer_id = stripe_customer)
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION billing_owners(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing_owners(text, text) TO tasker_app;

-- +goose Down
DROP FUNCTION billing_owners(text, text);
DROP FUNCTION stripe_parked_events();
DROP FUNCTION stripe_event_outcome(text);
DROP FUNCTION stripe_event_record(text, text, timestamptz, text, boolean, uuid, text, bytea);
DROP TABLE stripe_events;
DROP TABLE stripe_subscriptions;
DROP TABLE billing_subscriptions;
