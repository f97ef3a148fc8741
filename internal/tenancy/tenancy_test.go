package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type fixture struct {
	tenant uuid.UUID
	user   uuid.UUID
}

// seedTenant creates a tenant with one user through the tenancy helper itself.
func seedTenant(t *testing.T, d *tenancy.DB, slug string) fixture {
	t.Helper()
	f := fixture{tenant: uuid.Must(uuid.NewV7()), user: uuid.Must(uuid.NewV7())}
	err := d.Write(context.Background(), tenancy.Scope{Tenant: f.tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		if _, err := q.CreateTenant(context.Background(), db.CreateTenantParams{ID: f.tenant, Slug: slug, Name: slug}); err != nil {
			return err
		}
		_, err := q.CreateUser(context.Background(), db.CreateUserParams{
			TenantID: f.tenant, ID: f.user, Email: "owner@" + slug + ".test", Name: "Owner", Role: "owner", Status: "active",
		})
		return err
	})
	if err != nil {
		t.Fatalf("seed %s: %v", slug, err)
	}
	return f
}

func uniqueSlug(prefix string) string { return fmt.Sprintf("%s-%s", prefix, uuid.NewString()[:8]) }

func count(t *testing.T, tx pgx.Tx, table string) int {
	t.Helper()
	var n int
	// Deliberately no tenant filter: RLS alone must hide the other tenant's rows.
	if err := tx.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestTenantTransactionSeesOnlyItsOwnRows(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("a"))
	b := seedTenant(t, d, uniqueSlug("b"))

	err := d.Tx(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx pgx.Tx) error {
		if n := count(t, tx, "tenants"); n != 1 {
			t.Errorf("tenant A sees %d tenants, want only its own", n)
		}
		var ids []uuid.UUID
		rows, err := tx.Query(context.Background(), "SELECT tenant_id FROM users")
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id != a.tenant {
				t.Errorf("tenant A's unfiltered query returned a row of tenant %s", id)
			}
		}
		if len(ids) != 1 {
			t.Errorf("tenant A sees %d users, want 1", len(ids))
		}
		_, err = db.New(tx).GetUser(context.Background(), b.user)
		if !errors.Is(err, pgx.ErrNoRows) {
			t.Errorf("reading B's user by id from A: got %v, want no rows", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadOfAnotherTenantsRowIsNotFound(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("a"))
	b := seedTenant(t, d, uniqueSlug("b"))
	err := d.Write(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		_, err := q.GetUser(context.Background(), b.user)
		return err
	})
	if !problem.Is(err, problem.NotFound) {
		t.Fatalf("got %v, want a NotFound problem", err)
	}
}

func TestInsertForAnotherTenantIsRejected(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("a"))
	b := seedTenant(t, d, uniqueSlug("b"))
	intruder := uuid.Must(uuid.NewV7())
	err := d.Write(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		_, err := q.CreateUser(context.Background(), db.CreateUserParams{
			TenantID: b.tenant, ID: intruder, Email: "intruder@x.test", Name: "X", Role: "owner", Status: "active",
		})
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("insert into tenant B from A: got %v, want an RLS violation (42501)", err)
	}
	// And nothing of it reached B.
	err = d.Write(context.Background(), tenancy.Scope{Tenant: b.tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		_, err := q.GetUser(context.Background(), intruder)
		return err
	})
	if !problem.Is(err, problem.NotFound) {
		t.Fatalf("B sees the rejected row: %v", err)
	}
}

func TestUpdateCannotMoveARowToAnotherTenant(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("a"))
	b := seedTenant(t, d, uniqueSlug("b"))
	err := d.Tx(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "UPDATE users SET tenant_id = $1 WHERE id = $2", b.tenant, a.user)
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "23503") {
		t.Fatalf("moving A's user into B: got %v, want it refused", err)
	}
}

func TestNothingIsVisibleWithoutATenant(t *testing.T) {
	t.Parallel()
	tdb := testdb.Get(t)
	pool := tdb.AppPool(t)
	d := tenancy.New(pool)
	seedTenant(t, d, uniqueSlug("a"))
	// Run many statements so that every pooled connection has had a tenant set before: a
	// transaction-local setting reads back as '' afterwards, which must still mean "no tenant".
	for i := 0; i < 20; i++ {
		seedTenant(t, d, uniqueSlug("warm"))
	}
	for _, table := range []string{"tenants", "users"} {
		var n int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("count %s without tenant: %v", table, err)
		}
		if n != 0 {
			t.Errorf("without a tenant, %s shows %d rows; want 0", table, n)
		}
	}
	if err := d.Write(context.Background(), tenancy.Scope{}, func(*tenancy.Tx) error { return nil }); err == nil {
		t.Error("Write without a tenant succeeded; want an error")
	}
}

func TestRollbackLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("a"))
	ghost := uuid.Must(uuid.NewV7())
	boom := errors.New("boom")
	err := d.Write(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		if _, err := q.CreateUser(context.Background(), db.CreateUserParams{
			TenantID: a.tenant, ID: ghost, Email: "ghost@a.test", Name: "G", Role: "member", Status: "active",
		}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the callback's error", err)
	}
	err = d.Write(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		_, err := q.GetUser(context.Background(), ghost)
		return err
	})
	if !problem.Is(err, problem.NotFound) {
		t.Fatalf("the rolled-back user exists: %v", err)
	}
}

func TestUniqueViolationIsConflict(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("a"))
	err := d.Write(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		u, err := q.GetUser(context.Background(), a.user)
		if err != nil {
			return err
		}
		_, err = q.CreateUser(context.Background(), db.CreateUserParams{
			TenantID: a.tenant, ID: uuid.Must(uuid.NewV7()), Email: "OWNER" + u.Email[5:], Name: "Dup", Role: "member", Status: "active",
		})
		return err
	})
	if !problem.Is(err, problem.Conflict) {
		t.Fatalf("a second user with the same email (other case): got %v, want Conflict", err)
	}
}

func TestAppRoleCannotEscapeRowLevelSecurity(t *testing.T) {
	t.Parallel()
	pool := testdb.Get(t).AppPool(t)
	ctx := context.Background()
	var role string
	if err := pool.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil || role != database.AppRole {
		t.Fatalf("current_user = %q, %v; want %s", role, err, database.AppRole)
	}
	for _, stmt := range []string{
		"ALTER TABLE users DISABLE ROW LEVEL SECURITY",
		"ALTER TABLE users NO FORCE ROW LEVEL SECURITY",
		"ALTER TABLE tenants DISABLE ROW LEVEL SECURITY",
		"DROP POLICY tenant_isolation ON users",
		"CREATE POLICY open ON users USING (true)",
		"SET ROLE " + database.OwnerRole,
		"SET ROLE postgres",
		"SET SESSION AUTHORIZATION postgres",
		"ALTER ROLE " + database.AppRole + " BYPASSRLS",
		"GRANT " + database.OwnerRole + " TO " + database.AppRole,
	} {
		t.Run(stmt, func(t *testing.T) {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, stmt); err == nil {
				conn.Conn().Close(ctx) // do not hand a changed session back to the pool
				t.Fatalf("%q succeeded as the application role", stmt)
			}
		})
	}
	t.Run("row_security off refuses rather than bypasses", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		if _, err := tx.Exec(ctx, "SET LOCAL row_security = off"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err == nil {
			t.Fatalf("with row_security off the app role read %d users; want an error", n)
		}
	})
}

func TestReadIsScopedAndLeavesNothingOnTheConnection(t *testing.T) {
	t.Parallel()
	tdb := testdb.Get(t)
	pool, err := database.Open(context.Background(), tdb.AppURL, database.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	d := tenancy.New(pool)
	a := seedTenant(t, d, uniqueSlug("a"))
	b := seedTenant(t, d, uniqueSlug("b"))
	err = d.Read(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(q *db.Queries) error {
		if _, err := q.GetUser(context.Background(), a.user); err != nil {
			t.Errorf("A cannot read its own user: %v", err)
		}
		if _, err := q.GetUser(context.Background(), b.user); !errors.Is(err, pgx.ErrNoRows) {
			t.Errorf("A reads B's user: %v", err)
		}
		rows, err := q.ListUsers(context.Background(), db.ListUsersParams{Lim: 100})
		if err != nil || len(rows) != 1 || rows[0].TenantID != a.tenant {
			t.Errorf("A lists %v, %v; want only its owner", rows, err)
		}
		if _, err := q.RevokeUserSessions(context.Background(), a.user); err == nil {
			t.Error("Read allowed a write through Exec")
		}
		// A write that returns rows goes through QueryRow: the read-only transaction stops it.
		_, err = q.CreateUser(context.Background(), db.CreateUserParams{
			TenantID: a.tenant, ID: uuid.Must(uuid.NewV7()), Email: "sneak@a.test", Name: "S", Role: "owner", Status: "active",
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" { // read_only_sql_transaction
			t.Errorf("INSERT ... RETURNING in Read: %v; want refused as a read-only transaction", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The single pooled connection carries no tenant afterwards.
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after Read, an unscoped query sees %d users (%v); want 0", n, err)
	}
}

// The request validator refuses NUL and invalid UTF-8 first; if text like that ever reaches a
// query, it is the client's 400, not a 500.
func TestTextThatCannotBeStoredIsInvalid(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	a := seedTenant(t, d, uniqueSlug("a"))
	for _, name := range []string{"nul\x00name", "bad\xffutf8"} {
		err := d.Write(context.Background(), tenancy.Scope{Tenant: a.tenant}, func(tx *tenancy.Tx) error {
			q := tx.Q
			_, err := q.CreateTeam(context.Background(), db.CreateTeamParams{TenantID: a.tenant, ID: uuid.Must(uuid.NewV7()), Name: name, Key: "TXT"})
			return err
		})
		if !problem.Is(err, problem.Invalid) {
			t.Errorf("a team named %q: got %v, want Invalid", name, err)
		}
	}
}
