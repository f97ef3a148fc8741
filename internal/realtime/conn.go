package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
)

// Conn is one client socket. One goroutine, the reader, serves it while it is idle: it reads the
// client's messages, and a handler goroutine, started while there are some, answers them in
// order. Frames are written by whoever owns the writer (see claimLocked): the relay's fan-out for
// live events, the handler for its answers, or the worker, a goroutine started only while there
// is database work (catching subscriptions up, re-checking access). Writes never block
// (netConn), so nobody waits on a slow client. Pings and expiry are timers.
type Conn struct {
	svc            *Service
	tenant         uuid.UUID
	registeredUser uuid.UUID
	ctx            context.Context
	cancel         context.CancelFunc
	limiter        *rate.Limiter

	mu sync.Mutex // guards everything below
	ws *websocket.Conn
	nc *netConn
	p  auth.Principal
	// tokenRole is the role the credential itself carries; user changes can only lower it.
	tokenRole auth.Role
	subs      map[string]*sub
	queue     [][]byte
	spare     [][]byte // the writer's owner returns the queue it wrote here
	// flushing is held by the one goroutine that owns the writer; flushed tells waiters for it
	// that it is free.
	flushing bool
	flushed  *sync.Cond
	waiting  int // goroutines waiting on flushed
	// behind counts the frames written while the kernel had not yet taken earlier ones; the
	// writer's owner alone touches it.
	behind int
	// inbox holds the client's messages for the handler; handling is set while it runs.
	inbox    [][]byte
	handling bool
	// work flags tell the worker what to do; working is set while it runs.
	recheck, catchUp, working bool
	closing                   bool
	// closeCode and closeReason are a close asked for before the upgrade, when there was no
	// ws to close yet; upgraded carries it out.
	closeCode      websocket.StatusCode
	closeReason    string
	pinger, expiry *time.Timer
}

// sub is one topic subscription of a socket.
type sub struct {
	t topic
	// team is the team owning the topic's project; project is that project.
	team, project uuid.UUID
	// last is the id of the newest event of the topic the client has been given (or, before
	// any, the position it subscribed at): the next one it gets has a higher id.
	last  int64
	state subState
	// pending holds live events that arrived while catching up, until the replay reaches them.
	pending  []*Event
	overflow bool
	// recheckOnStart is set when access changed while the subscription was starting.
	recheckOnStart bool
	// gen counts suspensions, so a re-check whose answer a newer change made stale is not used.
	gen int
}

type subState int

const (
	live       subState = iota
	starting            // subscribing: its position is being read; live events wait in pending
	catchingUp          // replaying from the database; live events wait in pending
	suspended           // access is being re-checked; live events are dropped, the replay finds them
)

func (c *Conn) principal() auth.Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p
}

func (c *Conn) scope() tenancy.Scope {
	p := c.principal()
	return tenancy.Scope{Tenant: p.Tenant, User: p.User}
}

// startWorkLocked starts the worker for the work flags set, unless it runs. c.mu is held.
func (c *Conn) startWorkLocked() {
	if c.working || c.closing || (!c.recheck && !c.catchUp) {
		return
	}
	c.working = true
	go c.work()
}

// enqueueLocked queues a frame for the writer's owner; a full queue means the client does not
// keep up, and it is closed rather than slowing anyone else. c.mu is held; whoever queues then
// flushes (flush), unless it is the relay, which collects the sockets to write.
func (c *Conn) enqueueLocked(frame []byte) {
	if c.closing {
		return
	}
	if len(c.queue) >= c.svc.cfg.SendQueue {
		c.closeLocked(CloseSlowConsumer, "send queue full: the client reads too slowly")
		return
	}
	c.queue = append(c.queue, frame)
}

// claimLocked takes the writer if nobody owns it and there is something to write; the owner
// writes the queue and lets go (writeQueue). c.mu is held.
func (c *Conn) claimLocked() bool {
	if c.flushing || c.closing || len(c.queue) == 0 {
		return false
	}
	c.flushing = true
	return true
}

// flush writes the queue now, unless the writer's owner will.
func (c *Conn) flush() {
	c.mu.Lock()
	claimed := c.claimLocked()
	c.mu.Unlock()
	if claimed {
		c.writeQueue(nil)
	}
}

