package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/reqinfo"
)

// Tx is a write transaction for one tenant: its queries, plus the side effects of a change, the
// audit entry (Record), the event for subscribers (Emit) and background jobs (Enqueue). Whatever
// was queued is written just before COMMIT, so a change, its audit entry, its event and its jobs
// commit or roll back together, and nothing else may write them (see write_test.go).
type Tx struct {
	// Q runs the transaction's queries.
	Q       *db.Queries
	ctx     context.Context
	scope   Scope
	actor   uuid.UUID
	entries []Entry
	events  []Event
	// channel is the NOTIFY channel woken on commit; empty when realtime is off.
	channel string
	jobs    []river.InsertManyParams
	queue   Jobs
	raw     *pipelinedTx
}

// Entry is one audit log entry: what was done to which resource. The actor is the transaction's
// (its scope's user and API key, or ActAs), the IP the request's.
type Entry struct {
	Action       string
	ResourceType string
	// ResourceID may be uuid.Nil when there is no such resource (a sign-in to an unknown email).
	ResourceID uuid.UUID
	Data       map[string]any
}

// Event tells subscribers about a change. Payload is the resource exactly as REST returns it,
// built inside the transaction, so an event never shows a state other than the committed one.
type Event struct {
	Type         string
	ResourceType string
	ResourceID   uuid.UUID
	// ProjectID routes the event to the project's subscribers; uuid.Nil when none.
	ProjectID uuid.UUID
	Payload   any
}

// ReachesEveryServer reports whether events of this type must be applied by every server
// instance, whatever tenants its sockets serve: they end sessions or change what a user may do,
// and each instance keeps verified tokens in memory.
func ReachesEveryServer(eventType string) bool {
	switch eventType {
	case "session.revoked", "api_key.revoked", "user.updated":
		return true
	}
	return false
}

// Record queues the audit entry of a change.
func (t *Tx) Record(e Entry) { t.entries = append(t.entries, e) }

// Emit queues the event of a change.
func (t *Tx) Emit(e Event) { t.events = append(t.events, e) }

// Changed records the audit entry of a change to a resource and emits its event (of type event,
// such as "task.created"), whose payload is the resource as REST returns it (for a deletion, as
// it was): the one call a write makes for both. project routes the event to the project's
// subscribers (uuid.Nil for none).
func (t *Tx) Changed(event string, e Entry, project uuid.UUID, payload any) {
	t.Record(e)
	t.Emit(Event{Type: event, ResourceType: e.ResourceType, ResourceID: e.ResourceID, ProjectID: project, Payload: payload})
}

// ActAs names user as the actor of the entries recorded from now on, for flows that learn who
// acts only inside the transaction (accepting an invitation, a refresh token's owner).
func (t *Tx) ActAs(user uuid.UUID) { t.actor = user }

// flush writes the queued entries, events and jobs.
func (t *Tx) flush() error {
	if err := t.flushChanges(); err != nil {
		return err
	}
	return t.flushJobs()
}

func (t *Tx) flushChanges() error {
	if len(t.entries) == 0 && len(t.events) == 0 {
		return nil
	}
	ip, _ := reqinfo.Client(t.ctx)
	p := db.InsertChangesParams{TenantID: t.scope.Tenant, ActorUserID: t.actor, Channel: t.channel}
	for _, e := range t.entries {
		data := []byte("{}")
		if len(e.Data) > 0 {
			var err error
			if data, err = json.Marshal(e.Data); err != nil {
				return fmt.Errorf("audit %s: %w", e.Action, err)
			}
		}
		p.AuditIds = append(p.AuditIds, uuid.Must(uuid.NewV7()))
		p.AuditActorUsers = append(p.AuditActorUsers, t.actor)
		p.AuditActorKeys = append(p.AuditActorKeys, t.scope.Key)
		p.AuditActions = append(p.AuditActions, e.Action)
		p.AuditResourceTypes = append(p.AuditResourceTypes, e.ResourceType)
		p.AuditResourceIds = append(p.AuditResourceIds, e.ResourceID)
		p.AuditIps = append(p.AuditIps, ip)
		p.AuditData = append(p.AuditData, data)
	}
	for _, e := range t.events {
		payload, err := json.Marshal(e.Payload)
		if err != nil {
			return fmt.Errorf("event %s: %w", e.Type, err)
		}
		p.Auth = p.Auth || ReachesEveryServer(e.Type)
		p.EventTypes = append(p.EventTypes, e.Type)
		p.EventResourceTypes = append(p.EventResourceTypes, e.ResourceType)
		p.EventResourceIds = append(p.EventResourceIds, e.ResourceID)
		p.EventProjectIds = append(p.EventProjectIds, e.ProjectID)
		p.EventPayloads = append(p.EventPayloads, payload)
	}
	if err := t.Q.InsertChanges(t.ctx, p); err != nil {
		return fmt.Errorf("record changes: %w", err)
	}
	return nil
}

// Write runs fn in one transaction scoped to s and commits what it did together with what it
// queued (Record, Emit); it rolls everything back when fn fails. Database errors come back
// translated into the problem taxonomy, so callers never look at SQLSTATE codes.
func (d *DB) Write(ctx context.Context, s Scope, fn func(tx *Tx) error) error {
	_, err := WriteV(ctx, d, s, func(tx *Tx) (struct{}, error) { return struct{}{}, fn(tx) })
	return err
}

// WriteV is Write for a function that returns a value, such as the API representation of what
// it wrote.
//
// A transaction that PostgreSQL aborts as a deadlock victim or for a serialization failure is
// run again from the start (fn must only touch the database), up to writeAttempts times.
func WriteV[T any](ctx context.Context, d *DB, s Scope, fn func(tx *Tx) (T, error)) (T, error) {
	var (
		out T
		err error
	)
	for range writeAttempts {
		err = d.pipelined(ctx, s, func(raw *pipelinedTx, q *db.Queries) error {
			tx := &Tx{Q: q, ctx: ctx, scope: s, actor: s.User, channel: d.channel, queue: d.jobs, raw: raw}
			var err error
			if out, err = fn(tx); err != nil {
				return err
			}
			return tx.flush()
		})
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

const writeAttempts = 3

// retryable reports whether err aborted a transaction that may succeed when run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// ReadV is Read for a function that returns a value.
func ReadV[T any](ctx context.Context, d *DB, s Scope, fn func(q *db.Queries) (T, error)) (T, error) {
	return readV(d.Read, ctx, s, fn)
}

// SearchV is Search for a function that returns a value.
func SearchV[T any](ctx context.Context, d *DB, s Scope, fn func(q *db.Queries) (T, error)) (T, error) {
	return readV(d.Search, ctx, s, fn)
}

func readV[T any](read func(context.Context, Scope, func(*db.Queries) error) error, ctx context.Context, s Scope, fn func(q *db.Queries) (T, error)) (T, error) {
	var out T
	err := read(ctx, s, func(q *db.Queries) error {
		var err error
		out, err = fn(q)
		return err
	})
	return out, err
}
