package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	tasker "github.com/tasker/tasker"
	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/contract"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/middleware"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/ratelimit"
	"github.com/tasker/tasker/internal/reqinfo"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/sso"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

// Config is what the HTTP stack needs from its caller.
type Config struct {
	DB       *tenancy.DB
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// Password are the argon2id parameters of every password hash: sign-up, user creation,
	// invitations, and the dummy hash that makes a login for an unknown email cost the same.
	Password password.Params
	// MaxBodyBytes caps JSON request bodies (413 beyond it).
	MaxBodyBytes int64
	// Issuer signs and verifies access tokens.
	Issuer *tokens.Issuer
	// Sessions sets session lifetimes and login limits.
	Sessions session.Config
	// CORSAllowedOrigins are the exact origins (scheme://host[:port]) whose browser clients may
	// call the API. Empty means none: no CORS headers are ever sent.
	CORSAllowedOrigins []string
	// RequestTimeout is the deadline of each request's context; work still running past it
	// (a query waiting on a lock, say) fails, and the request is answered 503 with Retry-After.
	// Zero means no deadline.
	RequestTimeout time.Duration
	// Revocations is the deny list access tokens are checked against, kept by the realtime relay.
	Revocations *auth.Revocations
	// Realtime serves GET /v1/realtime; nil answers it 503 (realtime disabled).
	Realtime http.Handler
	// Files configures uploads and downloads; without a Store they answer 503.
	Files FilesConfig
	// Billing configures plans, their limits and Stripe; its Catalog is required.
	Billing BillingConfig
	// SSO configures per-tenant OpenID Connect; without a Box its endpoints answer 503.
	SSO SSOConfig
	// Webhooks configures outbound webhooks; without a Box creating endpoints answers 503.
	Webhooks WebhooksConfig
}

