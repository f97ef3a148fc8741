package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
	"github.com/tasker/tasker/internal/tenancy"
)

// Duplicate is the outcome answered for an event id recorded before.
const Duplicate = "duplicate"

// StripeEvents applies Stripe events to tenants' subscriptions: the webhook (ServeHTTP) and the
// reconciler (Apply) share it, so an event takes the same path however it arrives.
type StripeEvents struct {
	db      *tenancy.DB
	config  BillingConfig
	logger  *slog.Logger
	handled *prometheus.CounterVec
	// reading bounds the bodies read at once (webhookReaders), so requests that pass the
	// header check cannot hold more than that many bodies in memory.
	reading chan struct{}
	// readers counts the bodies being read per client IP (at most webhookReadersPerIP), so
	// one client's stalled bodies cannot take every slot.
	mu      sync.Mutex
	readers map[string]int
}

// Webhook bodies: at most webhookReaders read at once, webhookReadersPerIP of them from one
// client IP; more wait up to webhookWait (or, over the per-IP cap, not at all), then get 503
// (Stripe retries). A body must arrive within webhookReadTimeout (BillingConfig.WebhookReadTimeout
// when set). Stripe delivers a few small events a second per account, each in one go.
const (
	webhookReaders      = 64
	webhookReadersPerIP = 8
	webhookWait         = 5 * time.Second
	webhookReadTimeout  = 10 * time.Second
)

// claimReader takes one of ip's reading slots, or reports that it has none left.
func (h *StripeEvents) claimReader(ip string) (release func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readers[ip] >= webhookReadersPerIP {
		return nil, false
	}
	h.readers[ip]++
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.readers[ip]--; h.readers[ip] == 0 {
			delete(h.readers, ip)
		}
	}, true
}

// NewStripeEvents returns the Stripe event handler; reg, when not nil, gets its metrics.
func NewStripeEvents(store *tenancy.DB, cfg BillingConfig, logger *slog.Logger, reg prometheus.Registerer) *StripeEvents {
	h := &StripeEvents{db: store, config: cfg, logger: logger, reading: make(chan struct{}, webhookReaders), readers: map[string]int{},
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tasker_stripe_events_total",
			Help: "Stripe events received, by outcome (applied, duplicate, stale, ignored, unmatched, conflict, parked, failed).",
		}, []string{"outcome"})}
	if reg != nil {
		reg.MustRegister(h.handled, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tasker_stripe_events_parked",
			Help: "Stripe events stored as parked (unreadable by this build) in the database, whoever parked them.",
		}, h.parkedEvents))
	}
	return h
}

// parkedEvents counts the parked events in the database, for the gauge: the counter of this
// process misses those parked by others (billing-reconcile, other instances).
func (h *StripeEvents) parkedEvents() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n int64
	err := h.db.System(ctx, func(q *db.Queries) error {
		var err error
		n, err = q.StripeParkedEvents(ctx)
		return err
	})
	if err != nil {
		return -1
	}
	return float64(n)
}

// errDuplicate rolls back the transaction of an event recorded before.
var errDuplicate = errors.New("stripe event recorded before")

