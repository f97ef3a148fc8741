package handlers_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
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

// A sign-in racing a deactivation waits for it and then sees it, instead of starting a session
// with the status read before it.
func TestSignInsWaitForADeactivationInFlight(t *testing.T) {
	env := apitest.New(t)
	w := newWorkspace(t, env)
	admin := w.users[api.UserRoleAdmin]
	release := holdRow(t, env, w.Tenant.Id, "UPDATE users SET status = 'deactivated' WHERE id = $1", "", admin.Id)
	login := make(chan *api.LoginResponse, 1)
	go func() {
		r, _ := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: w.Slug, Email: "admin@example.test", Password: "password for admin"})
		login <- r
	}()
	waitForLockWaiters(t, env, 1)
	release()
	if r := <-login; r == nil || r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("a sign-in while the user's deactivation was in flight: %v", r.Status())
	}
	// The refused sign-in is audited as a failure, with no actor.
	ev, _ := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{Action: ptr("auth.login_failed")}, w.as(api.UserRoleOwner))
	if ev.JSON200 == nil || len(ev.JSON200.Items) != 1 || ev.JSON200.Items[0].ActorUserId != nil {
		t.Errorf("audit of the refused sign-in: %s", ev.Body)
	}
}

// A key made by a write that raced its creator's deactivation (and so escaped its sweep) does
// not come back when the user is reactivated.
func TestReactivationEndsKeysThatEscapedTheDeactivation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	admin := w.users[api.UserRoleAdmin]
	key := createKey(t, env, w.tokens[api.UserRoleAdmin], api.APIKeyCreate{Name: "racer", Role: api.UserRoleViewer}).JSON201
	d, _ := env.Client.DeactivateUserWithResponse(bg, admin.Id, w.as(api.UserRoleOwner))
	wantStatus(t, "deactivate", d.StatusCode(), d.Body, http.StatusNoContent)
	// The race's outcome: the key is live although its creator is deactivated.
	err := env.DB.Tx(bg, tenancy.Scope{Tenant: w.Tenant.Id}, func(tx pgx.Tx) error {
		_, err := tx.Exec(bg, "UPDATE api_keys SET revoked_at = NULL WHERE id = $1", key.Id)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if m := me(t, env, key.Key); m.StatusCode() != http.StatusUnauthorized {
		t.Errorf("a live key of a deactivated user: %d", m.StatusCode())
	}
	r, _ := env.Client.UpdateUserWithResponse(bg, admin.Id, api.UserUpdate{Status: ptr(api.UserUpdateStatusActive)}, w.as(api.UserRoleOwner))
	wantStatus(t, "reactivate", r.StatusCode(), r.Body, http.StatusOK)
	if m := me(t, env, key.Key); m.StatusCode() != http.StatusUnauthorized {
		t.Errorf("the escaped key after reactivation: %d; want 401", m.StatusCode())
	}
}

// Accepting an invitation while the invitee is being deactivated waits for it and then fails,
// instead of starting a session with the role and status read before.
func TestAcceptingAnInvitationWaitsForADeactivationInFlight(t *testing.T) {
	env := apitest.New(t)
	w := newWorkspace(t, env)
	inv, _ := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: "racing@example.test", Name: "Racing", Role: api.UserRoleAdmin}, w.as(api.UserRoleOwner))
	if inv.JSON201 == nil || inv.JSON201.InviteToken == nil {
		t.Fatalf("invite: %s", inv.Body)
	}
	release := holdRow(t, env, w.Tenant.Id, "UPDATE users SET status = 'deactivated' WHERE id = $1", "", inv.JSON201.User.Id)
	accepted := make(chan *api.AcceptInviteResponse, 1)
	go func() {
		r, _ := env.Client.AcceptInviteWithResponse(bg, api.AcceptInviteRequest{Token: *inv.JSON201.InviteToken, Password: "a long enough password"})
		accepted <- r
	}()
	waitForLockWaiters(t, env, 1)
	release()
	r := <-accepted
	if r == nil || r.StatusCode() != http.StatusUnauthorized {
		t.Fatalf("accepting while the invitee was deactivated: %v", r.Status())
	}
	u, _ := env.Client.GetUserWithResponse(bg, inv.JSON201.User.Id, w.as(api.UserRoleOwner))
	if u.JSON200 == nil || u.JSON200.Status != api.UserStatusDeactivated {
		t.Errorf("the invitee after: %s", u.Body)
	}
}

// A user change that runs out of time waiting for the user's row is 503, not "no such user".
func TestAUserChangeThatTimesOutIsUnavailable(t *testing.T) {
	env := apitest.NewWithOptions(t, apitest.Options{RequestTimeout: time.Second})
	w := newWorkspace(t, env)
	viewer := w.users[api.UserRoleViewer]
	release := holdRow(t, env, w.Tenant.Id, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", "", viewer.Id)
	defer release()
	r, _ := env.Client.UpdateUserWithResponse(bg, viewer.Id, api.UserUpdate{Name: ptr("Late")}, w.as(api.UserRoleOwner))
	wantStatus(t, "a rename that waits past the deadline", r.StatusCode(), r.Body, http.StatusServiceUnavailable)
}
