package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stripe/stripe-go/v82"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/authz"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
)

// BillingConfig is what billing needs: the plans, and Stripe.
type BillingConfig struct {
	// Catalog holds the plans' limits and the Stripe prices; required.
	Catalog *billing.Catalog
	// Stripe calls Stripe's API (checkout, portal); nil answers those endpoints 503.
	Stripe *stripe.Client
	// WebhookSecrets are the endpoint's signing secrets, any of which signs a valid event
	// (several while rotating); none answers the webhook 503.
	WebhookSecrets []string
	// WebhookTolerance is how old a signature's timestamp may be.
	WebhookTolerance time.Duration
	// WebhookMaxBytes caps a webhook body (413 beyond).
	WebhookMaxBytes int64
	// WebhookReadTimeout bounds the reading of a webhook body (10 s when zero).
	WebhookReadTimeout time.Duration
	// SuccessURL, CancelURL and ReturnURL are where Stripe sends the browser back: after a
	// checkout, after leaving it, after the portal.
	SuccessURL, CancelURL, ReturnURL string
	// Now is the clock of plan grace periods (time.Now when nil).
	Now func() time.Time
}

func (c BillingConfig) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// GetBillingSubscription shows the tenant's plan, subscription, limits and usage.
func (s *Server) GetBillingSubscription(ctx context.Context, _ api.GetBillingSubscriptionRequestObject) (api.GetBillingSubscriptionResponseObject, error) {
	p := principal(ctx)
	out, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (api.BillingSubscription, error) {
		if _, err := auth.Current(ctx, q, p); err != nil {
			return api.BillingSubscription{}, err
		}
		return s.billingView(ctx, q, p.Tenant)
	})
	if err != nil {
		return nil, err
	}
	return api.GetBillingSubscription200JSONResponse(out), nil
}

// billingView is the tenant's subscription as REST shows it, events included.
func (s *Server) billingView(ctx context.Context, q *db.Queries, tenant uuid.UUID) (api.BillingSubscription, error) {
	sub, err := q.GetBillingSubscription(ctx)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		sub = db.BillingSubscription{TenantID: tenant, Status: "none", Plan: string(billing.Free)}
	case err != nil:
		return api.BillingSubscription{}, fmt.Errorf("billing subscription: %w", err)
	}
	usage, err := q.BillingUsage(ctx)
	if err != nil {
		return api.BillingSubscription{}, fmt.Errorf("billing usage: %w", err)
	}
	return billingToAPI(s.billing.Catalog, sub, usage, s.billing.now()), nil
}

// billingToAPI is the named converter of a stored subscription.
func billingToAPI(c *billing.Catalog, sub db.BillingSubscription, usage db.BillingUsageRow, now time.Time) api.BillingSubscription {
	effective, l := c.Allowed(sub, now)
	limit := func(v int64) *int64 {
		if v == billing.Unlimited {
			return nil
		}
		return &v
	}
	out := api.BillingSubscription{
		Plan: api.Plan(sub.Plan), EffectivePlan: api.Plan(effective), Status: api.BillingSubscriptionStatus(sub.Status),
		Seats: sub.Quantity, CurrentPeriodEnd: sub.CurrentPeriodEnd, CancelAtPeriodEnd: sub.CancelAtPeriodEnd,
		TrialEnd: sub.TrialEnd, PastDueSince: sub.PastDueSince, LastInvoiceAt: sub.InvoiceAt,
		Limits: api.PlanLimits{Seats: limit(l.Seats), Projects: limit(l.Projects), StorageBytes: limit(l.StorageBytes)},
		Usage:  api.BillingUsage{Seats: usage.Seats, Projects: usage.Projects, StorageBytes: usage.StorageBytes},
	}
	if !sub.UpdatedAt.IsZero() {
		out.UpdatedAt = &sub.UpdatedAt
	}
	if sub.Status == "past_due" && sub.PastDueSince != nil {
		end := sub.PastDueSince.Add(c.PastDueGrace)
		out.GracePeriodEnd = &end
	}
	if sub.InvoiceStatus != nil {
		v := api.BillingSubscriptionLastInvoice(*sub.InvoiceStatus)
		out.LastInvoice = &v
	}
	return out
}

