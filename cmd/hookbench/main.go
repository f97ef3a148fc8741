// Command hookbench measures outbound webhooks on a running Tasker server: how many deliveries a
// second reach a local receiver, and the delay from a write's commit to the first delivery
// attempt (p50/p99). Beside each figure it measures a same-run baseline with no Tasker in the
// way: the same receiver taking the same bodies straight from an HTTP client (rate with as many
// parallel senders as the server's WEBHOOK_WORKERS, and one POST's round trip), so the ratio
// holds however busy the machine is.
//
//	scripts/with-server.sh go run ./cmd/hookbench            # TASKER_URL from with-server.sh
//	hookbench -url http://127.0.0.1:8080 -tasks 2000 -endpoints 5 -latency 300
//
// The server must have WEBHOOK_ENCRYPTION_KEY and WEBHOOK_ALLOW_PRIVATE=true (the receiver is
// on loopback).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hookbench:", err)
		os.Exit(1)
	}
}

// receiver answers 204 to every POST and notes when each task's first delivery arrived.
type receiver struct {
	mu      sync.Mutex
	first   map[string]time.Time // task id -> first arrival
	total   atomic.Int64
	arrived chan struct{}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(req.Body)
	var m struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &m)
	r.mu.Lock()
	if _, seen := r.first[m.Data.ID]; !seen && m.Data.ID != "" {
		r.first[m.Data.ID] = now
	}
	r.mu.Unlock()
	r.total.Add(1)
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) at(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.first[id]
	return t, ok
}

