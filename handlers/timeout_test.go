package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/tenancy"
)

// TestRequestPastItsDeadlineIsUnavailable holds a team's row in another transaction, so a rename
// waits on the lock past REQUEST_TIMEOUT: the answer must be a 503 problem with Retry-After, not
// a 500, and once the lock is gone the same request succeeds.
func TestRequestPastItsDeadlineIsUnavailable(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	env := apitest.NewWithOptions(t, apitest.Options{RequestTimeout: timeout})
	bg := context.Background()
	a := env.Signup(t)
	owner := apitest.Bearer(a.Tokens.AccessToken)
	created, err := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Platform", Key: "PLAT"}, owner)
	if err != nil || created.JSON201 == nil {
		t.Fatalf("create team: %v %v", created.StatusCode(), err)
	}
	team := created.JSON201.Id

	locked, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- env.DB.Tx(bg, tenancy.Scope{Tenant: a.Tenant.Id}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(bg, "SELECT 1 FROM teams WHERE id = $1 FOR UPDATE", team); err != nil {
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	select {
	case <-locked:
	case err := <-held:
		t.Fatalf("lock the team: %v", err)
	}

	// A file transfer's longer deadline is its own: asking for one first (401 here) must not
	// lend it to the next request.
	if r, err := env.HTTP.Get(env.URL + "/v1/files/" + team.String() + "/content"); err != nil || r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous download: %v %v", r, err)
	} else {
		r.Body.Close()
	}

	name := "Renamed"
	start := time.Now()
	resp, err := env.Client.UpdateTeamWithResponse(bg, team, api.TeamUpdate{Name: &name}, owner)
	took := time.Since(start)
	close(release)
	if herr := <-held; herr != nil {
		t.Errorf("holding transaction: %v", herr)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := problemOf(t, resp.HTTPResponse, resp.Body)
	if resp.StatusCode() != http.StatusServiceUnavailable || p.Status != 503 || !strings.HasSuffix(p.Type, "/unavailable") ||
		resp.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Errorf("rename behind a lock: %d Retry-After=%q %s; want a 503 problem with Retry-After",
			resp.StatusCode(), resp.HTTPResponse.Header.Get("Retry-After"), resp.Body)
	}
	if took < timeout || took > timeout+3*time.Second {
		t.Errorf("answered after %s; want just after the %s deadline", took, timeout)
	}
	logged := false
	for _, rec := range env.Logs.Lines() {
		if rec["msg"] == "request failed" && rec["level"] == "ERROR" && strings.Contains(rec["error"].(string), "deadline exceeded") {
			logged = true
		}
	}
	if !logged {
		t.Error("the timed-out request was not logged at error with its cause")
	}

	resp, err = env.Client.UpdateTeamWithResponse(bg, team, api.TeamUpdate{Name: &name}, owner)
	if err != nil || resp.JSON200 == nil || resp.JSON200.Name != name {
		t.Fatalf("the same rename without the lock: %d %s (%v); want 200", resp.StatusCode(), resp.Body, err)
	}
}
