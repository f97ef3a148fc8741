package handlers_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/problem"
)

// The tests of plan limits: each plan's seats, projects and storage at the edge under
// concurrent creates, and what a downgrade (canceled, unpaid, past_due beyond the grace) does.
// Plans change only through signed Stripe webhooks, as in production.

// limitPlans is the test catalog (prices, a week's grace) with the given limits.
func limitPlans(free, pro, enterprise billing.Limits) *billing.Catalog {
	c := apitest.TestCatalog()
	c.Limits = map[billing.Plan]billing.Limits{billing.Free: free, billing.Pro: pro, billing.Enterprise: enterprise}
	return c
}

// limitEnv starts a server on catalog c; none of these tests calls Stripe's API.
func limitEnv(t *testing.T, c *billing.Catalog) *apitest.Env {
	t.Helper()
	return apitest.NewWithOptions(t, apitest.Options{NoStripe: true, Billing: handlers.BillingConfig{Catalog: c}})
}

var unlimited = billing.Limits{Seats: billing.Unlimited, Projects: billing.Unlimited, StorageBytes: billing.Unlimited}

// planPrice is the Stripe price that buys each paid plan in the test catalog.
var planPrice = map[api.Plan]string{api.PlanPro: "price_pro", api.PlanEnterprise: "price_enterprise"}

// stripeSub is a workspace's Stripe subscription of seats seats (its quantity), moved by signed
// webhooks, each event a second newer than the one before.
type stripeSub struct {
	env          *apitest.Env
	tenant       uuid.UUID
	id, customer string
	seats        int
	at           time.Time
}

// send delivers an event of typ putting the subscription in status on price, and wants it applied.
func (s *stripeSub) send(t *testing.T, typ, status, price string) {
	t.Helper()
	s.at = s.at.Add(time.Second)
	sendEvent(t, s.env, newStripeEvent(t, typ, s.at).subscription(s.id, s.customer, s.tenant, status, price, s.seats, s.at.Add(30*24*time.Hour)), "applied")
}

// subscribe puts the workspace on plan (free: nothing to do) with an active subscription of
// seats seats (shown, not enforced: the plan's limits decide).
func subscribe(t *testing.T, env *apitest.Env, w workspace, plan api.Plan, seats int) *stripeSub {
	t.Helper()
	s := &stripeSub{env: env, tenant: w.Tenant.Id, id: "sub_" + uuid.NewString()[:12], customer: "cus_" + uuid.NewString()[:12],
		seats: seats, at: time.Now().Add(-time.Hour).Truncate(time.Second)}
	if plan != api.PlanFree {
		s.send(t, "customer.subscription.created", "active", planPrice[plan])
	}
	if got := subscriptionOf(t, env, w, api.UserRoleOwner).EffectivePlan; got != plan {
		t.Fatalf("effective plan %s after subscribing, want %s", got, plan)
	}
	return s
}

// refusal is what a 402 limit-exceeded problem says.
type refusal struct {
	limit          api.ProblemLimit
	usage, allowed int64
	plan           api.ProblemPlan
}

// refusalOf reads the 402 limit-exceeded problem of a response; false for any other response.
func refusalOf(status int, p *api.Problem) (refusal, bool) {
	if status != http.StatusPaymentRequired || p == nil || p.Status != status || p.Type != problem.LimitExceeded.Type() {
		return refusal{}, false
	}
	return refusal{deref(p.Limit), deref(p.Usage), deref(p.Allowed), deref(p.Plan)}, true
}

// wantRefusal fails unless a response is the 402 problem want.
func wantRefusal(t *testing.T, what string, status int, body []byte, p *api.Problem, want refusal) {
	t.Helper()
	if got, ok := refusalOf(status, p); !ok || got != want {
		t.Errorf("%s: %d %s; want 402 limit-exceeded %+v", what, status, body, want)
	}
}

func invite(t *testing.T, env *apitest.Env, w workspace, email string) *api.CreateUserResponse {
	t.Helper()
	r, err := env.Client.CreateUserWithResponse(bg, nil, api.UserCreate{Email: openapi_types.Email(email), Name: email, Role: api.UserRoleMember}, w.as(api.UserRoleOwner))
	if err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	return r
}

