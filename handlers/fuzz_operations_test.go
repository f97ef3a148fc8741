package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/contract"
)

// FuzzOperations sends fuzzed path parameters, query strings, headers and JSON bodies to every
// operation of openapi/openapi.yaml, as the people of one workspace, and fails on any 5xx and on
// any error that is not a problem document. An input is (operation, path, query, header, body):
//
//   - operation indexes the spec's operations sorted by operationId; operation/len(ops) picks the
//     caller from fuzzCallers (mostly the owner).
//   - path overrides the path parameters, "/"-separated in template order; an empty part keeps
//     the fixture. Overrides are sent percent-encoded, so they cannot change the route's shape.
//   - query is the raw query string; only bytes a request line cannot carry are percent-encoded.
//   - header is sent as Idempotency-Key and If-Match where the operation declares them.
//   - body is the raw request body, sent as application/json.
//
// Placeholders such as {team} or {newkey} in the query and the body are replaced by this
// process's ids and fresh values, so an input means the same in every fuzz worker (each has its
// own database) and when a crasher kept in testdata/fuzz/FuzzOperations is replayed later.
// Deletes and user changes act on throwaways made for that one request, never on the shared
// fixtures or the owner. The seed corpus comes from the spec: a valid example of every body and
// parameter, then variants with NUL, invalid UTF-8, lone surrogates, long strings, wrong types,
// odd numbers and dates, and trailing garbage.
func FuzzOperations(f *testing.F) {
	// Fuzzed creates (webhook endpoints, users, projects) must not use up the tenant's limits
	// before the throwaway ones are made: a fast run made over 1,000 users on the free plan.
	catalog := apitest.TestCatalog()
	catalog.Limits[billing.Free] = billing.Limits{Seats: billing.Unlimited, Projects: billing.Unlimited, StorageBytes: 1 << 30}
	env := apitest.NewWithOptions(f, apitest.Options{Webhooks: handlers.WebhooksConfig{MaxEndpoints: 1 << 30, ManualPerMinute: 1 << 30},
		Billing: handlers.BillingConfig{Catalog: catalog}})
	ops := fuzzOperations(f)
	fx := newFuzzFixture(f, env, ops)
	seeds := fuzzSeeds(ops, fx.cursors)
	if fuzzing() {
		seeds = fuzzSample(seeds, fuzzRunSeeds)
	}
	for _, s := range seeds {
		f.Add(s.op, s.path, []byte(s.query), s.header, s.body)
	}
	f.Fuzz(func(t *testing.T, op uint, path string, query []byte, header string, body []byte) {
		fx.send(t, ops, op, path, query, header, body)
	})
}

// fuzzCallers are who sends an input, picked by operation/len(ops): mostly the owner, whose
// requests reach the deepest.
var fuzzCallers = []string{"owner", "owner", "owner", "owner", "owner", "admin API key", "admin", "member", "viewer", "nobody"}

// fuzzOp is one operation of the spec as the fuzzer sees it.
type fuzzOp struct {
	id, method, path string
	params           []string          // path parameters, in template order
	defaults         map[string]string // the placeholder each path parameter takes by default
	query            []*openapi3.Parameter
	headers          []string         // Idempotency-Key, If-Match
	body             *openapi3.Schema // nil when the operation takes no body
}

// fuzzThrowaway gives, for every operation that deletes or could lock someone out, the
// throwaway each path parameter takes; it is made afresh for the one request.
var fuzzThrowaway = map[string]map[string]string{
	"deactivateUser":        {"id": "{tmp_user}"},
	"deleteSSOConfig":       {},
	"updateUser":            {"id": "{tmp_user}"},
	"deleteTeam":            {"id": "{tmp_team}"},
	"deleteTeamMember":      {"id": "{team}", "user_id": "{tmp_member}"},
	"updateProject":         {"id": "{tmp_project}"},
	"deleteProject":         {"id": "{tmp_project}"},
	"deleteTask":            {"id": "{tmp_task}"},
	"deleteFile":            {"id": "{tmp_file}"},
	"deleteAPIKey":          {"id": "{tmp_key}"},
	"revokeSession":         {"id": "{tmp_session}"},
	"deleteWebhookEndpoint": {"id": "{tmp_webhook}"},
}

