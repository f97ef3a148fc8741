package realtime

import (
	"context"
	"time"

	"github.com/tasker/tasker/gen/db"
)

// pruneBatch bounds one DELETE, so retention never holds long locks or a long transaction.
const pruneBatch = 5000

// pruneLoop deletes events older than the retention, every retention/24 (at most every minute),
// in batches, and logs how many it removed. Every instance runs it; deleting what another
// instance just deleted finds nothing.
func (s *Service) pruneLoop(ctx context.Context) {
	every := min(max(s.cfg.Retention/24, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.Prune(ctx, time.Now().Add(-s.cfg.Retention)); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("realtime: prune events", "error", err)
		} else if n > 0 {
			s.cfg.Logger.Info("realtime: pruned events", "count", n, "retention", s.cfg.Retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Prune deletes the events of every tenant older than before and returns how many.
func (s *Service) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.cfg.DB.System(ctx, func(q *db.Queries) error {
			var err error
			n, err = q.PruneEvents(ctx, db.PruneEventsParams{Before: before, MaxRows: pruneBatch})
			return err
		})
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}
