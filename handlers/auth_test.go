package handlers_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

var bg = context.Background()

// me calls GET /v1/me with token and returns the response.
func me(t *testing.T, env *apitest.Env, token string) *api.GetMeResponse {
	t.Helper()
	resp, err := env.Client.GetMeWithResponse(bg, apitest.Bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// wantUnauthorized checks a 401 problem with a Bearer challenge naming an error code.
func wantUnauthorized(t *testing.T, what string, status int, header http.Header, p *api.Problem, body []byte) {
	t.Helper()
	if status != http.StatusUnauthorized || p == nil || p.Status != 401 {
		t.Errorf("%s: %d %s; want a 401 problem", what, status, body)
		return
	}
	if ch := header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="`) {
		t.Errorf("%s: WWW-Authenticate %q; want a Bearer challenge with an error code", what, ch)
	}
}

func refresh(t *testing.T, env *apitest.Env, token string) *api.RefreshResponse {
	t.Helper()
	resp, err := env.Client.RefreshWithResponse(bg, api.RefreshRequest{RefreshToken: token})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func auditActions(t *testing.T, env *apitest.Env, tenant uuid.UUID) []string {
	t.Helper()
	var actions []string
	err := env.DB.Write(bg, tenancy.Scope{Tenant: tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		rows, err := q.ListAuditEvents(bg, db.ListAuditEventsParams{Lim: 100})
		for _, r := range rows {
			actions = append(actions, r.Action)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return actions
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSignupReturnsAWorkingTokenPair(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	if a.Tokens.TokenType != api.Bearer || a.Tokens.ExpiresIn != 900 || !strings.HasPrefix(a.Tokens.RefreshToken, "tkr_") {
		t.Errorf("token pair %+v", a.Tokens)
	}
	m := me(t, env, a.Tokens.AccessToken)
	if m.JSON200 == nil {
		t.Fatalf("me: %d %s", m.StatusCode(), m.Body)
	}
	if m.JSON200.User.Id != a.Owner.Id || m.JSON200.Tenant.Id != a.Tenant.Id || m.JSON200.Role != api.UserRoleOwner || m.JSON200.AuthMethod != api.AccessToken {
		t.Errorf("me = %+v", m.JSON200)
	}
	if !contains(auditActions(t, env, a.Tenant.Id), "tenant.signup") {
		t.Error("sign-up is not in the audit log")
	}
}

func TestLoginStartsASession(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	pair := env.Login(t, a.Slug, "OWNER@example.test", a.Password) // email is case-insensitive
	m := me(t, env, pair.AccessToken)
	if m.JSON200 == nil || m.JSON200.User.Id != a.Owner.Id {
		t.Fatalf("me after login: %d %s", m.StatusCode(), m.Body)
	}
	claims, _, err := jwt.NewParser().ParseUnverified(pair.AccessToken, &tokens.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	c := claims.Claims.(*tokens.Claims)
	if c.Subject != a.Owner.Id.String() || c.TenantID != a.Tenant.Id || c.Role != "owner" || c.SessionID == uuid.Nil ||
		c.Issuer != apitest.Issuer || c.Audience[0] != apitest.Audience || c.ID == "" || c.IssuedAt == nil || claims.Header["kid"] == nil {
		t.Errorf("access token claims %+v header %v", c, claims.Header)
	}
	if !contains(auditActions(t, env, a.Tenant.Id), "auth.login") {
		t.Error("the login is not in the audit log")
	}
}

func TestLoginFailuresAreIndistinguishable(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	attempts := map[string]api.LoginRequest{
		"wrong password": {TenantSlug: a.Slug, Email: a.Email, Password: "wrong password!"},
		"unknown email":  {TenantSlug: a.Slug, Email: "nobody@example.test", Password: a.Password},
		"unknown tenant": {TenantSlug: "no-such-tenant-" + a.Slug[2:], Email: a.Email, Password: a.Password},
	}
	var bodies []string
	for name, req := range attempts {
		resp, err := env.Client.LoginWithResponse(bg, req)
		if err != nil {
			t.Fatal(err)
		}
		wantUnauthorized(t, name, resp.StatusCode(), resp.HTTPResponse.Header, problemIn(resp.Body), resp.Body)
		p := *problemIn(resp.Body)
		p.RequestId = nil
		b, _ := json.Marshal(p)
		bodies = append(bodies, string(b)+resp.HTTPResponse.Header.Get("WWW-Authenticate"))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("login failures differ:\n%s\n%s", bodies[0], b)
		}
	}
	if !contains(auditActions(t, env, a.Tenant.Id), "auth.login_failed") {
		t.Error("failed logins are not in the audit log")
	}
}

func TestInactiveUserCannotLoginOrRefresh(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	member := env.AddUser(t, a, "member@example.test", api.UserRoleMember)
	pair := env.Login(t, a.Slug, "member@example.test", a.Password)
	// Only the status changes (no revocation, as DELETE /v1/users would do): refresh and login
	// must check the user by themselves.
	err := env.DB.Tx(bg, tenancy.Scope{Tenant: a.Tenant.Id}, func(tx pgx.Tx) error {
		_, err := tx.Exec(bg, "UPDATE users SET status = 'deactivated' WHERE id = $1", member)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r := refresh(t, env, pair.RefreshToken)
	wantUnauthorized(t, "refresh of a deactivated user", r.StatusCode(), r.HTTPResponse.Header, problemIn(r.Body), r.Body)
	l, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: a.Slug, Email: "member@example.test", Password: a.Password})
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthorized(t, "login of a deactivated user", l.StatusCode(), l.HTTPResponse.Header, problemIn(l.Body), l.Body)
}

func TestRefreshRotatesTheToken(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	r1 := refresh(t, env, a.Tokens.RefreshToken)
	if r1.JSON200 == nil {
		t.Fatalf("refresh: %d %s", r1.StatusCode(), r1.Body)
	}
	if r1.JSON200.RefreshToken == a.Tokens.RefreshToken {
		t.Fatal("refresh returned the same refresh token")
	}
	if m := me(t, env, r1.JSON200.AccessToken); m.JSON200 == nil || m.JSON200.User.Id != a.Owner.Id {
		t.Fatalf("the refreshed access token does not work: %s", m.Body)
	}
	r2 := refresh(t, env, r1.JSON200.RefreshToken)
	if r2.JSON200 == nil {
		t.Fatalf("second refresh: %d %s", r2.StatusCode(), r2.Body)
	}
}

func TestRefreshReuseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	cfg := apitest.TestSessions
	cfg.Grace = time.Millisecond
	env := apitest.NewWithOptions(t, apitest.Options{Sessions: &cfg})
	a := env.Signup(t)
	r1 := refresh(t, env, a.Tokens.RefreshToken)
	if r1.JSON200 == nil {
		t.Fatalf("refresh: %s", r1.Body)
	}
	r2 := refresh(t, env, r1.JSON200.RefreshToken)
	if r2.JSON200 == nil {
		t.Fatalf("refresh: %s", r2.Body)
	}
	time.Sleep(20 * time.Millisecond) // past the grace window

	// The thief (or the victim) presents the first, long-retired token.
	reuse := refresh(t, env, a.Tokens.RefreshToken)
	wantUnauthorized(t, "reused token", reuse.StatusCode(), reuse.HTTPResponse.Header, problemIn(reuse.Body), reuse.Body)
	// Now the newest token of the family fails too.
	newest := refresh(t, env, r2.JSON200.RefreshToken)
	wantUnauthorized(t, "newest token after reuse", newest.StatusCode(), newest.HTTPResponse.Header, problemIn(newest.Body), newest.Body)
	if !contains(auditActions(t, env, a.Tenant.Id), "auth.refresh_reuse_detected") {
		t.Error("the reuse is not in the audit log")
	}
	// Other sessions of the user are untouched.
	other := env.Login(t, a.Slug, a.Email, a.Password)
	if r := refresh(t, env, other.RefreshToken); r.JSON200 == nil {
		t.Errorf("an unrelated session was revoked: %s", r.Body)
	}
}

func TestConcurrentRefreshesInTheGraceWindowShareOneSuccessor(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	const n = 4
	results := make([]*api.RefreshResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := env.Client.RefreshWithResponse(bg, api.RefreshRequest{RefreshToken: a.Tokens.RefreshToken})
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = resp
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r == nil || r.JSON200 == nil {
			t.Fatalf("refresh %d failed: %v", i, r)
		}
		if r.JSON200.RefreshToken != results[0].JSON200.RefreshToken {
			t.Fatalf("concurrent refreshes got different successors")
		}
	}
	// The shared successor works, once, and the family is still alive.
	next := refresh(t, env, results[0].JSON200.RefreshToken)
	if next.JSON200 == nil {
		t.Fatalf("the shared successor does not work: %s", next.Body)
	}
}

func TestRefreshRejectsBadTokens(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	real := a.Tokens.RefreshToken
	otherSecret := tokens.NewOpaque(tokens.RefreshToken, a.Tenant.Id, uuid.New()).String()
	cases := map[string]string{
		"garbage":                "not-a-token",
		"unknown id":             otherSecret,
		"right id, wrong secret": real[:47] + otherSecret[47:],
		"an API key":             "tka_" + real[4:],
		"access token":           a.Tokens.AccessToken[:min(len(a.Tokens.AccessToken), 200)],
	}
	for name, tok := range cases {
		r := refresh(t, env, tok)
		wantUnauthorized(t, name, r.StatusCode(), r.HTTPResponse.Header, problemIn(r.Body), r.Body)
	}
	// A wrong secret for a real id must not have revoked the real session.
	if r := refresh(t, env, real); r.JSON200 == nil {
		t.Fatalf("the real token stopped working after a guess: %s", r.Body)
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	resp, err := env.Client.LogoutWithResponse(bg, api.RefreshRequest{RefreshToken: a.Tokens.RefreshToken})
	if err != nil || resp.StatusCode() != http.StatusNoContent {
		t.Fatalf("logout: %v %d %s", err, resp.StatusCode(), resp.Body)
	}
	r := refresh(t, env, a.Tokens.RefreshToken)
	wantUnauthorized(t, "refresh after logout", r.StatusCode(), r.HTTPResponse.Header, problemIn(r.Body), r.Body)
	if !contains(auditActions(t, env, a.Tenant.Id), "auth.logout") {
		t.Error("the logout is not in the audit log")
	}
	// Unknown and malformed tokens are accepted quietly.
	for _, tok := range []string{"junk", tokens.NewOpaque(tokens.RefreshToken, uuid.New(), uuid.New()).String()} {
		resp, err := env.Client.LogoutWithResponse(bg, api.RefreshRequest{RefreshToken: tok})
		if err != nil || resp.StatusCode() != http.StatusNoContent {
			t.Errorf("logout of %q: %v %d", tok, err, resp.StatusCode())
		}
	}
}

func TestSessionsListAndRevoke(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	second := env.Login(t, a.Slug, a.Email, a.Password)

	list, err := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(second.AccessToken))
	if err != nil || list.JSON200 == nil {
		t.Fatalf("list: %v %s", err, list.Body)
	}
	items := list.JSON200.Items
	if len(items) != 2 {
		t.Fatalf("%d sessions, want 2", len(items))
	}
	var current, other api.Session
	for _, s := range items {
		if s.Current {
			current = s
		} else {
			other = s
		}
	}
	if current.Id == uuid.Nil || other.Id == uuid.Nil || current.UserAgent == nil || current.Ip == nil {
		t.Fatalf("sessions %+v; want one current, one other, with user agent and ip", items)
	}

	// Revoke the sign-up session from the second one: its refresh token dies.
	rv, err := env.Client.RevokeSessionWithResponse(bg, other.Id, apitest.Bearer(second.AccessToken))
	if err != nil || rv.StatusCode() != http.StatusNoContent {
		t.Fatalf("revoke: %v %d %s", err, rv.StatusCode(), rv.Body)
	}
	r := refresh(t, env, a.Tokens.RefreshToken)
	wantUnauthorized(t, "refresh of a revoked session", r.StatusCode(), r.HTTPResponse.Header, problemIn(r.Body), r.Body)
	list, _ = env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(second.AccessToken))
	if len(list.JSON200.Items) != 1 || !list.JSON200.Items[0].Current {
		t.Errorf("after revoking, sessions = %+v", list.JSON200.Items)
	}
	again, _ := env.Client.RevokeSessionWithResponse(bg, other.Id, apitest.Bearer(second.AccessToken))
	if again.StatusCode() != http.StatusNotFound {
		t.Errorf("revoking twice: %d, want 404", again.StatusCode())
	}
	if !contains(auditActions(t, env, a.Tenant.Id), "session.revoke") {
		t.Error("the revocation is not in the audit log")
	}
}

func TestAnotherUsersSessionIsNotFound(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	env.AddUser(t, a, "colleague@example.test", api.UserRoleAdmin)
	colleague := env.Login(t, a.Slug, "colleague@example.test", a.Password)
	owners, _ := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(a.Tokens.AccessToken))
	if owners.JSON200 == nil || len(owners.JSON200.Items) != 1 {
		t.Fatalf("owner's sessions: %s", owners.Body)
	}
	rv, err := env.Client.RevokeSessionWithResponse(bg, owners.JSON200.Items[0].Id, apitest.Bearer(colleague.AccessToken))
	if err != nil || rv.StatusCode() != http.StatusNotFound {
		t.Fatalf("revoking a colleague's session: %d, want 404", rv.StatusCode())
	}
	if r := refresh(t, env, a.Tokens.RefreshToken); r.JSON200 == nil {
		t.Fatal("the owner's session was revoked by a colleague")
	}
}

func TestJWKSVerifiesIssuedTokens(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	set, err := env.Client.GetJWKSWithResponse(bg)
	if err != nil || set.JSON200 == nil || len(set.JSON200.Keys) == 0 {
		t.Fatalf("jwks: %v %s", err, set.Body)
	}
	// Verify the way an integrator would: find the kid, decode x, check the EdDSA signature.
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.JSON200.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || k.Kty != api.OKP || k.Alg != api.EdDSA {
			t.Fatalf("jwk %+v", k)
		}
		keys[k.Kid] = x
	}
	_, err = jwt.Parse(a.Tokens.AccessToken, func(tok *jwt.Token) (any, error) { return keys[tok.Header["kid"].(string)], nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(apitest.Audience), jwt.WithIssuer(apitest.Issuer))
	if err != nil {
		t.Fatalf("an access token does not verify with the published keys: %v", err)
	}
}

func TestAPIRejectsInvalidAccessTokens(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	keys := env.Issuer.Keys()
	jwk := keys.JWKS()[0]
	pub, _ := base64.RawURLEncoding.DecodeString(jwk.X)
	signWith := func(issuer, audience string, now time.Time) string {
		is := tokens.NewIssuer(tokens.IssuerConfig{Keys: keys, Issuer: issuer, Audience: audience, TTL: 15 * time.Minute, Now: func() time.Time { return now }})
		tok, err := is.Issue(tokens.Subject{User: a.Owner.Id, Tenant: a.Tenant.Id, Session: uuid.New(), Role: "owner"})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	parsed, _, _ := jwt.NewParser().ParseUnverified(a.Tokens.AccessToken, &tokens.Claims{})
	claims := parsed.Claims.(*tokens.Claims)
	resign := func(method jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["kid"] = jwk.Kid
		tok.Header["typ"] = tokens.AccessType
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parts := strings.Split(a.Tokens.AccessToken, ".")
	sig := []byte(parts[2])
	sig[5] ^= 0x02
	cases := map[string]string{
		"alg none":                         resign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType),
		"HS256 signed with the public key": resign(jwt.SigningMethodHS256, []byte(pub)),
		"tampered signature":               parts[0] + "." + parts[1] + "." + string(sig),
		"wrong audience":                   signWith(apitest.Issuer, "someone-else", time.Now()),
		"wrong issuer":                     signWith("https://evil.test", apitest.Audience, time.Now()),
		"expired":                          signWith(apitest.Issuer, apitest.Audience, time.Now().Add(-time.Hour)),
		"not yet valid":                    signWith(apitest.Issuer, apitest.Audience, time.Now().Add(time.Hour)),
		"refresh token as bearer":          a.Tokens.RefreshToken,
	}
	for name, tok := range cases {
		m := me(t, env, tok)
		wantUnauthorized(t, name, m.StatusCode(), m.HTTPResponse.Header, problemIn(m.Body), m.Body)
	}
	// Missing or malformed Authorization headers.
	for name, header := range map[string]string{"none": "", "basic": "Basic dXNlcjpwYXNz", "bearer without token": "Bearer "} {
		resp, err := env.Client.GetMeWithResponse(bg, func(_ context.Context, r *http.Request) error {
			if header != "" {
				r.Header.Set("Authorization", header)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		wantUnauthorized(t, name, resp.StatusCode(), resp.HTTPResponse.Header, problemIn(resp.Body), resp.Body)
	}
}

func TestTokensOfOneTenantSeeNothingOfAnother(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a, b := env.Signup(t), env.Signup(t)
	keyB, err := env.Client.CreateAPIKeyWithResponse(bg, api.APIKeyCreate{Name: "b", Role: api.UserRoleViewer}, apitest.Bearer(b.Tokens.AccessToken))
	if err != nil || keyB.JSON201 == nil {
		t.Fatalf("create key in B: %v %s", err, keyB.Body)
	}
	sessB, _ := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(b.Tokens.AccessToken))

	m := me(t, env, a.Tokens.AccessToken)
	if m.JSON200 == nil || m.JSON200.Tenant.Id != a.Tenant.Id {
		t.Fatalf("A's me shows %+v", m.JSON200)
	}
	list, _ := env.Client.ListAPIKeysWithResponse(bg, nil, apitest.Bearer(a.Tokens.AccessToken))
	if list.JSON200 == nil || len(list.JSON200.Items) != 0 {
		t.Errorf("A lists keys %v; want none (B's must be invisible)", list.JSON200)
	}
	del, _ := env.Client.DeleteAPIKeyWithResponse(bg, keyB.JSON201.Id, apitest.Bearer(a.Tokens.AccessToken))
	if del.StatusCode() != http.StatusNotFound {
		t.Errorf("A deleting B's key: %d, want 404", del.StatusCode())
	}
	rv, _ := env.Client.RevokeSessionWithResponse(bg, sessB.JSON200.Items[0].Id, apitest.Bearer(a.Tokens.AccessToken))
	if rv.StatusCode() != http.StatusNotFound {
		t.Errorf("A revoking B's session: %d, want 404", rv.StatusCode())
	}
	// B's key and session still work.
	if m := me(t, env, keyB.JSON201.Key); m.JSON200 == nil || m.JSON200.Tenant.Id != b.Tenant.Id {
		t.Errorf("B's key after A's attempts: %s", m.Body)
	}
	if r := refresh(t, env, b.Tokens.RefreshToken); r.JSON200 == nil {
		t.Errorf("B's session after A's attempts: %s", r.Body)
	}
}

func TestLoginIsRateLimited(t *testing.T) {
	t.Parallel()
	cfg := apitest.TestSessions
	cfg.LoginPerAccount = 3
	cfg.LoginPerIP = 6
	env := apitest.NewWithOptions(t, apitest.Options{Sessions: &cfg})
	a := env.Signup(t)
	try := func(email string) *api.LoginResponse {
		resp, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: a.Slug, Email: email, Password: "wrong password!"})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := 0; i < 3; i++ {
		if r := try(a.Email); r.StatusCode() != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.StatusCode())
		}
	}
	r := try(a.Email)
	if r.StatusCode() != http.StatusTooManyRequests || r.HTTPResponse.Header.Get("Retry-After") == "" || problemIn(r.Body) == nil {
		t.Fatalf("fourth attempt on one account: %d Retry-After=%q; want 429 with Retry-After", r.StatusCode(), r.HTTPResponse.Header.Get("Retry-After"))
	}
	// Other accounts from the same address share the per-IP budget of 6.
	for i := 0; i < 3; i++ {
		try("someone" + string(rune('a'+i)) + "@example.test")
	}
	if r := try("another@example.test"); r.StatusCode() != http.StatusTooManyRequests {
		t.Fatalf("seventh attempt from one IP: %d, want 429", r.StatusCode())
	}
}

func TestSessionsEndWhenIdleOrTooOld(t *testing.T) {
	t.Parallel()
	cases := map[string]func(*session.Config){
		"idle timeout": func(c *session.Config) { c.IdleTimeout = time.Second },
		"maximum age":  func(c *session.Config) { c.MaxAge = time.Second },
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := apitest.TestSessions
			set(&cfg)
			env := apitest.NewWithOptions(t, apitest.Options{Sessions: &cfg})
			a := env.Signup(t)
			fresh := refresh(t, env, a.Tokens.RefreshToken)
			if fresh.JSON200 == nil {
				t.Fatalf("refresh within the lifetime: %s", fresh.Body)
			}
			time.Sleep(1200 * time.Millisecond)
			late := refresh(t, env, fresh.JSON200.RefreshToken)
			wantUnauthorized(t, name, late.StatusCode(), late.HTTPResponse.Header, problemIn(late.Body), late.Body)
			list, _ := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(fresh.JSON200.AccessToken))
			if list.JSON200 == nil || len(list.JSON200.Items) != 0 {
				t.Errorf("an ended session is still listed: %s", list.Body)
			}
		})
	}
}

