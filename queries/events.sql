-- name: ListEventsAfter :many
-- The tenant's events after an id, oldest first.
SELECT * FROM events WHERE id > sqlc.arg(after_id) ORDER BY id LIMIT sqlc.arg(lim);
