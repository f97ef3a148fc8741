package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/netguard"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/secretbox"
	"github.com/tasker/tasker/internal/tenancy"
)

// Queue is the River queue of first attempts; failing endpoints' attempts run in a second one
// of the same name and failingLane.
const Queue = "webhooks"

// DeliverArgs is the River job that sends one delivery until it succeeds, gives up or its
// endpoint goes away. Only ids: river_job is not under row-level security.
type DeliverArgs struct {
	Tenant   uuid.UUID `json:"tenant"`
	Delivery uuid.UUID `json:"delivery"`
	// Round and Attempt say which attempt the job is for: the delivery's round (a redelivery
	// starts a new one) and how many attempts it had when the job was queued. A job whose
	// attempt was made already (a job rescued after a crash, one of an earlier round still
	// scheduled) sends nothing, so one delivery is never attempted twice at once.
	Round   int32 `json:"round,omitempty"`
	Attempt int32 `json:"attempt,omitempty"`
	// Failing sends the job in the lane of failing endpoints (a queue with workers of its own),
	// so that receivers that time out cannot hold the workers of everybody's first attempts.
	Failing bool `json:"failing,omitempty"`
}

func (a DeliverArgs) current(d db.GetDeliveryToSendRow) bool {
	return d.Round == a.Round && d.Attempts == a.Attempt
}

// Enqueue queues the jobs of args in tx, with the priority their tenant's backlog gives them,
// to run at at (now when zero). River makes a job scheduled for later available only every 5 s
// (its scheduler's interval) but a snooze of up to 5 s exactly on time, so a job is due up to
// 5 s early and then waits out the rest (Work).
func Enqueue(ctx context.Context, tx *tenancy.Tx, at time.Time, args ...DeliverArgs) error {
	pending, err := tx.Q.CountPendingWebhookDeliveries(ctx)
	if err != nil {
		return err
	}
	opts := &river.InsertOpts{Priority: Priority(pending)}
	if time.Until(at) > riverSchedulerInterval {
		opts.ScheduledAt = at.Add(-riverSchedulerInterval)
	}
	for _, a := range args {
		tx.Enqueue(a, opts)
	}
	return nil
}

// Priority is the River priority (1 first, 4 last) of a new job of a tenant with pending
// deliveries waiting: River fetches by priority before age, so a tenant with a large backlog
// (a flood, or receivers that are down) cannot make other tenants' deliveries wait behind it.
func Priority(pending int64) int {
	switch {
	case pending < 100:
		return 1
	case pending < 1000:
		return 2
	case pending < 10000:
		return 3
	}
	return 4
}

// Kind names the job in River.
func (DeliverArgs) Kind() string { return "webhook_delivery" }

// InsertOpts: River's attempts count only errors of the worker itself (the database away);
// a receiver's failures are counted in the delivery, and each retry is a job of its own. The
// queue is the service's (Service.Jobs).
func (DeliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 25} }

// SecretOwner binds a sealed signing secret to its tenant and endpoint, so a sealed value
// copied to another row does not open.
func SecretOwner(tenant, endpoint uuid.UUID) []byte { return append(tenant[:], endpoint[:]...) }

// Retry is the schedule of a delivery's attempts.
type Retry struct {
	// Attempts is how many attempts one round makes (a redelivery starts another round).
	Attempts int
	// Base is the delay after the first failure; each next one doubles, up to Max.
	Base, Max time.Duration
}

