package realtime

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

// Channel is the NOTIFY channel committing writes wake the relays on.
const Channel = "tasker_events"

// Config is what the realtime service needs; zero limits take the defaults in the README.
type Config struct {
	DB *tenancy.DB
	// Issuer verifies access tokens, checked against Revocations, which the relay keeps.
	Issuer      *tokens.Issuer
	Revocations *auth.Revocations
	Logger      *slog.Logger
	// Listen connects the relay's LISTEN session (a dedicated connection, outside the pool).
	Listen *pgx.ConnConfig
	// AllowedOrigins are the exact browser origins (scheme://host[:port]) allowed besides the
	// server's own; clients that send no Origin (not browsers) are always allowed.
	AllowedOrigins    []string
	MaxConnsPerUser   int
	MaxSubscriptions  int
	MaxMessageBytes   int64
	MessagesPerSecond int
	SendQueue         int
	PingInterval      time.Duration
	PingTimeout       time.Duration
	WriteTimeout      time.Duration
	// Retention is how long events are kept for replays; the service prunes older ones.
	Retention time.Duration
	// TokenTTL is the access-token lifetime: how far back revocations matter at start.
	TokenTTL time.Duration
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxConnsPerUser, 20)
	def(&c.MaxSubscriptions, 100)
	def(&c.MessagesPerSecond, 20)
	def(&c.SendQueue, 256)
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 4096
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&c.PingInterval, 25*time.Second)
	dur(&c.PingTimeout, 10*time.Second)
	dur(&c.WriteTimeout, 10*time.Second)
	dur(&c.Retention, 24*time.Hour)
	dur(&c.TokenTTL, 15*time.Minute)
}

// Service is the realtime endpoint plus the relay that feeds it.
type Service struct {
	cfg   Config
	auth  *auth.Authenticator
	hub   *Hub
	relay *relay
}

// New returns the service; Run starts its relay and retention, ServeHTTP its endpoint.
func New(cfg Config) *Service {
	cfg.defaults()
	s := &Service{cfg: cfg, auth: auth.NewAuthenticator(cfg.Issuer, cfg.DB, cfg.Revocations), hub: newHub(cfg.MaxConnsPerUser)}
	s.relay = newRelay(s)
	return s
}

// Ready is closed once the relay listens and has caught up with revocations.
func (s *Service) Ready() <-chan struct{} { return s.relay.ready }

// Connections is the number of open sockets on this instance.
func (s *Service) Connections() int { return s.hub.count() }

// Shutdown closes every socket with 1001; run it after the HTTP server has drained.
func (s *Service) Shutdown(ctx context.Context) { s.hub.Shutdown(ctx) }

