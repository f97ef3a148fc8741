-- name: SetScope :exec
-- Transaction-local, so the setting can never leak to the next user of a pooled connection.
SELECT set_config('app.tenant_id', sqlc.arg(tenant_id)::text, true),
       set_config('app.user_id', sqlc.arg(user_id)::text, true);
