package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/google/uuid"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/tenancy"
)

func TestInvitedUserAcceptsOnce(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	resp, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "New@Example.test", Name: "New", Role: api.UserRoleMember}, w.as(api.UserRoleAdmin))
	if err != nil || resp.JSON201 == nil || resp.JSON201.InviteToken == nil {
		t.Fatalf("invite: %v %s", err, resp.Body)
	}
	if resp.JSON201.User.Status != api.UserStatusInvited || resp.JSON201.User.Email != "new@example.test" {
		t.Errorf("invited user %+v", resp.JSON201.User)
	}
	// Not yet able to sign in.
	l, _ := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: w.Slug, Email: "new@example.test", Password: "chosen password"})
	wantStatus(t, "login before accepting", l.StatusCode(), l.Body, http.StatusUnauthorized)

	acc, err := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: *resp.JSON201.InviteToken, Password: "chosen password"})
	if err != nil || acc.JSON200 == nil {
		t.Fatalf("accept: %v %s", err, acc.Body)
	}
	m := me(t, env, acc.JSON200.AccessToken)
	if m.JSON200 == nil || m.JSON200.User.Status != api.UserStatusActive || m.JSON200.Role != api.UserRoleMember {
		t.Fatalf("me after accepting: %s", m.Body)
	}
	env.Login(t, w.Slug, "new@example.test", "chosen password")
	again, _ := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: *resp.JSON201.InviteToken, Password: "another password"})
	wantStatus(t, "accepting twice", again.StatusCode(), again.Body, http.StatusUnauthorized)
	forged, _ := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: "tki_" + (*resp.JSON201.InviteToken)[4:50] + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", Password: "another password"})
	wantStatus(t, "a forged invitation", forged.StatusCode(), forged.Body, http.StatusUnauthorized)
}

func TestUserRolesAndTheLastOwner(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	admin, owner := w.as(api.UserRoleAdmin), w.as(api.UserRoleOwner)
	pw := "long enough password"

	up, _ := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "boss@example.test", Name: "Boss", Role: api.UserRoleOwner, Password: &pw}, admin)
	wantStatus(t, "admin creates an owner", up.StatusCode(), up.Body, http.StatusForbidden)
	vc, _ := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "v2@example.test", Name: "V", Role: api.UserRoleViewer, Password: &pw}, w.as(api.UserRoleMember))
	wantStatus(t, "member creates a user", vc.StatusCode(), vc.Body, http.StatusForbidden)
	dup, _ := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "ADMIN@example.test", Name: "Dup", Role: api.UserRoleViewer, Password: &pw}, owner)
	wantStatus(t, "duplicate email", dup.StatusCode(), dup.Body, http.StatusConflict)

	ownerID := w.users[api.UserRoleOwner].Id
	r, _ := env.Client.UpdateUserWithResponse(bg, ownerID, api.UserUpdate{Name: ptr("Renamed")}, admin)
	wantStatus(t, "admin changes an owner", r.StatusCode(), r.Body, http.StatusForbidden)
	r, _ = env.Client.UpdateUserWithResponse(bg, w.users[api.UserRoleViewer].Id, api.UserUpdate{Role: ptr(api.UserRoleOwner)}, admin)
	wantStatus(t, "admin promotes to owner", r.StatusCode(), r.Body, http.StatusForbidden)
	r, _ = env.Client.UpdateUserWithResponse(bg, w.users[api.UserRoleViewer].Id, api.UserUpdate{Role: ptr(api.UserRoleMember), Name: ptr("Vee")}, admin)
	if r.JSON200 == nil || r.JSON200.Role != api.UserRoleMember || r.JSON200.Name != "Vee" {
		t.Errorf("admin promotes a viewer to member: %s", r.Body)
	}

	// Nobody changes their own standing, the last owner included.
	r, _ = env.Client.UpdateUserWithResponse(bg, ownerID, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, owner)
	wantStatus(t, "the last owner demotes themselves", r.StatusCode(), r.Body, http.StatusForbidden)
	d, _ := env.Client.DeactivateUserWithResponse(bg, ownerID, owner)
	wantStatus(t, "the last owner deactivates themselves", d.StatusCode(), d.Body, http.StatusForbidden)
	// With a second owner, one owner may demote the other.
	second := w.users[api.UserRoleAdmin].Id
	r, _ = env.Client.UpdateUserWithResponse(bg, second, api.UserUpdate{Role: ptr(api.UserRoleOwner)}, owner)
	wantStatus(t, "owner promotes the admin", r.StatusCode(), r.Body, http.StatusOK)
	secondOwner := env.Login(t, w.Slug, "admin@example.test", "password for admin").AccessToken
	r, _ = env.Client.UpdateUserWithResponse(bg, ownerID, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, apitest.Bearer(secondOwner))
	wantStatus(t, "an owner demotes the other owner", r.StatusCode(), r.Body, http.StatusOK)
	// The demoted owner's token still says owner; the database says admin.
	r, _ = env.Client.UpdateUserWithResponse(bg, second, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, owner)
	wantStatus(t, "the demoted owner changes the remaining owner", r.StatusCode(), r.Body, http.StatusForbidden)
	r, _ = env.Client.UpdateUserWithResponse(bg, second, api.UserUpdate{Status: ptr(api.UserUpdateStatusDeactivated)}, apitest.Bearer(secondOwner))
	wantStatus(t, "the last owner deactivates themselves", r.StatusCode(), r.Body, http.StatusForbidden)
}

