package billing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v82"

	"github.com/tasker/tasker/gen/db"
)

// Outcomes of a Stripe event, as recorded in stripe_events.
const (
	Applied   = "applied"
	Stale     = "stale"
	Ignored   = "ignored"
	Unmatched = "unmatched"
	Conflict  = "conflict"
	Parked    = "parked"
)

// ErrUnreadable is an event this build cannot read: an API version of another release than
// stripe-go's, or an object that does not decode. It is parked, never acknowledged.
var ErrUnreadable = errors.New("billing: unreadable Stripe event")

// Event is a Stripe event as billing reads it.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Created    time.Time
	Livemode   bool
	// Tenant is the tenant the event names itself (client_reference_id or metadata.tenant_id),
	// uuid.Nil when it names none; otherwise the tenant is looked up by Subscription, then
	// Customer.
	Tenant       uuid.UUID
	Customer     string
	Subscription string
	// PreviousStatus is the subscription's status before the event, when the event changed it
	// (data.previous_attributes.status); empty otherwise.
	PreviousStatus string
	// Exactly one of these is set for a handled type; none for others.
	Checkout *stripe.CheckoutSession
	Sub      *stripe.Subscription
	Invoice  *stripe.Invoice
}

// Handled reports whether billing acts on events of the type.
func (e Event) Handled() bool { return e.Checkout != nil || e.Sub != nil || e.Invoice != nil }

// Readable reports whether stripe-go can read an event of API version v: the same release
// ("basil" of 2025-08-27.basil) as the version it is pinned to.
func Readable(v string) bool {
	_, want, _ := strings.Cut(stripe.APIVersion, ".")
	_, got, ok := strings.Cut(v, ".")
	return ok && got == want
}

// maxUnix is the last second of year 9999, past which no Stripe time is real.
const maxUnix = 253402300799

// Read decodes a Stripe event (already authenticated) into an Event. A type billing does not
// act on comes back with nothing but its envelope; an unreadable one is ErrUnreadable: one
// whose ids, status or times are not what Stripe sends (too long, not text, a status this build
// does not know, a time before 1970 or after 9999, created more than a day after now).
func Read(ev *stripe.Event, now time.Time) (Event, error) {
	e := Event{ID: ev.ID, Type: string(ev.Type), APIVersion: ev.APIVersion, Created: time.Unix(ev.Created, 0).UTC(), Livemode: ev.Livemode}
	if ev.ID == "" || ev.Type == "" || ev.Created <= 0 || ev.Created > maxUnix {
		return e, fmt.Errorf("%w: id, type or created missing or out of range", ErrUnreadable)
	}
	if !plainID(ev.ID) || !plainID(string(ev.Type)) || !plainID(ev.APIVersion) || len(ev.APIVersion) > 64 {
		return e, fmt.Errorf("%w: id, type or api_version is not a short plain string", ErrUnreadable)
	}
	if e.Created.After(now.Add(24 * time.Hour)) {
		return e, fmt.Errorf("%w: created %s is more than a day ahead", ErrUnreadable, e.Created)
	}
	if !Readable(ev.APIVersion) {
		return e, fmt.Errorf("%w: API version %q, this build reads %s", ErrUnreadable, ev.APIVersion, stripe.APIVersion)
	}
	var raw json.RawMessage
	if ev.Data != nil {
		raw = ev.Data.Raw
	}
	decode := func(v any) error {
		if len(raw) == 0 {
			return fmt.Errorf("%w: %s without data.object", ErrUnreadable, e.Type)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrUnreadable, e.Type, err)
		}
		return nil
	}
	switch e.Type {
	case "checkout.session.completed":
		var s stripe.CheckoutSession
		if err := decode(&s); err != nil {
			return e, err
		}
		if s.Mode != stripe.CheckoutSessionModeSubscription {
			return e, nil // a one-off payment: nothing of ours
		}
		e.Checkout = &s
		e.Tenant = tenantOf(s.ClientReferenceID, s.Metadata)
		e.Customer = idOf(s.Customer)
		if s.Subscription != nil {
			e.Subscription = s.Subscription.ID
		}
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
		"customer.subscription.paused", "customer.subscription.resumed", "customer.subscription.trial_will_end":
		var s stripe.Subscription
		if err := decode(&s); err != nil {
			return e, err
		}
		if s.ID == "" {
			return e, fmt.Errorf("%w: %s without a subscription id", ErrUnreadable, e.Type)
		}
		if !knownStatus(string(s.Status)) {
			return e, fmt.Errorf("%w: subscription status %q", ErrUnreadable, s.Status)
		}
		if s.TrialEnd < 0 || s.TrialEnd > maxUnix {
			return e, fmt.Errorf("%w: trial_end out of range", ErrUnreadable)
		}
		if s.Items != nil {
			for _, it := range s.Items.Data {
				if it == nil || it.Quantity < 0 || it.CurrentPeriodEnd < 0 || it.CurrentPeriodEnd > maxUnix ||
					(it.Price != nil && !plainID(it.Price.ID)) {
					return e, fmt.Errorf("%w: a subscription item out of range", ErrUnreadable)
				}
			}
		}
		e.Sub = &s
		if prev, ok := ev.Data.PreviousAttributes["status"].(string); ok && prev != string(s.Status) {
			e.PreviousStatus = prev
		}
		e.Tenant = tenantOf("", s.Metadata)
		e.Customer = idOf(s.Customer)
		e.Subscription = s.ID
	case "invoice.paid", "invoice.payment_failed":
		var in stripe.Invoice
		if err := decode(&in); err != nil {
			return e, err
		}
		e.Invoice = &in
		e.Customer = idOf(in.Customer)
		if in.Parent != nil && in.Parent.SubscriptionDetails != nil {
			d := in.Parent.SubscriptionDetails
			e.Tenant = tenantOf("", d.Metadata)
			if d.Subscription != nil {
				e.Subscription = d.Subscription.ID
			}
		}
	}
	for _, id := range []string{e.Customer, e.Subscription} {
		if id != "" && !plainID(id) {
			return e, fmt.Errorf("%w: a customer or subscription id is not a short plain string", ErrUnreadable)
		}
	}
	return e, nil
}

