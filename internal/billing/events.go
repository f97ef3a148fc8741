package billing

import (
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

// Read decodes a Stripe event (already authenticated) into an Event. A type billing does not
// act on comes back with nothing but its envelope; an unreadable one is ErrUnreadable.
func Read(ev *stripe.Event) (Event, error) {
	e := Event{ID: ev.ID, Type: string(ev.Type), APIVersion: ev.APIVersion, Created: time.Unix(ev.Created, 0).UTC(), Livemode: ev.Livemode}
	if ev.ID == "" || ev.Type == "" || ev.Created <= 0 {
		return e, fmt.Errorf("%w: id, type or created missing", ErrUnreadable)
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
		e.Sub = &s
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
	return e, nil
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
// and its deletion after them, so equal timestamps still never move it backwards.
func rank(eventType string) int16 {
	switch eventType {
	case "customer.subscription.created":
		return 1
	case "customer.subscription.deleted":
		return 3
	}
	return 2
}

// live reports whether a subscription status may still bill: a subscription in such a status
// is the tenant's current one, and a stale event of another, ended subscription never
// replaces it.
func live(status string) bool {
	switch status {
	case "none", "canceled", "incomplete_expired":
		return false
	}
	return true
}

// Change is what applying an event does to a tenant's stored subscription.
type Change struct {
	Outcome string
	// Save is the subscription to store when Outcome is Applied.
	Save db.SaveBillingSubscriptionParams
	// Notice is the type of the billing.* event to emit when applied.
	Notice string
	// Unknown price: the subscription's price is in no plan of the catalog.
	UnknownPrice string
}

// Apply works out what event e does to cur, the tenant's stored subscription, with the
// catalog c: Stale when e is older than the state it would change, Applied with the new state
// otherwise. It reads nothing but its arguments.
func (c *Catalog) Apply(cur db.BillingSubscription, e Event) Change {
	next := saveParams(cur)
	ch := Change{Outcome: Applied}
	link := func() {
		if e.Customer != "" && next.CustomerID == nil {
			next.CustomerID = &e.Customer
		}
	}
	switch {
	case e.Checkout != nil:
		link()
		if e.Subscription != "" && (next.SubscriptionID == nil || !live(cur.Status)) {
			next.SubscriptionID = &e.Subscription
		}
		ch.Notice = "billing.checkout.completed"
	case e.Sub != nil:
		s := e.Sub
		same := cur.SubscriptionID != nil && *cur.SubscriptionID == s.ID
		switch {
		case same && cur.StateAt != nil && (e.Created.Before(*cur.StateAt) || e.Created.Equal(*cur.StateAt) && rank(e.Type) < cur.StateRank):
			return Change{Outcome: Stale}
		case !same && cur.SubscriptionID != nil && live(cur.Status) && !live(string(s.Status)):
			// A late event of a subscription that ended does not replace the current one.
			return Change{Outcome: Stale}
		}
		link()
		next.SubscriptionID = &s.ID
		next.Status = string(s.Status)
		next.CancelAtPeriodEnd = s.CancelAtPeriodEnd || s.CancelAt > 0
		next.TrialEnd = unixOrNil(s.TrialEnd)
		next.PriceID, next.Quantity, next.CurrentPeriodEnd = nil, nil, nil
		next.Plan = string(Free)
		if s.Items != nil && len(s.Items.Data) > 0 {
			item := s.Items.Data[0]
			next.Quantity = &item.Quantity
			next.CurrentPeriodEnd = unixOrNil(item.CurrentPeriodEnd)
			if item.Price != nil {
				next.PriceID = &item.Price.ID
				plan, ok := c.PlanOfPrice(item.Price.ID)
				if !ok {
					ch.UnknownPrice = item.Price.ID
				}
				next.Plan = string(plan)
			}
		}
		switch {
		case next.Status != "past_due":
			next.PastDueSince = nil
		case cur.Status != "past_due" || cur.PastDueSince == nil || !same:
			t := e.Created
			next.PastDueSince = &t
		}
		t := e.Created
		next.StateEventID, next.StateAt, next.StateRank = &e.ID, &t, rank(e.Type)
		ch.Notice = "billing.subscription.updated"
		if e.Type == "customer.subscription.trial_will_end" {
			ch.Notice = "billing.trial_will_end"
		}
	case e.Invoice != nil:
		if cur.InvoiceAt != nil && e.Created.Before(*cur.InvoiceAt) {
			return Change{Outcome: Stale}
		}
		link()
		status := "paid"
		ch.Notice = "billing.invoice.paid"
		if e.Type == "invoice.payment_failed" {
			status, ch.Notice = "payment_failed", "billing.invoice.payment_failed"
		}
		t := e.Created
		next.InvoiceStatus, next.InvoiceAt, next.InvoiceEventID = &status, &t, &e.ID
	default:
		return Change{Outcome: Ignored}
	}
	ch.Save = next
	return ch
}

func unixOrNil(s int64) *time.Time {
	if s <= 0 {
		return nil
	}
	t := time.Unix(s, 0).UTC()
	return &t
}

func saveParams(s db.BillingSubscription) db.SaveBillingSubscriptionParams {
	return db.SaveBillingSubscriptionParams{
		TenantID: s.TenantID, CustomerID: s.CustomerID, SubscriptionID: s.SubscriptionID, Status: s.Status, Plan: s.Plan,
		PriceID: s.PriceID, Quantity: s.Quantity, CurrentPeriodEnd: s.CurrentPeriodEnd, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		TrialEnd: s.TrialEnd, PastDueSince: s.PastDueSince, StateEventID: s.StateEventID, StateAt: s.StateAt,
		StateRank: s.StateRank, InvoiceStatus: s.InvoiceStatus, InvoiceAt: s.InvoiceAt, InvoiceEventID: s.InvoiceEventID,
	}
}
