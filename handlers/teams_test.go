package handlers_test

import (
	"net/http"
	"slices"

	"testing"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

func TestTeamsMembersAndProjects(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.as(api.UserRoleOwner)

	dupTeam, _ := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Again", Key: "ENG"}, owner)
	wantStatus(t, "team key taken", dupTeam.StatusCode(), dupTeam.Body, http.StatusConflict)
	badKey, _ := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "x", Key: "eng"}, owner)
	wantStatus(t, "lowercase team key", badKey.StatusCode(), badKey.Body, http.StatusBadRequest)
	byMember, _ := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "x", Key: "XX"}, w.as(api.UserRoleMember))
	wantStatus(t, "member creates a team", byMember.StatusCode(), byMember.Body, http.StatusForbidden)

	upd, _ := env.Client.UpdateTeamWithResponse(bg, w.team.Id, api.TeamUpdate{Description: ptr("Builds things")}, owner)
	if upd.JSON200 == nil || upd.JSON200.Description != "Builds things" || upd.JSON200.Name != "Engineering" {
		t.Errorf("team patch: %s", upd.Body)
	}
	lead := w.users[api.UserRoleAdmin].Id
	put, _ := env.Client.PutTeamMemberWithResponse(bg, w.team.Id, lead, api.TeamMemberPut{Role: api.TeamRoleLead}, owner)
	if put.JSON200 == nil || put.JSON200.Role != api.TeamRoleLead || put.JSON200.User.Id != lead {
		t.Fatalf("add lead: %s", put.Body)
	}
	members, _ := env.Client.ListTeamMembersWithResponse(bg, w.team.Id, nil, w.as(api.UserRoleViewer))
	if members.JSON200 == nil || len(members.JSON200.Items) != 2 || members.JSON200.Items[1].Role != api.TeamRoleLead ||
		members.JSON200.Items[1].User.Id != lead || !members.JSON200.NextCursor.IsNull() {
		t.Fatalf("members in the order they joined: %s", members.Body)
	}
	firstPage, _ := env.Client.ListTeamMembersWithResponse(bg, w.team.Id, &api.ListTeamMembersParams{Limit: ptr(1)}, w.as(api.UserRoleViewer))
	if firstPage.JSON200 == nil || len(firstPage.JSON200.Items) != 1 || firstPage.JSON200.NextCursor.IsNull() {
		t.Fatalf("members, first page of one: %s", firstPage.Body)
	}
	secondPage, _ := env.Client.ListTeamMembersWithResponse(bg, w.team.Id, &api.ListTeamMembersParams{Limit: ptr(1), Cursor: ptr(firstPage.JSON200.NextCursor.MustGet())}, w.as(api.UserRoleViewer))
	if secondPage.JSON200 == nil || len(secondPage.JSON200.Items) != 1 || secondPage.JSON200.Items[0].User.Id != lead {
		t.Fatalf("members, second page: %s", secondPage.Body)
	}
	ghost, _ := env.Client.PutTeamMemberWithResponse(bg, w.team.Id, w.team.Id, api.TeamMemberPut{Role: api.TeamRoleMember}, owner)
	wantStatus(t, "add a user that does not exist", ghost.StatusCode(), ghost.Body, http.StatusNotFound)
	rm, _ := env.Client.DeleteTeamMemberWithResponse(bg, w.team.Id, lead, owner)
	wantStatus(t, "remove a member", rm.StatusCode(), rm.Body, http.StatusNoContent)
	rm, _ = env.Client.DeleteTeamMemberWithResponse(bg, w.team.Id, lead, owner)
	wantStatus(t, "remove twice", rm.StatusCode(), rm.Body, http.StatusNotFound)

	// Projects: keys unique, teams must exist, and a team with projects stays.
	dupProj, _ := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.team.Id, Name: "x", Key: "PLAT"}, owner)
	wantStatus(t, "project key taken", dupProj.StatusCode(), dupProj.Body, http.StatusConflict)
	noTeam, _ := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.project.Id, Name: "x", Key: "NOPE"}, owner)
	wantStatus(t, "project of a missing team", noTeam.StatusCode(), noTeam.Body, http.StatusNotFound)
	delTeam, _ := env.Client.DeleteTeamWithResponse(bg, w.team.Id, owner)
	wantStatus(t, "delete a team that owns projects", delTeam.StatusCode(), delTeam.Body, http.StatusConflict)

	task := createTask(t, env, w, api.TaskCreate{Title: "doomed"})
	del, _ := env.Client.DeleteProjectWithResponse(bg, w.project.Id, nil, owner)
	wantStatus(t, "delete a project with tasks", del.StatusCode(), del.Body, http.StatusConflict)
	still, _ := env.Client.GetTaskWithResponse(bg, task.Id.String(), owner)
	wantStatus(t, "task after the refused delete", still.StatusCode(), still.Body, http.StatusOK)
	del, _ = env.Client.DeleteProjectWithResponse(bg, w.project.Id, &api.DeleteProjectParams{Force: ptr(true)}, owner)
	wantStatus(t, "force delete", del.StatusCode(), del.Body, http.StatusNoContent)
	gone, _ := env.Client.GetTaskWithResponse(bg, task.Id.String(), owner)
	wantStatus(t, "task after force delete", gone.StatusCode(), gone.Body, http.StatusNotFound)
	delTeam, _ = env.Client.DeleteTeamWithResponse(bg, w.team.Id, owner)
	wantStatus(t, "delete the now empty team", delTeam.StatusCode(), delTeam.Body, http.StatusNoContent)

	audit, _ := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{ResourceType: ptr("project")}, owner)
	var actions []string
	for _, e := range audit.JSON200.Items {
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []string{"project.delete", "project.create"}) {
		t.Errorf("project audit trail, newest first: %v", actions)
	}
	noAudit, _ := env.Client.ListAuditEventsWithResponse(bg, nil, w.as(api.UserRoleMember))
	wantStatus(t, "member reads the audit log", noAudit.StatusCode(), noAudit.Body, http.StatusForbidden)
}