// Parkable is e's envelope as it can be stored: an id, type or API version that is not a short
// plain string (plainID) is replaced, the id by one made of the body's hash, so that an event
// however malformed is kept and counted.
func Parkable(e Event, body []byte) Event {
	if e.ID == "" || !plainID(e.ID) {
		sum := sha256.Sum256(body)
		e.ID = "unreadable_" + hex.EncodeToString(sum[:16])
	}
	if !plainID(e.Type) {
		e.Type = "unreadable"
	}
	if !plainID(e.APIVersion) || len(e.APIVersion) > 64 {
		e.APIVersion = "unreadable"
	}
	if e.Created.Unix() <= 0 || e.Created.Unix() > maxUnix {
		e.Created = time.Now().UTC()
	}
	return e
}

// plainID reports whether s is what Stripe's ids, types and versions are: short printable
// ASCII (so it fits its column and any header or log line).
func plainID(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// knownStatus reports whether status is a subscription status of the API release we read.
func knownStatus(status string) bool {
	switch status {
	case "incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused":
		return true
	}
	return false
}

func idOf(c *stripe.Customer) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// tenantOf is the tenant an object names: client_reference_id, else metadata.tenant_id; Nil
// when neither is a tenant id.
func tenantOf(ref string, metadata map[string]string) uuid.UUID {
	for _, s := range []string{ref, metadata["tenant_id"]} {
		if id, err := uuid.Parse(s); err == nil && s != "" {
			return id
		}
	}
	return uuid.Nil
}

// rank orders events of the same second: a subscription's creation comes before its changes,
// and its deletion after them, so equal timestamps still never move it backwards. Two changes
// in the same second are applied in the order they arrive: Stripe gives nothing finer.
func rank(eventType string) int16 {
	switch eventType {
	case "customer.subscription.created":
		return 1
	case "customer.subscription.deleted":
		return 3
	}
	return 2
}

// Change is what applying an event does.
type Change struct {
	Outcome string
	// Customer is the Stripe customer to link to the tenant, if it has none yet.
	Customer string
	// Link is a subscription a checkout names, to be the tenant's before its own events come.
	Link string
	// Sub is the subscription's new state, for subscription events.
	Sub *db.SaveStripeSubscriptionParams
	// Invoice is the last invoice's outcome, for invoice events.
	Invoice *InvoiceChange
	// Notice is the type of the billing.* event to emit when applied.
	Notice string
	// UnknownPrice is set when no item's price is in the catalog.
	UnknownPrice string
}

// InvoiceChange is the last invoice's outcome.
type InvoiceChange struct {
	Status  string
	At      time.Time
	EventID string
}

// Apply works out what event e does, given the tenant's billing row and the stored state of
// the subscription e is about (nil: none yet): Stale when e is older than that state, Applied
// with the new state otherwise. It reads nothing but its arguments.
func (c *Catalog) Apply(cur db.BillingSubscription, prev *db.StripeSubscription, e Event) Change {
	ch := Change{Outcome: Applied, Customer: e.Customer}
	switch {
	case e.Checkout != nil:
		ch.Link = e.Subscription
		ch.Notice = "billing.checkout.completed"
	case e.Sub != nil:
		if prev != nil && prev.StateAt != nil &&
			(e.Created.Before(*prev.StateAt) || e.Created.Equal(*prev.StateAt) && rank(e.Type) < prev.StateRank) {
			return Change{Outcome: Stale}
		}
		ch.Sub = c.subscriptionState(prev, e, &ch)
		ch.Notice = "billing.subscription.updated"
		if e.Type == "customer.subscription.trial_will_end" {
			ch.Notice = "billing.trial_will_end"
		}
	case e.Invoice != nil:
		if cur.InvoiceAt != nil && e.Created.Before(*cur.InvoiceAt) {
			return Change{Outcome: Stale}
		}
		ch.Invoice = &InvoiceChange{Status: "paid", At: e.Created, EventID: e.ID}
		ch.Notice = "billing.invoice.paid"
		if e.Type == "invoice.payment_failed" {
			ch.Invoice.Status, ch.Notice = "payment_failed", "billing.invoice.payment_failed"
		}
	default:
		return Change{Outcome: Ignored}
	}
	return ch
}

// subscriptionState is the stored state of e's subscription after e. The plan comes from the
// item whose price buys the best plan (one item in practice); an unknown price buys free.
func (c *Catalog) subscriptionState(prev *db.StripeSubscription, e Event, ch *Change) *db.SaveStripeSubscriptionParams {
	s := e.Sub
	at := e.Created
	next := &db.SaveStripeSubscriptionParams{
		ID: s.ID, Status: string(s.Status), Plan: string(Free), CancelAtPeriodEnd: s.CancelAtPeriodEnd || s.CancelAt > 0,
		TrialEnd: unixOrNil(s.TrialEnd), StateEventID: &e.ID, StateAt: &at, StateRank: rank(e.Type),
	}
	if e.Customer != "" {
		next.CustomerID = &e.Customer
	}
	var best *stripe.SubscriptionItem
	bestPlan := Plan("")
	if s.Items != nil {
		for _, it := range s.Items.Data {
			plan, ok := Free, false
			if it.Price != nil {
				plan, ok = c.PlanOfPrice(it.Price.ID)
			}
			if best == nil || ok && planRank(plan) > planRank(bestPlan) {
				best, bestPlan = it, plan
			}
		}
	}
	if best != nil {
		q := best.Quantity
		next.Quantity, next.CurrentPeriodEnd, next.Plan = &q, unixOrNil(best.CurrentPeriodEnd), string(bestPlan)
		if best.Price != nil {
			next.PriceID = &best.Price.ID
			if _, ok := c.PlanOfPrice(best.Price.ID); !ok {
				ch.UnknownPrice = best.Price.ID
			}
		}
	}
	// The grace runs from the event that turned the subscription past_due: one whose
	// previous_attributes name another status. Without that, from the stored state's start if
	// it was past_due already, else from this event (the earliest known).
	if next.Status == "past_due" {
		next.PastDueSince = &at
		if e.PreviousStatus == "" && prev != nil && prev.Status == "past_due" && prev.PastDueSince != nil {
			next.PastDueSince = prev.PastDueSince
		}
	}
	return next
}

func planRank(p Plan) int {
	switch p {
	case Pro:
		return 1
	case Enterprise:
		return 2
	}
	return 0
}

// standing ranks a subscription for choosing the tenant's current one at now: one that grants
// its plan now (active, trialing, past_due within the grace), then one in force that does not
// (past_due beyond the grace, unpaid, paused), then one not yet paid, then an ended one.
func (c *Catalog) standing(s *db.StripeSubscription, now time.Time) int {
	if c.grants(s.Status, s.PastDueSince, now) {
		return 3
	}
	switch s.Status {
	case "past_due", "unpaid", "paused":
		return 2
	case "incomplete":
		return 1
	}
	return 0
}

// Current chooses the tenant's current subscription at now among all of its subscriptions
// (nil when none): the best standing, then the best plan, then the newest state. It depends on
// the set alone, never on the order events arrived in, so a late event of an old subscription
// cannot displace a newer one for good.
func (c *Catalog) Current(subs []db.StripeSubscription, now time.Time) *db.StripeSubscription {
	var cur *db.StripeSubscription
	for i := range subs {
		s := &subs[i]
		if cur == nil || c.better(s, cur, now) {
			cur = s
		}
	}
	return cur
}

func (c *Catalog) better(a, b *db.StripeSubscription, now time.Time) bool {
	if x, y := c.standing(a, now), c.standing(b, now); x != y {
		return x > y
	}
	if x, y := planRank(Plan(a.Plan)), planRank(Plan(b.Plan)); x != y {
		return x > y
	}
	at, bt := a.CreatedAt, b.CreatedAt
	if a.StateAt != nil {
		at = *a.StateAt
	}
	if b.StateAt != nil {
		bt = *b.StateAt
	}
	if !at.Equal(bt) {
		return at.After(bt)
	}
	return a.ID > b.ID
}

// WithState is subs with the subscription saved as next: replaced in place, or added (made at
// now) when it is new, as the database now holds them.
func WithState(subs []db.StripeSubscription, next db.SaveStripeSubscriptionParams, now time.Time) []db.StripeSubscription {
	row := db.StripeSubscription{
		TenantID: next.TenantID, ID: next.ID, CustomerID: next.CustomerID, Status: next.Status, Plan: next.Plan,
		PriceID: next.PriceID, Quantity: next.Quantity, CurrentPeriodEnd: next.CurrentPeriodEnd,
		CancelAtPeriodEnd: next.CancelAtPeriodEnd, TrialEnd: next.TrialEnd, PastDueSince: next.PastDueSince,
		StateEventID: next.StateEventID, StateAt: next.StateAt, StateRank: next.StateRank, CreatedAt: now,
	}
	for i := range subs {
		if subs[i].ID == next.ID {
			row.CreatedAt = subs[i].CreatedAt
			if row.CustomerID == nil {
				row.CustomerID = subs[i].CustomerID
			}
			subs[i] = row
			return subs
		}
	}
	return append(subs, row)
}

// Summary is the tenant's billing row with cur (nil: none) as its current subscription.
func Summary(row db.BillingSubscription, cur *db.StripeSubscription) db.SaveBillingSubscriptionParams {
	p := db.SaveBillingSubscriptionParams{
		TenantID: row.TenantID, CustomerID: row.CustomerID, Status: "none", Plan: string(Free),
		InvoiceStatus: row.InvoiceStatus, InvoiceAt: row.InvoiceAt, InvoiceEventID: row.InvoiceEventID,
	}
	if cur == nil {
		return p
	}
	p.SubscriptionID, p.Status, p.Plan, p.PriceID, p.Quantity = &cur.ID, cur.Status, cur.Plan, cur.PriceID, cur.Quantity
	p.CurrentPeriodEnd, p.CancelAtPeriodEnd, p.TrialEnd, p.PastDueSince = cur.CurrentPeriodEnd, cur.CancelAtPeriodEnd, cur.TrialEnd, cur.PastDueSince
	p.StateEventID, p.StateAt = cur.StateEventID, cur.StateAt
	return p
}

func unixOrNil(s int64) *time.Time {
	if s <= 0 {
		return nil
	}
	t := time.Unix(s, 0).UTC()
	return &t
}
