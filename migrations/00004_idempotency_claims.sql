-- Idempotency records learn who holds them and which headers to replay.

-- +goose Up
-- claim identifies the request holding a key, so a request whose key was taken over (it ran
-- longer than the takeover window) can neither complete nor release the new holder's record.
ALTER TABLE idempotency_keys ADD COLUMN claim uuid;
-- Response headers worth replaying (ETag, Location), as a JSON object.
ALTER TABLE idempotency_keys ADD COLUMN headers jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN headers;
ALTER TABLE idempotency_keys DROP COLUMN claim;
