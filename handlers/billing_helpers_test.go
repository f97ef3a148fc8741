package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
)

// stripeEvent is a Stripe event built from a fixture of testdata/stripe (Stripe's published
// shapes), with the fields a scenario needs set.
type stripeEvent struct {
	id   string
	body map[string]any
}

var eventSeq atomic.Int64

// newStripeEvent loads the fixture of typ with a fresh id, created at created.
func newStripeEvent(t testing.TB, typ string, created time.Time) *stripeEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "stripe", typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	id := "evt_test_" + uuid.NewString()[:8] + "_" + string(rune('a'+eventSeq.Add(1)%26))
	body["id"], body["created"] = id, created.Unix()
	return &stripeEvent{id: id, body: body}
}

// object is the event's data.object.
func (e *stripeEvent) object() map[string]any {
	return e.body["data"].(map[string]any)["object"].(map[string]any)
}

// subscription sets the subscription object's ids, tenant metadata (uuid.Nil: none), status,
// price, quantity and period end.
func (e *stripeEvent) subscription(sub, customer string, tenant uuid.UUID, status, price string, quantity int, periodEnd time.Time) *stripeEvent {
	o := e.object()
	o["id"], o["customer"], o["status"] = sub, customer, status
	o["metadata"] = map[string]any{}
	if tenant != uuid.Nil {
		o["metadata"] = map[string]any{"tenant_id": tenant.String()}
	}
	o["cancel_at"], o["cancel_at_period_end"], o["trial_end"] = nil, false, nil
	items := o["items"].(map[string]any)["data"].([]any)
	item := items[0].(map[string]any)
	item["quantity"], item["current_period_end"] = quantity, periodEnd.Unix()
	item["price"].(map[string]any)["id"] = price
	o["items"].(map[string]any)["data"] = items[:1]
	return e
}

// checkout sets the checkout session of a subscription.
func (e *stripeEvent) checkout(tenant uuid.UUID, customer, sub string) *stripeEvent {
	o := e.object()
	o["mode"], o["customer"], o["subscription"], o["status"], o["payment_status"] = "subscription", customer, sub, "complete", "paid"
	o["client_reference_id"] = tenant.String()
	o["metadata"] = map[string]any{"tenant_id": tenant.String()}
	return e
}

// invoice sets the invoice of a subscription; tenant in its subscription's metadata snapshot
// unless uuid.Nil.
func (e *stripeEvent) invoice(customer, sub string, tenant uuid.UUID) *stripeEvent {
	o := e.object()
	o["customer"] = customer
	meta := map[string]any{}
	if tenant != uuid.Nil {
		meta["tenant_id"] = tenant.String()
	}
	o["parent"] = map[string]any{"type": "subscription_details", "quote_details": nil,
		"subscription_details": map[string]any{"subscription": sub, "metadata": meta}}
	return e
}

func (e *stripeEvent) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := json.MarshalIndent(e.body, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// webhookReply is the server's answer to a delivery.
type webhookReply struct {
	status  int
	outcome string
	body    []byte
}

// deliver posts body as Stripe does, signed with secret at ts.
func deliver(t testing.TB, env *apitest.Env, body []byte, secret string, ts time.Time) webhookReply {
	t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: ts})
	return post(t, env, body, signed.Header)
}

func post(t testing.TB, env *apitest.Env, body []byte, signature string) webhookReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.URL+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	if signature != "" {
		req.Header.Set("Stripe-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := webhookReply{status: resp.StatusCode, body: b}
	if resp.StatusCode == http.StatusOK {
		var ack struct {
			ID      string `json:"id"`
			Outcome string `json:"outcome"`
		}
		if err := json.Unmarshal(b, &ack); err != nil || ack.ID == "" {
			t.Fatalf("webhook 200 with %s: %v", b, err)
		}
		r.outcome = string(ack.Outcome)
	} else if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("webhook %d with Content-Type %q, want a problem document", resp.StatusCode, ct)
	}
	return r
}

// sendEvent delivers e signed now with the test secret and wants 200 with outcome.
func sendEvent(t testing.TB, env *apitest.Env, e *stripeEvent, outcome string) {
	t.Helper()
	if r := deliver(t, env, e.bytes(t), apitest.WebhookSecret, time.Now()); r.status != http.StatusOK || r.outcome != outcome {
		t.Fatalf("%s %s: %d %q %s; want 200 %q", e.body["type"], e.id, r.status, r.outcome, r.body, outcome)
	}
}

// recordedOutcome is what stripe_events holds for id ("" when nothing), read as the owner.
func recordedOutcome(t testing.TB, id string) string {
	t.Helper()
	var out string
	err := testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT coalesce((SELECT outcome FROM stripe_events WHERE id = $1), '')`, id).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// billingAudit counts the tenant's billing.update audit entries.
func billingAudit(t testing.TB, env *apitest.Env, w workspace) int {
	t.Helper()
	r, err := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{Action: ptr("billing.update"), Limit: ptr(200)}, w.as(api.UserRoleOwner))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("audit: %v %s", err, r.Body)
	}
	return len(r.JSON200.Items)
}

// subscriptionOf reads GET /v1/billing/subscription as role.
func subscriptionOf(t testing.TB, env *apitest.Env, w workspace, role api.UserRole) api.BillingSubscription {
	t.Helper()
	r, err := env.Client.GetBillingSubscriptionWithResponse(bg, w.as(role))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("billing subscription as %s: %v %d %s", role, err, r.StatusCode(), r.Body)
	}
	return *r.JSON200
}
