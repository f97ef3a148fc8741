package tenancy_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/testdb"
)

// TestWorkThatRunsOutOfTimeIsUnavailable: a statement timeout, a lock timeout and a passed
// context deadline each come back as a 503 problem with Retry-After, not as an internal error.
func TestWorkThatRunsOutOfTimeIsUnavailable(t *testing.T) {
	t.Parallel()
	d := tenancy.New(testdb.Get(t).AppPool(t))
	f := seedTenant(t, d, uniqueSlug("timeout"))
	scope := tenancy.Scope{Tenant: f.tenant}

	// Another transaction holds the user's row, so lock waits below really wait.
	locked, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- d.Tx(context.Background(), scope, func(tx pgx.Tx) error {
			if _, err := tx.Exec(context.Background(), "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", f.user); err != nil {
				close(locked)
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	defer func() {
		close(release)
		if err := <-held; err != nil {
			t.Errorf("holding transaction: %v", err)
		}
	}()

	for _, tc := range []struct {
		name    string
		timeout time.Duration // of the context; 0 for none
		sql     string
		code    string // the SQLSTATE behind the error, "" for a context deadline
	}{
		{"statement timeout", 0, "SET LOCAL statement_timeout = '50ms'; SELECT pg_sleep(5)", "57014"},
		{"lock timeout", 0, "SET LOCAL lock_timeout = '50ms'; UPDATE users SET name = 'x' WHERE id = '" + f.user.String() + "'", "55P03"},
		{"context deadline", 100 * time.Millisecond, "UPDATE users SET name = 'x' WHERE id = '" + f.user.String() + "'", ""},
	} {
		ctx := context.Background()
		if tc.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tc.timeout)
			defer cancel()
		}
		start := time.Now()
		err := d.Tx(ctx, scope, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, tc.sql)
			return err
		})
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s: took %s; the timeout did not end the wait", tc.name, took)
		}
		var pgErr *pgconn.PgError
		switch {
		case tc.code != "" && (!errors.As(err, &pgErr) || pgErr.Code != tc.code):
			t.Errorf("%s: error %v; want SQLSTATE %s behind it", tc.name, err, tc.code)
		case tc.code == "" && !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("%s: error %v; want context.DeadlineExceeded behind it", tc.name, err)
		}
		pe := problem.As(err)
		if pe.Kind.Status() != http.StatusServiceUnavailable || pe.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %v is a %d problem with Retry-After %q; want 503 with Retry-After", tc.name, err, pe.Kind.Status(), pe.Header.Get("Retry-After"))
		}
	}
}
