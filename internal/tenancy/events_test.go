package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/testdb"
)

// emitTeam is a write that creates a team and emits its event.
func emitTeam(ctx context.Context, tx *tenancy.Tx, tenant uuid.UUID, key string) error {
	team, err := tx.Q.CreateTeam(ctx, db.CreateTeamParams{TenantID: tenant, ID: uuid.Must(uuid.NewV7()), Name: "T", Key: key})
	if err != nil {
		return err
	}
	tx.Changed("team.created", tenancy.Entry{Action: "team.create", ResourceType: "team", ResourceID: team.ID}, uuid.Nil, map[string]string{"key": key})
	return nil
}

// TestEventIDsAreGapFreePerTenantInCommitOrder holds the relay's premise: a tenant's event ids
// are 1, 2, 3, ... in the order their writes committed, whatever runs concurrently, and a
// rolled-back write leaves no hole; each committed write wakes listeners once with its range,
// a rolled-back one never.
func TestEventIDsAreGapFreePerTenantInCommitOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Get(t).AppPool(t)
	d := tenancy.New(pool).WakeOnCommit("events_test")
	a := seedTenant(t, d, uniqueSlug("ids"))
	b := seedTenant(t, d, uniqueSlug("ids"))

	listener, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN events_test"); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	failed := errors.New("rolled back on purpose")
	for w := range 6 {
		wg.Go(func() {
			for i := range 10 {
				acct := a
				if w%2 == 1 {
					acct = b
				}
				err := d.Write(ctx, tenancy.Scope{Tenant: acct.tenant, User: acct.user}, func(tx *tenancy.Tx) error {
					if err := emitTeam(ctx, tx, acct.tenant, fmt.Sprintf("K%dX%d", w, i)); err != nil {
						return err
					}
					if i%3 == 2 {
						return failed
					}
					return nil
				})
				if err != nil && !errors.Is(err, failed) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()

	// 3 writers a tenant, 10 writes each, every third rolled back: 21 events each.
	for _, acct := range []fixture{a, b} {
		var ids []int64
		err := d.Tx(ctx, tenancy.Scope{Tenant: acct.tenant}, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "SELECT id FROM events ORDER BY created_at, id")
			if err != nil {
				return err
			}
			ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		want := make([]int64, 21)
		for i := range want {
			want[i] = int64(i + 1)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("tenant %s: event ids %v, want 1..21 with no gap", acct.tenant, ids)
		}
	}

	// Wake-ups arrive in commit order: per tenant their ranges follow each other exactly.
	next := map[string]int64{a.tenant.String(): 1, b.tenant.String(): 1}
	for n := 0; n < 42; n++ {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		note, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("wake-up %d: %v", n, err)
		}
		parts := strings.Split(note.Payload, ":")
		if len(parts) != 4 || parts[3] != "0" {
			t.Fatalf("payload %q", note.Payload)
		}
		want := fmt.Sprint(next[parts[0]])
		if parts[1] != want || parts[2] != want {
			t.Fatalf("wake-up %q: want range %s:%s for that tenant", note.Payload, want, want)
		}
		next[parts[0]]++
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if note, err := listener.WaitForNotification(wctx); err == nil {
		t.Errorf("a wake-up beyond the committed writes: %q", note.Payload)
	}
}
