package handlers_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/sso"
	"github.com/tasker/tasker/internal/testdb"
)

// provider starts an OpenID provider in process (mockoidc) for t.
func provider(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

func TestSSOConfigIsStoredWithItsSecretSealed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	m := provider(t)
	secret := "s3cr3t-" + m.Config().ClientSecret
	put := api.SSOConfigPut{Issuer: m.Issuer(), ClientId: m.Config().ClientID, ClientSecret: &secret,
		AllowedDomains: []string{"Example.TEST", "example.test", "acme.test."}, DefaultRole: api.SSORoleMember, PasswordLogin: ptr(false)}
	r, err := env.Client.PutSSOConfigWithResponse(bg, put, w.as(api.UserRoleAdmin))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("put: %v %d %s", err, r.StatusCode(), r.Body)
	}
	got := *r.JSON200
	if got.Issuer != m.Issuer() || !got.ClientSecretSet || strings.Join(got.AllowedDomains, ",") != "example.test,acme.test" ||
		got.DefaultRole != api.SSORoleMember || got.PasswordLogin {
		t.Errorf("stored %+v", got)
	}
	if strings.Contains(string(r.Body), secret) {
		t.Error("the response carries the client secret")
	}
	var sealed []byte
	if err := testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT client_secret_sealed FROM sso_configs WHERE tenant_id = $1`, w.Tenant.Id).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(secret)) {
		t.Errorf("the stored secret is not sealed: %q", sealed)
	}
	if strings.Contains(string(logsOf(env.Logs)), secret) {
		t.Error("the client secret was logged")
	}
	// An update without the secret keeps the stored one.
	put.ClientSecret, put.DefaultRole = nil, api.SSORoleViewer
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, put, w.as(api.UserRoleOwner)); r.JSON200 == nil || r.JSON200.DefaultRole != api.SSORoleViewer || !r.JSON200.ClientSecretSet {
		t.Fatalf("update without the secret: %d %s", r.StatusCode(), r.Body)
	}
	var kept []byte
	_ = testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT client_secret_sealed FROM sso_configs WHERE tenant_id = $1`, w.Tenant.Id).Scan(&kept)
	if !bytes.Equal(kept, sealed) {
		t.Error("an update without a secret changed the stored one")
	}
	// (The admin's password session ended when passwords became owners' only.)
	if g, _ := env.Client.GetSSOConfigWithResponse(bg, w.as(api.UserRoleOwner)); g.JSON200 == nil || g.JSON200.ClientId != put.ClientId || strings.Contains(string(g.Body), secret) {
		t.Errorf("get: %d %s", g.StatusCode(), g.Body)
	}
	// Members, viewers, API keys and other tenants see nothing.
	for _, role := range []api.UserRole{api.UserRoleMember, api.UserRoleViewer} {
		if g, _ := env.Client.GetSSOConfigWithResponse(bg, w.as(role)); g.StatusCode() != http.StatusForbidden {
			t.Errorf("get as %s: %d", role, g.StatusCode())
		}
	}
	key := createKey(t, env, w.tokens[api.UserRoleOwner], api.APIKeyCreate{Name: "k", Role: api.UserRoleAdmin})
	if g, _ := env.Client.GetSSOConfigWithResponse(bg, apitest.Bearer(key.JSON201.Key)); g.StatusCode() != http.StatusForbidden {
		t.Errorf("get with an admin API key: %d", g.StatusCode())
	}
	other := newWorkspace(t, env)
	if g, _ := env.Client.GetSSOConfigWithResponse(bg, other.as(api.UserRoleOwner)); g.StatusCode() != http.StatusNotFound {
		t.Errorf("another tenant's get: %d", g.StatusCode())
	}
	if d, _ := env.Client.DeleteSSOConfigWithResponse(bg, other.as(api.UserRoleOwner)); d.StatusCode() != http.StatusNotFound {
		t.Errorf("another tenant's delete: %d", d.StatusCode())
	}
	if d, _ := env.Client.DeleteSSOConfigWithResponse(bg, w.as(api.UserRoleOwner)); d.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %d", d.StatusCode())
	}
	if g, _ := env.Client.GetSSOConfigWithResponse(bg, w.as(api.UserRoleOwner)); g.StatusCode() != http.StatusNotFound {
		t.Errorf("get after delete: %d", g.StatusCode())
	}
	r2, _ := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{ResourceType: ptr("sso_config")}, w.as(api.UserRoleOwner))
	if r2.JSON200 == nil || len(r2.JSON200.Items) != 3 || strings.Contains(string(r2.Body), secret) {
		t.Errorf("audit: %s", r2.Body)
	}
}

