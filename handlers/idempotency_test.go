package handlers_test

import (
	"fmt"
	"net/http"

	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/tenancy"
)

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
