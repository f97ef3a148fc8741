package contract_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	tasker "github.com/tasker/tasker"
	"github.com/tasker/tasker/internal/contract"
)

func load(t *testing.T) *contract.Spec {
	t.Helper()
	spec, err := contract.Load(context.Background())
	if err != nil {
		t.Fatalf("openapi/openapi.yaml does not load and validate under kin-openapi: %v", err)
	}
	return spec
}

func TestSpecIsValidOpenAPI(t *testing.T) {
	t.Parallel()
	spec := load(t)
	if !strings.HasPrefix(spec.Doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", spec.Doc.OpenAPI)
	}
	// House rules every operation follows: an operationId for the generated code, and a default
	// problem response so every error a client can get is described.
	for path, item := range spec.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			def := op.Responses.Default()
			if def == nil || def.Value == nil || def.Value.Content.Get("application/problem+json") == nil {
				t.Errorf("%s %s has no default application/problem+json response", method, path)
			}
		}
	}
}

func TestAsyncAPIDocumentIsWellFormed(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := yaml.Unmarshal(tasker.AsyncAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range asyncAPIProblems(doc) {
		t.Error("openapi/asyncapi.yaml: " + p)
	}
}

// The document is a skeleton today (no channels yet), so the check is also run on documents
// that break each rule, to show it fails when it should.
func TestAsyncAPICheckFindsBrokenDocuments(t *testing.T) {
	t.Parallel()
	const good = `
asyncapi: 3.0.0
info: {title: t, version: "1"}
channels:
  tasks:
    address: tenants/{tenant}/tasks
    messages:
      taskCreated: {$ref: "#/components/messages/taskCreated"}
operations:
  sendTaskCreated:
    action: send
    channel: {$ref: "#/channels/tasks"}
    messages: [{$ref: "#/channels/tasks/messages/taskCreated"}]
components:
  messages:
    taskCreated:
      payload: {$ref: "#/components/schemas/Task"}
  schemas:
    Task: {type: object}
`
	cases := []struct {
		name string
		edit func(string) string
		want string // in one of the problems; "" for none at all
	}{
		{"valid", func(d string) string { return d }, ""},
		{"2.x", func(d string) string { return strings.Replace(d, "asyncapi: 3.0.0", "asyncapi: 2.6.0", 1) }, "asyncapi version"},
		{"no channels", func(d string) string { return d[:strings.Index(d, "channels:")] + d[strings.Index(d, "operations:"):] }, "channels is missing"},
		{"no component messages", func(d string) string {
			return strings.Replace(d, "  messages:\n    taskCreated:", "  other:\n    taskCreated:", 1)
		}, "components.messages is missing"},
		{"message without payload", func(d string) string { return strings.Replace(d, "payload: {$ref", "summary: {$ref", 1) }, "components.messages.taskCreated has no payload"},
		{"dangling $ref", func(d string) string {
			return strings.Replace(d, "#/components/schemas/Task", "#/components/schemas/Tsak", 1)
		}, `"#/components/schemas/Tsak" does not resolve`},
		{"external $ref", func(d string) string { return strings.Replace(d, "#/components/schemas/Task", "other.yaml#/Task", 1) }, `"other.yaml#/Task" does not resolve`},
		{"operation without an action", func(d string) string { return strings.Replace(d, "action: send", "action: emit", 1) }, "action emit"},
	}
	for _, c := range cases {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(c.edit(good)), &doc); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		problems := asyncAPIProblems(doc)
		found := c.want == "" && len(problems) == 0
		for _, p := range problems {
			found = found || c.want != "" && strings.Contains(p, c.want)
		}
		if !found {
			t.Errorf("%s: problems %q, want one saying %q", c.name, problems, c.want)
		}
	}
}