// NewHTTPHandler builds the full stack: request id, recovery, logging and metrics around a mux
// serving the ops endpoints, the docs, and the API behind the OpenAPI request validator.
func NewHTTPHandler(ctx context.Context, cfg Config) (http.Handler, error) {
	spec, err := contract.Load(ctx)
	if err != nil {
		return nil, err
	}
	sessions, err := session.New(cfg.DB, cfg.Issuer, cfg.Password, cfg.Sessions)
	if err != nil {
		return nil, err
	}
	srv := &Server{db: cfg.DB, logger: cfg.Logger, password: cfg.Password, issuer: cfg.Issuer, sessions: sessions,
		files: cfg.Files, uploads: files.NewUploads(cfg.Files.MaxUploadsPerTenant), billing: cfg.Billing, sso: cfg.SSO.withDefaults()}
	srv.ssoProviders = sso.NewProviders(srv.sso.Policy, 0)
	srv.webhooks = cfg.Webhooks.withDefaults()
	srv.manualSends = ratelimit.New(float64(srv.webhooks.ManualPerMinute), srv.webhooks.ManualPerMinute)
	srv.ssoStarts = ratelimit.New(float64(srv.sso.StartsPerMinute), srv.sso.StartsPerMinute)
	if cfg.Billing.Catalog == nil {
		return nil, errors.New("handlers: Billing.Catalog is required")
	}
	authn := auth.NewAuthenticator(cfg.Issuer, cfg.DB, cfg.Revocations)

	strict := api.NewStrictHandlerWithOptions(srv, []api.StrictMiddlewareFunc{publicCaching, withRawRequest}, api.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			if contract.BodyStreamed(r.Context()) {
				srv.writeError(w, r, closing(problem.Wrap(problem.Invalid, err, "The body is not valid multipart/form-data.")))
				return
			}
			srv.writeError(w, r, problem.Wrap(problem.Invalid, err, "The body is not valid JSON for this operation."))
		},
		ResponseErrorHandlerFunc: srv.writeError,
	})
	apiMux := http.NewServeMux()
	// The spec router and the mux can disagree at the edges (a trailing slash): whatever the
	// mux does not know is still a problem document.
	apiMux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, reqinfo.RequestID(r.Context()), problem.New(problem.NotFound, "No operation at %s %s.", r.Method, r.URL.Path))
	}))
	api.HandlerWithOptions(strict, api.StdHTTPServerOptions{
		BaseRouter: apiMux,
		ErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			srv.writeError(w, r, paramProblem(spec, r, err))
		},
	})

	mux := http.NewServeMux()
	mux.Handle("/", spec.RequestValidator(contract.ValidatorOptions{
		MaxBodyBytes: cfg.MaxBodyBytes,
		Authenticate: authn.Authenticate,
	})(srv.idempotency(apiMux)))
	// Outside the validator and the strict server: the socket hijacks the connection. It checks
	// the credential and the Origin itself, before upgrading.
	var rt http.Handler = cfg.Realtime
	if rt == nil {
		rt = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			problem.Write(w, r, reqinfo.RequestID(r.Context()), problem.New(problem.Unavailable, "Realtime is disabled on this server."))
		})
	}
	mux.Handle("GET "+RealtimePath, middleware.Route("GET "+RealtimePath, rt))
	// Outside the validator and the strict server too: the signature is checked over the body
	// as received, before anything reads it as JSON.
	mux.Handle("POST "+StripeWebhookPath, middleware.Route("POST "+StripeWebhookPath,
		NewStripeEvents(cfg.DB, cfg.Billing, cfg.Logger, cfg.Registry)))
	mux.Handle("GET /openapi.yaml", middleware.Route("GET /openapi.yaml", middleware.CacheControl("no-cache", yamlFile(tasker.OpenAPISpec))))
	mux.Handle("GET /asyncapi.yaml", middleware.Route("GET /asyncapi.yaml", middleware.CacheControl("no-cache", yamlFile(tasker.AsyncAPISpec))))
	mux.Handle("GET /metrics", middleware.Route("GET /metrics",
		promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	docs, err := docsHandler()
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /docs/", middleware.Route("GET /docs", docs))
	mux.Handle("GET /docs", http.RedirectHandler("/docs/", http.StatusMovedPermanently))

	var h http.Handler = middleware.CanonicalPaths(mux)
	if len(cfg.CORSAllowedOrigins) > 0 {
		// Outside the validator, so preflights (which carry no credentials) are answered here.
		withCORS, err := middleware.CORS(cfg.CORSAllowedOrigins)
		if err != nil {
			return nil, err
		}
		h = withCORS(h)
	}
	h = middleware.SecurityHeaders(h)
	if cfg.RequestTimeout > 0 || cfg.Files.TransferTimeout > 0 {
		h = withDeadline(cfg.RequestTimeout, cfg.Files.TransferTimeout, h)
	}
	return middleware.Observe(cfg.Logger, middleware.NewMetrics(cfg.Registry))(h), nil
}

// StripeWebhookPath is where Stripe delivers events.
const StripeWebhookPath = "/webhooks/stripe"

// RealtimePath is the WebSocket endpoint.
const RealtimePath = "/v1/realtime"

// withDeadline gives each request's context a deadline d from now. Unlike http.TimeoutHandler
// it neither buffers responses nor answers for the handler: the work that runs out of time
// returns context.DeadlineExceeded, which writeError answers as 503 (problem.As).
//
// File transfers get transfer instead. Their connection keeps the server's read and write
// timeouts until the handler, once the caller is authenticated and allowed, lifts them
// (transferDeadlines): an anonymous request to a transfer route is held no longer than any other.
func withDeadline(d, transfer time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == RealtimePath {
			next.ServeHTTP(w, r) // a socket lives as long as its client keeps it
			return
		}
		ctx := r.Context()
		if transfer > 0 && isTransfer(r) {
			// The transfer's own deadline waits in the context until the handler takes it up.
			outer, cancel := context.WithTimeout(ctx, transfer)
			defer cancel()
			ctx = context.WithValue(outer, transferKey{}, outer)
		}
		if d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type transferKey struct{}

// transferContext is ctx with the transfer's deadline in place of the request's, once the caller
// is authenticated and allowed; ctx itself when the request is no transfer.
func transferContext(ctx context.Context) context.Context {
	outer, ok := ctx.Value(transferKey{}).(context.Context)
	if !ok {
		return ctx
	}
	return valuesOf{Context: outer, values: ctx}
}

// valuesOf has the deadline and cancellation of its Context and the values of values.
type valuesOf struct {
	context.Context
	values context.Context
}

func (v valuesOf) Value(key any) any { return v.values.Value(key) }

// isTransfer reports whether r uploads or downloads file content.
func isTransfer(r *http.Request) bool {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/files":
		return true
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/files/"):
		return strings.HasSuffix(r.URL.Path, "/content") || strings.HasSuffix(r.URL.Path, "/download")
	}
	return false
}

// publicCaching lets caches keep the public keys (getJWKS) for five minutes; every other
// operation stays no-store. A verifier that meets a kid its copy lacks refetches the set.
// The generated code passes the operation's Go name.
func publicCaching(f api.StrictHandlerFunc, operationID string) api.StrictHandlerFunc {
	if operationID != "GetJWKS" {
		return f
	}
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, req any) (any, error) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		return f(ctx, w, r, req)
	}
}

func yamlFile(data []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = w.Write(data)
	})
}

// writeError is the one place handler errors become responses: known problems are sent as they
// are (4xx logged at info), anything else is logged with its cause and answered with a generic 500.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	id := reqinfo.RequestID(ctx)
	pe := problem.As(err)
	if pe.Kind.Status() >= 500 {
		s.logger.ErrorContext(ctx, "request failed", "request_id", id, "error", err.Error())
	} else {
		s.logger.InfoContext(ctx, "request rejected", "request_id", id, "status", pe.Kind.Status(), "error", err.Error())
	}
	problem.Write(w, r, id, err)
}

// paramProblem names the parameter the generated binding code could not read. The validator
// has checked every parameter against the spec before, so this is rare: a value the schema
// admits that Go cannot hold.
func paramProblem(spec *contract.Spec, r *http.Request, err error) error {
	name := ""
	var (
		format   *api.InvalidParamFormatError
		unmarsh  *api.UnmarshalingParamError
		required *api.RequiredParamError
		header   *api.RequiredHeaderError
		tooMany  *api.TooManyValuesForParamError
	)
	switch {
	case errors.As(err, &format):
		name = format.ParamName
	case errors.As(err, &unmarsh):
		name = unmarsh.ParamName
	case errors.As(err, &required):
		name = required.ParamName
	case errors.As(err, &header):
		name = header.ParamName
	case errors.As(err, &tooMany):
		name = tooMany.ParamName
	default:
		return problem.Wrap(problem.Invalid, err, "A parameter is malformed.")
	}
	pe := problem.Fields("Invalid value for "+name+".", problem.FieldError{Field: name, In: spec.ParamIn(r, name), Message: "is malformed"})
	return fmt.Errorf("%w: %w", pe, err)
}
