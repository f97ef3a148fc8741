// Package apitest starts the real HTTP stack on a real listener against the test package's own
// database and hands back the generated client, so REST is tested the way integrators call it.
// Every response is checked against openapi/openapi.yaml; one the spec does not describe fails
// the test.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/google/uuid"
	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/contract"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/realtime"
	"github.com/tasker/tasker/internal/secretbox"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/sso"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/testdb"
	"github.com/tasker/tasker/internal/tokens"
	"github.com/tasker/tasker/internal/webhooks"
)

// FastPassword keeps argon2id cheap in tests; production parameters are in config.
var FastPassword = password.Params{Memory: 1024, Time: 1, Threads: 1}

// Env is one running API server.
type Env struct {
	URL    string
	Client *api.ClientWithResponses
	// HTTP is a plain client with the same response validation, for requests the generated
	// client cannot make (unknown routes, wrong methods).
	HTTP   *http.Client
	DB     *tenancy.DB
	Pool   *pgxpool.Pool
	Logs   *SyncBuffer
	Issuer *tokens.Issuer
	// Realtime is the realtime service, when Options.Realtime asked for it.
	Realtime *realtime.Service
	// Files is the file endpoints' configuration, its store included.
	Files handlers.FilesConfig
	// Billing is billing's configuration, its catalog included.
	Billing handlers.BillingConfig
	// Stripe is the server's Stripe API (stripe-mock behind a recorder), unless the options
	// gave a client or NoStripe.
	Stripe *StripeAPI

	t    testing.TB
	spec *contract.Spec
}

// Options adjust the server under test.
type Options struct {
	MaxBodyBytes int64
	// Pool replaces the package database's application pool.
	Pool *pgxpool.Pool
	// Sessions replaces TestSessions.
	Sessions *session.Config
	// Now replaces the clock of the token issuer.
	Now func() time.Time
	// Keys replaces the freshly generated signing key, so a test holding the private key can
	// sign tokens the issuer would never issue.
	Keys *tokens.KeySet
	// CORSAllowedOrigins are the origins allowed cross-origin requests (none by default).
	CORSAllowedOrigins []string
	// RequestTimeout is the deadline of each request (none by default).
	RequestTimeout time.Duration
	// Realtime serves GET /v1/realtime and runs the relay; writes then NOTIFY on commit.
	Realtime bool
	// RealtimeConfig adjusts the realtime limits (zero values take the defaults).
	RealtimeConfig realtime.Config
	// SendBuffer, when set, is the kernel send buffer (SO_SNDBUF) of each connection the
	// server accepts. Setting it turns off the buffer's autotuning, which on loopback absorbs
	// megabytes, so a test of a client that stops reading fills TCP's buffers with a few
	// messages.
	SendBuffer int
	// Files adjusts the file endpoints; zero fields take FileDefaults, and a nil Store is a
	// directory store in a temporary folder.
	Files handlers.FilesConfig
	// Billing adjusts billing; a nil Catalog takes TestCatalog, nil WebhookSecrets take
	// WebhookSecret, and a nil Stripe a client of a fresh StripeAPI (Env.Stripe) unless
	// NoStripe.
	Billing handlers.BillingConfig
	// NoStripe leaves the server without a Stripe API key.
	NoStripe bool
	// SSO replaces the SSO settings; by default a Box with a fresh key, insecure issuers
	// allowed (the tests' providers run on loopback over http), and SSOFrontend and
	// SSOOtherFrontend as the redirect URIs. A nil Box or nil RedirectURIs in it take those.
	SSO *handlers.SSOConfig
	// Webhooks adjusts outbound webhooks; a nil Box takes a fresh key, and private addresses
	// are allowed (the tests' receivers are on loopback) unless WebhooksStrict.
	Webhooks       handlers.WebhooksConfig
	WebhooksStrict bool
	// Deliveries, when set, runs outbound deliveries (River and the dispatcher) with these
	// settings; DB, Box, Guard and Retry come from the server's when zero. Without it jobs are
	// queued but nothing sends them. The dispatcher serves every tenant of the database, so a
	// test that runs deliveries must not run in parallel with another such test.
	Deliveries *webhooks.Config
	// AccessTokenTTL is the lifetime of the access tokens the server issues (15 minutes when
	// zero), for tests of expiry and renewal.
	AccessTokenTTL time.Duration
}

