package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
)

func hookCreate(url string, types ...api.WebhookEventType) api.WebhookEndpointCreate {
	if len(types) == 0 {
		types = []api.WebhookEventType{"*"}
	}
	return api.WebhookEndpointCreate{Url: url, EventTypes: types}
}

func TestWebhookEndpointSecretIsShownOnceAndStoredSealed(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	body := hookCreate("https://hooks.example.test/tasker", "task.*", "project.created", "task.*")
	body.Description = ptr("CI notifier")
	r, err := env.Client.CreateWebhookEndpointWithResponse(bg, body, w.as(api.UserRoleAdmin))
	if err != nil || r.JSON201 == nil {
		t.Fatalf("create: %v %s", err, r.Body)
	}
	made := *r.JSON201
	if !strings.HasPrefix(made.Secret, "whsec_") || len(made.EventTypes) != 2 || !made.Enabled || made.Description != "CI notifier" {
		t.Fatalf("created %+v", made)
	}
	g, _ := env.Client.GetWebhookEndpointWithResponse(bg, made.Id, w.as(api.UserRoleAdmin))
	l, _ := env.Client.ListWebhookEndpointsWithResponse(bg, nil, w.as(api.UserRoleOwner))
	if g.JSON200 == nil || l.JSON200 == nil || len(l.JSON200.Items) != 1 || l.JSON200.Items[0].Id != made.Id {
		t.Fatalf("get %s / list %s", g.Body, l.Body)
	}
	var sealed []byte
	if err := testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT secret_sealed FROM webhook_endpoints WHERE id = $1`, made.Id).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	audit, _ := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{ResourceType: ptr("webhook_endpoint")}, w.as(api.UserRoleOwner))
	secret := strings.TrimPrefix(made.Secret, "whsec_")
	for where, b := range map[string][]byte{"get": g.Body, "list": l.Body, "the database": sealed, "the audit log": audit.Body, "the log": logsOf(env.Logs)} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the secret is in %s", where)
		}
	}
	if audit.JSON200 == nil || len(audit.JSON200.Items) != 1 || audit.JSON200.Items[0].Action != "webhook_endpoint.create" {
		t.Errorf("audit: %s", audit.Body)
	}

	// A partial update changes what it names only.
	u, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, made.Id, api.WebhookEndpointUpdate{Enabled: ptr(false)}, w.as(api.UserRoleAdmin))
	if u.JSON200 == nil || u.JSON200.Enabled || u.JSON200.Url != body.Url || len(u.JSON200.EventTypes) != 2 {
		t.Fatalf("update: %s", u.Body)
	}

	// A rotation gives a new secret; the old one signs on until the overlap ends.
	rot, _ := env.Client.RotateWebhookSecretWithResponse(bg, made.Id, api.WebhookSecretRotate{OverlapSeconds: ptr(3600)}, w.as(api.UserRoleAdmin))
	if rot.JSON200 == nil || rot.JSON200.Secret == made.Secret || !strings.HasPrefix(rot.JSON200.Secret, "whsec_") ||
		time.Until(rot.JSON200.PreviousValidUntil) < 59*time.Minute {
		t.Fatalf("rotate: %s", rot.Body)
	}
	if g, _ := env.Client.GetWebhookEndpointWithResponse(bg, made.Id, w.as(api.UserRoleAdmin)); g.JSON200 == nil || g.JSON200.PreviousSecretValidUntil == nil {
		t.Errorf("during the overlap: %s", g.Body)
	}
	if rot, _ := env.Client.RotateWebhookSecretWithResponse(bg, made.Id, api.WebhookSecretRotate{OverlapSeconds: ptr(0)}, w.as(api.UserRoleAdmin)); rot.JSON200 == nil {
		t.Fatalf("rotate without overlap: %s", rot.Body)
	}
	if g, _ := env.Client.GetWebhookEndpointWithResponse(bg, made.Id, w.as(api.UserRoleAdmin)); g.JSON200 == nil || g.JSON200.PreviousSecretValidUntil != nil {
		t.Errorf("after a rotation without overlap: %s", g.Body)
	}

	// Nothing that shows a secret is kept for an Idempotency-Key replay: a retry makes a new
	// endpoint with a new secret, and the idempotency table holds no secret.
	withKey := func(_ context.Context, r *http.Request) error {
		r.Header.Set("Idempotency-Key", "same-key")
		return nil
	}
	var secrets []string
	for range 2 {
		r, _ := env.Client.CreateWebhookEndpointWithResponse(bg, hookCreate("https://hooks.example.test/retry"), w.as(api.UserRoleAdmin), withKey)
		if r.JSON201 == nil || r.HTTPResponse.Header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("create with a key: %s", r.Body)
		}
		secrets = append(secrets, r.JSON201.Secret)
		rot, _ := env.Client.RotateWebhookSecretWithResponse(bg, r.JSON201.Id, api.WebhookSecretRotate{}, w.as(api.UserRoleAdmin), withKey)
		if rot.JSON200 == nil {
			t.Fatalf("rotate with a key: %s", rot.Body)
		}
		secrets = append(secrets, rot.JSON200.Secret)
	}
	if secrets[0] == secrets[2] || secrets[1] == secrets[3] {
		t.Error("a retry with the same Idempotency-Key showed a secret again")
	}
	var kept int
	_ = testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT count(*) FROM idempotency_keys WHERE position('whsec_' in convert_from(response, 'UTF8')) > 0`).Scan(&kept)
	if kept != 0 {
		t.Errorf("%d idempotency records hold a signing secret", kept)
	}

	if d, _ := env.Client.DeleteWebhookEndpointWithResponse(bg, made.Id, w.as(api.UserRoleAdmin)); d.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %d", d.StatusCode())
	}
	if g, _ := env.Client.GetWebhookEndpointWithResponse(bg, made.Id, w.as(api.UserRoleAdmin)); g.StatusCode() != http.StatusNotFound {
		t.Errorf("get after delete: %d", g.StatusCode())
	}
}

