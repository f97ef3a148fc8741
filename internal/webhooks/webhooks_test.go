package webhooks

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gopkg.in/yaml.v3"

	tasker "github.com/tasker/tasker"

	"github.com/tasker/tasker/internal/netguard"
)

func TestSignaturesVerifyWithTheStandardWebhooksLibraryDuringARotation(t *testing.T) {
	old, next, stranger := NewSecret(), NewSecret(), NewSecret()
	if !strings.HasPrefix(old, "whsec_") || old == next {
		t.Fatalf("secrets %q %q", old, next)
	}
	body := []byte(`{"type":"task.created","data":{"id":"t1"}}`)
	h, err := Headers([]string{next, old}, "msg_1", time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during a rotation, want 2: %q", n, h.Get("webhook-signature"))
	}
	for name, secret := range map[string]string{"the old secret": old, "the new secret": next} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("a receiver holding %s refused the delivery: %v", name, err)
		}
	}
	wh, _ := standardwebhooks.NewWebhook(stranger)
	if err := wh.Verify(body, h); err == nil {
		t.Error("a receiver holding another secret accepted the delivery")
	}
	theirs, _ := standardwebhooks.NewWebhook(old)
	if err := theirs.Verify([]byte(`{"type":"task.deleted"}`), h); err == nil {
		t.Error("a changed body was accepted")
	}
	if _, err := Headers(nil, "msg_2", time.Now(), body); err == nil {
		t.Error("signing without a secret worked")
	}
}

