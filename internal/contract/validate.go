package contract

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
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
	// MaxBodyBytes caps every request body (DefaultMaxBodyBytes when not positive); an
	// operation's MaxBodyExtension lowers its own cap. A larger body is answered with 413.
	MaxBodyBytes int64
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
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
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
					if Streamed(route.Operation) {
						// Not a byte of an upload is read for a caller who may not send one.
						w.Header().Set("Connection", "close")
					}
					problem.Write(w, r, reqinfo.RequestID(ctx), err)
					return
				}
				r = authed
				ctx = r.Context()
			}

			if Streamed(route.Operation) {
				if err := streamedProblem(r, route, params); err != nil {
					w.Header().Set("Connection", "close")
					problem.Write(w, r, reqinfo.RequestID(ctx), err)
					return
				}
				// mime/multipart reads through a 4 KiB buffer: without a larger one in front,
				// every 4 KiB of an upload would cost a read from the connection.
				head := &headLimit{r: bufio.NewReaderSize(r.Body, streamBufferSize), left: StreamHeadBytes}
				r = r.WithContext(context.WithValue(context.WithValue(ctx, streamedKey{}, true), headKey{}, head))
				r.Body = bufferedBody{Reader: head, Closer: r.Body}
				next.ServeHTTP(w, r)
				return
			}

			// Read the body once, bounded by the operation's limit, so validation, the
			// idempotency fingerprint and the handler share it.
			withBody, err := readBody(w, r, s.BodyLimit(route.Operation, opts.MaxBodyBytes))
			if err != nil {
				problem.Write(w, r, reqinfo.RequestID(ctx), err)
				return
			}
			r, ctx = withBody, withBody.Context()
			body, _ := Body(ctx)

			if fields := textProblems(r, route, params, body); len(fields) > 0 {
				problem.Write(w, r, reqinfo.RequestID(ctx), fieldsProblem(fields))
				return
			}

			input := &openapi3filter.RequestValidationInput{
				Request:    r,
				PathParams: params,
				Route:      route,
				Options: &openapi3filter.Options{
					MultiError: true,
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

// streamBufferSize is the read buffer in front of a streamed body.
const streamBufferSize = 256 << 10

type bufferedBody struct {
	io.Reader
	io.Closer
}

// streamedProblem validates a request whose body the handler streams: its parameters as usual,
// and its media type (multipart/form-data with a boundary), without reading the body.
func streamedProblem(r *http.Request, route *routers.Route, params map[string]string) error {
	if fields := textProblems(r, route, params, nil); len(fields) > 0 {
		return fieldsProblem(fields)
	}
	mt, mp, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || mp["boundary"] == "" {
		return problem.New(problem.UnsupportedMediaType, "The body must be sent as multipart/form-data.")
	}
	// kin-openapi reads the whole body into memory to check security requirements (in case an
	// AuthenticationFunc wants it): the credential was checked before, so the copy validated
	// here has none.
	op := *route.Operation
	op.Security = &openapi3.SecurityRequirements{}
	unsecured := *route
	unsecured.Operation = &op
	input := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: &unsecured,
		Options: &openapi3filter.Options{
			MultiError: true, ExcludeRequestBody: true,
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
	}
	if err := openapi3filter.ValidateRequest(r.Context(), input); err != nil {
		return RequestProblem(err)
	}
	return nil
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
		// Type switches, not errors.As: a RequestError unwraps to the MultiError it holds, and
		// errors.As would find that and lose the parameter the RequestError names.
		if multi, ok := err.(openapi3.MultiError); ok {
			for _, e := range multi {
				walk(e, parent)
			}
			return
		}
		if re, ok := err.(*openapi3filter.RequestError); ok && re != parent {
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
	return fieldsProblem(fields)
}

// MaxFieldErrors caps the fields one problem lists; the problem still counts them all, so a
// huge hostile body cannot make a huge answer.
const MaxFieldErrors = 20

// fieldsProblem is the 400 problem for fields that failed: sorted, deduplicated, at most
// MaxFieldErrors of them listed.
func fieldsProblem(fields []problem.FieldError) *problem.Error {
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
	fields = dedupe(fields)
	if len(fields) == 0 {
		return problem.New(problem.Invalid, "The request does not match the API contract.")
	}
	total := len(fields)
	fields = fields[:min(total, MaxFieldErrors)]
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Field
	}
	detail := "Invalid value for " + strings.Join(names, ", ")
	if total > len(fields) {
		detail += fmt.Sprintf(" and %d more fields", total-len(fields))
	}
	pe := problem.Fields(detail+".", fields...)
	pe.FieldCount = total
	return pe
}

// textProblems refuses malformed query strings and text that cannot be stored, in the query,
// the path, the operation's header parameters and a JSON body.
func textProblems(r *http.Request, route *routers.Route, params map[string]string, body []byte) []problem.FieldError {
	fields := queryProblems(r.URL.RawQuery)
	for name, v := range params {
		if !storable(v) {
			fields = append(fields, problem.FieldError{In: "path", Field: name, Message: badText})
		}
	}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, ref := range ps {
			if ref.Value == nil || ref.Value.In != openapi3.ParameterInHeader {
				continue
			}
			for _, v := range r.Header.Values(ref.Value.Name) {
				if !storable(v) {
					fields = append(fields, problem.FieldError{In: "header", Field: ref.Value.Name, Message: badText})
				}
			}
		}
	}
	if body != nil && isJSON(r.Header.Get("Content-Type")) {
		fields = append(fields, bodyProblems(body)...)
	}
	return fields
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
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
	// A parameter is named as it is sent (status, not status.0); body fields by their path.
	if len(path) > 0 && f.In == "body" {
		f.Field = strings.Join(path, ".")
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
