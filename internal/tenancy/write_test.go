package tenancy_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/testdb"
)

func countRows(t *testing.T, d *tenancy.DB, tenant uuid.UUID, table string) int {
	t.Helper()
	var n int
	err := d.Tx(context.Background(), tenancy.Scope{Tenant: tenant}, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriteCommitsTheChangeItsAuditEntryAndItsEventTogether(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("seam"))
	ctx := context.Background()
	scope := tenancy.Scope{Tenant: a.tenant, User: a.user}
	change := func(tx *tenancy.Tx, key string) error {
		team, err := tx.Q.CreateTeam(ctx, db.CreateTeamParams{TenantID: a.tenant, ID: uuid.Must(uuid.NewV7()), Name: "T", Key: key})
		if err != nil {
			return err
		}
		tx.Changed("team.created", tenancy.Entry{Action: "team.create", ResourceType: "team", ResourceID: team.ID, Data: map[string]any{"key": key}},
			uuid.Nil, map[string]string{"id": team.ID.String(), "key": key})
		return nil
	}
	failed := errors.New("fails after queueing")
	err := d.Write(ctx, scope, func(tx *tenancy.Tx) error {
		if err := change(tx, "RBK"); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("a failing write: %v", err)
	}
	if n := countRows(t, d, a.tenant, "teams") + countRows(t, d, a.tenant, "audit_events") + countRows(t, d, a.tenant, "events"); n != 0 {
		t.Fatalf("a rolled-back write left %d rows (team, audit, event)", n)
	}

	if err := d.Write(ctx, scope, func(tx *tenancy.Tx) error { return change(tx, "CMT") }); err != nil {
		t.Fatal(err)
	}
	var actor *uuid.UUID
	var action, payload string
	err = d.Tx(ctx, tenancy.Scope{Tenant: a.tenant}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT actor_user_id, action FROM audit_events").Scan(&actor, &action); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT type || ' ' || (payload->>'key') FROM events").Scan(&payload)
	})
	if err != nil {
		t.Fatal(err)
	}
	if actor == nil || *actor != a.user || action != "team.create" || payload != "team.created CMT" {
		t.Errorf("committed write: actor %v, action %q, event %q", actor, action, payload)
	}
}

// TestOnlyTheWriteSeamWritesAuditEntriesAndEvents is the vet-style check of the one write seam:
// outside internal/tenancy no code may call the query that inserts audit entries and events,
// so every write records its side effects through tenancy.Tx, in its own transaction.
func TestOnlyTheWriteSeamWritesAuditEntriesAndEvents(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	seen := 0
	sqlInserts := map[string]int{}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if e.IsDir() {
			if path != root && (strings.HasPrefix(e.Name(), ".") || rel == "gen" || e.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(filepath.ToSlash(rel), "queries/") && strings.HasSuffix(path, ".sql") {
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			// A query of its own would reach gen/ (not walked) and be callable from anywhere.
			for _, table := range []string{"INSERT INTO audit_events", "INSERT INTO events"} {
				sqlInserts[table] += strings.Count(string(src), table)
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || filepath.ToSlash(rel) == "internal/tenancy/write_test.go" {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		seen++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch sel.Sel.Name {
			case "InsertChanges", "InsertChangesParams", "InsertAuditEvent":
				if filepath.ToSlash(rel) != "internal/tenancy/write.go" {
					t.Errorf("%s: %s is for the write seam only (tenancy.Tx.Record and Emit)", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
		for _, table := range []string{"INSERT INTO audit_events", "INSERT INTO events"} {
			if strings.Contains(string(src), table) {
				t.Errorf("%s writes %q outside the write seam", rel, table)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range sqlInserts {
		if n != 1 {
			t.Errorf("queries/ has %d statements with %q; only InsertChanges may write there", n, table)
		}
	}
	if len(sqlInserts) != 2 {
		t.Errorf("walked no queries/: %v", sqlInserts)
	}
	if seen < 50 {
		t.Fatalf("walked only %d Go files from %s; the check would prove nothing", seen, root)
	}
}

// A write opens its transaction with its first statement (one round trip for BEGIN, the scope
// and the statement); whether it commits or fails, the pooled connection comes back idle, with
// no tenant set.
func TestWritesLeaveTheConnectionIdleAndUnscoped(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(testdb.Get(t).AppURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	d := tenancy.New(pool)
	a := seedTenant(t, d, uniqueSlug("pipe"))
	ctx := context.Background()
	scope := tenancy.Scope{Tenant: a.tenant, User: a.user}
	var backend int32
	idle := func(what string) {
		t.Helper()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		status := conn.Conn().PgConn().TxStatus()
		var tenant string
		var pid int32
		err = conn.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), ''), pg_backend_pid()").Scan(&tenant, &pid)
		if err != nil || tenant != "" || status != 'I' {
			t.Errorf("after %s: tenant %q, transaction status %q (want I, idle), err %v", what, tenant, status, err)
		}
		// The same connection every time: the pool destroys one left inside a transaction,
		// which would hide a rollback that did not happen.
		if backend == 0 {
			backend = pid
		} else if pid != backend {
			t.Errorf("after %s: a new connection (backend %d, was %d)", what, pid, backend)
		}
	}
	if err := d.Write(ctx, scope, func(tx *tenancy.Tx) error {
		_, err := tx.Q.CreateTeam(ctx, db.CreateTeamParams{TenantID: a.tenant, ID: uuid.Must(uuid.NewV7()), Name: "T", Key: "PIP"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	idle("a committed write")
	failed := errors.New("after a statement")
	err = d.Write(ctx, scope, func(tx *tenancy.Tx) error {
		if _, err := tx.Q.CreateTeam(ctx, db.CreateTeamParams{TenantID: a.tenant, ID: uuid.Must(uuid.NewV7()), Name: "U", Key: "PIQ"}); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("failing write: %v", err)
	}
	idle("a failed write")
	err = d.Write(ctx, scope, func(tx *tenancy.Tx) error {
		_, err := tx.Q.CreateTeam(ctx, db.CreateTeamParams{TenantID: a.tenant, ID: uuid.Must(uuid.NewV7()), Name: "Dup", Key: "PIP"})
		return err
	})
	if !tenancy.IsDuplicate(err) {
		t.Fatalf("a duplicate key: %v", err)
	}
	idle("a write whose statement failed")
	if n := countRows(t, d, a.tenant, "teams"); n != 1 {
		t.Errorf("teams: %d, want the one committed", n)
	}
}
