package handlers_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// Every kind of write reaches an owner's tenant topic once, with consecutive ids, as the
// resource REST returned (or, for a deletion, as REST returned it just before).
func TestRealtimeTenantTopicCarriesEveryWriteAsREST(t *testing.T) {
	t.Parallel()
	sessions := apitest.TestSessions
	sessions.Grace = time.Millisecond // so that a second refresh of one token is a reuse at once
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true, Sessions: &sessions})
	f := newRTFixture(t, env)
	ctx := context.Background()
	c := env.Client
	sock := env.MustDial(t, f.acct.Tokens.AccessToken)
	next := int64(sock.Subscribe("tenant", nil)["last_id"].(float64)) + 1
	owner := f.acct.Owner.Id

	// expect reads the next event, checks its envelope and that its data is rest.
	expect := func(typ, resourceType string, resource uuid.UUID, project *uuid.UUID, rest []byte) {
		t.Helper()
		ev := expectEvent(t, sock, typ, "tenant", resource)
		if ev.ID() != next {
			t.Fatalf("%s: id %d, want %d (ids are consecutive)", typ, ev.ID(), next)
		}
		next++
		if ev.Str("resource_type") != resourceType || ev.Str("actor") != owner.String() {
			t.Errorf("%s: resource_type %q actor %q, want %s by %s", typ, ev.Str("resource_type"), ev.Str("actor"), resourceType, owner)
		}
		wantProject := ""
		if project != nil {
			wantProject = project.String()
		}
		if ev.Str("project_id") != wantProject {
			t.Errorf("%s: project_id %v, want %q", typ, ev["project_id"], wantProject)
		}
		sameJSON(t, typ, ev.Data(), rest)
	}

	// Teams.
	team, err := c.CreateTeamWithResponse(ctx, nil, api.TeamCreate{Key: "OPS", Name: "Operations"}, f.owner)
	mustStatus(t, "create team", err, team.StatusCode(), http.StatusCreated, team.Body)
	teamID := team.JSON201.Id
	expect("team.created", "team", teamID, nil, team.Body)
	teamName := "Ops"
	teamUp, err := c.UpdateTeamWithResponse(ctx, teamID, api.TeamUpdate{Name: &teamName}, f.owner)
	mustStatus(t, "update team", err, teamUp.StatusCode(), http.StatusOK, teamUp.Body)
	expect("team.updated", "team", teamID, nil, teamUp.Body)

	// Users: created through the API, then put in and out of the team.
	pw := "another horse battery"
	user, err := c.CreateUserWithResponse(ctx, nil, api.UserCreate{Email: openapi_types.Email("ada@example.test"), Name: "Ada", Role: "member", Password: &pw}, f.owner)
	mustStatus(t, "create user", err, user.StatusCode(), http.StatusCreated, user.Body)
	userID := user.JSON201.User.Id
	expect("user.created", "user", userID, nil, field(t, user.Body, "user"))
	put, err := c.PutTeamMemberWithResponse(ctx, teamID, userID, api.TeamMemberPut{Role: "lead"}, f.owner)
	mustStatus(t, "put team member", err, put.StatusCode(), http.StatusOK, put.Body)
	expect("team.member_put", "team", teamID, nil, put.Body)
	removed, err := c.DeleteTeamMemberWithResponse(ctx, teamID, userID, f.owner)
	mustStatus(t, "delete team member", err, removed.StatusCode(), http.StatusNoContent, removed.Body)
	expect("team.member_removed", "team", teamID, nil, mustJSONOf(t, map[string]any{"team_id": teamID, "user_id": userID}))

	// Projects, on the tenant topic too.
	proj, err := c.CreateProjectWithResponse(ctx, nil, api.ProjectCreate{Key: "WEB", Name: "Web", TeamId: teamID}, f.owner)
	mustStatus(t, "create project", err, proj.StatusCode(), http.StatusCreated, proj.Body)
	projID := proj.JSON201.Id
	expect("project.created", "project", projID, &projID, proj.Body)
	projName := "Website"
	projUp, err := c.UpdateProjectWithResponse(ctx, projID, api.ProjectUpdate{Name: &projName}, f.owner)
	mustStatus(t, "update project", err, projUp.StatusCode(), http.StatusOK, projUp.Body)
	expect("project.updated", "project", projID, &projID, projUp.Body)
	projGet, err := c.GetProjectWithResponse(ctx, projID, f.owner)
	mustStatus(t, "get project", err, projGet.StatusCode(), http.StatusOK, projGet.Body)
	projDel, err := c.DeleteProjectWithResponse(ctx, projID, nil, f.owner)
	mustStatus(t, "delete project", err, projDel.StatusCode(), http.StatusNoContent, projDel.Body)
	expect("project.deleted", "project", projID, &projID, projGet.Body)

	teamGet, err := c.GetTeamWithResponse(ctx, teamID, f.owner)
	mustStatus(t, "get team", err, teamGet.StatusCode(), http.StatusOK, teamGet.Body)
	teamDel, err := c.DeleteTeamWithResponse(ctx, teamID, f.owner)
	mustStatus(t, "delete team", err, teamDel.StatusCode(), http.StatusNoContent, teamDel.Body)
	expect("team.deleted", "team", teamID, nil, teamGet.Body)

	// user.updated: a role change, then a deactivation (204; the event shows the user after).
	admin := api.UserRole("admin")
	userUp, err := c.UpdateUserWithResponse(ctx, userID, api.UserUpdate{Role: &admin}, f.owner)
	mustStatus(t, "update user", err, userUp.StatusCode(), http.StatusOK, userUp.Body)
	expect("user.updated", "user", userID, nil, userUp.Body)
	deact, err := c.DeactivateUserWithResponse(ctx, userID, f.owner)
	mustStatus(t, "deactivate user", err, deact.StatusCode(), http.StatusNoContent, deact.Body)
	userGet, err := c.GetUserWithResponse(ctx, userID, f.owner)
	mustStatus(t, "get user", err, userGet.StatusCode(), http.StatusOK, userGet.Body)
	if userGet.JSON200.Status != "deactivated" {
		t.Fatalf("user after deactivation: %s", userGet.Body)
	}
	expect("user.updated", "user", userID, nil, userGet.Body)

	// session.revoked, three ways: logout, DELETE /auth/sessions/{id}, refresh-token reuse.
	revoked := func(session uuid.UUID, reason string) []byte {
		return mustJSONOf(t, map[string]any{"id": session, "user_id": owner, "reason": reason})
	}
	other := env.Login(t, f.acct.Slug, f.acct.Email, f.acct.Password)
	otherSession := sessionOf(t, env, other.AccessToken)
	logout, err := c.LogoutWithResponse(ctx, api.LogoutJSONRequestBody{RefreshToken: other.RefreshToken})
	mustStatus(t, "logout", err, logout.StatusCode(), http.StatusNoContent, logout.Body)
	expect("session.revoked", "session", otherSession, nil, revoked(otherSession, "logout"))

	other = env.Login(t, f.acct.Slug, f.acct.Email, f.acct.Password)
	otherSession = sessionOf(t, env, other.AccessToken)
	del, err := c.RevokeSessionWithResponse(ctx, otherSession, f.owner)
	mustStatus(t, "revoke session", err, del.StatusCode(), http.StatusNoContent, del.Body)
	expect("session.revoked", "session", otherSession, nil, revoked(otherSession, "revoked"))

	other = env.Login(t, f.acct.Slug, f.acct.Email, f.acct.Password)
	otherSession = sessionOf(t, env, other.AccessToken)
	rotated, err := c.RefreshWithResponse(ctx, api.RefreshJSONRequestBody{RefreshToken: other.RefreshToken})
	mustStatus(t, "refresh", err, rotated.StatusCode(), http.StatusOK, rotated.Body)
	time.Sleep(5 * time.Millisecond) // past the grace window
	reuse, err := c.RefreshWithResponse(ctx, api.RefreshJSONRequestBody{RefreshToken: other.RefreshToken})
	mustStatus(t, "refresh with a used token", err, reuse.StatusCode(), http.StatusUnauthorized, reuse.Body)
	expect("session.revoked", "session", otherSession, nil, revoked(otherSession, "reuse"))

	// api_key.revoked (creating a key is audited, not an event).
	key, err := c.CreateAPIKeyWithResponse(ctx, api.APIKeyCreate{Name: "ci", Role: "member"}, f.owner)
	mustStatus(t, "create API key", err, key.StatusCode(), http.StatusCreated, key.Body)
	keyDel, err := c.DeleteAPIKeyWithResponse(ctx, key.JSON201.Id, f.owner)
	mustStatus(t, "delete API key", err, keyDel.StatusCode(), http.StatusNoContent, keyDel.Body)
	expect("api_key.revoked", "api_key", key.JSON201.Id, nil, mustJSONOf(t, map[string]any{"id": key.JSON201.Id}))
}

