package handlers_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// send makes a raw request through the validating client: bodies the generated client cannot
// produce (invalid UTF-8, trailing data) and paths it would not build.
func send(t *testing.T, env *apitest.Env, method, path, token string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, env.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// wantField fails unless the response is a 400 problem naming field in place.
func wantField(t *testing.T, what string, resp *http.Response, body []byte, field, in string) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("%s: status %d, want 400; body %s", what, resp.StatusCode, body)
		return
	}
	p := problemOf(t, resp, body)
	if p.Errors == nil {
		t.Errorf("%s: no field errors: %s", what, body)
		return
	}
	for _, e := range *p.Errors {
		if e.Field == field && string(e.In) == in {
			return
		}
	}
	t.Errorf("%s: problem does not name %s in %s: %s", what, field, in, body)
}

func TestStaleTokensCannotUndoDeactivationOrDemotion(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.as(api.UserRoleOwner)
	admin := w.users[api.UserRoleAdmin]
	stale := w.tokens[api.UserRoleAdmin] // issued while an admin, valid for 15 more minutes

	// Demoted to member: the token still says admin.
	r, _ := env.Client.UpdateUserWithResponse(bg, admin.Id, api.UserUpdate{Role: ptr(api.UserRoleMember)}, owner)
	wantStatus(t, "owner demotes the admin", r.StatusCode(), r.Body, http.StatusOK)
	pw := "backdoor password"
	back, _ := env.Client.UpdateUserWithResponse(bg, admin.Id, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, apitest.Bearer(stale))
	wantStatus(t, "the demoted admin undoes the demotion", back.StatusCode(), back.Body, http.StatusForbidden)
	door, _ := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "door@example.test", Name: "Door", Role: api.UserRoleAdmin, Password: &pw}, apitest.Bearer(stale))
	wantStatus(t, "the demoted admin creates an admin", door.StatusCode(), door.Body, http.StatusForbidden)
	key, _ := env.Client.CreateAPIKeyWithResponse(bg, api.APIKeyCreate{Name: "k", Role: api.UserRoleAdmin}, apitest.Bearer(stale))
	wantStatus(t, "the demoted admin mints an admin key", key.StatusCode(), key.Body, http.StatusForbidden)
	team, _ := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Shadow", Key: "SHD"}, apitest.Bearer(stale))
	wantStatus(t, "the demoted admin creates a team", team.StatusCode(), team.Body, http.StatusForbidden)

	// Deactivated: the token still says active.
	d, _ := env.Client.DeactivateUserWithResponse(bg, admin.Id, owner)
	wantStatus(t, "owner deactivates the member", d.StatusCode(), d.Body, http.StatusNoContent)
	react, _ := env.Client.UpdateUserWithResponse(bg, admin.Id, api.UserUpdate{Status: ptr(api.UserUpdateStatusActive)}, apitest.Bearer(stale))
	wantStatus(t, "the deactivated user reactivates themselves", react.StatusCode(), react.Body, http.StatusUnauthorized)
	task, _ := env.Client.CreateTaskWithResponse(bg, w.project.Id, nil, api.TaskCreate{Title: "vandalism"}, apitest.Bearer(stale))
	wantStatus(t, "the deactivated user writes a task", task.StatusCode(), task.Body, http.StatusUnauthorized)

	u, _ := env.Client.GetUserWithResponse(bg, admin.Id, owner)
	if u.JSON200 == nil || u.JSON200.Role != api.UserRoleMember || u.JSON200.Status != api.UserStatusDeactivated {
		t.Errorf("the user after the attempts: %s", u.Body)
	}
	users, _ := env.Client.ListUsersWithResponse(bg, nil, owner)
	for _, x := range users.JSON200.Items {
		if x.Email == "door@example.test" {
			t.Errorf("the backdoor user exists: %+v", x)
		}
	}
}

func TestWritesAfterLogoutAreRefused(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	out, _ := env.Client.LogoutWithResponse(bg, api.LogoutJSONRequestBody{RefreshToken: a.Tokens.RefreshToken})
	wantStatus(t, "logout", out.StatusCode(), out.Body, http.StatusNoContent)
	team, _ := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "After", Key: "AFT"}, apitest.Bearer(a.Tokens.AccessToken))
	wantStatus(t, "a write with the access token of an ended session", team.StatusCode(), team.Body, http.StatusUnauthorized)
}