func (c *Conn) send(v any) {
	c.mu.Lock()
	c.enqueueLocked(textFrame(v))
	c.mu.Unlock()
	c.flush()
}

// sendError sends an error message about topic, cut to the longest valid topic: an error must
// not echo a client's long message back several times its size.
func (c *Conn) sendError(code, topic, format string, args ...any) {
	if len(topic) > maxTopicLen {
		topic = strings.ToValidUTF8(topic[:maxTopicLen], "") // not half a character
	}
	c.send(errorMessage{Type: "error", Code: code, Topic: topic, Message: fmt.Sprintf(format, args...)})
}

// closeWith closes the socket with code, once, without blocking the caller: the close handshake
// may wait on a slow peer.
func (c *Conn) closeWith(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *Conn) closeLocked(code websocket.StatusCode, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	c.queue = nil
	c.flushed.Broadcast() // a worker waiting for the writer gives up
	c.svc.cfg.Logger.Info("realtime: closing socket", "code", int(code), "reason", reason, "tenant", c.tenant, "user", c.registeredUser)
	if c.ws == nil {
		// Registered (so the relay and Shutdown reach it) but not upgraded yet: closing the
		// nil ws here panicked and took the server down when a revocation or Shutdown came in
		// between (TestRealtimeRevocationRacingASocketOpeningStillCloses did, once the
		// relay's controlOnly reached such sockets).
		c.closeCode, c.closeReason = code, reason
		return
	}
	ws := c.ws
	go func() {
		_ = ws.Close(code, reason)
		c.cancel()
	}()
}

// upgraded hands c its WebSocket; false when c was closed before, and then the close asked
// for is done here (a drop leaves it to the caller's CloseNow), so the socket is not served.
func (c *Conn) upgraded(ws *websocket.Conn, nc *netConn) bool {
	c.mu.Lock()
	c.ws, c.nc = ws, nc
	closing, code, reason := c.closing, c.closeCode, c.closeReason
	c.mu.Unlock()
	if closing && code != 0 {
		_ = ws.Close(code, reason)
	}
	return !closing
}

// drop ends the socket at once, without a close handshake.
func (c *Conn) drop(reason string) {
	c.svc.cfg.Logger.Info("realtime: dropping socket", "reason", reason, "tenant", c.tenant, "user", c.registeredUser)
	c.mu.Lock()
	ws := c.ws
	c.closing = true
	c.mu.Unlock()
	if ws != nil {
		_ = ws.CloseNow()
	}
	c.cancel()
}

// offer gives the socket a live event: first what it changes about the socket (control), then
// to each subscription whose topic shows it. It runs on the relay's fan-out, so it never waits
// for anything; true means it claimed the writer, and the relay must write the queue
// (writeQueue).
func (c *Conn) offer(e *Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.control(e)
	for name, s := range c.subs {
		if !visible(e, s.t, c.p) {
			continue
		}
		switch s.state {
		case live:
			if e.ID > s.last {
				s.last = e.ID
				c.enqueueLocked(e.frame(name))
			}
		case starting, catchingUp:
			if len(s.pending) >= maxPendingPerSub {
				s.pending, s.overflow = nil, true
			} else if !s.overflow {
				s.pending = append(s.pending, e)
			}
		case suspended:
		}
	}
	return c.claimLocked()
}

// controlOnly applies what e changes about this socket, without giving e to any topic; see
// Hub.deliver.
func (c *Conn) controlOnly(e *Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.control(e)
	}
}

