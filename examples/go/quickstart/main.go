// Command quickstart is the Go integrator's walk through Tasker's API with the generated client
// (gen/api), run against a real server by `make examples-go`: an API key, a project created
// safely twice with an Idempotency-Key, tasks paged with the cursor, problem documents, an
// ETag-guarded update, a realtime subscription resumed with `since`, and a webhook verified with
// the Standard Webhooks library. docs/integrating.md quotes it.
//
//	TASKER_URL=http://localhost:8080 go run ./examples/go/quickstart
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tasker/tasker/gen/api"
)

func main() {
	if err := run(context.Background(), envOr("TASKER_URL", "http://localhost:8080")); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
	fmt.Println("quickstart: all checks passed")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// bearer authenticates every request of a client with an API key (or an access token).
func bearer(token string) api.ClientOption {
	return api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	})
}

func check(ok bool, what string) error {
	if !ok {
		return errors.New("check failed: " + what)
	}
	fmt.Println("ok ", what)
	return nil
}

func run(ctx context.Context, base string) error {
	// 1. Sign up (the owner gets an access token), then make an API key for the integration.
	anon, err := api.NewClientWithResponses(base)
	if err != nil {
		return err
	}
	slug := "go-" + uuid.NewString()[:8]
	su, err := anon.SignupWithResponse(ctx, api.SignupRequest{TenantName: "Go example", TenantSlug: slug,
		Email: "owner@example.com", Password: "correct horse battery", Name: "Owner"})
	if err != nil || su.JSON201 == nil {
		return fmt.Errorf("signup: %v %s", err, su.Body)
	}
	owner, _ := api.NewClientWithResponses(base, bearer(su.JSON201.Tokens.AccessToken))
	key, err := owner.CreateAPIKeyWithResponse(ctx, api.APIKeyCreate{Name: "quickstart", Role: api.UserRoleAdmin})
	if err != nil || key.JSON201 == nil {
		return fmt.Errorf("api key: %v %s", err, key.Body)
	}
	c, _ := api.NewClientWithResponses(base, bearer(key.JSON201.Key))

	// 2. A team, and a project created twice with one Idempotency-Key: one project.
	team, err := c.CreateTeamWithResponse(ctx, nil, api.TeamCreate{Name: "Platform", Key: "PLAT"})
	if err != nil || team.JSON201 == nil {
		return fmt.Errorf("team: %v %s", err, team.Body)
	}
	idem := uuid.NewString()
	var projects []api.Project
	for range 2 {
		p, err := c.CreateProjectWithResponse(ctx, &api.CreateProjectParams{IdempotencyKey: &idem},
			api.ProjectCreate{TeamId: team.JSON201.Id, Name: "Website", Key: "WEB"})
		if err != nil || p.JSON201 == nil {
			return fmt.Errorf("project: %v %s", err, p.Body)
		}
		projects = append(projects, *p.JSON201)
	}
	if err := check(projects[0].Id == projects[1].Id, "a retried create with the same Idempotency-Key returns the first project"); err != nil {
		return err
	}
	project := projects[0]
	for i := 1; i <= 5; i++ {
		if t, err := c.CreateTaskWithResponse(ctx, project.Id, nil, api.TaskCreate{Title: fmt.Sprintf("Task %d", i)}); err != nil || t.JSON201 == nil {
			return fmt.Errorf("task: %v %s", err, t.Body)
		}
	}

	// 3. Page through the tasks two at a time: next_cursor is null on the last page.
	var titles []string
	params := &api.ListTasksParams{Limit: ptr(2)}
	for {
		page, err := c.ListTasksWithResponse(ctx, project.Id, params)
		if err != nil || page.JSON200 == nil {
			return fmt.Errorf("list: %v %s", err, page.Body)
		}
		for _, t := range page.JSON200.Items {
			titles = append(titles, t.Title)
		}
		next, err := page.JSON200.NextCursor.Get()
		if err != nil {
			break
		}
		params.Cursor = &next
	}
	if err := check(len(titles) == 5, fmt.Sprintf("five tasks over three pages: %v", titles)); err != nil {
		return err
	}

	// 4. Problems: every error is an RFC 9457 document, decoded by the client per status.
	missing, err := c.GetTaskWithResponse(ctx, "WEB-999")
	if err != nil {
		return err
	}
	if err := check(missing.ApplicationproblemJSON404 != nil && missing.ApplicationproblemJSON404.Status == 404,
		"a missing task is a 404 problem"); err != nil {
		return err
	}

	// 5. ETags: an update with a stale If-Match is refused with 412.
	got, err := c.GetTaskWithResponse(ctx, "WEB-1")
	if err != nil || got.JSON200 == nil {
		return fmt.Errorf("get: %v", err)
	}
	etag := got.HTTPResponse.Header.Get("ETag")
	status := api.TaskStatusInProgress
	if u, err := c.UpdateTaskWithResponse(ctx, "WEB-1", &api.UpdateTaskParams{IfMatch: &etag}, api.TaskUpdate{Status: &status}); err != nil || u.JSON200 == nil {
		return fmt.Errorf("update: %v", err)
	}
	stale, err := c.UpdateTaskWithResponse(ctx, "WEB-1", &api.UpdateTaskParams{IfMatch: &etag}, api.TaskUpdate{Status: &status})
	if err != nil {
		return err
	}
	if err := check(stale.StatusCode() == http.StatusPreconditionFailed, "a write with a stale ETag is refused with 412"); err != nil {
		return err
	}

	// 6. Realtime, then webhooks.
	if err := realtime(ctx, base, key.JSON201.Key, c, project.Id); err != nil {
		return err
	}
	return webhook(ctx, c)
}

