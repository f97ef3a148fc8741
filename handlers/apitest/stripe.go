package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// stripeMock is one stripe-mock process (github.com/stripe/stripe-mock, a go tool of this
// module) shared by a test binary: it answers every Stripe API call with Stripe's published
// fixtures and refuses, with Stripe's 400, a request whose parameters are not in Stripe's
// OpenAPI spec, so stripe-go's requests are checked against Stripe's own shapes.
var stripeMock struct {
	once sync.Once
	url  string
	err  error
}

// StripeMockURL returns the base URL of the test binary's stripe-mock, building and starting
// it on first use. It dies with the test binary (Pdeathsig).
func StripeMockURL(t testing.TB) string {
	t.Helper()
	stripeMock.once.Do(func() { stripeMock.url, stripeMock.err = startStripeMock() })
	if stripeMock.err != nil {
		t.Fatalf("stripe-mock: %v", stripeMock.err)
	}
	return stripeMock.url
}

func startStripeMock() (string, error) {
	path, err := exec.Command("go", "tool", "-n", "stripe-mock").Output()
	if err != nil {
		return "", fmt.Errorf("build (go tool -n stripe-mock): %w", err)
	}
	// Both listeners on ports of the system's choosing: with one named, stripe-mock still opens
	// the other on its fixed default (12111 or 12112), which another stripe-mock may hold.
	cmd := exec.Command(strings.TrimSpace(string(path)), "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	// Pdeathsig fires when the OS thread that started the child exits, not the process: start
	// it from a thread that is kept for the life of the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	addr := make(chan string, 1)
	// Its output goes through a writer, not a pipe we read: Wait then never closes a pipe that
	// stripe-mock still writes its request log to.
	cmd.Stdout = &listenWriter{addr: addr}
	cmd.Stderr = cmd.Stdout
	started := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the binary
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		fmt.Fprintf(os.Stderr, "apitest: stripe-mock exited: %v\n", err)
		select {} // keep the locked thread
	}()
	if err := <-started; err != nil {
		return "", err
	}
	select {
	case a := <-addr:
		return "http://" + a, nil
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("not listening after 60s")
	}
}

// listenWriter takes stripe-mock's output and sends the address of its "Listening for HTTP at
// address: 127.0.0.1:41234" line; the rest is dropped.
type listenWriter struct {
	addr chan<- string
	line []byte
	done bool
}

func (w *listenWriter) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if a, ok := strings.CutPrefix(string(w.line[:i]), "Listening for HTTP at address: "); ok {
			w.addr <- strings.TrimSpace(a)
			w.done, w.line = true, nil
			break
		}
		w.line = w.line[i+1:]
	}
	if len(w.line) > 64<<10 {
		w.line = nil
	}
	return len(p), nil
}

// StripeRequest is one call the server made to Stripe's API.
type StripeRequest struct {
	Method, Path string
	Form         url.Values
	// Status is what stripe-mock answered (400 for a request outside Stripe's spec).
	Status int
}

// StripeAPI is a test's Stripe: a recording proxy in front of stripe-mock, which also serves
// GET /v1/events from Events, since stripe-mock lists only its fixtures.
type StripeAPI struct {
	URL string
	mu  sync.Mutex
	req []StripeRequest
	// customers are the customer ids made, by idempotency key.
	customers map[string]string
	// events are served newest first, as Stripe lists them.
	events []json.RawMessage
}

// NewStripeAPI starts a test's Stripe.
func NewStripeAPI(t testing.TB) *StripeAPI {
	t.Helper()
	target, err := url.Parse(StripeMockURL(t))
	if err != nil {
		t.Fatal(err)
	}
	s := &StripeAPI{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// stripe-mock answers every customer creation with the same fixture id; Stripe makes a new
	// customer each time, and the same one again for a repeated Idempotency-Key.
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodPost || resp.Request.URL.Path != "/v1/customers" || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var c map[string]any
		if err := json.Unmarshal(body, &c); err != nil {
			return err
		}
		c["id"] = s.customerID(resp.Request.Header.Get("Idempotency-Key"))
		body, _ = json.Marshal(c)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		if r.Method == http.MethodGet && r.URL.Path == "/v1/events" {
			s.serveEvents(w, form)
			s.record(StripeRequest{Method: r.Method, Path: r.URL.Path, Form: form, Status: http.StatusOK})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(rec, r)
		s.record(StripeRequest{Method: r.Method, Path: r.URL.Path, Form: form, Status: rec.status})
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *StripeAPI) record(r StripeRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.req = append(s.req, r)
}

func (s *StripeAPI) customerID(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.customers[key]; ok && key != "" {
		return id
	}
	if s.customers == nil {
		s.customers = map[string]string{}
	}
	id := fmt.Sprintf("cus_test%d%d", time.Now().UnixNano(), len(s.customers))
	s.customers[key] = id
	return id
}

// Requests are the calls made so far.
func (s *StripeAPI) Requests() []StripeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StripeRequest(nil), s.req...)
}

// AddEvent makes Stripe's event list include event (its JSON); the newest added is listed first.
func (s *StripeAPI) AddEvent(event []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append([]json.RawMessage{event}, s.events...)
}

// serveEvents lists the events with created >= created[gte] and type in types[], paged by
// starting_after and limit, in Stripe's list shape.
func (s *StripeAPI) serveEvents(w http.ResponseWriter, q url.Values) {
	s.mu.Lock()
	all := append([]json.RawMessage(nil), s.events...)
	s.mu.Unlock()
	types := map[string]bool{}
	for k, vs := range q {
		if strings.HasPrefix(k, "types[") {
			for _, v := range vs {
				types[v] = true
			}
		}
	}
	var gte int64
	fmt.Sscan(q.Get("created[gte]"), &gte)
	limit := 10
	fmt.Sscan(q.Get("limit"), &limit)
	var page []json.RawMessage
	started := q.Get("starting_after") == ""
	more := false
	for _, raw := range all {
		var e struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Created int64  `json:"created"`
		}
		_ = json.Unmarshal(raw, &e)
		if !started {
			started = e.ID == q.Get("starting_after")
			continue
		}
		if e.Created < gte || (len(types) > 0 && !types[e.Type]) {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, raw)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "url": "/v1/events", "has_more": more, "data": page})
}

// Client is a stripe-go client of this Stripe, as the server makes one (no network retries, so
// a refusal shows at once).
func (s *StripeAPI) Client() *stripe.Client {
	return stripe.NewClient("sk_test_tasker", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(s.URL), MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
}