func TestDeactivationEndsSessionsAndKeysButKeepsTheUser(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	adminUser := w.users[api.UserRoleAdmin]
	key, _ := env.Client.CreateAPIKeyWithResponse(bg, api.APIKeyCreate{Name: "k", Role: api.UserRoleViewer}, w.as(api.UserRoleAdmin))
	refreshable := env.Login(t, w.Slug, "admin@example.test", "password for admin")

	d, _ := env.Client.DeactivateUserWithResponse(bg, adminUser.Id, w.as(api.UserRoleOwner))
	wantStatus(t, "deactivate", d.StatusCode(), d.Body, http.StatusNoContent)
	if r := refresh(t, env, refreshable.RefreshToken); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("refresh of a deactivated user: %d", r.StatusCode())
	}
	if m := me(t, env, key.JSON201.Key); m.StatusCode() != http.StatusUnauthorized {
		t.Errorf("key of a deactivated user: %d", m.StatusCode())
	}
	u, _ := env.Client.GetUserWithResponse(bg, adminUser.Id, w.as(api.UserRoleViewer))
	if u.JSON200 == nil || u.JSON200.Status != api.UserStatusDeactivated {
		t.Fatalf("the deactivated user: %s", u.Body)
	}
	ev, _ := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{ResourceId: &adminUser.Id}, w.as(api.UserRoleOwner))
	if ev.JSON200 == nil || len(ev.JSON200.Items) == 0 || ev.JSON200.Items[0].Action != "user.update" || ev.JSON200.Items[0].Data["status"] != "deactivated" {
		t.Errorf("audit of the deactivation: %s", ev.Body)
	}
}

func TestUserListPages(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env) // 5 users
	var all []string
	var cursor *string
	for range 10 {
		resp, err := env.Client.ListUsersWithResponse(bg, &api.ListUsersParams{Limit: ptr(2), Cursor: cursor}, w.as(api.UserRoleViewer))
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("list: %v %s", err, resp.Body)
		}
		for _, u := range resp.JSON200.Items {
			all = append(all, string(u.Email))
		}
		if resp.JSON200.NextCursor.IsNull() {
			break
		}
		cursor = ptr(resp.JSON200.NextCursor.MustGet())
	}
	if len(all) != 5 || !slices.Contains(all, "owner@example.test") || !slices.Contains(all, "outsider@example.test") {
		t.Fatalf("users over pages: %v", all)
	}
	bad, _ := env.Client.ListTeamsWithResponse(bg, &api.ListTeamsParams{Cursor: cursor}, w.as(api.UserRoleViewer))
	if cursor != nil {
		wantStatus(t, "a users cursor on teams", bad.StatusCode(), bad.Body, http.StatusBadRequest)
	}
}

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