// control applies what e changes about this socket: a revoked session or key, or a deactivated
// user closes it; a role change, a lost membership or a project moving to another team
// suspends the subscriptions concerned until the writer has re-checked them. c.mu is held.
func (c *Conn) control(e *Event) {
	p := c.p
	switch e.Type {
	case eventSessionRevoked:
		if p.Method == auth.ByAccessToken && e.ResourceID == p.Session {
			c.closeLocked(CloseAccessRevoked, "session revoked")
		}
	case eventAPIKeyRevoked:
		if p.Method == auth.ByAPIKey && e.ResourceID == p.APIKey {
			c.closeLocked(CloseAccessRevoked, "API key revoked")
		}
	case eventUserUpdated:
		if e.ResourceID != p.User {
			return
		}
		f := e.fields()
		if f.Status != statusActive {
			c.closeLocked(CloseAccessRevoked, "user deactivated")
			return
		}
		c.p.Role = auth.Lower(c.tokenRole, auth.Role(f.Role))
		c.suspendLocked(func(*sub) bool { return true })
	case eventMemberRemoved:
		f := e.fields()
		if f.UserID == p.User {
			c.suspendLocked(func(s *sub) bool { return s.team == f.TeamID })
		}
	case eventTeamDeleted:
		c.suspendLocked(func(s *sub) bool { return s.team == e.ResourceID })
	case eventProjectUpdated:
		f := e.fields()
		c.suspendLocked(func(s *sub) bool { return s.project == e.ResourceID && s.team != f.TeamID })
	}
}

// suspendLocked suspends the project and task subscriptions that match, for a re-check by the
// writer. Admins read every project, so their subscriptions only learn the new team. c.mu is held.
func (c *Conn) suspendLocked(match func(*sub) bool) {
	for _, s := range c.subs {
		if s.t.kind == topicTenant || !match(s) {
			continue
		}
		if s.state == starting {
			s.recheckOnStart = true // subscribe suspends it once its position is known
			continue
		}
		s.state, s.pending, s.overflow = suspended, nil, false
		s.gen++
		c.recheck = true
	}
	c.startWorkLocked()
}

// queryContext bounds one database read of the socket's. It does not end with the socket: a
// query cancelled in flight costs the pool its connection, and these reads are short.
func (c *Conn) queryContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(c.ctx), queryTimeout)
}

const queryTimeout = 10 * time.Second

// readLoop serves the client's messages until the socket ends.
func (c *Conn) readLoop() {
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return // closed by either side; a frame over the read limit was closed with 1009
		}
		if typ != websocket.MessageText {
			c.closeWith(closeUnsupportedMsg, "only JSON text messages are accepted")
			c.awaitClose()
			return
		}
		if !utf8.Valid(data) {
			c.closeWith(websocket.StatusInvalidFramePayloadData, "text messages must be UTF-8")
			c.awaitClose()
			return
		}
		if !c.allowMessage() {
			c.awaitClose()
			return
		}
		c.mu.Lock()
		c.inbox = append(c.inbox, data)
		if !c.handling {
			c.handling = true
			go c.handleInbox()
		}
		c.mu.Unlock()
	}
}

// handleInbox answers the client's messages in order, on a goroutine that ends when none is
// left. Not on the reader: a subscription's database reads grow a goroutine's stack to 8 KiB
// and more, which the reader would then keep for the socket's life; the reader's own depth
// fits 4 KiB (docs/performance.md, memory per idle socket). The rate limit bounds the inbox.
func (c *Conn) handleInbox() {
	for {
		c.mu.Lock()
		if len(c.inbox) == 0 || c.closing {
			c.inbox, c.handling = nil, false
			c.mu.Unlock()
			return
		}
		data := c.inbox[0]
		c.inbox[0] = nil
		c.inbox = c.inbox[1:]
		c.mu.Unlock()
		c.handle(data)
	}
}

// allowMessage counts a client message or ping against the rate limit; past it, the socket is
// closed with 1008 and false comes back.
func (c *Conn) allowMessage() bool {
	if c.limiter.Allow() {
		return true
	}
	c.closeWith(ClosePolicy, fmt.Sprintf("more than %d messages and pings a second", c.svc.cfg.MessagesPerSecond))
	return false
}

// awaitClose waits until a close the reader asked for (closeWith) has finished. Returning at
// once would let ServeHTTP cancel the writer and CloseNow the connection while the close
// goroutine has not yet written its frame, and the client would see 1006 instead of the code
// (it did, in TestRealtimeAbusiveFramesCloseWithTheirCode). The close goroutine cancels c.ctx
// when the handshake is over, or after its own timeouts when the peer does not answer.
func (c *Conn) awaitClose() { <-c.ctx.Done() }

