package handlers

import (
	"context"
	"time"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/secretbox"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/webhooks"
)

// WebhooksConfig is what outbound webhooks need.
type WebhooksConfig struct {
	// Box seals the endpoints' signing secrets; nil answers the endpoints' operations 503.
	Box *secretbox.Box
	// Guard says which URLs endpoints may have and how deliveries connect.
	Guard webhooks.Guard
	// Overlap is how long a rotated secret keeps signing (24 h when zero).
	Overlap time.Duration
	// MaxEndpoints is how many endpoints a tenant may have (20 when zero).
	MaxEndpoints int
	// Retry is the delivery schedule; its Attempts is what a redelivery or ping gets.
	Retry webhooks.Retry
	// ManualPerMinute is how many test pings and redeliveries a tenant may queue a minute on
	// one server (60 when zero): each holds a worker for up to WEBHOOK_TIMEOUT.
	ManualPerMinute int
}

func (c WebhooksConfig) withDefaults() WebhooksConfig {
	if c.Overlap <= 0 {
		c.Overlap = 24 * time.Hour
	}
	if c.MaxEndpoints <= 0 {
		c.MaxEndpoints = 20
	}
	if c.Retry.Attempts <= 0 {
		c.Retry.Attempts = webhooks.DefaultAttempts
	}
	if c.ManualPerMinute <= 0 {
		c.ManualPerMinute = 60
	}
	return c
}

const resourceWebhookEndpoint = "webhook_endpoint"

// ListWebhookEndpoints lists the tenant's endpoints, newest first.
func (s *Server) ListWebhookEndpoints(ctx context.Context, req api.ListWebhookEndpointsRequestObject) (api.ListWebhookEndpointsResponseObject, error) {
	p := principal(ctx)
	beforeT, beforeID, err := timeCursorAt("webhooks", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(p), func(q *db.Queries) ([]db.WebhookEndpoint, error) {
		return q.ListWebhookEndpoints(ctx, db.ListWebhookEndpointsParams{BeforeCreatedAt: beforeT, BeforeID: beforeID, Lim: fetchLimit(req.Params.Limit)})
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(e db.WebhookEndpoint) string { return timeNext("webhooks")(e.CreatedAt, e.ID) })
	out := api.ListWebhookEndpoints200JSONResponse{Items: make([]api.WebhookEndpoint, len(rows)), NextCursor: nullableString(next)}
	for i, r := range rows {
		out.Items[i] = webhookToAPI(r)
	}
	return out, nil
}

// CreateWebhookEndpoint registers an endpoint; its signing secret is in this response only.
func (s *Server) CreateWebhookEndpoint(ctx context.Context, req api.CreateWebhookEndpointRequestObject) (api.CreateWebhookEndpointResponseObject, error) {
	if s.webhooks.Box == nil {
		return nil, problem.New(problem.Unavailable, "Webhooks are not configured on this server (WEBHOOK_ENCRYPTION_KEY).")
	}
	b := req.Body
	types, err := s.checkWebhook(&b.Url, &b.EventTypes)
	if err != nil {
		return nil, err
	}
	secret := webhooks.NewSecret()
	id := newID()
	row, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (db.WebhookEndpoint, error) {
		if err := tx.Q.LockWebhookEndpoints(ctx, p.Tenant); err != nil {
			return db.WebhookEndpoint{}, err
		}
		n, err := tx.Q.CountWebhookEndpoints(ctx)
		if err != nil {
			return db.WebhookEndpoint{}, err
		}
		if n >= int64(s.webhooks.MaxEndpoints) {
			return db.WebhookEndpoint{}, problem.New(problem.Conflict, "The tenant has %d webhook endpoints, the most it may have; remove one first.", n)
		}
		row, err := tx.Q.CreateWebhookEndpoint(ctx, db.CreateWebhookEndpointParams{
			TenantID: p.Tenant, ID: id, Url: b.Url, Description: deref(b.Description), EventTypes: types,
			Enabled: b.Enabled == nil || *b.Enabled, SecretSealed: s.webhooks.Box.Seal([]byte(secret), webhooks.SecretOwner(p.Tenant, id)),
			CreatedBy: p.User,
		})
		if err != nil {
			return db.WebhookEndpoint{}, err
		}
		tx.Record(tenancy.Entry{Action: "webhook_endpoint.create", ResourceType: resourceWebhookEndpoint, ResourceID: id,
			Data: map[string]any{"url": row.Url, "event_types": row.EventTypes, "enabled": row.Enabled}})
		return row, nil
	})
	if err != nil {
		return nil, err
	}
	e := webhookToAPI(row)
	return api.CreateWebhookEndpoint201JSONResponse{
		Id: e.Id, Url: e.Url, Description: e.Description, EventTypes: e.EventTypes, Enabled: e.Enabled,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Secret: secret,
	}, nil
}

// GetWebhookEndpoint shows one endpoint, never its secret.
func (s *Server) GetWebhookEndpoint(ctx context.Context, req api.GetWebhookEndpointRequestObject) (api.GetWebhookEndpointResponseObject, error) {
	row, err := tenancy.ReadV(ctx, s.db, scope(principal(ctx)), func(q *db.Queries) (db.WebhookEndpoint, error) {
		row, err := q.GetWebhookEndpoint(ctx, req.Id)
		return row, notFound(err, "webhook endpoint")
	})
	if err != nil {
		return nil, err
	}
	return api.GetWebhookEndpoint200JSONResponse(webhookToAPI(row)), nil
}

