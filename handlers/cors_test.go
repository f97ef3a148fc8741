package handlers_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker/tasker/handlers/apitest"
)

const (
	allowedOrigin    = "https://app.example.test"
	disallowedOrigin = "https://evil.example.test"
)

// request sends method path with headers through the validating client.
func request(t *testing.T, env *apitest.Env, method, path string, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, env.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// headerList is the comma-separated values of a response header, lower-cased.
func headerList(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, strings.ToLower(part))
			}
		}
	}
	return out
}

func preflight(origin, method, headers string) map[string]string {
	return map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
}

func TestCORSPreflightFromAllowedOriginIsAnsweredWithoutAuthentication(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{CORSAllowedOrigins: []string{allowedOrigin}})
	// Browsers list the request headers lower-cased, sorted and comma-separated.
	resp := request(t, env, http.MethodOptions, "/v1/tasks/"+uuid.NewString(),
		preflight(allowedOrigin, "PATCH", "authorization,content-type,idempotency-key,if-match,x-request-id"))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		t.Fatalf("preflight: %d (WWW-Authenticate %q); want 2xx", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, allowedOrigin)
	}
	if got := headerList(resp.Header, "Access-Control-Allow-Methods"); !slices.Contains(got, "patch") {
		t.Errorf("Access-Control-Allow-Methods %v lacks PATCH", got)
	}
	allowed := headerList(resp.Header, "Access-Control-Allow-Headers")
	for _, h := range []string{"authorization", "content-type", "if-match", "idempotency-key", "x-request-id"} {
		if !slices.Contains(allowed, h) {
			t.Errorf("Access-Control-Allow-Headers %v lacks %s", allowed, h)
		}
	}
	if !slices.Contains(headerList(resp.Header, "Vary"), "origin") {
		t.Errorf("Vary %v lacks Origin", resp.Header.Values("Vary"))
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("preflight: X-Content-Type-Options %q, want nosniff like every response", got)
	}
	// Every method the API uses passes; others do not.
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		r := request(t, env, http.MethodOptions, "/v1/me", preflight(allowedOrigin, m, "authorization"))
		if r.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
			t.Errorf("preflight for %s: not allowed", m)
		}
	}
	r := request(t, env, http.MethodOptions, "/v1/me", preflight(allowedOrigin, "PATCH", "x-unknown"))
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight with an unlisted request header was allowed")
	}
}

func TestCORSActualRequestExposesTheAPIHeaders(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{CORSAllowedOrigins: []string{allowedOrigin}})
	a := env.Signup(t)
	resp := request(t, env, http.MethodGet, "/v1/me", map[string]string{"Origin": allowedOrigin, "Authorization": "Bearer " + a.Tokens.AccessToken})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/me: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != allowedOrigin {
		t.Errorf("Access-Control-Allow-Origin %q, want %q", got, allowedOrigin)
	}
	exposed := headerList(resp.Header, "Access-Control-Expose-Headers")
	for _, h := range []string{"etag", "x-request-id", "idempotent-replayed", "retry-after", "location"} {
		if !slices.Contains(exposed, h) {
			t.Errorf("Access-Control-Expose-Headers %v lacks %s", exposed, h)
		}
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("credentials allowed: the API takes bearer tokens, not cookies")
	}
	if !slices.Contains(headerList(resp.Header, "Vary"), "origin") {
		t.Errorf("Vary %v lacks Origin", resp.Header.Values("Vary"))
	}
	// Problems (here a 401) carry the CORS headers too, so the browser lets the client read them.
	unauth := request(t, env, http.MethodGet, "/v1/me", map[string]string{"Origin": allowedOrigin})
	if unauth.StatusCode != http.StatusUnauthorized || unauth.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Errorf("401 without a token: %d, Access-Control-Allow-Origin %q", unauth.StatusCode, unauth.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestCORSIgnoresOriginsNotAllowed(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{CORSAllowedOrigins: []string{allowedOrigin}})
	a := env.Signup(t)
	for _, origin := range []string{disallowedOrigin, "https://app.example.test.evil.test", "http://app.example.test", "null"} {
		resp := request(t, env, http.MethodGet, "/v1/me", map[string]string{"Origin": origin, "Authorization": "Bearer " + a.Tokens.AccessToken})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/me from %s: %d; the API still answers, only without CORS", origin, resp.StatusCode)
		}
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Expose-Headers"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("GET from %s: %s %q", origin, h, v)
			}
		}
		pre := request(t, env, http.MethodOptions, "/v1/tasks/"+uuid.NewString(), preflight(origin, "PATCH", "authorization"))
		if v := pre.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q", origin, v)
		}
	}
}

func TestCORSIsOffByDefault(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	resp := request(t, env, http.MethodGet, "/v1/me", map[string]string{"Origin": allowedOrigin, "Authorization": "Bearer " + a.Tokens.AccessToken})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/me: %d", resp.StatusCode)
	}
	pre := request(t, env, http.MethodOptions, "/v1/me", preflight(allowedOrigin, "GET", "authorization"))
	for _, r := range []*http.Response{resp, pre} {
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Expose-Headers"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s %s with no origins configured: %s %q", r.Request.Method, r.Request.URL.Path, h, v)
			}
		}
	}
}