func TestIdempotentUserCreationNeverStoresTheInviteToken(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	key := "invite-once"
	body := api.UserCreate{Email: "inv@example.test", Name: "Inv", Role: api.UserRoleViewer}
	first, err := env.Client.CreateUserWithResponse(bg, &api.CreateUserParams{IdempotencyKey: &key}, body, w.as(api.UserRoleOwner))
	if err != nil || first.JSON201 == nil || first.JSON201.InviteToken == nil {
		t.Fatalf("first: %v %s", err, first.Body)
	}
	again, err := env.Client.CreateUserWithResponse(bg, &api.CreateUserParams{IdempotencyKey: &key}, body, w.as(api.UserRoleOwner))
	if err != nil || again.JSON201 == nil || again.JSON201.User.Id != first.JSON201.User.Id {
		t.Fatalf("replay: %v %s", err, again.Body)
	}
	if again.JSON201.InviteToken != nil || strings.Contains(string(again.Body), *first.JSON201.InviteToken) {
		t.Fatalf("the replay carries the invite token: %s", again.Body)
	}
	var records, withToken int
	err = env.DB.Tx(bg, tenancy.Scope{Tenant: w.Tenant.Id}, func(tx pgx.Tx) error {
		return tx.QueryRow(bg, `SELECT count(*), count(*) FILTER (WHERE position($1::bytea IN response) > 0)
			FROM idempotency_keys WHERE key = $2`, []byte(*first.JSON201.InviteToken), key).Scan(&records, &withToken)
	})
	if err != nil || records != 1 || withToken != 0 {
		t.Fatalf("stored records %d, with the invite token %d (%v); want 1 and 0", records, withToken, err)
	}

	// API keys are shown once: the header does not make their creation replayable.
	kb := api.APIKeyCreate{Name: "k", Role: api.UserRoleViewer}
	k1, _ := env.Client.CreateAPIKeyWithResponse(bg, kb, w.as(api.UserRoleOwner), withHeader("Idempotency-Key", "k"))
	k2, _ := env.Client.CreateAPIKeyWithResponse(bg, kb, w.as(api.UserRoleOwner), withHeader("Idempotency-Key", "k"))
	if k1.JSON201 == nil || k2.JSON201 == nil || k1.JSON201.Id == k2.JSON201.Id {
		t.Fatalf("API key creations with one Idempotency-Key: %s / %s", k1.Body, k2.Body)
	}
}

func TestProjectListFilters(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.as(api.UserRoleOwner)
	other, _ := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Design", Key: "DES"}, owner)
	des, _ := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: other.JSON201.Id, Name: "Brand", Key: "BRAND"}, owner)
	_, _ = env.Client.UpdateProjectWithResponse(bg, des.JSON201.Id, api.ProjectUpdate{Status: ptr(api.ProjectStatusArchived)}, owner)
	keys := func(p *api.ListProjectsParams) []string {
		resp, err := env.Client.ListProjectsWithResponse(bg, p, w.as(api.UserRoleViewer))
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("list projects: %v %s", err, resp.Body)
		}
		var out []string
		for _, p := range resp.JSON200.Items {
			out = append(out, p.Key)
		}
		return out
	}
	if got := keys(nil); !slices.Equal(got, []string{"PLAT", "BRAND"}) {
		t.Errorf("all projects: %v", got)
	}
	if got := keys(&api.ListProjectsParams{TeamId: &other.JSON201.Id}); !slices.Equal(got, []string{"BRAND"}) {
		t.Errorf("projects of the design team: %v", got)
	}
	if got := keys(&api.ListProjectsParams{Status: ptr(api.ProjectStatusActive)}); !slices.Equal(got, []string{"PLAT"}) {
		t.Errorf("active projects: %v", got)
	}
}

