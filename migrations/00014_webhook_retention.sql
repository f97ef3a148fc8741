-- Finished webhook deliveries (and their attempts) are kept for WEBHOOK_DELIVERY_RETENTION, then
-- pruned by the dispatcher through the narrow function below, as events are by prune_events.

-- +goose Up
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE status <> 'pending';

CREATE POLICY webhook_prune_read ON webhook_deliveries FOR SELECT TO tasker_owner USING (true);
CREATE POLICY webhook_prune ON webhook_deliveries FOR DELETE TO tasker_owner USING (true);

-- Deletes at most max_rows finished deliveries last changed before before, across tenants, and
-- says how many; never a pending one, nor one younger than a day, whatever before says (the
-- application role calls it). Their attempts go with them (ON DELETE CASCADE).
-- +goose StatementBegin
CREATE FUNCTION prune_webhook_deliveries(before timestamptz, max_rows integer)
RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    WITH gone AS (
        DELETE FROM public.webhook_deliveries WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM public.webhook_deliveries
            WHERE status <> 'pending' AND updated_at < least(before, now() - interval '1 day')
            ORDER BY updated_at LIMIT least(max_rows, 100000)))
        RETURNING 1)
    SELECT count(*) FROM gone
$$;
-- +goose StatementEnd
REVOKE ALL ON FUNCTION prune_webhook_deliveries(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_webhook_deliveries(timestamptz, integer) TO tasker_app;

-- +goose Down
DROP FUNCTION prune_webhook_deliveries(timestamptz, integer);
DROP POLICY webhook_prune ON webhook_deliveries;
DROP POLICY webhook_prune_read ON webhook_deliveries;
DROP INDEX webhook_deliveries_finished;
