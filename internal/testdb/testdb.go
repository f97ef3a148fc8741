// Package testdb gives each test package a fresh PostgreSQL database of its own, cloned from a
// template that is migrated once per schema version, and drops it when the package's tests end.
// Tests connect as the application role, so row-level security is really in force.
//
// The server comes from TEST_DATABASE_URL, else DATABASE_URL, else the project's private cluster
// (scripts/devdb.sh starts it), so `go test ./...` works with or without `make test`.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/migrate"
)

// DB is one test package's database.
type DB struct {
	Name string
	// AdminURL logs in as the server's administrative user (a superuser): for setup only.
	AdminURL string
	// AppURL logs in as tasker_app itself, so even SET ROLE cannot escape it.
	AppURL string
}

var current *DB

// Main creates the package's database, runs the tests and drops the database. Use it as
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
func Main(m *testing.M) {
	d, cleanup, err := create()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		os.Exit(1)
	}
	current = d
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// Get returns the package's database; the package must call Main from TestMain.
func Get(t testing.TB) *DB {
	t.Helper()
	if current == nil {
		t.Fatal("testdb: call testdb.Main from TestMain")
	}
	return current
}

// AppPool opens a pool as the application role, through the same code the server uses.
func (d *DB) AppPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(context.Background(), d.AppURL, database.Options{MaxConns: 8})
	if err != nil {
		t.Fatalf("open app pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// AdminPool opens a superuser pool on the package's database, for assertions about the catalog
// or about what the application role cannot do. Never use it to arrange tenant data.
func (d *DB) AdminPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), d.AdminURL)
	if err != nil {
		t.Fatalf("open admin pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// lockKey serialises template builds and clones across concurrently running test packages.
const lockKey = 0x7a5c3e

func create() (*DB, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	server, err := serverURL()
	if err != nil {
		return nil, nil, err
	}
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", redact(server), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return nil, nil, err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockKey) //nolint:errcheck

	tpl := "tasker_tpl_" + migrate.Fingerprint()[:16]
	if err := ensureTemplate(ctx, conn, server, tpl); err != nil {
		return nil, nil, err
	}
	name := "tasker_test_" + packageName() + "_" + randomHex(4)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tpl)); err != nil {
		return nil, nil, fmt.Errorf("clone template: %w", err)
	}
	d := &DB{Name: name, AdminURL: withDatabase(server, name, ""), AppURL: withDatabase(server, name, database.AppRole)}
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testdb: drop:", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			fmt.Fprintln(os.Stderr, "testdb: drop:", err)
		}
	}
	return d, cleanup, nil
}

// ensureTemplate builds the migrated template under a temporary name and renames it when done,
// so a half-built template is never cloned. Templates of other schema versions are dropped.
func ensureTemplate(ctx context.Context, conn *pgx.Conn, server, tpl string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", tpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	tmp := tpl + "_building"
	for _, stmt := range []string{
		fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", tmp),
		fmt.Sprintf("CREATE DATABASE %s", tmp),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("build template: %w", err)
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := migrate.Up(ctx, withDatabase(server, tmp, ""), quiet); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	for _, stmt := range []string{
		fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", tmp, tpl),
		fmt.Sprintf("ALTER DATABASE %s IS_TEMPLATE true", tpl),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("finish template: %w", err)
		}
	}
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'tasker\\_tpl\\_%' AND datname <> $1", tpl)
	if err != nil {
		return err
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, old := range stale {
		_, _ = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s IS_TEMPLATE false", old))
		_, _ = conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", old))
	}
	return nil
}

func serverURL() (string, error) {
	for _, name := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(name); v != "" {
			return v, nil
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "devdb.sh"), "url")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("start the local PostgreSQL (scripts/devdb.sh url): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// withDatabase points a postgres:// URL at another database and, when user is set, another login.
func withDatabase(raw, dbname, user string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(fmt.Sprintf("testdb: the server URL must be a postgres:// URL: %v", err))
	}
	u.Path = "/" + dbname
	if user != "" {
		u.User = url.User(user)
	}
	return u.String()
}

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

func packageName() string {
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	name = unsafeName.ReplaceAllString(strings.ToLower(name), "_")
	if len(name) > 20 {
		name = name[:20]
	}
	return name
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(database url)"
	}
	return u.Redacted()
}
