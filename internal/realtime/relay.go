package realtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/tenancy"
)

// relay brings committed events to this instance. A committing write NOTIFYs "tenant:first:
// last:auth" (see InsertChanges); the relay listens on a dedicated connection, and its one
// dispatch goroutine reads the tenant's events by id through the application role, scoped to
// the tenant the wake-up names, so row-level security holds, and hands them to the hub in id
// order. Tenants with no socket here are read only for what every instance must apply
// (revocations). After the LISTEN connection drops, it reads every tracked tenant from its
// cursor and the revocations of the gap (auth_events_since), so a lost wake-up loses nothing.
type relay struct {
	svc   *Service
	ready chan struct{}

	mu      sync.Mutex
	pending map[uuid.UUID]wake
	signal  chan struct{}
}

// wake is what the notifications of one tenant since the last dispatch add up to.
type wake struct {
	first, last int64
	auth        bool
}

func newRelay(s *Service) *relay {
	return &relay{svc: s, ready: make(chan struct{}), pending: map[uuid.UUID]wake{}, signal: make(chan struct{}, 1)}
}

// Run listens and dispatches until ctx ends, reconnecting with backoff when the connection
// drops.
func (s *Service) Run(ctx context.Context) error {
	r := s.relay
	go r.dispatchLoop(ctx)
	go s.pruneLoop(ctx)
	since := time.Now().Add(-s.cfg.TokenTTL - defaultAuthCatchUp)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		started := time.Now()
		err := r.listen(ctx, since)
		if ctx.Err() != nil {
			return nil
		}
		// Everything after the last moment the connection surely worked is caught up on the
		// next connect (with a margin for transactions that began before and committed after).
		// Nothing older than a token's lifetime can matter: such tokens have expired.
		since = started.Add(-defaultAuthCatchUp)
		if oldest := time.Now().Add(-s.cfg.TokenTTL - defaultAuthCatchUp); since.Before(oldest) {
			since = oldest
		}
		s.cfg.Logger.Warn("realtime: listen connection lost; reconnecting", "error", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

// listen runs one LISTEN session: it subscribes, then catches up (revocations since since, and
// the tracked tenants from their cursors), then relays wake-ups until the connection fails.
func (r *relay) listen(ctx context.Context, since time.Time) error {
	conn, err := pgx.ConnectConfig(ctx, r.svc.cfg.Listen)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := r.catchUpAuth(ctx, since); err != nil {
		return err
	}
	for tenant := range r.svc.hub.tracked() {
		// Everything after the cursor: first 0 reads from it (see dispatch).
		r.queue(tenant, wake{first: 0, last: math.MaxInt64})
	}
	r.poke()
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		tenant, w, ok := parseWake(n.Payload)
		if !ok {
			r.svc.cfg.Logger.Warn("realtime: malformed wake-up", "payload", n.Payload)
			continue
		}
		r.queue(tenant, w)
		r.poke()
	}
}

// queue adds a wake-up of tenant to what the next dispatch reads, merged with any pending one.
func (r *relay) queue(tenant uuid.UUID, w wake) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, seen := r.pending[tenant]; seen {
		w.first = min(w.first, prev.first)
		w.last = max(w.last, prev.last)
		w.auth = w.auth || prev.auth
	}
	r.pending[tenant] = w
}

func (r *relay) poke() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func parseWake(payload string) (uuid.UUID, wake, bool) {
	parts := strings.Split(payload, ":")
	if len(parts) != 4 {
		return uuid.Nil, wake{}, false
	}
	tenant, err1 := uuid.Parse(parts[0])
	first, err2 := strconv.ParseInt(parts[1], 10, 64)
	last, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || first < 1 || last < first {
		return uuid.Nil, wake{}, false
	}
	return tenant, wake{first: first, last: last, auth: parts[3] == "1"}, true
}