func TestNobodyChangesTheirOwnRoleOrStatus(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	admin := w.users[api.UserRoleAdmin]
	r, _ := env.Client.UpdateUserWithResponse(bg, admin.Id, api.UserUpdate{Role: ptr(api.UserRoleViewer)}, w.as(api.UserRoleAdmin))
	wantStatus(t, "an admin changes their own role", r.StatusCode(), r.Body, http.StatusForbidden)
	d, _ := env.Client.DeactivateUserWithResponse(bg, admin.Id, w.as(api.UserRoleAdmin))
	wantStatus(t, "an admin deactivates themselves", d.StatusCode(), d.Body, http.StatusForbidden)
	r, _ = env.Client.UpdateUserWithResponse(bg, admin.Id, api.UserUpdate{Name: ptr("Renamed"), Role: ptr(api.UserRoleAdmin)}, w.as(api.UserRoleAdmin))
	if r.JSON200 == nil || r.JSON200.Name != "Renamed" || r.JSON200.Role != api.UserRoleAdmin {
		t.Errorf("an admin renames themselves, role unchanged: %d %s", r.StatusCode(), r.Body)
	}
}

func TestAPIKeysCannotChangeRolesOrStatuses(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	key := createKey(t, env, w.tokens[api.UserRoleOwner], api.APIKeyCreate{Name: "automation", Role: api.UserRoleAdmin}).JSON201.Key
	viewer := w.users[api.UserRoleViewer]
	r, _ := env.Client.UpdateUserWithResponse(bg, viewer.Id, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, apitest.Bearer(key))
	wantStatus(t, "a key promotes a viewer", r.StatusCode(), r.Body, http.StatusForbidden)
	d, _ := env.Client.DeactivateUserWithResponse(bg, w.users[api.UserRoleMember].Id, w.as(api.UserRoleOwner))
	wantStatus(t, "owner deactivates the member", d.StatusCode(), d.Body, http.StatusNoContent)
	r, _ = env.Client.UpdateUserWithResponse(bg, w.users[api.UserRoleMember].Id, api.UserUpdate{Status: ptr(api.UserUpdateStatusActive)}, apitest.Bearer(key))
	wantStatus(t, "a key reactivates a user", r.StatusCode(), r.Body, http.StatusForbidden)
	d, _ = env.Client.DeactivateUserWithResponse(bg, viewer.Id, apitest.Bearer(key))
	wantStatus(t, "a key deactivates a user", d.StatusCode(), d.Body, http.StatusForbidden)
	r, _ = env.Client.UpdateUserWithResponse(bg, viewer.Id, api.UserUpdate{Name: ptr("Vera")}, apitest.Bearer(key))
	if r.JSON200 == nil || r.JSON200.Name != "Vera" || r.JSON200.Role != api.UserRoleViewer || r.JSON200.Status != api.UserStatusActive {
		t.Errorf("a key renames a user: %d %s", r.StatusCode(), r.Body)
	}
}

func TestADeactivatedInviteeCannotBeMadeActive(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.as(api.UserRoleOwner)
	inv, _ := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "later@example.test", Name: "Later", Role: api.UserRoleMember}, owner)
	if inv.JSON201 == nil {
		t.Fatalf("invite: %s", inv.Body)
	}
	d, _ := env.Client.DeactivateUserWithResponse(bg, inv.JSON201.User.Id, owner)
	wantStatus(t, "deactivate the invitee", d.StatusCode(), d.Body, http.StatusNoContent)
	r, _ := env.Client.UpdateUserWithResponse(bg, inv.JSON201.User.Id, api.UserUpdate{Status: ptr(api.UserUpdateStatusActive)}, owner)
	wantStatus(t, "activate a deactivated invitee", r.StatusCode(), r.Body, http.StatusConflict)
	u, _ := env.Client.GetUserWithResponse(bg, inv.JSON201.User.Id, owner)
	if u.JSON200 == nil || u.JSON200.Status != api.UserStatusDeactivated {
		t.Errorf("the invitee after: %s", u.Body)
	}
}

