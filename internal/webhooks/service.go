package webhooks

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/tasker/tasker/internal/tenancy"
)

// Service runs outbound deliveries: River's client with the delivery worker, and the dispatcher
// that turns committed events into deliveries.
type Service struct {
	river      *river.Client[pgx.Tx]
	dispatcher *dispatcher
	queue      string
}

// Defaults of Config's zero fields.
const (
	DefaultAttempts    = 16
	DefaultRetryBase   = 30 * time.Second
	DefaultRetryMax    = 6 * time.Hour
	DefaultConcurrency = 4
	// DefaultTenantConcurrency is half of DefaultWorkers: one tenant's new endpoints leave the
	// others half of the first lane even before they count as slow or failing.
	DefaultTenantConcurrency = 10
	DefaultWorkers           = 20
	DefaultRetryWorkers      = 10
	DefaultSweep             = 10 * time.Second
	DefaultRetention         = 30 * 24 * time.Hour
	DefaultSlowAfter         = 2 * time.Second
)

// New builds the service on pool (the application role's). cfg.DB must be a DB over the same
// pool; channel is the NOTIFY channel committing writes wake (realtime.Channel). Jobs returns
// what writes queue their jobs with; Run starts the work.
func New(pool *pgxpool.Pool, channel string, cfg Config) (*Service, error) {
	// Zero takes the default; the server's configuration refuses negative values.
	cfg.Retry.Attempts = cmp.Or(cfg.Retry.Attempts, DefaultAttempts)
	cfg.Retry.Base = cmp.Or(cfg.Retry.Base, DefaultRetryBase)
	if cfg.Retry.Max < cfg.Retry.Base {
		cfg.Retry.Max = max(DefaultRetryMax, cfg.Retry.Base)
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, DefaultConcurrency)
	cfg.TenantConcurrency = cmp.Or(cfg.TenantConcurrency, DefaultTenantConcurrency)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.RetryWorkers = cmp.Or(cfg.RetryWorkers, DefaultRetryWorkers)
	cfg.Sweep = cmp.Or(cfg.Sweep, DefaultSweep)
	cfg.Retention = cmp.Or(cfg.Retention, DefaultRetention)
	cfg.SlowAfter = cmp.Or(cfg.SlowAfter, DefaultSlowAfter)
	cfg.Queue = cmp.Or(cfg.Queue, Queue)
	w := &deliverer{cfg: cfg, client: cfg.Guard.Client()}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, w); err != nil {
		return nil, err
	}
	// River learns of new jobs from a NOTIFY, sent at most once a FetchCooldown per queue; a job
	// inserted just after one waits for the next poll, which bounds the tail of the delay from
	// commit to first attempt (docs/performance.md). Retries, which River schedules, wait for a
	// poll too. An idle poll is one indexed query.
	poll := 100 * time.Millisecond
	if cfg.Retry.Base < 400*time.Millisecond {
		poll = 50 * time.Millisecond
	}
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues: map[string]river.QueueConfig{
			cfg.Queue: {MaxWorkers: cfg.Workers}, cfg.Queue + failingLane: {MaxWorkers: cfg.RetryWorkers},
		},
		Workers: workers,
		Logger:  cfg.Logger,
		// The application role owns no index, so River's reindexer could only fail (TOOLCHAIN).
		ReindexerIndexNames: []string{},
		// A job whose server died mid-attempt runs again on another (at least once).
		RescueStuckJobsAfter: cfg.Guard.timeout() + 2*time.Minute,
		FetchPollInterval:    poll,
		// River fetches at once when a job is inserted (LISTEN), but at most once a cooldown:
		// its default of 100 ms was most of the delay from commit to first attempt.
		FetchCooldown: 10 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: river client: %w", err)
	}
	s := &Service{river: client, queue: cfg.Queue}
	// The worker queues retries, the dispatcher first attempts.
	w.cfg.DB = cfg.DB.WithJobs(s.Jobs())
	dcfg := cfg
	dcfg.DB = w.cfg.DB
	s.dispatcher = &dispatcher{cfg: dcfg, listen: pool.Config().ConnConfig.Copy(), channel: channel,
		pending: map[uuid.UUID]bool{}, signal: make(chan struct{}, 1), quiet: map[uuid.UUID]time.Time{}}
	return s, nil
}

// failingLane suffixes the queue of attempts to failing endpoints.
const failingLane = "_failing"

// Jobs is the job queue that writes use (tenancy.DB.WithJobs): River's client, putting jobs
// that name no queue into this service's, or its lane of failing endpoints.
func (s *Service) Jobs() tenancy.Jobs { return queued{s.river, s.queue} }

type queued struct {
	*river.Client[pgx.Tx]
	queue string
}

func (q queued) InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	for i, p := range params {
		opts := river.InsertOpts{}
		if p.InsertOpts != nil {
			opts = *p.InsertOpts
		}
		if opts.Queue == "" {
			opts.Queue = q.queue
			if a, ok := p.Args.(DeliverArgs); ok && a.Failing {
				opts.Queue = q.queue + failingLane
			}
		}
		params[i].InsertOpts = &opts
	}
	return q.Client.InsertManyTx(ctx, tx, params)
}

// Run works until ctx ends: River fetches and sends deliveries, the dispatcher queues them.
// Attempts in flight when it stops are cancelled and run again on the next start.
func (s *Service) Run(ctx context.Context) error {
	if err := s.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("webhooks: start river: %w", err)
	}
	err := s.dispatcher.run(ctx)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := s.river.StopAndCancel(stopCtx); serr != nil && err == nil {
		err = fmt.Errorf("webhooks: stop river: %w", serr)
	}
	return err
}
