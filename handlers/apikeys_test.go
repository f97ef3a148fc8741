package handlers_test

import (
	"bytes"
	"crypto/sha256"
	"github.com/jackc/pgx/v5"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

func createKey(t *testing.T, env *apitest.Env, token string, body api.APIKeyCreate) *api.CreateAPIKeyResponse {
	t.Helper()
	resp, err := env.Client.CreateAPIKeyWithResponse(bg, body, apitest.Bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestAPIKeyIsShownOnceAndWorksAsBearer(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	created := createKey(t, env, a.Tokens.AccessToken, api.APIKeyCreate{Name: "ci", Role: api.UserRoleMember})
	if created.StatusCode() != http.StatusCreated || created.JSON201 == nil {
		t.Fatalf("create: %d %s", created.StatusCode(), created.Body)
	}
	k := created.JSON201
	if !strings.HasPrefix(k.Key, "tka_") || !strings.HasPrefix(k.Key, k.Prefix) || k.Prefix == k.Key || k.CreatedBy != a.Owner.Id || k.Role != api.UserRoleMember {
		t.Fatalf("created key %+v", k)
	}

	m := me(t, env, k.Key)
	if m.JSON200 == nil {
		t.Fatalf("me with the key: %d %s", m.StatusCode(), m.Body)
	}
	if m.JSON200.AuthMethod != api.ApiKey || m.JSON200.Role != api.UserRoleMember || m.JSON200.User.Id != a.Owner.Id {
		t.Errorf("me with a member key = %+v; want the member role, not the creator's", m.JSON200)
	}

	list, err := env.Client.ListAPIKeysWithResponse(bg, nil, apitest.Bearer(a.Tokens.AccessToken))
	if err != nil || list.JSON200 == nil || len(list.JSON200.Items) != 1 {
		t.Fatalf("list: %v %s", err, list.Body)
	}
	if strings.Contains(string(list.Body), k.Key) {
		t.Fatal("the list shows the secret")
	}
	if list.JSON200.Items[0].LastUsedAt == nil {
		t.Error("last_used_at was not recorded after use")
	}
	// Only the hash is stored.
	err = env.DB.Write(bg, tenancy.Scope{Tenant: a.Tenant.Id}, func(tx *tenancy.Tx) error {
		q := tx.Q
		rows, err := q.ListAPIKeys(bg, db.ListAPIKeysParams{Lim: 10})
		if err != nil {
			return err
		}
		parsed, err := tokens.ParseOpaque(tokens.APIKey, k.Key)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(parsed.Secret)
		if len(rows) != 1 || !bytes.Equal(rows[0].SecretHash, sum[:]) || rows[0].Prefix != k.Prefix {
			t.Errorf("stored key %+v; want only the SHA-256 of the secret", rows)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(auditActions(t, env, a.Tenant.Id), "api_key.create") {
		t.Error("key creation is not in the audit log")
	}
	// Sessions (with their addresses and user agents) are their signed-in user's only.
	sessions, err := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(k.Key))
	if err != nil || sessions.StatusCode() != http.StatusForbidden {
		t.Fatalf("sessions listed with a key: %v %d %s", err, sessions.StatusCode(), sessions.Body)
	}
}

func TestAPIKeyRolesAreBounded(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	admin := createKey(t, env, a.Tokens.AccessToken, api.APIKeyCreate{Name: "admin", Role: api.UserRoleAdmin}).JSON201
	viewer := createKey(t, env, a.Tokens.AccessToken, api.APIKeyCreate{Name: "viewer", Role: api.UserRoleViewer}).JSON201
	if admin == nil || viewer == nil {
		t.Fatal("setup keys not created")
	}
	// An admin may not mint an owner, only up to an admin.
	env.AddUser(t, a, "admin@example.test", api.UserRoleAdmin)
	human := env.Login(t, a.Slug, "admin@example.test", a.Password)
	if r := createKey(t, env, human.AccessToken, api.APIKeyCreate{Name: "escalate", Role: api.UserRoleOwner}); r.StatusCode() != http.StatusForbidden {
		t.Errorf("admin creating an owner key: %d, want 403", r.StatusCode())
	}
	if r := createKey(t, env, human.AccessToken, api.APIKeyCreate{Name: "peer", Role: api.UserRoleAdmin}); r.StatusCode() != http.StatusCreated {
		t.Errorf("admin creating an admin key: %d %s, want 201", r.StatusCode(), r.Body)
	}
	// Keys do not mint keys: the offspring would outlive the parent's revocation.
	if r := createKey(t, env, admin.Key, api.APIKeyCreate{Name: "child", Role: api.UserRoleViewer}); r.StatusCode() != http.StatusForbidden {
		t.Errorf("an admin key creating a key: %d, want 403", r.StatusCode())
	}
	// Nor do they end their creator's sessions.
	sessions, _ := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(a.Tokens.AccessToken))
	rv, _ := env.Client.RevokeSessionWithResponse(bg, sessions.JSON200.Items[0].Id, apitest.Bearer(admin.Key))
	wantStatus(t, "an API key revoking a session", rv.StatusCode(), rv.Body, http.StatusForbidden)
	// Viewers and members cannot manage keys at all (x-min-role: admin).
	env.AddUser(t, a, "member@example.test", api.UserRoleMember)
	member := env.Login(t, a.Slug, "member@example.test", a.Password)
	for name, tok := range map[string]string{"viewer key": viewer.Key, "member user": member.AccessToken} {
		if r := createKey(t, env, tok, api.APIKeyCreate{Name: "x", Role: api.UserRoleViewer}); r.StatusCode() != http.StatusForbidden || problemIn(r.Body) == nil {
			t.Errorf("%s creating a key: %d, want a 403 problem", name, r.StatusCode())
		}
		if r, _ := env.Client.ListAPIKeysWithResponse(bg, nil, apitest.Bearer(tok)); r.StatusCode() != http.StatusForbidden {
			t.Errorf("%s listing keys: %d, want 403", name, r.StatusCode())
		}
	}
}

func TestRevokedExpiredAndForgedKeysFail(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	k := createKey(t, env, a.Tokens.AccessToken, api.APIKeyCreate{Name: "short", Role: api.UserRoleViewer}).JSON201
	if k == nil {
		t.Fatal("no key")
	}
	forged := k.Key[:len(k.Key)-5] + "AAAAA"
	m := me(t, env, forged)
	wantUnauthorized(t, "wrong secret", m.StatusCode(), m.HTTPResponse.Header, problemIn(m.Body), m.Body)
	m = me(t, env, "tka_nonsense")
	wantUnauthorized(t, "malformed key", m.StatusCode(), m.HTTPResponse.Header, problemIn(m.Body), m.Body)

	del, err := env.Client.DeleteAPIKeyWithResponse(bg, k.Id, apitest.Bearer(a.Tokens.AccessToken))
	if err != nil || del.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %v %d", err, del.StatusCode())
	}
	m = me(t, env, k.Key)
	wantUnauthorized(t, "revoked key", m.StatusCode(), m.HTTPResponse.Header, problemIn(m.Body), m.Body)
	again, _ := env.Client.DeleteAPIKeyWithResponse(bg, k.Id, apitest.Bearer(a.Tokens.AccessToken))
	if again.StatusCode() != http.StatusNotFound {
		t.Errorf("deleting twice: %d, want 404", again.StatusCode())
	}

	past := time.Now().Add(-time.Minute)
	if r := createKey(t, env, a.Tokens.AccessToken, api.APIKeyCreate{Name: "old", Role: api.UserRoleViewer, ExpiresAt: &past}); r.StatusCode() != http.StatusBadRequest {
		t.Errorf("creating an already expired key: %d, want 400", r.StatusCode())
	}
	soon := time.Now().Add(1500 * time.Millisecond)
	exp := createKey(t, env, a.Tokens.AccessToken, api.APIKeyCreate{Name: "soon", Role: api.UserRoleViewer, ExpiresAt: &soon}).JSON201
	if m := me(t, env, exp.Key); m.JSON200 == nil {
		t.Fatalf("a key before its expiry: %s", m.Body)
	}
	time.Sleep(time.Until(soon) + 100*time.Millisecond)
	m = me(t, env, exp.Key)
	wantUnauthorized(t, "expired key", m.StatusCode(), m.HTTPResponse.Header, problemIn(m.Body), m.Body)
}

func TestKeysOfADeactivatedUserStopWorking(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	adminID := env.AddUser(t, a, "admin@example.test", api.UserRoleAdmin)
	admin := env.Login(t, a.Slug, "admin@example.test", a.Password)
	k := createKey(t, env, admin.AccessToken, api.APIKeyCreate{Name: "k", Role: api.UserRoleViewer}).JSON201
	if m := me(t, env, k.Key); m.JSON200 == nil {
		t.Fatal("key does not work before deactivation")
	}
	// Only the status changes (no revocation, as DELETE /v1/users would do): the key check
	// must look at its creator by itself.
	err := env.DB.Tx(bg, tenancy.Scope{Tenant: a.Tenant.Id}, func(tx pgx.Tx) error {
		_, err := tx.Exec(bg, "UPDATE users SET status = 'deactivated' WHERE id = $1", adminID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m := me(t, env, k.Key)
	wantUnauthorized(t, "key of a deactivated user", m.StatusCode(), m.HTTPResponse.Header, problemIn(m.Body), m.Body)
}

func TestAPIKeyInputIsValidated(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	for name, body := range map[string]string{
		"no name":      `{"role":"viewer"}`,
		"bad role":     `{"name":"x","role":"god"}`,
		"unknown":      `{"name":"x","role":"viewer","scopes":["all"]}`,
		"long name":    `{"name":"` + strings.Repeat("n", 101) + `","role":"viewer"}`,
		"bad deadline": `{"name":"x","role":"viewer","expires_at":"tomorrow"}`,
	} {
		resp, err := env.Client.CreateAPIKeyWithBodyWithResponse(bg, "application/json", strings.NewReader(body), apitest.Bearer(a.Tokens.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != http.StatusBadRequest || problemIn(resp.Body) == nil || problemIn(resp.Body).Errors == nil {
			t.Errorf("%s: %d %s; want a 400 problem naming the field", name, resp.StatusCode(), resp.Body)
		}
	}
	// Without credentials the body is not even looked at.
	resp, _ := env.Client.CreateAPIKeyWithBodyWithResponse(bg, "application/json", strings.NewReader(`{}`))
	if resp.StatusCode() != http.StatusUnauthorized {
		t.Errorf("unauthenticated create with a bad body: %d, want 401", resp.StatusCode())
	}
}