func TestIdempotentReplaysComeAfterPermissionChecks(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	admin := w.users[api.UserRoleAdmin]
	stale := apitest.Bearer(w.tokens[api.UserRoleAdmin])
	adminKey := createKey(t, env, w.tokens[api.UserRoleAdmin], api.APIKeyCreate{Name: "k", Role: api.UserRoleAdmin}).JSON201.Key

	pw := "a long password"
	body := api.UserCreate{Email: "made@example.test", Name: "Made", Role: api.UserRoleMember, Password: &pw}
	first, _ := env.Client.CreateUserWithResponse(bg, &api.CreateUserParams{IdempotencyKey: ptr("K1")}, body, stale)
	wantStatus(t, "the admin creates a user", first.StatusCode(), first.Body, http.StatusCreated)
	viaKey, _ := env.Client.CreateUserWithResponse(bg, &api.CreateUserParams{IdempotencyKey: ptr("K1")}, body, apitest.Bearer(adminKey))
	wantStatus(t, "the admin's key retries the user creation", viaKey.StatusCode(), viaKey.Body, http.StatusForbidden)

	team, _ := env.Client.CreateTeamWithResponse(bg, &api.CreateTeamParams{IdempotencyKey: ptr("K2")}, api.TeamCreate{Name: "Ops", Key: "OPS"}, stale)
	wantStatus(t, "the admin creates a team", team.StatusCode(), team.Body, http.StatusCreated)
	r, _ := env.Client.UpdateUserWithResponse(bg, admin.Id, api.UserUpdate{Role: ptr(api.UserRoleViewer)}, w.as(api.UserRoleOwner))
	wantStatus(t, "owner demotes the admin", r.StatusCode(), r.Body, http.StatusOK)
	again, _ := env.Client.CreateTeamWithResponse(bg, &api.CreateTeamParams{IdempotencyKey: ptr("K2")}, api.TeamCreate{Name: "Ops", Key: "OPS"}, stale)
	wantStatus(t, "the demoted admin retries", again.StatusCode(), again.Body, http.StatusForbidden)
	if again.HTTPResponse.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("a refused retry was marked as a replay")
	}
}

func TestTextThatCannotBeStoredIsRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.tokens[api.UserRoleOwner]
	task := createTask(t, env, w, api.TaskCreate{Title: "target"})
	team, proj := w.team.Id.String(), w.project.Id.String()
	user := w.users[api.UserRoleViewer].Id.String()

	cases := []struct {
		name, method, path string
		authed             bool
		body               string // %s is replaced by the bad text
		field              string
	}{
		{"sign-up tenant name", "POST", "/v1/auth/signup", false, `{"tenant_name":"%s","tenant_slug":"bad-text","email":"a@example.test","password":"long enough password","name":"A"}`, "tenant_name"},
		{"sign-up name", "POST", "/v1/auth/signup", false, `{"tenant_name":"T","tenant_slug":"bad-text","email":"a@example.test","password":"long enough password","name":"%s"}`, "name"},
		{"sign-up password", "POST", "/v1/auth/signup", false, `{"tenant_name":"T","tenant_slug":"bad-text","email":"a@example.test","password":"long enough %s","name":"A"}`, "password"},
		{"login slug", "POST", "/v1/auth/login", false, `{"tenant_slug":"%s","email":"a@example.test","password":"x"}`, "tenant_slug"},
		{"login password", "POST", "/v1/auth/login", false, `{"tenant_slug":"` + w.Slug + `","email":"owner@example.test","password":"%s"}`, "password"},
		{"accept-invite password", "POST", "/v1/auth/accept-invite", false, `{"token":"tki_x","password":"long enough %s"}`, "password"},
		{"an unknown key", "POST", "/v1/teams", true, `{"name":"T","key":"BADK","%s":1}`, "%s"},
		{"team name", "POST", "/v1/teams", true, `{"name":"%s","key":"BADT"}`, "name"},
		{"team description", "PATCH", "/v1/teams/" + team, true, `{"description":"%s"}`, "description"},
		{"project name", "POST", "/v1/projects", true, `{"team_id":"` + team + `","name":"%s","key":"BADP"}`, "name"},
		{"project description", "PATCH", "/v1/projects/" + proj, true, `{"description":"%s"}`, "description"},
		{"task title", "POST", "/v1/projects/" + proj + "/tasks", true, `{"title":"%s"}`, "title"},
		{"task label", "POST", "/v1/projects/" + proj + "/tasks", true, `{"title":"t","labels":["ok","%s"]}`, "labels.1"},
		{"task description", "PATCH", "/v1/tasks/" + task.Id.String(), true, `{"description":"%s"}`, "description"},
		{"user name", "POST", "/v1/users", true, `{"email":"b@example.test","name":"%s","role":"viewer"}`, "name"},
		{"user rename", "PATCH", "/v1/users/" + user, true, `{"name":"%s"}`, "name"},
		{"key name", "POST", "/v1/api-keys", true, `{"name":"%s","role":"viewer"}`, "name"},
	}
	for _, tc := range cases {
		// field is how the problem names an unknown key holding the text: NUL dropped, each
		// invalid byte a U+FFFD.
		for _, bad := range []struct{ label, json, field string }{{"NUL", `x\u0000y`, "xy"}, {"invalid UTF-8", "x\xff\xfey", "x\uFFFD\uFFFDy"}} {
			token := ""
			if tc.authed {
				token = owner
			}
			body := strings.ReplaceAll(tc.body, "%s", bad.json)
			resp, out := send(t, env, tc.method, tc.path, token, []byte(body), nil)
			field := tc.field
			if field == "%s" {
				field = bad.field
			}
			wantField(t, tc.name+" with "+bad.label, resp, out, field, "body")
		}
	}

	queries := []struct{ path, field string }{
		{"/v1/projects/" + proj + "/tasks?q=%s", "q"},
		{"/v1/projects/" + proj + "/tasks?label=%s", "label"},
		{"/v1/audit-events?action=%s", "action"},
		{"/v1/audit-events?resource_type=%s", "resource_type"},
		{"/v1/tasks/AB%s-1", "id"},
	}
	for _, q := range queries {
		for _, bad := range []string{"x%00y", "x%FFy"} {
			resp, out := send(t, env, "GET", strings.ReplaceAll(q.path, "%s", bad), owner, nil, nil)
			in := "query"
			if q.field == "id" {
				in = "path"
			}
			wantField(t, "GET "+q.path+" with "+bad, resp, out, q.field, in)
		}
	}
	resp, out := send(t, env, "POST", "/v1/teams", owner, []byte(`{"name":"T","key":"IDEM"}`), map[string]string{"Idempotency-Key": "k\xffk"})
	wantField(t, "an Idempotency-Key that is not UTF-8", resp, out, "Idempotency-Key", "header")
}

func TestValidationProblemsNameTheParameter(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.tokens[api.UserRoleOwner]
	proj := w.project.Id.String()
	task := createTask(t, env, w, api.TaskCreate{Title: "target"})
	long := strings.Repeat("k", 300)
	cases := []struct {
		what, method, path string
		header             map[string]string
		body               string
		field, in          string
	}{
		{"limit=0", "GET", "/v1/projects/" + proj + "/tasks?limit=0", nil, "", "limit", "query"},
		{"a bad team_id", "GET", "/v1/projects?team_id=bad", nil, "", "team_id", "query"},
		{"a bad path uuid", "GET", "/v1/projects/not-a-uuid", nil, "", "id", "path"},
		{"status=bogus", "GET", "/v1/projects/" + proj + "/tasks?status=bogus", nil, "", "status", "query"},
		{"a long Idempotency-Key", "POST", "/v1/teams", map[string]string{"Idempotency-Key": long}, `{"name":"T","key":"LONG"}`, "Idempotency-Key", "header"},
		{"a long If-Match", "PATCH", "/v1/tasks/" + task.Id.String(), map[string]string{"If-Match": long}, `{"title":"x"}`, "If-Match", "header"},
		{"limit=%zz", "GET", "/v1/projects/" + proj + "/tasks?limit=%zz", nil, "", "limit", "query"},
		{"sort=position;drop", "GET", "/v1/projects/" + proj + "/tasks?sort=position;drop", nil, "", "sort", "query"},
	}
	for _, tc := range cases {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		resp, out := send(t, env, tc.method, tc.path, owner, body, tc.header)
		wantField(t, tc.what, resp, out, tc.field, tc.in)
	}
}

