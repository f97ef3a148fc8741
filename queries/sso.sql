-- name: GetSSOConfig :one
SELECT * FROM sso_configs;

-- name: PutSSOConfig :one
INSERT INTO sso_configs AS c (tenant_id, issuer, client_id, client_secret_sealed, allowed_domains, default_role, password_login)
VALUES (sqlc.arg(tenant_id), sqlc.arg(issuer), sqlc.arg(client_id), sqlc.arg(client_secret_sealed), sqlc.arg(allowed_domains)::text[],
        sqlc.arg(default_role), sqlc.arg(password_login))
ON CONFLICT (tenant_id) DO UPDATE SET
    issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id, client_secret_sealed = EXCLUDED.client_secret_sealed,
    allowed_domains = EXCLUDED.allowed_domains, default_role = EXCLUDED.default_role,
    password_login = EXCLUDED.password_login, updated_at = now()
RETURNING *;

-- name: DeleteSSOConfig :execrows
DELETE FROM sso_configs;