func newProject(t *testing.T, env *apitest.Env, w workspace, key string) *api.CreateProjectResponse {
	t.Helper()
	r, err := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.team.Id, Name: key, Key: key}, w.as(api.UserRoleOwner))
	if err != nil {
		t.Fatalf("create project %s: %v", key, err)
	}
	return r
}

// projectKey is the i-th of distinct project keys (uppercase letters only).
func projectKey(prefix string, i int) string {
	return prefix + string(rune('A'+i/26)) + string(rune('A'+i%26))
}

// listedUsers is GET /v1/users: every user, and how many hold a seat (not deactivated).
func listedUsers(t *testing.T, env *apitest.Env, w workspace) (all []api.User, seats int64) {
	t.Helper()
	r, err := env.Client.ListUsersWithResponse(bg, &api.ListUsersParams{Limit: ptr(200)}, w.as(api.UserRoleOwner))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("list users: %v %s", err, r.Body)
	}
	for _, u := range r.JSON200.Items {
		if u.Status != api.UserStatusDeactivated {
			seats++
		}
	}
	return r.JSON200.Items, seats
}

// listedProjects is GET /v1/projects, archived ones included.
func listedProjects(t *testing.T, env *apitest.Env, w workspace) []api.Project {
	t.Helper()
	r, err := env.Client.ListProjectsWithResponse(bg, &api.ListProjectsParams{Limit: ptr(200)}, w.as(api.UserRoleOwner))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("list projects: %v %s", err, r.Body)
	}
	return r.JSON200.Items
}

// warmPool opens every connection the server's pool may hold and leaves them idle, so the
// requests of a burst run their transactions side by side rather than one after another on the
// few connections already open while new ones are still being set up.
func warmPool(t *testing.T, env *apitest.Env) {
	t.Helper()
	conns := make([]*pgxpool.Conn, env.Pool.Config().MaxConns)
	for i := range conns {
		c, err := env.Pool.Acquire(bg)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		c.Release()
	}
}