func TestBodiesMustHoldExactlyOneJSONValue(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	for _, body := range []string{`{"name":"x","key":"TRL"} garbage`, `{"name":"x","key":"TRA"}{"name":"y","key":"TRB"}`, `{"name":"x","key":"TRC"}]`} {
		resp, out := send(t, env, "POST", "/v1/teams", a.Tokens.AccessToken, []byte(body), nil)
		wantField(t, body, resp, out, "body", "body")
	}
	teams, _ := env.Client.ListTeamsWithResponse(bg, nil, apitest.Bearer(a.Tokens.AccessToken))
	if teams.JSON200 == nil || len(teams.JSON200.Items) != 0 {
		t.Errorf("teams after refused bodies: %s", teams.Body)
	}
	resp, out := send(t, env, "POST", "/v1/teams", a.Tokens.AccessToken, []byte("{\"name\":\"x\",\"key\":\"TRD\"}\n\t "), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("trailing white space: %d %s", resp.StatusCode, out)
	}
}

func TestValidationProblemsAreCapped(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	var b strings.Builder
	b.WriteString(`{"title":"capped"`)
	const unknown = 30000 // about 650 KB: under the 1 MiB a task body may have
	for i := range unknown {
		fmt.Fprintf(&b, `,"unknown_key_number_%05d":1`, i)
	}
	b.WriteString("}")
	resp, out := send(t, env, "POST", "/v1/projects/"+w.project.Id.String()+"/tasks", w.tokens[api.UserRoleOwner], []byte(b.String()), nil)
	p := problemOf(t, resp, out)
	if resp.StatusCode != http.StatusBadRequest || p.Errors == nil || len(*p.Errors) != 20 || p.ErrorCount == nil || *p.ErrorCount != unknown {
		t.Fatalf("%d unknown keys in a %d-byte body: status %d, %d bytes back: %.400s", unknown, b.Len(), resp.StatusCode, len(out), out)
	}
	if len(out) > 8<<10 {
		t.Errorf("a %d-byte body got a %d-byte problem", b.Len(), len(out))
	}
}

func TestNonCanonicalPathsAreProblems(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	for _, path := range []string{"//v1/users", "/./v1/me", "/v1/tasks/../users", "/v1//me"} {
		for _, token := range []string{"", a.Tokens.AccessToken} {
			resp, out := send(t, env, "GET", path, token, nil, nil)
			p := problemOf(t, resp, out)
			if resp.StatusCode != http.StatusNotFound || p.Status != 404 {
				t.Errorf("GET %s (signed in: %v): %d %s; want a 404 problem", path, token != "", resp.StatusCode, out)
			}
		}
	}
	// A trailing slash names no operation, whoever asks.
	for _, token := range []string{"", a.Tokens.AccessToken} {
		resp, out := send(t, env, "GET", "/v1/me/", token, nil, nil)
		if p := problemOf(t, resp, out); resp.StatusCode != http.StatusNotFound || p.Status != 404 {
			t.Errorf("GET /v1/me/ (signed in: %v): %d %s; want a 404 problem", token != "", resp.StatusCode, out)
		}
	}
}

func TestHeadAnswersLikeGetWithoutABody(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "headed"})
	owner := w.tokens[api.UserRoleOwner]
	getResp, _ := send(t, env, "GET", "/v1/tasks/"+task.Id.String(), owner, nil, nil)
	resp, out := send(t, env, "HEAD", "/v1/tasks/"+task.Id.String(), owner, nil, nil)
	if resp.StatusCode != http.StatusOK || len(out) != 0 || resp.Header.Get("ETag") == "" || resp.Header.Get("ETag") != getResp.Header.Get("ETag") {
		t.Errorf("HEAD a task: %d ETag %q (GET's %q), %d body bytes", resp.StatusCode, resp.Header.Get("ETag"), getResp.Header.Get("ETag"), len(out))
	}
	resp, _ = send(t, env, "HEAD", "/v1/me", "", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("HEAD /v1/me without a token: %d", resp.StatusCode)
	}
	resp, _ = send(t, env, "HEAD", "/healthz", "", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /healthz: %d", resp.StatusCode)
	}
}

