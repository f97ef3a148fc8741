// Package tenancy is the one way to run database work for a tenant: a transaction whose first
// statement sets app.tenant_id and app.user_id, which the row-level security policies read.
package tenancy

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
)

// Scope is who a transaction acts as. User may be uuid.Nil before anyone is signed in.
type Scope struct {
	Tenant uuid.UUID
	User   uuid.UUID
	// Key is the API key acting for User, if any: written to audit entries, never to a setting
	// that row-level security reads.
	Key uuid.UUID
}

// DB runs tenant-scoped transactions on a pool connected as the application role.
type DB struct {
	pool *pgxpool.Pool
	// channel is the NOTIFY channel a committing write wakes (WakeOnCommit).
	channel string
	// jobs inserts the jobs writes queue (WithJobs).
	jobs Jobs
}

// New returns a DB over pool.
func New(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

// WakeOnCommit returns a DB whose writes that emit events also NOTIFY channel when they commit,
// so every server listening on it learns of them at once. Without it events are stored only.
func (d *DB) WakeOnCommit(channel string) *DB {
	c := *d
	c.channel = channel
	return &c
}

// System runs fn on a pooled connection with no tenant set, for the narrow SECURITY DEFINER
// functions that serve every tenant (the relay's catch-up, retention). Every tenant-owned table
// is empty to it otherwise.
func (d *DB) System(ctx context.Context, fn func(q *db.Queries) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	return Translate(fn(db.New(conn)))
}

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

// Tx runs fn in one transaction scoped to s: it commits when fn returns nil and rolls back
// otherwise, with errors translated. It is the bare transaction under Write, for tests issuing
// raw SQL; application code writes through Write.
func (d *DB) Tx(ctx context.Context, s Scope, fn func(tx pgx.Tx) error) error {
	if s.Tenant == uuid.Nil {
		return errors.New("tenancy: transaction without a tenant")
	}
	reqinfo.SetTenant(ctx, s.Tenant)
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginQuery(s)})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Roll back even when the request was cancelled, so no transaction is left open.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if err := fn(tx); err != nil {
		return Translate(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Translate(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// beginQuery opens the transaction and sets its scope in one round trip: round trips, not the
// RLS policies, are what tenancy costs (see DESIGN.md). The settings are transaction-local, so
// they can never leak to the next user of a pooled connection. Interpolation is safe here: both
// values are formatted UUIDs (hex digits and dashes), never client text.
func beginQuery(s Scope) string {
	user := ""
	if s.User != uuid.Nil {
		user = s.User.String()
	}
	return fmt.Sprintf("BEGIN; SELECT set_config('app.tenant_id', '%s', true), set_config('app.user_id', '%s', true)",
		s.Tenant.String(), user)
}

// Missing turns a missing row into a 404 naming what is missing (format and args, such as
// "task" or "user (assignee_id)"); other errors pass, wrapped. It works inside a transaction's
// function, where queries still return pgx.ErrNoRows, as well as after Translate.
func Missing(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) || problem.Is(err, problem.NotFound) {
		return problem.Wrap(problem.NotFound, err, "No such "+what+".")
	}
	return fmt.Errorf("%s: %w", what, err)
}

// IsDuplicate reports whether err is a unique violation, so a handler can name the value that
// is taken without mistaking another conflict (a deadlock after retries) for one.
func IsDuplicate(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// IsForeignKeyViolation reports whether err is a foreign-key violation: a row naming a parent
// that does not exist.
func IsForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// Translate maps database errors onto the problem taxonomy: no rows is NotFound, a unique
// violation is Conflict, a foreign-key or check violation is Invalid, a statement or lock
// timeout is problem.TimedOut. Errors that already are problems, and anything else, pass through
// unchanged (a passed context deadline becomes TimedOut in problem.As).
func Translate(err error) error {
	if err == nil {
		return nil
	}
	var pe *problem.Error
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return problem.Wrap(problem.NotFound, err, "The resource does not exist.")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return problem.Wrap(problem.Conflict, err, "A resource with the same unique value already exists.")
		case "23503": // foreign_key_violation
			return problem.Wrap(problem.Invalid, err, "A referenced resource does not exist.")
		case "23514", "23502", "22001": // check, not null, string too long
			return problem.Wrap(problem.Invalid, err, "A value is out of its allowed range.")
		case "40P01", "40001": // deadlock victim, serialization failure (after Write's retries)
			return problem.Wrap(problem.Conflict, err, "The change collided with a concurrent one; retry.")
		case "22021", "22P05": // invalid byte sequence (NUL, bad UTF-8), untranslatable character
			// The request validator refuses such text first; this is the backstop.
			return problem.Wrap(problem.Invalid, err, "A text value holds characters that cannot be stored (NUL or invalid UTF-8).")
		case "57014", "55P03": // query_canceled (statement_timeout), lock_not_available (lock_timeout)
			return problem.TimedOut(err)
		}
	}
	return err
}