// Delay is how long to wait after the attempt-th failed attempt: Base·2^(attempt-1), capped at
// Max, less a random quarter at most (jitter), so retries of many deliveries spread out and
// each delay still exceeds the one before until the cap.
func (r Retry) Delay(attempt int) time.Duration {
	d := r.Base
	for i := 1; i < attempt && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

// inRound is the number, within its round, of the attempt a delivery with attempts made and
// attemptsAllowed is about to make: a redelivery starts its backoff afresh, not where the
// rounds before it stopped.
func (r Retry) inRound(attempts, attemptsAllowed int32) int {
	return max(1, int(attempts-(attemptsAllowed-int32(r.Attempts)))+1)
}

// deliverer is the River worker of DeliverArgs.
type deliverer struct {
	river.WorkerDefaults[DeliverArgs]
	cfg    Config
	client *http.Client
}

// errMoved ends a job whose delivery was handed to the lane of failing endpoints.
var errMoved = errors.New("webhooks: the delivery moved to the failing lane")

// riverSchedulerInterval is how often River's scheduler makes scheduled jobs available (its
// default, which its Config does not expose).
const riverSchedulerInterval = 5 * time.Second

// maxResponse is how much of a receiver's answer is read: enough to reuse the connection for a
// short one, never a large body.
const maxResponse = 4 << 10

// Timeout bounds a whole run of the job: the attempt plus its bookkeeping.
func (w *deliverer) Timeout(*river.Job[DeliverArgs]) time.Duration {
	return w.cfg.Guard.timeout() + 30*time.Second
}

func (w *deliverer) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	scope := tenancy.Scope{Tenant: job.Args.Tenant}
	d, lease, err := w.begin(ctx, scope, job.Args)
	if errors.Is(err, errMoved) {
		return nil
	}
	early := time.Duration(0)
	if d.NextAttemptAt != nil {
		early = time.Until(*d.NextAttemptAt)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows) || problem.Is(err, problem.NotFound):
		return nil // the endpoint (and with it the delivery) was deleted
	case err != nil:
		return fmt.Errorf("begin an attempt: %w", err)
	case d.Status != "pending" || !d.Enabled || !job.Args.current(d):
		return nil // done already, canceled now, or another job sends it
	case early > 0:
		// A retry runs a little before its time (see record): wait for it, without counting.
		return river.JobSnooze(early)
	case lease == uuid.Nil:
		// The endpoint or its tenant has its fill of attempts in flight: come back later,
		// without counting an attempt. Its priority keeps other tenants' jobs ahead meanwhile.
		return river.JobSnooze(time.Second + rand.N(2*time.Second))
	}

	started := time.Now()
	code, sendErr := w.send(ctx, job.Args.Tenant, d, started)
	took := time.Since(started)
	if ctx.Err() != nil {
		// Stopped mid-attempt: not the receiver's failure. The next start sends it again.
		_ = w.cfg.DB.Write(context.WithoutCancel(ctx), scope, func(tx *tenancy.Tx) error {
			return tx.Q.DropWebhookLease(context.WithoutCancel(ctx), lease)
		})
		return river.JobSnooze(0)
	}
	ok := sendErr == nil && code >= 200 && code < 300
	next := time.Now().Add(w.cfg.Retry.Delay(w.cfg.Retry.inRound(d.Attempts, d.AttemptsAllowed)))
	outcome, err := w.record(ctx, scope, d, lease, started, took, code, sendErr, ok, next)
	if err != nil {
		return err
	}
	w.cfg.Logger.DebugContext(ctx, "webhook attempt", "delivery", d.ID, "endpoint", d.EndpointID,
		"status_code", code, "ok", ok, "attempt", outcome.Attempts, "status", outcome.Status)
	return nil
}

