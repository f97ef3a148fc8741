package handlers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
	"github.com/tasker/tasker/internal/webhooks"
)

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// message is the body of a delivery (Standard Webhooks' recommended shape).
type message struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func (r received) message(t *testing.T) message {
	t.Helper()
	var m message
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("delivery body %q: %v", r.body, err)
	}
	return m
}

// receiver is a webhook receiver on loopback that records what it gets and answers with
// status(n) for its n-th request (200 when status is nil).
type receiver struct {
	URL    string
	mu     sync.Mutex
	got    []received
	status func(n int) int
	signal chan struct{}
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{status: status, signal: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		n := len(r.got)
		r.mu.Unlock()
		select {
		case r.signal <- struct{}{}:
		default:
		}
		code := http.StatusOK
		if r.status != nil {
			code = r.status(n)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, strings.Repeat("answer ", 2000)) // longer than what is read
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks"
	return r
}

// wait returns the requests once there are at least n, failing after 15 s.
func (r *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if got := r.requests(); len(got) >= n {
			return got
		}
		select {
		case <-r.signal:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the receiver got %d requests in 15 s, want %d", len(r.requests()), n)
		}
	}
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// fastDeliveries runs deliveries with short delays, so retries happen within a test.
// Tests that run deliveries do not run in parallel: each server's dispatcher serves every
// tenant of the package's database (see apitest.Options.Deliveries).
func fastDeliveries(retry webhooks.Retry) apitest.Options {
	return apitest.Options{Deliveries: &webhooks.Config{Retry: retry, Sweep: 200 * time.Millisecond}}
}

func createHook(t *testing.T, env *apitest.Env, w workspace, body api.WebhookEndpointCreate) api.WebhookEndpointCreated {
	t.Helper()
	r, err := env.Client.CreateWebhookEndpointWithResponse(bg, body, w.as(api.UserRoleAdmin))
	if err != nil || r.JSON201 == nil {
		t.Fatalf("create endpoint: %v %s", err, r.Body)
	}
	return *r.JSON201
}

func deliveriesOf(t *testing.T, env *apitest.Env, w workspace, endpoint api.ID) []api.WebhookDelivery {
	t.Helper()
	r, err := env.Client.ListWebhookDeliveriesWithResponse(bg, endpoint, nil, w.as(api.UserRoleAdmin))
	if err != nil || r.JSON200 == nil {
		t.Fatalf("list deliveries: %v %s", err, r.Body)
	}
	return r.JSON200.Items
}

// verify checks a request with the Standard Webhooks library's own verifier.
func verify(secret string, r received) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	return wh.Verify(r.body, r.header)
}

