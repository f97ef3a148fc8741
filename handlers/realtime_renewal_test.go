package handlers_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/realtime"
)

// With three-second access tokens: a socket renewed with a fresh token from /v1/auth/refresh
// before expiry lives past the first token's expiry (until the new one's); a socket that is
// not renewed is closed with 4001 right after it; renewing with another user's token, or with
// garbage, fails with auth_failed and leaves the socket as it was.
func TestRealtimeRenewalOutlivesTheFirstTokenAndExpiryCloses(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true, AccessTokenTTL: ttl})
	f := newRTFixture(t, env)
	ctx := context.Background()
	// Writes go through an API key, which does not expire in the middle of the test.
	key, err := env.Client.CreateAPIKeyWithResponse(ctx, api.APIKeyCreate{Name: "writer", Role: "admin"}, f.owner)
	mustStatus(t, "create API key", err, key.StatusCode(), http.StatusCreated, key.Body)
	writer := apitest.Bearer(key.JSON201.Key)
	other := f.user(t, "other", "member", false)

	pair := env.Login(t, f.acct.Slug, f.acct.Email, f.acct.Password)
	claims, err := env.Issuer.Verify(pair.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	exp1 := claims.ExpiresAt.Time
	renewed := env.MustDial(t, pair.AccessToken)
	renewed.Subscribe("tenant", nil)
	lapsed := env.MustDial(t, pair.AccessToken)
	lapsed.Subscribe("tenant", nil)

	for _, bad := range []string{other.tokens.AccessToken, "not-a-token"} {
		renewed.Send(map[string]any{"type": "auth", "token": bad})
		if m := renewed.Expect("error"); m.Str("code") != realtime.ErrAuthFailed {
			t.Fatalf("renewal with a bad token: got %v, want auth_failed", m)
		}
	}

	// Token times have whole seconds: a refresh a second after the first token's iat expires
	// a second later than it.
	time.Sleep(time.Until(claims.IssuedAt.Time.Add(time.Second + 50*time.Millisecond)))
	refreshed, err := env.Client.RefreshWithResponse(ctx, api.RefreshJSONRequestBody{RefreshToken: pair.RefreshToken})
	mustStatus(t, "refresh", err, refreshed.StatusCode(), http.StatusOK, refreshed.Body)
	renewed.Send(map[string]any{"type": "auth", "token": refreshed.JSON200.AccessToken})
	m := renewed.Expect("authenticated")
	exp2, err := time.Parse(time.RFC3339, m.Str("expires_at"))
	if err != nil || !exp2.After(exp1) {
		t.Fatalf("authenticated %v: expires_at must be after the first token's %v", m, exp1)
	}

	// The lapsed socket ends with 4001 just after exp1.
	code := lapsed.CloseStatus(time.Until(exp1) + time.Second)
	if code != realtime.CloseTokenExpired {
		t.Fatalf("unrenewed socket ended with %d, want %d", code, realtime.CloseTokenExpired)
	}
	if late := time.Since(exp1); late < 0 || late > 700*time.Millisecond {
		t.Errorf("unrenewed socket closed %v after its token expired", late)
	}

	// The renewed one is still subscribed and receives events after exp1.
	time.Sleep(time.Until(exp1.Add(100 * time.Millisecond)))
	name := "After expiry"
	tu, err := env.Client.UpdateTeamWithResponse(ctx, f.team.Id, api.TeamUpdate{Name: &name}, writer)
	mustStatus(t, "update team", err, tu.StatusCode(), http.StatusOK, tu.Body)
	expectEvent(t, renewed, "team.updated", "tenant", f.team.Id)
	// ...and it ends at the renewed token's expiry in turn.
	if code := renewed.CloseStatus(time.Until(exp2) + time.Second); code != realtime.CloseTokenExpired {
		t.Errorf("renewed socket ended with %d at its new expiry, want %d", code, realtime.CloseTokenExpired)
	}
	if early := time.Until(exp2); early > 100*time.Millisecond {
		t.Errorf("renewed socket closed %v before its renewed token expired", early)
	}
}