// ServeHTTP is POST /webhooks/stripe. The signature is checked over the bytes as received,
// before anything decodes them; nothing is stored for a request that fails it.
func (h *StripeEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) { problem.Write(w, r, reqinfo.RequestID(r.Context()), err) }
	if len(h.config.WebhookSecrets) == 0 {
		fail(problem.New(problem.Unavailable, "Stripe webhooks are not configured on this server (no STRIPE_WEBHOOK_SECRET)."))
		return
	}
	// The header is checked before the body is read: a request without a current signature
	// costs no buffer.
	header := r.Header.Get("Stripe-Signature")
	// Real time, as stripe-go's own check uses (Now is the clock of plans).
	if err := h.precheck(header, time.Now()); err != nil {
		w.Header().Set("Connection", "close")
		fail(err)
		return
	}
	busy := func() {
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Connection", "close")
		fail(problem.New(problem.Unavailable, "Too many Stripe events are being read at once; retry later."))
	}
	ip, _ := reqinfo.Client(r.Context())
	release, ok := h.claimReader(ip)
	if !ok {
		busy()
		return
	}
	defer release()
	select {
	case h.reading <- struct{}{}:
		defer func() { <-h.reading }()
	case <-time.After(webhookWait):
		busy()
		return
	case <-r.Context().Done():
		return
	}
	// A body that trickles in holds its slot no longer than this.
	readTimeout := h.config.WebhookReadTimeout
	if readTimeout <= 0 {
		readTimeout = webhookReadTimeout
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(readTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.config.WebhookMaxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			w.Header().Set("Connection", "close")
			fail(problem.New(problem.TooLarge, "A Stripe event may be at most %d bytes.", h.config.WebhookMaxBytes))
			return
		}
		w.Header().Set("Connection", "close")
		fail(problem.Wrap(problem.Invalid, err, "The body could not be read in time."))
		return
	}
	if err := h.verify(body, header); err != nil {
		h.logger.InfoContext(r.Context(), "stripe webhook refused", "err", err)
		fail(err)
		return
	}
	var ev stripe.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		// Signed by Stripe yet unreadable: parked under a name of its own, never acknowledged.
		ev = stripe.Event{Type: "unparsed"}
	}
	outcome, err := h.Apply(r.Context(), body, &ev)
	if err != nil {
		// Never a 4xx once the signature holds: the event is Stripe's, and it must retry.
		if pe := problem.As(err); pe.Kind != problem.Unavailable {
			err = problem.Wrap(problem.Internal, err, "")
		}
		fail(err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": ev.ID, "outcome": outcome})
}

// maxSignatureHeader bounds the Stripe-Signature header: a timestamp and a few signatures.
const maxSignatureHeader = 4096

// precheck refuses, before the body is read, a Stripe-Signature header that is missing,
// too long, without a timestamp or a v1 signature, or whose timestamp is outside the tolerance
// either way (stripe-go bounds only the past).
func (h *StripeEvents) precheck(header string, now time.Time) error {
	if header == "" {
		return problem.New(problem.Invalid, "The Stripe-Signature header is missing.")
	}
	if len(header) > maxSignatureHeader {
		return problem.New(problem.Invalid, "The Stripe-Signature header is longer than %d bytes.", maxSignatureHeader)
	}
	var ts int64
	var stamped, signed bool
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return problem.New(problem.Invalid, "The Stripe-Signature header is malformed.")
			}
			ts, stamped = n, true
		case "v1":
			signed = true
		}
	}
	if !stamped || !signed {
		return problem.New(problem.Invalid, "The Stripe-Signature header is malformed.")
	}
	tol := int64(h.config.WebhookTolerance / time.Second)
	switch {
	case ts < now.Unix()-tol:
		return problem.New(problem.Invalid, "The Stripe-Signature timestamp is older than the tolerance of %s.", h.config.WebhookTolerance)
	case ts > now.Unix()+tol:
		return problem.New(problem.Invalid, "The Stripe-Signature timestamp is more than %s ahead.", h.config.WebhookTolerance)
	}
	return nil
}

// verify checks the Stripe-Signature header against every configured secret.
func (h *StripeEvents) verify(body []byte, header string) error {
	if header == "" {
		return problem.New(problem.Invalid, "The Stripe-Signature header is missing.")
	}
	tolerance := h.config.WebhookTolerance
	stale := false
	for _, secret := range h.config.WebhookSecrets {
		err := webhook.ValidatePayloadWithTolerance(body, header, secret, tolerance)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, webhook.ErrTooOld):
			stale = true
		case errors.Is(err, webhook.ErrInvalidHeader), errors.Is(err, webhook.ErrNotSigned):
			return problem.Wrap(problem.Invalid, err, "The Stripe-Signature header is malformed.")
		}
	}
	if stale {
		return problem.New(problem.Invalid, "The Stripe-Signature timestamp is older than the tolerance of %s.", tolerance)
	}
	return problem.New(problem.Invalid, "The Stripe-Signature matches no signing secret.")
}

