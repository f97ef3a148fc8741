// Package problem is Tasker's one error taxonomy and its single mapping to RFC 9457
// application/problem+json responses. Domain code returns *Error values (or wraps them);
// the HTTP layer turns any error into a problem with Write, never leaking internal text.
package problem

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Kind is a class of failure that clients can act on. Each kind has one status code.
type Kind int

const (
	// Internal is anything unexpected: logged in full, answered with a generic 500.
	Internal Kind = iota
	Invalid
	Unauthenticated
	Forbidden
	NotFound
	MethodNotAllowed
	Conflict
	PreconditionFailed
	TooLarge
	UnsupportedMediaType
	RangeNotSatisfiable
	Unprocessable
	// LimitExceeded is a create past a plan limit (seats, projects, storage): 402.
	LimitExceeded
	RateLimited
	// BadGateway is a service we depend on (Stripe) failing or refusing a call.
	BadGateway
	Unavailable
)

type kindInfo struct {
	status int
	slug   string
	title  string
}

// kinds is the one table from kind to status; keep it in step with the Kind constants.
var kinds = map[Kind]kindInfo{
	Internal:             {http.StatusInternalServerError, "internal", "Internal server error"},
	Invalid:              {http.StatusBadRequest, "validation", "Request is invalid"},
	Unauthenticated:      {http.StatusUnauthorized, "unauthenticated", "Authentication required"},
	Forbidden:            {http.StatusForbidden, "forbidden", "Not allowed"},
	NotFound:             {http.StatusNotFound, "not-found", "Not found"},
	MethodNotAllowed:     {http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"},
	Conflict:             {http.StatusConflict, "conflict", "Conflict"},
	PreconditionFailed:   {http.StatusPreconditionFailed, "precondition-failed", "Precondition failed"},
	TooLarge:             {http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
	UnsupportedMediaType: {http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"},
	RangeNotSatisfiable:  {http.StatusRequestedRangeNotSatisfiable, "range-not-satisfiable", "Range not satisfiable"},
	Unprocessable:        {http.StatusUnprocessableEntity, "unprocessable", "Request cannot be processed"},
	LimitExceeded:        {http.StatusPaymentRequired, "limit-exceeded", "Plan limit exceeded"},
	RateLimited:          {http.StatusTooManyRequests, "rate-limited", "Too many requests"},
	BadGateway:           {http.StatusBadGateway, "bad-gateway", "Upstream service failed"},
	Unavailable:          {http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
}

// TypeBase prefixes every problem type URI.
const TypeBase = "https://tasker.dev/problems/"

// Status is the HTTP status code of k.
func (k Kind) Status() int { return kinds[k].status }

// Type is the problem type URI of k.
func (k Kind) Type() string { return TypeBase + kinds[k].slug }

// Title is the short, fixed summary of k.
func (k Kind) Title() string { return kinds[k].title }

// FieldError names one input field that failed validation.
type FieldError struct {
	Field   string `json:"field"`
	In      string `json:"in"`
	Message string `json:"message"`
}

// Error is a failure a client may see: its Detail and Fields are sent as they are, so they must
// never hold internal text. Header carries response headers such as Retry-After or Allow.
type Error struct {
	Kind   Kind
	Detail string
	Fields []FieldError
	// FieldCount is how many fields failed when Fields lists only some of them.
	FieldCount int
	Header     http.Header
	// Limit names the plan limit a LimitExceeded error hit.
	Limit *Limit
	// cause is logged, never sent.
	cause error
}

func (e *Error) Error() string {
	msg := e.Kind.Title()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.cause }

// New returns an error of kind k whose detail is shown to the client.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a client-facing detail and a cause kept for the logs.
func Wrap(k Kind, cause error, detail string) *Error {
	return &Error{Kind: k, Detail: detail, cause: cause}
}

// Fields returns an Invalid error listing the offending fields.
func Fields(detail string, fields ...FieldError) *Error {
	return &Error{Kind: Invalid, Detail: detail, Fields: fields}
}

// Limit is the plan limit a create would pass: which one, what the tenant uses, what its plan
// allows, and the plan.
type Limit struct {
	Name    string `json:"limit"`
	Usage   int64  `json:"usage"`
	Allowed int64  `json:"allowed"`
	Plan    string `json:"plan"`
}

// LimitReached returns the 402 for a create past a plan limit.
func LimitReached(l Limit, format string, args ...any) *Error {
	return &Error{Kind: LimitExceeded, Detail: fmt.Sprintf(format, args...), Limit: &l}
}

// TooMany is the 429 of a rate limit, naming what was too many ("login attempts") and telling
// the client, in the detail and in Retry-After, to retry after wait (whole seconds, rounded up).
func TooMany(what string, wait time.Duration) *Error {
	secs := int(math.Ceil(wait.Seconds()))
	return &Error{Kind: RateLimited, Detail: fmt.Sprintf("Too many %s; retry in %d seconds.", what, secs),
		Header: http.Header{"Retry-After": {strconv.Itoa(secs)}}}
}

// TimedOut is the problem for work that ran out of time (the request's deadline, a statement
// or lock timeout): 503 with Retry-After, since the same request may well succeed when retried.
func TimedOut(cause error) *Error {
	return &Error{
		Kind: Unavailable, Detail: "The request ran out of time; retry it later.",
		Header: http.Header{"Retry-After": {retryAfterTimedOut}}, cause: cause,
	}
}

// retryAfterTimedOut is the Retry-After, in seconds, of a request that ran out of time.
const retryAfterTimedOut = "2"

// As finds the *Error in err's chain. Otherwise an error caused by a passed deadline
// (context.DeadlineExceeded anywhere in the chain, from the database or elsewhere) is TimedOut,
// and any other error is Internal.
func As(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return TimedOut(err)
	}
	return &Error{Kind: Internal, cause: err}
}

// Is reports whether err is a problem of kind k.
func Is(err error, k Kind) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Kind == k
}
