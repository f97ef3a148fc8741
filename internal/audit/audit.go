// Package audit appends to a tenant's audit log. Callers record inside the transaction of the
// change itself, so the log and the data can never disagree.
package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
)

// Actions recorded so far; resource types are the API's nouns.
const (
	TenantSignup    = "tenant.signup"
	LoginSucceeded  = "auth.login"
	LoginFailed     = "auth.login_failed"
	RefreshReuse    = "auth.refresh_reuse_detected"
	Logout          = "auth.logout"
	SessionRevoked  = "session.revoke"
	APIKeyCreated   = "api_key.create"
	APIKeyRevoked   = "api_key.revoke"
	ResourceTenant  = "tenant"
	ResourceUser    = "user"
	ResourceSession = "session"
	ResourceAPIKey  = "api_key"
)

// Event is one audit record. Tenant is required; the rest is optional where it is unknown.
type Event struct {
	Tenant       uuid.UUID
	ActorUser    uuid.UUID
	ActorKey     uuid.UUID
	Action       string
	ResourceType string
	ResourceID   uuid.UUID
	IP           string
	Data         map[string]any
}

// Record appends e through q, which must be inside the tenant's transaction.
func Record(ctx context.Context, q *db.Queries, e Event) error {
	data := []byte("{}")
	if len(e.Data) > 0 {
		var err error
		if data, err = json.Marshal(e.Data); err != nil {
			return fmt.Errorf("audit data: %w", err)
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	err = q.InsertAuditEvent(ctx, db.InsertAuditEventParams{
		TenantID: e.Tenant, ID: id,
		ActorUserID: ptr(e.ActorUser), ActorKeyID: ptr(e.ActorKey),
		Action: e.Action, ResourceType: e.ResourceType, ResourceID: ptr(e.ResourceID),
		Ip: e.IP, Data: data,
	})
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

func ptr(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}