// Apply applies one authenticated Stripe event, whose body as received is payload, and returns
// its outcome. The event id is recorded in the transaction of its effect, so a duplicate or a
// concurrent second delivery changes nothing; an error means nothing of it was kept, except
// billing.ErrUnreadable, whose event is parked.
func (h *StripeEvents) Apply(ctx context.Context, payload []byte, ev *stripe.Event) (string, error) {
	outcome, err := h.apply(ctx, payload, ev)
	switch {
	case errors.Is(err, billing.ErrUnreadable):
		h.handled.WithLabelValues(billing.Parked).Inc()
	case err != nil:
		h.handled.WithLabelValues("failed").Inc()
		h.logger.ErrorContext(ctx, "stripe event failed", "event", ev.ID, "type", ev.Type, "err", err)
	default:
		h.handled.WithLabelValues(outcome).Inc()
		h.logger.InfoContext(ctx, "stripe event", "event", ev.ID, "type", ev.Type, "outcome", outcome)
	}
	return outcome, err
}

func (h *StripeEvents) apply(ctx context.Context, payload []byte, ev *stripe.Event) (string, error) {
	e, err := billing.Read(ev, h.config.now())
	if err != nil {
		return h.park(ctx, payload, e, err)
	}
	record := func(q *db.Queries, tenant uuid.UUID, outcome string) (string, error) {
		p := db.RecordStripeEventParams{ID: e.ID, Type: e.Type, Created: e.Created, ApiVersion: e.APIVersion,
			Livemode: e.Livemode, Outcome: outcome, Payload: payload}
		if tenant != uuid.Nil {
			p.TenantID = &tenant
		}
		recorded, err := q.RecordStripeEvent(ctx, p)
		if err != nil {
			return "", fmt.Errorf("record stripe event: %w", err)
		}
		if !recorded {
			return Duplicate, errDuplicate
		}
		return outcome, nil
	}
	tenant := e.Tenant
	if tenant == uuid.Nil && e.Handled() && (e.Subscription != "" || e.Customer != "") {
		err := h.db.System(ctx, func(q *db.Queries) error {
			o, err := q.BillingOwners(ctx, db.BillingOwnersParams{SubscriptionID: e.Subscription, CustomerID: e.Customer})
			tenant = o.SubscriptionTenant
			if tenant == uuid.Nil {
				tenant = o.CustomerTenant
			}
			return err
		})
		if err != nil {
			return "", fmt.Errorf("find tenant: %w", err)
		}
	}
	if !e.Handled() || tenant == uuid.Nil {
		outcome := billing.Ignored
		if e.Handled() {
			outcome = billing.Unmatched
			h.logger.WarnContext(ctx, "stripe event names no tenant of ours", "event", e.ID, "type", e.Type,
				"customer", e.Customer, "subscription", e.Subscription)
		}
		return h.system(ctx, func(q *db.Queries) (string, error) { return record(q, uuid.Nil, outcome) })
	}
	outcome, err := tenancy.WriteV(ctx, h.db, tenancy.Scope{Tenant: tenant}, func(tx *tenancy.Tx) (string, error) {
		return h.applyToTenant(ctx, tx, tenant, e, func(outcome string) (string, error) { return record(tx.Q, tenant, outcome) })
	})
	if errors.Is(err, errDuplicate) {
		return Duplicate, nil
	}
	if errors.Is(err, errNoTenant) {
		// Metadata naming a tenant that is gone, or never was.
		return h.system(ctx, func(q *db.Queries) (string, error) { return record(q, uuid.Nil, billing.Unmatched) })
	}
	return outcome, err
}

// errNoTenant rolls back the transaction of an event naming a tenant that does not exist.
var errNoTenant = errors.New("stripe event names no tenant")