func TestWebhookDeliveryVerifiesWithTheStandardLibraryAndRotationSignsTwice(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 3, Base: 200 * time.Millisecond}))
	w := newWorkspace(t, env)
	rcv := newReceiver(t, nil)
	hook := createHook(t, env, w, hookCreate(rcv.URL, "task.*"))

	// Not subscribed: a project event must not arrive; the task event must, once.
	if r, _ := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.team.Id, Name: "Other", Key: "OTH"}, w.as(api.UserRoleOwner)); r.JSON201 == nil {
		t.Fatalf("create project: %s", r.Body)
	}
	task := createTask(t, env, w, api.TaskCreate{Title: "Ship webhooks"})
	got := rcv.wait(t, 1)
	m := got[0].message(t)
	var data api.Task
	if err := json.Unmarshal(m.Data, &data); err != nil || m.Type != "task.created" || data.Id != task.Id || data.Title != "Ship webhooks" {
		t.Fatalf("delivered %s (%v)", got[0].body, err)
	}
	if err := verify(hook.Secret, got[0]); err != nil {
		t.Fatalf("the Standard Webhooks verifier refused the delivery: %v (headers %v)", err, got[0].header)
	}
	if err := verify("whsec_"+strings.Repeat("A", 43)+"=", got[0]); err == nil {
		t.Fatal("a wrong secret verified the delivery")
	}
	tampered := got[0]
	tampered.body = []byte(strings.Replace(string(tampered.body), "Ship webhooks", "Ship w3bhooks", 1))
	if err := verify(hook.Secret, tampered); err == nil {
		t.Fatal("a changed body verified")
	}
	if ct := got[0].header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	ds := deliveriesOf(t, env, w, hook.Id)
	if len(ds) != 1 || got[0].header.Get("webhook-id") != "msg_"+ds[0].Id.String() || ds[0].EventType != "task.created" ||
		ds[0].EventId == nil {
		t.Fatalf("deliveries %+v, webhook-id %q", ds, got[0].header.Get("webhook-id"))
	}
	// The record is written just after the answer: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for ds[0].Status != api.WebhookDeliveryStatusSucceeded && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		ds = deliveriesOf(t, env, w, hook.Id)
	}
	if ds[0].Status != api.WebhookDeliveryStatusSucceeded || len(ds[0].Attempts) != 1 || ds[0].Attempts[0].StatusCode == nil ||
		*ds[0].Attempts[0].StatusCode != 200 || ds[0].Attempts[0].Error != nil || ds[0].NextAttemptAt != nil {
		t.Fatalf("delivery after success: %+v", ds[0])
	}

	// During a rotation's overlap each delivery carries two signatures, and either secret alone
	// verifies it.
	rot, _ := env.Client.RotateWebhookSecretWithResponse(bg, hook.Id, api.WebhookSecretRotate{OverlapSeconds: ptr(600)}, w.as(api.UserRoleAdmin))
	if rot.JSON200 == nil {
		t.Fatalf("rotate: %s", rot.Body)
	}
	createTask(t, env, w, api.TaskCreate{Title: "After the rotation"})
	got = rcv.wait(t, 2)
	if sigs := strings.Fields(got[1].header.Get("webhook-signature")); len(sigs) != 2 {
		t.Fatalf("signatures during the overlap: %q", got[1].header.Get("webhook-signature"))
	}
	for name, secret := range map[string]string{"old": hook.Secret, "new": rot.JSON200.Secret} {
		if err := verify(secret, got[1]); err != nil {
			t.Errorf("the %s secret does not verify a delivery during the overlap: %v", name, err)
		}
	}
	// Without an overlap only the new secret signs.
	rot2, _ := env.Client.RotateWebhookSecretWithResponse(bg, hook.Id, api.WebhookSecretRotate{OverlapSeconds: ptr(0)}, w.as(api.UserRoleAdmin))
	if rot2.JSON200 == nil {
		t.Fatalf("rotate: %s", rot2.Body)
	}
	createTask(t, env, w, api.TaskCreate{Title: "After the overlap"})
	got = rcv.wait(t, 3)
	if err := verify(rot2.JSON200.Secret, got[2]); err != nil || verify(rot.JSON200.Secret, got[2]) == nil {
		t.Errorf("after an overlap of 0: new secret %v, the replaced one verified too: %v", err, verify(rot.JSON200.Secret, got[2]) == nil)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rcv.requests()); n != 3 {
		t.Errorf("the receiver got %d requests, want 3 (the project event is not subscribed)", n)
	}
}

func TestWebhookRetriesWithGrowingDelaysThenSucceedsOnce(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 8, Base: 300 * time.Millisecond, Max: 10 * time.Second}))
	w := newWorkspace(t, env)
	const failures = 3
	rcv := newReceiver(t, func(n int) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	hook := createHook(t, env, w, hookCreate(rcv.URL, "task.created"))
	createTask(t, env, w, api.TaskCreate{Title: "Flaky receiver"})

	rcv.wait(t, 1)
	// While attempts go on, a redelivery is refused: the delivery is pending.
	ds := deliveriesOf(t, env, w, hook.Id)
	if len(ds) != 1 {
		t.Fatalf("deliveries: %+v", ds)
	}
	re, _ := env.Client.RedeliverWebhookWithResponse(bg, hook.Id, ds[0].Id, w.as(api.UserRoleAdmin))
	wantStatus(t, "redeliver while pending", re.StatusCode(), re.Body, http.StatusConflict)

	got := rcv.wait(t, failures+1)
	time.Sleep(1500 * time.Millisecond) // longer than the next delay would be
	if n := len(rcv.requests()); n != failures+1 {
		t.Fatalf("the receiver got %d requests, want %d: retries stop at the first success", n, failures+1)
	}
	id := got[0].header.Get("webhook-id")
	var prev time.Duration
	for i := 1; i < len(got); i++ {
		if got[i].header.Get("webhook-id") != id {
			t.Errorf("attempt %d has webhook-id %q, want %q (the same message)", i+1, got[i].header.Get("webhook-id"), id)
		}
		gap := got[i].at.Sub(got[i-1].at)
		if gap <= prev {
			t.Errorf("delay before attempt %d is %v, not longer than the one before (%v)", i+1, gap, prev)
		}
		prev = gap
	}
	ds = deliveriesOf(t, env, w, hook.Id)
	if len(ds) != 1 || ds[0].Status != api.WebhookDeliveryStatusSucceeded || len(ds[0].Attempts) != failures+1 {
		t.Fatalf("delivery: %+v", ds)
	}
	for i, a := range ds[0].Attempts {
		want := http.StatusServiceUnavailable
		if i == failures {
			want = http.StatusNoContent
		}
		if a.Attempt != i+1 || a.StatusCode == nil || *a.StatusCode != want || (i < failures) != (a.Error != nil) {
			t.Errorf("attempt %d: %+v", i+1, a)
		}
	}
	if g, _ := env.Client.GetWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin)); g.JSON200 == nil || g.JSON200.FailingSince != nil {
		t.Errorf("after a success the failure streak is over: %s", g.Body)
	}
}

