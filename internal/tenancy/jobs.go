package tenancy

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Jobs is River's client as far as the write seam needs it: it inserts jobs in the caller's
// transaction, so a job exists if and only if the write that queued it commits.
type Jobs interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// WithJobs returns a DB whose writes may queue jobs (Tx.Enqueue) into River through jobs.
func (d *DB) WithJobs(jobs Jobs) *DB {
	c := *d
	c.jobs = jobs
	return &c
}

// Enqueue queues a River job, inserted with the write's audit entries and events just before
// COMMIT. Its arguments are stored outside row-level security (river_job serves every tenant):
// keep them to ids.
func (t *Tx) Enqueue(args river.JobArgs, opts *river.InsertOpts) {
	t.jobs = append(t.jobs, river.InsertManyParams{Args: args, InsertOpts: opts})
}

// flushJobs inserts the queued jobs in the transaction.
func (t *Tx) flushJobs() error {
	if len(t.jobs) == 0 {
		return nil
	}
	if t.queue == nil {
		return errors.New("tenancy: a job was queued but this DB has no job queue (WithJobs)")
	}
	if _, err := t.queue.InsertManyTx(t.ctx, seamTx{t.raw}, t.jobs); err != nil {
		return fmt.Errorf("queue jobs: %w", err)
	}
	return nil
}

// seamTx lends River the open write transaction. It runs statements only: the transaction
// begins and ends in the write seam, so River may not begin, commit or roll it back.
type seamTx struct{ p *pipelinedTx }

var errSeamTx = errors.New("tenancy: the write seam owns this transaction")

func (s seamTx) Begin(context.Context) (pgx.Tx, error) { return nil, errSeamTx }
func (s seamTx) Commit(context.Context) error          { return errSeamTx }
func (s seamTx) Rollback(context.Context) error        { return errSeamTx }

func (s seamTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	return s.p.conn.CopyFrom(ctx, table, columns, rows)
}

func (s seamTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	// A failed begin leaves no transaction, and the batch then fails on its own.
	_ = s.begin(ctx)
	return s.p.conn.SendBatch(ctx, b)
}

func (s seamTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (s seamTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return s.p.conn.Conn().Prepare(ctx, name, sql)
}

func (s seamTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return s.p.Exec(ctx, sql, args...)
}

func (s seamTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return s.p.Query(ctx, sql, args...)
}

func (s seamTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return s.p.QueryRow(ctx, sql, args...)
}

func (s seamTx) Conn() *pgx.Conn { return s.p.conn.Conn() }

// begin opens the transaction for the calls that cannot carry its first statement.
func (s seamTx) begin(ctx context.Context) error {
	if s.p.begun {
		return nil
	}
	_, err := s.p.Exec(ctx, "SELECT 1")
	return err
}
