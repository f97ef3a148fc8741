package contract_test

import (
	"context"
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

func TestAsyncAPIDocumentParses(t *testing.T) {
	t.Parallel()
	var doc map[string]any
	if err := yaml.Unmarshal(tasker.AsyncAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("asyncapi version %v", doc["asyncapi"])
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