// asyncAPIProblems checks an AsyncAPI 3 document: version and info, the channels, operations
// and component messages maps, a payload schema on every message, a send or receive action and
// a channel on every operation, and every $ref pointing inside the document at something there.
func asyncAPIProblems(doc map[string]any) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if v, _ := doc["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		bad("asyncapi version %v, want 3.x", doc["asyncapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if s, _ := info["title"].(string); s == "" {
		bad("info.title is missing")
	}
	if s, _ := info["version"].(string); s == "" {
		bad("info.version is missing")
	}
	mapAt := func(path string, v any) map[string]any {
		m, ok := v.(map[string]any)
		if !ok {
			bad("%s is missing or not a map", path)
		}
		return m
	}
	resolve := func(v any) any {
		for range 10 { // a $ref to a $ref is followed; a cycle is not
			m, ok := v.(map[string]any)
			ref, isRef := m["$ref"].(string)
			if !ok || !isRef {
				return v
			}
			v = pointer(doc, ref)
		}
		return nil
	}
	checkMessage := func(path string, v any) {
		msg, ok := resolve(v).(map[string]any)
		if !ok {
			bad("%s is not a message", path)
			return
		}
		if _, ok := resolve(msg["payload"]).(map[string]any); !ok {
			bad("%s has no payload schema", path)
		}
	}
	channels := mapAt("channels", doc["channels"])
	for name, c := range channels {
		ch, ok := resolve(c).(map[string]any)
		if !ok {
			bad("channels.%s is not a channel", name)
			continue
		}
		if msgs, ok := ch["messages"]; ok {
			for mname, m := range mapAt("channels."+name+".messages", msgs) {
				checkMessage("channels."+name+".messages."+mname, m)
			}
		}
	}
	for name, o := range mapAt("operations", doc["operations"]) {
		op, _ := o.(map[string]any)
		if a := op["action"]; a != "send" && a != "receive" {
			bad("operations.%s: action %v, want send or receive", name, a)
		}
		if ref, _ := refOf(op["channel"]); !strings.HasPrefix(ref, "#/channels/") {
			bad("operations.%s: channel must be a $ref to #/channels/...", name)
		}
	}
	components := mapAt("components", doc["components"])
	for name, m := range mapAt("components.messages", components["messages"]) {
		checkMessage("components.messages."+name, m)
	}
	walkRefs(doc, "", func(at, ref string) {
		if !strings.HasPrefix(ref, "#/") || pointer(doc, ref) == nil {
			bad("%s: $ref %q does not resolve inside the document", at, ref)
		}
	})
	return out
}

// refOf is the $ref of v, when v is a reference.
func refOf(v any) (string, bool) {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	return ref, ok
}

// pointer is what a local $ref ("#/a/b") names in doc, or nil.
func pointer(doc map[string]any, ref string) any {
	frag, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(frag, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// walkRefs calls fn with every $ref in v and where it is.
func walkRefs(v any, at string, fn func(at, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "$ref" {
				fn(at, s)
				continue
			}
			walkRefs(e, at+"/"+k, fn)
		}
	case []any:
		for i, e := range v {
			walkRefs(e, fmt.Sprintf("%s/%d", at, i), fn)
		}
	}
}

func TestValidateResponseRejectsWhatTheSpecDoesNotDescribe(t *testing.T) {
	t.Parallel()
	spec := load(t)
	ctx := context.Background()
	signup := httptest.NewRequest(http.MethodPost, "/v1/auth/signup", nil)
	health := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	problemCT := http.Header{"Content-Type": {"application/problem+json"}}
	cases := []struct {
		name   string
		req    *http.Request
		status int
		header http.Header
		body   string
		ok     bool
	}{
		{"healthz ok", health, 200, jsonCT, `{"status":"ok"}`, true},
		{"healthz unknown status value", health, 200, jsonCT, `{"status":"meh"}`, false},
		{"healthz as text", health, 200, http.Header{"Content-Type": {"text/plain"}}, `ok`, false},
		{"signup missing user", signup, 201, jsonCT, `{"tenant":{"id":"01a220d3-bcb1-7136-8797-bf469b1a1b99","slug":"a","name":"A","plan":"free","created_at":"2026-01-01T00:00:00Z"}}`, false},
		{"problem", signup, 409, problemCT, `{"type":"t","title":"Conflict","status":409}`, true},
		{"problem without title", signup, 409, problemCT, `{"type":"t","status":409}`, false},
		{"error as json", signup, 500, jsonCT, `{"error":"x"}`, false},
	}
	for _, tc := range cases {
		err := spec.ValidateResponse(ctx, tc.req, tc.status, tc.header, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ValidateResponse = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestFindRouteTellsNotFoundFromMethodNotAllowed(t *testing.T) {
	t.Parallel()
	spec := load(t)
	_, _, allowed, err := spec.FindRoute(httptest.NewRequest(http.MethodGet, "/v1/auth/signup", nil))
	if err == nil || len(allowed) != 1 || allowed[0] != http.MethodPost {
		t.Errorf("GET signup: err=%v allowed=%v; want an error and [POST]", err, allowed)
	}
	_, _, allowed, err = spec.FindRoute(httptest.NewRequest(http.MethodGet, "/v1/none", nil))
	if err == nil || len(allowed) != 0 {
		t.Errorf("GET /v1/none: err=%v allowed=%v; want an error and none allowed", err, allowed)
	}
	route, _, _, err := spec.FindRoute(httptest.NewRequest(http.MethodPost, "/v1/auth/signup", nil))
	if err != nil || contract.RouteName(route) != "POST /v1/auth/signup" {
		t.Errorf("POST signup: %v %v", route, err)
	}
}
