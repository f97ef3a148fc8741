package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The bench tenant: what scripts/bench-tasks.sh signs in as and lists.
const (
	benchSlug       = "bench"
	benchEmail      = "owner@bench.test"
	seedPassword    = "bench password 1"
	benchProjectKey = "BENCH"
)

// tenantPlan is everything about one tenant except its tasks' contents, which are generated
// batch by batch while inserting.
type tenantPlan struct {
	id       uuid.UUID
	slug     string
	name     string
	plan     string
	users    []userPlan // users[0] is the owner
	teams    []teamPlan
	projects []projectPlan
}

type userPlan struct {
	id        uuid.UUID
	email     string
	name      string
	role      string
	createdAt time.Time
}

type teamPlan struct {
	id        uuid.UUID
	name      string
	key       string
	members   []int // indexes into tenantPlan.users; the first is the lead
	createdAt time.Time
}

type projectPlan struct {
	id        uuid.UUID
	team      int // index into tenantPlan.teams
	name      string
	key       string
	tasks     int
	createdAt time.Time
}

// newID returns a time-ordered UUIDv7, as the API does, so B-tree inserts stay local.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// makePlan lays out the bench tenant and n other tenants holding totalTasks tasks in all, of
// which benchTasks are in the bench project. Tenant sizes follow a log-normal distribution: a
// few big tenants, many small ones, some with no tasks at all.
func makePlan(rng *rand.Rand, n, totalTasks, benchTasks int, now time.Time) ([]tenantPlan, error) {
	if benchTasks > totalTasks {
		return nil, fmt.Errorf("-bench-tasks (%d) is more than -tasks (%d)", benchTasks, totalTasks)
	}
	rest := totalTasks - benchTasks

	// The bench tenant's other projects get a small share; the seeded tenants the rest.
	benchOther := rest
	if n > 0 {
		benchOther = min(rest/(n+1), 300)
	}
	rest -= benchOther
	sizes := split(rng, rest, n, 2.0)

	plans := make([]tenantPlan, 0, n+1)
	bench := newTenant(rng, benchSlug, "Bench Inc", "enterprise", 4, now)
	bench.users[0].email = benchEmail
	bench.teams = []teamPlan{{id: newID(), name: "Bench", key: "BEN", members: []int{0, 1, 2, 3, 4}, createdAt: bench.users[0].createdAt}}
	bench.projects = []projectPlan{
		{id: newID(), team: 0, name: "Benchmark", key: benchProjectKey, tasks: benchTasks},
		{id: newID(), team: 0, name: "Operations", key: "OPS", tasks: benchOther / 2},
		{id: newID(), team: 0, name: "Website", key: "WEB", tasks: benchOther - benchOther/2},
	}
	for i := range bench.projects {
		bench.projects[i].createdAt = randTime(rng, bench.users[0].createdAt, now)
	}
	plans = append(plans, bench)

	for i := range n {
		slug := fmt.Sprintf("seed-%d", i+1)
		name := pick(rng, companyAdjectives) + " " + pick(rng, companyNouns)
		t := newTenant(rng, slug, name, pickWeighted(rng, plansByWeight), 1+rng.IntN(5), now)

		teamKeys := sample(rng, teamNames, 1+rng.IntN(3))
		for _, tn := range teamKeys {
			// Every team has at least one member; the owner is in about half of them.
			members := sample(rng, indexes(len(t.users)), 1+rng.IntN(len(t.users)))
			t.teams = append(t.teams, teamPlan{id: newID(), name: tn.name, key: tn.key, members: members,
				createdAt: randTime(rng, t.users[0].createdAt, now)})
		}
		projects := sample(rng, projectNames, 1+rng.IntN(5))
		counts := split(rng, sizes[i], len(projects), 1.0)
		for j, pn := range projects {
			team := rng.IntN(len(t.teams))
			t.projects = append(t.projects, projectPlan{id: newID(), team: team, name: pn.name, key: pn.key,
				tasks: counts[j], createdAt: randTime(rng, t.teams[team].createdAt, now)})
		}
		plans = append(plans, t)
	}
	return plans, nil
}

// newTenant returns a tenant with an owner and extra users, and no teams or projects yet.
func newTenant(rng *rand.Rand, slug, name, plan string, extraUsers int, now time.Time) tenantPlan {
	t := tenantPlan{id: newID(), slug: slug, name: name, plan: plan}
	start := now.Add(-time.Duration(30+rng.IntN(700)) * 24 * time.Hour)
	first := sample(rng, firstNames, extraUsers+1)
	for i, fn := range first {
		u := userPlan{id: newID(), name: fn + " " + pick(rng, lastNames), role: "member", createdAt: start}
		switch {
		case i == 0:
			u.role = "owner"
			u.email = "owner@" + slug + ".test"
		default:
			u.email = fmt.Sprintf("%s@%s.test", strings.ToLower(fn), slug)
			u.role = pickWeighted(rng, rolesByWeight)
			u.createdAt = randTime(rng, start, now)
		}
		t.users = append(t.users, u)
	}
	return t
}

// split divides total into n parts with log-normal weights of spread sigma; the parts sum to
// total exactly (largest remainders get the leftovers).
func split(rng *rand.Rand, total, n int, sigma float64) []int {
	parts := make([]int, n)
	if n == 0 || total == 0 {
		return parts
	}
	weights := make([]float64, n)
	sum := 0.0
	for i := range weights {
		weights[i] = math.Exp(rng.NormFloat64() * sigma)
		sum += weights[i]
	}
	given := 0
	rem := make([]float64, n)
	for i, w := range weights {
		exact := float64(total) * w / sum
		parts[i] = int(exact)
		rem[i] = exact - float64(parts[i])
		given += parts[i]
	}
	for ; given < total; given++ {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		parts[best]++
		rem[best] = -1
	}
	return parts
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// sample returns k distinct elements of xs (all of them if k >= len(xs)) in random order.
func sample[T any](rng *rand.Rand, xs []T, k int) []T {
	idx := rng.Perm(len(xs))
	out := make([]T, 0, min(k, len(xs)))
	for _, i := range idx[:min(k, len(xs))] {
		out = append(out, xs[i])
	}
	return out
}

type weighted struct {
	value  string
	weight int
}

func pickWeighted(rng *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.weight
	}
	r := rng.IntN(total)
	for _, w := range ws {
		if r < w.weight {
			return w.value
		}
		r -= w.weight
	}
	return ws[len(ws)-1].value
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func randTime(rng *rand.Rand, from, to time.Time) time.Time {
	if !to.After(from) {
		return from
	}
	return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
}
