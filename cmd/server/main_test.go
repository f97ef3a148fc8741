package main

import (
	"bufio"
	"context"
	"fmt"
	"github.com/tasker/tasker/internal/tokens"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/testdb"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "serve" {
		main()
		return
	}
	testdb.Main(m)
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://u:pw-7f3a@h/db?password=pw-other"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":8080" || c.ShutdownTimeout != 20*time.Second || c.MaxBodyBytes != 1<<20 || c.argon2() != password.DefaultParams {
		t.Errorf("defaults: %+v", c)
	}
	if s := c.LogValue().String(); strings.Contains(s, "pw-7f3a") || strings.Contains(s, "pw-other") || !strings.Contains(s, "dbname=db") {
		t.Errorf("logged config shows the password or hides the database: %s", s)
	}
	dsn := config{DatabaseURL: "host=db user=app password=s3cret dbname=tasker"}
	if s := dsn.LogValue().String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "dbname=tasker") {
		t.Errorf("logged key=value config: %s", s)
	}
	_, err = loadConfig(map[string]string{"DB_MAX_CONNS": "many", "SHUTDOWN_TIMEOUT": "soon", "LOG_LEVEL": "loud"})
	for _, want := range []string{"DATABASE_URL", "DB_MAX_CONNS", "SHUTDOWN_TIMEOUT", "LOG_LEVEL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad config error %v does not name %s", err, want)
		}
	}
}

func TestCORSOriginsAreExactOrigins(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y"})
	if err != nil || c.CORSAllowedOrigins != nil {
		t.Fatalf("default CORS origins %v (%v); want none", c.CORSAllowedOrigins, err)
	}
	c, err = loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y",
		"CORS_ALLOWED_ORIGINS": " https://app.example.test, http://localhost:5173 ,"})
	if err != nil || !slices.Equal(c.CORSAllowedOrigins, []string{"https://app.example.test", "http://localhost:5173"}) {
		t.Fatalf("CORS origins %v (%v)", c.CORSAllowedOrigins, err)
	}
	for _, bad := range []string{"*", "https://*.example.test", "null", "https://app.example.test/", "app.example.test",
		"ftp://app.example.test", "https://app.example.test/path", "https://u@app.example.test"} {
		_, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y", "CORS_ALLOWED_ORIGINS": bad})
		if err == nil || !strings.Contains(err.Error(), "CORS_ALLOWED_ORIGINS") {
			t.Errorf("CORS_ALLOWED_ORIGINS=%q: error %v; want it rejected", bad, err)
		}
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	// The package database is already migrated (it is a clone of the template): a second run
	// must apply nothing and succeed.
	if err := run(context.Background(), []string{"migrate"}, map[string]string{"DATABASE_URL": testdb.Get(t).AdminURL}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "migration applied") || !strings.Contains(out.String(), "schema up to date") {
		t.Errorf("second migrate logged: %s", out.String())
	}
}

// TestShutdownFinishesInFlightRequests holds a request open mid-body, signals shutdown, then
// completes the request: it must succeed, and serve must return cleanly afterwards, having
// stopped the HTTP server before closing the pool.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "DATABASE_URL": testdb.Get(t).AdminURL, "DB_MAX_CONNS": "2",
		"SHUTDOWN_TIMEOUT": "10s", "ARGON2_MEMORY_KIB": "1024", "ARGON2_TIME": "1",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logs := &lockedBuffer{}
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	slug := fmt.Sprintf("shutdown-%d", time.Now().UnixNano()%1e9)
	body := `{"tenant_name":"S","tenant_slug":"` + slug + `","email":"s@s.test","password":"correct horse","name":"S"}`
	half := len(body) / 2
	fmt.Fprintf(conn, "POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:half])
	time.Sleep(200 * time.Millisecond) // let the server read the headers: the request is now in flight

	cancel()
	time.Sleep(200 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the server still accepts connections after shutdown began")
	}
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request was cut off: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("in-flight request got %d, want 201", resp.StatusCode)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after a clean shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
	steps := []string{`"msg":"stopping workers"`, `"msg":"worker stopped","worker":"http"`, `"msg":"database pool closed"`, `"msg":"stopped"`}
	var order []string
	for _, line := range strings.Split(logs.String(), "\n") {
		for _, step := range steps {
			if strings.Contains(line, step) {
				order = append(order, step)
			}
		}
	}
	if !slices.Equal(order, steps) {
		t.Errorf("shutdown logged %q, want %q in that order; logs:\n%s", order, steps, logs.String())
	}
}

// lockedBuffer is a log sink the server and the test may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSigningKeysComeFromConfigurationFirstSigns(t *testing.T) {
	t.Parallel()
	a, b := tokens.GenerateKey(), tokens.GenerateKey()
	file := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(file, append(tokens.EncodePEM(a), tokens.EncodePEM(b)...), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y", "JWT_SIGNING_KEYS_FILE": file})
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	keys, err := signingKeys(cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tokens.NewKeySet(a, b)
	if got := keys.JWKS(); len(got) != 2 || got[0] != want.JWKS()[0] || got[1] != want.JWKS()[1] {
		t.Fatalf("key set from the file: %+v", got)
	}
	if logs.Len() != 0 {
		t.Errorf("configured keys logged a warning: %s", logs.String())
	}

	cfg.SigningKeysFile = ""
	dev, err := signingKeys(cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil || len(dev.JWKS()) != 1 || !strings.Contains(logs.String(), "no JWT_SIGNING_KEYS_FILE") {
		t.Fatalf("without keys: %v, %d keys, log %q; want one generated key and a warning", err, len(dev.JWKS()), logs.String())
	}
	if _, err := loadConfig(map[string]string{"DATABASE_URL": "postgres://x/y", "JWT_SIGNING_KEYS_FILE": file + ".missing"}); err == nil {
		t.Error("a missing key file was accepted")
	}
}

// TestBillingReconcileCommand runs `server billing-reconcile` against a Stripe stand-in whose
// event list holds one event for a customer nobody has: it is listed, recorded once, and a
// second run finds it recorded.
func TestBillingReconcileCommand(t *testing.T) {
	t.Parallel()
	stripeAPI := apitest.NewStripeAPI(t)
	id := "evt_cmd_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
	stripeAPI.AddEvent([]byte(`{"id":"` + id + `","object":"event","type":"invoice.paid","api_version":"2025-08-27.basil",
		"created":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"livemode":false,
		"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_nobody_cmd"}}}`))
	environ := map[string]string{"DATABASE_URL": testdb.Get(t).AppURL, "STRIPE_SECRET_KEY": "sk_test_cmd", "STRIPE_API_URL": stripeAPI.URL}
	for i, want := range []string{`"unmatched":1`, `"duplicate":1`} {
		var out strings.Builder
		if err := run(context.Background(), []string{"billing-reconcile", "-since", time.Now().Add(-time.Hour).Format(time.RFC3339)}, environ, &out); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out.String())
		}
		if !strings.Contains(out.String(), "billing reconciled") || !strings.Contains(out.String(), want) || !strings.Contains(out.String(), `"listed":1`) {
			t.Errorf("run %d logged %s; want listed 1 and %s", i, out.String(), want)
		}
	}
	delete(environ, "STRIPE_SECRET_KEY")
	if err := run(context.Background(), []string{"billing-reconcile"}, environ, io.Discard); err == nil || !strings.Contains(err.Error(), "STRIPE_SECRET_KEY") {
		t.Errorf("without a key: %v", err)
	}
}