func TestGuardRefusesPrivateTargetsUnlessAllowed(t *testing.T) {
	strict := Guard{Timeout: 2 * time.Second}
	for _, raw := range []string{
		"ftp://example.com/", "https://user:pw@example.com/hook", "https://example.com/hook#x", "/relative", "https://",
		"http://127.0.0.1/hook", "http://[::1]/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
		"http://localhost:8080/hook", "http://LOCALHOST./hook", "http://100.100.100.200/", "http://[::ffff:127.0.0.1]/",
		"http://2130706433/", "http://0x7f.1/", "http://0x7f000001/", "http://017700000001/", "http://0177.0.0.1/", "http://127.1/",
		"http://0/", "http://127.0.0.1../", "http://localhost../", "http://\u2460\u2461\u2466.0.0.1/", "http://127\u30020\u30020\u30021/",
		"http://\u217cocalhost/", "http://localhost.localdomain/", "http://example.com:0/", "http://example.com#", "http://example.com:/", "http://example.com:99999/", "http://example.com:65536/", "http://example.com:080/",
		"http://[fe80::1%25eth0]/", "http://hooks/", "http://hooks.example.123/",
	} {
		if err := strict.CheckURL(raw); !errors.Is(err, ErrURL) {
			t.Errorf("%q: %v, want refused", raw, err)
		}
	}
	for _, good := range []string{"https://hooks.example.com/tasker?x=1", "https://8.8.8.8/hook", "https://[2606:4700::1111]:8443/", "https://xn--bcher-kva.example/", "https://hooks.example.com./x"} {
		if err := strict.CheckURL(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}

	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "http://example.com/", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	port := receiver.URL[strings.LastIndex(receiver.URL, ":")+1:]
	// Dialled, whatever the URL check said: a name that resolves to loopback (as DNS rebinding
	// would make it) is refused too.
	for _, target := range []string{receiver.URL, "http://localhost:" + port, "http://[::1]:" + port, "http://10.0.0.1:" + port, "http://169.254.169.254:" + port} {
		_, err := strict.Client().Get(target)
		var ue *url.Error
		if !errors.As(err, &ue) || !errors.Is(err, netguard.ErrNotPublic) {
			t.Errorf("%s: %v, want refused at dial", target, err)
		}
	}
	open := Guard{AllowPrivate: true, Timeout: 2 * time.Second}
	if err := open.CheckURL(receiver.URL); err != nil {
		t.Errorf("allowed private URL: %v", err)
	}
	resp, err := open.Client().Get(receiver.URL + "/hook")
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("allowed private receiver: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = open.Client().Get(receiver.URL + "/moved")
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("a redirect was followed: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestEventTypesAndTheirMatching(t *testing.T) {
	got, err := CheckEventTypes([]string{"task.created", "task.*", "task.created", "billing.*"})
	if err != nil || len(got) != 3 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"task.exploded", "nothing.*", "session.revoked", "api_key.revoked", "", "task"} {
		if _, err := CheckEventTypes([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cases := []struct {
		patterns []string
		event    string
		want     bool
	}{
		{[]string{"*"}, "file.deleted", true},
		{[]string{"task.*"}, "task.updated", true},
		{[]string{"task.*"}, "team.updated", false},
		{[]string{"billing.*"}, "billing.subscription.updated", true},
		{[]string{"team.created"}, "team.created", true},
		{[]string{"team.created"}, "team.member_put", false},
	}
	for _, c := range cases {
		if got := Matches(c.patterns, c.event); got != c.want {
			t.Errorf("Matches(%v, %s) = %t", c.patterns, c.event, got)
		}
	}
}

// TestEventTypesAreTheOutboxEventsTenantsSee keeps EventTypes in step with the events the
// AsyncAPI document lists: all of them but the auth events, which are no tenant's business.
func TestEventTypesAreTheOutboxEventsTenantsSee(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				EventName struct {
					Enum []string `yaml:"enum"`
				} `yaml:"EventName"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(tasker.AsyncAPISpec, &doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range doc.Components.Schemas.EventName.Enum {
		if e != "session.revoked" && e != "api_key.revoked" {
			want = append(want, e)
		}
	}
	got := slices.Clone(EventTypes)
	slices.Sort(got)
	slices.Sort(want)
	if len(want) < 10 || !slices.Equal(got, want) {
		t.Errorf("EventTypes = %v, want the AsyncAPI event names but the auth ones: %v", got, want)
	}
}

// TestAttemptErrorsTellNoAddresses: what tenant admins read about a failed attempt never holds
// an address or a resolver's answer, and a name that does not resolve reads like one that
// resolves to a refused address.
func TestAttemptErrorsTellNoAddresses(t *testing.T) {
	dns := &url.Error{Op: "Post", URL: "http://db.corp.internal/", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &net.DNSError{Err: "no such host", Name: "db.corp.internal", Server: "10.255.255.53:53", IsNotFound: true}}}
	private := &url.Error{Op: "Post", URL: "http://db.corp.internal/", Err: &net.OpError{Op: "dial", Net: "tcp",
		Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 80}, Err: fmt.Errorf("%w: 10.1.2.3", netguard.ErrNotPublic)}}
	a, b := attemptError(0, dns), attemptError(0, private)
	if a != b || a == "" {
		t.Errorf("a missing name says %q, a private one %q; want the same words", a, b)
	}
	for _, msg := range []string{a, attemptError(0, errors.New("dial tcp 10.1.2.3:80: connect: no route to host"))} {
		if strings.Contains(msg, "10.") || strings.Contains(msg, "corp") {
			t.Errorf("%q tells an address or a name", msg)
		}
	}
	if got := attemptError(503, nil); got != "the receiver answered 503" {
		t.Errorf("503: %q", got)
	}
	if got := attemptError(204, nil); got != "" {
		t.Errorf("204: %q", got)
	}
}

func TestALargerBacklogGetsALowerPriority(t *testing.T) {
	prev := 0
	for _, pending := range []int64{0, 99, 100, 999, 1000, 9999, 10000, 1 << 40} {
		p := Priority(pending)
		if p < prev || p < 1 || p > 4 {
			t.Errorf("Priority(%d) = %d after %d; want 1..4, never rising as the backlog shrinks", pending, p, prev)
		}
		prev = p
	}
	if Priority(0) != 1 || Priority(1<<40) != 4 {
		t.Errorf("Priority(0) = %d, Priority(huge) = %d; want 1 and 4", Priority(0), Priority(1<<40))
	}
}

// TestARedeliveryStartsItsBackoffAfresh: the delay after a round's first failure is the base
// one whatever the rounds before it made (16 attempts a round here).
func TestARedeliveryStartsItsBackoffAfresh(t *testing.T) {
	r := Retry{Attempts: 16, Base: time.Second, Max: time.Hour}
	for _, c := range []struct {
		attempts, allowed int32
		want              int
	}{
		{0, 16, 1}, {1, 16, 2}, {15, 16, 16}, // the first round
		{16, 32, 1}, {17, 32, 2}, // a redelivery after a failed round
		{1, 17, 1}, // a redelivery after one successful attempt
	} {
		if got := r.inRound(c.attempts, c.allowed); got != c.want {
			t.Errorf("inRound(%d, %d) = %d, want %d", c.attempts, c.allowed, got, c.want)
		}
	}
	if d := r.Delay(r.inRound(16, 32)); d > time.Second || d < 750*time.Millisecond {
		t.Errorf("a redelivered round's first retry waits %v, want the base second less jitter", d)
	}
}
