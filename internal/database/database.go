// Package database opens the server's PostgreSQL pool as the application role and proves, before
// the server takes traffic, that this role cannot get around row-level security.
package database

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AppRole is the role the server runs as: NOSUPERUSER, NOBYPASSRLS, owning nothing.
const AppRole = "tasker_app"

// OwnerRole owns the schema and runs migrations.
const OwnerRole = "tasker_owner"

// Options tune the pool; zero values keep pgx's defaults.
type Options struct {
	MaxConns int32
}

// Open connects to url and makes every connection act as AppRole. A connection string for a more
// privileged login is accepted for convenience in development: each new connection runs SET ROLE,
// and CheckRole then verifies the result. In production, log in as tasker_app directly, since a
// superuser session could still RESET ROLE.
func Open(ctx context.Context, url string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SET ROLE "+AppRole); err != nil {
			return fmt.Errorf("set role %s (run `server migrate` first to create it): %w", AppRole, err)
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := CheckRole(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// ErrUnsafeRole is returned by CheckRole when the effective role could bypass row-level security.
var ErrUnsafeRole = errors.New("unsafe database role")

// CheckRole refuses a connection whose effective role is a superuser, has BYPASSRLS, or owns any
// relation in the database: any of these would let a query see other tenants' rows.
func CheckRole(ctx context.Context, pool *pgxpool.Pool) error {
	var (
		role           string
		super, bypass  bool
		ownedRelations int
	)
	err := pool.QueryRow(ctx, `
		SELECT r.rolname, r.rolsuper, r.rolbypassrls,
		       (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid)
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&role, &super, &bypass, &ownedRelations)
	if err != nil {
		return fmt.Errorf("check database role: %w", err)
	}
	switch {
	case super:
		return fmt.Errorf("%w: %s is a superuser", ErrUnsafeRole, role)
	case bypass:
		return fmt.Errorf("%w: %s has BYPASSRLS", ErrUnsafeRole, role)
	case ownedRelations > 0:
		return fmt.Errorf("%w: %s owns %d relations, and owners can be exempt from RLS", ErrUnsafeRole, role, ownedRelations)
	}
	return nil
}
