package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/oapi-codegen/nullable"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// workspace is a tenant with a team, a project in it, and people of every role signed in.
type workspace struct {
	apitest.Account
	team    api.Team
	project api.Project
	tokens  map[api.UserRole]string // owner, admin, member (in the team), viewer
	users   map[api.UserRole]api.User
	outside string // a member who is not in the team
}

func newWorkspace(t testing.TB, env *apitest.Env) workspace {
	t.Helper()
	a := env.Signup(t)
	w := workspace{Account: a, tokens: map[api.UserRole]string{api.UserRoleOwner: a.Tokens.AccessToken}, users: map[api.UserRole]api.User{api.UserRoleOwner: a.Owner}}
	owner := apitest.Bearer(a.Tokens.AccessToken)
	for _, role := range []api.UserRole{api.UserRoleAdmin, api.UserRoleMember, api.UserRoleViewer} {
		email := string(role) + "@example.test"
		pw := "password for " + string(role)
		resp, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: openapi_types.Email(email), Name: string(role), Role: role, Password: &pw}, owner)
		if err != nil || resp.JSON201 == nil {
			t.Fatalf("create %s: %v %s", role, err, resp.Body)
		}
		w.users[role] = resp.JSON201.User
		w.tokens[role] = env.Login(t, a.Slug, email, pw).AccessToken
	}
	pw := "password for outsider"
	out, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "outsider@example.test", Name: "Outsider", Role: api.UserRoleMember, Password: &pw}, owner)
	if err != nil || out.JSON201 == nil {
		t.Fatalf("create outsider: %v", err)
	}
	w.outside = env.Login(t, a.Slug, "outsider@example.test", pw).AccessToken

	team, err := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Engineering", Key: "ENG"}, owner)
	if err != nil || team.JSON201 == nil {
		t.Fatalf("create team: %v %s", err, team.Body)
	}
	w.team = *team.JSON201
	m, err := env.Client.PutTeamMemberWithResponse(bg, w.team.Id, w.users[api.UserRoleMember].Id, api.TeamMemberPut{Role: api.TeamRoleMember}, owner)
	if err != nil || m.JSON200 == nil {
		t.Fatalf("add member: %v %s", err, m.Body)
	}
	proj, err := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.team.Id, Name: "Platform", Key: "PLAT"}, owner)
	if err != nil || proj.JSON201 == nil {
		t.Fatalf("create project: %v %s", err, proj.Body)
	}
	w.project = *proj.JSON201
	return w
}

func (w workspace) as(role api.UserRole) api.RequestEditorFn { return apitest.Bearer(w.tokens[role]) }

func createTask(t testing.TB, env *apitest.Env, w workspace, body api.TaskCreate) api.Task {
	t.Helper()
	resp, err := env.Client.CreateTaskWithResponse(bg, w.project.Id, nil, body, w.as(api.UserRoleOwner))
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("create task: %v %s", err, resp.Body)
	}
	return *resp.JSON201
}

// wantStatus fails unless a response has the status, and, for errors, a problem document with
// that status as its body.
func wantStatus(t *testing.T, what string, got int, body []byte, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s: status %d, want %d; body %s", what, got, want, body)
		return
	}
	if want >= 400 {
		var p api.Problem
		if err := json.Unmarshal(body, &p); err != nil || p.Status != want || p.Type == "" || p.Title == "" {
			t.Errorf("%s: %d without a problem document: %s", what, got, body)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func nullableValue[T any](v T) nullable.Nullable[T] { return nullable.NewNullableWithValue(v) }

func withHeader(k, v string) api.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set(k, v)
		return nil
	}
}

// problemIn is the problem document a response body holds, or nil: the generated client decodes
// each documented error status into its own field, so tests read the body whatever the status.
func problemIn(body []byte) *api.Problem {
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil || p.Type == "" || p.Status == 0 {
		return nil
	}
	return &p
}
