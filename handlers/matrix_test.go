package handlers_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/oauth2-proxy/mockoidc"

	"encoding/json"
	"fmt"
	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/contract"
	"github.com/tasker/tasker/internal/webhooks"
	"time"
)

// statusOf is any generated-client response.
type statusOf interface{ StatusCode() int }

// TestCrossTenantMatrix gives tenant B's owner every id of tenant A, on every operation that
// takes an id: each must answer 404 and change nothing, and B's lists must show nothing of A.
// The operation list comes from the OpenAPI document, so a new endpoint cannot be forgotten.
func TestCrossTenantMatrix(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a, b := newWorkspace(t, env), newWorkspace(t, env)
	asA, asB := a.as(api.UserRoleOwner), b.as(api.UserRoleOwner)

	taskA := createTask(t, env, a, api.TaskCreate{Title: "A's secret task"})
	keyA, _ := env.Client.CreateAPIKeyWithResponse(bg, api.APIKeyCreate{Name: "a", Role: api.UserRoleViewer}, asA)
	sessA, _ := env.Client.ListSessionsWithResponse(bg, nil, asA)
	userA := a.users[api.UserRoleMember].Id
	sessionA := sessA.JSON200.Items[0].Id

	fileA := mustUpload(t, env, a.tokens[api.UserRoleOwner], &taskA.Id, "a-secret.png", pngBytes(100))
	hookA, herr := env.Client.CreateWebhookEndpointWithResponse(bg, api.WebhookEndpointCreate{Url: "https://a.example.test/hook", EventTypes: []api.WebhookEventType{"*"}}, asA)
	if herr != nil || hookA.JSON201 == nil {
		t.Fatalf("A's webhook endpoint: %v", herr)
	}
	hookID := hookA.JSON201.Id
	pingA, perr := env.Client.TestWebhookEndpointWithResponse(bg, hookID, asA)
	if perr != nil || pingA.JSON202 == nil {
		t.Fatalf("A's ping: %v", perr)
	}
	hookB, herr := env.Client.CreateWebhookEndpointWithResponse(bg, api.WebhookEndpointCreate{Url: "https://b.example.test/hook", EventTypes: []api.WebhookEventType{"*"}}, asB)
	if herr != nil || hookB.JSON201 == nil {
		t.Fatalf("B's webhook endpoint: %v", herr)
	}
	fileB := mustUpload(t, env, b.tokens[api.UserRoleOwner], nil, "b.png", pngBytes(100))
	urlB, err := env.Client.GetFileURLWithResponse(bg, fileB.Id, asB)
	if err != nil || urlB.JSON200 == nil {
		t.Fatalf("B's signed URL: %v", err)
	}
	signedB := signedParams(t, urlB.JSON200.Url)

	calls := map[string]func() (statusOf, error){
		"getFile":        func() (statusOf, error) { return env.Client.GetFileWithResponse(bg, fileA.Id, asB) },
		"deleteFile":     func() (statusOf, error) { return env.Client.DeleteFileWithResponse(bg, fileA.Id, asB) },
		"getFileContent": func() (statusOf, error) { return env.Client.GetFileContentWithResponse(bg, fileA.Id, nil, asB) },
		"getFileURL":     func() (statusOf, error) { return env.Client.GetFileURLWithResponse(bg, fileA.Id, asB) },
		"listTaskFiles":  func() (statusOf, error) { return env.Client.ListTaskFilesWithResponse(bg, taskA.Id.String(), nil, asB) },
		"downloadSignedFile": func() (statusOf, error) {
			// B's own valid signature, on A's file id.
			return env.Client.DownloadSignedFileWithResponse(bg, fileA.Id, &signedB)
		},
		"downloadSignedFile (A's tenant)": func() (statusOf, error) {
			p := signedB
			p.Tenant = a.Tenant.Id
			return env.Client.DownloadSignedFileWithResponse(bg, fileA.Id, &p)
		},
		"uploadFile (A's task)": func() (statusOf, error) {
			return upload(t, env, b.tokens[api.UserRoleOwner], &taskA.Id, "planted.png", bytes.NewReader(pngBytes(100))), nil
		},
		"getUser": func() (statusOf, error) { return env.Client.GetUserWithResponse(bg, userA, asB) },
		"updateUser": func() (statusOf, error) {
			return env.Client.UpdateUserWithResponse(bg, userA, api.UserUpdate{Name: ptr("pwned")}, asB)
		},
		"deactivateUser": func() (statusOf, error) { return env.Client.DeactivateUserWithResponse(bg, userA, asB) },
		"getTeam":        func() (statusOf, error) { return env.Client.GetTeamWithResponse(bg, a.team.Id, asB) },
		"updateTeam": func() (statusOf, error) {
			return env.Client.UpdateTeamWithResponse(bg, a.team.Id, api.TeamUpdate{Name: ptr("pwned")}, asB)
		},
		"deleteTeam":      func() (statusOf, error) { return env.Client.DeleteTeamWithResponse(bg, a.team.Id, asB) },
		"listTeamMembers": func() (statusOf, error) { return env.Client.ListTeamMembersWithResponse(bg, a.team.Id, nil, asB) },
		"putTeamMember": func() (statusOf, error) {
			return env.Client.PutTeamMemberWithResponse(bg, a.team.Id, b.users[api.UserRoleMember].Id, api.TeamMemberPut{Role: api.TeamRoleLead}, asB)
		},
		"putTeamMember (B's team, A's user)": func() (statusOf, error) {
			return env.Client.PutTeamMemberWithResponse(bg, b.team.Id, userA, api.TeamMemberPut{Role: api.TeamRoleLead}, asB)
		},
		"deleteTeamMember": func() (statusOf, error) { return env.Client.DeleteTeamMemberWithResponse(bg, a.team.Id, userA, asB) },
		"getProject":       func() (statusOf, error) { return env.Client.GetProjectWithResponse(bg, a.project.Id, asB) },
		"updateProject": func() (statusOf, error) {
			return env.Client.UpdateProjectWithResponse(bg, a.project.Id, api.ProjectUpdate{Name: ptr("pwned")}, asB)
		},
		"deleteProject": func() (statusOf, error) {
			return env.Client.DeleteProjectWithResponse(bg, a.project.Id, &api.DeleteProjectParams{Force: ptr(true)}, asB)
		},
		"listTasks": func() (statusOf, error) { return env.Client.ListTasksWithResponse(bg, a.project.Id, nil, asB) },
		"createTask": func() (statusOf, error) {
			return env.Client.CreateTaskWithResponse(bg, a.project.Id, nil, api.TaskCreate{Title: "planted"}, asB)
		},
		"createProject (A's team)": func() (statusOf, error) {
			return env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: a.team.Id, Name: "x", Key: "XTEAM"}, asB)
		},
		"getTask": func() (statusOf, error) { return env.Client.GetTaskWithResponse(bg, taskA.Id.String(), asB) },
		"updateTask": func() (statusOf, error) {
			return env.Client.UpdateTaskWithResponse(bg, taskA.Id.String(), nil, api.TaskUpdate{Title: ptr("pwned")}, asB)
		},
		"updateTask (assign A's user)": func() (statusOf, error) {
			own := createTask(t, env, b, api.TaskCreate{Title: "B's"})
			return env.Client.UpdateTaskWithResponse(bg, own.Id.String(), nil, api.TaskUpdate{AssigneeId: nullableValue(userA)}, asB)
		},
		"deleteTask":         func() (statusOf, error) { return env.Client.DeleteTaskWithResponse(bg, taskA.Id.String(), nil, asB) },
		"deleteAPIKey":       func() (statusOf, error) { return env.Client.DeleteAPIKeyWithResponse(bg, keyA.JSON201.Id, asB) },
		"revokeSession":      func() (statusOf, error) { return env.Client.RevokeSessionWithResponse(bg, sessionA, asB) },
		"getWebhookEndpoint": func() (statusOf, error) { return env.Client.GetWebhookEndpointWithResponse(bg, hookID, asB) },
		"updateWebhookEndpoint": func() (statusOf, error) {
			return env.Client.UpdateWebhookEndpointWithResponse(bg, hookID, api.WebhookEndpointUpdate{Url: ptr("https://b.example.test/stolen")}, asB)
		},
		"deleteWebhookEndpoint": func() (statusOf, error) { return env.Client.DeleteWebhookEndpointWithResponse(bg, hookID, asB) },
		"rotateWebhookSecret": func() (statusOf, error) {
			return env.Client.RotateWebhookSecretWithResponse(bg, hookID, api.WebhookSecretRotate{}, asB)
		},
		"listWebhookDeliveries": func() (statusOf, error) { return env.Client.ListWebhookDeliveriesWithResponse(bg, hookID, nil, asB) },
		"testWebhookEndpoint":   func() (statusOf, error) { return env.Client.TestWebhookEndpointWithResponse(bg, hookID, asB) },
		"redeliverWebhook": func() (statusOf, error) {
			return env.Client.RedeliverWebhookWithResponse(bg, hookID, pingA.JSON202.Id, asB)
		},
		"redeliverWebhook (A's delivery through B's endpoint)": func() (statusOf, error) {
			return env.Client.RedeliverWebhookWithResponse(bg, hookB.JSON201.Id, pingA.JSON202.Id, asB)
		},
	}

	// Every operation with a path id must be in the matrix, but for WebSocket upgrades, which
	// are no REST calls.
	spec, err := contract.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range spec.Doc.Paths.Map() {
		if !strings.Contains(path, "{") {
			continue
		}
		for _, op := range item.Operations() {
			// A tenant's slug is public, not an id: TestCrossTenantSSO covers its operation.
			if webSocketOperation(op) || strings.Contains(path, "{tenant_slug}") {
				continue
			}
			if _, ok := calls[op.OperationID]; !ok {
				t.Errorf("operation %s (%s) takes an id but is not in the cross-tenant matrix", op.OperationID, path)
			}
		}
	}

	for name, call := range calls {
		resp, err := call()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode() != http.StatusNotFound {
			t.Errorf("%s with tenant A's id as tenant B: %d, want 404", name, resp.StatusCode())
		}
	}

	// Nothing of A changed.
	if u, _ := env.Client.GetUserWithResponse(bg, userA, asA); u.JSON200 == nil || u.JSON200.Name != string(api.UserRoleMember) || u.JSON200.Status != api.UserStatusActive {
		t.Errorf("A's user after B's attempts: %s", u.Body)
	}
	if tm, _ := env.Client.GetTeamWithResponse(bg, a.team.Id, asA); tm.JSON200 == nil || tm.JSON200.Name != "Engineering" {
		t.Errorf("A's team after B's attempts: %s", tm.Body)
	}
	if ms, _ := env.Client.ListTeamMembersWithResponse(bg, a.team.Id, nil, asA); ms.JSON200 == nil || len(ms.JSON200.Items) != 1 {
		t.Errorf("A's team members after B's attempts: %s", ms.Body)
	}
	if pr, _ := env.Client.GetProjectWithResponse(bg, a.project.Id, asA); pr.JSON200 == nil || pr.JSON200.Name != "Platform" {
		t.Errorf("A's project after B's attempts: %s", pr.Body)
	}
	if f, _ := env.Client.GetFileContentWithResponse(bg, fileA.Id, nil, asA); f.StatusCode() != http.StatusOK || len(f.Body) != 100 {
		t.Errorf("A's file after B's attempts: %d", f.StatusCode())
	}
	if fs, _ := env.Client.ListTaskFilesWithResponse(bg, taskA.Id.String(), nil, asA); fs.JSON200 == nil || len(fs.JSON200.Items) != 1 {
		t.Errorf("A's task files after B's attempts: %s", fs.Body)
	}
	if h, _ := env.Client.GetWebhookEndpointWithResponse(bg, hookID, asA); h.JSON200 == nil || h.JSON200.Url != "https://a.example.test/hook" || h.JSON200.PreviousSecretValidUntil != nil {
		t.Errorf("A's webhook endpoint after B's attempts: %s", h.Body)
	}
	if tk, _ := env.Client.GetTaskWithResponse(bg, taskA.Id.String(), asA); tk.JSON200 == nil || tk.JSON200.Title != "A's secret task" || tk.JSON200.Version != 1 {
		t.Errorf("A's task after B's attempts: %s", tk.Body)
	}
	if ts := listTasks(t, env, a, api.ListTasksParams{}); len(ts) != 1 {
		t.Errorf("A's project has %d tasks after B's attempts, want 1", len(ts))
	}
	if m := me(t, env, keyA.JSON201.Key); m.JSON200 == nil {
		t.Errorf("A's API key after B's attempts: %s", m.Body)
	}
	if r := refresh(t, env, a.Tokens.RefreshToken); r.JSON200 == nil {
		t.Errorf("A's session after B's attempts: %s", r.Body)
	}

	// B's lists hold nothing of A.
	aIDs := map[uuid.UUID]bool{taskA.Id: true, a.team.Id: true, a.project.Id: true, keyA.JSON201.Id: true, sessionA: true, hookID: true}
	for _, u := range a.users {
		aIDs[u.Id] = true
	}
	var seen []uuid.UUID
	users, _ := env.Client.ListUsersWithResponse(bg, &api.ListUsersParams{Limit: ptr(200)}, asB)
	for _, x := range users.JSON200.Items {
		seen = append(seen, x.Id)
	}
	teams, _ := env.Client.ListTeamsWithResponse(bg, nil, asB)
	for _, x := range teams.JSON200.Items {
		seen = append(seen, x.Id)
	}
	projects, _ := env.Client.ListProjectsWithResponse(bg, nil, asB)
	for _, x := range projects.JSON200.Items {
		seen = append(seen, x.Id)
	}
	for _, x := range listTasks(t, env, b, api.ListTasksParams{}) {
		seen = append(seen, x.Id)
	}
	keys, _ := env.Client.ListAPIKeysWithResponse(bg, nil, asB)
	for _, x := range keys.JSON200.Items {
		seen = append(seen, x.Id)
	}
	hooks, _ := env.Client.ListWebhookEndpointsWithResponse(bg, nil, asB)
	for _, x := range hooks.JSON200.Items {
		seen = append(seen, x.Id)
	}
	sessions, _ := env.Client.ListSessionsWithResponse(bg, nil, asB)
	for _, x := range sessions.JSON200.Items {
		seen = append(seen, x.Id)
	}
	audit, _ := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{Limit: ptr(200)}, asB)
	for _, x := range audit.JSON200.Items {
		seen = append(seen, x.Id)
		if x.ResourceId != nil {
			seen = append(seen, *x.ResourceId)
		}
	}
	if len(seen) < 10 {
		t.Fatalf("B's lists returned only %d ids; the check is not looking at anything", len(seen))
	}
	for _, id := range seen {
		if aIDs[id] {
			t.Errorf("B's lists include A's %s", id)
		}
	}
}

