// Package billing holds the rules of plans and Stripe subscriptions: what each plan allows, which
// plan a tenant is on given its subscription's status, the limit checks every create makes, and
// how a Stripe event changes the stored subscription (never back to an older state).
package billing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/problem"
)

// Plan is a plan's name.
type Plan string

// The plans, cheapest first.
const (
	Free       Plan = "free"
	Pro        Plan = "pro"
	Enterprise Plan = "enterprise"
)

// Plans lists every plan.
var Plans = []Plan{Free, Pro, Enterprise}

// Unlimited is the value of a limit that has none.
const Unlimited int64 = math.MaxInt64

// Limits are what a plan allows.
type Limits struct {
	// Seats are users not deactivated (invited ones included).
	Seats int64
	// Projects counts every project, archived ones included: archiving keeps the data.
	Projects int64
	// StorageBytes is the bytes of all files together.
	StorageBytes int64
}

// ParseLimits reads "seats=5 projects=10 storage=1GiB" (spaces or commas between; "unlimited"
// for no limit; storage in bytes or with a B, KiB, MiB, GiB or TiB suffix). Every limit must
// be given.
func ParseLimits(s string) (Limits, error) {
	var l Limits
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return Limits{}, fmt.Errorf("%q: want name=value", f)
		}
		var err error
		switch name {
		case "seats":
			l.Seats, err = parseCount(value)
		case "projects":
			l.Projects, err = parseCount(value)
		case "storage":
			l.StorageBytes, err = parseBytes(value)
		default:
			return Limits{}, fmt.Errorf("unknown limit %q (seats, projects, storage)", name)
		}
		if err != nil {
			return Limits{}, fmt.Errorf("%s: %w", name, err)
		}
		seen[name] = true
	}
	for _, name := range []string{"seats", "projects", "storage"} {
		if !seen[name] {
			return Limits{}, fmt.Errorf("limit %s missing", name)
		}
	}
	return l, nil
}

func parseCount(v string) (int64, error) {
	if v == "unlimited" {
		return Unlimited, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a count or unlimited", v)
	}
	return n, nil
}

