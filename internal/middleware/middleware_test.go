package middleware

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPanicBecomesProblem500WithoutInternals(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	m := NewMetrics(prometheus.NewRegistry())
	h := Observe(logger, m)(Route("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret connection string postgres://u:p@db")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))

	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("the panic's text reached the client: %s", rec.Body)
	}
	var p struct {
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != 500 || p.RequestID != rec.Header().Get(RequestIDHeader) {
		t.Fatalf("problem %s (%v)", rec.Body, err)
	}
	if !strings.Contains(logs.String(), `"msg":"panic"`) || !strings.Contains(logs.String(), "secret connection string") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("GET", "GET /boom", "500")); got != 1 {
		t.Errorf("500s counted = %v, want 1", got)
	}
}

func TestMetricLabelsStayBounded(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	h := Observe(slog.New(slog.DiscardHandler), m)(http.NotFoundHandler())
	for _, method := range []string{"GET", "BREW", "X-RANDOM-1"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/random/"+method, nil))
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("OTHER", "unmatched", "404")); got != 2 {
		t.Errorf("unknown methods counted as OTHER: %v, want 2", got)
	}
	if n := testutil.CollectAndCount(m.requests); n != 2 {
		t.Errorf("%d series; want 2 (paths must not become labels)", n)
	}
}