// TestCrossTenantSSO tries every way tenant A's provider could sign someone into tenant B:
// A's authorization code, A's ID token, a provider both tenants share, and A's one-time code
// turned toward B. Each fails, and B gains no user.
func TestCrossTenantSSO(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	a, b := newWorkspace(t, env), newWorkspace(t, env)
	spA, spB := newSSOProvider(t), newSSOProvider(t)
	configureSSO(t, env, a, spA, api.SSORoleAdmin, true)
	configureSSO(t, env, b, spB, api.SSORoleViewer, true)
	usersB := userCount(t, env, b)

	// A's provider answers a sign-in that started at B: B redeems the code at its own
	// provider, which never issued it.
	br := newBrowser(t, env)
	toB := br.next(br.startURL(b.Slug, apitest.SSOFrontend))
	toA, _ := url.Parse(spA.AuthorizationEndpoint())
	q := toB.Query()
	q.Set("client_id", spA.ClientID)
	toA.RawQuery = q.Encode()
	spA.person("sub-mallory", "mallory@example.test", true)
	if l := br.land(br.next(toA.String())); l.err != "code_invalid" {
		t.Errorf("A's code in B's sign-in: %s", l.at)
	}

	// B's provider passes on an ID token that A's provider made (A's key, issuer and client).
	spB.setTamper(func(c jwt.MapClaims) *mockoidc.Keypair {
		c["iss"], c["aud"] = spA.Issuer(), spA.ClientID
		return spA.Keypair
	})
	spB.person("sub-mallory", "mallory@example.test", true)
	if l := newBrowser(t, env).signIn(b.Slug); l.err != "token_invalid" {
		t.Errorf("A's ID token in B's sign-in: %s", l.at)
	}
	spB.setTamper(nil)

	// One provider for both (a shared identity service such as Google's): A's person, linked
	// in A, is a stranger to B, and B's domains decide.
	configureSSO(t, env, b, spA, api.SSORoleViewer, true, "b-only.test")
	spA.person("sub-alice", "alice@example.test", true)
	la := newBrowser(t, env).signIn(a.Slug)
	alice := me(t, env, exchange(t, env, la.code).AccessToken)
	if alice.JSON200 == nil || alice.JSON200.Tenant.Id != a.Tenant.Id || alice.JSON200.Role != api.UserRoleAdmin {
		t.Fatalf("alice in A: %s", alice.Body)
	}
	spA.person("sub-alice", "alice@example.test", true)
	if l := newBrowser(t, env).signIn(b.Slug); l.err != "domain_not_allowed" {
		t.Errorf("A's person at B with B's domains: %s", l.at)
	}
	// Even where B allows the domain, the person becomes B's own user, never A's.
	configureSSO(t, env, b, spA, api.SSORoleViewer, true)
	spA.person("sub-alice", "alice@example.test", true)
	lb := newBrowser(t, env).signIn(b.Slug)
	inB := me(t, env, exchange(t, env, lb.code).AccessToken)
	if inB.JSON200 == nil || inB.JSON200.Tenant.Id != b.Tenant.Id || inB.JSON200.User.Id == alice.JSON200.User.Id || inB.JSON200.Role != api.UserRoleViewer {
		t.Fatalf("alice in B: %s", inB.Body)
	}
	usersB++

	// A's one-time code turned toward B (its tenant part rewritten) is refused.
	spA.person("sub-alice", "alice@example.test", true)
	la = newBrowser(t, env).signIn(a.Slug)
	moved := "tkc_" + swapTenant(t, la.code[4:], b.Tenant.Id[:])
	if r, _ := env.Client.ExchangeSSOCodeWithResponse(bg, api.SSOExchange{Code: moved}); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("A's code toward B: %d", r.StatusCode())
	}
	// And A's state turned toward B is not B's state either.
	br = newBrowser(t, env)
	cb := br.toCallback(a.Slug)
	cq := cb.Query()
	cq.Set("state", "tks_"+swapTenant(t, cq.Get("state")[4:], b.Tenant.Id[:]))
	cb.RawQuery = cq.Encode()
	if l := br.land(cb); l.err != "state_invalid" {
		t.Errorf("A's state toward B: %s", l.at)
	}
	if got := userCount(t, env, b); got != usersB {
		t.Errorf("B has %d users, want %d", got, usersB)
	}
}

