package files

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/tenancy"
)

// Sweeper removes blobs that no file row points at: left by a crash between the blob and the
// commit, by a deletion whose blob removal failed, or by a task or project whose deletion took
// its files' rows along. Only blobs older than Grace go, so an upload between its blob and its
// commit is never taken.
type Sweeper struct {
	Store  blob.Store
	DB     *tenancy.DB
	Grace  time.Duration
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// sweepBatch is how many keys one metadata query asks about.
const sweepBatch = 500

// tempRemover is a store whose interrupted writes leave temp files (the directory store).
type tempRemover interface {
	RemoveStaleTemp(olderThan time.Duration) (int, error)
}

// Sweep removes every orphan blob older than Grace and returns how many it removed. Whether a
// key has metadata is asked in the key's own tenant, the tenant being part of the key, so the
// sweep reads through row-level security like every request.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	cutoff := now().Add(-s.Grace)
	removed := 0
	pending := map[uuid.UUID][]blob.Info{}
	queued := 0
	flush := func() error {
		for tenant, infos := range pending {
			n, err := s.removeOrphans(ctx, tenant, infos)
			removed += n
			if err != nil {
				return err
			}
		}
		clear(pending)
		queued = 0
		return nil
	}
	err := s.Store.List(ctx, "t/", func(info blob.Info) error {
		if !info.Modified.Before(cutoff) {
			return nil
		}
		tenant, _, ok := ParseStorageKey(info.Key)
		if !ok {
			s.Logger.WarnContext(ctx, "file sweep: blob with a foreign key left alone", "key", info.Key)
			return nil
		}
		pending[tenant] = append(pending[tenant], info)
		if queued++; queued >= sweepBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if tr, ok := s.Store.(tempRemover); ok && err == nil {
		var n int
		n, err = tr.RemoveStaleTemp(s.Grace)
		if n > 0 {
			s.Logger.InfoContext(ctx, "file sweep: removed interrupted uploads", "count", n)
		}
	}
	return removed, err
}

func (s *Sweeper) removeOrphans(ctx context.Context, tenant uuid.UUID, infos []blob.Info) (int, error) {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	existing, err := tenancy.ReadV(ctx, s.DB, tenancy.Scope{Tenant: tenant}, func(q *db.Queries) ([]string, error) {
		return q.ExistingStorageKeys(ctx, keys)
	})
	if err != nil {
		return 0, err
	}
	kept := make(map[string]bool, len(existing))
	for _, k := range existing {
		kept[k] = true
	}
	removed := 0
	var errs []error
	for _, info := range infos {
		if kept[info.Key] {
			continue
		}
		if err := s.Store.Delete(ctx, info.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
		s.Logger.InfoContext(ctx, "file sweep: removed orphan blob", "key", info.Key, "bytes", info.Size,
			"modified", info.Modified.UTC().Format(time.RFC3339))
	}
	return removed, errors.Join(errs...)
}

// Run sweeps every interval until ctx ends; a failed sweep is logged and tried again next time.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Logger.ErrorContext(ctx, "file sweep failed", "removed", n, "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