func TestWebhookTestPingAndRedelivery(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 2, Base: 200 * time.Millisecond}))
	w := newWorkspace(t, env)
	rcv := newReceiver(t, nil)
	hook := createHook(t, env, w, hookCreate(rcv.URL, "project.*"))

	ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if ping.JSON202 == nil || ping.JSON202.EventType != "webhook.test" || ping.JSON202.Status != api.WebhookDeliveryStatusPending {
		t.Fatalf("ping: %d %s", ping.StatusCode(), ping.Body)
	}
	got := rcv.wait(t, 1)
	m := got[0].message(t)
	if m.Type != "webhook.test" || !strings.Contains(string(m.Data), hook.Id.String()) || verify(hook.Secret, got[0]) != nil {
		t.Fatalf("ping delivered %s", got[0].body)
	}
	waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusSucceeded)

	re, _ := env.Client.RedeliverWebhookWithResponse(bg, hook.Id, ping.JSON202.Id, w.as(api.UserRoleAdmin))
	if re.JSON202 == nil || re.JSON202.Status != api.WebhookDeliveryStatusPending {
		t.Fatalf("redeliver: %d %s", re.StatusCode(), re.Body)
	}
	got = rcv.wait(t, 2)
	if got[1].header.Get("webhook-id") != got[0].header.Get("webhook-id") || string(got[1].body) != string(got[0].body) ||
		verify(hook.Secret, got[1]) != nil {
		t.Errorf("redelivery sent %s / %v, want the same message, signed", got[1].body, got[1].header)
	}
	d := waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusSucceeded)
	if len(d.Attempts) != 2 {
		t.Errorf("attempts after a redelivery: %s", attemptsText(d.Attempts))
	}

	// Unknown deliveries, another endpoint's, and roles below admin are refused.
	other := createHook(t, env, w, hookCreate(rcv.URL+"/other", "task.*"))
	r404, _ := env.Client.RedeliverWebhookWithResponse(bg, other.Id, ping.JSON202.Id, w.as(api.UserRoleAdmin))
	wantStatus(t, "redeliver through another endpoint", r404.StatusCode(), r404.Body, http.StatusNotFound)
	rMember, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleMember))
	wantStatus(t, "a member's ping", rMember.StatusCode(), rMember.Body, http.StatusForbidden)
	lViewer, _ := env.Client.ListWebhookDeliveriesWithResponse(bg, hook.Id, nil, w.as(api.UserRoleViewer))
	wantStatus(t, "a viewer's list", lViewer.StatusCode(), lViewer.Body, http.StatusForbidden)

	// Pagination walks every delivery once, newest first.
	for range 3 {
		if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
			t.Fatalf("ping: %s", p.Body)
		}
	}
	seen := map[api.ID]bool{}
	var cursor *string
	for pages := 0; ; pages++ {
		l, _ := env.Client.ListWebhookDeliveriesWithResponse(bg, hook.Id, &api.ListWebhookDeliveriesParams{Limit: ptr(2), Cursor: cursor}, w.as(api.UserRoleAdmin))
		if l.JSON200 == nil || pages > 5 {
			t.Fatalf("page: %s", l.Body)
		}
		for _, it := range l.JSON200.Items {
			if seen[it.Id] {
				t.Fatalf("delivery %s on two pages", it.Id)
			}
			seen[it.Id] = true
		}
		next, err := l.JSON200.NextCursor.Get()
		if err != nil {
			break
		}
		cursor = &next
	}
	if len(seen) != 4 {
		t.Errorf("pages held %d deliveries, want 4", len(seen))
	}
}

// attemptsText shows attempts for a failure message.
func attemptsText(as []api.WebhookAttempt) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(fmt.Sprintf("#%d %s code=%v err=%q; ", a.Attempt, a.StartedAt.Format("15:04:05.000"), deref(a.StatusCode), deref(a.Error)))
	}
	return b.String()
}

