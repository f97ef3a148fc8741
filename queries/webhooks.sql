-- name: LockWebhookEndpoints :exec
-- Orders the tenant's endpoint creations, so the count that follows (a statement of its own,
-- with a snapshot taken after the wait) sees every endpoint committed before.
SELECT pg_advisory_xact_lock(7218, hashtext(sqlc.arg(tenant_id)::uuid::text));

-- name: CountWebhookEndpoints :one
SELECT count(*) FROM webhook_endpoints;

-- name: CreateWebhookEndpoint :one
-- The endpoint receives the events committed after it; the tenant's webhook cursor starts at
-- the stream's end when this is its first endpoint, so no history is read for nothing.
WITH head AS (
    SELECT coalesce((SELECT last_id FROM event_streams), 0) AS last_id
), cursor AS (
    INSERT INTO webhook_streams (tenant_id, last_event_id)
    SELECT sqlc.arg(tenant_id), last_id FROM head
    ON CONFLICT (tenant_id) DO NOTHING
)
INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, enabled, secret_sealed, created_by, after_event_id)
SELECT sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(url), sqlc.arg(description), sqlc.arg(event_types)::text[],
       sqlc.arg(enabled), sqlc.arg(secret_sealed), sqlc.arg(created_by), head.last_id
FROM head
RETURNING *;

-- name: ListWebhookEndpoints :many
SELECT * FROM webhook_endpoints
WHERE sqlc.narg(before_created_at)::timestamptz IS NULL
   OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid)
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);

-- name: GetWebhookEndpoint :one
SELECT * FROM webhook_endpoints WHERE id = sqlc.arg(id);

-- name: UpdateWebhookEndpoint :one
-- A partial update. Enabling a disabled endpoint clears the reason the server disabled it and
-- its failure streak, and starts it at the stream's end: it gets nothing of the time it was off.
UPDATE webhook_endpoints SET
    url = COALESCE(sqlc.narg(url), url),
    description = COALESCE(sqlc.narg(description), description),
    event_types = COALESCE(sqlc.narg(event_types)::text[], event_types),
    enabled = COALESCE(sqlc.narg(enabled), enabled),
    disabled_reason = CASE WHEN sqlc.narg(enabled)::boolean THEN NULL ELSE disabled_reason END,
    failing_since = CASE WHEN sqlc.narg(enabled)::boolean AND NOT enabled THEN NULL ELSE failing_since END,
    after_event_id = CASE WHEN sqlc.narg(enabled)::boolean AND NOT enabled
                          THEN coalesce((SELECT last_id FROM event_streams), 0) ELSE after_event_id END,
    updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: DeleteWebhookEndpoint :execrows
DELETE FROM webhook_endpoints WHERE id = sqlc.arg(id);

-- name: RotateWebhookSecret :one
-- The new secret signs from now on; the current one keeps signing too until previous_until.
UPDATE webhook_endpoints SET
    previous_secret_sealed = secret_sealed, previous_secret_expires_at = sqlc.arg(previous_until),
    secret_sealed = sqlc.arg(secret_sealed), updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: LockWebhookStream :one
-- Taken before reading the events after the cursor, in a statement of its own: the read that
-- follows then sees every event committed before the lock was granted, and two dispatchers of
-- one tenant take turns.
SELECT last_event_id FROM webhook_streams FOR UPDATE;

-- name: QueueWebhookDeliveries :one
-- Turns the next events after the cursor into deliveries for every enabled endpoint that
-- subscribes to them and is older than the event, and moves the cursor past the events read.
-- Returns the new deliveries' ids, whether each one's endpoint is failing (or slow), and how
-- many events were read.
WITH ev AS (
    SELECT e.id, e.type, e.created_at, e.payload FROM events e
    WHERE e.id > sqlc.arg(after)::bigint
    ORDER BY e.id
    LIMIT sqlc.arg(lim)
), ins AS (
    INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, payload, attempts_allowed)
    SELECT sqlc.arg(tenant_id)::uuid, gen_random_uuid(), ep.id, ev.id, ev.type,
           jsonb_build_object('type', ev.type, 'timestamp', ev.created_at, 'data', ev.payload),
           sqlc.arg(attempts_allowed)::integer
    FROM ev JOIN webhook_endpoints ep
      ON ep.enabled AND ev.id > ep.after_event_id AND ev.type = ANY (sqlc.arg(types)::text[])
     AND EXISTS (SELECT FROM unnest(ep.event_types) p
                 WHERE p = '*' OR p = ev.type OR (p LIKE '%.*' AND starts_with(ev.type, left(p, -1))))
    ORDER BY ev.id, ep.id
    ON CONFLICT (tenant_id, endpoint_id, event_id) DO NOTHING
    RETURNING id, endpoint_id
), moved AS (
    UPDATE webhook_streams SET last_event_id = (SELECT max(id) FROM ev)
    WHERE EXISTS (SELECT FROM ev)
)
SELECT coalesce(array_agg(ins.id), '{}')::uuid[] AS delivery_ids,
       coalesce(array_agg(ep.failing_since IS NOT NULL OR ep.slow), '{}')::boolean[] AS failing,
       (SELECT count(*) FROM ev) AS events_read
