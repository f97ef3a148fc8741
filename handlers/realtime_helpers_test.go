package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// mustStatus fails unless a call answered want; what names the call.
func mustStatus(t *testing.T, what string, err error, got, want int, body []byte) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if got != want {
		t.Fatalf("%s: %d %s, want %d", what, got, body, want)
	}
}

// rtUser is a signed-in user of a fixture's tenant.
type rtUser struct {
	id      uuid.UUID
	email   string
	tokens  api.TokenPair
	auth    api.RequestEditorFn
	session uuid.UUID
}

// user adds an active user with role to the fixture's tenant, puts them in its team when
// inTeam (through the API, so the tenant stream gets a team.member_put), and signs them in.
func (f rtFixture) user(t *testing.T, name string, role api.UserRole, inTeam bool) rtUser {
	t.Helper()
	email := name + "@example.test"
	id := f.env.AddUser(t, f.acct, email, role)
	if inTeam {
		resp, err := f.env.Client.PutTeamMemberWithResponse(context.Background(), f.team.Id, id, api.TeamMemberPut{Role: "member"}, f.owner)
		mustStatus(t, "put team member", err, resp.StatusCode(), http.StatusOK, resp.Body)
	}
	u := rtUser{id: id, email: email}
	u.signIn(t, f.env, f.acct.Slug, f.acct.Password)
	return u
}

// signIn gives u a new session.
func (u *rtUser) signIn(t *testing.T, env *apitest.Env, slug, password string) {
	t.Helper()
	u.tokens = env.Login(t, slug, u.email, password)
	u.auth = apitest.Bearer(u.tokens.AccessToken)
	u.session = sessionOf(t, env, u.tokens.AccessToken)
}

// sessionOf is the session an access token belongs to (its sid claim).
func sessionOf(t *testing.T, env *apitest.Env, token string) uuid.UUID {
	t.Helper()
	c, err := env.Issuer.Verify(token)
	if err != nil {
		t.Fatalf("verify access token: %v", err)
	}
	return c.SessionID
}

// expectEvent reads the next message and fails unless it is the event typ about resource on
// topic; it returns the event.
func expectEvent(t *testing.T, s *apitest.Socket, typ, topic string, resource uuid.UUID) apitest.Message {
	t.Helper()
	m := s.Next()
	if m.Type() != "event" || m.Str("event") != typ || m.Str("topic") != topic || m.Str("resource_id") != resource.String() {
		t.Fatalf("got %v, want event %s about %s on %s", m, typ, resource, topic)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.Str("at")); err != nil {
		t.Errorf("%s: at %q is not RFC 3339", typ, m.Str("at"))
	}
	return m
}

// field is the JSON of one top-level field of a response body.
func field(t *testing.T, body []byte, name string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	raw, ok := m[name]
	if !ok {
		t.Fatalf("body %s has no %s", body, name)
	}
	return raw
}

// mustJSONOf marshals v for sameJSON.
func mustJSONOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func taskTopic(id uuid.UUID) string { return "task:" + id.String() }

// logRecord returns the first log record with message msg for which match holds, or nil.
func logRecord(env *apitest.Env, msg string, match func(map[string]any) bool) map[string]any {
	for _, rec := range env.Logs.Lines() {
		if rec["msg"] == msg && match(rec) {
			return rec
		}
	}
	return nil
}

// pollUntil calls cond every 50ms until it holds or timeout passes; it returns how long that took
// and whether cond held.
func pollUntil(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// meStatus is GET /v1/me's status and role on env for token.
func meStatus(t *testing.T, env *apitest.Env, token string) (int, api.UserRole) {
	t.Helper()
	resp, err := env.Client.GetMeWithResponse(context.Background(), apitest.Bearer(token))
	if err != nil {
		t.Fatalf("get me: %v", err)
	}
	if resp.JSON200 != nil {
		return resp.StatusCode(), resp.JSON200.Role
	}
	if resp.StatusCode() == http.StatusUnauthorized && !strings.HasPrefix(resp.HTTPResponse.Header.Get("Content-Type"), "application/problem+json") {
		t.Errorf("401 is not problem+json")
	}
	return resp.StatusCode(), ""
}
