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
	"github.com/tasker/tasker/internal/reqinfo"
)

// setScopeSQL runs ahead of every read in the same pipeline. In one pipelined batch PostgreSQL
// runs all statements as one implicit transaction, so the transaction-local settings cover the
// read that follows and are gone right after. $3 is the plan cache mode of that read.
const setScopeSQL = "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true), " +
	"set_config('plan_cache_mode', $3, true), set_config('transaction_read_only', 'on', true)"

// Read runs read-only queries for s, each in a single round trip together with the tenant
// setting, with no BEGIN or COMMIT. Queries do not share a snapshot; use Write when they must,
// and for every write: each read runs in a read-only transaction.
func (d *DB) Read(ctx context.Context, s Scope, fn func(q *db.Queries) error) error {
	return d.read(ctx, s, "auto", fn)
}

// Search is Read for queries with optional filters (`$1 IS NULL OR ...`). PostgreSQL caches a
// generic plan for a prepared statement after a few calls, and for such queries it cannot know
// which filters are off: it estimates one row and, for a task list, sorts a whole project where
// the custom plan walks an index (10 ms instead of 0.2). Search has each call planned with its
// actual values, which costs the planning (well under a millisecond) instead.
func (d *DB) Search(ctx context.Context, s Scope, fn func(q *db.Queries) error) error {
	return d.read(ctx, s, "force_custom_plan", fn)
}

func (d *DB) read(ctx context.Context, s Scope, planMode string, fn func(q *db.Queries) error) error {
	if s.Tenant == uuid.Nil {
		return errors.New("tenancy: read without a tenant")
	}
	reqinfo.SetTenant(ctx, s.Tenant)
	user := ""
	if s.User != uuid.Nil {
		user = s.User.String()
	}
	return d.readAs(ctx, s.Tenant.String(), user, planMode, fn)
}

// Global reads with no tenant set: every tenant-owned table is empty to it, and only the
// global tables (tenant_directory) answer. It serves lookups that start from a public name
// before any tenant is known. Like Read, each query is one read-only round trip.
func (d *DB) Global(ctx context.Context, fn func(q *db.Queries) error) error {
	return d.readAs(ctx, "", "", "auto", fn)
}

func (d *DB) readAs(ctx context.Context, tenant, user, planMode string, fn func(q *db.Queries) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	return Translate(fn(db.New(&scopedReader{conn: conn, tenant: tenant, user: user, planMode: planMode})))
}

// scopedReader is a db.DBTX that sends each query in a batch behind setScopeSQL.
type scopedReader struct {
	conn                   *pgxpool.Conn
	tenant, user, planMode string
}

var errReadOnly = errors.New("tenancy: Read is for queries; use Write to write")

func (r *scopedReader) send(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue(setScopeSQL, r.tenant, r.user, r.planMode)
	b.Queue(sql, args...)
	br := r.conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("set tenant: %w", err)
	}
	return br, nil
}

func (r *scopedReader) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errReadOnly
}

func (r *scopedReader) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return lastRows(r.send(ctx, sql, args))
}

func (r *scopedReader) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return lastRow(r.send(ctx, sql, args))
}

// lastRows reads the last statement of a batch whose earlier results were consumed; the rows
// close the batch.
func lastRows(br pgx.BatchResults, err error) (pgx.Rows, error) {
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// lastRow is lastRows for a single row.
func lastRow(br pgx.BatchResults, err error) pgx.Row {
	if err != nil {
		return errRow{err}
	}
	return &batchRow{row: br.QueryRow(), br: br}
}

// batchRows closes the batch with the rows, so the connection is free for the next query.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.closed {
		r.closed = true
		_ = r.br.Close()
	}
}

type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r *batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
