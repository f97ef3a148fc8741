package contract

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
)

// ValidatorOptions configure the request validator.
type ValidatorOptions struct {
	// MaxBodyBytes caps request bodies; a larger body is answered with 413.
	MaxBodyBytes int64
	// Skip lets some operations read their own bodies (streaming uploads, signed webhooks),
	// keyed by operationId; their parameters are still validated.
	SkipBody map[string]bool
	// Authenticate runs once the operation is known and before its input is validated, so
	// callers without credentials learn nothing about the input rules. It returns the request
	// to continue with (carrying the principal) or the error to answer with.
	Authenticate func(r *http.Request, route *routers.Route) (*http.Request, error)
}

// RequestValidator answers requests the spec does not allow with a problem document: unknown
// paths 404, wrong methods 405, oversized bodies 413, wrong content types 415 and anything else
// that breaks the spec 400, naming each offending field. Valid requests reach next with their
// route recorded in reqinfo.
func (s *Spec) RequestValidator(opts ValidatorOptions) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			route, params, allowed, err := s.FindRoute(r)
			if err != nil {
				if len(allowed) > 0 {
					pe := problem.New(problem.MethodNotAllowed, "%s is not allowed here; use %s.", r.Method, strings.Join(allowed, ", "))
					pe.Header = http.Header{"Allow": {strings.Join(allowed, ", ")}}
					problem.Write(w, r, reqinfo.RequestID(ctx), pe)
					return
				}
				problem.Write(w, r, reqinfo.RequestID(ctx), problem.New(problem.NotFound, "No operation at %s %s.", r.Method, r.URL.Path))
				return
			}
			reqinfo.SetRoute(ctx, RouteName(route))
			if opts.Authenticate != nil {
				authed, err := opts.Authenticate(r, route)
				if err != nil {
					problem.Write(w, r, reqinfo.RequestID(ctx), err)
					return
				}
				r = authed
				ctx = r.Context()
			}

			skipBody := opts.SkipBody[route.Operation.OperationID]
			if !skipBody && r.Body != nil && r.Body != http.NoBody {
				// Read the body once, bounded, so validation and the handler share it.
				body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, opts.MaxBodyBytes))
				if err != nil {
					var tooLarge *http.MaxBytesError
					if errors.As(err, &tooLarge) {
						problem.Write(w, r, reqinfo.RequestID(ctx), problem.New(problem.TooLarge, "The body exceeds %d bytes.", opts.MaxBodyBytes))
						return
					}
					problem.Write(w, r, reqinfo.RequestID(ctx), problem.New(problem.Invalid, "The body could not be read."))
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			}

			input := &openapi3filter.RequestValidationInput{
				Request:    r,
				PathParams: params,
				Route:      route,
				Options: &openapi3filter.Options{
					MultiError:         true,
					ExcludeRequestBody: skipBody,
					// Credentials are checked by the auth middleware, which runs before this one.
					AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
				},
			}
			if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
				problem.Write(w, r, reqinfo.RequestID(ctx), RequestProblem(err))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

var (
	missingProperty     = regexp.MustCompile(`^property "([^"]+)" is missing$`)
	unsupportedProperty = regexp.MustCompile(`^property "([^"]+)" is unsupported$`)
)

// RequestProblem turns kin-openapi's validation errors (which embed whole schema dumps) into a
// short problem listing each field that failed.
func RequestProblem(err error) *problem.Error {
	var fields []problem.FieldError
	mediaType := false
	var walk func(error, *openapi3filter.RequestError)
	walk = func(err error, parent *openapi3filter.RequestError) {
		var multi openapi3.MultiError
		if errors.As(err, &multi) {
			for _, e := range multi {
				walk(e, parent)
			}
			return
		}
		var re *openapi3filter.RequestError
		if errors.As(err, &re) && re != parent {
			if re.RequestBody != nil && strings.HasPrefix(re.Reason, "header Content-Type has unexpected value") {
				mediaType = true
				return
			}
			if re.Err != nil {
				walk(re.Err, re)
				return
			}
			fields = append(fields, fieldOf(re, nil))
			return
		}
		var se *openapi3.SchemaError
		if errors.As(err, &se) {
			fields = append(fields, fieldOf(parent, se))
			return
		}
		if parent != nil {
			fields = append(fields, fieldOf(parent, nil))
		}
	}
	walk(err, nil)

	if mediaType {
		return problem.New(problem.UnsupportedMediaType, "The body must be sent as application/json.")
	}
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
	fields = dedupe(fields)
	if len(fields) == 0 {
		return problem.New(problem.Invalid, "The request does not match the API contract.")
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Field
	}
	return problem.Fields("Invalid value for "+strings.Join(names, ", ")+".", fields...)
}

func fieldOf(re *openapi3filter.RequestError, se *openapi3.SchemaError) problem.FieldError {
	f := problem.FieldError{In: "body", Field: "body", Message: "invalid value"}
	if re != nil && re.Parameter != nil {
		f.In = re.Parameter.In
		f.Field = re.Parameter.Name
	}
	if re != nil && re.Err != nil && se == nil {
		f.Message = re.Err.Error()
	} else if re != nil && re.Reason != "" && se == nil {
		f.Message = re.Reason
	}
	if se == nil {
		return f
	}
	path := se.JSONPointer()
	reason := se.Reason
	if m := missingProperty.FindStringSubmatch(reason); m != nil {
		path = withLast(path, m[1])
		reason = "is required"
	} else if m := unsupportedProperty.FindStringSubmatch(reason); m != nil {
		path = withLast(path, m[1])
		reason = "is not a known field"
	}
	if len(path) > 0 {
		if f.In == "body" {
			f.Field = strings.Join(path, ".")
		} else {
			f.Field += "." + strings.Join(path, ".")
		}
	}
	if reason == "" {
		reason = "does not match the schema's " + se.SchemaField
	}
	f.Message = reason
	return f
}

// withLast appends name to path unless kin-openapi already put it there.
func withLast(path []string, name string) []string {
	if len(path) > 0 && path[len(path)-1] == name {
		return path
	}
	return append(path, name)
}

func dedupe(fields []problem.FieldError) []problem.FieldError {
	out := fields[:0]
	seen := map[string]bool{}
	for _, f := range fields {
		key := f.In + "\x00" + f.Field + "\x00" + f.Message
		if !seen[key] {
			seen[key] = true
			out = append(out, f)
		}
	}
	return out
}

// ValidateResponse checks that a response to req is one the spec describes: a declared status
// (or default), content type and body schema.
func (s *Spec) ValidateResponse(ctx context.Context, req *http.Request, status int, header http.Header, body []byte) error {
	route, params, _, err := s.FindRoute(req)
	if err != nil {
		return err
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	input.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(ctx, input)
}