func waitStatus(t *testing.T, env *apitest.Env, w workspace, endpoint, delivery api.ID, want api.WebhookDeliveryStatus) api.WebhookDelivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, d := range deliveriesOf(t, env, w, endpoint) {
			if d.Id == delivery && d.Status == want {
				return d
			}
		}
		if time.Now().After(deadline) {
			var states []string
			for _, d := range deliveriesOf(t, env, w, endpoint) {
				states = append(states, fmt.Sprintf("%s %s next=%v: %s", d.Id, d.Status, d.NextAttemptAt, attemptsText(d.Attempts)))
			}
			t.Fatalf("delivery %s never became %s: %s", delivery, want, strings.Join(states, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDisabledWebhookEndpointGetsNothing(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 2, Base: 200 * time.Millisecond}))
	w := newWorkspace(t, env)
	on, off := newReceiver(t, nil), newReceiver(t, nil)
	createHook(t, env, w, hookCreate(on.URL, "*"))
	disabled := createHook(t, env, w, api.WebhookEndpointCreate{Url: off.URL, EventTypes: []api.WebhookEventType{"*"}, Enabled: ptr(false)})

	ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, disabled.Id, w.as(api.UserRoleAdmin))
	wantStatus(t, "ping a disabled endpoint", ping.StatusCode(), ping.Body, http.StatusConflict)
	createTask(t, env, w, api.TaskCreate{Title: "While off"})
	on.wait(t, 1)
	time.Sleep(600 * time.Millisecond) // three sweeps
	if n := len(off.requests()); n != 0 {
		t.Fatalf("the disabled endpoint got %d requests", n)
	}
	if ds := deliveriesOf(t, env, w, disabled.Id); len(ds) != 0 {
		t.Fatalf("deliveries queued for a disabled endpoint: %+v", ds)
	}

	// Enabled again, it gets what happens from then on, not what it missed.
	if u, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, disabled.Id, api.WebhookEndpointUpdate{Enabled: ptr(true)}, w.as(api.UserRoleAdmin)); u.JSON200 == nil {
		t.Fatalf("enable: %s", u.Body)
	}
	createTask(t, env, w, api.TaskCreate{Title: "After enabling"})
	got := off.wait(t, 1)
	var data api.Task
	if err := json.Unmarshal(got[0].message(t).Data, &data); err != nil || data.Title != "After enabling" {
		t.Fatalf("first delivery after enabling: %s", got[0].body)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(off.requests()); n != 1 {
		t.Errorf("the re-enabled endpoint got %d requests, want 1", n)
	}
}

func TestFailingWebhookEndpointIsDisabledWithAnAuditEntry(t *testing.T) {
	opts := fastDeliveries(webhooks.Retry{Attempts: 50, Base: 100 * time.Millisecond, Max: 200 * time.Millisecond})
	opts.Deliveries.DisableAfter = 700 * time.Millisecond
	env := apitest.NewWithOptions(t, opts)
	w := newWorkspace(t, env)
	rcv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	hook := createHook(t, env, w, hookCreate(rcv.URL, "*"))
	ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if ping.JSON202 == nil {
		t.Fatalf("ping: %s", ping.Body)
	}
	d := waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusCanceled)
	g, _ := env.Client.GetWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if g.JSON200 == nil || g.JSON200.Enabled || g.JSON200.DisabledReason == nil || g.JSON200.FailingSince == nil {
		t.Fatalf("endpoint after failing: %s", g.Body)
	}
	if len(d.Attempts) < 3 || time.Since(d.Attempts[0].StartedAt) < 700*time.Millisecond {
		t.Errorf("disabled after %d attempts", len(d.Attempts))
	}
	audit, _ := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{ResourceType: ptr("webhook_endpoint")}, w.as(api.UserRoleOwner))
	found := false
	for _, e := range audit.JSON200.Items {
		found = found || (e.Action == "webhook_endpoint.disable" && e.ResourceId != nil && *e.ResourceId == hook.Id)
	}
	if !found {
		t.Errorf("no webhook_endpoint.disable audit entry: %s", audit.Body)
	}
	n := len(rcv.requests())
	time.Sleep(500 * time.Millisecond)
	if len(rcv.requests()) != n {
		t.Errorf("a disabled endpoint still got requests")
	}
}

// TestDeliveriesRefuseLoopbackWhenNotAllowed points endpoints at loopback, private and metadata
// addresses behind the save-time check (as DNS rebinding would: the name was public when saved):
// the dial-time guard refuses the literal addresses and a name that resolves to one, so the
// receiver gets nothing. (Every other test allows private addresses, and delivers to loopback.)
func TestDeliveriesRefuseLoopbackWhenNotAllowed(t *testing.T) {
	opts := fastDeliveries(webhooks.Retry{Attempts: 1, Base: 100 * time.Millisecond})
	opts.WebhooksStrict = true
	env := apitest.NewWithOptions(t, opts)
	w := newWorkspace(t, env)
	rcv := newReceiver(t, nil)
	port := rcv.URL[strings.LastIndex(rcv.URL, ":"):]
	admin := testdb.Get(t).AdminPool(t)
	for _, url := range []string{"http://127.0.0.1" + port, "http://localhost" + port, "http://[::1]" + port,
		"http://10.20.30.40/hooks", "http://169.254.169.254/latest/meta-data"} {
		hook := createHook(t, env, w, hookCreate("https://hooks.example.test/rebinding", "*"))
		if _, err := admin.Exec(bg, `UPDATE webhook_endpoints SET url = $1 WHERE id = $2`, url, hook.Id); err != nil {
			t.Fatal(err)
		}
		ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
		if ping.JSON202 == nil {
			t.Fatalf("ping: %s", ping.Body)
		}
		d := waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusFailed)
		if len(d.Attempts) != 1 || d.Attempts[0].StatusCode != nil || d.Attempts[0].Error == nil ||
			!strings.Contains(*d.Attempts[0].Error, "no public address") || strings.Contains(*d.Attempts[0].Error, "127.0.0.1") {
			t.Errorf("%s: attempts %s", url, attemptsText(d.Attempts))
		}
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("the loopback receiver got %d requests", n)
	}
}