func run() error {
	url := flag.String("url", os.Getenv("TASKER_URL"), "the server's root URL")
	tasks := flag.Int("tasks", 2000, "tasks written in the throughput phase")
	writers := flag.Int("writers", 8, "parallel writers in the throughput phase")
	endpoints := flag.Int("endpoints", 5, "endpoints (each subscribed to task.created) in the throughput phase")
	senders := flag.Int("senders", 20, "parallel senders of the baseline (the server's WEBHOOK_WORKERS)")
	latency := flag.Int("latency", 300, "sequential writes in the latency phase")
	flag.Parse()
	if *url == "" {
		return errors.New("-url (or TASKER_URL) is required")
	}
	ctx := context.Background()
	rcv := &receiver{first: map[string]time.Time{}, arrived: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	hook := "http://" + ln.Addr().String()

	c, project, err := setup(ctx, *url)
	if err != nil {
		return err
	}
	create := func(title string) (string, time.Time, error) {
		r, err := c.CreateTaskWithResponse(ctx, project, nil, api.TaskCreate{Title: title})
		if err != nil || r.JSON201 == nil {
			return "", time.Time{}, fmt.Errorf("create task: %v %d", err, r.StatusCode())
		}
		return r.JSON201.Id.String(), time.Now(), nil
	}
	addEndpoint := func(path string) (api.ID, error) {
		r, err := c.CreateWebhookEndpointWithResponse(ctx, api.WebhookEndpointCreate{Url: hook + path, EventTypes: []api.WebhookEventType{"task.created"}})
		if err != nil || r.JSON201 == nil {
			return api.ID{}, fmt.Errorf("endpoint: %v %s", err, r.Body)
		}
		return r.JSON201.Id, nil
	}

	// Latency: one endpoint, one write at a time, each waited for.
	first, err := addEndpoint("/latency")
	if err != nil {
		return err
	}
	var delays []time.Duration
	for i := range *latency {
		id, committed, err := create(fmt.Sprintf("latency %d", i))
		if err != nil {
			return err
		}
		deadline := time.After(30 * time.Second)
		for {
			if at, ok := rcv.at(id); ok {
				delays = append(delays, max(at.Sub(committed), 0))
				break
			}
			select {
			case <-rcv.arrived:
			case <-time.After(time.Millisecond):
			case <-deadline:
				return fmt.Errorf("task %s never arrived", id)
			}
		}
	}
	if _, err := c.DeleteWebhookEndpointWithResponse(ctx, first); err != nil {
		return err
	}

	// Throughput: -endpoints endpoints, -writers writers, every delivery counted.
	for e := range *endpoints {
		if _, err := addEndpoint(fmt.Sprintf("/e%d", e)); err != nil {
			return err
		}
	}
	before := rcv.total.Load()
	want := before + int64(*tasks**endpoints)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var writeErr atomic.Value
	for range *writers {
		wg.Go(func() {
			for n := next.Add(1); n <= int64(*tasks); n = next.Add(1) {
				if _, _, err := create(fmt.Sprintf("load %d", n)); err != nil {
					writeErr.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := writeErr.Load().(error); err != nil {
		return err
	}
	written := time.Since(start)
	for rcv.total.Load() < want {
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("%d of %d deliveries after 5 minutes", rcv.total.Load()-before, want-before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	delivered := time.Since(start)

	baseRate, baseDelays, err := baseline(hook, *senders, int(want-before), *latency)
	if err != nil {
		return err
	}
	p := func(d []time.Duration, q float64) time.Duration {
		slices.Sort(d)
		return d[min(len(d)-1, int(float64(len(d))*q))]
	}
	rate := float64(want-before) / delivered.Seconds()
	fmt.Printf("throughput: %d deliveries (%d tasks x %d endpoints) in %v: %.0f/s; writes took %v (%.0f tasks/s)\n",
		want-before, *tasks, *endpoints, delivered.Round(time.Millisecond), rate, written.Round(time.Millisecond), float64(*tasks)/written.Seconds())
	fmt.Printf("baseline:   the same receiver straight from %d senders: %.0f/s; ratio %.3f\n", *senders, baseRate, rate/baseRate)
	fmt.Printf("latency:    commit (201 received) to first attempt over %d writes: p50 %v p99 %v max %v\n",
		len(delays), p(delays, 0.50).Round(10*time.Microsecond), p(delays, 0.99).Round(10*time.Microsecond), p(delays, 1).Round(10*time.Microsecond))
	fmt.Printf("baseline:   one POST's round trip: p50 %v p99 %v; ratio p50 %.1f p99 %.1f\n",
		p(baseDelays, 0.50).Round(10*time.Microsecond), p(baseDelays, 0.99).Round(10*time.Microsecond),
		float64(p(delays, 0.50))/float64(p(baseDelays, 0.50)), float64(p(delays, 0.99))/float64(p(baseDelays, 0.99)))
	return nil
}

// baseline posts n bodies of a delivery's size to the receiver from senders goroutines, then
// times sequential single POSTs.
func baseline(hook string, senders, n, sequential int) (float64, []time.Duration, error) {
	body := bytes.Repeat([]byte("x"), 900) // a task.created delivery is about this size
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	post := func() error {
		req, _ := http.NewRequest(http.MethodPost, hook+"/baseline", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", "msg_"+uuid.NewString())
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for range senders {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := post(); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, nil, err
	}
	rate := float64(n) / time.Since(start).Seconds()
	var delays []time.Duration
	for range sequential {
		t := time.Now()
		if err := post(); err != nil {
			return 0, nil, err
		}
		delays = append(delays, time.Since(t))
	}
	return rate, delays, nil
}

func setup(ctx context.Context, url string) (*api.ClientWithResponses, api.ID, error) {
	anon, err := api.NewClientWithResponses(url)
	if err != nil {
		return nil, api.ID{}, err
	}
	su, err := anon.SignupWithResponse(ctx, api.SignupRequest{TenantName: "hookbench", TenantSlug: "hb-" + uuid.NewString()[:8],
		Email: "bench@example.com", Password: "correct horse battery", Name: "Bench"})
	if err != nil || su.JSON201 == nil {
		return nil, api.ID{}, fmt.Errorf("signup: %v", err)
	}
	token := su.JSON201.Tokens.AccessToken
	c, err := api.NewClientWithResponses(url, api.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
	if err != nil {
		return nil, api.ID{}, err
	}
	team, err := c.CreateTeamWithResponse(ctx, nil, api.TeamCreate{Name: "Bench", Key: "BEN"})
	if err != nil || team.JSON201 == nil {
		return nil, api.ID{}, fmt.Errorf("team: %v", err)
	}
	proj, err := c.CreateProjectWithResponse(ctx, nil, api.ProjectCreate{TeamId: team.JSON201.Id, Name: "Bench", Key: "BEN"})
	if err != nil || proj.JSON201 == nil {
		return nil, api.ID{}, fmt.Errorf("project: %v", err)
	}
	return c, proj.JSON201.Id, nil
}
