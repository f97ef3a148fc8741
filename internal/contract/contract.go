// Package contract enforces the OpenAPI document at run time: it loads the embedded spec, routes
// requests to its operations, and rejects any request the spec does not allow before a handler
// runs. Tests use the same document to check every response.
package contract

import (
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/google/uuid"

	tasker "github.com/tasker/tasker"
)

func init() {
	// kin-openapi does not check format: uuid by itself, and its RFC 4122 pattern rejects UUIDv7.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
		if len(s) != 36 {
			return fmt.Errorf("not a UUID")
		}
		if _, err := uuid.Parse(s); err != nil {
			return fmt.Errorf("not a UUID")
		}
		return nil
	}))
	// kin-openapi's date-time pattern admits instants that are outside years 1-9999 in UTC
	// (9999-12-31T23:59:59-23:59), which PostgreSQL stores and Go then cannot encode. Every
	// date-time this API takes must have a UTC year in range.
	openapi3.DefineStringFormatValidator("date-time", openapi3.NewCallbackValidator(func(s string) error {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("not an RFC 3339 date-time")
		}
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return fmt.Errorf("outside the years 0001 to 9999 in UTC")
		}
		return nil
	}))
	openapi3.DefineStringFormatValidator("date", openapi3.NewCallbackValidator(func(s string) error {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil || t.Year() < 1 {
			return fmt.Errorf("not a date from 0001-01-01 to 9999-12-31")
		}
		return nil
	}))
	// kin-openapi leaves format: email unchecked by default; accept a bare address only.
	openapi3.DefineStringFormatValidator("email", openapi3.NewCallbackValidator(func(s string) error {
		addr, err := mail.ParseAddress(s)
		if err != nil || addr.Address != s || addr.Name != "" {
			return fmt.Errorf("not an email address")
		}
		return nil
	}))
}

// Spec is the loaded, validated OpenAPI document with its router.
type Spec struct {
	Doc        *openapi3.T
	router     routers.Router
	bodyLimits map[string]int64 // MaxBodyExtension by operationId
}

// Load parses and validates the embedded openapi/openapi.yaml.
func Load(ctx context.Context) (*Spec, error) {
	return LoadBytes(ctx, tasker.OpenAPISpec)
}

// LoadBytes parses and validates an OpenAPI document.
func LoadBytes(ctx context.Context, data []byte) (*Spec, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load openapi: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("validate openapi: %w", err)
	}
	limits, err := bodyLimits(doc)
	if err != nil {
		return nil, fmt.Errorf("validate openapi: %w", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi: %w", err)
	}
	return &Spec{Doc: doc, router: router, bodyLimits: limits}, nil
}

// allMethods are tried when a path matched no operation, to tell 404 from 405.
var allMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// FindRoute returns the operation r addresses and its path parameters. When the path exists
// with other methods only, allowed lists them (so the caller can answer 405 with Allow).
func (s *Spec) FindRoute(r *http.Request) (route *routers.Route, params map[string]string, allowed []string, err error) {
	if len(r.URL.Path) > 1 && strings.HasSuffix(r.URL.Path, "/") {
		// The router forgives a trailing slash the handlers do not: no operation has one, so
		// such a path is 404 for everybody, signed in or not.
		return nil, nil, nil, routers.ErrPathNotFound
	}
	if r.Method == http.MethodHead {
		// HEAD is GET without the body (RFC 9110 section 9.3.2); the server drops the body.
		if route, params, err = s.match(r, http.MethodGet); err == nil {
			return route, params, nil, nil
		}
	}
	if route, params, err = s.match(r, r.Method); err == nil {
		return route, params, nil, nil
	}
	for _, m := range allMethods {
		if m == r.Method {
			continue
		}
		if _, _, perr := s.match(r, m); perr == nil {
			allowed = append(allowed, m)
			if m == http.MethodGet {
				allowed = append(allowed, http.MethodHead)
			}
		}
	}
	return nil, nil, allowed, err
}

// match routes r as if sent with method. The router lets a path parameter match an empty
// segment (/v1/tasks/ for /v1/tasks/{id}); no operation takes an empty one, so that is no match.
func (s *Spec) match(r *http.Request, method string) (*routers.Route, map[string]string, error) {
	probe := r
	if method != r.Method {
		probe = r.Clone(r.Context())
		probe.Method = method
	}
	route, params, err := s.router.FindRoute(probe)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range params {
		if v == "" {
			return nil, nil, routers.ErrPathNotFound
		}
	}
	return route, params, nil
}

// RouteName is the label used in logs and metrics for a route, such as "GET /v1/tasks/{id}".
func RouteName(route *routers.Route) string {
	return strings.ToUpper(route.Method) + " " + route.Path
}

// ParamIn is where the operation r addresses takes its parameter name ("query", "path",
// "header"), or "query" when the spec names no such parameter.
func (s *Spec) ParamIn(r *http.Request, name string) string {
	route, _, _, err := s.FindRoute(r)
	if err != nil {
		return openapi3.ParameterInQuery
	}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, ref := range ps {
			if ref.Value != nil && ref.Value.Name == name {
				return ref.Value.In
			}
		}
	}
	return openapi3.ParameterInQuery
}