func TestAccessTokensNeedNumericTimeClaims(t *testing.T) {
	t.Parallel()
	key := tokens.GenerateKey()
	keys, err := tokens.NewKeySet(key)
	if err != nil {
		t.Fatal(err)
	}
	env := apitest.NewWithOptions(t, apitest.Options{Keys: keys})
	a := env.Signup(t)
	sessions, err := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(a.Tokens.AccessToken))
	if err != nil || sessions.JSON200 == nil || len(sessions.JSON200.Items) != 1 {
		t.Fatalf("sessions: %v %s", err, sessions.Body)
	}
	// sign signs the claims JSON with the server's own key, as its issuer would.
	sign := func(times string) string {
		enc := base64.RawURLEncoding
		head := enc.EncodeToString([]byte(`{"alg":"EdDSA","kid":"` + keys.JWKS()[0].Kid + `","typ":"` + tokens.AccessType + `"}`))
		body := enc.EncodeToString([]byte(fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":[%q],"jti":"x","tid":%q,"role":"owner","sid":%q%s}`,
			apitest.Issuer, a.Owner.Id, apitest.Audience, a.Tenant.Id, sessions.JSON200.Items[0].Id, times)))
		sig, err := jwt.SigningMethodEdDSA.Sign(head+"."+body, key)
		if err != nil {
			t.Fatal(err)
		}
		return head + "." + body + "." + enc.EncodeToString(sig)
	}
	now := time.Now().Unix()
	if m := me(t, env, sign(fmt.Sprintf(`,"exp":%d,"nbf":%d,"iat":%d`, now+600, now-5, now-5))); m.JSON200 == nil {
		t.Fatalf("the control token is refused: %d %s", m.StatusCode(), m.Body)
	}
	cases := map[string]string{
		"no iat":          fmt.Sprintf(`,"exp":%d,"nbf":%d`, now+600, now-5),
		"exp as a string": fmt.Sprintf(`,"exp":"%d","nbf":%d,"iat":%d`, now+600, now-5, now-5),
	}
	for name, times := range cases {
		m := me(t, env, sign(times))
		wantUnauthorized(t, name, m.StatusCode(), m.HTTPResponse.Header, problemIn(m.Body), m.Body)
	}
}

