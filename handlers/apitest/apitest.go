// Package apitest starts the real HTTP stack on a real listener against the test package's own
// database and hands back the generated client, so REST is tested the way integrators call it.
// Every response is checked against openapi/openapi.yaml; one the spec does not describe fails
// the test.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/internal/contract"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/testdb"
)

// FastPassword keeps argon2id cheap in tests; production parameters are in config.
var FastPassword = password.Params{Memory: 1024, Time: 1, Threads: 1}

// Env is one running API server.
type Env struct {
	URL    string
	Client *api.ClientWithResponses
	// HTTP is a plain client with the same response validation, for requests the generated
	// client cannot make (unknown routes, wrong methods).
	HTTP *http.Client
	DB   *tenancy.DB
	Pool *pgxpool.Pool
	Logs *SyncBuffer
}

// Options adjust the server under test.
type Options struct {
	MaxBodyBytes int64
	// Pool replaces the package database's application pool.
	Pool *pgxpool.Pool
}

// New starts a server for t with default options.
func New(t *testing.T) *Env { return NewWithOptions(t, Options{}) }

// NewWithOptions starts a server for t; it stops when t ends.
func NewWithOptions(t *testing.T, opts Options) *Env {
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(database.NewPoolCollector(pool))
	h, err := handlers.NewHTTPHandler(ctx, handlers.Config{
		DB:           tenancy.New(pool),
		Logger:       slog.New(slog.NewJSONHandler(logOut, nil)),
		Registry:     reg,
		Password:     FastPassword,
		MaxBodyBytes: opts.MaxBodyBytes,
	})
	if err != nil {
		t.Fatalf("build handler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	spec, err := contract.Load(ctx)
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	httpClient := &http.Client{Transport: &validatingTransport{t: t, spec: spec, next: http.DefaultTransport}}
	client, err := api.NewClientWithResponses(srv.URL, api.WithHTTPClient(httpClient))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return &Env{URL: srv.URL, Client: client, HTTP: httpClient, DB: tenancy.New(pool), Pool: pool, Logs: logs}
}

// validatingTransport checks each response against the spec. Error responses to requests outside
// the spec (unknown paths, wrong methods) must still be problem documents.
type validatingTransport struct {
	t    *testing.T
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
