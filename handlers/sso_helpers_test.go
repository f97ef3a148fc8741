package handlers_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// ssoProvider is an OpenID provider in process (mockoidc) whose answers a test can bend: deny
// makes its sign-in page send the browser back with that error, and tamper rewrites the claims
// of the ID token it issues, then signs it with the key tamper returns (nil: its own).
type ssoProvider struct {
	*mockoidc.MockOIDC
	mu     sync.Mutex
	deny   string
	tamper func(jwt.MapClaims) *mockoidc.Keypair
	// onToken runs before the token endpoint answers, once: a test's way to act while a
	// callback waits on the provider.
	onToken func()
	// alias is a second client id the provider answers to, as a provider with two registered
	// clients (one of them an admin's) would: its ID tokens name it as their audience.
	alias string
}

func (sp *ssoProvider) setAlias(id string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.alias = id
}

func newSSOProvider(t *testing.T) *ssoProvider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	// mockoidc fills in its key's kid on first use, unsynchronised: concurrent first token
	// requests race on it. Fill it in now, before anything is served.
	if _, err := m.Keypair.KeyID(); err != nil {
		t.Fatal(err)
	}
	sp := &ssoProvider{MockOIDC: m}
	if err := m.AddMiddleware(sp.bend); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return sp
}

func (sp *ssoProvider) setDeny(e string) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.deny = e
}

func (sp *ssoProvider) setOnToken(f func()) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.onToken = f
}

func (sp *ssoProvider) setTamper(f func(jwt.MapClaims) *mockoidc.Keypair) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.tamper = f
}

func (sp *ssoProvider) bend(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sp.mu.Lock()
		deny, tamper, onToken, alias := sp.deny, sp.tamper, sp.onToken, sp.alias
		if r.URL.Path == mockoidc.TokenEndpoint {
			sp.onToken = nil
		}
		sp.mu.Unlock()
		if onToken != nil && r.URL.Path == mockoidc.TokenEndpoint {
			onToken()
		}
		if alias != "" && r.ParseForm() == nil && r.Form.Get("client_id") == alias {
			r.Form.Set("client_id", sp.ClientID)
			if r.URL.Path == mockoidc.TokenEndpoint {
				tamper = func(c jwt.MapClaims) *mockoidc.Keypair { c["aud"] = alias; return nil }
			}
		}
		switch {
		case r.URL.Path == mockoidc.AuthorizationEndpoint && deny != "":
			_ = r.ParseForm()
			back, _ := url.Parse(r.Form.Get("redirect_uri"))
			q := back.Query()
			q.Set("error", deny)
			q.Set("error_description", "the person said no")
			q.Set("state", r.Form.Get("state"))
			back.RawQuery = q.Encode()
			http.Redirect(w, r, back.String(), http.StatusFound)
		case r.URL.Path == mockoidc.TokenEndpoint && tamper != nil:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err == nil {
				if raw, ok := body["id_token"].(string); ok {
					claims := jwt.MapClaims{}
					if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err == nil {
						key := tamper(claims)
						if key == nil {
							key = sp.Keypair
						}
						body["id_token"], _ = key.SignJWT(claims)
					}
				}
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(rec.Code)
			_ = json.NewEncoder(w).Encode(body)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// person queues who signs in next at the provider.
func (sp *ssoProvider) person(subject, email string, verified bool) {
	name, _, _ := strings.Cut(email, "@")
	sp.QueueUser(&mockoidc.MockUser{Subject: subject, Email: email, EmailVerified: verified, PreferredUsername: name})
}

// configureSSO points w's tenant at sp, allowing domains, provisioning with role.
func configureSSO(t *testing.T, env *apitest.Env, w workspace, sp *ssoProvider, role api.SSORole, passwordLogin bool, domains ...string) {
	t.Helper()
	if len(domains) == 0 {
		domains = []string{"example.test"}
	}
	secret := sp.ClientSecret
	r, err := env.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: sp.Issuer(), ClientId: sp.ClientID, ClientSecret: &secret,
		AllowedDomains: domains, DefaultRole: role, PasswordLogin: &passwordLogin}, w.as(api.UserRoleOwner))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("configure SSO: %v %s", err, r.Body)
	}
}

