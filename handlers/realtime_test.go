package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
)

// rtFixture is a tenant with a team, a project of it, and sockets ready to use.
type rtFixture struct {
	env     *apitest.Env
	acct    apitest.Account
	owner   api.RequestEditorFn
	team    api.Team
	project api.Project
}

func newRTFixture(t *testing.T, env *apitest.Env) rtFixture {
	t.Helper()
	ctx := context.Background()
	acct := env.Signup(t)
	owner := apitest.Bearer(acct.Tokens.AccessToken)
	team, err := env.Client.CreateTeamWithResponse(ctx, nil, api.TeamCreate{Key: "ENG", Name: "Engineering"}, owner)
	if err != nil || team.JSON201 == nil {
		t.Fatalf("create team: %v %s", err, team.Body)
	}
	proj, err := env.Client.CreateProjectWithResponse(ctx, nil, api.ProjectCreate{Key: "APP", Name: "App", TeamId: team.JSON201.Id}, owner)
	if err != nil || proj.JSON201 == nil {
		t.Fatalf("create project: %v %s", err, proj.Body)
	}
	return rtFixture{env: env, acct: acct, owner: owner, team: *team.JSON201, project: *proj.JSON201}
}

func (f rtFixture) createTask(t *testing.T, title string) api.Task {
	t.Helper()
	resp, err := f.env.Client.CreateTaskWithResponse(context.Background(), f.project.Id, nil, api.TaskCreate{Title: title}, f.owner)
	if err != nil || resp.JSON201 == nil {
		t.Fatalf("create task: %v %s", err, resp.Body)
	}
	return *resp.JSON201
}

func projectTopic(id uuid.UUID) string { return "project:" + id.String() }

// sameJSON fails unless the event's data is, field for field, the REST body.
func sameJSON(t *testing.T, what string, data map[string]any, rest []byte) {
	t.Helper()
	var want map[string]any
	if err := json.Unmarshal(rest, &want); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(data)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) {
		t.Errorf("%s: event data\n%s\nwant the REST body\n%s", what, got, wantJSON)
	}
}

func TestRealtimeEventsCarryTheRESTRepresentation(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	ctx := context.Background()
	sock := env.MustDial(t, f.acct.Tokens.AccessToken)
	sock.Subscribe("tenant", nil)
	sock.Subscribe(projectTopic(f.project.Id), nil)

	created, err := env.Client.CreateTaskWithResponse(ctx, f.project.Id, nil, api.TaskCreate{Title: "First"}, f.owner)
	if err != nil || created.JSON201 == nil {
		t.Fatalf("create task: %v", err)
	}
	ev := sock.Expect("event")
	if ev.Str("event") != "task.created" || ev.Str("topic") != projectTopic(f.project.Id) || ev.Str("actor") != f.acct.Owner.Id.String() {
		t.Fatalf("got %v", ev)
	}
	sameJSON(t, "task.created", ev.Data(), created.Body)
	first := ev.ID()

	title := "Renamed"
	updated, err := env.Client.UpdateTaskWithResponse(ctx, created.JSON201.Id.String(), nil, api.TaskUpdate{Title: &title}, f.owner)
	if err != nil || updated.JSON200 == nil {
		t.Fatalf("update task: %v %s", err, updated.Body)
	}
	ev = sock.Expect("event")
	if ev.Str("event") != "task.updated" || ev.ID() != first+1 {
		t.Fatalf("got %v, want task.updated with id %d", ev, first+1)
	}
	sameJSON(t, "task.updated", ev.Data(), updated.Body)

	name := "Renamed project"
	proj, err := env.Client.UpdateProjectWithResponse(ctx, f.project.Id, api.ProjectUpdate{Name: &name}, f.owner)
	if err != nil || proj.JSON200 == nil {
		t.Fatalf("update project: %v %s", err, proj.Body)
	}
	// A project event is on both topics, each once.
	seen := map[string]bool{}
	for range 2 {
		ev = sock.Expect("event")
		if ev.Str("event") != "project.updated" || ev.ID() != first+2 {
			t.Fatalf("got %v", ev)
		}
		sameJSON(t, "project.updated", ev.Data(), proj.Body)
		seen[ev.Str("topic")] = true
	}
	if !seen["tenant"] || !seen[projectTopic(f.project.Id)] {
		t.Fatalf("project.updated reached topics %v", seen)
	}
	del, err := env.Client.DeleteTaskWithResponse(ctx, created.JSON201.Id.String(), nil, f.owner)
	if err != nil || del.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete task: %v", err)
	}
	ev = sock.Expect("event")
	if ev.Str("event") != "task.deleted" || ev.Data()["id"] != created.JSON201.Id.String() {
		t.Fatalf("got %v", ev)
	}
}

func TestRealtimeRefusesBeforeUpgrade(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	acct := env.Signup(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		opts   *websocket.DialOptions
		status int
	}{
		{"no credential", &websocket.DialOptions{}, http.StatusUnauthorized},
		{"bad token", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer nope"}}}, http.StatusUnauthorized},
		{"foreign origin", &websocket.DialOptions{HTTPHeader: http.Header{
			"Authorization": {"Bearer " + acct.Tokens.AccessToken}, "Origin": {"https://evil.example"}}}, http.StatusForbidden},
		{"bearer subprotocol without tasker.v1", &websocket.DialOptions{Subprotocols: []string{"bearer." + acct.Tokens.AccessToken}}, http.StatusUnauthorized},
	}
	for _, c := range cases {
		_, resp, err := env.DialRealtime(ctx, "", c.opts)
		if err == nil {
			t.Errorf("%s: upgraded", c.name)
			continue
		}
		if resp == nil || resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: got %v, want %d problem+json", c.name, resp, c.status)
		}
	}

	// A browser: the token as a subprotocol beside tasker.v1, its own origin.
	s, resp, err := env.DialRealtime(ctx, "", &websocket.DialOptions{
		Subprotocols: []string{"tasker.v1", "bearer." + acct.Tokens.AccessToken},
		HTTPHeader:   http.Header{"Origin": {env.URL}},
	})
	if err != nil {
		t.Fatalf("browser dial: %v %v", err, resp)
	}
	defer s.Conn.CloseNow()
	if s.Subprotocol != "tasker.v1" {
		t.Errorf("selected subprotocol %q, want tasker.v1", s.Subprotocol)
	}
	s.Send(map[string]any{"type": "ping"})
	if m, err := s.Read(5 * time.Second); err != nil || m.Type() != "pong" {
		t.Errorf("ping: %v %v", m, err)
	}
}

func TestRealtimeSinceReplaysWhatWasMissedOnce(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	topic := projectTopic(f.project.Id)
	sock := env.MustDial(t, f.acct.Tokens.AccessToken)
	last := int64(sock.Subscribe(topic, nil)["last_id"].(float64))
	_ = sock.Conn.CloseNow()

	// Missed while away.
	var missed []string
	for i := range 3 {
		missed = append(missed, f.createTask(t, "missed "+string(rune('a'+i))).Id.String())
	}
	again := env.MustDial(t, f.acct.Tokens.AccessToken)
	again.Subscribe(topic, &last)
	for i, id := range missed {
		ev := again.Expect("event")
		if ev.ID() != last+int64(i)+1 || ev.Data()["id"] != id {
			t.Fatalf("replay %d: got %v, want id %d for task %s", i, ev, last+int64(i)+1, id)
		}
	}
	live := f.createTask(t, "live")
	ev := again.Expect("event")
	if ev.Data()["id"] != live.Id.String() || ev.ID() != last+4 {
		t.Fatalf("live after replay: got %v", ev)
	}
}
