package webhooks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/tenancy"
)

// dispatchBatch is how many events one dispatch transaction reads.
const dispatchBatch = 500

// dispatcher turns committed events into deliveries. A committing write NOTIFYs its tenant on
// the realtime channel; the dispatcher listens and works on that tenant at once. A sweep at
// start and every Sweep finds tenants whose events no wake-up announced (a crash, a dropped
// connection), through the SECURITY DEFINER function webhook_backlog, which returns ids only.
type dispatcher struct {
	cfg     Config
	listen  *pgx.ConnConfig
	channel string

	mu      sync.Mutex
	pending map[uuid.UUID]bool
	signal  chan struct{}
	// quiet holds tenants found without any endpoint ever, until when their wake-ups are
	// ignored: most tenants have none, and a transaction per write of theirs cost 7-15% of
	// the task write rate (docs/performance.md). A first endpoint's events that a skipped
	// wake-up announced are caught by the next wake-up after that or by the sweep.
	quiet map[uuid.UUID]time.Time
}

// quietFor is how long a tenant without endpoints has its wake-ups ignored.
const quietFor = time.Second

func (d *dispatcher) run(ctx context.Context) error {
	go d.listenLoop(ctx)
	sweep := time.NewTicker(d.cfg.Sweep)
	defer sweep.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	d.sweep(ctx)
	d.prune(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sweep.C:
			d.sweep(ctx)
		case <-prune.C:
			d.prune(ctx)
		case <-d.signal:
		}
		d.mu.Lock()
		batch := d.pending
		d.pending = map[uuid.UUID]bool{}
		d.mu.Unlock()
		for tenant := range batch {
			if err := d.dispatch(ctx, tenant); err != nil && ctx.Err() == nil {
				// The next sweep tries again.
				d.cfg.Logger.ErrorContext(ctx, "webhooks: dispatch", "tenant", tenant, "error", err)
			}
		}
	}
}

// wake queues a dispatch of tenant; a commit's wake-up (fromCommit) is dropped while the
// tenant is quiet, the sweep's never.
func (d *dispatcher) wake(tenant uuid.UUID, fromCommit bool) {
	d.mu.Lock()
	if until, ok := d.quiet[tenant]; fromCommit && ok && time.Now().Before(until) {
		d.mu.Unlock()
		return
	}
	delete(d.quiet, tenant)
	d.pending[tenant] = true
	d.mu.Unlock()
	select {
	case d.signal <- struct{}{}:
	default:
	}
}

func (d *dispatcher) sweep(ctx context.Context) {
	d.mu.Lock()
	now := time.Now()
	for t, until := range d.quiet {
		if now.After(until) {
			delete(d.quiet, t)
		}
	}
	d.mu.Unlock()
	err := d.cfg.DB.System(ctx, func(q *db.Queries) error {
		tenants, err := q.WebhookBacklog(ctx, 1000)
		for _, t := range tenants {
			d.wake(t, false)
		}
		return err
	})
	if err != nil && ctx.Err() == nil {
		d.cfg.Logger.ErrorContext(ctx, "webhooks: backlog sweep", "error", err)
	}
}

// prune deletes the finished deliveries older than the retention, in batches.
func (d *dispatcher) prune(ctx context.Context) {
	n, err := PruneDeliveries(ctx, d.cfg.DB, time.Now().Add(-d.cfg.Retention))
	if err != nil && ctx.Err() == nil {
		d.cfg.Logger.ErrorContext(ctx, "webhooks: prune deliveries", "error", err)
	} else if n > 0 {
		d.cfg.Logger.InfoContext(ctx, "webhooks: pruned deliveries", "count", n)
	}
}

// PruneDeliveries deletes finished deliveries (and their attempts) last changed before before,
// across tenants, and says how many. Pending ones, and those younger than a day, are kept.
func PruneDeliveries(ctx context.Context, d *tenancy.DB, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := d.System(ctx, func(q *db.Queries) error {
			var err error
			n, err = q.PruneWebhookDeliveries(ctx, db.PruneWebhookDeliveriesParams{Before: before, MaxRows: 5000})
			return err
		})
		total += n
		if err != nil || n < 5000 {
			return total, err
		}
	}
}

// dispatch queues the deliveries of every event of tenant past its cursor.
func (d *dispatcher) dispatch(ctx context.Context, tenant uuid.UUID) error {
	for {
		read, err := tenancy.WriteV(ctx, d.cfg.DB, tenancy.Scope{Tenant: tenant}, func(tx *tenancy.Tx) (int64, error) {
			after, err := tx.Q.LockWebhookStream(ctx)
			if errors.Is(err, pgx.ErrNoRows) {
				d.mu.Lock()
				d.quiet[tenant] = time.Now().Add(quietFor) // the tenant never had an endpoint
				d.mu.Unlock()
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
			out, err := tx.Q.QueueWebhookDeliveries(ctx, db.QueueWebhookDeliveriesParams{
				After: after, Lim: dispatchBatch, TenantID: tenant, AttemptsAllowed: int32(d.cfg.Retry.Attempts),
				Types: EventTypes,
			})
			if err != nil {
				return 0, err
			}
			if len(out.DeliveryIds) == 0 {
				return out.EventsRead, nil
			}
			jobs := make([]DeliverArgs, len(out.DeliveryIds))
			for i, id := range out.DeliveryIds {
				jobs[i] = DeliverArgs{Tenant: tenant, Delivery: id, Failing: out.Failing[i]}
			}
			return out.EventsRead, Enqueue(ctx, tx, time.Time{}, jobs...)
		})
		if err != nil {
			return err
		}
		if read < dispatchBatch {
			return nil
		}
	}
}

// listenLoop keeps a LISTEN connection on the wake-up channel, reconnecting with backoff; the
// sweep covers whatever is committed while it is down.
func (d *dispatcher) listenLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		d.cfg.Logger.WarnContext(ctx, "webhooks: listen connection lost; reconnecting", "error", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (d *dispatcher) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, d.listen)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{d.channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Whatever committed before the LISTEN took effect.
	d.sweep(ctx)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		// "tenant:first:last:auth" (tenancy's InsertChanges); only the tenant matters here.
		head, _, _ := strings.Cut(n.Payload, ":")
		if tenant, err := uuid.Parse(head); err == nil {
			d.wake(tenant, true)
		}
	}
}
