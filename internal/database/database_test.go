package database_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestOpenSwitchesAPrivilegedLoginToTheAppRole(t *testing.T) {
	t.Parallel()
	// The admin URL logs in as a superuser; Open must still end up as tasker_app.
	pool, err := database.Open(context.Background(), testdb.Get(t).AdminURL, database.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var role string
	var super bool
	if err := pool.QueryRow(context.Background(), "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)").Scan(&role, &super); err != nil {
		t.Fatal(err)
	}
	if role != database.AppRole || super {
		t.Fatalf("effective role %s (superuser %v), want %s", role, super, database.AppRole)
	}
}

func TestCheckRoleRefusesRolesThatBypassRLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := testdb.Get(t)
	cases := map[string]string{
		"superuser": "",
		"owner":     "SET ROLE " + database.OwnerRole,
	}
	for name, setup := range cases {
		cfg, err := pgxpool.ParseConfig(d.AdminURL)
		if err != nil {
			t.Fatal(err)
		}
		if setup != "" {
			cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { _, err := c.Exec(ctx, setup); return err }
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = database.CheckRole(ctx, pool)
		pool.Close()
		if !errors.Is(err, database.ErrUnsafeRole) {
			t.Errorf("%s: CheckRole = %v, want ErrUnsafeRole", name, err)
		}
	}
	if err := database.CheckRole(ctx, d.AppPool(t)); err != nil {
		t.Errorf("app role: CheckRole = %v, want nil", err)
	}
}
