package middleware

import "net/http"

// SecurityHeaders sets the headers every response carries: X-Content-Type-Options: nosniff, and
// Cache-Control: no-store, since API responses hold tenant data and tokens that no browser or
// shared cache should keep. Handlers of public content replace Cache-Control (see CacheControl).
// The headers are set before next runs, so whatever writes the response (a handler, a problem,
// an idempotent replay, a panic) sends them.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// CacheControl serves next with Cache-Control: value in place of SecurityHeaders' no-store.
func CacheControl(value string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", value)
		next.ServeHTTP(w, r)
	})
}