FROM ins JOIN webhook_endpoints ep ON ep.id = ins.endpoint_id;

-- name: CountPendingWebhookDeliveries :one
-- The tenant's backlog, which sets the priority of its new jobs.
SELECT count(*) FROM webhook_deliveries WHERE status = 'pending';

-- name: CreateWebhookPing :one
INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_type, payload, attempts_allowed)
VALUES (sqlc.arg(tenant_id), sqlc.arg(id), sqlc.arg(endpoint_id), 'webhook.test',
        jsonb_build_object('type', 'webhook.test', 'timestamp', now(),
                           'data', jsonb_build_object('endpoint_id', sqlc.arg(endpoint_id)::uuid)),
        sqlc.arg(attempts_allowed))
RETURNING *;

-- name: RedeliverWebhook :one
-- A finished delivery starts a new round of attempts; one still pending is left alone (no row).
UPDATE webhook_deliveries SET
    status = 'pending', attempts_allowed = attempts + sqlc.arg(attempts)::integer, round = round + 1,
    next_attempt_at = now(), updated_at = now()
WHERE id = sqlc.arg(id) AND endpoint_id = sqlc.arg(endpoint_id) AND status <> 'pending'
RETURNING *;

-- name: GetWebhookDelivery :one
SELECT * FROM webhook_deliveries WHERE id = sqlc.arg(id) AND endpoint_id = sqlc.arg(endpoint_id);

-- name: ListWebhookDeliveries :many
SELECT * FROM webhook_deliveries
WHERE endpoint_id = sqlc.arg(endpoint_id)
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status)::text)
  AND (sqlc.narg(before_created_at)::timestamptz IS NULL
       OR (created_at, id) < (sqlc.narg(before_created_at)::timestamptz, sqlc.narg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);

-- name: ListWebhookAttempts :many
SELECT * FROM webhook_attempts WHERE delivery_id = ANY (sqlc.arg(delivery_ids)::uuid[])
ORDER BY delivery_id, n;

-- name: GetDeliveryToSend :one
-- What an attempt needs: the delivery and its endpoint's address, state and secrets.
SELECT d.id, d.endpoint_id, d.status, d.attempts, d.attempts_allowed, d.payload, d.round, d.next_attempt_at,
       ep.url, ep.enabled, ep.secret_sealed, ep.previous_secret_sealed, ep.previous_secret_expires_at,
       (ep.failing_since IS NOT NULL OR ep.slow)::boolean AS endpoint_failing
FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
WHERE d.id = sqlc.arg(id);

-- name: CancelWebhookDelivery :exec
UPDATE webhook_deliveries SET status = 'canceled', next_attempt_at = NULL, updated_at = now()
WHERE id = sqlc.arg(id) AND status = 'pending';

-- name: LockWebhookLeases :exec
-- Orders the tenant's lease takers, so the counts that follow (their own statement) are exact.
SELECT pg_advisory_xact_lock(7219, hashtext(sqlc.arg(tenant_id)::uuid::text));

-- name: TakeWebhookLease :one
-- A lease for an attempt of the delivery when the endpoint has fewer than max_in_flight
-- unexpired ones, the tenant fewer than tenant_max_in_flight, and the delivery none (an attempt
-- of an earlier round may still be in flight); no row otherwise.
INSERT INTO webhook_leases (tenant_id, endpoint_id, id, expires_at, delivery_id)
SELECT sqlc.arg(tenant_id), sqlc.arg(endpoint_id), gen_random_uuid(), now() + make_interval(secs => sqlc.arg(hold_seconds)::double precision),
       sqlc.arg(delivery_id)::uuid
WHERE (SELECT count(*) FROM webhook_leases
       WHERE endpoint_id = sqlc.arg(endpoint_id) AND expires_at > now()) < sqlc.arg(max_in_flight)::integer
  AND (SELECT count(*) FROM webhook_leases WHERE expires_at > now()) < sqlc.arg(tenant_max_in_flight)::integer
  AND NOT EXISTS (SELECT FROM webhook_leases WHERE delivery_id = sqlc.arg(delivery_id) AND expires_at > now())
RETURNING id;

-- name: DropWebhookLease :exec
-- Gives a lease back, and clears the tenant's expired ones (a crashed server's, whose endpoint
-- may be gone).
DELETE FROM webhook_leases WHERE id = sqlc.arg(id) OR expires_at < now();

