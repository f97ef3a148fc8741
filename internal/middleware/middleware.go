// Package middleware holds the outermost HTTP layers every request passes: request id, panic
// recovery, access logging and Prometheus metrics.
package middleware

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
)

// maxUserAgent is the longest user agent kept, in bytes (the sessions column allows 512).
const maxUserAgent = 512

// RequestIDHeader is echoed on every response.
const RequestIDHeader = "X-Request-Id"

// A client-supplied id is kept only when it is short and plain, so it cannot inject into logs.
var saneRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// statusWriter remembers the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines of the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack keeps WebSocket upgrades working through this wrapper.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

// Observe assigns the request id, recovers panics into a 500 problem, and records one log line and
// the metrics for every request. It is the outermost layer.
func Observe(logger *slog.Logger, m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get(RequestIDHeader)
			if !saneRequestID.MatchString(id) {
				id = uuid.NewString()
			}
			info := &reqinfo.Info{RequestID: id, ClientIP: clientIP(r), UserAgent: storableText(r.UserAgent(), maxUserAgent)}
			r = r.WithContext(reqinfo.With(r.Context(), info))
			w.Header().Set(RequestIDHeader, id)
			sw := &statusWriter{ResponseWriter: w}

			defer func() {
				if rec := recover(); rec != nil {
					if rec == http.ErrAbortHandler {
						panic(rec)
					}
					logger.ErrorContext(r.Context(), "panic", "request_id", id, "panic", fmt.Sprint(rec),
						"stack", string(debug.Stack()))
					if sw.status == 0 {
						problem.Write(sw, r, id, fmt.Errorf("panic: %v", rec))
					}
				}
				elapsed := time.Since(start)
				status := sw.status
				if status == 0 {
					status = http.StatusOK
				}
				route := info.Route()
				if route == "" {
					route = "unmatched"
				}
				m.observe(metricMethod(r.Method), route, status, elapsed)

				attrs := []slog.Attr{
					slog.String("request_id", id),
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("route", route),
					slog.Int("status", status),
					slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
					slog.Int64("bytes", sw.bytes),
				}
				if t := info.Tenant(); t != uuid.Nil {
					attrs = append(attrs, slog.String("tenant", t.String()))
				}
				level := slog.LevelInfo
				if status >= 500 {
					level = slog.LevelError
				}
				logger.LogAttrs(r.Context(), level, "request", attrs...)
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// Route wraps a handler that is not part of the OpenAPI router so its requests are labelled
// with a fixed route name in logs and metrics.
func Route(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqinfo.SetRoute(r.Context(), name)
		h.ServeHTTP(w, r)
	})
}

// Metrics are the HTTP request counters and latency histograms.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tasker_http_requests_total",
			Help: "HTTP requests by method, route template and status code.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tasker_http_request_duration_seconds",
			Help:    "HTTP request latency by method, route template and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route", "status"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *Metrics) observe(method, route string, status int, elapsed time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(method, route, code).Inc()
	m.duration.WithLabelValues(method, route, code).Observe(elapsed.Seconds())
}

// metricMethod bounds the method label: clients can send any token as a method.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// clientIP is the connection's peer. Forwarding headers are ignored: they are only trustworthy
// behind a proxy that sets them, which this server does not know about.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// storableText is a header value as a PostgreSQL text column can hold it: valid UTF-8 (each
// invalid byte becomes U+FFFD), without NUL, and at most max bytes, cut between characters.
func storableText(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s { // an invalid byte comes out as utf8.RuneError, one byte at a time
		if r == 0 {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CanonicalPaths answers a request whose path is not in canonical form (`//v1/users`,
// `/./v1/me`, `/v1/tasks/../users`) with a 404 problem. Without it the mux would redirect such
// paths with an HTML 307, and a cleaned path is not the resource the client named.
func CanonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if p == "" || clean != p {
			problem.Write(w, r, reqinfo.RequestID(r.Context()), problem.New(problem.NotFound, "No operation at %s %s: the path is not in canonical form.", r.Method, p))
			return
		}
		next.ServeHTTP(w, r)
	})
}