// dispatchLoop is the one goroutine that reads and fans out events, so each tenant's events
// reach the hub in id order.
func (r *relay) dispatchLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.signal:
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = make(map[uuid.UUID]wake, len(batch))
		r.mu.Unlock()
		for tenant, w := range batch {
			if err := r.dispatch(ctx, tenant, w); err != nil && ctx.Err() == nil {
				r.svc.cfg.Logger.Error("realtime: dispatch", "tenant", tenant, "error", err)
				// Try again with the next wake-up of this tenant, or now if none comes.
				r.queue(tenant, w)
				time.AfterFunc(100*time.Millisecond, r.poke)
			}
		}
	}
}

// dispatch reads the tenant's events the wake-up announced (from the cursor, for a tracked
// tenant, so a gap left by a lost wake-up is filled) and hands them on.
//
// A wake-up with events every instance must apply (auth) is read from its first id even when
// the tenant's cursor is past it: a tenant's first socket here starts the cursor at the
// stream's newest id, which can be past a revocation that committed while the socket opened
// and that this relay had not applied yet, nor shown the socket (whose credential was checked
// before). Skipping it left the revoked session's token accepted here, and its socket open,
// until the token expired (TestRealtimeRevocationRacingASocketOpeningStillCloses).
func (r *relay) dispatch(ctx context.Context, tenant uuid.UUID, w wake) error {
	cursor, tracked := r.svc.hub.cursor(tenant)
	after := w.first - 1
	switch {
	case tracked && w.auth:
		// From the announced range even when the cursor is past it: a tenant's first socket
		// here starts the cursor at the stream's newest id, which can be past a revocation this
		// relay has not applied yet. The hub skips what its sockets already have.
		after = min(cursor, after)
	case tracked:
		if cursor >= w.last {
			return nil
		}
		after = cursor
	case !w.auth:
		return nil
	}
	for {
		rows, err := tenancy.ReadV(ctx, r.svc.cfg.DB, tenancy.Scope{Tenant: tenant}, func(q *db.Queries) ([]db.ListEventsAfterRow, error) {
			return q.ListEventsAfter(ctx, db.ListEventsAfterParams{After: after, Upto: w.last, Lim: relayPage})
		})
		if err != nil {
			return err
		}
		events := make([]*Event, len(rows))
		for i, row := range rows {
			events[i] = eventFromRow(tenant, row)
			after = row.ID
		}
		// Revocations first: they must not wait for the fan-out of the events before them.
		for _, e := range events {
			if tenancy.ReachesEveryServer(e.Type) {
				r.svc.applyRevocation(e.Type, e.ID, e.ResourceID, e.fields(), e.At)
			}
		}
		// Whether the tenant has sockets here is decided under the hub's lock, not by tracked:
		// a socket registered since must still see what e changes about it.
		r.svc.hub.deliver(tenant, events)
		if len(rows) < relayPage {
			return nil
		}
	}
}

const relayPage = 1000

// catchUpAuth applies the revocations and user changes of every tenant since since, a page at a
// time until there are no more.
func (r *relay) catchUpAuth(ctx context.Context, since time.Time) error {
	params := db.AuthEventsSinceParams{After: since, MaxRows: authPage}
	for {
		var rows []db.AuthEventsSinceRow
		err := r.svc.cfg.DB.System(ctx, func(q *db.Queries) error {
			var err error
			rows, err = q.AuthEventsSince(ctx, params)
			return err
		})
		if err != nil {
			return fmt.Errorf("auth catch-up: %w", err)
		}
		for _, row := range rows {
			r.svc.applyRevocation(row.Type, row.ID, row.ResourceID, payloadFields{Role: row.Role, Status: row.Status}, row.CreatedAt)
			params.AfterTenant, params.AfterID = row.TenantID, row.ID
		}
		if len(rows) < authPage {
			return nil
		}
	}
}

const authPage = 5000

// applyRevocation records in the verified-token cache's deny list what an event ends.
func (s *Service) applyRevocation(eventType string, id int64, resource uuid.UUID, f payloadFields, at time.Time) {
	if s.cfg.Revocations == nil {
		return
	}
	switch eventType {
	case eventSessionRevoked:
		s.cfg.Revocations.SessionRevoked(resource, at)
	case eventUserUpdated:
		s.cfg.Revocations.UserChanged(resource, id, auth.Role(f.Role), f.Status == statusActive, at)
	}
}