// Each topic gets what the protocol routes to it and nothing else: task events only on their
// project's and task's topics; session.revoked on the tenant topic only to admins and to the
// session's own user; api_key.revoked only to admins; team events not on project topics.
// Each socket's whole sequence is checked, so a misrouted event shows up out of place.
func TestRealtimeTopicsRouteEventsByTheirRules(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	ctx := context.Background()
	c := env.Client
	member := f.user(t, "member", "member", true)
	admin := f.user(t, "admin", "admin", false)
	viewer := f.user(t, "viewer", "viewer", true)
	t1 := f.createTask(t, "one")

	memberSock := env.MustDial(t, member.tokens.AccessToken)
	memberSock.Subscribe("tenant", nil)
	adminSock := env.MustDial(t, admin.tokens.AccessToken)
	adminSock.Subscribe("tenant", nil)
	projSock := env.MustDial(t, f.acct.Tokens.AccessToken)
	projSock.Subscribe(projectTopic(f.project.Id), nil)
	taskSock := env.MustDial(t, f.acct.Tokens.AccessToken)
	taskSock.Subscribe(taskTopic(t1.Id), nil)

	// a: a new task, b: an update of t1.
	t2 := f.createTask(t, "two")
	title := "one, renamed"
	up, err := c.UpdateTaskWithResponse(ctx, t1.Id.String(), nil, api.TaskUpdate{Title: &title}, f.owner)
	mustStatus(t, "update task", err, up.StatusCode(), http.StatusOK, up.Body)
	// c: the member ends another session of their own; d: the viewer logs out.
	second := member
	second.signIn(t, env, f.acct.Slug, f.acct.Password)
	rs, err := c.RevokeSessionWithResponse(ctx, second.session, member.auth)
	mustStatus(t, "revoke own session", err, rs.StatusCode(), http.StatusNoContent, rs.Body)
	lo, err := c.LogoutWithResponse(ctx, api.LogoutJSONRequestBody{RefreshToken: viewer.tokens.RefreshToken})
	mustStatus(t, "viewer logout", err, lo.StatusCode(), http.StatusNoContent, lo.Body)
	// e: an API key revoked.
	key, err := c.CreateAPIKeyWithResponse(ctx, api.APIKeyCreate{Name: "ci", Role: "member"}, f.owner)
	mustStatus(t, "create API key", err, key.StatusCode(), http.StatusCreated, key.Body)
	kd, err := c.DeleteAPIKeyWithResponse(ctx, key.JSON201.Id, f.owner)
	mustStatus(t, "delete API key", err, kd.StatusCode(), http.StatusNoContent, kd.Body)
	// f: the team renamed; g: the project renamed; h: t1 updated again.
	name := "Engineering!"
	tu, err := c.UpdateTeamWithResponse(ctx, f.team.Id, api.TeamUpdate{Name: &name}, f.owner)
	mustStatus(t, "update team", err, tu.StatusCode(), http.StatusOK, tu.Body)
	pu, err := c.UpdateProjectWithResponse(ctx, f.project.Id, api.ProjectUpdate{Name: &name}, f.owner)
	mustStatus(t, "update project", err, pu.StatusCode(), http.StatusOK, pu.Body)
	title = "one, again"
	up2, err := c.UpdateTaskWithResponse(ctx, t1.Id.String(), nil, api.TaskUpdate{Title: &title}, f.owner)
	mustStatus(t, "update task", err, up2.StatusCode(), http.StatusOK, up2.Body)

	type want struct {
		event    string
		resource uuid.UUID
	}
	check := func(who string, s *apitest.Socket, topic string, seq []want) {
		t.Helper()
		for i, w := range seq {
			m := s.Next()
			if m.Type() != "event" || m.Str("event") != w.event || m.Str("resource_id") != w.resource.String() || m.Str("topic") != topic {
				t.Fatalf("%s, message %d: got %v, want %s about %s on %s", who, i, m, w.event, w.resource, topic)
			}
		}
	}
	pt := projectTopic(f.project.Id)
	check("member", memberSock, "tenant", []want{
		{"session.revoked", second.session}, {"team.updated", f.team.Id}, {"project.updated", f.project.Id},
	})
	check("admin", adminSock, "tenant", []want{
		{"session.revoked", second.session}, {"session.revoked", viewer.session}, {"api_key.revoked", key.JSON201.Id},
		{"team.updated", f.team.Id}, {"project.updated", f.project.Id},
	})
	check("project topic", projSock, pt, []want{
		{"task.created", t2.Id}, {"task.updated", t1.Id}, {"project.updated", f.project.Id}, {"task.updated", t1.Id},
	})
	check("task topic", taskSock, taskTopic(t1.Id), []want{{"task.updated", t1.Id}, {"task.updated", t1.Id}})
	// Nothing else is on its way: a ping is answered next.
	for _, s := range []*apitest.Socket{memberSock, adminSock, projSock, taskSock} {
		s.Send(map[string]any{"type": "ping"})
		s.Expect("pong")
	}
}