func (c *Conn) handle(data []byte) {
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		c.sendError(ErrBadMessage, "", "The message is not a JSON object of this protocol.")
		return
	}
	switch m.Type {
	case "ping":
		c.mu.Lock()
		c.enqueueLocked(pongFrame)
		c.mu.Unlock()
		c.flush()
	case "subscribe":
		c.subscribe(m.Topic, m.Since)
	case "unsubscribe":
		c.mu.Lock()
		_, ok := c.subs[m.Topic]
		delete(c.subs, m.Topic)
		c.mu.Unlock()
		if !ok {
			c.sendError(errNotSubscribed, m.Topic, "Not subscribed to that topic.")
			return
		}
		c.send(topicMessage{Type: "unsubscribed", Topic: m.Topic})
	case "auth":
		c.renew(m.Token)
	default:
		c.sendError(ErrBadMessage, "", "Unknown message type %q: want subscribe, unsubscribe, auth or ping.", m.Type)
	}
}

// subscribe checks the topic, registers it catching up, then sends "subscribed" with the
// stream's newest id; the writer replays what follows since (or that id) and goes live.
// Registering before reading the stream's bounds is what leaves no gap: whatever commits after
// the read reaches the subscription live, whatever before is in the replay.
func (c *Conn) subscribe(name string, since *int64) {
	t, ok := parseTopic(name)
	if !ok {
		if len(name) > maxTopicLen {
			name = strings.ToValidUTF8(name[:maxTopicLen], "")
		}
		c.sendError(ErrInvalidTopic, name, "A topic is tenant, project:<id> or task:<id>, with a lowercase uuid.")
		return
	}
	c.mu.Lock()
	_, again := c.subs[name]
	full := !again && len(c.subs) >= c.svc.cfg.MaxSubscriptions
	c.mu.Unlock()
	if full {
		c.sendError(ErrTooManySubs, name, "A connection holds at most %d subscriptions.", c.svc.cfg.MaxSubscriptions)
		return
	}
	// Registered before its access is checked, so that a change of access while checking
	// reaches it (recheckOnStart).
	s := &sub{t: t, state: starting}
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]*sub{}
	}
	c.subs[name] = s
	c.mu.Unlock()
	probe := &sub{t: t}
	if code, msg := c.authorize(probe, c.principal()); code != "" {
		c.mu.Lock()
		if c.subs[name] == s {
			delete(c.subs, name)
		}
		c.mu.Unlock()
		c.sendError(code, name, "%s", msg)
		return
	}
	c.mu.Lock()
	s.project, s.team = probe.project, probe.team
	c.mu.Unlock()

	qctx, cancel := c.queryContext()
	defer cancel()
	bounds, err := tenancy.ReadV(qctx, c.svc.cfg.DB, c.scope(), func(q *db.Queries) (db.EventStreamBoundsRow, error) {
		return q.EventStreamBounds(qctx)
	})
	code, msg, from := "", "", bounds.LastID
	switch {
	case err != nil:
		c.svc.cfg.Logger.Error("realtime: stream bounds", "error", err)
		code, msg = ErrInternal, "The subscription failed; try again."
	case since == nil:
	case *since < 0 || *since > bounds.LastID:
		code, msg = ErrSinceInvalid, fmt.Sprintf("since must be between 0 and the newest event id, %d.", bounds.LastID)
	case *since < bounds.LastID && (bounds.OldestID == 0 || bounds.OldestID > *since+1):
		code, msg = ErrSinceExpired, "Events after since are past retention: reload the resources through the REST API, then subscribe without since."
	default:
		from = *since
	}
	defer c.flush()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[name] != s || s.state != starting {
		return // unsubscribed, or subscribed again, meanwhile
	}
	if code != "" {
		delete(c.subs, name)
		c.enqueueLocked(textFrame(errorMessage{Type: "error", Code: code, Topic: name, Message: msg}))
		return
	}
	s.last, s.state = from, catchingUp
	if s.recheckOnStart {
		s.state, s.pending, s.overflow = suspended, nil, false
		c.recheck = true
	}
	c.enqueueLocked(textFrame(subscribedMessage{Type: "subscribed", Topic: name, LastID: bounds.LastID}))
	c.catchUp = true
	c.startWorkLocked()
}

