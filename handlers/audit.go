package handlers

import (
	"context"
	"encoding/json"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/cursor"
	"github.com/tasker/tasker/internal/tenancy"
)

// ListAuditEvents lists the tenant's audit log, newest first (admins).
func (s *Server) ListAuditEvents(ctx context.Context, req api.ListAuditEventsRequestObject) (api.ListAuditEventsResponseObject, error) {
	prm := req.Params
	params := db.ListAuditEventsParams{Action: prm.Action, ResourceType: prm.ResourceType, ResourceID: prm.ResourceId, Lim: fetchLimit(prm.Limit)}
	if prm.Cursor != nil {
		var c timeCursor
		if err := cursor.Decode(*prm.Cursor, &c); err != nil {
			return nil, err
		}
		if c.K != "audit" {
			return nil, cursor.Invalid()
		}
		params.BeforeCreatedAt, params.BeforeID = &c.T, &c.ID
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(principal(ctx)), func(q *db.Queries) ([]db.AuditEvent, error) {
		return q.ListAuditEvents(ctx, params)
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(prm.Limit), func(e db.AuditEvent) string { return timeNext("audit")(e.CreatedAt, e.ID) })
	out := api.ListAuditEvents200JSONResponse{Items: make([]api.AuditEvent, len(rows)), NextCursor: nullableString(next)}
	for i, e := range rows {
		data := map[string]any{}
		_ = json.Unmarshal(e.Data, &data) // written by us as a JSON object
		out.Items[i] = api.AuditEvent{
			Id: e.ID, CreatedAt: e.CreatedAt, ActorUserId: e.ActorUserID, ActorKeyId: e.ActorKeyID,
			Action: e.Action, ResourceType: e.ResourceType, ResourceId: e.ResourceID, Ip: e.Ip, Data: data,
		}
	}
	return out, nil
}
