package middleware

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"

	"github.com/tasker/tasker/internal/reqinfo"
)

// CORS headers the API uses: what a browser client may send, and what it may read.
var (
	corsMethods        = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	corsRequestHeaders = []string{"Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-Id"}
	corsExposedHeaders = []string{"ETag", "X-Request-Id", "Idempotent-Replayed", "Retry-After", "Location"}
)

// corsMaxAge is how long, in seconds, a browser may reuse a preflight answer.
const corsMaxAge = 600

// ParseOrigins splits a comma-separated list of origins (CORS_ALLOWED_ORIGINS) and checks each
// with CheckOrigin. An empty list is no origins.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if err := CheckOrigin(o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// CheckOrigin accepts an exact origin, scheme://host[:port] with scheme http or https and
// nothing after the host: no wildcards, no "null", no path, not even a trailing slash.
func CheckOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Contains(o, "*") ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return fmt.Errorf("origin %q: want scheme://host[:port] (http or https, no path, no wildcard)", o)
	}
	return nil
}

// CORS answers preflight requests from the given origins (exact, compared case-insensitively)
// itself, before authentication, and lets the browser read the API's responses and headers
// from them. Requests from other origins get no CORS headers. Credentials (cookies) are not
// allowed: the API authenticates with bearer tokens. No origins at all is an error: callers
// install nothing instead, so an empty list can never mean "any origin".
func CORS(origins []string) (func(http.Handler) http.Handler, error) {
	if len(origins) == 0 {
		return nil, fmt.Errorf("cors: no origins")
	}
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		if err := CheckOrigin(o); err != nil {
			return nil, fmt.Errorf("cors: %w", err)
		}
		allowed[strings.ToLower(o)] = true
	}
	c := cors.New(cors.Options{
		// A function rather than AllowedOrigins: rs/cors reads "*" in that list as any origin
		// and an empty list as "*".
		AllowOriginFunc: func(origin string) bool { return allowed[strings.ToLower(origin)] },
		AllowedMethods:  corsMethods,
		AllowedHeaders:  corsRequestHeaders,
		ExposedHeaders:  corsExposedHeaders,
		MaxAge:          corsMaxAge,
	})
	return func(next http.Handler) http.Handler {
		h := c.Handler(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				reqinfo.SetRoute(r.Context(), "CORS preflight")
			}
			h.ServeHTTP(w, r)
		})
	}, nil
}
