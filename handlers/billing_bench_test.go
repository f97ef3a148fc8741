package handlers_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tasker/tasker/handlers/apitest"
)

// BenchmarkStripeWebhook is one Stripe event through the real stack, the way Stripe sends it: a
// fresh customer.subscription.updated (Stripe's fixture, ~7 KB), signed, read, verified, and
// applied in one transaction (record the id, lock and compare the subscription, save it, the
// tenant's plan, the usage, the audit entry and the realtime event). One client, one tenant;
// BenchmarkUpdateTask is the baseline write of the same stack. The signing on the client side
// is counted too (about 10 µs).
func BenchmarkStripeWebhook(b *testing.B) {
	benchWebhook(b, 1)
}

// BenchmarkStripeWebhookParallel is four clients, each delivering to its own tenant, as Stripe
// does for many customers at once.
func BenchmarkStripeWebhookParallel(b *testing.B) {
	benchWebhook(b, 4)
}

func benchWebhook(b *testing.B, clients int) {
	pool, counter := countingPool(b)
	env := apitest.NewWithOptions(b, apitest.Options{Pool: pool, NoStripe: true})
	tenants := make([]uuid.UUID, clients)
	for i := range tenants {
		tenants[i] = env.Signup(b).Tenant.Id
	}
	// One fixture, made into each event by replacing its id and created: the JSON is built once.
	base := time.Now().Add(-time.Hour).Unix()
	templates := make([][]byte, clients)
	for i, tenant := range tenants {
		e := newStripeEvent(b, "customer.subscription.updated", time.Unix(base, 0)).
			subscription("sub_bench_"+tenant.String(), "cus_bench_"+tenant.String(), tenant, "active", "price_pro", 3, time.Now().Add(time.Hour))
		e.body["id"], e.body["created"] = "evt_IDPLACEHOLDER", 1111111111
		templates[i] = e.bytes(b)
	}
	var seq, next atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	counter.n.Store(0)
	b.SetParallelism(max(1, clients/2)) // GOMAXPROCS is 2 here: 2 x 2 = 4 clients
	if clients == 1 {
		b.SetParallelism(1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	run := func(template []byte) {
		n := seq.Add(1)
		body := bytes.Replace(template, []byte("evt_IDPLACEHOLDER"), []byte("evt_bench_"+uuid.NewString()), 1)
		body = bytes.Replace(body, []byte("1111111111"), []byte(strconv.FormatInt(base+n, 10)), 1)
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: apitest.WebhookSecret})
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("Stripe-Signature", sig.Header)
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(out), `"applied"`) {
			b.Errorf("status %d %s", resp.StatusCode, out)
		}
	}
	if clients == 1 {
		for b.Loop() {
			run(templates[0])
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			template := templates[int(next.Add(1)-1)%clients]
			for pb.Next() {
				run(template)
			}
		})
	}
	b.ReportMetric(float64(seq.Load())/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(counter.n.Load())/float64(seq.Load()), "roundtrips/op")
}
