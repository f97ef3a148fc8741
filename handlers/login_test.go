package handlers_test

import (
	"net/http"
	"testing"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// A login reads the user without a transaction (one pipelined round trip, not BEGIN, SELECT,
// COMMIT) and opens one only to write: the session, or the audit entry of a failure.
func TestLoginOpensOneTransaction(t *testing.T) {
	t.Parallel()
	pool, counter := countingPool(t)
	env := apitest.NewWithOptions(t, apitest.Options{Pool: pool})
	a := env.Signup(t)
	for _, c := range []struct {
		what, password string
		status         int
	}{
		{"the right password", a.Password, http.StatusOK},
		{"a wrong password", a.Password + "x", http.StatusUnauthorized},
	} {
		counter.begins.Store(0)
		resp, err := env.Client.LoginWithResponse(bg, api.LoginRequest{TenantSlug: a.Slug, Email: a.Email, Password: c.password})
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "login with "+c.what, resp.StatusCode(), resp.Body, c.status)
		if n := counter.begins.Load(); n != 1 {
			t.Errorf("login with %s opened %d transactions, want 1", c.what, n)
		}
	}
}