// browser is a person's browser: it keeps cookies and follows no redirect by itself, so each
// step of a sign-in can be looked at. Requests to the server under test go through its
// response validation; requests to the provider do not.
type browser struct {
	t   *testing.T
	env *apitest.Env
	c   *http.Client
}

func newBrowser(t *testing.T, env *apitest.Env) *browser {
	jar, _ := cookiejar.New(nil)
	ours, _ := url.Parse(env.URL)
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == ours.Host {
			return env.HTTP.Transport.RoundTrip(r)
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	return &browser{t: t, env: env, c: &http.Client{Jar: jar, Transport: rt, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// get loads u and returns the response, its body read.
func (b *browser) get(u string) (*http.Response, []byte) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// next loads u, which must redirect, and returns where to.
func (b *browser) next(u string) *url.URL {
	b.t.Helper()
	resp, body := b.get(u)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("GET %s: %d %s, want a redirect", u, resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// startURL is the sign-in link a frontend shows for slug.
func (b *browser) startURL(slug, frontend string) string {
	return b.env.URL + "/v1/auth/sso/" + slug + "/start?redirect_uri=" + url.QueryEscape(frontend)
}

// toCallback starts a sign-in at slug and goes through the provider; it returns the callback
// URL the provider sent the browser to, not yet loaded.
func (b *browser) toCallback(slug string) *url.URL {
	b.t.Helper()
	return b.next(b.next(b.startURL(slug, apitest.SSOFrontend)).String())
}

// landing is what the frontend receives: the one-time code, or the error.
type landing struct {
	code, err string
	at        *url.URL
}

// land loads the callback and reads the frontend redirect it answers with.
func (b *browser) land(callback *url.URL) landing {
	b.t.Helper()
	loc := b.next(callback.String())
	front := loc.Scheme + "://" + loc.Host + loc.Path
	if front != apitest.SSOFrontend && !strings.HasPrefix(apitest.SSOOtherFrontend, front+"?") {
		b.t.Fatalf("the sign-in ended on %s, not a frontend", loc)
	}
	return landing{code: loc.Query().Get("code"), err: loc.Query().Get("error"), at: loc}
}

// signIn runs a whole sign-in at slug and returns where it landed.
func (b *browser) signIn(slug string) landing {
	b.t.Helper()
	return b.land(b.toCallback(slug))
}

// exchange turns a landing's code into tokens, failing the test otherwise.
func exchange(t *testing.T, env *apitest.Env, code string) api.TokenPair {
	t.Helper()
	r, err := env.Client.ExchangeSSOCodeWithResponse(bg, api.SSOExchange{Code: code})
	if err != nil || r.JSON200 == nil {
		t.Fatalf("exchange %q: %v %d %s", code, err, r.StatusCode(), r.Body)
	}
	return *r.JSON200
}

// auditOf lists the tenant's audit entries with action, newest first.
func auditOf(t *testing.T, env *apitest.Env, w workspace, action string) []api.AuditEvent {
	t.Helper()
	r, err := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{Action: &action, Limit: ptr(100)}, w.as(api.UserRoleOwner))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("audit: %v %s", err, r.Body)
	}
	return r.JSON200.Items
}

// userCount is how many users w's tenant has.
func userCount(t *testing.T, env *apitest.Env, w workspace) int {
	t.Helper()
	r, err := env.Client.ListUsersWithResponse(bg, &api.ListUsersParams{Limit: ptr(200)}, w.as(api.UserRoleOwner))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("users: %v", err)
	}
	return len(r.JSON200.Items)
}
