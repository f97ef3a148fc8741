-- name: ReserveIdempotencyKey :execrows
-- Claims a key for this request. A record older than 24 hours is taken over, and so is a claim
-- that never completed within a minute (its request died with its server). No row affected
-- means a live record exists: the caller then reads it.
INSERT INTO idempotency_keys (tenant_id, user_id, key, operation, request_hash)
VALUES (sqlc.arg(tenant_id), sqlc.arg(user_id), sqlc.arg(key), sqlc.arg(operation), sqlc.arg(request_hash))
ON CONFLICT (tenant_id, user_id, key) DO UPDATE
SET operation = EXCLUDED.operation, request_hash = EXCLUDED.request_hash, status = NULL, response = NULL,
    created_at = now()
WHERE idempotency_keys.created_at <= now() - interval '24 hours'
   OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at <= now() - interval '1 minute');

-- name: GetIdempotencyRecord :one
SELECT operation, request_hash, status, response FROM idempotency_keys
WHERE user_id = sqlc.arg(user_id) AND key = sqlc.arg(key);

-- name: CompleteIdempotencyKey :exec
UPDATE idempotency_keys SET status = sqlc.arg(status), response = sqlc.arg(response)
WHERE user_id = sqlc.arg(user_id) AND key = sqlc.arg(key);

-- name: ReleaseIdempotencyKey :exec
DELETE FROM idempotency_keys WHERE user_id = sqlc.arg(user_id) AND key = sqlc.arg(key) AND status IS NULL;