func TestUserAgentsThatAreNotStorableTextStillSignIn(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	long := strings.Repeat("a", 510) + "€" + strings.Repeat("b", 87) // bytes 511-513 are the euro sign
	cases := map[string]struct{ sent, stored string }{
		"cut inside a character": {long, strings.Repeat("a", 510)},
		"invalid UTF-8":          {"Mozilla/5.0 \xff\xfe (X11)", "Mozilla/5.0 \uFFFD\uFFFD (X11)"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ua := withHeader("User-Agent", c.sent)
			req := validSignup(slug("ua"))
			su, err := env.Client.SignupWithResponse(bg, req, ua)
			if err != nil || su.JSON201 == nil {
				t.Fatalf("%s: signup: %v %d %s", name, err, su.StatusCode(), su.Body)
			}
			tenant, owner := su.JSON201.Tenant.Id, apitest.Bearer(su.JSON201.Tokens.AccessToken)
			li, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: req.TenantSlug, Email: string(req.Email), Password: req.Password}, ua)
			if err != nil || li.JSON200 == nil {
				t.Fatalf("%s: login: %v %d %s", name, err, li.StatusCode(), li.Body)
			}
			inv, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "invitee@example.test", Name: "Invitee", Role: api.UserRoleMember}, owner)
			if err != nil || inv.JSON201 == nil || inv.JSON201.InviteToken == nil {
				t.Fatalf("%s: invite: %v %s", name, err, inv.Body)
			}
			acc, err := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: *inv.JSON201.InviteToken, Password: "chosen password"}, ua)
			if err != nil || acc.JSON200 == nil {
				t.Fatalf("%s: accept invite: %v %d %s", name, err, acc.StatusCode(), acc.Body)
			}
			// Read the column itself: JSON encoding would hide invalid bytes behind U+FFFD.
			var stored []string
			err = env.DB.Tx(bg, tenancy.Scope{Tenant: tenant}, func(tx pgx.Tx) error {
				rows, err := tx.Query(bg, "SELECT user_agent FROM sessions ORDER BY created_at")
				if err != nil {
					return err
				}
				stored, err = pgx.CollectRows(rows, pgx.RowTo[string])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(stored) != 3 {
				t.Fatalf("%s: %d sessions, want 3 (signup, login, accept)", name, len(stored))
			}
			for _, got := range stored {
				if got != c.stored || !utf8.ValidString(got) {
					t.Errorf("%s: stored user agent %q, want %q", name, got, c.stored)
				}
			}
		})
	}
}