// burst runs f(0..n-1) in n goroutines released together.
func burst(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

// tally counts a burst's outcomes: created, refused with exactly the expected problem, other.
type tally struct {
	mu               sync.Mutex
	created, refused int
}

func (c *tally) add(t *testing.T, what string, status int, body []byte, p *api.Problem, want refusal) {
	c.addIf(t, what, status, body, p, func(r refusal) bool { return r == want }, fmt.Sprintf("%+v", want))
}

// addIf is add for refusals that pass ok, described by wantText.
func (c *tally) addIf(t *testing.T, what string, status int, body []byte, p *api.Problem, ok func(refusal) bool, wantText string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch got, is := refusalOf(status, p); {
	case status == http.StatusCreated || status == http.StatusOK:
		c.created++
	case is && ok(got):
		c.refused++
	default:
		t.Errorf("%s: %d %s; want success or 402 %s", what, status, body, wantText)
	}
}

func (c *tally) want(t *testing.T, n int, limit int64, used int64) {
	t.Helper()
	room := int(min(int64(n), limit-used))
	if c.created != room || c.refused != n-room {
		t.Fatalf("%d created, %d refused; want exactly %d created (the room left) and %d refused", c.created, c.refused, room, n-room)
	}
}

// limitOrNil is a limit as GET /v1/billing/subscription shows it: left out when unlimited.
func limitOrNil(v int64) *int64 {
	if v == billing.Unlimited {
		return nil
	}
	return &v
}

func sameLimit(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// showLimit prints a limit of GET /v1/billing/subscription.
func showLimit(v *int64) string {
	if v == nil {
		return "unlimited"
	}
	return fmt.Sprint(*v)
}

// edgeCatalog has limits a burst of 20 creates passes: free 8 seats and 4 projects, pro 12 and
// 9, enterprise no limit of its own.
func edgeCatalog() *billing.Catalog {
	big := int64(1 << 30)
	return limitPlans(
		billing.Limits{Seats: 8, Projects: 4, StorageBytes: big},
		billing.Limits{Seats: 12, Projects: 9, StorageBytes: big},
		unlimited)
}

func TestPlanLimitSeatsHoldUnderConcurrentCreates(t *testing.T) {
	t.Parallel()
	const n, used = 20, 5 // newWorkspace's five users hold five seats
	for _, tc := range []struct {
		name   string
		plan   api.Plan
		bought int   // the subscription's quantity
		seats  int64 // what the tenant may have
	}{
		{"free", api.PlanFree, 0, 8},
		{"pro, more seats bought than it allows", api.PlanPro, 100, 12},
		// The subscription's quantity is shown, not enforced: the plan's limits decide (a
		// checkout sells quantity 1, whatever the tenant's size).
		{"pro, fewer seats bought", api.PlanPro, 1, 12},
		{"enterprise, no seat limit", api.PlanEnterprise, 14, billing.Unlimited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := limitEnv(t, edgeCatalog())
			w := newWorkspace(t, env)
			subscribe(t, env, w, tc.plan, tc.bought)
			want := refusal{api.Seats, tc.seats, tc.seats, api.ProblemPlan(tc.plan)}
			var got tally
			warmPool(t, env)
			burst(n, func(i int) {
				r := invite(t, env, w, fmt.Sprintf("seat%02d@example.test", i))
				got.add(t, fmt.Sprintf("invite %d", i), r.StatusCode(), r.Body, problemIn(r.Body), want)
			})
			got.want(t, n, tc.seats, used)

			wantSeats := min(tc.seats, used+n)
			if _, seats := listedUsers(t, env, w); seats != wantSeats {
				t.Errorf("GET /v1/users lists %d users holding a seat, want %d", seats, wantSeats)
			}
			s := subscriptionOf(t, env, w, api.UserRoleOwner)
			if s.Usage.Seats != wantSeats || !sameLimit(s.Limits.Seats, limitOrNil(tc.seats)) {
				t.Errorf("subscription usage.seats %d, limits.seats %s; want %d and %s", s.Usage.Seats, showLimit(s.Limits.Seats), wantSeats, showLimit(limitOrNil(tc.seats)))
			}
			if wantSeats == tc.seats {
				r := invite(t, env, w, "one-more@example.test")
				wantRefusal(t, "an invite to a full tenant", r.StatusCode(), r.Body, problemIn(r.Body), want)
			}
		})
	}
}

func TestPlanLimitProjectsHoldUnderConcurrentCreatesArchivedIncluded(t *testing.T) {
	t.Parallel()
	const n, used = 20, 1 // newWorkspace's project
	for _, tc := range []struct {
		plan api.Plan
		proj int64
	}{{api.PlanFree, 4}, {api.PlanPro, 9}, {api.PlanEnterprise, billing.Unlimited}} {
		t.Run(string(tc.plan), func(t *testing.T) {
			t.Parallel()
			env := limitEnv(t, edgeCatalog())
			w := newWorkspace(t, env)
			subscribe(t, env, w, tc.plan, 100)
			// An archived project keeps its data, so it keeps counting.
			if r, err := env.Client.UpdateProjectWithResponse(bg, w.project.Id, api.ProjectUpdate{Status: ptr(api.ProjectStatusArchived)}, w.as(api.UserRoleOwner)); err != nil || r.JSON200 == nil {
				t.Fatalf("archive: %v %s", err, r.Body)
			}
			want := refusal{api.Projects, tc.proj, tc.proj, api.ProblemPlan(tc.plan)}
			var got tally
			warmPool(t, env)
			burst(n, func(i int) {
				r := newProject(t, env, w, projectKey("Q", i))
				got.add(t, fmt.Sprintf("project %d", i), r.StatusCode(), r.Body, problemIn(r.Body), want)
			})
			got.want(t, n, tc.proj, used)

			wantProjects := min(tc.proj, used+n)
			if listed := listedProjects(t, env, w); int64(len(listed)) != wantProjects {
				t.Errorf("GET /v1/projects lists %d, want %d", len(listed), wantProjects)
			}
			s := subscriptionOf(t, env, w, api.UserRoleOwner)
			if s.Usage.Projects != wantProjects || !sameLimit(s.Limits.Projects, limitOrNil(tc.proj)) {
				t.Errorf("subscription usage.projects %d, limits.projects %s; want %d and %s", s.Usage.Projects, showLimit(s.Limits.Projects), wantProjects, showLimit(limitOrNil(tc.proj)))
			}
		})
	}
}

func TestPlanLimitStorageHoldsUnderConcurrentUploadsAcrossServers(t *testing.T) {
	t.Parallel()
	const n, size, quota = 20, 1000, 10_500 // room for 10 files on pro, not 11
	c := limitPlans(
		billing.Limits{Seats: 1000, Projects: 1000, StorageBytes: 4000},
		billing.Limits{Seats: 1000, Projects: 1000, StorageBytes: quota},
		unlimited)
	env := limitEnv(t, c)
	// Two instances behind one database and one store: neither sees the other's uploads in
	// flight, so only the database's count can hold the quota.
	peer := env.Peer(t, apitest.Options{NoStripe: true, Billing: handlers.BillingConfig{Catalog: c}})
	w := newWorkspace(t, env)
	subscribe(t, env, w, api.PlanPro, 100)
	// A refusal names storage, the quota and pro, and a usage that explains it: with this
	// upload's bytes it does not fit. An upload refused while receiving counts the bytes the
	// tenant's other uploads hold in flight as used, and says so.
	fits := func(r refusal) bool {
		return r.limit == api.Storage && r.allowed == quota && r.plan == api.ProblemPlanPro && r.usage+size > quota
	}
	var got tally
	warmPool(t, env)
	warmPool(t, peer)
	burst(n, func(i int) {
		r := upload(t, []*apitest.Env{env, peer}[i%2], w.tokens[api.UserRoleMember], nil, "edge.png", bytes.NewReader(pngBytes(size)))
		got.addIf(t, fmt.Sprintf("upload %d", i), r.StatusCode(), r.Body, problemIn(r.Body), fits, "storage of pro, a usage that leaves no room for this upload")
	})
	got.want(t, n, quota/size, 0)
	if used := storageUsed(t, env, w); used != 10*size {
		t.Fatalf("storage used %d, want %d", used, 10*size)
	}
	if keys := blobs(t, env); len(keys) != 10 {
		t.Errorf("%d blobs, want 10: a refused upload must leave none", len(keys))
	}
	// The room left is exactly usable, and then nothing more fits.
	mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "fill.png", pngBytes(quota-10*size))
	r := upload(t, peer, w.tokens[api.UserRoleMember], nil, "over.png", bytes.NewReader(pngBytes(100)))
	wantRefusal(t, "an upload to a full tenant", r.StatusCode(), r.Body, problemIn(r.Body), refusal{api.Storage, quota, quota, api.ProblemPlanPro})
	s := subscriptionOf(t, env, w, api.UserRoleOwner)
	if s.Usage.StorageBytes != quota || deref(s.Limits.StorageBytes) != quota {
		t.Errorf("subscription usage.storage_bytes %d, limits.storage_bytes %s; want %d of %d", s.Usage.StorageBytes, showLimit(s.Limits.StorageBytes), quota, quota)
	}
}