-- name: LockWebhookDelivery :exec
-- Orders the records of one delivery's attempts (their numbers come from the ones before).
SELECT 1 FROM webhook_deliveries WHERE id = sqlc.arg(id) FOR UPDATE;

-- name: RecordWebhookAttempt :one
-- Lists an attempt, and when it is the one the delivery waits for (its round and attempt count
-- as the attempt began), stores its outcome: succeeded, pending again until next_attempt_at, or
-- failed for good once the round's attempts are spent. A delivery canceled meanwhile stays
-- canceled. An attempt of an earlier round (in flight when its delivery was redelivered) is
-- listed and changes nothing else. The endpoint's failure streak starts at its first failure
-- and ends with a success; slow says whether its answer took too long.
WITH d AS (
    UPDATE webhook_deliveries SET
        attempts = attempts + 1,
        status = CASE WHEN status <> 'pending' THEN status
                      WHEN sqlc.arg(ok)::boolean THEN 'succeeded'
                      WHEN attempts + 1 >= attempts_allowed THEN 'failed' ELSE 'pending' END,
        next_attempt_at = CASE WHEN status <> 'pending' OR sqlc.arg(ok)::boolean OR attempts + 1 >= attempts_allowed THEN NULL
                               ELSE sqlc.arg(next_attempt_at)::timestamptz END,
        updated_at = now()
    WHERE webhook_deliveries.id = sqlc.arg(id) AND webhook_deliveries.round = sqlc.arg(round)
      AND webhook_deliveries.attempts = sqlc.arg(attempt)
    RETURNING webhook_deliveries.attempts, webhook_deliveries.status
), a AS (
    INSERT INTO webhook_attempts (tenant_id, delivery_id, n, started_at, duration_ms, status_code, error)
    SELECT sqlc.arg(tenant_id), w.id,
           coalesce((SELECT max(x.n) FROM webhook_attempts x WHERE x.delivery_id = w.id), 0) + 1,
           sqlc.arg(started_at), sqlc.arg(duration_ms), sqlc.narg(status_code), sqlc.narg(error)
    FROM webhook_deliveries w WHERE w.id = sqlc.arg(id)
), ep AS (
    UPDATE webhook_endpoints SET
        failing_since = CASE WHEN sqlc.arg(ok)::boolean THEN NULL ELSE coalesce(failing_since, sqlc.arg(started_at)) END,
        slow = sqlc.arg(slow)::boolean
    WHERE webhook_endpoints.id = sqlc.arg(endpoint_id)
    RETURNING webhook_endpoints.failing_since, webhook_endpoints.enabled
)
SELECT coalesce((SELECT d.status FROM d), 'stale')::text AS status, coalesce((SELECT d.attempts FROM d), 0)::integer AS attempts,
       ep.failing_since, ep.enabled
FROM ep;

-- name: DisableFailingWebhookEndpoint :one
-- Turns off an endpoint whose failure streak began before since, once; no row when it is not
-- (any more) failing that long or is already off.
UPDATE webhook_endpoints SET enabled = false, disabled_reason = sqlc.arg(reason)::text, updated_at = now()
WHERE id = sqlc.arg(id) AND enabled AND failing_since < sqlc.arg(since)::timestamptz
RETURNING *;

-- name: WebhookBacklog :many
SELECT tenant_id::uuid FROM webhook_backlog(sqlc.arg(max_rows)::integer);

-- name: CancelEndpointDeliveries :exec
-- A disabled endpoint's pending deliveries end; nothing more is sent to it.
UPDATE webhook_deliveries SET status = 'canceled', next_attempt_at = NULL, updated_at = now()
WHERE endpoint_id = sqlc.arg(endpoint_id) AND status = 'pending';

-- name: PruneWebhookDeliveries :one
SELECT prune_webhook_deliveries(sqlc.arg(before)::timestamptz, sqlc.arg(max_rows)::integer)::bigint AS pruned;