func TestFailedLoginHasNoActorAndNamesTheAccount(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	for _, email := range []string{a.Email, "nobody@example.test"} {
		l, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: a.Slug, Email: email, Password: "wrong password!"})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "wrong password for "+email, l.StatusCode(), l.Body, http.StatusUnauthorized)
	}
	list, err := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{Action: ptr("auth.login_failed")}, apitest.Bearer(a.Tokens.AccessToken))
	if err != nil || list.JSON200 == nil {
		t.Fatalf("audit events: %v %s", err, list.Body)
	}
	got := map[string]api.AuditEvent{}
	for _, e := range list.JSON200.Items {
		got[e.Data["email"].(string)] = e
	}
	if len(got) != 2 {
		t.Fatalf("failed logins in the audit log: %+v; want one per email", list.JSON200.Items)
	}
	for email, e := range got {
		if e.ActorUserId != nil || e.ActorKeyId != nil {
			t.Errorf("%s: failed login has actor user %v key %v; want none", email, e.ActorUserId, e.ActorKeyId)
		}
	}
	if e := got[a.Email]; e.ResourceType != "user" || e.ResourceId == nil || *e.ResourceId != a.Owner.Id {
		t.Errorf("failed login of the owner: resource %s %v; want user %s", e.ResourceType, e.ResourceId, a.Owner.Id)
	}
	if e := got["nobody@example.test"]; e.ResourceId != nil {
		t.Errorf("failed login of an unknown email names resource %v; want none", *e.ResourceId)
	}
}

