package handlers

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/webhooks"
)

// ListWebhookDeliveries lists an endpoint's deliveries, newest first, each with its attempts.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req api.ListWebhookDeliveriesRequestObject) (api.ListWebhookDeliveriesResponseObject, error) {
	p := principal(ctx)
	beforeT, beforeID, err := timeCursorAt("webhook-deliveries", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	type result struct {
		rows     []db.WebhookDelivery
		attempts []db.WebhookAttempt
	}
	res, err := tenancy.SearchV(ctx, s.db, scope(p), func(q *db.Queries) (result, error) {
		if _, err := q.GetWebhookEndpoint(ctx, req.Id); err != nil {
			return result{}, notFound(err, "webhook endpoint")
		}
		rows, err := q.ListWebhookDeliveries(ctx, db.ListWebhookDeliveriesParams{
			EndpointID: req.Id, Status: (*string)(req.Params.Status), BeforeCreatedAt: beforeT, BeforeID: beforeID,
			Lim: fetchLimit(req.Params.Limit),
		})
		if err != nil || len(rows) == 0 {
			return result{rows: rows}, err
		}
		ids := make([]uuid.UUID, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		attempts, err := q.ListWebhookAttempts(ctx, ids)
		return result{rows, attempts}, err
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(res.rows, limitOf(req.Params.Limit), func(d db.WebhookDelivery) string {
		return timeNext("webhook-deliveries")(d.CreatedAt, d.ID)
	})
	byDelivery := map[uuid.UUID][]db.WebhookAttempt{}
	for _, a := range res.attempts {
		byDelivery[a.DeliveryID] = append(byDelivery[a.DeliveryID], a)
	}
	out := api.ListWebhookDeliveries200JSONResponse{Items: make([]api.WebhookDelivery, len(rows)), NextCursor: nullableString(next)}
	for i, r := range rows {
		out.Items[i] = deliveryToAPI(r, byDelivery[r.ID])
	}
	return out, nil
}

// RedeliverWebhook starts a new round of attempts of a finished delivery.
func (s *Server) RedeliverWebhook(ctx context.Context, req api.RedeliverWebhookRequestObject) (api.RedeliverWebhookResponseObject, error) {
	row, err := s.queueDelivery(ctx, req.Id, func(tx *tenancy.Tx, _ auth.Principal) (db.WebhookDelivery, error) {
		row, err := tx.Q.RedeliverWebhook(ctx, db.RedeliverWebhookParams{Attempts: int32(s.webhooks.Retry.Attempts), ID: req.DeliveryId, EndpointID: req.Id})
		if !errors.Is(err, pgx.ErrNoRows) {
			return row, err
		}
		if _, err := tx.Q.GetWebhookDelivery(ctx, db.GetWebhookDeliveryParams{ID: req.DeliveryId, EndpointID: req.Id}); err != nil {
			return row, notFound(err, "webhook delivery")
		}
		return row, problem.New(problem.Conflict, "The delivery is still pending: its attempts go on.")
	})
	if err != nil {
		return nil, err
	}
	return api.RedeliverWebhook202JSONResponse(deliveryToAPI(row, nil)), nil
}

// TestWebhookEndpoint queues a webhook.test ping to an endpoint.
func (s *Server) TestWebhookEndpoint(ctx context.Context, req api.TestWebhookEndpointRequestObject) (api.TestWebhookEndpointResponseObject, error) {
	row, err := s.queueDelivery(ctx, req.Id, func(tx *tenancy.Tx, p auth.Principal) (db.WebhookDelivery, error) {
		return tx.Q.CreateWebhookPing(ctx, db.CreateWebhookPingParams{
			TenantID: p.Tenant, ID: newID(), EndpointID: req.Id, AttemptsAllowed: int32(s.webhooks.Retry.Attempts),
		})
	})
	if err != nil {
		return nil, err
	}
	return api.TestWebhookEndpoint202JSONResponse(deliveryToAPI(row, nil)), nil
}

// queueDelivery runs ready, which readies a delivery to the endpoint, once the endpoint is found
// enabled, and queues its job in the same transaction, with an audit entry.
func (s *Server) queueDelivery(ctx context.Context, endpoint uuid.UUID, ready func(*tenancy.Tx, auth.Principal) (db.WebhookDelivery, error)) (db.WebhookDelivery, error) {
	if s.webhooks.Box == nil {
		return db.WebhookDelivery{}, problem.New(problem.Unavailable, "Webhooks are not configured on this server (WEBHOOK_ENCRYPTION_KEY).")
	}
	// Each one may hold a delivery worker for WEBHOOK_TIMEOUT: a flood would delay every
	// tenant's deliveries.
	if ok, wait := s.manualSends.Allow(principal(ctx).Tenant.String()); !ok {
		return db.WebhookDelivery{}, problem.TooMany("test pings and redeliveries", wait)
	}
	return writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (db.WebhookDelivery, error) {
		ep, err := tx.Q.GetWebhookEndpoint(ctx, endpoint)
		if err != nil {
			return db.WebhookDelivery{}, notFound(err, "webhook endpoint")
		}
		if !ep.Enabled {
			return db.WebhookDelivery{}, problem.New(problem.Conflict, "The endpoint is disabled: enable it first.")
		}
		row, err := ready(tx, p)
		if err != nil {
			return row, err
		}
		tx.Record(tenancy.Entry{Action: "webhook_delivery.queue", ResourceType: resourceWebhookEndpoint, ResourceID: endpoint,
			Data: map[string]any{"delivery_id": row.ID, "event_type": row.EventType}})
		return row, webhooks.Enqueue(ctx, tx, time.Time{}, webhooks.DeliverArgs{Tenant: p.Tenant, Delivery: row.ID,
			Round: row.Round, Attempt: row.Attempts, Failing: ep.FailingSince != nil || ep.Slow})
	})
}

// deliveryToAPI is the named converter of a delivery and its attempts (in order).
func deliveryToAPI(d db.WebhookDelivery, attempts []db.WebhookAttempt) api.WebhookDelivery {
	out := api.WebhookDelivery{
		Id: d.ID, EndpointId: d.EndpointID, EventType: d.EventType, EventId: d.EventID,
		Status: api.WebhookDeliveryStatus(d.Status), NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt,
		UpdatedAt: d.UpdatedAt, Attempts: make([]api.WebhookAttempt, len(attempts)),
	}
	for i, a := range attempts {
		out.Attempts[i] = api.WebhookAttempt{Attempt: int(a.N), StartedAt: a.StartedAt, DurationMs: int(a.DurationMs), Error: a.Error}
		if a.StatusCode != nil {
			c := int(*a.StatusCode)
			out.Attempts[i].StatusCode = &c
		}
	}
	return out
}