// applyToTenant applies e to tenant inside tx: it takes the tenant's billing lock, refuses
// Stripe ids that belong to another tenant, compares e with the stored state of its
// subscription, records the event (record) and, when applied, stores the new state, chooses
// the current subscription, and queues the audit entry and the billing.* event.
func (h *StripeEvents) applyToTenant(ctx context.Context, tx *tenancy.Tx, tenant uuid.UUID, e billing.Event, record func(string) (string, error)) (string, error) {
	q := tx.Q
	cur, err := q.LockBillingSubscription(ctx, tenant)
	if err != nil {
		if tenancy.IsForeignKeyViolation(err) {
			return "", errNoTenant
		}
		return "", err
	}
	// Stripe's ids belong to one tenant each: an event naming another tenant is not obeyed.
	o, err := q.BillingOwners(ctx, db.BillingOwnersParams{SubscriptionID: e.Subscription, CustomerID: e.Customer})
	if err != nil {
		return "", err
	}
	for _, owner := range []uuid.UUID{o.SubscriptionTenant, o.CustomerTenant} {
		if owner != uuid.Nil && owner != tenant {
			h.logger.WarnContext(ctx, "stripe event names another tenant than its customer's or subscription's", "event", e.ID,
				"named", tenant, "owner", owner)
			return record(billing.Conflict)
		}
	}
	// All of the tenant's subscriptions (a handful): the one e is about, and the set the
	// current one is chosen from once e is applied.
	subs, err := q.ListStripeSubscriptions(ctx)
	if err != nil {
		return "", err
	}
	var prev *db.StripeSubscription
	if i := slices.IndexFunc(subs, func(s db.StripeSubscription) bool { return s.ID == e.Subscription }); i >= 0 && e.Sub != nil {
		prev = &subs[i]
	}
	ch := h.config.Catalog.Apply(cur, prev, e)
	if _, err := record(ch.Outcome); err != nil {
		return "", err
	}
	if ch.Outcome != billing.Applied {
		return ch.Outcome, nil
	}
	if ch.UnknownPrice != "" {
		h.logger.WarnContext(ctx, "stripe price in no plan (STRIPE_PRICES): free limits apply", "price", ch.UnknownPrice, "event", e.ID)
	}
	if ch.Customer != "" && cur.CustomerID == nil {
		if cur.CustomerID, err = q.SetBillingCustomer(ctx, db.SetBillingCustomerParams{TenantID: tenant, CustomerID: &ch.Customer}); err != nil {
			return "", err
		}
	}
	now := h.config.now()
	switch {
	case ch.Link != "" && !slices.ContainsFunc(subs, func(s db.StripeSubscription) bool { return s.ID == ch.Link }):
		var customer *string
		if ch.Customer != "" {
			customer = &ch.Customer
		}
		if err := q.LinkStripeSubscription(ctx, db.LinkStripeSubscriptionParams{TenantID: tenant, ID: ch.Link, CustomerID: customer}); err != nil {
			return "", err
		}
		subs = append(subs, db.StripeSubscription{TenantID: tenant, ID: ch.Link, CustomerID: customer, Status: "incomplete",
			Plan: string(billing.Free), CreatedAt: now})
	case ch.Sub != nil:
		ch.Sub.TenantID = tenant
		if err := q.SaveStripeSubscription(ctx, *ch.Sub); err != nil {
			return "", err
		}
		subs = billing.WithState(subs, *ch.Sub, now)
	case ch.Invoice != nil:
		cur.InvoiceStatus, cur.InvoiceAt, cur.InvoiceEventID = &ch.Invoice.Status, &ch.Invoice.At, &ch.Invoice.EventID
	}
	summary := billing.Summary(cur, h.config.Catalog.Current(subs, now))
	summary.TenantPlan = string(h.config.Catalog.Effective(db.BillingSubscription{
		Status: summary.Status, Plan: summary.Plan, PastDueSince: summary.PastDueSince}, now))
	saved, err := q.SaveBillingSubscription(ctx, summary)
	if err != nil {
		return "", err
	}
	usage, err := q.BillingUsage(ctx)
	if err != nil {
		return "", err
	}
	out := billingToAPI(h.config.Catalog, saved, usage, now)
	tx.Changed(ch.Notice, tenancy.Entry{Action: "billing.update", ResourceType: resourceBilling, ResourceID: tenant,
		Data: map[string]any{"stripe_event": e.ID, "stripe_type": e.Type, "status": saved.Status, "plan": saved.Plan}}, uuid.Nil, out)
	return billing.Applied, nil
}

// resourceBilling is the audit resource of billing changes; its id is the tenant's.
const resourceBilling = "billing"