// authorize decides whether p may read s's topic, filling in its project and team. It answers
// an error code and message, or "" when allowed. Another tenant's ids are simply not found:
// row-level security hides them.
func (c *Conn) authorize(s *sub, p auth.Principal) (code, msg string) {
	if s.t.kind == topicTenant {
		return "", ""
	}
	type access struct {
		project, team uuid.UUID
		member        bool
	}
	qctx, cancel := c.queryContext()
	defer cancel()
	a, err := tenancy.ReadV(qctx, c.svc.cfg.DB, tenancy.Scope{Tenant: p.Tenant, User: p.User}, func(q *db.Queries) (access, error) {
		var a access
		if s.t.kind == resourceTypeTask {
			t, err := q.GetTask(qctx, db.GetTaskParams{TenantID: p.Tenant, ID: s.t.id})
			if err != nil {
				return a, err
			}
			a.project, a.team = t.Task.ProjectID, t.TeamID
		} else {
			proj, err := q.GetProject(qctx, s.t.id)
			if err != nil {
				return a, err
			}
			a.project, a.team = proj.ID, proj.TeamID
		}
		if p.Role.AtLeast(auth.Admin) {
			return a, nil
		}
		var err error
		a.member, err = q.IsTeamMember(qctx, db.IsTeamMemberParams{TeamID: a.team, UserID: p.User})
		return a, err
	})
	switch {
	case problem.Is(tenancy.Missing(err, s.t.kind), problem.NotFound):
		return ErrTopicNotFound, fmt.Sprintf("No such %s.", s.t.kind)
	case err != nil:
		c.svc.cfg.Logger.Error("realtime: authorize topic", "error", err)
		return ErrInternal, "The subscription failed; try again."
	}
	s.project, s.team = a.project, a.team
	if !p.Role.AtLeast(auth.Admin) && !a.member {
		return ErrTopicForbidden, "Only admins and members of the project's team receive its events."
	}
	return "", ""
}

// renew replaces the socket's credential before it expires; it must be the same user's.
func (c *Conn) renew(token string) {
	p, err := c.svc.auth.Credential(c.ctx, token)
	cur := c.principal()
	// An access token for a socket of an access token only: an API key, which need not expire,
	// would let a socket of a session outlive the session, and a key's socket turned into a
	// session's would outlive the key's revocation. A key's socket needs no renewal.
	if err != nil || p.Method != auth.ByAccessToken || cur.Method != auth.ByAccessToken || p.User != cur.User || p.Tenant != cur.Tenant {
		c.sendError(ErrAuthFailed, "", "The token is not a valid access token of this user; the current one stays until it expires.")
		return
	}
	c.mu.Lock()
	c.p, c.tokenRole = p, p.Role
	if c.expiry != nil {
		c.expiry.Reset(untilExpiry(p))
	}
	c.recheck = true
	for _, s := range c.subs {
		if s.t.kind != topicTenant && s.state == live {
			s.state = suspended
		}
	}
	var exp *time.Time
	if !p.Expires.IsZero() {
		exp = &p.Expires
	}
	c.enqueueLocked(textFrame(authenticatedMessage{Type: "authenticated", ExpiresAt: exp}))
	c.startWorkLocked()
	c.mu.Unlock()
	c.flush()
}

// startTimers arms the heartbeat and the credential's expiry.
func (c *Conn) startTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinger = time.AfterFunc(c.svc.cfg.PingInterval, c.ping)
	c.expiry = time.AfterFunc(untilExpiry(c.p), func() {
		c.closeWith(CloseTokenExpired, "the credential expired; renew it with an auth message before it does")
	})
}

func (c *Conn) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinger.Stop()
	c.expiry.Stop()
}