// begin reads the delivery and its endpoint and, when the delivery is to be sent, takes a lease
// on one of the endpoint's in-flight slots (uuid.Nil when all are taken), in one transaction. A
// pending delivery of a disabled endpoint is canceled instead.
func (w *deliverer) begin(ctx context.Context, scope tenancy.Scope, args DeliverArgs) (db.GetDeliveryToSendRow, uuid.UUID, error) {
	type started struct {
		d     db.GetDeliveryToSendRow
		lease uuid.UUID
		moved bool
	}
	s, err := tenancy.WriteV(ctx, w.cfg.DB, scope, func(tx *tenancy.Tx) (started, error) {
		d, err := tx.Q.GetDeliveryToSend(ctx, args.Delivery)
		if err != nil || d.Status != "pending" || !args.current(d) {
			return started{d: d}, err
		}
		if !d.Enabled {
			return started{d: d}, tx.Q.CancelWebhookDelivery(ctx, d.ID)
		}
		if d.NextAttemptAt != nil && d.NextAttemptAt.After(time.Now()) {
			return started{d: d}, nil // early: Work waits
		}
		if d.EndpointFailing && !args.Failing {
			// Queued in the first lane before its endpoint failed or was slow: hand it to the
			// second lane now rather than hold a first-lane worker with it.
			moved := args
			moved.Failing = true
			return started{d: d, moved: true}, Enqueue(ctx, tx, time.Time{}, moved)
		}
		if err := tx.Q.LockWebhookLeases(ctx, scope.Tenant); err != nil {
			return started{}, err
		}
		id, err := tx.Q.TakeWebhookLease(ctx, db.TakeWebhookLeaseParams{
			TenantID: scope.Tenant, EndpointID: d.EndpointID, MaxInFlight: int32(w.cfg.Concurrency),
			TenantMaxInFlight: int32(w.cfg.TenantConcurrency), HoldSeconds: (w.cfg.Guard.timeout() + time.Minute).Seconds(),
			DeliveryID: d.ID,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return started{d: d}, nil
		}
		return started{d: d, lease: id}, err
	})
	if err == nil && s.moved {
		err = errMoved
	}
	return s.d, s.lease, err
}

// send makes one attempt: the stored body, signed with every live secret, posted through the
// guarded client. It returns the HTTP status, or an error when no answer came.
func (w *deliverer) send(ctx context.Context, tenant uuid.UUID, d db.GetDeliveryToSendRow, at time.Time) (int, error) {
	secrets, err := w.secrets(tenant, d, at)
	if err != nil {
		// Not the receiver's fault: the key changed, or the row was tampered with. The attempt
		// fails like any other, and the operator learns why here.
		w.cfg.Logger.ErrorContext(ctx, "webhooks: cannot sign a delivery", "delivery", d.ID, "endpoint", d.EndpointID, "error", err)
		return 0, err
	}
	headers, err := Headers(secrets, "msg_"+d.ID.String(), at, d.Payload)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Guard.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Url, strings.NewReader(string(d.Payload)))
	if err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	req.Header = headers
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tasker-Webhooks/1")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (w *deliverer) secrets(tenant uuid.UUID, d db.GetDeliveryToSendRow, at time.Time) ([]string, error) {
	owner := SecretOwner(tenant, d.EndpointID)
	current, err := w.cfg.Box.Open(d.SecretSealed, owner)
	if err != nil {
		return nil, fmt.Errorf("open the signing secret: %w", err)
	}
	secrets := []string{string(current)}
	if d.PreviousSecretSealed != nil && d.PreviousSecretExpiresAt != nil && at.Before(*d.PreviousSecretExpiresAt) {
		if prev, err := w.cfg.Box.Open(d.PreviousSecretSealed, owner); err == nil {
			secrets = append(secrets, string(prev))
		}
	}
	return secrets, nil
}