// park keeps an event this build cannot read, unless it was handled before (a reconciler that
// could read it, say), and returns billing.ErrUnreadable so it is never acknowledged.
func (h *StripeEvents) park(ctx context.Context, payload []byte, e billing.Event, cause error) (string, error) {
	e = billing.Parkable(e, payload)
	outcome, err := h.system(ctx, func(q *db.Queries) (string, error) {
		prev, err := q.StripeEventOutcome(ctx, e.ID)
		if err != nil {
			return "", err
		}
		if prev != "" && prev != billing.Parked {
			return Duplicate, nil
		}
		_, err = q.RecordStripeEvent(ctx, db.RecordStripeEventParams{ID: e.ID, Type: e.Type, Created: e.Created,
			ApiVersion: e.APIVersion, Livemode: e.Livemode, Outcome: billing.Parked, Payload: payload})
		return billing.Parked, err
	})
	if err != nil {
		return "", fmt.Errorf("park stripe event: %w", err)
	}
	if outcome == Duplicate {
		return Duplicate, nil
	}
	h.logger.ErrorContext(ctx, "stripe event parked: this build cannot read it; it is kept and answered 500 until one can",
		"event", e.ID, "type", e.Type, "api_version", e.APIVersion, "err", cause)
	return billing.Parked, cause
}

func (h *StripeEvents) system(ctx context.Context, fn func(q *db.Queries) (string, error)) (string, error) {
	var out string
	err := h.db.System(ctx, func(q *db.Queries) error {
		var err error
		out, err = fn(q)
		return err
	})
	if errors.Is(err, errDuplicate) {
		return Duplicate, nil
	}
	return out, err
}

// HandledStripeEvents are the event types billing acts on: what the webhook endpoint should
// subscribe to, and what the reconciler asks Stripe for.
var HandledStripeEvents = []string{
	"checkout.session.completed",
	"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
	"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end",
	"invoice.paid", "invoice.payment_failed",
}

// Reconciled is what a reconciliation did.
type Reconciled struct {
	Since time.Time
	// Listed is how many events Stripe listed; Outcomes counts them by outcome.
	Listed   int
	Outcomes map[string]int
}

// ReconcileWindow is how far back a reconciliation looks by default: the 30 days Stripe's event
// list keeps. Starting from the newest event handled would miss exactly the events it exists
// for: after an outage, Stripe's retries of newer events arrive before anyone reconciles.
const ReconcileWindow = 30 * 24 * time.Hour

// ErrParked is returned by Reconcile when some listed events could not be read (parked).
var ErrParked = errors.New("stripe events parked")

// Reconcile asks Stripe (through sc) for the handled events created since since, and applies
// them oldest first through Apply: the ones already recorded come back as duplicates and change
// nothing, so a reconciliation may run any time, as often as wanted. It stops at the first
// event that fails, leaving it and the newer ones for the next run, and returns ErrParked when
// events were parked (Stripe's event list renders them in the account's default API version,
// which must then be of the release this build reads).
func (h *StripeEvents) Reconcile(ctx context.Context, sc *stripe.Client, since time.Time) (Reconciled, error) {
	out := Reconciled{Since: since, Outcomes: map[string]int{}}
	params := &stripe.EventListParams{
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: since.Unix()},
		Types:        stripe.StringSlice(HandledStripeEvents),
	}
	params.Limit = stripe.Int64(100)
	var events []*stripe.Event
	for ev, err := range sc.V1Events.List(ctx, params) {
		if err != nil {
			return out, fmt.Errorf("list stripe events: %w", err)
		}
		events = append(events, ev)
	}
	out.Listed = len(events)
	// Stripe lists newest first; state moves forward only if the oldest is applied first.
	for i := len(events) - 1; i >= 0; i-- {
		ev := events[i]
		var seen string
		if err := h.db.System(ctx, func(q *db.Queries) error {
			var err error
			seen, err = q.StripeEventOutcome(ctx, ev.ID)
			return err
		}); err != nil {
			return out, fmt.Errorf("stripe event %s: %w", ev.ID, err)
		}
		if seen != "" && seen != billing.Parked {
			out.Outcomes[Duplicate]++ // recorded before: no transaction needed to know
			continue
		}
		payload, err := json.Marshal(ev)
		if err != nil {
			return out, fmt.Errorf("encode stripe event %s: %w", ev.ID, err)
		}
		outcome, err := h.Apply(ctx, payload, ev)
		if err != nil && !errors.Is(err, billing.ErrUnreadable) {
			return out, fmt.Errorf("apply stripe event %s: %w", ev.ID, err)
		}
		if err != nil {
			outcome = billing.Parked
		}
		out.Outcomes[outcome]++
	}
	if n := out.Outcomes[billing.Parked]; n > 0 {
		return out, fmt.Errorf("%w: %d of the listed events could not be read", ErrParked, n)
	}
	return out, nil
}