// fuzzShared is the fixture a path parameter takes in every other operation, keyed by the
// path's first segment after /v1 and the parameter's name.
var fuzzShared = map[string]string{
	"users id":      "{member}",
	"teams id":      "{team}",
	"teams user_id": "{member}",
	"projects id":   "{project}",
	"tasks id":      "{task}",
	"files id":      "{file}",
	"webhooks id":   "{webhook}",
	// A delivery of that endpoint (a test ping that nothing sends in the fuzz server).
	"webhooks delivery_id": "{delivery}",
	// The SSO start takes the tenant's slug.
	"auth tenant_slug": "{slug}",
}

// webSocketOperation tells an operation the server serves outside the strict server and the
// request validator (x-websocket: true, the WebSocket upgrade): it is no REST call, so the
// harnesses that walk every operation leave it out.
func webSocketOperation(op *openapi3.Operation) bool {
	v, _ := op.Extensions["x-websocket"].(bool)
	return v
}

var fuzzPathParam = regexp.MustCompile(`\{([^}]+)\}`)

// fuzzOperations lists the spec's operations sorted by operationId, failing when one takes a
// path parameter the harness has no fixture for or deletes without a throwaway. WebSocket
// operations are left out (webSocketOperation).
func fuzzOperations(tb testing.TB) []fuzzOp {
	tb.Helper()
	spec, err := contract.Load(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	var ops []fuzzOp
	for path, item := range spec.Doc.Paths.Map() {
		for method, o := range item.Operations() {
			if webSocketOperation(o) {
				continue
			}
			op := fuzzOp{id: o.OperationID, method: method, path: path, defaults: map[string]string{}}
			throwaway, isThrowaway := fuzzThrowaway[op.id]
			if method == http.MethodDelete && !isThrowaway {
				tb.Fatalf("%s deletes: give its path parameters throwaways in fuzzThrowaway", op.id)
			}
			segment := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")[0]
			for _, m := range fuzzPathParam.FindAllStringSubmatch(path, -1) {
				name := m[1]
				op.params = append(op.params, name)
				if isThrowaway {
					op.defaults[name] = throwaway[name]
				} else {
					op.defaults[name] = fuzzShared[segment+" "+name]
				}
				if op.defaults[name] == "" {
					tb.Fatalf("%s: no fixture for path parameter %s; add it to fuzzShared or fuzzThrowaway", op.id, name)
				}
			}
			for _, ref := range append(slices.Clone(item.Parameters), o.Parameters...) {
				switch p := ref.Value; p.In {
				case openapi3.ParameterInQuery:
					op.query = append(op.query, p)
				case openapi3.ParameterInHeader:
					op.headers = append(op.headers, p.Name)
				}
			}
			if o.RequestBody != nil {
				if mt := o.RequestBody.Value.Content.Get("application/json"); mt != nil {
					op.body = mt.Schema.Value
				}
			}
			ops = append(ops, op)
		}
	}
	slices.SortFunc(ops, func(a, b fuzzOp) int { return strings.Compare(a.id, b.id) })
	return ops
}

// fuzzFixture is the shared workspace every input runs against, in one process.
type fuzzFixture struct {
	env      *apitest.Env
	w        workspace
	client   *http.Client
	vals     map[string]string // the shared fixtures' placeholders
	apiKey   string            // an admin key
	signedIn time.Time
	cursors  map[string][]string // real next_cursor values, by operation id
}

func newFuzzFixture(f *testing.F, env *apitest.Env, ops []fuzzOp) *fuzzFixture {
	w := newWorkspace(f, env)
	owner := w.as(api.UserRoleOwner)
	fx := &fuzzFixture{
		env: env, w: w, signedIn: time.Now(), cursors: map[string][]string{},
		// Redirects (a path with ..) are answers in themselves; a hung request fails.
		client: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	// Two of everything, so every list has a second page and a real cursor.
	team2, err := env.Client.CreateTeamWithResponse(bg, nil, api.TeamCreate{Name: "Design", Key: "DES"}, owner)
	if err != nil || team2.JSON201 == nil {
		f.Fatalf("create team: %v %s", err, team2.Body)
	}
	if m, err := env.Client.PutTeamMemberWithResponse(bg, w.team.Id, w.users[api.UserRoleAdmin].Id, api.TeamMemberPut{Role: api.TeamRoleLead}, owner); err != nil || m.JSON200 == nil {
		f.Fatalf("add admin to team: %v", err)
	}
	project2, err := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: team2.JSON201.Id, Name: "Docs", Key: "DOCS"}, owner)
	if err != nil || project2.JSON201 == nil {
		f.Fatalf("create project: %v %s", err, project2.Body)
	}
	task := createTask(f, env, w, api.TaskCreate{Title: "First", Labels: &[]string{"bug"}})
	task2 := createTask(f, env, w, api.TaskCreate{Title: "Second"})
	for _, name := range []string{"ci", "fuzz"} {
		key, err := env.Client.CreateAPIKeyWithResponse(bg, api.APIKeyCreate{Name: name, Role: api.UserRoleAdmin}, owner)
		if err != nil || key.JSON201 == nil {
			f.Fatalf("create API key: %v", err)
		}
		fx.apiKey = key.JSON201.Key
	}
	env.Login(f, w.Slug, w.Email, w.Password) // a second session
	file := mustUpload(f, env, w.tokens[api.UserRoleOwner], &task.Id, "first.png", pngBytes(64))
	mustUpload(f, env, w.tokens[api.UserRoleOwner], &task.Id, "second.txt", []byte("second\n"))
	var hook *api.CreateWebhookEndpointResponse
	for _, path := range []string{"/second", "/fuzz"} {
		hook, err = env.Client.CreateWebhookEndpointWithResponse(bg, api.WebhookEndpointCreate{Url: "https://hooks.example.test" + path, EventTypes: []api.WebhookEventType{"*"}}, owner)
		if err != nil || hook.JSON201 == nil {
			f.Fatalf("create webhook endpoint: %v", err)
		}
	}
	var ping *api.TestWebhookEndpointResponse
	for range 2 { // two deliveries, so that their list has a second page
		if ping, err = env.Client.TestWebhookEndpointWithResponse(bg, hook.JSON201.Id, owner); err != nil || ping.JSON202 == nil {
			f.Fatalf("ping the webhook endpoint: %v", err)
		}
	}
	fx.vals = map[string]string{
		"delivery": ping.JSON202.Id.String(),
		"owner":    w.users[api.UserRoleOwner].Id.String(), "admin": w.users[api.UserRoleAdmin].Id.String(),
		"member": w.users[api.UserRoleMember].Id.String(), "viewer": w.users[api.UserRoleViewer].Id.String(),
		"team": w.team.Id.String(), "team2": team2.JSON201.Id.String(),
		"project": w.project.Id.String(), "project2": project2.JSON201.Id.String(),
		"task": task.Id.String(), "task2": task2.Id.String(), "task_key": task.Key, "file": file.Id.String(),
		"slug": w.Slug, "email": w.Email, "password": w.Password, "webhook": hook.JSON201.Id.String(),
	}

	// A real cursor of every list (of every sort of the task list), for the seeds.
	e := &fuzzExec{t: f, fx: fx, vals: map[string]string{}}
	for _, op := range ops {
		var sorts []string
		for _, p := range op.query {
			if p.Name == "sort" {
				for _, v := range p.Schema.Value.Enum {
					sorts = append(sorts, "&sort="+fmt.Sprint(v))
				}
			}
		}
		if !slices.ContainsFunc(op.query, func(p *openapi3.Parameter) bool { return p.Name == "cursor" }) {
			continue
		}
		if sorts == nil {
			sorts = []string{""}
		}
		path, _ := e.path(op, "")
		for _, sort := range sorts {
			var page struct {
				NextCursor *string `json:"next_cursor"`
			}
			if status, body := fx.call(f, fx.w.tokens[api.UserRoleOwner], http.MethodGet, path+"?limit=1"+sort, nil, &page); status != http.StatusOK || page.NextCursor == nil {
				f.Fatalf("%s: no second page to take a cursor from: %d %s", op.id, status, body)
			}
			fx.cursors[op.id] = append(fx.cursors[op.id], *page.NextCursor)
		}
	}
	return fx
}

