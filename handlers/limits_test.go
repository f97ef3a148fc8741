package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// padded is body followed by white space up to size bytes: still one valid JSON value.
func padded(body string, size int) string { return body + strings.Repeat(" ", size-len(body)) }

func TestBodyLimitIsPerOperation(t *testing.T) {
	t.Parallel()
	env := apitest.New(t) // the global limit is the default 1 MiB
	a := env.Signup(t)
	creds := fmt.Sprintf(`{"tenant_slug":%q,"email":%q,"password":%q}`, a.Slug, a.Email, a.Password)

	// Login takes at most 8 KiB (x-max-body-bytes), however large the global limit.
	small, err := env.Client.LoginWithBodyWithResponse(bg, "application/json", strings.NewReader(padded(creds, 8<<10)))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "login, 8 KiB", small.StatusCode(), small.Body, http.StatusOK)
	big, err := env.Client.LoginWithBodyWithResponse(bg, "application/json", strings.NewReader(padded(creds, 8<<10+1)))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "login, 8 KiB and one byte", big.StatusCode(), big.Body, http.StatusRequestEntityTooLarge)

	// A larger body is fine for an operation whose limit is larger.
	team := padded(`{"name":"Engineering","key":"ENG","description":"`+strings.Repeat("d", 2000)+`"}`, 12<<10)
	created, err := env.Client.CreateTeamWithBodyWithResponse(bg, nil, "application/json", strings.NewReader(team), apitest.Bearer(a.Tokens.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "create team, 12 KiB", created.StatusCode(), created.Body, http.StatusCreated)
}

func TestBodyOnAnOperationWithoutOneIsRefused(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a := env.Signup(t)
	team, err := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Engineering", Key: "ENG"}, apitest.Bearer(a.Tokens.AccessToken))
	if err != nil || team.JSON201 == nil {
		t.Fatalf("create team: %v", err)
	}
	url := env.URL + "/v1/teams/" + team.JSON201.Id.String()
	do := func(method string, body io.Reader) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+a.Tokens.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := env.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	cases := []struct {
		name, method string
		body         io.Reader
	}{
		{"GET with Content-Length", http.MethodGet, strings.NewReader(`{}`)},
		// An io.Reader of unknown length goes out chunked.
		{"DELETE, chunked", http.MethodDelete, io.MultiReader(strings.NewReader(`{}`))},
		{"DELETE with Content-Length", http.MethodDelete, strings.NewReader(`{"force":true}`)},
	}
	for _, c := range cases {
		status, body := do(c.method, c.body)
		wantStatus(t, c.name, status, body, http.StatusBadRequest)
		var p api.Problem
		_ = json.Unmarshal(body, &p)
		if p.Errors == nil || len(*p.Errors) != 1 || (*p.Errors)[0].In != "body" || (*p.Errors)[0].Field != "body" {
			t.Errorf("%s: problem %s; want one error naming the body", c.name, body)
		}
	}
	// The refused DELETE did not run, and without a body both operations do.
	if status, body := do(http.MethodGet, nil); status != http.StatusOK {
		t.Errorf("GET after the refused DELETEs: %d %s", status, body)
	}
	if status, body := do(http.MethodDelete, nil); status != http.StatusNoContent {
		t.Errorf("DELETE without a body: %d %s", status, body)
	}
}
