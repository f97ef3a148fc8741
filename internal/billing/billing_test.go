package billing

import (
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/tasker/tasker/gen/db"
)

func TestParseLimits(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Limits
		err  string
	}{
		{"seats=5 projects=10 storage=1GiB", Limits{5, 10, 1 << 30}, ""},
		{"seats=unlimited,projects=0,storage=512", Limits{Unlimited, 0, 512}, ""},
		{"storage=2TiB seats=1 projects=unlimited", Limits{1, Unlimited, 2 << 40}, ""},
		{"seats=5 projects=10", Limits{}, "storage missing"},
		{"seats=-1 projects=1 storage=1", Limits{}, "not a count"},
		{"seats=1 projects=1 storage=1PiB", Limits{}, "not a size"},
		{"seats=1 projects=1 storage=9000000TiB", Limits{}, "not a size"},
		{"seats=1 projects=1 storage=1 teams=3", Limits{}, "unknown limit"},
		{"seats", Limits{}, "want name=value"},
	} {
		got, err := ParseLimits(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParsePricesTakesTheFirstPriceOfAPlanForCheckout(t *testing.T) {
	prices, checkout, err := ParsePrices("price_a:pro, price_b:enterprise,price_c:pro")
	if err != nil || prices["price_c"] != Pro || prices["price_b"] != Enterprise || checkout[Pro] != "price_a" || checkout[Enterprise] != "price_b" {
		t.Fatalf("%v %v %v", prices, checkout, err)
	}
	for _, bad := range []string{"price_a", "price_a:free", "price_a:gold", ":pro", "price_a:pro,price_a:enterprise"} {
		if _, _, err := ParsePrices(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func testCatalog() *Catalog {
	return &Catalog{
		Limits: map[Plan]Limits{Free: {5, 3, 100}, Pro: {50, Unlimited, 1000}, Enterprise: {Unlimited, Unlimited, Unlimited}},
		Prices: map[string]Plan{"price_pro": Pro}, PastDueGrace: 24 * time.Hour,
	}
}

func TestEffectivePlan(t *testing.T) {
	c := testCatalog()
	now := time.Now()
	q := func(n int64) *int64 { return &n }
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	for _, tc := range []struct {
		name  string
		sub   db.BillingSubscription
		plan  Plan
		seats int64
	}{
		{"no subscription", db.BillingSubscription{Status: "none", Plan: "free"}, Free, 5},
		// The quantity is shown, not enforced: the plan's limits decide.
		{"active, 7 seats bought", db.BillingSubscription{Status: "active", Plan: "pro", Quantity: q(7)}, Pro, 50},
		{"trialing", db.BillingSubscription{Status: "trialing", Plan: "pro"}, Pro, 50},
		{"past_due within grace", db.BillingSubscription{Status: "past_due", Plan: "pro", PastDueSince: ago(time.Hour)}, Pro, 50},
		{"past_due beyond grace", db.BillingSubscription{Status: "past_due", Plan: "pro", PastDueSince: ago(25 * time.Hour)}, Free, 5},
		{"canceled", db.BillingSubscription{Status: "canceled", Plan: "enterprise"}, Free, 5},
		{"unpaid", db.BillingSubscription{Status: "unpaid", Plan: "pro"}, Free, 5},
		{"paused", db.BillingSubscription{Status: "paused", Plan: "pro"}, Free, 5},
		{"incomplete", db.BillingSubscription{Status: "incomplete", Plan: "pro"}, Free, 5},
	} {
		plan, l := c.Allowed(tc.sub, now)
		if plan != tc.plan || l.Seats != tc.seats {
			t.Errorf("%s: %s with %d seats, want %s with %d", tc.name, plan, l.Seats, tc.plan, tc.seats)
		}
	}
}

// TestCurrentDependsOnTheSetNotTheOrder: whatever order the subscriptions are listed in, the
// one that grants its plan wins over ended ones, and the better plan over the newer state.
func TestCurrentDependsOnTheSetNotTheOrder(t *testing.T) {
	at := func(s int) *time.Time { t := time.Unix(int64(1700000000+s), 0); return &t }
	ended := db.StripeSubscription{ID: "sub_old", Status: "canceled", Plan: "enterprise", StateAt: at(300)}
	live := db.StripeSubscription{ID: "sub_live", Status: "active", Plan: "pro", StateAt: at(100)}
	better := db.StripeSubscription{ID: "sub_better", Status: "trialing", Plan: "enterprise", StateAt: at(50)}
	linked := db.StripeSubscription{ID: "sub_linked", Status: "incomplete", Plan: "free"}
	c := testCatalog()
	now := time.Unix(1700001000, 0)
	for _, order := range [][]db.StripeSubscription{
		{ended, live, better, linked}, {linked, better, live, ended}, {live, linked, ended, better},
	} {
		if got := c.Current(order, now); got == nil || got.ID != "sub_better" {
			t.Errorf("current of %v: %v", order, got)
		}
	}
	if got := c.Current([]db.StripeSubscription{ended, linked}, now); got.ID != "sub_linked" {
		t.Errorf("a linked subscription not paid yet comes before an ended one: %v", got.ID)
	}
	if c.Current(nil, now) != nil {
		t.Error("no subscriptions, yet a current one")
	}
	// A past_due subscription beyond its grace grants nothing: a paid one comes first, whatever
	// its plan.
	overdue := db.StripeSubscription{ID: "sub_overdue", Status: "past_due", Plan: "enterprise", PastDueSince: at(-2 * 86400), StateAt: at(900)}
	paid := db.StripeSubscription{ID: "sub_paid", Status: "active", Plan: "pro", StateAt: at(100)}
	if got := c.Current([]db.StripeSubscription{overdue, paid}, now); got.ID != "sub_paid" {
		t.Errorf("an overdue subscription hid a paid one: %v", got.ID)
	}
	recent := overdue
	recent.PastDueSince = at(900)
	if got := c.Current([]db.StripeSubscription{paid, recent}, now); got.ID != "sub_overdue" {
		t.Errorf("within its grace, the better plan comes first: %v", got.ID)
	}
}

func TestReadParksWhatIsNotStripes(t *testing.T) {
	now := time.Now()
	ok := func() *stripe.Event {
		return &stripe.Event{ID: "evt_1", Type: "customer.subscription.updated", APIVersion: stripe.APIVersion, Created: now.Unix(),
			Data: &stripe.EventData{Raw: []byte(`{"id":"sub_1","object":"subscription","status":"active","customer":"cus_1","metadata":{}}`)}}
	}
	if e, err := Read(ok(), now); err != nil || e.Sub == nil || e.Customer != "cus_1" || e.Subscription != "sub_1" {
		t.Fatalf("a plain event: %+v %v", e, err)
	}
	for name, spoil := range map[string]func(*stripe.Event){
		"another release":      func(e *stripe.Event) { e.APIVersion = "2026-08-26.dahlia" },
		"no release name":      func(e *stripe.Event) { e.APIVersion = "2024-06-20" },
		"unknown status":       func(e *stripe.Event) { e.Data.Raw = []byte(`{"id":"sub_1","status":"frozen"}`) },
		"created a year ahead": func(e *stripe.Event) { e.Created = now.AddDate(1, 0, 0).Unix() },
		"created after 9999":   func(e *stripe.Event) { e.Created = maxUnix + 1 },
		"id with a space":      func(e *stripe.Event) { e.ID = "evt 1" },
		"long id":              func(e *stripe.Event) { e.ID = strings.Repeat("e", 256) },
		"object is an array":   func(e *stripe.Event) { e.Data.Raw = []byte(`[1,2]`) },
		"no data":              func(e *stripe.Event) { e.Data = nil },
		"customer not plain": func(e *stripe.Event) {
			e.Data.Raw = []byte(`{"id":"sub_1","status":"active","customer":"cus 1"}`)
		},
		"trial_end past 9999": func(e *stripe.Event) {
			e.Data.Raw = []byte(`{"id":"sub_1","status":"active","trial_end":9223372036854775807}`)
		},
	} {
		ev := ok()
		spoil(ev)
		if _, err := Read(ev, now); err == nil || !strings.Contains(err.Error(), ErrUnreadable.Error()) {
			t.Errorf("%s: %v, want ErrUnreadable", name, err)
		}
	}
	unknown := ok()
	unknown.Type = "customer.created"
	if e, err := Read(unknown, now); err != nil || e.Handled() {
		t.Errorf("an unknown type is read as nothing to do: %+v %v", e, err)
	}
}