// record stores the attempt and its outcome, gives the lease back, and disables an endpoint
// that has failed for longer than DisableAfter, with an audit entry that says why.
func (w *deliverer) record(ctx context.Context, scope tenancy.Scope, d db.GetDeliveryToSendRow, lease uuid.UUID, started time.Time,
	took time.Duration, code int, sendErr error, ok bool, next time.Time) (db.RecordWebhookAttemptRow, error) {
	ctx = context.WithoutCancel(ctx) // the attempt happened; its record must not be lost to a stop
	p := db.RecordWebhookAttemptParams{
		Ok: ok, NextAttemptAt: next, ID: d.ID, Round: d.Round, Attempt: d.Attempts, TenantID: scope.Tenant,
		StartedAt: started, DurationMs: int32(min(took.Milliseconds(), 1<<31-1)), EndpointID: d.EndpointID,
		Slow: took > w.cfg.SlowAfter,
	}
	if code != 0 {
		c := int32(code)
		p.StatusCode = &c
	}
	if msg := attemptError(code, sendErr); msg != "" {
		p.Error = &msg
	}
	return tenancy.WriteV(ctx, w.cfg.DB, scope, func(tx *tenancy.Tx) (db.RecordWebhookAttemptRow, error) {
		if err := tx.Q.DropWebhookLease(ctx, lease); err != nil {
			return db.RecordWebhookAttemptRow{}, err
		}
		if err := tx.Q.LockWebhookDelivery(ctx, d.ID); err != nil {
			return db.RecordWebhookAttemptRow{}, err
		}
		out, err := tx.Q.RecordWebhookAttempt(ctx, p)
		if errors.Is(err, pgx.ErrNoRows) {
			// Deleted meanwhile: nothing to record against.
			return db.RecordWebhookAttemptRow{Status: "canceled"}, nil
		}
		if err == nil && out.Status == "pending" {
			// The retry is a job of its own, in the lane of failing endpoints; this one is done.
			// Both commit with the attempt's record, or neither.
			if err := Enqueue(ctx, tx, next, DeliverArgs{Tenant: scope.Tenant, Delivery: d.ID, Round: d.Round, Attempt: out.Attempts, Failing: true}); err != nil {
				return out, err
			}
		}
		if err != nil || ok || !out.Enabled || out.FailingSince == nil || w.cfg.DisableAfter <= 0 ||
			time.Since(*out.FailingSince) < w.cfg.DisableAfter {
			return out, err
		}
		reason := fmt.Sprintf("every attempt failed since %s", out.FailingSince.UTC().Format(time.RFC3339))
		ep, err := tx.Q.DisableFailingWebhookEndpoint(ctx, db.DisableFailingWebhookEndpointParams{
			Reason: reason, ID: d.EndpointID, Since: time.Now().Add(-w.cfg.DisableAfter),
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if err := tx.Q.CancelEndpointDeliveries(ctx, ep.ID); err != nil {
			return out, err
		}
		tx.Record(tenancy.Entry{Action: "webhook_endpoint.disable", ResourceType: "webhook_endpoint", ResourceID: ep.ID,
			Data: map[string]any{"reason": reason, "failing_since": out.FailingSince, "url": ep.Url}})
		out.Enabled, out.Status = false, "canceled"
		return out, nil
	})
}

// attemptError says why an attempt failed, in words safe to show the tenant's admins: never
// a response body, an address, or what a name resolved to. A name that does not resolve and
// one that resolves to a refused address read the same, so that pings cannot map a private
// network's names.
func attemptError(code int, err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case err == nil && (code < 200 || code >= 300):
		return fmt.Sprintf("the receiver answered %d", code)
	case err == nil:
		return ""
	case errors.Is(err, netguard.ErrNotPublic) || errors.As(err, &dnsErr):
		// Before timeouts: a lookup that timed out reads like any failed lookup.
		return "no public address to connect to (the name does not resolve, or only to refused addresses)"
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed before an answer"
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
		return "TLS handshake failed (the certificate must be valid for the host)"
	case errors.As(err, &opErr):
		return "connection failed"
	}
	return "the request failed"
}

// Config is how deliveries are made.
type Config struct {
	// DB runs the deliveries' transactions; the dispatcher's must queue jobs (WithJobs).
	DB  *tenancy.DB
	Box *secretbox.Box
	// Guard decides where deliveries may go and bounds each attempt.
	Guard Guard
	Retry Retry
	// Concurrency is how many attempts to one endpoint may be in flight across all servers.
	Concurrency int
	// TenantConcurrency is how many attempts of one tenant may be in flight across all
	// servers, so that one tenant's slow endpoints cannot hold every worker.
	TenantConcurrency int
	// DisableAfter disables an endpoint whose attempts have all failed for this long (0: never).
	DisableAfter time.Duration
	// Workers is how many first attempts this server sends at once, and RetryWorkers how many
	// attempts to failing endpoints (retries, and what is queued for an endpoint that fails).
	Workers, RetryWorkers int
	// Sweep is how often the dispatcher looks for events no wake-up announced.
	Sweep time.Duration
	// Retention is how long finished deliveries are kept (30 days when zero).
	Retention time.Duration
	// SlowAfter marks an endpoint slow when an attempt takes longer (2 s when zero): its next
	// deliveries go to the lane of failing endpoints, so slow receivers, even successful ones,
	// hold none of the workers of others' first attempts.
	SlowAfter time.Duration
	// Queue is the River queue of deliveries (Queue when empty); servers sharing a database
	// must share it, and the encryption key.
	Queue  string
	Logger *slog.Logger
}

func (g Guard) timeout() time.Duration {
	if g.Timeout <= 0 {
		return 10 * time.Second
	}
	return g.Timeout
}