func TestWrongPasswordsFromOneAddressDoNotLockTheOwnerOut(t *testing.T) {
	t.Parallel()
	cfg := apitest.TestSessions
	cfg.LoginPerAccount = 10
	env := apitest.NewWithOptions(t, apitest.Options{Sessions: &cfg})
	a := env.Signup(t)
	// from returns a login function speaking from the loopback address ip.
	from := func(ip string) func(pw string) *api.LoginResponse {
		client := env.ClientFrom(ip)
		return func(pw string) *api.LoginResponse {
			t.Helper()
			resp, err := client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: a.Slug, Email: a.Email, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
	}
	want := func(what string, r *api.LoginResponse, status int) {
		t.Helper()
		wantStatus(t, what, r.StatusCode(), r.Body, status)
		if status == http.StatusTooManyRequests && r.HTTPResponse.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 429 without Retry-After", what)
		}
	}
	attacker, owner, fresh := from("127.0.0.2"), from("127.0.0.3"), from("127.0.0.4")
	const wrong = "wrong password!"

	for i := range cfg.LoginPerAccount {
		want(fmt.Sprintf("wrong password %d from the attacker", i+1), attacker(wrong), http.StatusUnauthorized)
	}
	want("the owner's password from a clean address", owner(a.Password), http.StatusOK)
	want("the attacker, even with the right password", attacker(a.Password), http.StatusTooManyRequests)
	want("the attacker again", attacker(wrong), http.StatusTooManyRequests)

	// The account is over its limit: a new address gets one guess, then it is refused too.
	want("a first guess from a fresh address", fresh(wrong), http.StatusUnauthorized)
	want("a second guess from that address", fresh(wrong), http.StatusTooManyRequests)
	want("the right password from that address", fresh(a.Password), http.StatusTooManyRequests)
	want("the owner's password from the clean address, still", owner(a.Password), http.StatusOK)
}

