package handlers_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/sso"
	"github.com/tasker/tasker/internal/testdb"
)

func TestSSOFirstSignInProvisionsAndTheSecondReusesTheUser(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleMember, true)
	before := userCount(t, env, w)

	b := newBrowser(t, env)
	// The start sends the browser to the provider with PKCE (S256), a state and a nonce, and
	// binds the sign-in to the browser with a cookie only the callback receives.
	resp, body := b.get(b.startURL(w.Slug, apitest.SSOFrontend))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	toProvider, _ := resp.Location()
	q := toProvider.Query()
	if !strings.HasPrefix(toProvider.String(), sp.AuthorizationEndpoint()) || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("nonce") == "" || !strings.HasPrefix(q.Get("state"), "tks_") ||
		q.Get("client_id") != sp.ClientID || q.Get("redirect_uri") != env.URL+"/v1/auth/sso/callback" || !strings.Contains(q.Get("scope"), "email") {
		t.Fatalf("to the provider: %s", toProvider)
	}
	cookie := resp.Header.Get("Set-Cookie")
	if !strings.Contains(cookie, "tasker_sso=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Lax") ||
		!strings.Contains(cookie, "Path=/v1/auth/sso/;") {
		t.Errorf("binding cookie: %s", cookie)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("start Cache-Control %q", resp.Header.Get("Cache-Control"))
	}

	sp.person("sub-ann", "Ann@Example.test", true)
	first := b.land(b.next(toProvider.String()))
	if first.err != "" || !strings.HasPrefix(first.code, "tkc_") {
		t.Fatalf("first sign-in landed on %s", first.at)
	}
	if strings.Contains(first.at.String(), "eyJ") {
		t.Error("a token travels in the frontend's URL")
	}
	pair := exchange(t, env, first.code)
	m := me(t, env, pair.AccessToken)
	if m.JSON200 == nil || string(m.JSON200.User.Email) != "ann@example.test" || m.JSON200.Role != api.UserRoleMember ||
		m.JSON200.User.Name != "Ann" || m.JSON200.Tenant.Id != w.Tenant.Id {
		t.Fatalf("the provisioned user: %s", m.Body)
	}
	ann := m.JSON200.User.Id
	if got := userCount(t, env, w); got != before+1 {
		t.Errorf("users after the first sign-in: %d, want %d", got, before+1)
	}
	// The refresh token works like a password session's.
	if r := refresh(t, env, pair.RefreshToken); r.JSON200 == nil {
		t.Errorf("refresh after SSO: %s", r.Body)
	}

	// The second sign-in, from another browser, is the same user.
	sp.person("sub-ann", "ann@example.test", true)
	second := newBrowser(t, env).signIn(w.Slug)
	if second.err != "" {
		t.Fatalf("second sign-in: %s", second.at)
	}
	again := me(t, env, exchange(t, env, second.code).AccessToken)
	if again.JSON200 == nil || again.JSON200.User.Id != ann {
		t.Fatalf("the second sign-in is another user: %s", again.Body)
	}
	if got := userCount(t, env, w); got != before+1 {
		t.Errorf("users after the second sign-in: %d, want %d", got, before+1)
	}
	var identities int
	_ = testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT count(*) FROM sso_identities WHERE tenant_id = $1 AND issuer = $2 AND subject = 'sub-ann'`,
		w.Tenant.Id, sp.Issuer()).Scan(&identities)
	if identities != 1 {
		t.Errorf("%d identities for the subject, want 1", identities)
	}

	// Audited like password sign-ins, with the provisioning once.
	logins := 0
	for _, e := range auditOf(t, env, w, "auth.login") {
		if e.ActorUserId != nil && *e.ActorUserId == ann && e.Data["method"] == "sso" {
			logins++
		}
	}
	if logins != 2 {
		t.Errorf("%d SSO logins audited for the user, want 2", logins)
	}
	created := 0
	for _, e := range auditOf(t, env, w, "user.create") {
		if e.ResourceId != nil && *e.ResourceId == ann && e.Data["method"] == "sso" && e.Data["role"] == "member" {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d provisionings audited, want 1", created)
	}
}

func TestSSOLinksAPasswordAccountOnlyByAVerifiedAllowedEmail(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleViewer, true)
	admin := w.users[api.UserRoleAdmin]

	// Not verified: refused, and nothing linked.
	sp.person("sub-admin", string(admin.Email), false)
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "email_unverified" {
		t.Fatalf("unverified email: %s", l.at)
	}
	// A verified email in a false claim is not verified either.
	sp.setTamper(func(c jwt.MapClaims) *mockoidc.Keypair { c["email_verified"] = "false"; return nil })
	sp.person("sub-admin", string(admin.Email), true)
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "email_unverified" {
		t.Fatalf("email_verified \"false\": %s", l.at)
	}
	sp.setTamper(nil)
	// Verified: the same user, with their role (not the default one).
	sp.person("sub-admin", string(admin.Email), true)
	l := newBrowser(t, env).signIn(w.Slug)
	if l.err != "" {
		t.Fatalf("verified email: %s", l.at)
	}
	m := me(t, env, exchange(t, env, l.code).AccessToken)
	if m.JSON200 == nil || m.JSON200.User.Id != admin.Id || m.JSON200.Role != api.UserRoleAdmin {
		t.Fatalf("linked: %s", m.Body)
	}
	if len(auditOf(t, env, w, "sso.identity_link")) != 1 {
		t.Error("the link is not audited once")
	}
	// The password still works, since this tenant keeps password sign-in.
	env.Login(t, w.Slug, string(admin.Email), "password for admin")

	// Entra ID's way of saying it (xms_edov, no email_verified) is taken too.
	sp.setTamper(func(c jwt.MapClaims) *mockoidc.Keypair { delete(c, "email_verified"); c["xms_edov"] = true; return nil })
	sp.person("sub-member", string(w.users[api.UserRoleMember].Email), false)
	l = newBrowser(t, env).signIn(w.Slug)
	sp.setTamper(nil)
	if m := me(t, env, exchange(t, env, l.code).AccessToken); m.JSON200 == nil || m.JSON200.User.Id != w.users[api.UserRoleMember].Id {
		t.Fatalf("an Entra-style verified email: %s", m.Body)
	}

	// Once linked, the identity decides: a later email change at the provider is the same user.
	sp.person("sub-admin", "renamed@example.test", true)
	l = newBrowser(t, env).signIn(w.Slug)
	if m := me(t, env, exchange(t, env, l.code).AccessToken); m.JSON200 == nil || m.JSON200.User.Id != admin.Id {
		t.Fatalf("after an email change: %s", m.Body)
	}
}

func TestSSOActivatesAnInvitedUser(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleViewer, true)
	inv, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "invited@example.test", Name: "Invited", Role: api.UserRoleMember}, w.as(api.UserRoleOwner))
	if err != nil || inv.JSON201 == nil || inv.JSON201.User.Status != api.UserStatusInvited {
		t.Fatalf("invite: %v %s", err, inv.Body)
	}
	sp.person("sub-invited", "invited@example.test", true)
	l := newBrowser(t, env).signIn(w.Slug)
	m := me(t, env, exchange(t, env, l.code).AccessToken)
	if m.JSON200 == nil || m.JSON200.User.Id != inv.JSON201.User.Id || m.JSON200.User.Status != api.UserStatusActive || m.JSON200.Role != api.UserRoleMember {
		t.Fatalf("invited user after SSO: %s", m.Body)
	}
	// The invitation is answered: it no longer sets a password.
	if r, _ := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: *inv.JSON201.InviteToken, Password: "a long new password"}); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("the invitation after SSO: %d", r.StatusCode())
	}
}

// TestSSOFailuresEndOnTheFrontendWithTheirCode goes through each way a sign-in fails: each
// lands on the frontend with its documented code, signs nobody in, creates nobody, and is
// audited.
func TestSSOFailuresEndOnTheFrontendWithTheirCode(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleMember, true)
	admin := testdb.Get(t).AdminPool(t)
	deactivated := w.users[api.UserRoleViewer]
	if r, _ := env.Client.DeactivateUserWithResponse(bg, deactivated.Id, w.as(api.UserRoleOwner)); r.StatusCode() != http.StatusNoContent {
		t.Fatalf("deactivate: %d", r.StatusCode())
	}
	otherKey, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherKey.KeyID(); err != nil { // filled in before any concurrent use
		t.Fatal(err)
	}
	tamper := func(f func(jwt.MapClaims)) func() {
		return func() { sp.setTamper(func(c jwt.MapClaims) *mockoidc.Keypair { f(c); return nil }) }
	}

	cases := []struct {
		name  string
		want  string
		setup func()
		// run, when set, replaces the plain sign-in: it gets a browser and returns the landing.
		run func(b *browser) landing
	}{
		{name: "denied consent", want: "access_denied", setup: func() { sp.setDeny("access_denied") }},
		{name: "another provider error", want: "provider_error", setup: func() { sp.setDeny("temporarily_unavailable") }},
		{name: "unverified email", want: "email_unverified", setup: func() { sp.person("sub-u", "unverified@example.test", false) }},
		{name: "no email", want: "email_unverified", setup: func() { sp.person("sub-n", "", true) }},
		{name: "lookalike email", want: "email_invalid", setup: func() { sp.person("sub-k", "\u212aate@example.test", true) }},
		{name: "domain not allowed", want: "domain_not_allowed", setup: func() { sp.person("sub-d", "eve@evil.test", true) }},
		{name: "lookalike domain", want: "domain_not_allowed", setup: func() { sp.person("sub-l", "eve@notexample.test", true) }},
		{name: "deactivated user", want: "user_deactivated", setup: func() { sp.person("sub-x", string(deactivated.Email), true) }},
		{name: "wrong nonce", want: "nonce_invalid", run: func(b *browser) landing {
			toProvider := b.next(b.startURL(w.Slug, apitest.SSOFrontend))
			q := toProvider.Query()
			q.Set("nonce", "a nonce of another sign-in")
			toProvider.RawQuery = q.Encode()
			return b.land(b.next(toProvider.String()))
		}},
		{name: "null email_verified with xms_edov", want: "email_unverified", setup: func() {
			sp.person("sub-null", "null@example.test", true)
			sp.setTamper(func(c jwt.MapClaims) *mockoidc.Keypair { c["email_verified"], c["xms_edov"] = nil, true; return nil })
		}},
		{name: "ID token for another client", want: "token_invalid", setup: tamper(func(c jwt.MapClaims) { c["aud"] = "another-client" })},
		{name: "ID token of another issuer", want: "token_invalid", setup: tamper(func(c jwt.MapClaims) { c["iss"] = "https://evil.test/oidc" })},
		{name: "expired ID token", want: "token_invalid", setup: tamper(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		})},
		{name: "ID token signed by another key", want: "token_invalid", setup: func() {
			sp.setTamper(func(jwt.MapClaims) *mockoidc.Keypair { return otherKey })
		}},
		{name: "bad authorization code", want: "code_invalid", run: func(b *browser) landing {
			cb := b.toCallback(w.Slug)
			q := cb.Query()
			q.Set("code", "not-a-code-the-provider-issued")
			cb.RawQuery = q.Encode()
			return b.land(cb)
		}},
		{name: "forged state", want: "state_invalid", run: func(b *browser) landing {
			cb := b.toCallback(w.Slug)
			q := cb.Query()
			s := q.Get("state")
			q.Set("state", s[:len(s)-2]+flip(s[len(s)-2:]))
			cb.RawQuery = q.Encode()
			return b.land(cb)
		}},
		{name: "no state", want: "state_invalid", run: func(b *browser) landing {
			return b.land(&url.URL{Scheme: "http", Host: strings.TrimPrefix(env.URL, "http://"), Path: "/v1/auth/sso/callback", RawQuery: "code=abc"})
		}},
		{name: "expired state", want: "state_invalid", run: func(b *browser) landing {
			cb := b.toCallback(w.Slug)
			if _, err := admin.Exec(bg, `UPDATE sso_states SET expires_at = now() - interval '1 second' WHERE tenant_id = $1 AND used_at IS NULL`, w.Tenant.Id); err != nil {
				t.Fatal(err)
			}
			return b.land(cb)
		}},
		{name: "callback in another browser", want: "state_invalid", run: func(b *browser) landing {
			cb := b.toCallback(w.Slug)
			return newBrowser(t, env).land(cb)
		}},
		{name: "replayed callback", want: "state_invalid", run: func(b *browser) landing {
			sp.person("sub-replay", string(w.users[api.UserRoleMember].Email), true)
			cb := b.toCallback(w.Slug)
			if l := b.land(cb); l.code == "" {
				t.Fatalf("the first callback: %s", l.at)
			}
			return b.land(cb)
		}},
		{name: "provider down at the code exchange", want: "provider_unavailable", run: func(b *browser) landing {
			down := newSSOProvider(t)
			configureSSO(t, env, w, down, api.SSORoleMember, true)
			defer configureSSO(t, env, w, sp, api.SSORoleMember, true)
			cb := b.toCallback(w.Slug)
			_ = down.Shutdown()
			return b.land(cb)
		}},
		{name: "provider changed during the sign-in", want: "sso_unavailable", run: func(b *browser) landing {
			cb := b.toCallback(w.Slug)
			other := newSSOProvider(t)
			configureSSO(t, env, w, other, api.SSORoleMember, true)
			defer configureSSO(t, env, w, sp, api.SSORoleMember, true)
			return b.land(cb)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := userCount(t, env, w)
			failures := len(auditOf(t, env, w, "auth.sso_failed"))
			b := newBrowser(t, env)
			var l landing
			if tc.run != nil {
				l = tc.run(b)
			} else {
				tc.setup()
				l = b.signIn(w.Slug)
				sp.setDeny("")
				sp.setTamper(nil)
			}
			if l.err != tc.want || l.code != "" {
				t.Fatalf("landed on %s, want error=%s", l.at, tc.want)
			}
			if got := userCount(t, env, w); got != before {
				t.Errorf("users: %d, want %d", got, before)
			}
			audited := auditOf(t, env, w, "auth.sso_failed")
			if tc.name == "no state" || tc.name == "forged state" {
				// Nothing proves which tenant a forged state names: nothing is audited there.
				if len(audited) != failures {
					t.Errorf("a forged state was audited in the tenant it names")
				}
				return
			}
			if len(audited) != failures+1 || audited[0].Data["error"] != tc.want {
				t.Errorf("audit: %d entries (had %d), newest %+v", len(audited), failures, audited[0].Data)
			}
		})
	}
}

// flip changes a base64url tail into another valid one.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func TestSSOStartRefusesUnknownFrontendsAndEndsOtherFailuresOnTheFrontend(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{SSO: &handlers.SSOConfig{Policy: sso.Policy{AllowInsecure: true}, StartsPerMinute: 2}})
	w := newWorkspace(t, env)
	b := newBrowser(t, env)

	// A frontend that is not allowed gets no redirect at all (no open redirect).
	for _, bad := range []string{"http://evil.test/sso", apitest.SSOFrontend + "/", apitest.SSOFrontend + "?x=1", "HTTP://app.test/sso", "//evil.test"} {
		resp, body := b.get(b.startURL(w.Slug, bad))
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "redirect_uri") {
			t.Errorf("redirect_uri %q: %d %s", bad, resp.StatusCode, body)
		}
	}
	// No SSO, or no such tenant: the same code, so slugs are not probed this way. The
	// frontend's own query and state come back.
	for _, slug := range []string{w.Slug, "no-such-tenant"} {
		loc := b.next(b.startURL(slug, apitest.SSOOtherFrontend) + "&state=" + url.QueryEscape("page=/inbox"))
		q := loc.Query()
		if loc.Host != "admin.test" || q.Get("error") != "sso_unavailable" || q.Get("state") != "page=/inbox" || q.Get("from") != "tasker" || q.Get("code") != "" {
			t.Errorf("start for %s: %s", slug, loc)
		}
	}
	// A provider that is down when the sign-in starts.
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleMember, true)
	_ = sp.Shutdown()
	if loc := b.next(b.startURL(w.Slug, apitest.SSOFrontend)); loc.Query().Get("error") != "provider_unavailable" {
		t.Errorf("provider down: %s", loc)
	}
	if a := auditOf(t, env, w, "auth.sso_failed"); len(a) != 1 || a[0].Data["error"] != "provider_unavailable" {
		t.Errorf("audit of the provider being down: %+v", a)
	}
	// Starts are limited per tenant and client address; two were spent on this tenant (refused
	// frontends spend none), and another tenant's budget is its own.
	resp, _ := b.get(b.startURL(w.Slug, apitest.SSOFrontend))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the fourth start: %d", resp.StatusCode)
	}
}

func TestSSOExchangeCodeIsSingleUseAndAReplayEndsItsSession(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleMember, true)

	sp.person("sub-once", "once@example.test", true)
	l := newBrowser(t, env).signIn(w.Slug)
	pair := exchange(t, env, l.code)
	again, err := env.Client.ExchangeSSOCodeWithResponse(bg, api.SSOExchange{Code: l.code})
	if err != nil || again.StatusCode() != http.StatusUnauthorized || problemIn(again.Body) == nil {
		t.Fatalf("a replayed code: %v %d %s", err, again.StatusCode(), again.Body)
	}
	// The replay ended the session the first exchange opened: it may have been stolen.
	if r := refresh(t, env, pair.RefreshToken); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("refresh after the code's replay: %d", r.StatusCode())
	}
	if len(auditOf(t, env, w, "auth.sso_code_replayed")) != 1 {
		t.Error("the replay is not audited")
	}

	// A replay after the code's life is only refused: whoever reads an old URL ends nothing.
	sp.person("sub-once", "once@example.test", true)
	later := newBrowser(t, env).signIn(w.Slug)
	kept := exchange(t, env, later.code)
	if _, err := testdb.Get(t).AdminPool(t).Exec(bg, `UPDATE sso_codes SET expires_at = now() - interval '1 second' WHERE tenant_id = $1`, w.Tenant.Id); err != nil {
		t.Fatal(err)
	}
	if r, _ := env.Client.ExchangeSSOCodeWithResponse(bg, api.SSOExchange{Code: later.code}); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("a late replay: %d", r.StatusCode())
	}
	if r := refresh(t, env, kept.RefreshToken); r.JSON200 == nil {
		t.Errorf("a late replay ended the session: %d", r.StatusCode())
	}

	// An expired code, a code whose tenant part was changed, and garbage are all 401.
	sp.person("sub-once", "once@example.test", true)
	late := newBrowser(t, env).signIn(w.Slug)
	if _, err := testdb.Get(t).AdminPool(t).Exec(bg, `UPDATE sso_codes SET expires_at = now() - interval '1 second' WHERE tenant_id = $1 AND used_at IS NULL`, w.Tenant.Id); err != nil {
		t.Fatal(err)
	}
	other := newWorkspace(t, env)
	moved := "tkc_" + swapTenant(t, late.code[4:], other.Tenant.Id[:])
	for name, code := range map[string]string{"expired": late.code, "moved to another tenant": moved, "garbage": "tkc_nope", "a state": "tks_" + late.code[4:]} {
		r, err := env.Client.ExchangeSSOCodeWithResponse(bg, api.SSOExchange{Code: code})
		if err != nil || r.StatusCode() != http.StatusUnauthorized {
			t.Errorf("%s code: %v %d %s", name, err, r.StatusCode(), r.Body)
		}
	}
}

// swapTenant puts tenant into the tenant part of a credential body (base64url of tenant||id,
// then the secret).
func swapTenant(t *testing.T, body string, tenant []byte) string {
	t.Helper()
	ids, err := base64.RawURLEncoding.DecodeString(body[:43])
	if err != nil {
		t.Fatal(err)
	}
	copy(ids[:16], tenant)
	return base64.RawURLEncoding.EncodeToString(ids) + body[43:]
}

func TestSSOCanTakePasswordSignInFromAllButOwners(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	member := env.Login(t, w.Slug, "member@example.test", "password for member")
	sp.person("sub-viewer", "viewer@example.test", true)
	viewerBySSO := func() api.TokenPair {
		configureSSO(t, env, w, sp, api.SSORoleMember, true)
		return exchange(t, env, newBrowser(t, env).signIn(w.Slug).code)
	}()
	configureSSO(t, env, w, sp, api.SSORoleMember, false)

	// The others' password sessions ended with the switch; owners' and SSO sessions did not.
	if r := refresh(t, env, member.RefreshToken); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("a member's password session after the switch: %d", r.StatusCode())
	}
	if r := refresh(t, env, viewerBySSO.RefreshToken); r.JSON200 == nil {
		t.Errorf("an SSO session after the switch: %d", r.StatusCode())
	}
	if r := refresh(t, env, w.Tokens.RefreshToken); r.JSON200 == nil {
		t.Errorf("the owner's session after the switch: %d", r.StatusCode())
	}
	// A password sign-in is refused like a wrong password, so the refusal confirms no password.
	right, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: w.Slug, Email: "admin@example.test", Password: "password for admin"})
	wrong, _ := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: w.Slug, Email: "admin@example.test", Password: "wrong"})
	same := "The tenant, email or password is wrong."
	if err != nil || right.StatusCode() != http.StatusUnauthorized || wrong.StatusCode() != http.StatusUnauthorized ||
		!strings.Contains(string(right.Body), same) || !strings.Contains(string(wrong.Body), same) {
		t.Fatalf("an admin's password sign-in with SSO enforced: %d %s / %d %s", right.StatusCode(), right.Body, wrong.StatusCode(), wrong.Body)
	}
	reasons := 0
	for _, e := range auditOf(t, env, w, "auth.login_failed") {
		if e.Data["reason"] == "sso_required" {
			reasons++
		}
	}
	if reasons != 1 {
		t.Errorf("%d refusals audited with the reason sso_required, want 1", reasons)
	}
	// Owners keep their password, so a broken provider locks nobody out.
	env.Login(t, w.Slug, w.Email, w.Password)
	// An invitation is answered by SSO then, not with a password.
	inv, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "newcomer@example.test", Name: "New", Role: api.UserRoleMember}, w.as(api.UserRoleOwner))
	if err != nil || inv.JSON201 == nil {
		t.Fatalf("invite: %v", err)
	}
	if r, _ := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: *inv.JSON201.InviteToken, Password: "a long new password"}); r.StatusCode() != http.StatusForbidden {
		t.Errorf("a password for an invitation with SSO enforced: %d %s", r.StatusCode(), r.Body)
	}
	sp.person("sub-newcomer", "newcomer@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Errorf("the invited user by SSO: %s", l.at)
	}
	// And SSO turned off gives passwords back.
	if d, _ := env.Client.DeleteSSOConfigWithResponse(bg, w.as(api.UserRoleOwner)); d.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %d", d.StatusCode())
	}
	env.Login(t, w.Slug, "admin@example.test", "password for admin")
}

func TestSSOProvisioningTakesASeatOfThePlan(t *testing.T) {
	t.Parallel()
	catalog := apitest.TestCatalog()
	free := catalog.Limits[billing.Free]
	free.Seats = 6 // the workspace has five users
	catalog.Limits[billing.Free] = free
	env := apitest.NewWithOptions(t, apitest.Options{Billing: handlers.BillingConfig{Catalog: catalog}})
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleViewer, true)

	sp.person("sub-6", "sixth@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("the sixth seat: %s", l.at)
	}
	sp.person("sub-7", "seventh@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "seat_limit" {
		t.Fatalf("past the seats: %s", l.at)
	}
	// A user who has a seat still signs in.
	sp.person("sub-6", "sixth@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("an existing user at the limit: %s", l.at)
	}
}

func TestSSOConcurrentFirstSignInsMakeOneUser(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleMember, true)
	before := userCount(t, env, w)

	const n = 8
	callbacks := make([]*url.URL, n)
	browsers := make([]*browser, n)
	for i := range n {
		browsers[i] = newBrowser(t, env)
		sp.person("sub-racer", "racer@example.test", true)
		callbacks[i] = browsers[i].toCallback(w.Slug)
	}
	codes := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := browsers[i].c.Get(callbacks[i].String())
			if err != nil {
				codes <- "error: " + err.Error()
				return
			}
			resp.Body.Close()
			loc, _ := resp.Location()
			codes <- loc.Query().Get("code") + loc.Query().Get("error")
		}()
	}
	wg.Wait()
	close(codes)
	ids := map[uuid.UUID]bool{}
	for c := range codes {
		if !strings.HasPrefix(c, "tkc_") {
			t.Fatalf("a concurrent sign-in: %s", c)
		}
		m := me(t, env, exchange(t, env, c).AccessToken)
		ids[m.JSON200.User.Id] = true
	}
	if len(ids) != 1 || userCount(t, env, w) != before+1 {
		t.Errorf("%d users for one person, %d users in all (had %d)", len(ids), userCount(t, env, w), before)
	}
}

func TestSSOLinksOwnersOnlyUnderAConfigurationAnActiveOwnerSaved(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	owner := w.users[api.UserRoleOwner]
	pw := "password of the second owner"
	second, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "second@example.test", Name: "Second", Role: api.UserRoleOwner, Password: &pw}, w.as(api.UserRoleOwner))
	if err != nil || second.JSON201 == nil {
		t.Fatalf("second owner: %v %s", err, second.Body)
	}
	asSecond := apitest.Bearer(env.Login(t, w.Slug, "second@example.test", pw).AccessToken)

	// Saved by an admin: the admin's provider cannot link anyone to the owner.
	secret := sp.ClientSecret
	put := api.SSOConfigPut{Issuer: sp.Issuer(), ClientId: sp.ClientID, ClientSecret: &secret, AllowedDomains: []string{"example.test"}, DefaultRole: api.SSORoleMember}
	r, err := env.Client.PutSSOConfigWithResponse(bg, put, w.as(api.UserRoleAdmin))
	if err != nil || r.JSON200 == nil || r.JSON200.SavedByOwner {
		t.Fatalf("put as admin: %v %s", err, r.Body)
	}
	sp.person("sub-owner", string(owner.Email), true)
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "owner_not_allowed" {
		t.Fatalf("the owner under an admin's configuration: %s", l.at)
	}
	identities := func() (n int) {
		_ = testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT count(*) FROM sso_identities WHERE tenant_id = $1`, w.Tenant.Id).Scan(&n)
		return n
	}
	if n := identities(); n != 0 {
		t.Errorf("%d identities linked by a refused sign-in", n)
	}
	// Other users sign in as usual.
	sp.person("sub-admin", "admin@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("the admin: %s", l.at)
	}

	// Saved by an owner who is later demoted: it counts no more.
	put.ClientSecret = nil
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, put, asSecond); r.JSON200 == nil || !r.JSON200.SavedByOwner {
		t.Fatalf("put as the second owner: %s", r.Body)
	}
	if u, _ := env.Client.UpdateUserWithResponse(bg, second.JSON201.User.Id, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, w.as(api.UserRoleOwner)); u.JSON200 == nil {
		t.Fatalf("demote: %s", u.Body)
	}
	if g, _ := env.Client.GetSSOConfigWithResponse(bg, w.as(api.UserRoleOwner)); g.JSON200 == nil || g.JSON200.SavedByOwner {
		t.Fatalf("after the saver's demotion: %s", g.Body)
	}
	sp.person("sub-owner", string(owner.Email), true)
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "owner_not_allowed" {
		t.Fatalf("the owner under a demoted owner's configuration: %s", l.at)
	}

	// Saved by an active owner: the owner's identity is linked, and stays usable after an
	// admin saves the configuration again (no owner is locked out by an admin).
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, put, w.as(api.UserRoleOwner)); r.JSON200 == nil || !r.JSON200.SavedByOwner {
		t.Fatalf("put as owner: %s", r.Body)
	}
	sp.person("sub-owner", string(owner.Email), true)
	l := newBrowser(t, env).signIn(w.Slug)
	if m := me(t, env, exchange(t, env, l.code).AccessToken); m.JSON200 == nil || m.JSON200.User.Id != owner.Id || m.JSON200.Role != api.UserRoleOwner {
		t.Fatalf("the owner under the owner's configuration: %s", l.at)
	}
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, put, w.as(api.UserRoleAdmin)); r.JSON200 == nil || r.JSON200.SavedByOwner {
		t.Fatalf("put as admin again: %s", r.Body)
	}
	sp.person("sub-owner", string(owner.Email), true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("the linked owner after an admin saved: %s", l.at)
	}
}

