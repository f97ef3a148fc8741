package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tasker/tasker/internal/problem"
)

// MaxBodyExtension is the operation extension that caps its request body in bytes. Without it
// an operation takes bodies up to the global limit (MAX_BODY_BYTES), which also caps it: the
// extension can only make an operation stricter.
const MaxBodyExtension = "x-max-body-bytes"

// StreamedBodyExtension marks an operation whose body the handler streams itself (an upload):
// the validator checks its parameters and media type, never reads the body, and leaves its
// limit to the handler.
const StreamedBodyExtension = "x-streamed-body"

// Streamed reports whether op carries StreamedBodyExtension.
func Streamed(op *openapi3.Operation) bool {
	v, _ := op.Extensions[StreamedBodyExtension].(bool)
	return v
}

// DefaultMaxBodyBytes is the global limit when none is configured.
const DefaultMaxBodyBytes = 1 << 20

// bodyLimits reads every operation's MaxBodyExtension, keyed by operationId, and refuses the
// document when one is not a positive integer or sits on an operation that takes no body.
func bodyLimits(doc *openapi3.T) (map[string]int64, error) {
	limits := map[string]int64{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			v, ok := op.Extensions[MaxBodyExtension]
			if !ok {
				continue
			}
			if op.RequestBody == nil {
				return nil, fmt.Errorf("%s %s: %s on an operation without a requestBody", method, path, MaxBodyExtension)
			}
			n, err := positiveInt(v)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %s: %w", method, path, MaxBodyExtension, err)
			}
			limits[op.OperationID] = n
		}
	}
	return limits, nil
}

func positiveInt(v any) (int64, error) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, fmt.Errorf("%v is not a number", v)
		}
	default:
		return 0, fmt.Errorf("%v is not a number", v)
	}
	if f < 1 || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, fmt.Errorf("%v is not a positive whole number of bytes", v)
	}
	return int64(f), nil
}

// BodyLimit is the largest request body op takes: 0 when it has no requestBody, otherwise its
// MaxBodyExtension capped by max, the global limit.
func (s *Spec) BodyLimit(op *openapi3.Operation, max int64) int64 {
	if op.RequestBody == nil {
		return 0
	}
	if n, ok := s.bodyLimits[op.OperationID]; ok {
		return min(n, max)
	}
	return max
}

type bodyKey struct{}

type streamedKey struct{}

type headKey struct{}

// StreamHeadBytes caps what a streamed body may hold before its handler says that its head (a
// form's fields and part headers) has ended, with EndOfHead: mime/multipart would otherwise
// take up to 10 MiB of part headers into memory, for as long as the upload lasts.
const StreamHeadBytes = 64 << 10

// ErrHeadTooLarge is the read error of a streamed body whose head passes StreamHeadBytes.
var ErrHeadTooLarge = errors.New("contract: the head of the body exceeds its limit")

type headLimit struct {
	r    io.Reader
	left int64
	open atomic.Bool
	// beforeRead, when set, runs before every read of the connection (OnBodyRead).
	beforeRead func()
}

func (h *headLimit) Read(p []byte) (int, error) {
	if h.beforeRead != nil {
		h.beforeRead()
	}
	if h.open.Load() {
		return h.r.Read(p)
	}
	if h.left <= 0 {
		return 0, ErrHeadTooLarge
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.r.Read(p)
	h.left -= int64(n)
	return n, err
}

// EndOfHead lifts the head limit of the request's streamed body: what follows is the content.
func EndOfHead(ctx context.Context) {
	if h, ok := ctx.Value(headKey{}).(*headLimit); ok {
		h.open.Store(true)
	}
}

// OnBodyRead makes fn run before every read of the request's streamed body from the
// connection (every read under the multipart parser's buffers, boundaries included), as an
// idle deadline needs. Call it before the body is read concurrently.
func OnBodyRead(ctx context.Context, fn func()) {
	if h, ok := ctx.Value(headKey{}).(*headLimit); ok {
		h.beforeRead = fn
	}
}

// EndOfContent caps again what the streamed body may still hold, at n bytes: after the content
// only the form's end may come. Call it when no read of the body is in flight.
func EndOfContent(ctx context.Context, n int64) {
	if h, ok := ctx.Value(headKey{}).(*headLimit); ok {
		h.left = n
		h.open.Store(false)
	}
}

// BodyStreamed reports whether the request's operation streams its body (StreamedBodyExtension):
// the validator has not read it, and no layer before the handler may.
func BodyStreamed(ctx context.Context) bool {
	v, _ := ctx.Value(streamedKey{}).(bool)
	return v
}

// Body is the request body the validator read, shared so that no later layer (the idempotency
// fingerprint) reads or copies it again. ok is false only when the request did not pass the
// validator; an operation without a body gets nil.
func Body(ctx context.Context) (body []byte, ok bool) {
	body, ok = ctx.Value(bodyKey{}).([]byte)
	return body, ok
}

// readBody reads r's body for an operation that takes at most limit bytes (0: none) and hands
// it on through r.Body, r.GetBody and Body. It never reads more than limit+1 bytes, and refuses
// a body the operation does not take, or one it knows is too large by its Content-Length,
// without reading any of it. Every refusal closes the connection, so that the server does not
// read the rest of the body to keep the connection alive.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*http.Request, error) {
	body, err := bufferBody(r, limit)
	if err != nil {
		w.Header().Set("Connection", "close")
		return nil, err
	}
	r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, body))
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return r, nil
}

// bufferBody is r's body, nil when there is none.
func bufferBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if limit == 0 {
		return nil, problem.Fields("This operation takes no request body.",
			problem.FieldError{In: "body", Field: "body", Message: "must be absent: this operation takes no body"})
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	// Not http.MaxBytesReader: it closes the connection only when it holds the server's own
	// writer, not the middleware's wrappers of it; readBody does that for every refusal.
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	switch {
	case err != nil:
		return nil, problem.Wrap(problem.Invalid, err, "The body could not be read.")
	case int64(len(body)) > limit:
		return nil, tooLarge(limit)
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return problem.New(problem.TooLarge, "The body exceeds %d bytes, the limit of this operation.", limit)
}