// call makes one request as token (none when empty) and decodes a successful JSON answer into out.
func (fx *fuzzFixture) call(t testing.TB, token, method, path string, body, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, fx.env.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := fx.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode, data
}

// arrange makes a throwaway as the owner and fails unless the server answers want.
func (fx *fuzzFixture) arrange(t testing.TB, what, method, path string, body any, want int, out any) {
	t.Helper()
	if status, data := fx.call(t, fx.w.tokens[api.UserRoleOwner], method, path, body, out); status != want {
		t.Fatalf("arranging %s (%s %s): %d, want %d: %s", what, method, path, status, want, data)
	}
}

// freshen signs the workspace's people in again before their access tokens expire, for fuzz
// runs longer than the token lifetime.
func (fx *fuzzFixture) freshen(t testing.TB) {
	if time.Since(fx.signedIn) < 10*time.Minute {
		return
	}
	for role := range fx.w.tokens {
		email, pw := string(role)+"@example.test", "password for "+string(role)
		if role == api.UserRoleOwner {
			email, pw = fx.w.Email, fx.w.Password
		}
		var pair api.TokenPair
		if status, data := fx.call(t, "", http.MethodPost, "/v1/auth/login", map[string]string{"tenant_slug": fx.w.Slug, "email": email, "password": pw}, &pair); status != http.StatusOK {
			t.Fatalf("signing %s in again: %d %s", role, status, data)
		}
		fx.w.tokens[role] = pair.AccessToken
	}
	fx.signedIn = time.Now()
}