func TestSSOBrowserHoldsSeveralSignInsAndForeignCallbacksLeaveThem(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleMember, true)

	b := newBrowser(t, env)
	// Two tabs start a sign-in each; an outsider makes the browser load a forged callback.
	sp.person("sub-tab1", "tab1@example.test", true)
	tab1 := b.toCallback(w.Slug)
	sp.person("sub-tab2", "tab2@example.test", true)
	tab2 := b.toCallback(w.Slug)
	if l := b.land(&url.URL{Scheme: "http", Host: tab1.Host, Path: tab1.Path, RawQuery: "state=forged&code=x"}); l.err != "state_invalid" {
		t.Fatalf("a forged callback: %s", l.at)
	}
	// Both sign-ins still finish, in either order.
	for name, cb := range map[string]*url.URL{"the second tab": tab2, "the first tab": tab1} {
		if l := b.land(cb); l.code == "" {
			t.Errorf("%s: %s", name, l.at)
		}
	}
}

// TestSSOAdminCannotBecomeOwnerByRaceOrPromotion covers the two ways the first fix left open:
// an owner saving the configuration while an admin's sign-in waits on the admin's provider, and
// an identity an admin's provider linked to someone later promoted to owner.
func TestSSOAdminCannotBecomeOwnerByRaceOrPromotion(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	real, rogue := newSSOProvider(t), newSSOProvider(t)
	owner := w.users[api.UserRoleOwner]
	put := func(sp *ssoProvider, as api.UserRole) {
		t.Helper()
		secret := sp.ClientSecret
		r, err := env.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: sp.Issuer(), ClientId: sp.ClientID, ClientSecret: &secret,
			AllowedDomains: []string{"example.test"}, DefaultRole: api.SSORoleMember}, w.as(as))
		if err != nil || r.JSON200 == nil {
			t.Fatalf("put as %s: %v %s", as, err, r.Body)
		}
	}
	linked := func(subject string) (n int) {
		_ = testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT count(*) FROM sso_identities WHERE tenant_id = $1 AND subject = $2`, w.Tenant.Id, subject).Scan(&n)
		return n
	}

	// The race: the admin's sign-in as the owner waits at the admin's provider while the owner
	// puts the real provider back.
	put(rogue, api.UserRoleAdmin)
	rogue.person("evil-sub", string(owner.Email), true)
	rogue.setOnToken(func() { put(real, api.UserRoleOwner) })
	if l := newBrowser(t, env).signIn(w.Slug); l.code != "" || (l.err != "sso_unavailable" && l.err != "owner_not_allowed") {
		t.Fatalf("the admin's sign-in across the owner's save: %s", l.at)
	}
	if n := linked("evil-sub"); n != 0 {
		t.Fatalf("the rogue identity was linked (%d)", n)
	}

	// The promotion: the admin's provider links bob while bob is a member; bob is promoted.
	put(rogue, api.UserRoleAdmin)
	pw := "password of bob"
	bob, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "bob@example.test", Name: "Bob", Role: api.UserRoleMember, Password: &pw}, w.as(api.UserRoleOwner))
	if err != nil || bob.JSON201 == nil {
		t.Fatalf("bob: %v", err)
	}
	rogue.person("bob-at-rogue", "bob@example.test", true)
	first := newBrowser(t, env).signIn(w.Slug)
	if first.code == "" {
		t.Fatalf("bob as a member: %s", first.at)
	}
	kept := exchange(t, env, first.code)
	rogue.person("bob-at-rogue", "bob@example.test", true)
	pending := newBrowser(t, env).signIn(w.Slug)
	if u, _ := env.Client.UpdateUserWithResponse(bg, bob.JSON201.User.Id, api.UserUpdate{Role: ptr(api.UserRoleOwner)}, w.as(api.UserRoleOwner)); u.JSON200 == nil {
		t.Fatalf("promote bob: %s", u.Body)
	}
	// What the admin's provider got before the promotion does not follow it.
	if r := refresh(t, env, kept.RefreshToken); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("bob's SSO session after the promotion: %d %s", r.StatusCode(), r.Body)
	}
	if r, _ := env.Client.ExchangeSSOCodeWithResponse(bg, api.SSOExchange{Code: pending.code}); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("bob's pending code after the promotion: %d %s", r.StatusCode(), r.Body)
	}
	rogue.person("bob-at-rogue", "bob@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "owner_not_allowed" {
		t.Fatalf("bob, now an owner, by the identity the admin's provider linked: %s", l.at)
	}
	// Under a configuration an owner saved, bob's identity at the real provider vouches, and
	// keeps vouching after an admin saves the same provider again.
	put(real, api.UserRoleOwner)
	real.person("bob-at-real", "bob@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("bob at the owner's provider: %s", l.at)
	}
	put(real, api.UserRoleAdmin)
	real.person("bob-at-real", "bob@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("bob after an admin saved the same provider: %s", l.at)
	}
}

func TestSSOPasswordSessionsEndWhateverRacesTheSwitch(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	pw := "password of the co-owner"
	co, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "co@example.test", Name: "Co", Role: api.UserRoleOwner, Password: &pw}, w.as(api.UserRoleOwner))
	if err != nil || co.JSON201 == nil {
		t.Fatalf("co-owner: %v", err)
	}
	coPair := env.Login(t, w.Slug, "co@example.test", pw)

	// Members sign in with their password while the owner takes passwords away.
	var (
		mu    sync.Mutex
		pairs []api.TokenPair
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: w.Slug, Email: "member@example.test", Password: "password for member"})
				if err == nil && r.JSON200 != nil {
					mu.Lock()
					pairs = append(pairs, *r.JSON200)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	configureSSO(t, env, w, sp, api.SSORoleMember, false)
	close(stop)
	wg.Wait()
	if len(pairs) == 0 {
		t.Fatal("no login got in before the switch; the race was not run")
	}
	for i, p := range pairs {
		if r := refresh(t, env, p.RefreshToken); r.StatusCode() != http.StatusUnauthorized {
			t.Errorf("password session %d of %d survived the switch: %d", i, len(pairs), r.StatusCode())
		}
	}
	// A co-owner demoted while passwords are owners' only keeps no password session.
	if r := refresh(t, env, coPair.RefreshToken); r.JSON200 == nil {
		t.Fatalf("the co-owner's session before the demotion: %d", r.StatusCode())
	} else {
		coPair = *r.JSON200
	}
	if u, _ := env.Client.UpdateUserWithResponse(bg, co.JSON201.User.Id, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, w.as(api.UserRoleOwner)); u.JSON200 == nil {
		t.Fatalf("demote: %s", u.Body)
	}
	if r := refresh(t, env, coPair.RefreshToken); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("the demoted co-owner's password session: %d", r.StatusCode())
	}
}

// An identity vouched for through one client of an issuer does not sign an owner in through
// another client of it, such as one an admin registered at the same provider.
func TestSSOOwnerTrustStaysWithItsClient(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	owner := w.users[api.UserRoleOwner]
	configureSSO(t, env, w, sp, api.SSORoleMember, true)
	sp.person("sub-owner", string(owner.Email), true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("the owner under the owner's configuration: %s", l.at)
	}
	sp.setAlias("admins-client")
	secret := sp.ClientSecret
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: sp.Issuer(), ClientId: "admins-client", ClientSecret: &secret,
		AllowedDomains: []string{"example.test"}, DefaultRole: api.SSORoleMember}, w.as(api.UserRoleAdmin)); r.JSON200 == nil {
		t.Fatalf("put as admin: %s", r.Body)
	}
	sp.person("sub-owner", string(owner.Email), true)
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "owner_not_allowed" {
		t.Fatalf("the owner's subject through the admin's client: %s", l.at)
	}
	// Others sign in through it as usual (the alias works).
	sp.person("sub-member", "member@example.test", true)
	if l := newBrowser(t, env).signIn(w.Slug); l.code == "" {
		t.Fatalf("a member through the admin's client: %s", l.at)
	}
}

// A sign-in is admitted under the configuration in force when it is admitted: domains narrowed
// while the provider was answering apply to it.
func TestSSOAdmitsUnderTheConfigurationInForce(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	sp := newSSOProvider(t)
	configureSSO(t, env, w, sp, api.SSORoleAdmin, true, "example.test", "contractor.test")
	sp.person("sub-x", "x@contractor.test", true)
	sp.setOnToken(func() { configureSSO(t, env, w, sp, api.SSORoleViewer, true, "example.test") })
	if l := newBrowser(t, env).signIn(w.Slug); l.err != "domain_not_allowed" {
		t.Fatalf("a domain removed during the sign-in: %s", l.at)
	}
	// And the default role is the new one.
	configureSSO(t, env, w, sp, api.SSORoleAdmin, true)
	sp.person("sub-y", "y@example.test", true)
	sp.setOnToken(func() { configureSSO(t, env, w, sp, api.SSORoleViewer, true) })
	l := newBrowser(t, env).signIn(w.Slug)
	if m := me(t, env, exchange(t, env, l.code).AccessToken); m.JSON200 == nil || m.JSON200.Role != api.UserRoleViewer {
		t.Fatalf("the default role changed during the sign-in: %s", l.at)
	}
}
