package handlers_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
)

// TestStripeWebhookAppliesEveryHandledType walks a subscription's life through every handled
// event type, checking the stored state, the audit log and the billing.* realtime events.
func TestStripeWebhookAppliesEveryHandledType(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	w := newWorkspace(t, env)
	tenant := w.Tenant.Id
	// billing.* events reach admins; the viewer's socket must see none of them.
	sock := env.MustDial(t, w.tokens[api.UserRoleAdmin])
	sock.Subscribe("tenant", nil)
	viewer := env.MustDial(t, w.tokens[api.UserRoleViewer])
	viewer.Subscribe("tenant", nil)
	cus, sub := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	periodEnd := t0.Add(30 * 24 * time.Hour).UTC()

	steps := []struct {
		event  *stripeEvent
		notice string
		check  func(s api.BillingSubscription) bool
	}{
		{newStripeEvent(t, "checkout.session.completed", t0).checkout(tenant, cus, sub), "billing.checkout.completed",
			// Linked, not yet paid for: the subscription's own events say more.
			func(s api.BillingSubscription) bool {
				return s.Status == "incomplete" && s.EffectivePlan == api.PlanFree
			}},
		{newStripeEvent(t, "customer.subscription.created", t0.Add(time.Second)).subscription(sub, cus, tenant, "trialing", "price_pro", 3, periodEnd),
			"billing.subscription.updated",
			func(s api.BillingSubscription) bool {
				return s.Status == "trialing" && s.Plan == api.PlanPro && s.EffectivePlan == api.PlanPro && deref(s.Seats) == 3 &&
					s.CurrentPeriodEnd != nil && s.CurrentPeriodEnd.Equal(periodEnd)
			}},
		{newStripeEvent(t, "customer.subscription.trial_will_end", t0.Add(2*time.Second)).subscription(sub, cus, tenant, "trialing", "price_pro", 3, periodEnd),
			"billing.trial_will_end", func(s api.BillingSubscription) bool { return s.Status == "trialing" }},
		{newStripeEvent(t, "customer.subscription.updated", t0.Add(3*time.Second)).subscription(sub, cus, uuid.Nil, "active", "price_enterprise", 7, periodEnd),
			"billing.subscription.updated",
			func(s api.BillingSubscription) bool {
				// The 7 seats bought are shown; enterprise's limits (none) hold.
				return s.Status == "active" && s.Plan == api.PlanEnterprise && deref(s.Seats) == 7 && s.Limits.Seats == nil &&
					s.Limits.Projects == nil
			}},
		{newStripeEvent(t, "invoice.payment_failed", t0.Add(4*time.Second)).invoice(cus, sub, uuid.Nil), "billing.invoice.payment_failed",
			func(s api.BillingSubscription) bool { return deref(s.LastInvoice) == api.PaymentFailed }},
		{newStripeEvent(t, "customer.subscription.updated", t0.Add(5*time.Second)).subscription(sub, cus, tenant, "past_due", "price_enterprise", 7, periodEnd),
			"billing.subscription.updated",
			func(s api.BillingSubscription) bool {
				// Within the grace period the plan holds.
				return s.Status == "past_due" && s.EffectivePlan == api.PlanEnterprise && s.GracePeriodEnd != nil &&
					s.GracePeriodEnd.Equal(t0.Add(5*time.Second).Add(7*24*time.Hour))
			}},
		{newStripeEvent(t, "invoice.paid", t0.Add(6*time.Second)).invoice(cus, sub, tenant), "billing.invoice.paid",
			func(s api.BillingSubscription) bool {
				return deref(s.LastInvoice) == api.Paid && s.Status == "past_due"
			}},
		{newStripeEvent(t, "customer.subscription.paused", t0.Add(7*time.Second)).subscription(sub, cus, tenant, "paused", "price_enterprise", 7, periodEnd),
			"billing.subscription.updated",
			func(s api.BillingSubscription) bool { return s.Status == "paused" && s.EffectivePlan == api.PlanFree }},
		{newStripeEvent(t, "customer.subscription.resumed", t0.Add(8*time.Second)).subscription(sub, cus, tenant, "active", "price_pro", 4, periodEnd),
			"billing.subscription.updated",
			func(s api.BillingSubscription) bool {
				return s.Status == "active" && s.EffectivePlan == api.PlanPro && deref(s.Seats) == 4
			}},
		{newStripeEvent(t, "customer.subscription.deleted", t0.Add(9*time.Second)).subscription(sub, cus, tenant, "canceled", "price_pro", 4, periodEnd),
			"billing.subscription.updated",
			func(s api.BillingSubscription) bool {
				return s.Status == "canceled" && s.Plan == api.PlanPro && s.EffectivePlan == api.PlanFree && deref(s.Limits.Seats) == 1000
			}},
	}
	for i, step := range steps {
		sendEvent(t, env, step.event, "applied")
		if got := recordedOutcome(t, step.event.id); got != "applied" {
			t.Fatalf("step %d: stripe_events holds %q", i, got)
		}
		s := subscriptionOf(t, env, w, api.UserRoleAdmin)
		if !step.check(s) {
			t.Fatalf("step %d (%s): subscription %+v", i, step.event.body["type"], s)
		}
		m := expectEvent(t, sock, step.notice, "tenant", tenant)
		if m.Data()["status"] != string(s.Status) || m.Data()["effective_plan"] != string(s.EffectivePlan) {
			t.Errorf("step %d: %s carries %v, want the subscription as REST shows it", i, step.notice, m.Data())
		}
	}
	if m, err := viewer.Read(300 * time.Millisecond); err == nil {
		t.Errorf("a viewer's socket got %v", m)
	}
	if n := billingAudit(t, env, w); n != len(steps) {
		t.Errorf("%d billing.update audit entries, want %d", n, len(steps))
	}
	// Members and viewers read the same document as admins.
	if a, v := subscriptionOf(t, env, w, api.UserRoleAdmin), subscriptionOf(t, env, w, api.UserRoleViewer); a.Status != v.Status || a.Plan != v.Plan {
		t.Errorf("viewer sees %+v, admin %+v", v, a)
	}
	var plan, status string
	if err := testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT plan, subscription_status FROM tenants WHERE id = $1`, tenant).Scan(&plan, &status); err != nil {
		t.Fatal(err)
	}
	if plan != "free" || status != "canceled" {
		t.Errorf("tenants row says %s/%s, want free/canceled", plan, status)
	}
}

func TestStripeWebhookDuplicatesChangeNothing(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	cus, sub := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	e := newStripeEvent(t, "customer.subscription.created", time.Now()).subscription(sub, cus, w.Tenant.Id, "active", "price_pro", 2, time.Now().Add(time.Hour))
	sendEvent(t, env, e, "applied")
	before := subscriptionOf(t, env, w, api.UserRoleAdmin)
	sendEvent(t, env, e, handlers.Duplicate)
	after := subscriptionOf(t, env, w, api.UserRoleAdmin)
	if !before.UpdatedAt.Equal(*after.UpdatedAt) {
		t.Errorf("a duplicate rewrote the subscription: %v then %v", before.UpdatedAt, after.UpdatedAt)
	}
	if n := billingAudit(t, env, w); n != 1 {
		t.Errorf("%d audit entries after a duplicate, want 1", n)
	}
}

func TestStripeWebhookConcurrentDeliveriesApplyOnce(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	cus, sub := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	body := newStripeEvent(t, "customer.subscription.created", time.Now()).
		subscription(sub, cus, w.Tenant.Id, "active", "price_pro", 2, time.Now().Add(time.Hour)).bytes(t)
	const n = 8
	var wg sync.WaitGroup
	outcomes := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := deliver(t, env, body, apitest.WebhookSecret, time.Now())
			if r.status != http.StatusOK {
				t.Errorf("delivery %d: %d %s", i, r.status, r.body)
			}
			outcomes[i] = r.outcome
		}()
	}
	wg.Wait()
	applied := 0
	for _, o := range outcomes {
		switch o {
		case "applied":
			applied++
		case handlers.Duplicate:
		default:
			t.Errorf("outcome %q", o)
		}
	}
	if applied != 1 {
		t.Errorf("%d of %d concurrent deliveries applied, want exactly 1: %v", applied, n, outcomes)
	}
	if c := billingAudit(t, env, w); c != 1 {
		t.Errorf("%d audit entries, want 1", c)
	}
}

func TestStripeWebhookOlderEventNeverOverwritesNewer(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	cus, sub := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	now := time.Now().Truncate(time.Second)
	newer := newStripeEvent(t, "customer.subscription.updated", now).subscription(sub, cus, w.Tenant.Id, "canceled", "price_pro", 1, now)
	older := newStripeEvent(t, "customer.subscription.updated", now.Add(-time.Minute)).subscription(sub, cus, w.Tenant.Id, "active", "price_enterprise", 9, now)
	sameSecondCreate := newStripeEvent(t, "customer.subscription.created", now).subscription(sub, cus, w.Tenant.Id, "incomplete", "price_pro", 1, now)
	sendEvent(t, env, newer, "applied")
	sendEvent(t, env, older, "stale")
	// A creation in the same second ranks before the update: it is stale too.
	sendEvent(t, env, sameSecondCreate, "stale")
	s := subscriptionOf(t, env, w, api.UserRoleAdmin)
	if s.Status != "canceled" || s.Plan != api.PlanPro || deref(s.Seats) != 1 {
		t.Errorf("after a late older event: %+v, want the newer state (canceled, pro, 1 seat)", s)
	}
	if got := recordedOutcome(t, older.id); got != "stale" {
		t.Errorf("the older event is recorded as %q, want stale", got)
	}
	// A late event of an ended subscription changes that subscription only, never which one
	// is the tenant's current one.
	cur := "sub_" + uuid.NewString()[:12]
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.created", now.Add(time.Second)).subscription(cur, cus, w.Tenant.Id, "active", "price_enterprise", 5, now), "applied")
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.deleted", now.Add(2*time.Second)).subscription(sub, cus, w.Tenant.Id, "canceled", "price_pro", 1, now), "applied")
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Status != "active" || s.Plan != api.PlanEnterprise {
		t.Errorf("the old subscription's late deletion replaced the current one: %+v", s)
	}
}

// TestStripeWebhookLateEventsOfAnOldSubscriptionGrantNothing is the attack that found the
// first design wanting: sub_1 upgraded, then canceled; sub_2 created, then canceled; sub_1's
// upgrade and creation arrive last. Whatever the order, the tenant ends with nothing live.
func TestStripeWebhookLateEventsOfAnOldSubscriptionGrantNothing(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	cus, sub1, sub2 := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	now := time.Now().Truncate(time.Second)
	created1 := newStripeEvent(t, "customer.subscription.created", now.Add(-400*time.Second)).subscription(sub1, cus, w.Tenant.Id, "active", "price_pro", 1, now)
	upgraded1 := newStripeEvent(t, "customer.subscription.updated", now.Add(-300*time.Second)).subscription(sub1, cus, w.Tenant.Id, "active", "price_enterprise", 1, now)
	deleted1 := newStripeEvent(t, "customer.subscription.deleted", now.Add(-200*time.Second)).subscription(sub1, cus, w.Tenant.Id, "canceled", "price_enterprise", 1, now)
	created2 := newStripeEvent(t, "customer.subscription.created", now.Add(-100*time.Second)).subscription(sub2, cus, w.Tenant.Id, "active", "price_pro", 1, now)
	deleted2 := newStripeEvent(t, "customer.subscription.deleted", now.Add(-50*time.Second)).subscription(sub2, cus, w.Tenant.Id, "canceled", "price_pro", 1, now)
	sendEvent(t, env, deleted1, "applied")
	sendEvent(t, env, created2, "applied")
	sendEvent(t, env, upgraded1, "stale")
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Status != "active" || s.Plan != api.PlanPro {
		t.Fatalf("with sub_2 live: %+v, want active pro", s)
	}
	sendEvent(t, env, deleted2, "applied")
	sendEvent(t, env, created1, "stale")
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Status != "canceled" || s.EffectivePlan != api.PlanFree {
		t.Errorf("after every subscription was canceled: %+v, want canceled and free", s)
	}
}

func TestStripeWebhookRefusesBadSignatures(t *testing.T) {
	t.Parallel()
	const old, current = "whsec_old_0123456789abcdef", "whsec_new_fedcba9876543210"
	env := apitest.NewWithOptions(t, apitest.Options{Billing: handlers.BillingConfig{WebhookSecrets: []string{current, old}}})
	w := newWorkspace(t, env)
	event := func() *stripeEvent {
		return newStripeEvent(t, "customer.subscription.created", time.Now()).
			subscription("sub_"+uuid.NewString()[:12], "cus_"+uuid.NewString()[:12], w.Tenant.Id, "active", "price_pro", 1, time.Now())
	}
	for _, c := range []struct {
		name   string
		sign   func(body []byte) string
		detail string
	}{
		{"missing", func([]byte) string { return "" }, "missing"},
		{"malformed", func([]byte) string { return "t=abc,v1" }, "malformed"},
		{"wrong secret", func(b []byte) string { return signWith(b, "whsec_someone_else", time.Now()) }, "matches no signing secret"},
		{"stale timestamp", func(b []byte) string { return signWith(b, current, time.Now().Add(-301*time.Second)) }, "older than the tolerance"},
		{"future timestamp", func(b []byte) string { return signWith(b, current, time.Now().Add(400*time.Second)) }, "ahead"},
		{"no v1 signature", func(b []byte) string { return fmt.Sprintf("t=%d,v0=abc", time.Now().Unix()) }, "malformed"},
		{"header too long", func(b []byte) string { return signWith(b, current, time.Now()) + strings.Repeat(",v1=00", 700) }, "longer than"},
		{"body changed after signing", func(b []byte) string {
			return signWith([]byte(strings.Replace(string(b), `"active"`, `"trialing"`, 1)), current, time.Now())
		}, "matches no signing secret"},
	} {
		e := event()
		r := post(t, env, e.bytes(t), c.sign(e.bytes(t)))
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), c.detail) {
			t.Errorf("%s: %d %s; want 400 saying %q", c.name, r.status, r.body, c.detail)
		}
		if got := recordedOutcome(t, e.id); got != "" {
			t.Errorf("%s: the event was stored (%q)", c.name, got)
		}
	}
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Status != "none" {
		t.Errorf("refused deliveries changed the subscription: %+v", s)
	}
	// During a rotation both secrets sign valid events.
	for _, secret := range []string{old, current} {
		e := event()
		if r := deliver(t, env, e.bytes(t), secret, time.Now()); r.status != http.StatusOK || r.outcome != "applied" {
			t.Errorf("signed with %s: %d %s", secret[:10], r.status, r.body)
		}
	}
}

func signWith(body []byte, secret string, ts time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: ts}).Header
}

func TestStripeWebhookRecordsUnknownTypesAndUnmatchedEvents(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	unknown := newStripeEvent(t, "customer.created", time.Now())
	sendEvent(t, env, unknown, "ignored")
	if got := recordedOutcome(t, unknown.id); got != "ignored" {
		t.Errorf("unknown type recorded as %q", got)
	}
	sendEvent(t, env, unknown, handlers.Duplicate)
	// An invoice of a customer that is nobody's.
	stranger := newStripeEvent(t, "invoice.paid", time.Now()).invoice("cus_nobody_"+uuid.NewString()[:8], "sub_nobody", uuid.Nil)
	sendEvent(t, env, stranger, "unmatched")
	// Metadata naming a tenant that does not exist.
	ghost := newStripeEvent(t, "customer.subscription.created", time.Now()).subscription("sub_g"+uuid.NewString()[:8], "cus_g"+uuid.NewString()[:8], uuid.New(), "active", "price_pro", 1, time.Now())
	sendEvent(t, env, ghost, "unmatched")
	// A subscription made in the dashboard, with metadata.tenant_id and no checkout before it,
	// links the tenant; later events without metadata find it by customer and subscription.
	cus, sub := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.created", time.Now()).subscription(sub, cus, w.Tenant.Id, "active", "price_pro", 1, time.Now()), "applied")
	sendEvent(t, env, newStripeEvent(t, "invoice.payment_failed", time.Now()).invoice(cus, "", uuid.Nil), "applied")
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); deref(s.LastInvoice) != api.PaymentFailed {
		t.Errorf("invoice by customer alone not applied: %+v", s)
	}
	// Another tenant's metadata on this customer's subscription is not obeyed.
	other := newWorkspace(t, env)
	otherSub, otherCus := "sub_"+uuid.NewString()[:12], "cus_"+uuid.NewString()[:12]
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.created", time.Now()).subscription(otherSub, otherCus, other.Tenant.Id, "active", "price_pro", 1, time.Now()), "applied")
	// Nor is an event pairing one tenant's subscription with another tenant's customer, whichever
	// tenant its metadata names.
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.updated", time.Now().Add(time.Second)).subscription(otherSub, cus, other.Tenant.Id, "active", "price_enterprise", 1, time.Now()), "conflict")
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.updated", time.Now().Add(time.Second)).subscription(otherSub, cus, w.Tenant.Id, "active", "price_enterprise", 1, time.Now()), "conflict")
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.updated", time.Now().Add(time.Second)).subscription(sub, cus, other.Tenant.Id, "active", "price_enterprise", 1, time.Now()), "conflict")
	if s := subscriptionOf(t, env, other, api.UserRoleAdmin); s.Plan != api.PlanPro {
		t.Errorf("the other tenant's subscription changed: %+v", s)
	}
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Plan != api.PlanPro || deref(s.LastInvoice) != api.PaymentFailed {
		t.Errorf("this tenant's subscription changed: %+v", s)
	}
}

// TestStripeWebhookGraceRunsFromTheLatestTurnToPastDue: past_due, recovered, past_due again;
// the recovery arrives last (stale). The grace runs from the second turn, which the event says
// itself (previous_attributes.status), not from the first.
func TestStripeWebhookGraceRunsFromTheLatestTurnToPastDue(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	cus, sub := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	now := time.Now().Truncate(time.Second)
	turn := func(created time.Time, status, from string) *stripeEvent {
		e := newStripeEvent(t, "customer.subscription.updated", created).subscription(sub, cus, w.Tenant.Id, status, "price_enterprise", 1, now)
		e.body["data"].(map[string]any)["previous_attributes"] = map[string]any{"status": from}
		return e
	}
	first, recovered, second := turn(now.Add(-9*24*time.Hour), "past_due", "active"), turn(now.Add(-8*24*time.Hour), "active", "past_due"),
		turn(now.Add(-24*time.Hour), "past_due", "active")
	sendEvent(t, env, first, "applied")
	sendEvent(t, env, second, "applied")
	sendEvent(t, env, recovered, "stale")
	s := subscriptionOf(t, env, w, api.UserRoleAdmin)
	if s.PastDueSince == nil || !s.PastDueSince.Equal(now.Add(-24*time.Hour)) || s.EffectivePlan != api.PlanEnterprise {
		t.Errorf("past_due since %v, effective %s; want since a day ago and enterprise within the grace", s.PastDueSince, s.EffectivePlan)
	}
}