func (fx *fuzzFixture) token(caller string) string {
	switch caller {
	case "admin API key":
		return fx.apiKey
	case "nobody":
		return ""
	}
	return fx.w.tokens[api.UserRole(caller)]
}

// send makes the request an input describes and checks the answer.
func (fx *fuzzFixture) send(t *testing.T, ops []fuzzOp, opIndex uint, pathIn string, query []byte, header string, body []byte) {
	n := uint(len(ops))
	op := ops[opIndex%n]
	caller := fuzzCallers[(opIndex/n)%uint(len(fuzzCallers))]
	fx.freshen(t)
	fx.env.Logs.Reset()
	e := &fuzzExec{t: t, fx: fx, vals: map[string]string{}}

	path, rawPath := e.path(op, pathIn)
	rawQuery := fuzzQuery(e.expand(string(query)))
	body = e.expandBytes(body)
	req, err := http.NewRequest(op.method, fx.env.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Path, req.URL.RawPath, req.URL.RawQuery = path, rawPath, rawQuery
	if op.body != nil || len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if token := fx.token(caller); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if header != "" {
		for _, name := range op.headers {
			req.Header.Set(name, fuzzHeader(header))
		}
	}
	what := func() string {
		return fmt.Sprintf("%s (%s %s) as %s\n  path %q query %q header %q\n  body %q",
			op.id, op.method, req.URL.RequestURI(), caller, pathIn, query, header, fuzzClip(body))
	}
	resp, err := fx.client.Do(req)
	if err != nil {
		t.Fatalf("%s\n  no answer: %v", what(), err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	status, ct := resp.StatusCode, resp.Header.Get("Content-Type")
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
	switch {
	case status >= 500:
		t.Fatalf("%s\n  answered %d: %s%s", what(), status, fuzzClip(out), fx.serverErrors(resp.Header.Get("X-Request-Id")))
	case status < 400:
	case ct != "application/problem+json":
		t.Fatalf("%s\n  answered %d as %q, not a problem document: %s", what(), status, ct, fuzzClip(out))
	case json.Unmarshal(out, &p) != nil || p.Status != status || p.Type == "" || p.Title == "":
		t.Fatalf("%s\n  answered %d with an incomplete problem document: %s", what(), status, fuzzClip(out))
	}
}

// serverErrors are the server's error and panic records of one request, which say what went
// wrong behind a 500.
func (fx *fuzzFixture) serverErrors(requestID string) string {
	var b strings.Builder
	for _, rec := range fx.env.Logs.Lines() {
		if rec["request_id"] == requestID && (rec["error"] != nil || rec["panic"] != nil) && rec["level"] != "INFO" {
			line, _ := json.Marshal(rec)
			fmt.Fprintf(&b, "\n  server log: %s", line)
		}
	}
	return b.String()
}

// fuzzExec resolves the placeholders of one input: the shared fixtures, and fresh values and
// throwaways made on first use.
type fuzzExec struct {
	t    testing.TB
	fx   *fuzzFixture
	vals map[string]string
}

var (
	fuzzPlaceholder = regexp.MustCompile(`\{[a-z][a-z0-9_]*\}`)
	// fuzzTaskKey matches what could name a task by key; deleteTask sends its throwaway's key
	// instead, so no input deletes the shared tasks.
	fuzzTaskKey = regexp.MustCompile(`(?i)^\s*[a-z]{2,10}-[0-9]+\s*$`)
)

func (e *fuzzExec) expand(s string) string {
	return fuzzPlaceholder.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := e.value(m[1 : len(m)-1]); ok {
			return v
		}
		return m
	})
}

func (e *fuzzExec) expandBytes(b []byte) []byte {
	return fuzzPlaceholder.ReplaceAllFunc(b, func(m []byte) []byte {
		if v, ok := e.value(string(m[1 : len(m)-1])); ok {
			return []byte(v)
		}
		return m
	})
}

// path fills the operation's template: overrides (never expanded, so no input can name the
// owner or a shared fixture in a throwaway operation) or each parameter's default placeholder.
func (e *fuzzExec) path(op fuzzOp, in string) (path, raw string) {
	var over []string
	if in != "" {
		over = strings.Split(in, "/")
	}
	var p, r strings.Builder
	last := 0
	for i, m := range fuzzPathParam.FindAllStringSubmatchIndex(op.path, -1) {
		p.WriteString(op.path[last:m[0]])
		r.WriteString(op.path[last:m[0]])
		last = m[1]
		def := op.defaults[op.path[m[2]:m[3]]]
		v := ""
		switch {
		case i >= len(over) || over[i] == "":
			v = e.expand(def)
		case def == "{tmp_task}" && fuzzTaskKey.MatchString(over[i]):
			v = e.expand("{tmp_task_key}")
		default:
			v = over[i]
		}
		p.WriteString(v)
		r.WriteString(url.PathEscape(v))
	}
	p.WriteString(op.path[last:])
	r.WriteString(op.path[last:])
	return p.String(), r.String()
}

func (e *fuzzExec) value(name string) (string, bool) {
	if v, ok := e.fx.vals[name]; ok {
		return v, true
	}
	if v, ok := e.vals[name]; ok {
		return v, true
	}
	if !e.make(name) {
		return "", false
	}
	v, ok := e.vals[name]
	return v, ok
}

// make creates the fresh value or throwaway name stands for (with its siblings: a throwaway
// task's key, a throwaway session's refresh token).
func (e *fuzzExec) make(name string) bool {
	fx, t := e.fx, e.t
	switch name {
	case "newslug":
		e.vals[name] = "f-" + fuzzHex(8)
	case "newkey":
		e.vals[name] = fuzzLetters(10)
	case "newemail":
		e.vals[name] = "fuzz-" + fuzzHex(8) + "@example.test"
	case "tmp_user":
		var out api.UserCreated
		fx.arrange(t, "a user", http.MethodPost, "/v1/users", map[string]string{"email": "tmp-" + fuzzHex(8) + "@example.test", "name": "Throwaway", "role": "member", "password": "throwaway password"}, http.StatusCreated, &out)
		e.vals[name] = out.User.Id.String()
	case "invite":
		var out api.UserCreated
		fx.arrange(t, "an invitation", http.MethodPost, "/v1/users", map[string]string{"email": "tmp-" + fuzzHex(8) + "@example.test", "name": "Invited", "role": "member"}, http.StatusCreated, &out)
		e.vals[name] = *out.InviteToken
	case "tmp_member":
		user, _ := e.value("tmp_user")
		fx.arrange(t, "a team member", http.MethodPut, "/v1/teams/"+fx.vals["team"]+"/members/"+user, map[string]string{"role": "member"}, http.StatusOK, nil)
		e.vals["tmp_member"] = user
	case "tmp_team":
		var out api.Team
		fx.arrange(t, "a team", http.MethodPost, "/v1/teams", map[string]string{"name": "Throwaway", "key": fuzzLetters(10)}, http.StatusCreated, &out)
		e.vals["tmp_team"] = out.Id.String()
	case "tmp_project":
		var out api.Project
		fx.arrange(t, "a project", http.MethodPost, "/v1/projects", map[string]string{"team_id": fx.vals["team"], "name": "Throwaway", "key": fuzzLetters(10)}, http.StatusCreated, &out)
		fx.arrange(t, "a task in it", http.MethodPost, "/v1/projects/"+out.Id.String()+"/tasks", map[string]string{"title": "Throwaway"}, http.StatusCreated, nil)
		e.vals["tmp_project"] = out.Id.String()
	case "tmp_task", "tmp_task_key":
		var out api.Task
		fx.arrange(t, "a task", http.MethodPost, "/v1/projects/"+fx.vals["project"]+"/tasks", map[string]string{"title": "Throwaway"}, http.StatusCreated, &out)
		e.vals["tmp_task"], e.vals["tmp_task_key"] = out.Id.String(), out.Key
	case "tmp_file":
		task, _ := e.value("tmp_task")
		id := uuid.MustParse(task)
		e.vals["tmp_file"] = mustUpload(t, fx.env, fx.w.tokens[api.UserRoleOwner], &id, "throwaway.txt", []byte("throwaway\n")).Id.String()
	case "tmp_webhook":
		var out api.WebhookEndpointCreated
		fx.arrange(t, "a webhook endpoint", http.MethodPost, "/v1/webhooks", map[string]any{"url": "https://hooks.example.test/throwaway", "event_types": []string{"*"}}, http.StatusCreated, &out)
		e.vals["tmp_webhook"] = out.Id.String()
	case "tmp_key":
		var out api.APIKeyCreated
		fx.arrange(t, "an API key", http.MethodPost, "/v1/api-keys", map[string]string{"name": "throwaway", "role": "viewer"}, http.StatusCreated, &out)
		e.vals["tmp_key"] = out.Id.String()
	case "tmp_session", "refresh":
		var pair api.TokenPair
		fx.arrange(t, "a session", http.MethodPost, "/v1/auth/login", map[string]string{"tenant_slug": fx.w.Slug, "email": fx.w.Email, "password": fx.w.Password}, http.StatusOK, &pair)
		e.vals["refresh"], e.vals["tmp_session"] = pair.RefreshToken, fuzzSessionID(t, pair.AccessToken)
	default:
		return false
	}
	return true
}

// fuzzSessionID reads the session id (sid) out of an access token.
func fuzzSessionID(t testing.TB, token string) string {
	parts := strings.Split(token, ".")
	var claims struct {
		SID string `json:"sid"`
	}
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err == nil {
		err = json.Unmarshal(payload, &claims)
	}
	if err != nil || claims.SID == "" {
		t.Fatalf("access token without a session id: %v", err)
	}
	return claims.SID
}

// fuzzQuery percent-encodes the bytes a request line cannot carry (controls, space, #, non-ASCII)
// and keeps everything else (a stray %, ;, & or =) as the fuzzer wrote it.
func fuzzQuery(q string) string {
	var b strings.Builder
	for i := 0; i < len(q) && i < 64<<10; i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// fuzzHeader makes a header value the client can send: controls become '?', and it is capped
// well below the server's header limit (beyond which net/http itself answers 431 in plain text).
func fuzzHeader(h string) string {
	if len(h) > 4096 {
		h = h[:4096]
	}
	b := []byte(h)
	for i, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

func fuzzClip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return string(b)
}

func fuzzHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func fuzzLetters(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'A' + b[i]%26
	}
	return string(b)
}