// ServeHTTP authenticates, checks the Origin and the connection limit, all answered as
// problem+json before anything is upgraded, then upgrades and hands the socket to goroutines
// of its own.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.originAllowed(r) {
		s.refuse(w, r, problem.New(problem.Forbidden, "The Origin %q may not open this WebSocket.", r.Header.Get("Origin")))
		return
	}
	credential, err := s.credential(r)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	p, err := s.auth.Credential(ctx, credential)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	reqinfo.SetTenant(ctx, p.Tenant)
	bounds, err := tenancy.ReadV(ctx, s.cfg.DB, tenancy.Scope{Tenant: p.Tenant, User: p.User}, func(q *db.Queries) (db.EventStreamBoundsRow, error) {
		return q.EventStreamBounds(ctx)
	})
	if err != nil {
		s.refuse(w, r, err)
		return
	}

	// Not the request's context: the socket outlives the request, and keeping its values
	// would keep the request (see docs/performance.md, memory per idle socket).
	cctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		svc: s, tenant: p.Tenant, registeredUser: p.User, ctx: cctx, cancel: cancel,
		limiter: rate.NewLimiter(rate.Limit(s.cfg.MessagesPerSecond), s.cfg.MessagesPerSecond),
		p:       p, tokenRole: p.Role,
	}
	c.flushed = sync.NewCond(&c.mu)
	if err := s.hub.register(c, bounds.LastID); err != nil {
		if errors.Is(err, ErrTooManyConnections) {
			pe := problem.New(problem.RateLimited, "You hold %d realtime connections already, the most allowed.", s.cfg.MaxConnsPerUser)
			s.refuse(w, r, pe)
		} else {
			s.refuse(w, r, problem.New(problem.Unavailable, "The server is shutting down."))
		}
		cancel()
		return
	}
	// Until the socket is handed to its own goroutines below.
	release := func() {
		s.hub.unregister(c)
		cancel()
	}
	// The database's word, now that the relay reaches this socket: a revocation committed
	// before this read is refused here, one after reaches the socket through the relay. It
	// also lowers the role to the user's current one.
	cur, err := tenancy.ReadV(ctx, s.cfg.DB, tenancy.Scope{Tenant: p.Tenant, User: p.User}, func(q *db.Queries) (auth.Principal, error) {
		return auth.Current(ctx, q, p)
	})
	if err != nil {
		s.refuse(w, r, err)
		release()
		return
	}
	c.mu.Lock()
	c.p.Role = cur.Role
	c.mu.Unlock()

	// The HTTP server's read and write deadlines would end the socket; it keeps its own.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	// The client's bytes are paced at its message rate times the largest message, with room
	// for two such messages at once.
	reads := rate.NewLimiter(rate.Limit(s.cfg.MessagesPerSecond)*rate.Limit(s.cfg.MaxMessageBytes), 2*int(s.cfg.MaxMessageBytes)+1024)
	hw := &hijackWriter{ResponseWriter: w, timeout: s.cfg.WriteTimeout, reads: reads}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The Origin was checked above, against our own list.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
		// The library answers pings itself; they count against the message rate, or a client
		// could make the server write pongs as fast as it sends pings.
		OnPingReceived: func(context.Context, []byte) bool { return c.allowMessage() },
	})
	if err != nil {
		release()
		return // Accept answered the client
	}
	ws.SetReadLimit(s.cfg.MaxMessageBytes)
	if !c.upgraded(ws, hw.nc) {
		_ = ws.CloseNow()
		release()
		return
	}
	// The socket gets a goroutine of its own, and this one returns: its stack, grown by the
	// middleware and the database reads above, and the request go with it. An idle socket
	// then costs one small stack (see docs/performance.md). The access log line records the
	// upgrade, not the socket's life.
	go func() {
		defer release()
		defer func() { _ = ws.CloseNow() }()
		c.startTimers()
		defer c.stopTimers()
		c.readLoop()
		cancel()
	}()
}

func (s *Service) refuse(w http.ResponseWriter, r *http.Request, err error) {
	pe := problem.As(err)
	if pe.Kind.Status() >= 500 {
		s.cfg.Logger.ErrorContext(r.Context(), "realtime upgrade failed", "request_id", reqinfo.RequestID(r.Context()), "error", err.Error())
	}
	problem.Write(w, r, reqinfo.RequestID(r.Context()), err)
}

// credential is the Authorization bearer credential or, for browsers, the one offered as the
// subprotocol bearer.<token> beside tasker.v1.
func (s *Service) credential(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return auth.BearerCredential(h)
	}
	var offered []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			offered = append(offered, strings.TrimSpace(p))
		}
	}
	for _, p := range offered {
		if tok, ok := strings.CutPrefix(p, BearerSubprotocolPrefix); ok && tok != "" {
			if !slices.Contains(offered, Subprotocol) {
				return "", auth.Unauthenticated("invalid_request", "A bearer subprotocol must be offered beside "+Subprotocol+".")
			}
			return tok, nil
		}
	}
	return "", auth.Unauthenticated("invalid_request", "The WebSocket needs an Authorization: Bearer header or the subprotocols "+Subprotocol+" and bearer.<token>.")
}

// originAllowed admits clients without an Origin (not browsers), the server's own origin, and
// the configured ones, compared exactly (scheme, host and port).
func (s *Service) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}
