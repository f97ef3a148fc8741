package tenancy_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/testdb"
)

// globalTables are the tables exempt from the tenant-owned rules, and whether each must still be
// under RLS. Those without hold nothing that is secret between tenants.
var globalTables = map[string]bool{
	"tenants":          true,  // a tenant sees its own row
	"goose_db_version": false, // schema versions
	"tenant_directory": false, // slug -> tenant id, needed before login; nothing else
	// Stripe's events, which may name no tenant: the application role holds no privilege on it
	// at all (checked below) and reaches it only through SECURITY DEFINER functions.
	"stripe_events": false,
	// River's job queue (its own migrations): job arguments are ids only (webhooks.DeliverArgs),
	// whose rows the worker then reads under their tenant.
	"river_client":       false,
	"river_client_queue": false,
	"river_job":          false,
	"river_leader":       false,
	"river_migration":    false,
	"river_notification": false,
	"river_queue":        false,
}

type table struct {
	name       string
	owner      string
	rls, force bool
	policies   []string // USING and WITH CHECK expressions of the policies for every role
	// rolePolicies are the policies for named roles: "name command USING to roles".
	rolePolicies []string
	hasTenant    bool
	pk           []string
}

// rolePolicies are the only policies allowed for a named role rather than everyone: the relay's
// SECURITY DEFINER functions (auth_events_since, prune_events) run as the owner and serve every
// tenant (r is SELECT, d is DELETE).
var rolePolicies = map[string][]string{
	"events": {"relay_prune d true to tasker_owner", "relay_read r true to tasker_owner"},
	// billing_owners: a Stripe customer or subscription id to its tenant.
	"billing_subscriptions": {"billing_lookup r true to tasker_owner"},
	"stripe_subscriptions":  {"billing_lookup r true to tasker_owner"},
	// webhook_backlog: which tenants have events to turn into deliveries.
	"event_streams":     {"webhook_backlog r true to tasker_owner"},
	"webhook_streams":   {"webhook_backlog r true to tasker_owner"},
	"webhook_endpoints": {"webhook_backlog r true to tasker_owner"},
	// prune_webhook_deliveries: retention.
	"webhook_deliveries": {"webhook_prune d true to tasker_owner", "webhook_prune_read r true to tasker_owner"},
}