// ping runs on the heartbeat's timer: a peer that does not answer within the ping timeout is
// dead, and would never read a close frame either.
func (c *Conn) ping() {
	ctx, cancel := context.WithTimeout(c.ctx, c.svc.cfg.PingTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if c.ctx.Err() != nil {
		return
	}
	if err != nil {
		c.drop("no pong within the ping timeout")
		return
	}
	c.mu.Lock()
	c.pinger.Reset(c.svc.cfg.PingInterval)
	c.mu.Unlock()
}

func untilExpiry(p auth.Principal) time.Duration {
	if p.Expires.IsZero() {
		return math.MaxInt64
	}
	return max(time.Until(p.Expires), 0)
}

// work is the worker: it re-checks access and catches subscriptions up, until no work is left.
func (c *Conn) work() {
	for {
		c.mu.Lock()
		recheck, catchUp := c.recheck, c.catchUp
		c.recheck, c.catchUp = false, false
		if c.closing || (!recheck && !catchUp) {
			c.working = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if recheck {
			c.recheckSubs()
		}
		c.catchUpSubs()
	}
}

// own waits until the caller owns the writer; false when the socket is closing.
func (c *Conn) own() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.flushing && !c.closing {
		c.waiting++
		c.flushed.Wait()
		c.waiting--
	}
	if c.closing {
		return false
	}
	c.flushing = true
	return true
}

// writeQueue writes the queue until it is empty and lets the writer go; the caller owns it.
// buf is a scratch buffer for the frames' bytes, returned for reuse.
func (c *Conn) writeQueue(buf []byte) []byte {
	for {
		buf, _ = c.writeQueued(buf)
		if !c.letGo() {
			return buf
		}
	}
}

// writeQueued writes the queue until it is empty, keeping the writer; false when the socket
// is gone or closing.
func (c *Conn) writeQueued(buf []byte) (_ []byte, ok bool) {
	for {
		c.mu.Lock()
		frames := c.queue
		// Two slices take turns, so an event costs a socket no allocation.
		c.queue, c.spare = c.spare, nil
		closing := c.closing
		c.mu.Unlock()
		if closing {
			return buf, false
		}
		if len(frames) == 0 {
			return buf, true
		}
		var behind bool
		buf, behind, ok = c.writeFrames(buf, frames)
		if cap(frames) <= 16 {
			clear(frames)
			c.mu.Lock()
			c.spare = frames[:0]
			c.mu.Unlock()
		}
		if !ok {
			return buf, false
		}
		if !behind {
			c.behind = 0
			continue
		}
		// What the client has not read fills the kernel's buffers, then the netConn's
		// backlog; counting the frames written meanwhile bounds that backlog.
		if c.behind += len(frames); c.behind > c.svc.cfg.SendQueue {
			c.closeWith(CloseSlowConsumer, "send queue full: the client reads too slowly")
			return buf, false
		}
	}
}

// letGo frees the writer, and claims it again (true) for what was queued meanwhile and not
// claimed: a claim made while it was owned failed.
func (c *Conn) letGo() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushing = false
	if c.waiting > 0 {
		c.flushed.Broadcast()
	}
	return c.claimLocked()
}

// writeFrames writes frames as one system call where it can, without blocking; behind is true
// when some of them still wait for the kernel. False when the socket is gone; a client that
// took nothing for the write timeout is closed as a slow consumer.
func (c *Conn) writeFrames(buf []byte, frames [][]byte) (_ []byte, behind, ok bool) {
	buf, behind, err := c.nc.writeFrames(buf, frames)
	if err != nil {
		switch {
		case errors.Is(err, errWriteTimeout):
			c.closeWith(CloseSlowConsumer, "write timed out")
		case errors.Is(err, errBacklogFull):
			c.closeWith(CloseSlowConsumer, "send backlog full: the client reads too slowly")
		}
		return buf, false, false
	}
	return buf, behind, true
}

// recheckSubs re-reads the caller's standing and each suspended subscription's access. A
// subscription the caller may no longer read ends with an access_revoked error; the others
// catch up from where they were.
func (c *Conn) recheckSubs() {
	c.mu.Lock()
	p := c.p
	p.Role = c.tokenRole
	c.mu.Unlock()
	qctx, cancel := c.queryContext()
	cur, err := tenancy.ReadV(qctx, c.svc.cfg.DB, tenancy.Scope{Tenant: p.Tenant, User: p.User}, func(q *db.Queries) (auth.Principal, error) {
		return auth.Current(qctx, q, p)
	})
	cancel()
	if err != nil {
		if c.ctx.Err() == nil {
			c.closeWith(CloseAccessRevoked, "access revoked")
		}
		return
	}
	c.mu.Lock()
	c.p.Role = cur.Role
	p = c.p
	var check []*sub
	names := map[*sub]string{}
	gens := map[*sub]int{}
	for name, s := range c.subs {
		if s.state == suspended {
			check = append(check, s)
			names[s], gens[s] = name, s.gen
		}
	}
	c.mu.Unlock()
	for _, s := range check {
		probe := &sub{t: s.t}
		code, msg := c.authorize(probe, p)
		c.mu.Lock()
		if c.subs[names[s]] != s || s.gen != gens[s] {
			c.mu.Unlock()
			continue // unsubscribed, or suspended again (and so checked again), meanwhile
		}
		if code != "" {
			delete(c.subs, names[s])
			if code != ErrInternal {
				code, msg = ErrAccessRevoked, "You can no longer read this topic: "+msg
			}
			c.enqueueLocked(textFrame(errorMessage{Type: "error", Code: code, Topic: names[s], Message: msg}))
		} else {
			s.team, s.project = probe.team, probe.project
			s.state = catchingUp
		}
		c.mu.Unlock()
		c.flush()
	}
}