func TestSSOConfigRefusesIssuersItCannotUse(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	m := provider(t)
	wrongIssuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"https://elsewhere.test","authorization_endpoint":"x","token_endpoint":"y","jwks_uri":"z"}`))
	}))
	t.Cleanup(wrongIssuer.Close)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }))
	t.Cleanup(notJSON.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	secret := "x"
	for _, c := range []struct{ issuer, reason string }{
		{closed.URL, "could not be reached"},
		{wrongIssuer.URL, "names another issuer"},
		{notJSON.URL, "not valid JSON"},
		{m.Issuer() + "/nothing", "answered its discovery URL with 404"},
		{"ftp://login.example.test", "not https"},
		{m.Issuer() + "?x=1", "query"},
	} {
		r, _ := env.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: c.issuer, ClientId: "c", ClientSecret: &secret,
			AllowedDomains: []string{"example.test"}, DefaultRole: api.SSORoleMember}, w.as(api.UserRoleAdmin))
		if r.StatusCode() != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), c.reason) {
			t.Errorf("%s: %d %s; want 422 saying %q", c.issuer, r.StatusCode(), r.Body, c.reason)
		}
	}
	// The first configuration needs a secret; domains must be domains.
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: m.Issuer(), ClientId: "c",
		AllowedDomains: []string{"example.test"}, DefaultRole: api.SSORoleMember}, w.as(api.UserRoleAdmin)); r.StatusCode() != http.StatusBadRequest {
		t.Errorf("no secret the first time: %d %s", r.StatusCode(), r.Body)
	}
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: m.Issuer(), ClientId: "c", ClientSecret: &secret,
		AllowedDomains: []string{"com"}, DefaultRole: api.SSORoleMember}, w.as(api.UserRoleAdmin)); r.StatusCode() != http.StatusBadRequest {
		t.Errorf("a bare top-level domain: %d %s", r.StatusCode(), r.Body)
	}
	// Without insecure issuers allowed, http and loopback are refused before any fetch.
	strict := apitest.NewWithOptions(t, apitest.Options{NoStripe: true, SSO: &handlers.SSOConfig{Policy: sso.Policy{}}})
	sw := newWorkspace(t, strict)
	for _, c := range []struct{ issuer, reason string }{
		{m.Issuer(), "must use https"},
		{strings.Replace(m.Issuer(), "http://", "https://", 1), "not on a public address"},
	} {
		r, _ := strict.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: c.issuer, ClientId: "c", ClientSecret: &secret,
			AllowedDomains: []string{"example.test"}, DefaultRole: api.SSORoleMember}, sw.as(api.UserRoleAdmin))
		if r.StatusCode() != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), c.reason) {
			t.Errorf("strict %s: %d %s; want 422 saying %q", c.issuer, r.StatusCode(), r.Body, c.reason)
		}
	}
	// A member may not make the server fetch anything.
	if r, _ := env.Client.PutSSOConfigWithResponse(bg, api.SSOConfigPut{Issuer: m.Issuer(), ClientId: "c", ClientSecret: &secret,
		AllowedDomains: []string{"example.test"}, DefaultRole: api.SSORoleMember}, w.as(api.UserRoleMember)); r.StatusCode() != http.StatusForbidden {
		t.Errorf("put as a member: %d", r.StatusCode())
	}
}