func TestFinishedWebhookDeliveriesArePrunedAfterTheRetention(t *testing.T) {
	t.Parallel()
	env := apitest.New(t) // nothing sends: pings stay pending
	w := newWorkspace(t, env)
	hook := createHook(t, env, w, hookCreate("https://hooks.example.test/prune", "*"))
	var ids []api.ID
	for range 3 {
		p, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
		if p.JSON202 == nil {
			t.Fatalf("ping: %s", p.Body)
		}
		ids = append(ids, p.JSON202.Id)
	}
	admin := testdb.Get(t).AdminPool(t)
	// 0: finished long ago (pruned); 1: finished an hour ago (kept); 2: pending for ages (kept).
	for i, q := range []string{
		`UPDATE webhook_deliveries SET status = 'succeeded', updated_at = now() - interval '40 days' WHERE id = $1`,
		`UPDATE webhook_deliveries SET status = 'failed', updated_at = now() - interval '1 hour' WHERE id = $1`,
		`UPDATE webhook_deliveries SET updated_at = now() - interval '40 days' WHERE id = $1`,
	} {
		if _, err := admin.Exec(bg, q, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := webhooks.PruneDeliveries(bg, env.DB, time.Now().Add(-30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	left := map[api.ID]bool{}
	for _, d := range deliveriesOf(t, env, w, hook.Id) {
		left[d.Id] = true
	}
	if left[ids[0]] || !left[ids[1]] || !left[ids[2]] {
		t.Errorf("after pruning: %v; want only the old finished delivery %s gone", left, ids[0])
	}
}

func TestDisablingAnEndpointCancelsItsPendingDeliveries(t *testing.T) {
	t.Parallel()
	env := apitest.New(t) // nothing sends: the ping stays pending
	w := newWorkspace(t, env)
	hook := createHook(t, env, w, hookCreate("https://hooks.example.test/off", "*"))
	ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if ping.JSON202 == nil {
		t.Fatalf("ping: %s", ping.Body)
	}
	if u, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, hook.Id, api.WebhookEndpointUpdate{Enabled: ptr(false)}, w.as(api.UserRoleAdmin)); u.JSON200 == nil {
		t.Fatalf("disable: %s", u.Body)
	}
	if u, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, hook.Id, api.WebhookEndpointUpdate{Enabled: ptr(true), Url: ptr("https://hooks.example.test/elsewhere")}, w.as(api.UserRoleAdmin)); u.JSON200 == nil {
		t.Fatalf("enable: %s", u.Body)
	}
	ds := deliveriesOf(t, env, w, hook.Id)
	if len(ds) != 1 || ds[0].Status != api.WebhookDeliveryStatusCanceled || ds[0].NextAttemptAt != nil {
		t.Fatalf("the ping queued before disabling: %+v; want canceled (not sent to the new URL)", ds)
	}
}

func TestTestPingsAndRedeliveriesAreRateLimitedPerTenant(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Webhooks: handlers.WebhooksConfig{ManualPerMinute: 3}})
	w, other := newWorkspace(t, env), newWorkspace(t, env)
	hook := createHook(t, env, w, hookCreate("https://hooks.example.test/flood", "*"))
	for i := range 3 {
		if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
			t.Fatalf("ping %d: %s", i+1, p.Body)
		}
	}
	p, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	wantStatus(t, "the fourth ping in a minute", p.StatusCode(), p.Body, http.StatusTooManyRequests)
	if p.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if ds := deliveriesOf(t, env, w, hook.Id); len(ds) != 3 {
		t.Errorf("%d deliveries after a refused ping, want 3", len(ds))
	}
	// Another tenant has its own allowance.
	hookB := createHook(t, env, other, hookCreate("https://hooks.example.test/b", "*"))
	if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, hookB.Id, other.as(api.UserRoleAdmin)); p.JSON202 == nil {
		t.Fatalf("the other tenant's ping: %s", p.Body)
	}
}