// UpdateWebhookEndpoint changes what is given of an endpoint.
func (s *Server) UpdateWebhookEndpoint(ctx context.Context, req api.UpdateWebhookEndpointRequestObject) (api.UpdateWebhookEndpointResponseObject, error) {
	b := req.Body
	types, err := s.checkWebhook(b.Url, b.EventTypes)
	if err != nil {
		return nil, err
	}
	row, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, _ auth.Principal) (db.WebhookEndpoint, error) {
		row, err := tx.Q.UpdateWebhookEndpoint(ctx, db.UpdateWebhookEndpointParams{
			ID: req.Id, Url: b.Url, Description: b.Description, EventTypes: types, Enabled: b.Enabled,
		})
		if err != nil {
			return db.WebhookEndpoint{}, notFound(err, "webhook endpoint")
		}
		if !row.Enabled {
			// A disabled endpoint gets nothing: not the retries pending either, even once it is
			// enabled again (perhaps at another URL).
			if err := tx.Q.CancelEndpointDeliveries(ctx, row.ID); err != nil {
				return db.WebhookEndpoint{}, err
			}
		}
		changes := map[string]any{}
		if b.Url != nil {
			changes["url"] = row.Url
		}
		if b.EventTypes != nil {
			changes["event_types"] = row.EventTypes
		}
		if b.Enabled != nil {
			changes["enabled"] = row.Enabled
		}
		if b.Description != nil {
			changes["description"] = row.Description
		}
		tx.Record(tenancy.Entry{Action: "webhook_endpoint.update", ResourceType: resourceWebhookEndpoint, ResourceID: row.ID, Data: changes})
		return row, nil
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateWebhookEndpoint200JSONResponse(webhookToAPI(row)), nil
}

// DeleteWebhookEndpoint removes an endpoint.
func (s *Server) DeleteWebhookEndpoint(ctx context.Context, req api.DeleteWebhookEndpointRequestObject) (api.DeleteWebhookEndpointResponseObject, error) {
	err := s.write(ctx, principal(ctx), func(tx *tenancy.Tx, _ auth.Principal) error {
		n, err := tx.Q.DeleteWebhookEndpoint(ctx, req.Id)
		if err != nil {
			return err
		}
		if n == 0 {
			return problem.New(problem.NotFound, "No such webhook endpoint.")
		}
		tx.Record(tenancy.Entry{Action: "webhook_endpoint.delete", ResourceType: resourceWebhookEndpoint, ResourceID: req.Id})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteWebhookEndpoint204Response{}, nil
}

// RotateWebhookSecret gives an endpoint a new secret; the current one signs too for a while.
func (s *Server) RotateWebhookSecret(ctx context.Context, req api.RotateWebhookSecretRequestObject) (api.RotateWebhookSecretResponseObject, error) {
	if s.webhooks.Box == nil {
		return nil, problem.New(problem.Unavailable, "Webhooks are not configured on this server (WEBHOOK_ENCRYPTION_KEY).")
	}
	overlap := s.webhooks.Overlap
	if req.Body != nil && req.Body.OverlapSeconds != nil {
		overlap = time.Duration(*req.Body.OverlapSeconds) * time.Second
	}
	secret := webhooks.NewSecret()
	until := time.Now().Add(overlap)
	err := s.write(ctx, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) error {
		if _, err := tx.Q.RotateWebhookSecret(ctx, db.RotateWebhookSecretParams{
			ID: req.Id, SecretSealed: s.webhooks.Box.Seal([]byte(secret), webhooks.SecretOwner(p.Tenant, req.Id)), PreviousUntil: &until,
		}); err != nil {
			return notFound(err, "webhook endpoint")
		}
		tx.Record(tenancy.Entry{Action: "webhook_endpoint.rotate_secret", ResourceType: resourceWebhookEndpoint, ResourceID: req.Id,
			Data: map[string]any{"previous_valid_until": until}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.RotateWebhookSecret200JSONResponse{Secret: secret, PreviousValidUntil: until}, nil
}

// checkWebhook checks a URL and event types when given, and returns the types de-duplicated.
func (s *Server) checkWebhook(url *string, types *[]api.WebhookEventType) ([]string, error) {
	if url != nil {
		if err := s.webhooks.Guard.CheckURL(*url); err != nil {
			return nil, problem.Fields("The URL cannot receive webhooks.", problem.FieldError{Field: "url", In: "body", Message: err.Error()})
		}
	}
	if types == nil {
		return nil, nil
	}
	in := make([]string, len(*types))
	for i, t := range *types {
		in[i] = string(t)
	}
	out, err := webhooks.CheckEventTypes(in)
	if err != nil {
		return nil, problem.Fields("An event type is unknown.", problem.FieldError{Field: "event_types", In: "body", Message: err.Error()})
	}
	return out, nil
}

// webhookToAPI is the named converter of an endpoint: the secrets never leave.
func webhookToAPI(e db.WebhookEndpoint) api.WebhookEndpoint {
	out := api.WebhookEndpoint{
		Id: e.ID, Url: e.Url, Description: e.Description, Enabled: e.Enabled, DisabledReason: e.DisabledReason,
		CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, EventTypes: make([]api.WebhookEventType, len(e.EventTypes)),
		FailingSince: e.FailingSince,
	}
	for i, t := range e.EventTypes {
		out.EventTypes[i] = api.WebhookEventType(t)
	}
	if e.PreviousSecretExpiresAt != nil && e.PreviousSecretExpiresAt.After(time.Now()) {
		out.PreviousSecretValidUntil = e.PreviousSecretExpiresAt
	}
	return out
}