func TestAGuessingBotnetGetsABoundedBudgetAndKnownAddressesStillSignIn(t *testing.T) {
	t.Parallel()
	cfg := apitest.TestSessions
	cfg.LoginPerAccount = 3
	env := apitest.NewWithOptions(t, apitest.Options{Sessions: &cfg})
	a := env.Signup(t)
	login := func(ip, pw string) *api.LoginResponse {
		t.Helper()
		resp, err := env.ClientFrom(ip).LoginWithResponse(bg, api.LoginRequest{TenantSlug: a.Slug, Email: a.Email, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	r := login("127.0.1.1", a.Password)
	wantStatus(t, "the owner signs in from home before the attack", r.StatusCode(), r.Body, http.StatusOK)
	for i := range cfg.LoginPerAccount {
		r := login("127.0.2.1", "wrong password!")
		wantStatus(t, fmt.Sprintf("guess %d from the first bot", i+1), r.StatusCode(), r.Body, http.StatusUnauthorized)
	}
	// The account is over its limit: strangers share a budget of LoginPerAccount checks.
	checked := 0
	for i := range 10 {
		r := login(fmt.Sprintf("127.0.3.%d", i+1), "wrong password!")
		switch r.StatusCode() {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("bot %d: %d %s", i+1, r.StatusCode(), r.Body)
		}
	}
	if checked != cfg.LoginPerAccount {
		t.Errorf("10 fresh addresses got %d password checks while the account was under attack; want %d", checked, cfg.LoginPerAccount)
	}
	r = login("127.0.1.1", a.Password)
	wantStatus(t, "the owner from home during the attack", r.StatusCode(), r.Body, http.StatusOK)
}
