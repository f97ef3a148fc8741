package handlers_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/realtime"
)

// expectRevoked reads n messages and fails unless they are access_revoked errors for exactly
// topics, in any order.
func expectRevoked(t *testing.T, s *apitest.Socket, topics ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, topic := range topics {
		want[topic] = true
	}
	for range topics {
		m := s.Next()
		if m.Type() != "error" || m.Str("code") != realtime.ErrAccessRevoked || !want[m.Str("topic")] {
			t.Fatalf("got %v, want an access_revoked error for one of %v", m, want)
		}
		delete(want, m.Str("topic"))
	}
}

// A member removed from the project's team loses its project and task topics at once: an
// access_revoked error for each, and none of their events after, while the tenant topic goes on.
func TestRealtimeRemovedMemberLosesTheTeamsTopicsAtOnce(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	ctx := context.Background()
	member := f.user(t, "member", "member", true)
	task := f.createTask(t, "watched")

	sock := env.MustDial(t, member.tokens.AccessToken)
	sock.Subscribe("tenant", nil)
	pt, tt := projectTopic(f.project.Id), taskTopic(task.Id)
	sock.Subscribe(pt, nil)
	sock.Subscribe(tt, nil)
	seen := f.createTask(t, "seen")
	expectEvent(t, sock, "task.created", pt, seen.Id)

	rm, err := env.Client.DeleteTeamMemberWithResponse(ctx, f.team.Id, member.id, f.owner)
	mustStatus(t, "delete team member", err, rm.StatusCode(), http.StatusNoContent, rm.Body)
	expectEvent(t, sock, "team.member_removed", "tenant", f.team.Id)
	expectRevoked(t, sock, pt, tt)

	// Writes to the project and the task after the removal never arrive: the next message is
	// the tenant topic's team rename that follows them.
	for range 3 {
		f.createTask(t, "unseen")
	}
	title := "changed unseen"
	up, err := env.Client.UpdateTaskWithResponse(ctx, task.Id.String(), nil, api.TaskUpdate{Title: &title}, f.owner)
	mustStatus(t, "update task", err, up.StatusCode(), http.StatusOK, up.Body)
	name := "Renamed"
	tu, err := env.Client.UpdateTeamWithResponse(ctx, f.team.Id, api.TeamUpdate{Name: &name}, f.owner)
	mustStatus(t, "update team", err, tu.StatusCode(), http.StatusOK, tu.Body)
	expectEvent(t, sock, "team.updated", "tenant", f.team.Id)

	// Subscribing again is refused now.
	sock.Send(map[string]any{"type": "subscribe", "topic": pt})
	sock.ExpectError(realtime.ErrTopicForbidden, pt)
}

// An admin who is not in a team reads its project as an admin; demoted to member, they lose it
// at once, and with it the admins' share of the tenant topic (other users' session.revoked).
func TestRealtimeDemotedAdminLosesProjectsOfOtherTeams(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	ctx := context.Background()
	admin := f.user(t, "admin", "admin", false)
	other := f.user(t, "other", "member", true)

	sock := env.MustDial(t, admin.tokens.AccessToken)
	sock.Subscribe("tenant", nil)
	pt := projectTopic(f.project.Id)
	sock.Subscribe(pt, nil)
	seen := f.createTask(t, "seen")
	expectEvent(t, sock, "task.created", pt, seen.Id)

	member := api.UserRole("member")
	up, err := env.Client.UpdateUserWithResponse(ctx, admin.id, api.UserUpdate{Role: &member}, f.owner)
	mustStatus(t, "demote", err, up.StatusCode(), http.StatusOK, up.Body)
	expectEvent(t, sock, "user.updated", "tenant", admin.id)
	expectRevoked(t, sock, pt)

	f.createTask(t, "unseen")
	lo, err := env.Client.LogoutWithResponse(ctx, api.LogoutJSONRequestBody{RefreshToken: other.tokens.RefreshToken})
	mustStatus(t, "logout", err, lo.StatusCode(), http.StatusNoContent, lo.Body)
	name := "Renamed"
	tu, err := env.Client.UpdateTeamWithResponse(ctx, f.team.Id, api.TeamUpdate{Name: &name}, f.owner)
	mustStatus(t, "update team", err, tu.StatusCode(), http.StatusOK, tu.Body)
	expectEvent(t, sock, "team.updated", "tenant", f.team.Id)

	sock.Send(map[string]any{"type": "subscribe", "topic": pt})
	sock.ExpectError(realtime.ErrTopicForbidden, pt)
}