// TestAttemptsInFlightAreCappedPerEndpointAndPerTenant holds each request at a slow receiver
// and counts how many overlap.
func TestAttemptsInFlightAreCappedPerEndpointAndPerTenant(t *testing.T) {
	for _, tc := range []struct {
		name                                    string
		endpoints, perEndpoint, perTenant, want int
	}{
		{"per endpoint", 1, 2, 50, 2},
		{"per tenant", 3, 4, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := fastDeliveries(webhooks.Retry{Attempts: 1, Base: 100 * time.Millisecond})
			opts.Deliveries.Concurrency, opts.Deliveries.TenantConcurrency = tc.perEndpoint, tc.perTenant
			opts.Webhooks.ManualPerMinute = 1000
			env := apitest.NewWithOptions(t, opts)
			w := newWorkspace(t, env)
			var mu sync.Mutex
			var now, peak, done int
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				now++
				peak = max(peak, now)
				mu.Unlock()
				time.Sleep(150 * time.Millisecond)
				mu.Lock()
				now--
				done++
				mu.Unlock()
				rw.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			const pings = 4
			for e := range tc.endpoints {
				hook := createHook(t, env, w, hookCreate(fmt.Sprintf("%s/e%d", srv.URL, e), "*"))
				for range pings {
					if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
						t.Fatalf("ping: %s", p.Body)
					}
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				d, p := done, peak
				mu.Unlock()
				if d == tc.endpoints*pings {
					if p != tc.want {
						t.Errorf("at most %d attempts overlapped, want %d", p, tc.want)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d deliveries in 20 s", d, tc.endpoints*pings)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestALeaseOutlivesItsDeletedEndpoint: an attempt in flight keeps its tenant's slot after its
// endpoint is deleted, so deleting endpoints cannot lift the tenant's cap.
func TestALeaseOutlivesItsDeletedEndpoint(t *testing.T) {
	opts := fastDeliveries(webhooks.Retry{Attempts: 1, Base: 100 * time.Millisecond})
	opts.Deliveries.TenantConcurrency = 1
	env := apitest.NewWithOptions(t, opts)
	w := newWorkspace(t, env)
	released := make(chan time.Time, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		time.Sleep(time.Second)
		released <- time.Now()
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer slow.Close()
	fast := newReceiver(t, nil)
	gone := createHook(t, env, w, hookCreate(slow.URL, "*"))
	if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, gone.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
		t.Fatalf("ping: %s", p.Body)
	}
	// Wait until the attempt holds the slot, then delete its endpoint and ping another.
	admin := testdb.Get(t).AdminPool(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(bg, `SELECT count(*) FROM webhook_leases WHERE endpoint_id = $1`, gone.Id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never took its lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, _ := env.Client.DeleteWebhookEndpointWithResponse(bg, gone.Id, w.as(api.UserRoleAdmin)); r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode())
	}
	other := createHook(t, env, w, hookCreate(fast.URL, "*"))
	if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, other.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
		t.Fatalf("ping: %s", p.Body)
	}
	got := fast.wait(t, 1)
	end := <-released
	if got[0].at.Before(end) {
		t.Errorf("the second endpoint's ping arrived %v before the first attempt ended: the deleted endpoint's lease was dropped", end.Sub(got[0].at))
	}
}

// TestAnEarlierRoundsJobSendsNothing cancels a delivery whose retry is scheduled (by disabling
// its endpoint), then redelivers it: only the new round's job sends; the old one, when its time
// comes, steps aside.
func TestAnEarlierRoundsJobSendsNothing(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 5, Base: time.Second, Max: time.Second}))
	w := newWorkspace(t, env)
	rcv := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	hook := createHook(t, env, w, hookCreate(rcv.URL, "*"))
	ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if ping.JSON202 == nil {
		t.Fatalf("ping: %s", ping.Body)
	}
	rcv.wait(t, 1) // failed; its retry is scheduled about a second later
	for _, on := range []bool{false, true} {
		if u, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, hook.Id, api.WebhookEndpointUpdate{Enabled: ptr(on)}, w.as(api.UserRoleAdmin)); u.JSON200 == nil {
			t.Fatalf("enabled=%v: %s", on, u.Body)
		}
	}
	waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusCanceled)
	if r, _ := env.Client.RedeliverWebhookWithResponse(bg, hook.Id, ping.JSON202.Id, w.as(api.UserRoleAdmin)); r.JSON202 == nil {
		t.Fatalf("redeliver: %s", r.Body)
	}
	d := waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusSucceeded)
	time.Sleep(1500 * time.Millisecond) // past the old round's scheduled retry
	if n := len(rcv.requests()); n != 2 {
		t.Errorf("the receiver got %d requests, want 2 (the failed one and the redelivery)", n)
	}
	if d = waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusSucceeded); len(d.Attempts) != 2 {
		t.Errorf("attempts: %s", attemptsText(d.Attempts))
	}
}