func TestWebhookEndpointsRefuseBadURLsTypesRolesAndTooMany(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{WebhooksStrict: true, Webhooks: handlers.WebhooksConfig{MaxEndpoints: 2}})
	w := newWorkspace(t, env)
	admin := w.as(api.UserRoleAdmin)
	for _, url := range []string{
		"ftp://hooks.example.test/", "https://user:pw@hooks.example.test/", "https://hooks.example.test/#x", "hooks.example.test/x",
		"http://127.0.0.1:9/hook", "http://[::1]/hook", "http://10.0.0.8/hook", "http://169.254.169.254/latest/meta-data/", "http://localhost:8080/",
	} {
		r, err := env.Client.CreateWebhookEndpointWithResponse(bg, hookCreate(url), admin)
		if err != nil || r.StatusCode() != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"url"`) {
			t.Errorf("%q: %v %d %s", url, err, r.StatusCode(), r.Body)
		}
	}
	for _, types := range [][]api.WebhookEventType{{"task.exploded"}, {"session.revoked"}, {}, {"nothing.*"}} {
		body := api.WebhookEndpointCreate{Url: "https://hooks.example.test/", EventTypes: types}
		if r, _ := env.Client.CreateWebhookEndpointWithResponse(bg, body, admin); r.StatusCode() != http.StatusBadRequest {
			t.Errorf("event types %v: %d %s", types, r.StatusCode(), r.Body)
		}
	}
	for _, role := range []api.UserRole{api.UserRoleMember, api.UserRoleViewer} {
		if r, _ := env.Client.CreateWebhookEndpointWithResponse(bg, hookCreate("https://hooks.example.test/"), w.as(role)); r.StatusCode() != http.StatusForbidden {
			t.Errorf("create as %s: %d", role, r.StatusCode())
		}
		if r, _ := env.Client.ListWebhookEndpointsWithResponse(bg, nil, w.as(role)); r.StatusCode() != http.StatusForbidden {
			t.Errorf("list as %s: %d", role, r.StatusCode())
		}
	}
	// An admin's API key manages endpoints (integrators do).
	key := createKey(t, env, w.tokens[api.UserRoleOwner], api.APIKeyCreate{Name: "ci", Role: api.UserRoleAdmin})
	if r, _ := env.Client.CreateWebhookEndpointWithResponse(bg, hookCreate("https://hooks.example.test/1"), apitest.Bearer(key.JSON201.Key)); r.JSON201 == nil {
		t.Fatalf("create with an admin key: %s", r.Body)
	}
	// Creates racing for the last place, released at once: one gets it.
	codes := make(chan int, 30)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := env.Client.CreateWebhookEndpointWithResponse(bg, hookCreate("https://hooks.example.test/race/"+strconv.Itoa(i)), admin)
			if err != nil {
				codes <- 0
				return
			}
			codes <- r.StatusCode()
		}()
	}
	close(start)
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
		default:
			t.Errorf("a racing create: %d", c)
		}
	}
	if l, _ := env.Client.ListWebhookEndpointsWithResponse(bg, nil, admin); created != 1 || l.JSON200 == nil || len(l.JSON200.Items) != 2 {
		t.Errorf("%d racing creates got the last place; the tenant has %s", created, l.Body)
	}
	// An empty update changes nothing and says so.
	if r, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, uuid.New(), api.WebhookEndpointUpdate{}, admin); r.StatusCode() != http.StatusBadRequest {
		t.Errorf("an empty update: %d", r.StatusCode())
	}
	// Updates are checked like creates.
	l, _ := env.Client.ListWebhookEndpointsWithResponse(bg, nil, admin)
	if r, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, l.JSON200.Items[0].Id, api.WebhookEndpointUpdate{Url: ptr("http://127.0.0.1/")}, admin); r.StatusCode() != http.StatusBadRequest {
		t.Errorf("update to a private URL: %d", r.StatusCode())
	}
}
