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

// beginScopeSQL sets a write transaction's scope; transaction-local, so it ends with COMMIT or
// ROLLBACK and never reaches the next user of the pooled connection.
const beginScopeSQL = "SELECT set_config('app.tenant_id', $1, true), set_config('app.user_id', $2, true)"

// pipelinedTx is a db.DBTX for one write transaction that opens lazily: BEGIN, the scope
// settings and the transaction's first statement travel in one pipelined batch, so a write costs
// no round trip of its own for BEGIN (DESIGN.md: round trips, not RLS, are what tenancy costs).
// Statements after the first run on the connection inside the open transaction.
type pipelinedTx struct {
	conn        *pgxpool.Conn
	tenant      string
	user        string
	begun, done bool
}

func (p *pipelinedTx) first(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	p.begun = true
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(beginScopeSQL, p.tenant, p.user)
	b.Queue(sql, args...)
	br := p.conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("begin: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("set tenant: %w", err)
	}
	return br, nil
}

func (p *pipelinedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if p.begun {
		return p.conn.Exec(ctx, sql, args...)
	}
	br, err := p.first(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (p *pipelinedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if p.begun {
		return p.conn.Query(ctx, sql, args...)
	}
	return lastRows(p.first(ctx, sql, args))
}

func (p *pipelinedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if p.begun {
		return p.conn.QueryRow(ctx, sql, args...)
	}
	return lastRow(p.first(ctx, sql, args))
}

// commit ends the transaction; a transaction that never ran a statement has nothing to end.
func (p *pipelinedTx) commit(ctx context.Context) error {
	if !p.begun {
		p.done = true
		return nil
	}
	tag, err := p.conn.Exec(ctx, "COMMIT")
	p.done = true
	if err != nil {
		return err
	}
	// COMMIT of a transaction a statement aborted answers ROLLBACK, not an error.
	if tag.String() != "COMMIT" {
		return errors.New("the transaction was rolled back")
	}
	return nil
}

// rollback ends a transaction that did not commit, even when the request was cancelled. If it
// cannot, the connection is closed, so the pool never hands out one inside a transaction.
func (p *pipelinedTx) rollback(ctx context.Context) {
	if !p.begun || p.done {
		return
	}
	if _, err := p.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
		_ = p.conn.Conn().Close(context.WithoutCancel(ctx))
	}
}

// pipelined runs fn in one write transaction scoped to s, opened with its first statement.
func (d *DB) pipelined(ctx context.Context, s Scope, fn func(raw *pipelinedTx, q *db.Queries) error) error {
	if s.Tenant == uuid.Nil {
		return errors.New("tenancy: transaction without a tenant")
	}
	reqinfo.SetTenant(ctx, s.Tenant)
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	user := ""
	if s.User != uuid.Nil {
		user = s.User.String()
	}
	tx := &pipelinedTx{conn: conn, tenant: s.Tenant.String(), user: user}
	defer tx.rollback(ctx)
	if err := fn(tx, db.New(tx)); err != nil {
		return Translate(err)
	}
	if err := tx.commit(ctx); err != nil {
		return Translate(fmt.Errorf("commit: %w", err))
	}
	return nil
}
