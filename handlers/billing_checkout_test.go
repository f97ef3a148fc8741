package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/problem"
)

// stripeCalls are the calls to path the server made, each answered by stripe-mock, which
// refuses (400) parameters outside Stripe's OpenAPI spec.
func stripeCalls(t *testing.T, env *apitest.Env, path string) []apitest.StripeRequest {
	t.Helper()
	var out []apitest.StripeRequest
	for _, r := range env.Stripe.Requests() {
		if r.Path == path {
			if r.Status != http.StatusOK {
				t.Errorf("stripe-mock answered %s %s with %d: the request is not in Stripe's shape (%v)", r.Method, r.Path, r.Status, r.Form)
			}
			out = append(out, r)
		}
	}
	return out
}

func TestCheckoutSessionCarriesTheTenantToStripe(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	r, err := env.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanEnterprise}, w.as(api.UserRoleAdmin))
	if err != nil || r.JSON201 == nil || !strings.HasPrefix(r.JSON201.Url, "https://") {
		t.Fatalf("checkout: %v %d %s", err, r.StatusCode(), r.Body)
	}
	calls := stripeCalls(t, env, "/v1/checkout/sessions")
	if len(calls) != 1 {
		t.Fatalf("%d checkout calls, want 1", len(calls))
	}
	f, tenant := calls[0].Form, w.Tenant.Id.String()
	for k, want := range map[string]string{
		"mode": "subscription", "client_reference_id": tenant, "line_items[0][price]": "price_enterprise",
		"line_items[0][quantity]": "1", "subscription_data[metadata][tenant_id]": tenant, "metadata[tenant_id]": tenant,
		"success_url": env.Billing.SuccessURL, "cancel_url": env.Billing.CancelURL,
	} {
		if got := f.Get(k); got != want {
			t.Errorf("checkout sent %s=%q, want %q", k, got, want)
		}
	}
	// The tenant's customer was made first, once, with the tenant in its metadata.
	customers := stripeCalls(t, env, "/v1/customers")
	if len(customers) != 1 || customers[0].Form.Get("metadata[tenant_id]") != tenant {
		t.Fatalf("customer creations: %+v", customers)
	}
	cus := f.Get("customer")
	if !strings.HasPrefix(cus, "cus_") {
		t.Fatalf("checkout sent customer=%q", cus)
	}
	// A second checkout (the first was abandoned) names the same customer and makes none.
	if r, _ := env.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, w.as(api.UserRoleOwner)); r.StatusCode() != http.StatusCreated {
		t.Fatalf("second checkout: %d %s", r.StatusCode(), r.Body)
	}
	if calls := stripeCalls(t, env, "/v1/checkout/sessions"); len(stripeCalls(t, env, "/v1/customers")) != 1 || calls[1].Form.Get("customer") != cus {
		t.Errorf("the second checkout made another customer or named another one: %v", calls[1].Form)
	}

	// Once Stripe reports the completed checkout, the portal opens for the customer, and a
	// new checkout is refused while the subscription lives.
	sub := "sub_" + uuid.NewString()[:12]
	sendEvent(t, env, newStripeEvent(t, "checkout.session.completed", time.Now()).checkout(w.Tenant.Id, cus, sub), "applied")
	p, err := env.Client.CreatePortalSessionWithResponse(bg, w.as(api.UserRoleOwner))
	if err != nil || p.JSON201 == nil || p.JSON201.Url == "" {
		t.Fatalf("portal: %v %d %s", err, p.StatusCode(), p.Body)
	}
	portal := stripeCalls(t, env, "/v1/billing_portal/sessions")
	if len(portal) != 1 || portal[0].Form.Get("customer") != cus || portal[0].Form.Get("return_url") != env.Billing.ReturnURL {
		t.Fatalf("portal calls: %+v", portal)
	}
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.created", time.Now()).subscription(sub, cus, uuid.Nil, "active", "price_enterprise", 1, time.Now()), "applied")
	again, _ := env.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, w.as(api.UserRoleAdmin))
	if again.StatusCode() != http.StatusConflict {
		t.Errorf("checkout with a live subscription: %d %s, want 409", again.StatusCode(), again.Body)
	}
	// After a cancellation, a new checkout reuses the customer.
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.deleted", time.Now().Add(time.Second)).subscription(sub, cus, uuid.Nil, "canceled", "price_enterprise", 1, time.Now()), "applied")
	if r, _ := env.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, w.as(api.UserRoleAdmin)); r.StatusCode() != http.StatusCreated {
		t.Fatalf("checkout after cancellation: %d %s", r.StatusCode(), r.Body)
	}
	calls = stripeCalls(t, env, "/v1/checkout/sessions")
	if got := calls[len(calls)-1].Form; got.Get("customer") != cus || got.Get("line_items[0][price]") != "price_pro" || len(calls) != 3 {
		t.Errorf("second checkout sent %v, want customer %s and price_pro", got, cus)
	}
}

