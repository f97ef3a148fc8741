package handlers_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
)

// TestStripeWebhookFailureIsRetriedAndAppliedOnce makes the database fail an event's write
// after the event id was recorded and the audit entry queued, then lets Stripe's retry through.
func TestStripeWebhookFailureIsRetriedAndAppliedOnce(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	admin := testdb.Get(t).AdminPool(t)
	// A trigger that fails the subscription's update for one price only, so no other test
	// meets it: a real failure inside the transaction, after the event was recorded in it.
	price := "price_boom_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	fn := "fail_" + price
	if _, err := admin.Exec(bg, fmt.Sprintf(`CREATE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.price_id = '%[2]s' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER %[1]s BEFORE UPDATE ON billing_subscriptions FOR EACH ROW EXECUTE FUNCTION %[1]s()`, fn, price)); err != nil {
		t.Fatal(err)
	}
	dropped := false
	drop := func() {
		if !dropped {
			dropped = true
			if _, err := admin.Exec(bg, fmt.Sprintf(`DROP TRIGGER %[1]s ON billing_subscriptions; DROP FUNCTION %[1]s()`, fn)); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(drop)

	e := newStripeEvent(t, "customer.subscription.created", time.Now()).
		subscription("sub_"+uuid.NewString()[:12], "cus_"+uuid.NewString()[:12], w.Tenant.Id, "active", price, 4, time.Now().Add(time.Hour))
	body := e.bytes(t)
	for range 2 { // Stripe retries; each attempt fails whole
		r := deliver(t, env, body, apitest.WebhookSecret, time.Now())
		if r.status != http.StatusInternalServerError {
			t.Fatalf("a failing event: %d %s, want 500 so Stripe retries", r.status, r.body)
		}
	}
	if got := recordedOutcome(t, e.id); got != "" {
		t.Fatalf("a failed event was recorded (%q): its retry would be taken for a duplicate", got)
	}
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Status != "none" {
		t.Fatalf("a failed event left state behind: %+v", s)
	}
	if n := billingAudit(t, env, w); n != 0 {
		t.Fatalf("a failed event left %d audit entries", n)
	}
	drop()
	if r := deliver(t, env, body, apitest.WebhookSecret, time.Now()); r.status != http.StatusOK || r.outcome != "applied" {
		t.Fatalf("the retry: %d %s", r.status, r.body)
	}
	if r := deliver(t, env, body, apitest.WebhookSecret, time.Now()); r.outcome != handlers.Duplicate {
		t.Fatalf("the retry after success: %q, want duplicate", r.outcome)
	}
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Status != "active" || deref(s.Seats) != 4 {
		t.Errorf("after the retry: %+v", s)
	}
	if n := billingAudit(t, env, w); n != 1 {
		t.Errorf("%d audit entries, want 1", n)
	}
}

// TestStripeWebhookParksEventsOfAnotherAPIVersion: an event this build cannot read is stored,
// answered 500 every time (never acknowledged), logged and counted.
func TestStripeWebhookParksEventsOfAnotherAPIVersion(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	// Another release's version, one from before releases had names, and a status the release
	// we read does not have.
	for _, version := range []string{"2026-08-26.dahlia", "2024-06-20", "2025-08-27.basil"} {
		e := newStripeEvent(t, "customer.subscription.updated", time.Now()).
			subscription("sub_"+uuid.NewString()[:12], "cus_"+uuid.NewString()[:12], w.Tenant.Id, "active", "price_pro", 1, time.Now())
		e.body["api_version"] = version
		if version == "2025-08-27.basil" {
			e.object()["status"] = "frozen"
		}
		for attempt := range 2 {
			r := deliver(t, env, e.bytes(t), apitest.WebhookSecret, time.Now())
			if r.status != http.StatusInternalServerError {
				t.Fatalf("%s attempt %d: %d %s, want 500", version, attempt, r.status, r.body)
			}
		}
		if got := recordedOutcome(t, e.id); got != "parked" {
			t.Errorf("%s: recorded %q, want parked", version, got)
		}
		var payload []byte
		if err := testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT payload FROM stripe_events WHERE id = $1`, e.id).Scan(&payload); err != nil || string(payload) != string(e.bytes(t)) {
			t.Errorf("%s: the parked payload is not the body as received (%v)", version, err)
		}
	}
	if s := subscriptionOf(t, env, w, api.UserRoleAdmin); s.Status != "none" {
		t.Errorf("a parked event changed the subscription: %+v", s)
	}
	if !strings.Contains(string(logsOf(env.Logs)), "stripe event parked") {
		t.Error("parking was not logged")
	}
	_, metrics := get(t, env, http.MethodGet, "/metrics")
	if !strings.Contains(string(metrics), `tasker_stripe_events_total{outcome="parked"} 6`) {
		t.Errorf("/metrics does not count the 6 parked deliveries:\n%s", grepLines(metrics, "tasker_stripe_events_total"))
	}
	// The gauge counts every parked event in the database (other tests' too): at least ours.
	if !regexp.MustCompile(`tasker_stripe_events_parked ([3-9]|[1-9][0-9]+)\n`).Match(metrics) {
		t.Errorf("/metrics lacks the parked gauge:\n%s", grepLines(metrics, "parked"))
	}
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBillingReconcileAppliesMissedEventsOnce: an event Stripe gave up delivering is applied
// from Stripe's event list, once, however often the reconciler runs.
func TestBillingReconcileAppliesMissedEventsOnce(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	cus, sub := "cus_"+uuid.NewString()[:12], "sub_"+uuid.NewString()[:12]
	now := time.Now().Truncate(time.Second)
	delivered := newStripeEvent(t, "customer.subscription.created", now.Add(-2*time.Minute)).subscription(sub, cus, w.Tenant.Id, "trialing", "price_pro", 2, now)
	missed := newStripeEvent(t, "customer.subscription.updated", now.Add(-time.Minute)).subscription(sub, cus, w.Tenant.Id, "active", "price_enterprise", 6, now)
	missedInvoice := newStripeEvent(t, "invoice.paid", now.Add(-30*time.Second)).invoice(cus, sub, uuid.Nil)
	sendEvent(t, env, delivered, "applied")
	for _, e := range []*stripeEvent{delivered, missed, missedInvoice} {
		env.Stripe.AddEvent(e.bytes(t))
	}
	events := handlers.NewStripeEvents(env.DB, env.Billing, slog.New(slog.NewJSONHandler(io.Discard, nil)), nil)
	since := time.Now().Add(-handlers.ReconcileWindow).Truncate(time.Second)
	for run, want := range []map[string]int{
		{"applied": 2, handlers.Duplicate: 1},
		{handlers.Duplicate: 3},
	} {
		got, err := events.Reconcile(context.Background(), env.Stripe.Client(), since)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if fmt.Sprint(got.Outcomes) != fmt.Sprint(want) || got.Listed != 3 {
			t.Fatalf("run %d: listed %d, outcomes %v; want 3 and %v", run, got.Listed, got.Outcomes, want)
		}
	}
	s := subscriptionOf(t, env, w, api.UserRoleAdmin)
	if s.Status != "active" || s.Plan != api.PlanEnterprise || deref(s.Seats) != 6 || deref(s.LastInvoice) != api.Paid {
		t.Errorf("after reconciling: %+v", s)
	}
	if n := billingAudit(t, env, w); n != 3 {
		t.Errorf("%d audit entries, want 3 (one per event)", n)
	}
	// The reconciler asked only for the handled types, from since on.
	var asked bool
	for _, r := range env.Stripe.Requests() {
		if r.Path == "/v1/events" {
			asked = true
			if r.Form.Get("created[gte]") != fmt.Sprint(since.Unix()) || !strings.Contains(fmt.Sprint(r.Form), "invoice.payment_failed") {
				t.Errorf("event list asked with %v", r.Form)
			}
		}
	}
	if !asked {
		t.Error("the reconciler never listed Stripe's events")
	}
}

func TestStripeWebhookLimitsAndConfiguration(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Billing: handlers.BillingConfig{WebhookMaxBytes: 4096}})
	big := make([]byte, 5000)
	for i := range big {
		big[i] = ' '
	}
	if r := deliver(t, env, append([]byte(`{"id":"evt_big"}`), big...), apitest.WebhookSecret, time.Now()); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit: %d %s", r.status, r.body)
	}
	// Signed by Stripe yet not an event we can store as such: parked under a name made of the
	// body's hash, never acknowledged.
	for name, body := range map[string][]byte{
		"not json":       []byte("not json\x00\xff"),
		"a long id":      []byte(`{"id":"evt_` + strings.Repeat("x", 300) + `","type":"invoice.paid","created":1,"api_version":"2025-08-27.basil","data":{"object":{}}}`),
		"a long version": []byte(`{"id":"evt_v","type":"invoice.paid","created":1,"api_version":"` + strings.Repeat("9", 100) + `.basil","data":{"object":{}}}`),
	} {
		if r := deliver(t, env, body, apitest.WebhookSecret, time.Now()); r.status != http.StatusInternalServerError {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
		sum := sha256.Sum256(body)
		id := "unreadable_" + hex.EncodeToString(sum[:16])
		if name == "a long version" {
			id = "evt_v"
		}
		if got := recordedOutcome(t, id); got != "parked" {
			t.Errorf("%s: recorded %q under %s, want parked", name, got, id)
		}
	}
	off := apitest.NewWithOptions(t, apitest.Options{Billing: handlers.BillingConfig{WebhookSecrets: []string{}}})
	if r := deliver(t, off, []byte(`{}`), apitest.WebhookSecret, time.Now()); r.status != http.StatusServiceUnavailable {
		t.Errorf("without a webhook secret: %d %s", r.status, r.body)
	}
	// Only POST.
	resp, _ := get(t, env, http.MethodGet, "/webhooks/stripe")
	if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /webhooks/stripe: %d", resp.StatusCode)
	}
}

// TestStripeWebhookBodiesThatTrickleAreCut: a request with a current-looking signature header
// (which needs no secret) whose body stalls holds its reading slot only until the read
// timeout; then a real event still goes through.
func TestStripeWebhookBodiesThatTrickleAreCut(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{NoStripe: true, Billing: handlers.BillingConfig{WebhookReadTimeout: time.Second}})
	w := newWorkspace(t, env)
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"+
		"Stripe-Signature: t=%d,v1=00\r\n\r\n{", time.Now().Unix())
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, _ := io.ReadAll(conn)
	if took := time.Since(start); !strings.HasPrefix(string(reply), "HTTP/1.1 400") || took > 5*time.Second {
		t.Errorf("a stalled body: %q after %v, want 400 after about 1 s", firstLine(reply), took)
	}
	e := newStripeEvent(t, "customer.subscription.created", time.Now()).
		subscription("sub_"+uuid.NewString()[:12], "cus_"+uuid.NewString()[:12], w.Tenant.Id, "active", "price_pro", 1, time.Now())
	sendEvent(t, env, e, "applied")
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\r\n")
	return line
}