// TestSchemaEnforcesTenancy walks pg_catalog so that a new table cannot slip past the tenancy
// rules: tenant-owned tables need FORCE RLS with a policy on app.tenant_id, tenant_id in the
// primary key, and tenant_id in every foreign key to another tenant-owned table.
func TestSchemaEnforcesTenancy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Get(t).AppPool(t)

	rows, err := pool.Query(ctx, `
		SELECT c.relname, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity,
		       coalesce((SELECT array_agg(coalesce(p.qual_text, '') || ' / ' || coalesce(p.check_text, ''))
		                 FROM (SELECT pg_get_expr(polqual, polrelid) AS qual_text,
		                              pg_get_expr(polwithcheck, polrelid) AS check_text
		                       FROM pg_policy WHERE polrelid = c.oid AND polroles = '{0}') p), '{}'),
		       coalesce((SELECT array_agg(p.polname || ' ' || p.polcmd::text || ' ' || pg_get_expr(p.polqual, p.polrelid) || ' to ' ||
		                                  (SELECT string_agg(pg_get_userbyid(r), ',') FROM unnest(p.polroles) r) ORDER BY p.polname)
		                 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polroles <> '{0}'), '{}'),
		       EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped),
		       coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
		                 FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
		                 WHERE k.conrelid = c.oid AND k.contype = 'p'), '{}')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
		ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var tb table
		err := r.Scan(&tb.name, &tb.owner, &tb.rls, &tb.force, &tb.policies, &tb.rolePolicies, &tb.hasTenant, &tb.pk)
		return tb, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 2 {
		t.Fatalf("found %d tables; the schema walk is broken", len(tables))
	}
	var privileges []string
	if err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(privilege_type::text), '{}') FROM information_schema.role_table_grants
		WHERE table_name = 'stripe_events' AND grantee = current_user`).Scan(&privileges); err != nil {
		t.Fatal(err)
	}
	if len(privileges) > 0 {
		t.Errorf("the application role holds %v on stripe_events; want none", privileges)
	}
	tenantOwned := map[string]bool{}
	for _, tb := range tables {
		tenantOwned[tb.name] = tb.hasTenant
	}

	for _, tb := range tables {
		if tb.owner != database.OwnerRole {
			t.Errorf("%s is owned by %s, want %s", tb.name, tb.owner, database.OwnerRole)
		}
		needsRLS, global := globalTables[tb.name]
		if !tb.hasTenant && !global {
			t.Errorf("%s has no tenant_id column and is not an allowed global table", tb.name)
		}
		if global && !needsRLS {
			continue
		}
		if !tb.rls || !tb.force {
			t.Errorf("%s: row level security enabled=%v forced=%v, want both", tb.name, tb.rls, tb.force)
		}
		if len(tb.policies) == 0 {
			t.Errorf("%s has no RLS policy", tb.name)
		}
		column := "tenant_id"
		if tb.name == "tenants" {
			column = "id"
		}
		want := fmt.Sprintf("(%s = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)", column)
		for _, p := range tb.policies {
			if p != want+" / "+want {
				t.Errorf("%s: policy USING / WITH CHECK is %q; want exactly %q for both", tb.name, p, want)
			}
		}
		// Policies for one role rather than everyone: only the relay's, for the owner role its
		// SECURITY DEFINER functions run as; the application role never gets one.
		if want := rolePolicies[tb.name]; !slices.Equal(tb.rolePolicies, want) {
			t.Errorf("%s: role-specific policies are %q; want %q", tb.name, tb.rolePolicies, want)
		}
		if tb.hasTenant && !slices.Contains(tb.pk, "tenant_id") {
			t.Errorf("%s: primary key %v lacks tenant_id", tb.name, tb.pk)
		}
	}

	// Foreign keys from a tenant-owned table to another tenant-owned table must pair tenant_id
	// with tenant_id, so a row can never point into another tenant.
	fks, err := pool.Query(ctx, `
		SELECT k.conname, src.relname, dst.relname,
		       array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
		             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
		       array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
		             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
		FROM pg_constraint k
		JOIN pg_class src ON src.oid = k.conrelid
		JOIN pg_class dst ON dst.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = src.relnamespace
		WHERE k.contype = 'f' AND n.nspname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	type fk struct {
		name, src, dst string
		cols, refs     []string
	}
	all, err := pgx.CollectRows(fks, func(r pgx.CollectableRow) (fk, error) {
		var f fk
		err := r.Scan(&f.name, &f.src, &f.dst, &f.cols, &f.refs)
		return f, err
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range all {
		if !tenantOwned[f.src] {
			continue
		}
		if f.dst == "tenants" {
			if !slices.Equal(f.cols, []string{"tenant_id"}) {
				t.Errorf("%s: %s references tenants through %v, want tenant_id", f.name, f.src, f.cols)
			}
			checked++
			continue
		}
		if !tenantOwned[f.dst] {
			continue
		}
		i := slices.Index(f.cols, "tenant_id")
		if i < 0 || f.refs[i] != "tenant_id" {
			t.Errorf("%s: foreign key %s(%v) -> %s(%v) does not pair tenant_id with tenant_id", f.name, f.src, f.cols, f.dst, f.refs)
		}
		checked++
	}
	if checked == 0 {
		t.Error("no foreign key of a tenant-owned table was checked; the walk is broken")
	}
}

// TestAppRoleOwnsNothing guards the property the server checks at start-up.
func TestAppRoleOwnsNothing(t *testing.T) {
	t.Parallel()
	pool := testdb.Get(t).AppPool(t)
	var owned int
	err := pool.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)", database.AppRole).Scan(&owned)
	if err != nil {
		t.Fatal(err)
	}
	if owned != 0 {
		t.Fatalf("%s owns %d relations; want none", database.AppRole, owned)
	}
}