// TestCrossTenantWebhooks subscribes an endpoint of each of two tenants to every event: each
// receiver gets its own tenant's events only, signed with its own secret. Not parallel: it runs
// deliveries (see apitest.Options.Deliveries).
func TestCrossTenantWebhooks(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 2, Base: 200 * time.Millisecond}))
	a, b := newWorkspace(t, env), newWorkspace(t, env)
	rcvA, rcvB := newReceiver(t, nil), newReceiver(t, nil)
	hookA, hookB := createHook(t, env, a, hookCreate(rcvA.URL, "*")), createHook(t, env, b, hookCreate(rcvB.URL, "*"))

	mine := map[*receiver]map[string]bool{rcvA: {}, rcvB: {}}
	for i := range 3 {
		for _, x := range []struct {
			w   workspace
			rcv *receiver
		}{{a, rcvA}, {b, rcvB}} {
			task := createTask(t, env, x.w, api.TaskCreate{Title: fmt.Sprintf("task %d", i)})
			mine[x.rcv][task.Id.String()] = true
		}
	}
	for rcv, hook := range map[*receiver]api.WebhookEndpointCreated{rcvA: hookA, rcvB: hookB} {
		rcv.wait(t, 3)
		time.Sleep(300 * time.Millisecond)
		got := rcv.requests()
		if len(got) != 3 {
			t.Errorf("a receiver got %d deliveries, want its tenant's 3", len(got))
		}
		for _, r := range got {
			var task api.Task
			if err := json.Unmarshal(r.message(t).Data, &task); err != nil || !mine[rcv][task.Id.String()] {
				t.Errorf("a receiver got another tenant's event: %s", r.body)
			}
			if err := verify(hook.Secret, r); err != nil {
				t.Errorf("not signed with the receiver's own secret: %v", err)
			}
		}
	}
}