// TestSessions are the session settings tests run with: the production lifetimes, and login
// limits high enough not to get in the way.
var TestSessions = session.Config{
	Grace: 10 * time.Second, MaxAge: 30 * 24 * time.Hour, IdleTimeout: 7 * 24 * time.Hour,
	LoginPerIP: 10000, LoginPerAccount: 10000,
}

// SSOFrontend and SSOOtherFrontend are the frontend pages SSO sign-ins may return to; the
// browser of the tests never loads them, it reads the code or error off the redirect.
const (
	SSOFrontend      = "http://app.test/sso"
	SSOOtherFrontend = "http://admin.test/sso?from=tasker"
)

// Issuer and Audience are the access-token claims the test server uses.
const (
	Issuer   = "https://tasker.test"
	Audience = "tasker-api"
)

// New starts a server for t with default options.
func New(t testing.TB) *Env { return NewWithOptions(t, Options{}) }

// NewWithOptions starts a server for t; it stops when t ends.
func NewWithOptions(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx := context.Background()
	pool := opts.Pool
	if pool == nil {
		pool = testdb.Get(t).AppPool(t)
	}
	logs := &SyncBuffer{}
	var logOut io.Writer = logs
	if os.Getenv("TEST_LOG") != "" {
		logOut = io.MultiWriter(logs, os.Stderr)
	}
	sessions := TestSessions
	if opts.Sessions != nil {
		sessions = *opts.Sessions
	}
	keys := opts.Keys
	if keys == nil {
		var err error
		if keys, err = tokens.NewKeySet(tokens.GenerateKey()); err != nil {
			t.Fatal(err)
		}
	}
	ttl := opts.AccessTokenTTL
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	issuer := tokens.NewIssuer(tokens.IssuerConfig{Keys: keys, Issuer: Issuer, Audience: Audience, TTL: ttl, Now: opts.Now})
	reg := prometheus.NewRegistry()
	reg.MustRegister(database.NewPoolCollector(pool))
	store := tenancy.New(pool)
	logger := slog.New(slog.NewJSONHandler(logOut, nil))
	revocations := auth.NewRevocations(ttl)
	var rt *realtime.Service
	var rtHandler http.Handler
	if opts.Realtime {
		store = store.WakeOnCommit(realtime.Channel)
		rc := opts.RealtimeConfig
		rc.DB, rc.Issuer, rc.Revocations, rc.Logger, rc.Listen = store, issuer, revocations, logger, pool.Config().ConnConfig.Copy()
		rc.TokenTTL = ttl
		rt = realtime.New(rc)
		rtHandler = rt
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = rt.Run(rctx) }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case <-rt.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("realtime relay not ready")
		}
	}
	fc := fileConfig(t, opts.Files)
	bc := billingConfig(opts.Billing)
	var stripeAPI *StripeAPI
	if bc.Stripe == nil && !opts.NoStripe {
		stripeAPI = NewStripeAPI(t)
		bc.Stripe = stripeAPI.Client()
	}
	sc := handlers.SSOConfig{Policy: sso.Policy{AllowInsecure: true}}
	if opts.SSO != nil {
		sc = *opts.SSO
	}
	if sc.RedirectURIs == nil {
		sc.RedirectURIs = []string{SSOFrontend, SSOOtherFrontend}
	}
	if sc.Box == nil {
		key := make([]byte, secretbox.KeySize)
		_, _ = rand.Read(key)
		sc.Box, _ = secretbox.New(key)
	}
	wc := opts.Webhooks
	wc.Guard.AllowPrivate = wc.Guard.AllowPrivate || !opts.WebhooksStrict
	if wc.Box == nil {
		key := make([]byte, secretbox.KeySize)
		_, _ = rand.Read(key)
		wc.Box, _ = secretbox.New(key)
	}
	if opts.Deliveries != nil && opts.Deliveries.Retry.Attempts > 0 {
		wc.Retry = opts.Deliveries.Retry
	}
	store = store.WakeOnCommit(realtime.Channel)
	dc := webhooks.Config{}
	if opts.Deliveries != nil {
		dc = *opts.Deliveries
	}
	if dc.DB == nil {
		dc.DB = store
	}
	if dc.Box == nil {
		dc.Box = wc.Box
	}
	if dc.Guard == (webhooks.Guard{}) {
		dc.Guard = wc.Guard
	}
	if dc.Retry == (webhooks.Retry{}) {
		dc.Retry = wc.Retry
	}
	if dc.Logger == nil {
		dc.Logger = logger
	}
	if dc.Queue == "" {
		// Every test server shares the package's database, but not its key or settings.
		dc.Queue = "test_" + uuid.NewString()[:8]
	}
	deliveries, err := webhooks.New(pool, realtime.Channel, dc)
	if err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	store = store.WithJobs(deliveries.Jobs())
	if opts.Deliveries != nil {
		dctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = deliveries.Run(dctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	h, err := handlers.NewHTTPHandler(ctx, handlers.Config{
		Webhooks:           wc,
		Files:              fc,
		Billing:            bc,
		SSO:                sc,
		Revocations:        revocations,
		Realtime:           rtHandler,
		DB:                 store,
		Logger:             logger,
		Registry:           reg,
		Password:           FastPassword,
		MaxBodyBytes:       opts.MaxBodyBytes,
		Issuer:             issuer,
		Sessions:           sessions,
		CORSAllowedOrigins: opts.CORSAllowedOrigins,
		RequestTimeout:     opts.RequestTimeout,
	})
	if err != nil {
		t.Fatalf("build handler: %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnContext = handlers.ConnContext
	if opts.SendBuffer > 0 {
		srv.Listener = sendBufferListener{Listener: srv.Listener, size: opts.SendBuffer}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	if rt != nil {
		// Before srv.Close, which would wait for the hijacked sockets otherwise.
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			rt.Shutdown(sctx)
		})
	}

	spec, err := contract.Load(ctx)
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	httpClient := &http.Client{Transport: &validatingTransport{t: t, spec: spec, next: http.DefaultTransport}}
	client, err := api.NewClientWithResponses(srv.URL, api.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return &Env{URL: srv.URL, Client: client, HTTP: httpClient, DB: store, Pool: pool, Logs: logs, Issuer: issuer, Realtime: rt, Files: fc, Billing: bc, Stripe: stripeAPI, t: t, spec: spec}
}

// WebhookSecret is the Stripe webhook signing secret of the test server, unless
// Options.Billing says otherwise.
const WebhookSecret = "whsec_test_tasker_0123456789abcdef"

// TestCatalog returns the plans tests run with: every limit high enough not to get in the way
// (1 GiB of storage on free), so only the tests of limits set their own; prices price_pro and
// price_enterprise; a week's grace for past_due.
func TestCatalog() *billing.Catalog {
	return &billing.Catalog{
		Limits: map[billing.Plan]billing.Limits{
			billing.Free:       {Seats: 1000, Projects: 1000, StorageBytes: 1 << 30},
			billing.Pro:        {Seats: 5000, Projects: 5000, StorageBytes: 10 << 30},
			billing.Enterprise: {Seats: billing.Unlimited, Projects: billing.Unlimited, StorageBytes: billing.Unlimited},
		},
		Prices:       map[string]billing.Plan{"price_pro": billing.Pro, "price_enterprise": billing.Enterprise},
		Checkout:     map[billing.Plan]string{billing.Pro: "price_pro", billing.Enterprise: "price_enterprise"},
		PastDueGrace: 7 * 24 * time.Hour,
	}
}

func billingConfig(bc handlers.BillingConfig) handlers.BillingConfig {
	if bc.Catalog == nil {
		bc.Catalog = TestCatalog()
	}
	if bc.WebhookSecrets == nil {
		bc.WebhookSecrets = []string{WebhookSecret}
	}
	if bc.WebhookTolerance == 0 {
		bc.WebhookTolerance = 300 * time.Second
	}
	if bc.WebhookMaxBytes == 0 {
		bc.WebhookMaxBytes = 256 << 10
	}
	if bc.SuccessURL == "" {
		bc.SuccessURL, bc.CancelURL, bc.ReturnURL = "https://app.test/billing?checkout=success", "https://app.test/billing?checkout=canceled", "https://app.test/billing"
	}
	return bc
}

// FileDefaults are the file settings tests run with, unless Options.Files says otherwise.
var FileDefaults = handlers.FilesConfig{
	MaxBytes: 100 << 20, AllowedTypes: files.DefaultAllowedTypes, URLTTL: 5 * time.Minute,
	TransferTimeout: time.Hour, IdleTimeout: time.Minute, MaxUploadsPerTenant: 64,
}

func fileConfig(t testing.TB, fc handlers.FilesConfig) handlers.FilesConfig {
	t.Helper()
	d := FileDefaults
	if fc.Store == nil {
		dir, err := blob.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fc.Store = dir
	}
	if fc.MaxBytes == 0 {
		fc.MaxBytes = d.MaxBytes
	}
	if fc.AllowedTypes == nil {
		fc.AllowedTypes = d.AllowedTypes
	}
	if fc.URLTTL == 0 {
		fc.URLTTL = d.URLTTL
	}
	if fc.TransferTimeout == 0 {
		fc.TransferTimeout = d.TransferTimeout
	}
	if fc.IdleTimeout == 0 {
		fc.IdleTimeout = d.IdleTimeout
	}
	if fc.MaxUploadsPerTenant == 0 {
		fc.MaxUploadsPerTenant = d.MaxUploadsPerTenant
	}
	if fc.Signer.Zero() {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		fc.Signer = files.NewSigner(key)
	}
	return fc
}

// Peer starts another server instance on the same database, as a second replica behind a load
// balancer would run: its own pool and, with opts.Realtime, its own relay and LISTEN
// connection, and the same signing keys, so tokens either instance issues work on both.
// opts.Pool and opts.Keys are ignored; without opts.Files.Store it shares e's file settings.
func (e *Env) Peer(t testing.TB, opts Options) *Env {
	t.Helper()
	opts.Pool, opts.Keys = nil, e.Issuer.Keys()
	if opts.Files.Store == nil {
		opts.Files = e.Files // one store behind both, as replicas share one
	}
	return NewWithOptions(t, opts)
}

// sendBufferListener sets the send buffer of the connections it accepts.
type sendBufferListener struct {
	net.Listener
	size int
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		if err := tc.SetWriteBuffer(l.size); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, err
}

// ClientFrom is a generated client, validating like Client, whose connections come from the
// local address ip (any of 127.0.0.0/8 works on loopback). The server takes the peer address as
// the client IP, so this is how a test speaks from several addresses.
func (e *Env) ClientFrom(ip string) *api.ClientWithResponses {
	e.t.Helper()
	local := net.ParseIP(ip)
	if local == nil {
		e.t.Fatalf("ClientFrom(%q): not an IP address", ip)
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
	tr := &http.Transport{DialContext: dialer.DialContext}
	e.t.Cleanup(tr.CloseIdleConnections)
	client, err := api.NewClientWithResponses(e.URL, api.WithHTTPClient(&http.Client{
		Transport: &validatingTransport{t: e.t, spec: e.spec, next: tr},
	}))
	if err != nil {
		e.t.Fatalf("client: %v", err)
	}
	return client
}

// validatingTransport checks each response against the spec. Error responses to requests outside
// the spec (unknown paths, wrong methods) must still be problem documents.
type validatingTransport struct {
	t    testing.TB
	spec *contract.Spec
	next http.RoundTripper
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))

	if resp.Header.Get("X-Request-Id") == "" {
		v.t.Errorf("%s %s: response has no X-Request-Id", req.Method, req.URL.Path)
	}
	if _, _, _, rerr := v.spec.FindRoute(req); rerr != nil {
		// Outside the spec only the ops pages (/docs, /metrics, the spec files) may succeed;
		// every error there must still be a problem document.
		if resp.StatusCode < 400 {
			return resp, nil
		}
		if err := checkProblem(resp, body); err != "" {
			v.t.Errorf("%s %s (no such operation): %s", req.Method, req.URL.Path, err)
		}
		return resp, nil
	}
	if err := v.spec.ValidateResponse(req.Context(), req, resp.StatusCode, resp.Header, body); err != nil {
		v.t.Errorf("%s %s: response %d breaks the contract: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

func checkProblem(resp *http.Response, body []byte) string {
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		return "content type " + ct + ", want application/problem+json"
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		return "body is not a problem: " + err.Error()
	}
	if p.Status != resp.StatusCode || p.Type == "" || p.Title == "" {
		return "problem document is incomplete: " + string(body)
	}
	return ""
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Reset forgets the records written so far; a long fuzz run calls it before each input so the
// buffer stays small and Lines holds that input's records only.
func (b *SyncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// Lines returns the JSON log records written so far.
func (b *SyncBuffer) Lines() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// Bearer authenticates a generated-client call with token.
func Bearer(token string) api.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// Account is a tenant created through the API, with its owner signed in.
type Account struct {
	Slug     string
	Email    string
	Password string
	Tenant   api.Tenant
	Owner    api.User
	Tokens   api.TokenPair
}

// Signup creates a fresh tenant with a unique slug through POST /v1/auth/signup.
func (e *Env) Signup(t testing.TB) Account {
	t.Helper()
	a := Account{Slug: "t-" + randomSuffix(), Email: "owner@example.test", Password: "correct horse battery"}
	resp, err := e.Client.SignupWithResponse(context.Background(), api.SignupRequest{
		TenantName: "Tenant " + a.Slug, TenantSlug: a.Slug, Email: openapi_types.Email(a.Email), Password: a.Password, Name: "Owner",
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.JSON201 == nil {
		t.Fatalf("signup: %d %s", resp.StatusCode(), resp.Body)
	}
	a.Tenant, a.Owner, a.Tokens = resp.JSON201.Tenant, resp.JSON201.User, resp.JSON201.Tokens
	return a
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// AddUser creates an active user with the account's password in its tenant and returns the
// id. It writes the row through the tenancy helper, not POST /v1/users: a fixture that needs
// no admin's token and leaves no audit entry. Tests of user creation use the API.
func (e *Env) AddUser(t testing.TB, a Account, email string, role api.UserRole) uuid.UUID {
	t.Helper()
	hash, err := password.Hash(a.Password, FastPassword)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	err = e.DB.Write(context.Background(), tenancy.Scope{Tenant: a.Tenant.Id}, func(tx *tenancy.Tx) error {
		q := tx.Q
		_, err := q.CreateUser(context.Background(), db.CreateUserParams{
			TenantID: a.Tenant.Id, ID: id, Email: email, Name: email, Role: string(role), Status: "active", PasswordHash: &hash,
		})
		return err
	})
	if err != nil {
		t.Fatalf("add user: %v", err)
	}
	return id
}

// Login signs in through the API and fails the test unless it succeeds.
func (e *Env) Login(t testing.TB, slug, email, pw string) api.TokenPair {
	t.Helper()
	resp, err := e.Client.LoginWithResponse(context.Background(), api.LoginRequest{TenantSlug: slug, Email: email, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if resp.JSON200 == nil {
		t.Fatalf("login %s/%s: %d %s", slug, email, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON200
}