// catchUpSubs replays, for each subscription catching up, the events after its position from
// the database, then the live ones that arrived meanwhile, and sets it live. A subscription
// whose pending events overflowed reads the database again. False when the socket is gone.
func (c *Conn) catchUpSubs() bool {
	for {
		c.mu.Lock()
		var s *sub
		var name string
		for n, x := range c.subs {
			if x.state == catchingUp {
				s, name = x, n
				break
			}
		}
		c.mu.Unlock()
		if s == nil {
			return true
		}
		// The worker owns the writer while it replays: live frames of other topics queue
		// behind it, and those queued before (the subscribed message) go first.
		if !c.own() {
			return false
		}
		_, ok := c.writeQueued(nil)
		ok = ok && c.replay(s, name)
		c.writeQueue(nil)
		if !ok {
			return false
		}
	}
}

// replay brings one subscription from s.last to live.
func (c *Conn) replay(s *sub, name string) bool {
	p := c.principal()
	for {
		c.mu.Lock()
		after := s.last
		c.mu.Unlock()
		params := db.ListEventsAfterParams{After: after, Upto: math.MaxInt64, Lim: maxReplayPage}
		switch s.t.kind {
		case resourceTypeProject:
			params.ProjectID = &s.t.id
		case resourceTypeTask:
			params.ResourceID = &s.t.id
		}
		qctx, cancel := c.queryContext()
		rows, err := tenancy.SearchV(qctx, c.svc.cfg.DB, tenancy.Scope{Tenant: p.Tenant, User: p.User}, func(q *db.Queries) ([]db.ListEventsAfterRow, error) {
			return q.ListEventsAfter(qctx, params)
		})
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.svc.cfg.Logger.Error("realtime: replay", "error", err)
				c.closeWith(CloseInternal, "replay failed")
			}
			return false
		}
		// A chunk at a time, framed as it goes: the next waits until the client has taken this
		// one, so a client that does not read holds the page and one chunk, no more.
		var chunk [][]byte
		size := 0
		gone := false
		for i := range rows {
			e := eventFromRow(p.Tenant, rows[i])
			rows[i] = db.ListEventsAfterRow{} // its payload is in the frame now
			c.mu.Lock()
			if gone = c.subs[name] != s || s.state != catchingUp; !gone && e.ID > s.last {
				if visible(e, s.t, c.p) {
					f := e.frame(name)
					chunk, size = append(chunk, f), size+len(f)
				}
				s.last = e.ID
			}
			c.mu.Unlock()
			if len(chunk) > 0 && (gone || size >= replayChunk || i == len(rows)-1) {
				if _, _, ok := c.writeFrames(nil, chunk); !ok || !c.nc.waitDrained() {
					return false
				}
				chunk, size = nil, 0
			}
			if gone {
				return true
			}
		}
		if len(rows) == maxReplayPage {
			continue
		}
		c.mu.Lock()
		if c.subs[name] != s || s.state != catchingUp {
			c.mu.Unlock()
			return true
		}
		if s.overflow {
			s.overflow, s.pending = false, nil
			c.mu.Unlock()
			continue
		}
		for _, e := range s.pending {
			if e.ID > s.last {
				s.last = e.ID
				c.enqueueLocked(e.frame(name))
			}
		}
		s.pending = nil
		s.state = live
		c.mu.Unlock()
		return true
	}
}