type frame struct {
	Type  string `json:"type"`
	ID    int64  `json:"id"`
	Event string `json:"event"`
	Data  struct {
		Title string `json:"title"`
	} `json:"data"`
}

// realtime subscribes to the project, sees a task created live, then reconnects with since and
// gets the task created while it was away.
func realtime(ctx context.Context, base, token string, c *api.ClientWithResponses, project uuid.UUID) error {
	topic := "project:" + project.String()
	dial := func(since int64) (*websocket.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws"+base[len("http"):]+"/v1/realtime", &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
		})
		if err != nil {
			return nil, err
		}
		sub := map[string]any{"type": "subscribe", "topic": topic}
		if since > 0 {
			sub["since"] = since
		}
		msg, _ := json.Marshal(sub)
		return ws, ws.Write(ctx, websocket.MessageText, msg)
	}
	// next reads frames until one satisfies want.
	next := func(ws *websocket.Conn, want func(frame) bool) (frame, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return frame{}, err
			}
			var f frame
			if json.Unmarshal(data, &f) == nil && want(f) {
				return f, nil
			}
		}
	}
	created := func(f frame) bool { return f.Type == "event" && f.Event == "task.created" }
	ws, err := dial(0)
	if err != nil {
		return fmt.Errorf("realtime: %w", err)
	}
	// Events committed from here on reach the socket once `subscribed` has arrived.
	if _, err := next(ws, func(f frame) bool { return f.Type == "subscribed" }); err != nil {
		return err
	}
	if _, err := c.CreateTaskWithResponse(ctx, project, nil, api.TaskCreate{Title: "Live"}); err != nil {
		return err
	}
	live, err := next(ws, created)
	if err != nil {
		return err
	}
	ws.Close(websocket.StatusNormalClosure, "")
	if err := check(live.Data.Title == "Live", fmt.Sprintf("task.created arrived live (event id %d)", live.ID)); err != nil {
		return err
	}
	if _, err := c.CreateTaskWithResponse(ctx, project, nil, api.TaskCreate{Title: "While away"}); err != nil {
		return err
	}
	if ws, err = dial(live.ID); err != nil {
		return err
	}
	defer ws.Close(websocket.StatusNormalClosure, "")
	missed, err := next(ws, created)
	if err != nil {
		return err
	}
	return check(missed.Data.Title == "While away" && missed.ID > live.ID, "resuming with since replays what was missed")
}

// webhook registers a local receiver, sends it a test ping and verifies the delivery with the
// Standard Webhooks library, as any receiver should before trusting a body.
func webhook(ctx context.Context, c *api.ClientWithResponses) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.WriteHeader(http.StatusNoContent)
		select {
		case got <- r:
			bodies <- body
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	ep, err := c.CreateWebhookEndpointWithResponse(ctx, api.WebhookEndpointCreate{
		Url: "http://" + ln.Addr().String() + "/tasker", EventTypes: []api.WebhookEventType{"task.*"}})
	if err != nil || ep.JSON201 == nil {
		return fmt.Errorf("webhook endpoint: %v %s", err, ep.Body)
	}
	if p, err := c.TestWebhookEndpointWithResponse(ctx, ep.JSON201.Id); err != nil || p.JSON202 == nil {
		return fmt.Errorf("ping: %v", err)
	}
	var r *http.Request
	select {
	case r = <-got:
	case <-time.After(15 * time.Second):
		return errors.New("no webhook delivery within 15 s")
	}
	body := <-bodies
	wh, err := standardwebhooks.NewWebhook(ep.JSON201.Secret)
	if err != nil {
		return err
	}
	if err := wh.Verify(body, r.Header); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var msg struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &msg)
	return check(msg.Type == "webhook.test", "a webhook delivery verifies with the Standard Webhooks library")
}

func ptr[T any](v T) *T { return &v }