func TestInstantsOutsideTheYearsGoCanWriteAreRefused(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	for _, at := range []string{"9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"} {
		resp, out := send(t, env, "POST", "/v1/api-keys", a.Tokens.AccessToken, []byte(`{"name":"k","role":"viewer","expires_at":"`+at+`"}`), nil)
		wantField(t, "expires_at "+at, resp, out, "expires_at", "body")
	}
	keys, _ := env.Client.ListAPIKeysWithResponse(bg, nil, apitest.Bearer(a.Tokens.AccessToken))
	if keys.JSON200 == nil || len(keys.JSON200.Items) != 0 {
		t.Errorf("keys after refused creations: %d %s", keys.StatusCode(), keys.Body)
	}
}

func TestAnEmptyIDSegmentIsNoOperation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	for _, tc := range []struct{ method, path string }{{"GET", "/v1/tasks"}, {"DELETE", "/v1/users"}, {"PATCH", "/v1/teams"}, {"PUT", "/v1/users"}} {
		for _, token := range []string{"", a.Tokens.AccessToken} {
			resp, out := send(t, env, tc.method, tc.path, token, nil, nil)
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s (signed in: %v): %d %s; want 404 or 405", tc.method, tc.path, token != "", resp.StatusCode, out)
			}
			if allow := resp.Header.Get("Allow"); strings.Contains(allow, "PATCH") || strings.Contains(allow, "DELETE") {
				t.Errorf("%s %s: Allow %q names methods of /%s/{id}", tc.method, tc.path, allow, tc.path)
			}
		}
	}
}

func TestKeysCannotListSessionsAndAdminsCannotRevokeOwnersKeys(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	viewerKey := createKey(t, env, w.tokens[api.UserRoleOwner], api.APIKeyCreate{Name: "v", Role: api.UserRoleViewer}).JSON201
	sessions, _ := env.Client.ListSessionsWithResponse(bg, nil, apitest.Bearer(viewerKey.Key))
	wantStatus(t, "a key lists its creator's sessions", sessions.StatusCode(), sessions.Body, http.StatusForbidden)
	del, _ := env.Client.DeleteAPIKeyWithResponse(bg, viewerKey.Id, w.as(api.UserRoleAdmin))
	wantStatus(t, "an admin revokes an owner's key", del.StatusCode(), del.Body, http.StatusForbidden)
	if m := me(t, env, viewerKey.Key); m.StatusCode() != http.StatusOK {
		t.Errorf("the owner's key after the refused revocation: %d", m.StatusCode())
	}
	adminKey := createKey(t, env, w.tokens[api.UserRoleAdmin], api.APIKeyCreate{Name: "a", Role: api.UserRoleViewer}).JSON201
	del, _ = env.Client.DeleteAPIKeyWithResponse(bg, adminKey.Id, w.as(api.UserRoleAdmin))
	wantStatus(t, "an admin revokes their own key", del.StatusCode(), del.Body, http.StatusNoContent)
	del, _ = env.Client.DeleteAPIKeyWithResponse(bg, viewerKey.Id, w.as(api.UserRoleOwner))
	wantStatus(t, "the owner revokes their key", del.StatusCode(), del.Body, http.StatusNoContent)
}

func TestUnknownDocsAssetsAreProblems(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	resp, out := send(t, env, "GET", "/docs/no-such-asset.js", "", nil, nil)
	if p := problemOf(t, resp, out); resp.StatusCode != http.StatusNotFound || p.Status != 404 {
		t.Errorf("an unknown docs asset: %d %s", resp.StatusCode, out)
	}
}

func TestMissingResourcesAreNamed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	for path, want := range map[string]string{"/v1/tasks/01a2338d-4266-79c1-8a0a-80afb79f071a": "No such task.", "/v1/tasks/NOPE-1": "No such task.",
		"/v1/teams/01a2338d-4266-79c1-8a0a-80afb79f071a": "No such team.", "/v1/users/01a2338d-4266-79c1-8a0a-80afb79f071a": "No such user."} {
		resp, out := send(t, env, "GET", path, a.Tokens.AccessToken, nil, nil)
		if p := problemOf(t, resp, out); resp.StatusCode != http.StatusNotFound || p.Detail == nil || *p.Detail != want {
			t.Errorf("GET %s: %d %s; want 404 %q", path, resp.StatusCode, out, want)
		}
	}
}