func TestBillingEndpointsAreForAdminsAndTheirOwnTenant(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	for _, role := range []api.UserRole{api.UserRoleMember, api.UserRoleViewer} {
		if r, _ := env.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, w.as(role)); r.StatusCode() != http.StatusForbidden {
			t.Errorf("checkout as %s: %d", role, r.StatusCode())
		}
		if r, _ := env.Client.CreatePortalSessionWithResponse(bg, w.as(role)); r.StatusCode() != http.StatusForbidden {
			t.Errorf("portal as %s: %d", role, r.StatusCode())
		}
		// Members and viewers read the subscription.
		subscriptionOf(t, env, w, role)
	}
	key := createKey(t, env, w.tokens[api.UserRoleOwner], api.APIKeyCreate{Name: "ci", Role: api.UserRoleAdmin})
	if key.JSON201 == nil {
		t.Fatalf("create key: %s", key.Body)
	}
	if r, _ := env.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, apitest.Bearer(key.JSON201.Key)); r.StatusCode() != http.StatusForbidden {
		t.Errorf("checkout with an admin API key: %d, want 403", r.StatusCode())
	}
	if r, _ := env.Client.GetBillingSubscriptionWithResponse(bg); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("subscription without a token: %d", r.StatusCode())
	}
	// A demoted admin's token still says admin; the database says otherwise.
	role := api.UserRoleMember
	if r, _ := env.Client.UpdateUserWithResponse(bg, w.users[api.UserRoleAdmin].Id, api.UserUpdate{Role: &role}, w.as(api.UserRoleOwner)); r.StatusCode() != http.StatusOK {
		t.Fatalf("demote: %d %s", r.StatusCode(), r.Body)
	}
	if r, _ := env.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, w.as(api.UserRoleAdmin)); r.StatusCode() != http.StatusForbidden {
		t.Errorf("checkout by a demoted admin: %d, want 403", r.StatusCode())
	}
	if n := len(stripeCalls(t, env, "/v1/checkout/sessions")); n != 0 {
		t.Errorf("refused callers reached Stripe %d times", n)
	}
	// Another tenant's subscription is its own: linking one tenant leaves the other at none.
	other := newWorkspace(t, env)
	sendEvent(t, env, newStripeEvent(t, "customer.subscription.created", time.Now()).subscription("sub_"+uuid.NewString()[:12], "cus_"+uuid.NewString()[:12], w.Tenant.Id, "active", "price_pro", 1, time.Now()), "applied")
	if s := subscriptionOf(t, env, other, api.UserRoleOwner); s.Status != "none" || s.Plan != api.PlanFree {
		t.Errorf("the other tenant sees %+v", s)
	}
	if r, _ := env.Client.CreatePortalSessionWithResponse(bg, other.as(api.UserRoleOwner)); r.StatusCode() != http.StatusConflict {
		t.Errorf("portal of a tenant without a customer: %d, want 409", r.StatusCode())
	}
}

func TestCheckoutWithoutOrAgainstAFailingStripe(t *testing.T) {
	t.Parallel()
	off := apitest.NewWithOptions(t, apitest.Options{NoStripe: true})
	w := newWorkspace(t, off)
	r, _ := off.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, w.as(api.UserRoleAdmin))
	if r.StatusCode() != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "STRIPE_SECRET_KEY") {
		t.Errorf("checkout without Stripe: %d %s", r.StatusCode(), r.Body)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"internal secret detail"}}`))
	}))
	t.Cleanup(down.Close)
	failing := apitest.NewWithOptions(t, apitest.Options{Billing: handlers.BillingConfig{Stripe: (&apitest.StripeAPI{URL: down.URL}).Client()}})
	w2 := newWorkspace(t, failing)
	r2, _ := failing.Client.CreateCheckoutSessionWithResponse(bg, api.CheckoutRequest{Plan: api.CheckoutRequestPlanPro}, w2.as(api.UserRoleAdmin))
	if r2.StatusCode() != http.StatusBadGateway || problemIn(r2.Body) == nil ||
		problemIn(r2.Body).Type != problem.BadGateway.Type() || strings.Contains(string(r2.Body), "secret detail") {
		t.Errorf("checkout against a failing Stripe: %d %s, want 502 without Stripe's text", r2.StatusCode(), r2.Body)
	}
}
