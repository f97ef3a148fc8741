package handlers_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// wantHeaders fails unless h has each header with exactly the value.
func wantHeaders(t *testing.T, what string, h http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s %q, want %q", what, k, got, v)
		}
	}
}

var private = map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

func TestTokenAndSecretResponsesAreNotStored(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	su, err := env.Client.SignupWithResponse(bg, validSignup(slug("hdr")))
	if err != nil || su.JSON201 == nil {
		t.Fatalf("signup: %v %s", err, su.Body)
	}
	wantHeaders(t, "signup", su.HTTPResponse.Header, private)
	owner := apitest.Bearer(su.JSON201.Tokens.AccessToken)

	login, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: su.JSON201.Tenant.Slug, Email: string(su.JSON201.User.Email), Password: validSignup("x").Password})
	if err != nil || login.JSON200 == nil {
		t.Fatalf("login: %v %s", err, login.Body)
	}
	wantHeaders(t, "login", login.HTTPResponse.Header, private)

	ref, err := env.Client.RefreshWithResponse(bg, api.RefreshRequest{RefreshToken: login.JSON200.RefreshToken})
	if err != nil || ref.JSON200 == nil {
		t.Fatalf("refresh: %v %s", err, ref.Body)
	}
	wantHeaders(t, "refresh", ref.HTTPResponse.Header, private)

	key, err := env.Client.CreateAPIKeyWithResponse(bg, api.APIKeyCreate{Name: "ci", Role: api.UserRoleViewer}, owner)
	if err != nil || key.JSON201 == nil {
		t.Fatalf("create API key: %v %s", err, key.Body)
	}
	wantHeaders(t, "createAPIKey", key.HTTPResponse.Header, private)

	idem := "invite-" + uuid.NewString()
	invite := func() *api.CreateUserResponse {
		resp, err := env.Client.CreateUserWithResponse(bg, &api.CreateUserParams{IdempotencyKey: &idem}, api.UserCreate{Email: "invitee@example.test", Name: "Invitee", Role: api.UserRoleMember}, owner)
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("create user: %v %s", err, resp.Body)
		}
		return resp
	}
	user := invite()
	if user.JSON201.InviteToken == nil {
		t.Fatalf("create user without password: no invite token: %s", user.Body)
	}
	wantHeaders(t, "createUser", user.HTTPResponse.Header, private)
	// A replay is served from the idempotency store, past the handler: it has the same headers.
	replay := invite()
	if replay.HTTPResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("second create with the same key was not a replay")
	}
	wantHeaders(t, "createUser replay", replay.HTTPResponse.Header, private)

	acc, err := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: *user.JSON201.InviteToken, Password: "chosen password"})
	if err != nil || acc.JSON200 == nil {
		t.Fatalf("accept invite: %v %s", err, acc.Body)
	}
	wantHeaders(t, "acceptInvite", acc.HTTPResponse.Header, private)
}

func TestAPIResponsesAndProblemsAreNotStoredOrSniffed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	me, err := env.Client.GetMeWithResponse(bg, w.as(api.UserRoleViewer))
	if err != nil || me.JSON200 == nil {
		t.Fatalf("me: %v %s", err, me.Body)
	}
	wantHeaders(t, "GET /v1/me", me.HTTPResponse.Header, private)

	idem := "task-" + uuid.NewString()
	for _, what := range []string{"createTask", "createTask replay"} {
		resp, err := env.Client.CreateTaskWithResponse(bg, w.project.Id, &api.CreateTaskParams{IdempotencyKey: &idem}, api.TaskCreate{Title: "t"}, w.as(api.UserRoleMember))
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("%s: %v %s", what, err, resp.Body)
		}
		wantHeaders(t, what, resp.HTTPResponse.Header, private)
	}

	for _, path := range []string{"/v1/me", "/v1/nope", "/nope"} { // 401, 404 from the validator, 404 from the mux
		resp, body := get(t, env, http.MethodGet, path)
		problemOf(t, resp, body)
		wantHeaders(t, "GET "+path, resp.Header, private)
	}
	resp, _ := get(t, env, http.MethodGet, "/healthz")
	wantHeaders(t, "GET /healthz", resp.Header, private)

	// The public keys may be cached for a while.
	resp, _ = get(t, env, http.MethodGet, "/.well-known/jwks.json")
	wantHeaders(t, "GET /.well-known/jwks.json", resp.Header, map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"})
}

var inlineBlock = regexp.MustCompile(`(?is)<(script|style)\b([^>]*)>(.*?)</(?:script|style)\s*>`)

func TestDocsHaveAStrictContentSecurityPolicy(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	resp, body := get(t, env, http.MethodGet, "/docs/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/docs/: %d", resp.StatusCode)
	}
	wantHeaders(t, "/docs/", resp.Header, map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"})
	csp := resp.Header.Get("Content-Security-Policy")
	directives := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		if f := strings.Fields(d); len(f) > 0 {
			directives[f[0]] = f[1:]
		}
	}
	for name, want := range map[string]string{"default-src": "'self'", "frame-ancestors": "'none'", "object-src": "'none'", "base-uri": "'none'"} {
		if got := directives[name]; len(got) != 1 || got[0] != want {
			t.Errorf("CSP %s %v, want %s (policy %q)", name, got, want, csp)
		}
	}
	for _, weak := range []string{"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:"} {
		for _, src := range strings.Fields(csp) {
			if strings.TrimSuffix(src, ";") == weak {
				t.Errorf("CSP allows %s: %q", weak, csp)
			}
		}
	}
	// Each inline script and style of the page is allowed by its hash, and nothing else inline is.
	inline := 0
	for _, m := range inlineBlock.FindAllStringSubmatch(string(body), -1) {
		if strings.Contains(strings.ToLower(m[2]), "src=") {
			continue
		}
		inline++
		sum := sha256.Sum256([]byte(m[3]))
		hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		dir := strings.ToLower(m[1]) + "-src"
		found := false
		for _, src := range directives[dir] {
			found = found || src == hash
		}
		if !found {
			t.Errorf("inline %s %.60q... is not allowed by %s %v", m[1], strings.TrimSpace(m[3]), dir, directives[dir])
		}
	}
	if inline == 0 {
		t.Errorf("found no inline script or style in /docs/; the page changed shape:\n%.500s", body)
	}
	// With nosniff, the browser runs scripts and applies styles only with the right types.
	for asset, ctype := range map[string]string{"/docs/swagger-ui-bundle.js": "javascript", "/docs/swagger-ui.css": "text/css"} {
		resp, _ := get(t, env, http.MethodGet, asset)
		if !strings.Contains(resp.Header.Get("Content-Type"), ctype) || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: Content-Type %q, X-Content-Type-Options %q", asset, resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"))
		}
	}
}