// TestFailingEndpointsWaitInTheirOwnLane: once an endpoint's attempt failed, its retries and new
// deliveries go to the lane of failing endpoints, so a receiver that times out holds none of the
// workers other endpoints' first attempts need.
// twoLanes starts deliveries with one worker in each lane and 300 ms attempts, and returns an
// endpoint whose receiver hangs until the attempt gives up.
func twoLanes(t *testing.T, retry webhooks.Retry) (*apitest.Env, workspace, api.WebhookEndpointCreated) {
	t.Helper()
	opts := fastDeliveries(retry)
	opts.Deliveries.Workers, opts.Deliveries.RetryWorkers = 1, 1
	opts.Deliveries.Guard.Timeout = 300 * time.Millisecond
	opts.Deliveries.Guard.AllowPrivate = true
	env := apitest.NewWithOptions(t, opts)
	w := newWorkspace(t, env)
	hang := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(hang.Close)
	return env, w, createHook(t, env, w, hookCreate(hang.URL, "*"))
}

func TestFailingEndpointsWaitInTheirOwnLane(t *testing.T) {
	env, w, slow := twoLanes(t, webhooks.Retry{Attempts: 3, Base: 100 * time.Millisecond, Max: 200 * time.Millisecond})
	first, _ := env.Client.TestWebhookEndpointWithResponse(bg, slow.Id, w.as(api.UserRoleAdmin))
	if first.JSON202 == nil {
		t.Fatalf("ping: %s", first.Body)
	}
	// The first attempt times out in the main lane; from then on the endpoint is failing.
	deadline := time.Now().Add(5 * time.Second)
	for {
		g, _ := env.Client.GetWebhookEndpointWithResponse(bg, slow.Id, w.as(api.UserRoleAdmin))
		if g.JSON200 != nil && g.JSON200.FailingSince != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hanging endpoint never counted as failing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 4 {
		if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, slow.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
			t.Fatalf("ping: %s", p.Body)
		}
	}
	rcv := newReceiver(t, nil)
	fast := createHook(t, env, w, hookCreate(rcv.URL, "*"))
	if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, fast.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
		t.Fatalf("ping: %s", p.Body)
	}
	rcv.wait(t, 1)
	// With one worker per lane, the failing endpoint's five deliveries take 300 ms an attempt
	// in their own lane: when the healthy endpoint's ping has arrived, most have not been tried.
	untried := 0
	for _, d := range deliveriesOf(t, env, w, slow.Id) {
		if len(d.Attempts) == 0 {
			untried++
		}
	}
	if untried < 2 {
		t.Errorf("only %d of the failing endpoint's deliveries were still untried when the healthy one's arrived: they shared its worker", untried)
	}
}

// TestARedeliveryWaitsForTheAttemptInFlight redelivers a delivery while an attempt of the round
// before is still in flight (its endpoint was disabled and enabled meanwhile): the new round
// waits for it, so the receiver never has two at once, and the old attempt is listed but does
// not count for the new round, which then succeeds.
func TestARedeliveryWaitsForTheAttemptInFlight(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 3, Base: 100 * time.Millisecond}))
	w := newWorkspace(t, env)
	var mu sync.Mutex
	var now, peak, seen int
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		now++
		seen++
		n := seen
		peak = max(peak, now)
		mu.Unlock()
		defer func() { mu.Lock(); now--; mu.Unlock() }()
		if n == 1 {
			time.Sleep(time.Second)
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	hook := createHook(t, env, w, hookCreate(srv.URL, "*"))
	ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if ping.JSON202 == nil {
		t.Fatalf("ping: %s", ping.Body)
	}
	admin := testdb.Get(t).AdminPool(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(bg, `SELECT count(*) FROM webhook_leases WHERE delivery_id = $1`, ping.JSON202.Id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, on := range []bool{false, true} {
		if u, _ := env.Client.UpdateWebhookEndpointWithResponse(bg, hook.Id, api.WebhookEndpointUpdate{Enabled: ptr(on)}, w.as(api.UserRoleAdmin)); u.JSON200 == nil {
			t.Fatalf("enabled=%v: %s", on, u.Body)
		}
	}
	if r, _ := env.Client.RedeliverWebhookWithResponse(bg, hook.Id, ping.JSON202.Id, w.as(api.UserRoleAdmin)); r.JSON202 == nil {
		t.Fatalf("redeliver: %s", r.Body)
	}
	d := waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusSucceeded)
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if peak != 1 || seen != 2 {
		t.Errorf("the receiver got %d requests, at most %d at once; want 2, one at a time", seen, peak)
	}
	d = waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusSucceeded)
	if len(d.Attempts) != 2 || d.Attempts[0].StatusCode == nil || *d.Attempts[0].StatusCode != 500 ||
		d.Attempts[1].StatusCode == nil || *d.Attempts[1].StatusCode != 204 {
		t.Errorf("attempts: %s", attemptsText(d.Attempts))
	}
}

