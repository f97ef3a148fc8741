package middleware

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

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

func TestStorableTextIsValidUTF8CutBetweenCharacters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
		max            int
	}{
		{"short and valid is kept", "Mozilla/5.0 (X11) é", "Mozilla/5.0 (X11) é", 512},
		{"long ASCII is cut at max", strings.Repeat("a", 600), strings.Repeat("a", 512), 512},
		{"a cut inside a 2-byte character drops it", strings.Repeat("a", 511) + "é", strings.Repeat("a", 511), 512},
		{"a cut inside a 3-byte character drops it", strings.Repeat("a", 510) + "€b", strings.Repeat("a", 510), 512},
		{"a cut inside a 4-byte character drops it", "ab😀", "ab", 5},
		{"a character ending at max is kept", "ab😀c", "ab😀", 6},
		{"invalid bytes become U+FFFD", "a\xff\xfeb", "a\uFFFD\uFFFDb", 512},
		{"a truncated sequence becomes U+FFFD", "a\xe2\x82", "a\uFFFD\uFFFD", 512},
		{"a replacement that does not fit is dropped", "abc\xff", "abc", 5},
		{"NUL is dropped", "a\x00b", "ab", 512},
		{"empty", "", "", 512},
	}
	for _, c := range cases {
		got := storableText(c.in, c.max)
		if got != c.want || !utf8.ValidString(got) || len(got) > c.max {
			t.Errorf("%s: storableText(%q, %d) = %q, want %q", c.name, c.in, c.max, got, c.want)
		}
	}
}

func FuzzStorableText(f *testing.F) {
	f.Add("Mozilla/5.0 €", 12)
	f.Add("\xff\xfe\x00", 2)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1024 {
			return
		}
		got := storableText(s, max)
		if !utf8.ValidString(got) || len(got) > max || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("storableText(%q, %d) = %q: not storable", s, max, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(strings.ReplaceAll(s, "\x00", ""), got) {
			t.Fatalf("storableText(%q, %d) = %q: not a prefix of the valid input", s, max, got)
		}
	})
}
