package realtime

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/internal/tenancy"
)

// ErrTooManyConnections is returned by register when the user holds the most sockets allowed.
var ErrTooManyConnections = errors.New("realtime: too many connections for this user")

// errShuttingDown is returned by register once Shutdown has begun.
var errShuttingDown = errors.New("realtime: shutting down")

// Hub holds this instance's sockets by tenant, with each tenant's relay cursor: the newest event
// id fanned out to its sockets. A tenant is tracked while it has sockets here; the relay reads
// the events of tracked tenants, and of the others only what every instance must apply.
type Hub struct {
	mu       sync.Mutex
	tenants  map[uuid.UUID]*tenantConns
	perUser  map[uuid.UUID]int
	maxUser  int
	shutdown bool
	all      sync.WaitGroup
}

type tenantConns struct {
	conns  map[*Conn]struct{}
	cursor int64
}

func newHub(maxPerUser int) *Hub {
	return &Hub{tenants: map[uuid.UUID]*tenantConns{}, perUser: map[uuid.UUID]int{}, maxUser: maxPerUser}
}

// register adds c; cursor is the tenant stream's newest id, read before this call, which starts
// the tenant's relay cursor if c is its first socket here.
func (h *Hub) register(c *Conn, cursor int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return errShuttingDown
	}
	user := c.principal().User
	if h.perUser[user] >= h.maxUser {
		return ErrTooManyConnections
	}
	h.perUser[user]++
	tc := h.tenants[c.tenant]
	if tc == nil {
		tc = &tenantConns{conns: map[*Conn]struct{}{}, cursor: cursor}
		h.tenants[c.tenant] = tc
	}
	tc.conns[c] = struct{}{}
	h.all.Add(1)
	return nil
}

func (h *Hub) unregister(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tc := h.tenants[c.tenant]
	if tc == nil {
		return
	}
	if _, ok := tc.conns[c]; !ok {
		return
	}
	delete(tc.conns, c)
	if len(tc.conns) == 0 {
		delete(h.tenants, c.tenant)
	}
	user := c.registeredUser
	if h.perUser[user]--; h.perUser[user] <= 0 {
		delete(h.perUser, user)
	}
	h.all.Done()
}

// cursor returns the tenant's relay cursor; tracked is false when no socket here serves it.
func (h *Hub) cursor(tenant uuid.UUID) (cursor int64, tracked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	tc := h.tenants[tenant]
	if tc == nil {
		return 0, false
	}
	return tc.cursor, true
}

// tracked lists the tracked tenants and their cursors.
func (h *Hub) tracked() map[uuid.UUID]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[uuid.UUID]int64, len(h.tenants))
	for id, tc := range h.tenants {
		out[id] = tc.cursor
	}
	return out
}

// deliver fans a tenant's events (in id order) out to its sockets, each of which applies what
// an event changes about the socket itself (a revoked session, a lost membership) before its
// topics get it, then writes what it got. Events at or below the tenant's cursor were
// delivered already.
//
// The sockets are taken under the hub's lock, then served without it, a share per core: a
// socket registered after that is served from the next events on, which is all it needs (its
// subscriptions read the stream's position after registering, and the upgrade checks the
// caller in the database after registering too). Sockets never block it: writes do not wait
// (netConn).
//
// An event at or below the cursor that every instance must apply (a revocation, a user change)
// still goes to each socket's control, though to no topic: the cursor of a tenant's first
// socket starts at the stream's newest id, so that socket may not have seen it yet.
func (h *Hub) deliver(tenant uuid.UUID, events []*Event) {
	h.mu.Lock()
	tc := h.tenants[tenant]
	if tc == nil {
		h.mu.Unlock()
		return
	}
	var old, fresh []*Event
	for _, e := range events {
		switch {
		case e.ID > tc.cursor:
			fresh = append(fresh, e)
			tc.cursor = e.ID
		case tenancy.ReachesEveryServer(e.Type):
			old = append(old, e)
		}
	}
	conns := make([]*Conn, 0, len(tc.conns))
	for c := range tc.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	if len(old)+len(fresh) == 0 || len(conns) == 0 {
		return
	}
	for _, e := range fresh {
		e.prepare()
	}
	serve := func(c *Conn, buf []byte) []byte {
		for _, e := range old {
			c.controlOnly(e)
		}
		claimed := false
		for _, e := range fresh {
			claimed = c.offer(e) || claimed
		}
		if claimed {
			buf = c.writeQueue(buf)
		}
		return buf
	}
	workers := min(runtime.GOMAXPROCS(0), (len(conns)+flushChunk-1)/flushChunk)
	if workers <= 1 {
		var buf []byte
		for _, c := range conns {
			buf = serve(c, buf)
		}
		return
	}
	// Past a few hundred sockets, one goroutine per core: each socket costs a write(2), and on
	// loopback the kernel does the receiver's work in the sender's system call.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var buf []byte
			for {
				i := int(next.Add(flushChunk)) - flushChunk
				if i >= len(conns) {
					return
				}
				for _, c := range conns[i:min(i+flushChunk, len(conns))] {
					buf = serve(c, buf)
				}
			}
		})
	}
	wg.Wait()
}

const flushChunk = 256

// count is the number of open sockets.
func (h *Hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, tc := range h.tenants {
		n += len(tc.conns)
	}
	return n
}

// Shutdown closes every socket with 1001 (going away) and waits for them to end, until ctx is
// done; then it drops the rest without a close handshake.
func (h *Hub) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.shutdown = true
	var conns []*Conn
	for _, tc := range h.tenants {
		for c := range tc.conns {
			conns = append(conns, c)
		}
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.closeWith(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { h.all.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range conns {
			c.drop("shutdown: the close handshake did not finish in time")
		}
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}