// TestSlowEndpointsWaitInTheFailingLane: an endpoint that answers, but slower than SlowAfter,
// has its next deliveries queued in the lane of failing endpoints.
func TestSlowEndpointsWaitInTheFailingLane(t *testing.T) {
	opts := fastDeliveries(webhooks.Retry{Attempts: 2, Base: 100 * time.Millisecond})
	opts.Deliveries.SlowAfter = 200 * time.Millisecond
	env := apitest.NewWithOptions(t, opts)
	w := newWorkspace(t, env)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		time.Sleep(400 * time.Millisecond)
		rw.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	hook := createHook(t, env, w, hookCreate(srv.URL, "*"))
	first, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if first.JSON202 == nil {
		t.Fatalf("ping: %s", first.Body)
	}
	waitStatus(t, env, w, hook.Id, first.JSON202.Id, api.WebhookDeliveryStatusSucceeded)
	second, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if second.JSON202 == nil {
		t.Fatalf("ping: %s", second.Body)
	}
	queueOf := func(id api.ID) string {
		var q string
		if err := testdb.Get(t).AdminPool(t).QueryRow(bg, `SELECT queue FROM river_job WHERE args->>'delivery' = $1 ORDER BY id LIMIT 1`, id.String()).Scan(&q); err != nil {
			t.Fatal(err)
		}
		return q
	}
	if a, b := queueOf(first.JSON202.Id), queueOf(second.JSON202.Id); strings.HasSuffix(a, "_failing") || !strings.HasSuffix(b, "_failing") {
		t.Errorf("queues: first %q, after a slow answer %q; want the first lane, then the failing one", a, b)
	}
	waitStatus(t, env, w, hook.Id, second.JSON202.Id, api.WebhookDeliveryStatusSucceeded)
}

// TestAFirstLaneBacklogMovesOnceItsEndpointFails queues several deliveries to a hanging endpoint
// in the first lane before any of them failed: once the first times out, the others move to the
// second lane when fetched, so a healthy endpoint's delivery does not wait behind them.
func TestAFirstLaneBacklogMovesOnceItsEndpointFails(t *testing.T) {
	env, w, slow := twoLanes(t, webhooks.Retry{Attempts: 2, Base: 100 * time.Millisecond, Max: 200 * time.Millisecond})
	rcv := newReceiver(t, nil)
	fast := createHook(t, env, w, hookCreate(rcv.URL, "*"))
	for range 5 {
		if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, slow.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
			t.Fatalf("ping: %s", p.Body)
		}
	}
	if p, _ := env.Client.TestWebhookEndpointWithResponse(bg, fast.Id, w.as(api.UserRoleAdmin)); p.JSON202 == nil {
		t.Fatalf("ping: %s", p.Body)
	}
	rcv.wait(t, 1)
	untried := 0
	for _, d := range deliveriesOf(t, env, w, slow.Id) {
		if len(d.Attempts) == 0 {
			untried++
		}
	}
	if untried < 2 {
		t.Errorf("only %d of the hanging endpoint's 5 deliveries were untried when the healthy one's arrived: it waited behind them", untried)
	}
}

// TestExpiredLeasesAreCleared: a crashed server's lease, whose endpoint may be gone, is cleared
// by the tenant's next recorded attempt.
func TestExpiredLeasesAreCleared(t *testing.T) {
	env := apitest.NewWithOptions(t, fastDeliveries(webhooks.Retry{Attempts: 1, Base: 100 * time.Millisecond}))
	w := newWorkspace(t, env)
	admin := testdb.Get(t).AdminPool(t)
	if _, err := admin.Exec(bg, `INSERT INTO webhook_leases (tenant_id, endpoint_id, id, expires_at, delivery_id)
		VALUES ($1, gen_random_uuid(), gen_random_uuid(), now() - interval '1 minute', gen_random_uuid())`, w.Tenant.Id); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, nil)
	hook := createHook(t, env, w, hookCreate(rcv.URL, "*"))
	ping, _ := env.Client.TestWebhookEndpointWithResponse(bg, hook.Id, w.as(api.UserRoleAdmin))
	if ping.JSON202 == nil {
		t.Fatalf("ping: %s", ping.Body)
	}
	waitStatus(t, env, w, hook.Id, ping.JSON202.Id, api.WebhookDeliveryStatusSucceeded)
	var left int
	if err := admin.QueryRow(bg, `SELECT count(*) FROM webhook_leases WHERE tenant_id = $1`, w.Tenant.Id).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d leases left after an attempt was recorded, want 0 (the expired one cleared)", left)
	}
}