var byteUnits = []struct {
	suffix string
	size   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

func parseBytes(v string) (int64, error) {
	if v == "unlimited" {
		return Unlimited, nil
	}
	size := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(v, u.suffix) {
			v, size = strings.TrimSuffix(v, u.suffix), u.size
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/size {
		return 0, fmt.Errorf("%q is not a size (bytes, KiB, MiB, GiB, TiB) or unlimited", v)
	}
	return n * size, nil
}

// Catalog is the billing configuration: each plan's limits, the Stripe prices that buy each
// plan, and how long a past_due subscription keeps its plan.
type Catalog struct {
	Limits map[Plan]Limits
	// Prices maps a Stripe price id to the plan it buys.
	Prices map[string]Plan
	// Checkout is the price a checkout for each plan sells: the first one listed for it.
	Checkout map[Plan]string
	// PastDueGrace is how long a past_due subscription keeps its plan's limits.
	PastDueGrace time.Duration
}

// ParsePrices reads "price_A:pro,price_B:enterprise,price_C:pro" into a Catalog's Prices and
// Checkout (the first price of each plan is what checkout sells).
func ParsePrices(s string) (map[string]Plan, map[Plan]string, error) {
	prices, checkout := map[string]Plan{}, map[Plan]string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		price, plan, ok := strings.Cut(f, ":")
		if !ok || price == "" {
			return nil, nil, fmt.Errorf("%q: want price_id:plan", f)
		}
		p := Plan(plan)
		if !slices.Contains(Plans, p) || p == Free {
			return nil, nil, fmt.Errorf("%q: plan must be pro or enterprise", f)
		}
		if _, dup := prices[price]; dup {
			return nil, nil, fmt.Errorf("price %s listed twice", price)
		}
		prices[price] = p
		if _, ok := checkout[p]; !ok {
			checkout[p] = price
		}
	}
	return prices, checkout, nil
}

// PlanOfPrice is the plan a price buys; a price not configured buys nothing (free), so an
// unknown price never grants more than the free plan.
func (c *Catalog) PlanOfPrice(price string) (Plan, bool) {
	p, ok := c.Prices[price]
	if !ok {
		return Free, false
	}
	return p, true
}

// Effective is the plan whose limits hold for subscription s at now: the subscribed plan while
// it is trialing or active, or past_due within the grace period; free otherwise (canceled,
// unpaid, paused, incomplete, or past_due beyond grace). Data is never deleted by a downgrade:
// only creates are refused.
func (c *Catalog) Effective(s db.BillingSubscription, now time.Time) Plan {
	if c.grants(s.Status, s.PastDueSince, now) {
		return Plan(s.Plan)
	}
	return Free
}

// grants reports whether a subscription in status (past due since pastDueSince) grants its
// plan at now.
func (c *Catalog) grants(status string, pastDueSince *time.Time, now time.Time) bool {
	switch status {
	case "active", "trialing":
		return true
	case "past_due":
		return pastDueSince != nil && now.Before(pastDueSince.Add(c.PastDueGrace))
	}
	return false
}

// LimitsOf returns plan p's limits.
func (c *Catalog) LimitsOf(p Plan) Limits { return c.Limits[p] }

// Allowed is the plan that holds for subscription s at now and its limits. The subscription's
// quantity is shown, not enforced: the plans' limits decide (per-seat selling would need a
// checkout that sells the seats in use and a portal that changes them).
func (c *Catalog) Allowed(s db.BillingSubscription, now time.Time) (Plan, Limits) {
	p := c.Effective(s, now)
	return p, c.LimitsOf(p)
}

// Limit names.
const (
	LimitSeats    = "seats"
	LimitProjects = "projects"
	LimitStorage  = "storage"
)

// ReserveSeat checks that the tenant may have one more seat, inside the caller's write
// transaction. It takes the tenant's billing lock first and holds it until COMMIT, so
// concurrent creates are counted one after another: none overshoots.
func (c *Catalog) ReserveSeat(ctx context.Context, q *db.Queries, tenant uuid.UUID, now time.Time) error {
	return c.reserve(ctx, q, tenant, now, LimitSeats, q.CountSeats)
}

// ReserveProject is ReserveSeat for a project.
func (c *Catalog) ReserveProject(ctx context.Context, q *db.Queries, tenant uuid.UUID, now time.Time) error {
	return c.reserve(ctx, q, tenant, now, LimitProjects, q.CountProjects)
}

func (c *Catalog) reserve(ctx context.Context, q *db.Queries, tenant uuid.UUID, now time.Time, name string, count func(context.Context) (int64, error)) error {
	sub, err := q.LockBillingSubscription(ctx, tenant)
	if err != nil {
		return fmt.Errorf("billing lock: %w", err)
	}
	plan, limits := c.Allowed(sub, now)
	allowed := limits.Seats
	if name == LimitProjects {
		allowed = limits.Projects
	}
	if allowed == Unlimited {
		return nil
	}
	used, err := count(ctx)
	if err != nil {
		return fmt.Errorf("count %s: %w", name, err)
	}
	if used+1 > allowed {
		return problem.LimitReached(problem.Limit{Name: name, Usage: used, Allowed: allowed, Plan: string(plan)},
			"The tenant's %s plan allows %d %s and it has %d; upgrade the plan or remove some first.", plan, allowed, name, used)
	}
	return nil
}

// StorageAllowed returns the storage the tenant's plan allows at now, and the plan. It only
// reads, for the check before an upload's bytes arrive.
func (c *Catalog) StorageAllowed(ctx context.Context, q *db.Queries, now time.Time) (int64, Plan, error) {
	sub, err := q.GetBillingSubscription(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return c.LimitsOf(Free).StorageBytes, Free, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("billing: %w", err)
	}
	plan, l := c.Allowed(sub, now)
	return l.StorageBytes, plan, nil
}

// ReserveStorage is StorageAllowed inside the write transaction that records a file: it takes
// the tenant's billing lock, so the upload commits either before a plan change or is checked
// against the new plan.
func (c *Catalog) ReserveStorage(ctx context.Context, q *db.Queries, tenant uuid.UUID, now time.Time) (int64, Plan, error) {
	sub, err := q.LockBillingSubscription(ctx, tenant)
	if err != nil {
		return 0, "", fmt.Errorf("billing lock: %w", err)
	}
	plan, l := c.Allowed(sub, now)
	return l.StorageBytes, plan, nil
}

// StorageExceeded is the 402 for an upload that would take the tenant past its plan's storage:
// it stores used bytes, and its other uploads in progress hold inFlight more, which count until
// they end (the usage reported includes them).
func StorageExceeded(used, inFlight, allowed int64, plan Plan) *problem.Error {
	if inFlight > 0 {
		return problem.LimitReached(problem.Limit{Name: LimitStorage, Usage: used + inFlight, Allowed: allowed, Plan: string(plan)},
			"The %s plan allows %d bytes of files; the tenant stores %d and its uploads in progress hold %d more, so this upload does not fit. Retry once they end, upgrade the plan or delete files.",
			plan, allowed, used, inFlight)
	}
	return problem.LimitReached(problem.Limit{Name: LimitStorage, Usage: used, Allowed: allowed, Plan: string(plan)},
		"The %s plan allows %d bytes of files and the tenant stores %d; this upload does not fit. Upgrade the plan or delete files first.",
		plan, allowed, used)
}