// CreateCheckoutSession starts a Stripe Checkout that subscribes the tenant to a plan. The
// tenant rides along as client_reference_id and in the subscription's metadata, which is how
// the webhook links what Stripe creates back to it.
func (s *Server) CreateCheckoutSession(ctx context.Context, req api.CreateCheckoutSessionRequestObject) (api.CreateCheckoutSessionResponseObject, error) {
	if s.billing.Stripe == nil {
		return nil, problem.New(problem.Unavailable, "Billing is not configured on this server (no STRIPE_SECRET_KEY).")
	}
	plan := billing.Plan(req.Body.Plan)
	price, ok := s.billing.Catalog.Checkout[plan]
	if !ok {
		return nil, problem.New(problem.Unavailable, "No Stripe price is configured for the %s plan (STRIPE_PRICES).", plan)
	}
	p := principal(ctx)
	// The caller's role is checked in the database before Stripe hears of anything.
	sub, err := s.billingAdmin(ctx, p)
	if err != nil {
		return nil, err
	}
	switch sub.Status {
	case "active", "trialing", "past_due", "unpaid", "paused", "incomplete":
		return nil, problem.New(problem.Conflict, "The tenant already has a subscription (%s); change its plan in the billing portal.", sub.Status)
	}
	tenant := p.Tenant.String()
	params := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		ClientReferenceID: stripe.String(tenant),
		SuccessURL:        stripe.String(s.billing.SuccessURL),
		CancelURL:         stripe.String(s.billing.CancelURL),
		LineItems:         []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{
			Metadata: map[string]string{"tenant_id": tenant},
		},
		Metadata: map[string]string{"tenant_id": tenant},
	}
	// Every checkout of the tenant names its one customer, made once: two checkouts started
	// at the same time must not give the tenant two customers.
	if params.Customer, err = s.billingCustomer(ctx, p, sub); err != nil {
		return nil, err
	}
	cs, err := s.billing.Stripe.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return nil, stripeProblem(err)
	}
	return api.CreateCheckoutSession201JSONResponse{Url: cs.URL}, nil
}

// CreatePortalSession opens the Stripe customer portal for the tenant's customer.
func (s *Server) CreatePortalSession(ctx context.Context, _ api.CreatePortalSessionRequestObject) (api.CreatePortalSessionResponseObject, error) {
	if s.billing.Stripe == nil {
		return nil, problem.New(problem.Unavailable, "Billing is not configured on this server (no STRIPE_SECRET_KEY).")
	}
	sub, err := s.billingAdmin(ctx, principal(ctx))
	if err != nil {
		return nil, err
	}
	if sub.CustomerID == nil {
		return nil, problem.New(problem.Conflict, "The tenant has no Stripe customer yet; subscribe through checkout first.")
	}
	ps, err := s.billing.Stripe.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{
		Customer: sub.CustomerID, ReturnURL: stripe.String(s.billing.ReturnURL),
	})
	if err != nil {
		return nil, stripeProblem(err)
	}
	return api.CreatePortalSession201JSONResponse{Url: ps.URL}, nil
}

// billingCustomer is the tenant's Stripe customer, made at Stripe and linked now if it has none.
// The idempotency key makes concurrent first checkouts get the same customer from Stripe, and
// the link keeps the first one stored.
func (s *Server) billingCustomer(ctx context.Context, p auth.Principal, sub db.BillingSubscription) (*string, error) {
	if sub.CustomerID != nil {
		return sub.CustomerID, nil
	}
	tenant := p.Tenant.String()
	params := &stripe.CustomerCreateParams{Metadata: map[string]string{"tenant_id": tenant}}
	params.SetIdempotencyKey("tasker-customer-" + tenant)
	c, err := s.billing.Stripe.V1Customers.Create(ctx, params)
	if err != nil {
		return nil, stripeProblem(err)
	}
	return writeV(ctx, s, p, func(tx *tenancy.Tx, p auth.Principal) (*string, error) {
		if err := authz.ManageTenant(p, "billing"); err != nil {
			return nil, err
		}
		// Under the billing lock: of checkouts racing here, the first links its customer (the
		// same one, by the idempotency key) and is the one audited; the others find it.
		cur, err := tx.Q.LockBillingSubscription(ctx, p.Tenant)
		if err != nil {
			return nil, err
		}
		if cur.CustomerID != nil {
			return cur.CustomerID, nil
		}
		linked, err := tx.Q.SetBillingCustomer(ctx, db.SetBillingCustomerParams{TenantID: p.Tenant, CustomerID: &c.ID})
		if err != nil {
			return nil, err
		}
		tx.Record(tenancy.Entry{Action: "billing.customer_create", ResourceType: resourceBilling, ResourceID: p.Tenant,
			Data: map[string]any{"stripe_customer": c.ID}})
		return linked, nil
	})
}

// billingAdmin checks, in the database, that p is still an admin, and returns the tenant's
// subscription.
func (s *Server) billingAdmin(ctx context.Context, p auth.Principal) (db.BillingSubscription, error) {
	return tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (db.BillingSubscription, error) {
		cur, err := auth.Current(ctx, q, p)
		if err != nil {
			return db.BillingSubscription{}, err
		}
		if err := authz.ManageTenant(cur, "billing"); err != nil {
			return db.BillingSubscription{}, err
		}
		sub, err := q.GetBillingSubscription(ctx)
		if err != nil {
			return db.BillingSubscription{}, tenancy.Missing(err, "billing subscription")
		}
		return sub, nil
	})
}

// stripeProblem turns a failed Stripe call into a 502 for the client; Stripe's message goes
// to the log only.
func stripeProblem(err error) error {
	return problem.Wrap(problem.BadGateway, err, "Stripe refused or failed the request; retry later.")
}