func TestConcurrentOwnerDemotionsLeaveAnOwner(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner1, owner2 := w.users[api.UserRoleOwner].Id, w.users[api.UserRoleAdmin].Id
	first := w.as(api.UserRoleOwner)
	if r, _ := env.Client.UpdateUserWithResponse(bg, owner2, api.UserUpdate{Role: ptr(api.UserRoleOwner)}, first); r.StatusCode() != http.StatusOK {
		t.Fatalf("promote: %s", r.Body)
	}
	second := apitest.Bearer(env.Login(t, w.Slug, "admin@example.test", "password for admin").AccessToken)
	for round := range 8 {
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i, c := range []struct {
			target uuid.UUID
			as     api.RequestEditorFn
		}{{owner2, first}, {owner1, second}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := env.Client.UpdateUserWithResponse(bg, c.target, api.UserUpdate{Role: ptr(api.UserRoleAdmin)}, c.as)
				if err != nil {
					t.Error(err)
					return
				}
				codes[i] = resp.StatusCode()
			}()
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			switch c {
			case http.StatusOK:
				ok++
			case http.StatusConflict, http.StatusForbidden: // the last owner; or no longer an owner yourself
			default:
				t.Fatalf("round %d: status %d (want 200, 409 or 403, never a failure)", round, c)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d demotions succeeded; want exactly one (%v)", round, ok, codes)
		}
		// Promote the demoted one back for the next round.
		for _, id := range []uuid.UUID{owner1, owner2} {
			for _, as := range []api.RequestEditorFn{first, second} {
				_, _ = env.Client.UpdateUserWithResponse(bg, id, api.UserUpdate{Role: ptr(api.UserRoleOwner)}, as)
			}
		}
	}
}

func TestIdempotencyFingerprintIgnoresFormattingButNotContent(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	post := func(key, body string) *api.CreateTeamResponse {
		resp, err := env.Client.CreateTeamWithBodyWithResponse(bg, &api.CreateTeamParams{IdempotencyKey: &key}, "application/json", strings.NewReader(body), w.as(api.UserRoleOwner))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := post("team-1", `{"name":"Ops","key":"OPS"}`)
	same := post("team-1", "{ \"key\": \"OPS\",\n  \"name\": \"Ops\" }")
	if first.JSON201 == nil || same.JSON201 == nil || same.JSON201.Id != first.JSON201.Id {
		t.Fatalf("reordered, respaced body: %s / %s; want a replay", first.Body, same.Body)
	}
	changed := post("team-1", `{"name":"Ops2","key":"OPS"}`)
	wantStatus(t, "same key, changed value", changed.StatusCode(), changed.Body, http.StatusUnprocessableEntity)

	pw := "first password 1"
	u1, _ := env.Client.CreateUserWithResponse(bg, &api.CreateUserParams{IdempotencyKey: ptr("user-1")}, api.UserCreate{Email: "p@example.test", Name: "P", Role: api.UserRoleViewer, Password: &pw}, w.as(api.UserRoleOwner))
	if u1.JSON201 == nil {
		t.Fatalf("create user: %s", u1.Body)
	}
	// Without the password it would be an invitation: a different request.
	u2, _ := env.Client.CreateUserWithResponse(bg, &api.CreateUserParams{IdempotencyKey: ptr("user-1")}, api.UserCreate{Email: "p@example.test", Name: "P", Role: api.UserRoleViewer}, w.as(api.UserRoleOwner))
	wantStatus(t, "same key, password dropped", u2.StatusCode(), u2.Body, http.StatusUnprocessableEntity)
}

func TestPathsTheMuxDoesNotKnowAreProblems(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	for _, path := range []string{"/v1/teams/", "/v1/projects/"} {
		req, _ := http.NewRequest(http.MethodGet, env.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+w.tokens[api.UserRoleViewer])
		resp, err := env.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		// No operation has a trailing slash: 404, as a problem document.
		wantStatus(t, "GET "+path, resp.StatusCode, body, http.StatusNotFound)
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("GET %s: Content-Type %q, want application/problem+json", path, ct)
		}
	}
}

func TestIdempotencyKeyThatIsNotUTF8IsBadRequest(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	owner := apitest.Bearer(a.Tokens.AccessToken)
	// The key is stored and compared as it is, so it is refused rather than repaired: repairing
	// would make distinct keys collide.
	for _, key := range []string{"k\xff\xfe", "k\xe2\x82"} {
		r, err := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Engineering", Key: "ENG"}, owner, withHeader("Idempotency-Key", key))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, fmt.Sprintf("Idempotency-Key %q", key), r.StatusCode(), r.Body, http.StatusBadRequest)
	}
	ok, err := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Engineering", Key: "ENG"}, owner, withHeader("Idempotency-Key", "clé-€"))
	if err != nil || ok.JSON201 == nil {
		t.Fatalf("a UTF-8 key: %v %d %s", err, ok.StatusCode(), ok.Body)
	}
}
