-- name: ReserveIdempotencyKey :execrows
-- Claims a key for this request. A record older than 24 hours is taken over, and so is a claim
-- that never completed within ten minutes (its request died with its server). No row affected
-- means a live record exists: the caller then reads it.
INSERT INTO idempotency_keys (tenant_id, user_id, key, operation, request_hash, claim)
VALUES (sqlc.arg(tenant_id), sqlc.arg(user_id), sqlc.arg(key), sqlc.arg(operation), sqlc.arg(request_hash), sqlc.arg(claim))
ON CONFLICT (tenant_id, user_id, key) DO UPDATE
SET operation = EXCLUDED.operation, request_hash = EXCLUDED.request_hash, claim = EXCLUDED.claim,
    status = NULL, response = NULL, headers = '{}', created_at = now()
WHERE idempotency_keys.created_at <= now() - interval '24 hours'
   OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at <= now() - interval '10 minutes');

-- name: PurgeExpiredIdempotencyKeys :exec
-- Keeps the table to a day of records per tenant; runs with each reservation.
DELETE FROM idempotency_keys WHERE created_at <= now() - interval '24 hours';

-- name: GetIdempotencyRecord :one
SELECT operation, request_hash, status, response, headers FROM idempotency_keys
WHERE user_id = sqlc.arg(user_id) AND key = sqlc.arg(key);

-- name: CompleteIdempotencyKey :execrows
UPDATE idempotency_keys SET status = sqlc.arg(status), response = sqlc.arg(response), headers = sqlc.arg(headers)
WHERE user_id = sqlc.arg(user_id) AND key = sqlc.arg(key) AND claim = sqlc.arg(claim);

-- name: ReleaseIdempotencyKey :execrows
DELETE FROM idempotency_keys
WHERE user_id = sqlc.arg(user_id) AND key = sqlc.arg(key) AND claim = sqlc.arg(claim) AND status IS NULL;
