package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	tasker "github.com/tasker/tasker"
	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/testdb"
)

func get(t *testing.T, env *apitest.Env, method, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, env.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func problemOf(t *testing.T, resp *http.Response, body []byte) api.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json; body %s", ct, body)
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnknownRouteIsProblemNotFound(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	for _, path := range []string{"/nope", "/v1/nope", "/v1/auth/signup/extra", "/v2/auth/signup"} {
		resp, body := get(t, env, http.MethodGet, path)
		p := problemOf(t, resp, body)
		if resp.StatusCode != http.StatusNotFound || p.Status != 404 || p.Instance == nil || *p.Instance != path {
			t.Errorf("GET %s: %d %s; want a 404 problem for the path", path, resp.StatusCode, body)
		}
	}
}

func TestWrongMethodIsProblemMethodNotAllowed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		resp, body := get(t, env, m, "/v1/auth/signup")
		p := problemOf(t, resp, body)
		if resp.StatusCode != http.StatusMethodNotAllowed || p.Status != 405 || resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s /v1/auth/signup: %d Allow=%q %s; want 405 with Allow: POST", m, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	resp, body := get(t, env, http.MethodPost, "/healthz")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /healthz: %d %s; want 405 with Allow: GET, HEAD", resp.StatusCode, body)
	}
}

func TestRequestIDIsEchoedOrGenerated(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	ctx := context.Background()
	resp, err := env.Client.GetHealthz(ctx, func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-Request-Id", "trace-abc.123")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "trace-abc.123" {
		t.Errorf("a sane client id came back as %q", got)
	}
	resp, err = env.Client.GetHealthz(ctx, func(_ context.Context, r *http.Request) error {
		r.Header.Set("X-Request-Id", "evil\tid with spaces")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, "evil") {
		t.Errorf("an unsafe client id came back as %q; want a generated one", got)
	}
	// Errors carry the id in the problem too.
	r2, body := get(t, env, http.MethodGet, "/missing")
	if p := problemOf(t, r2, body); p.RequestId == nil || *p.RequestId != r2.Header.Get("X-Request-Id") {
		t.Errorf("problem request_id %v does not match the header %q", p.RequestId, r2.Header.Get("X-Request-Id"))
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	ctx := context.Background()
	h, err := env.Client.GetHealthzWithResponse(ctx)
	if err != nil || h.JSON200 == nil || h.JSON200.Status != api.Ok {
		t.Fatalf("healthz: %v %v", err, h)
	}
	r, err := env.Client.GetReadyzWithResponse(ctx)
	if err != nil || r.JSON200 == nil || r.JSON200.Status != api.Ok {
		t.Fatalf("readyz: %v %s", err, r.Body)
	}
}

func TestReadinessFailsWhenTheDatabaseIsGone(t *testing.T) {
	t.Parallel()
	pool, err := database.Open(context.Background(), testdb.Get(t).AppURL, database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := apitest.NewWithOptions(t, apitest.Options{Pool: pool})
	pool.Close()
	r, err := env.Client.GetReadyzWithResponse(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode() != http.StatusServiceUnavailable || problemIn(r.Body) == nil {
		t.Fatalf("readyz with a closed pool: %d %s; want a 503 problem", r.StatusCode(), r.Body)
	}
	// Liveness does not depend on the database.
	h, err := env.Client.GetHealthzWithResponse(context.Background())
	if err != nil || h.StatusCode() != http.StatusOK {
		t.Fatalf("healthz with a closed pool: %v %d", err, h.StatusCode())
	}
}

func TestSpecsAndDocsAreServedFromTheBinary(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	resp, body := get(t, env, http.MethodGet, "/openapi.yaml")
	if resp.StatusCode != 200 || !bytes.Equal(body, tasker.OpenAPISpec) {
		t.Errorf("/openapi.yaml: %d, %d bytes; want the embedded spec", resp.StatusCode, len(body))
	}
	resp, body = get(t, env, http.MethodGet, "/asyncapi.yaml")
	if resp.StatusCode != 200 || !bytes.Equal(body, tasker.AsyncAPISpec) {
		t.Errorf("/asyncapi.yaml: %d; want the embedded document", resp.StatusCode)
	}
	resp, body = get(t, env, http.MethodGet, "/docs/")
	html := string(body)
	if resp.StatusCode != 200 || !strings.Contains(html, "swagger-ui") || !strings.Contains(html, `"/openapi.yaml"`) {
		t.Fatalf("/docs/: %d %.200s", resp.StatusCode, html)
	}
	// Every script and stylesheet comes from this server, not a CDN.
	for _, asset := range []string{"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/swagger-ui-standalone-preset.js"} {
		if !strings.Contains(html, asset) {
			t.Errorf("/docs/ does not load %s", asset)
			continue
		}
		resp, body := get(t, env, http.MethodGet, asset)
		if resp.StatusCode != 200 || len(body) < 1000 {
			t.Errorf("%s: %d, %d bytes; want the embedded asset", asset, resp.StatusCode, len(body))
		}
	}
	for _, cdn := range []string{"unpkg.com", "cdn.jsdelivr", "cdnjs"} {
		if strings.Contains(html, cdn) {
			t.Errorf("/docs/ references %s", cdn)
		}
	}
}

func TestMetricsCountRequestsByRouteAndStatus(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := env.Client.GetHealthzWithResponse(ctx); err != nil {
			t.Fatal(err)
		}
	}
	get(t, env, http.MethodGet, "/v1/does-not-exist")
	_, body := get(t, env, http.MethodGet, "/metrics")
	text := string(body)
	for _, want := range []string{
		`tasker_http_requests_total{method="GET",route="GET /healthz",status="200"} 3`,
		`tasker_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`tasker_http_request_duration_seconds_bucket{method="GET",route="GET /healthz",status="200",le="+Inf"} 3`,
		`tasker_db_pool_max_connections `,
		`tasker_db_pool_acquired_connections `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAccessLogRecordsRequestAndTenant(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	resp, err := env.Client.SignupWithResponse(context.Background(), validSignup(slug("log")))
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("signup: %v", err)
	}
	id := resp.HTTPResponse.Header.Get("X-Request-Id")
	for _, rec := range env.Logs.Lines() {
		if rec["msg"] != "request" || rec["request_id"] != id {
			continue
		}
		if rec["method"] != "POST" || rec["path"] != "/v1/auth/signup" || rec["status"] != float64(201) ||
			rec["tenant"] != resp.JSON201.Tenant.Id.String() || rec["route"] != "POST /v1/auth/signup" {
			t.Errorf("access log record %v", rec)
		}
		if _, ok := rec["duration_ms"].(float64); !ok {
			t.Errorf("access log has no duration: %v", rec)
		}
		return
	}
	t.Fatalf("no access log record for request %s", id)
}

func TestPathsTheMuxDoesNotKnowAreProblems(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	for _, path := range []string{"/v1/teams/", "/v1/projects/"} {
		req, _ := http.NewRequest(http.MethodGet, env.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+w.tokens[api.UserRoleViewer])
		resp, err := env.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		// No operation has a trailing slash: 404, as a problem document.
		wantStatus(t, "GET "+path, resp.StatusCode, body, http.StatusNotFound)
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("GET %s: Content-Type %q, want application/problem+json", path, ct)
		}
	}
}