func TestPlanLimitReactivationTakesASeatAndDeactivationFreesOne(t *testing.T) {
	t.Parallel()
	const limit = 7
	env := limitEnv(t, limitPlans(billing.Limits{Seats: limit, Projects: 1000, StorageBytes: 1 << 30}, unlimited, unlimited))
	w := newWorkspace(t, env)
	full := refusal{api.Seats, limit, limit, api.ProblemPlanFree}
	owner := w.as(api.UserRoleOwner)
	setStatus := func(id uuid.UUID, s api.UserUpdateStatus) *api.UpdateUserResponse {
		t.Helper()
		r, err := env.Client.UpdateUserWithResponse(bg, id, api.UserUpdate{Status: &s}, owner)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	deactivate := func(id uuid.UUID) {
		t.Helper()
		if r, err := env.Client.DeactivateUserWithResponse(bg, id, owner); err != nil || r.StatusCode() != http.StatusNoContent {
			t.Fatalf("deactivate %s: %v %s", id, err, r.Body)
		}
	}
	viewer, member := w.users[api.UserRoleViewer].Id, w.users[api.UserRoleMember].Id
	deactivate(viewer)
	deactivate(member)
	var invited []uuid.UUID
	for i := range 4 { // owner, admin, outsider and 4 invited: the limit
		r := invite(t, env, w, fmt.Sprintf("fill%d@example.test", i))
		if r.JSON201 == nil {
			t.Fatalf("invite %d: %d %s", i, r.StatusCode(), r.Body)
		}
		invited = append(invited, r.JSON201.User.Id)
	}
	r := setStatus(viewer, api.UserUpdateStatusActive)
	wantRefusal(t, "reactivating with every seat taken", r.StatusCode(), r.Body, problemIn(r.Body), full)
	if u, _ := env.Client.GetUserWithResponse(bg, viewer, owner); u.JSON200 == nil || u.JSON200.Status != api.UserStatusDeactivated {
		t.Errorf("a refused reactivation changed the user: %s", u.Body)
	}

	// Deactivating one frees exactly one seat; reactivations and invites race for it.
	deactivate(invited[0])
	var got tally
	warmPool(t, env)
	burst(10, func(i int) {
		switch i {
		case 0, 1:
			r := setStatus([]uuid.UUID{viewer, member}[i], api.UserUpdateStatusActive)
			got.add(t, fmt.Sprintf("reactivation %d", i), r.StatusCode(), r.Body, problemIn(r.Body), full)
		default:
			r := invite(t, env, w, fmt.Sprintf("race%d@example.test", i))
			got.add(t, fmt.Sprintf("invite %d", i), r.StatusCode(), r.Body, problemIn(r.Body), full)
		}
	})
	got.want(t, 10, limit, limit-1)
	if _, seats := listedUsers(t, env, w); seats != limit {
		t.Errorf("%d users hold a seat after the race, want %d", seats, limit)
	}
	if s := subscriptionOf(t, env, w, api.UserRoleOwner); s.Usage.Seats != limit {
		t.Errorf("usage.seats %d, want %d", s.Usage.Seats, limit)
	}
	// Whichever of the two is still deactivated comes back once a seat is free.
	still := member
	if u, _ := env.Client.GetUserWithResponse(bg, viewer, owner); u.JSON200 != nil && u.JSON200.Status == api.UserStatusDeactivated {
		still = viewer
	}
	deactivate(invited[1])
	if r := setStatus(still, api.UserUpdateStatusActive); r.JSON200 == nil || r.JSON200.Status != api.UserStatusActive {
		t.Errorf("reactivating into a freed seat: %d %s", r.StatusCode(), r.Body)
	}
	r2 := invite(t, env, w, "late@example.test")
	wantRefusal(t, "an invite after the reactivation took the seat", r2.StatusCode(), r2.Body, problemIn(r2.Body), full)
}

func TestPlanLimitCanceledFallsBackToFreeKeepingData(t *testing.T) {
	t.Parallel()
	free := billing.Limits{Seats: 6, Projects: 2, StorageBytes: 5000}
	env := limitEnv(t, limitPlans(free, billing.Limits{Seats: 12, Projects: 6, StorageBytes: 50_000}, unlimited))
	w := newWorkspace(t, env)
	sub := subscribe(t, env, w, api.PlanPro, 12)
	member := w.tokens[api.UserRoleMember]

	// On pro the tenant grows past what free allows: 8 seats, 4 projects, 9000 bytes.
	var invited []uuid.UUID
	for i := range 3 {
		r := invite(t, env, w, fmt.Sprintf("pro%d@example.test", i))
		if r.JSON201 == nil {
			t.Fatalf("invite on pro: %d %s", r.StatusCode(), r.Body)
		}
		invited = append(invited, r.JSON201.User.Id)
	}
	var projects []uuid.UUID
	for _, key := range []string{"ALPHA", "BETA", "GAMMA"} {
		r := newProject(t, env, w, key)
		if r.JSON201 == nil {
			t.Fatalf("project on pro: %d %s", r.StatusCode(), r.Body)
		}
		projects = append(projects, r.JSON201.Id)
	}
	task := createTask(t, env, w, api.TaskCreate{Title: "with files"})
	contents := [][]byte{pngBytes(3000), pngBytes(3000), pngBytes(3000)}
	stored := []api.File{
		mustUpload(t, env, member, &task.Id, "a.png", contents[0]),
		mustUpload(t, env, member, &task.Id, "b.png", contents[1]),
		mustUpload(t, env, member, nil, "c.png", contents[2]),
	}

	sub.send(t, "customer.subscription.deleted", "canceled", "price_pro")
	s := subscriptionOf(t, env, w, api.UserRoleOwner)
	if s.Status != "canceled" || s.EffectivePlan != api.PlanFree ||
		deref(s.Limits.Seats) != free.Seats || deref(s.Limits.Projects) != free.Projects || deref(s.Limits.StorageBytes) != free.StorageBytes ||
		s.Usage != (api.BillingUsage{Seats: 8, Projects: 4, StorageBytes: 9000}) {
		t.Fatalf("after the cancellation: %+v; want canceled on free limits, usage 8/4/9000", s)
	}

	// Nothing is deleted: everything reads as before.
	if _, seats := listedUsers(t, env, w); seats != 8 {
		t.Errorf("%d users hold a seat after the downgrade, want all 8", seats)
	}
	if listed := listedProjects(t, env, w); len(listed) != 4 {
		t.Errorf("%d projects listed after the downgrade, want all 4", len(listed))
	}
	if r, _ := env.Client.ListTaskFilesWithResponse(bg, task.Key, nil, w.as(api.UserRoleViewer)); r.JSON200 == nil || len(r.JSON200.Items) != 2 {
		t.Errorf("the task's files after the downgrade: %s", r.Body)
	}
	for i, f := range stored {
		if r, _ := env.Client.GetFileContentWithResponse(bg, f.Id, nil, w.as(api.UserRoleViewer)); r.StatusCode() != http.StatusOK || !bytes.Equal(r.Body, contents[i]) {
			t.Errorf("file %d after the downgrade: %d, %d bytes", i, r.StatusCode(), len(r.Body))
		}
	}

	// Creating anything is refused, naming the free plan and the tenant's usage.
	refused := func(seats, projects, storage int64) {
		t.Helper()
		u := invite(t, env, w, "refused@example.test")
		wantRefusal(t, "invite", u.StatusCode(), u.Body, problemIn(u.Body), refusal{api.Seats, seats, free.Seats, api.ProblemPlanFree})
		p := newProject(t, env, w, "NOPE")
		wantRefusal(t, "project", p.StatusCode(), p.Body, problemIn(p.Body), refusal{api.Projects, projects, free.Projects, api.ProblemPlanFree})
		f := upload(t, env, member, nil, "nope.png", bytes.NewReader(pngBytes(100)))
		wantRefusal(t, "upload", f.StatusCode(), f.Body, problemIn(f.Body), refusal{api.Storage, storage, free.StorageBytes, api.ProblemPlanFree})
	}
	refused(8, 4, 9000)

	// Deleting works, and the tenant stays over the limit until it is under.
	if r, _ := env.Client.DeleteFileWithResponse(bg, stored[2].Id, w.as(api.UserRoleMember)); r.StatusCode() != http.StatusNoContent {
		t.Errorf("delete a file: %d %s", r.StatusCode(), r.Body)
	}
	if r, _ := env.Client.DeleteProjectWithResponse(bg, projects[0], nil, w.as(api.UserRoleOwner)); r.StatusCode() != http.StatusNoContent {
		t.Errorf("delete a project: %d %s", r.StatusCode(), r.Body)
	}
	if r, _ := env.Client.DeactivateUserWithResponse(bg, invited[0], w.as(api.UserRoleOwner)); r.StatusCode() != http.StatusNoContent {
		t.Errorf("deactivate a user: %d %s", r.StatusCode(), r.Body)
	}
	refused(7, 3, 6000)

	// Subscribing again lifts the limits.
	sub.id = "sub_" + uuid.NewString()[:12]
	sub.send(t, "customer.subscription.updated", "active", "price_pro")
	if s := subscriptionOf(t, env, w, api.UserRoleOwner); s.EffectivePlan != api.PlanPro {
		t.Fatalf("effective plan %s after subscribing again, want pro", s.EffectivePlan)
	}
	if r := invite(t, env, w, "back@example.test"); r.JSON201 == nil {
		t.Errorf("invite back on pro: %d %s", r.StatusCode(), r.Body)
	}
	if r := newProject(t, env, w, "BACK"); r.JSON201 == nil {
		t.Errorf("project back on pro: %d %s", r.StatusCode(), r.Body)
	}
	mustUpload(t, env, member, nil, "back.png", pngBytes(100))
}

func TestPlanLimitPastDueKeepsThePlanForTheGraceOnlyAndUnpaidDoesNot(t *testing.T) {
	t.Parallel()
	const freeSeats = 6
	c := limitPlans(billing.Limits{Seats: freeSeats, Projects: 1000, StorageBytes: 1 << 30}, billing.Limits{Seats: 100, Projects: 1000, StorageBytes: 1 << 30}, unlimited)
	env := limitEnv(t, c)
	w := newWorkspace(t, env)
	sub := subscribe(t, env, w, api.PlanPro, 100)
	seats := int64(5)
	mustInvite := func(env *apitest.Env, what string) {
		t.Helper()
		seats++
		if r := invite(t, env, w, fmt.Sprintf("u%d@example.test", seats)); r.JSON201 == nil {
			t.Fatalf("%s: %d %s", what, r.StatusCode(), r.Body)
		}
	}
	mustInvite(env, "invite on pro")
	mustInvite(env, "invite on pro") // 7 seats: past free's 6

	sub.send(t, "customer.subscription.updated", "past_due", "price_pro")
	s := subscriptionOf(t, env, w, api.UserRoleOwner)
	if s.Status != "past_due" || s.EffectivePlan != api.PlanPro || s.GracePeriodEnd == nil || !s.GracePeriodEnd.Equal(sub.at.Add(c.PastDueGrace)) {
		t.Fatalf("past_due: %+v; want pro until %s", s, sub.at.Add(c.PastDueGrace))
	}
	mustInvite(env, "invite while past_due")

	// The same tenant seen by servers whose clock is later: six days on, still within the
	// grace; eight days on, past it, free limits hold.
	at := func(d time.Duration) *apitest.Env {
		return env.Peer(t, apitest.Options{NoStripe: true, Billing: handlers.BillingConfig{Catalog: c, Now: func() time.Time { return time.Now().Add(d) }}})
	}
	within, beyond := at(6*24*time.Hour), at(8*24*time.Hour)
	if s := subscriptionOf(t, within, w, api.UserRoleOwner); s.EffectivePlan != api.PlanPro {
		t.Errorf("six days past due: effective plan %s, want pro", s.EffectivePlan)
	}
	mustInvite(within, "invite six days past due")
	if s := subscriptionOf(t, beyond, w, api.UserRoleOwner); s.EffectivePlan != api.PlanFree || deref(s.Limits.Seats) != freeSeats || s.Usage.Seats != seats {
		t.Errorf("eight days past due: %+v; want free limits", s)
	}
	r := invite(t, beyond, w, "beyond@example.test")
	wantRefusal(t, "invite eight days past due", r.StatusCode(), r.Body, problemIn(r.Body), refusal{api.Seats, seats, freeSeats, api.ProblemPlanFree})
	// Only the limit passed refuses: projects are within free's.
	if r := newProject(t, beyond, w, "LATE"); r.JSON201 == nil {
		t.Errorf("a project within free's limits, eight days past due: %d %s", r.StatusCode(), r.Body)
	}

	// unpaid: free at once, whatever the grace.
	sub.send(t, "customer.subscription.updated", "unpaid", "price_pro")
	if s := subscriptionOf(t, env, w, api.UserRoleOwner); s.Status != "unpaid" || s.EffectivePlan != api.PlanFree {
		t.Fatalf("unpaid: %+v; want free", s)
	}
	r = invite(t, env, w, "unpaid@example.test")
	wantRefusal(t, "invite while unpaid", r.StatusCode(), r.Body, problemIn(r.Body), refusal{api.Seats, seats, freeSeats, api.ProblemPlanFree})
}

func TestPlanLimitSubscriptionShowsUsageAndTheEffectivePlansLimits(t *testing.T) {
	t.Parallel()
	free := billing.Limits{Seats: 8, Projects: 5, StorageBytes: 100_000}
	pro := billing.Limits{Seats: 12, Projects: 9, StorageBytes: 200_000}
	enterprise := billing.Limits{Seats: billing.Unlimited, Projects: billing.Unlimited, StorageBytes: 1 << 20}
	env := limitEnv(t, limitPlans(free, pro, enterprise))
	w := newWorkspace(t, env)
	check := func(what string, plan api.Plan, l billing.Limits, want api.BillingUsage) {
		t.Helper()
		s := subscriptionOf(t, env, w, api.UserRoleMember)
		if s.EffectivePlan != plan || !sameLimit(s.Limits.Seats, limitOrNil(l.Seats)) || !sameLimit(s.Limits.Projects, limitOrNil(l.Projects)) ||
			!sameLimit(s.Limits.StorageBytes, limitOrNil(l.StorageBytes)) {
			t.Errorf("%s: effective %s, limits %s/%s/%s; want %s, %s/%s/%s", what, s.EffectivePlan,
				showLimit(s.Limits.Seats), showLimit(s.Limits.Projects), showLimit(s.Limits.StorageBytes), plan,
				showLimit(limitOrNil(l.Seats)), showLimit(limitOrNil(l.Projects)), showLimit(limitOrNil(l.StorageBytes)))
		}
		if s.Usage != want {
			t.Errorf("%s: usage %+v, want %+v", what, s.Usage, want)
		}
		// The usage is what the tenant has, as the API lists it.
		_, seats := listedUsers(t, env, w)
		if listed := (api.BillingUsage{Seats: seats, Projects: int64(len(listedProjects(t, env, w))), StorageBytes: storageUsed(t, env, w)}); listed != s.Usage {
			t.Errorf("%s: usage %+v, but the tenant has %+v", what, s.Usage, listed)
		}
	}
	check("a new workspace", api.PlanFree, free, api.BillingUsage{Seats: 5, Projects: 1})

	mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "a.png", pngBytes(1234))
	mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "b.png", pngBytes(4321))
	if r := invite(t, env, w, "invited@example.test"); r.JSON201 == nil { // an invitation holds a seat
		t.Fatalf("invite: %d %s", r.StatusCode(), r.Body)
	}
	if r, _ := env.Client.DeactivateUserWithResponse(bg, w.users[api.UserRoleViewer].Id, w.as(api.UserRoleOwner)); r.StatusCode() != http.StatusNoContent {
		t.Fatalf("deactivate: %d %s", r.StatusCode(), r.Body) // a deactivated user does not
	}
	if r, _ := env.Client.UpdateProjectWithResponse(bg, w.project.Id, api.ProjectUpdate{Status: ptr(api.ProjectStatusArchived)}, w.as(api.UserRoleOwner)); r.JSON200 == nil {
		t.Fatalf("archive: %d %s", r.StatusCode(), r.Body) // an archived project does
	}
	if r := newProject(t, env, w, "SECOND"); r.JSON201 == nil {
		t.Fatalf("project: %d %s", r.StatusCode(), r.Body)
	}
	used := api.BillingUsage{Seats: 5, Projects: 2, StorageBytes: 5555}
	check("after changes", api.PlanFree, free, used)

	sub := subscribe(t, env, w, api.PlanPro, 100)
	check("on pro", api.PlanPro, pro, used) // 100 seats bought, pro allows 12
	sub.seats = 40
	sub.send(t, "customer.subscription.updated", "active", "price_enterprise")
	check("on enterprise", api.PlanEnterprise, enterprise, used) // 40 seats bought, no limit
}
