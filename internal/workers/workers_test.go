package workers_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker/tasker/internal/workers"
)

// journal records what the fake workers do, in the order they do it.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// patient runs until cancelled, then takes a little while to stop: long enough that a group
// cancelling everyone at once would interleave the journal.
func patient(j *journal, name string, started *sync.WaitGroup) workers.Worker {
	started.Add(1)
	return workers.Worker{Name: name, Run: func(ctx context.Context) error {
		started.Done()
		<-ctx.Done()
		j.add(name + " cancelled")
		time.Sleep(20 * time.Millisecond)
		j.add(name + " returned")
		return ctx.Err()
	}}
}

func runAsync(ctx context.Context, ws ...workers.Worker) <-chan error {
	done := make(chan error, 1)
	go func() { done <- workers.Run(ctx, slog.New(slog.DiscardHandler), ws...) }()
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestStopCancelsWorkersInOrderEachAfterThePreviousReturned(t *testing.T) {
	t.Parallel()
	var j journal
	var started sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	done := runAsync(ctx, patient(&j, "http", &started), patient(&j, "relay", &started), patient(&j, "sweeper", &started))
	started.Wait()
	time.Sleep(20 * time.Millisecond)
	if got := j.list(); len(got) != 0 {
		t.Fatalf("workers stopped before the signal: %q", got)
	}
	stop()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run after a clean stop: %v", err)
	}
	want := []string{"http cancelled", "http returned", "relay cancelled", "relay returned", "sweeper cancelled", "sweeper returned"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("stop order %q, want %q", got, want)
	}
}

func TestFailingWorkerStopsTheOthersInOrder(t *testing.T) {
	t.Parallel()
	var j journal
	var started sync.WaitGroup
	boom := errors.New("boom")
	failing := workers.Worker{Name: "relay", Run: func(context.Context) error {
		started.Wait()
		j.add("relay failed")
		return boom
	}}
	http, sweeper := patient(&j, "http", &started), patient(&j, "sweeper", &started)
	err := wait(t, runAsync(context.Background(), http, failing, sweeper))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "worker relay") {
		t.Fatalf("Run returned %v; want the relay's error, naming it", err)
	}
	want := []string{"relay failed", "http cancelled", "http returned", "sweeper cancelled", "sweeper returned"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Errorf("after a failure %q, want %q", got, want)
	}
}

func TestWorkerThatReturnsEarlyStopsTheGroupWithAnError(t *testing.T) {
	t.Parallel()
	var j journal
	var started sync.WaitGroup
	quitter := workers.Worker{Name: "quitter", Run: func(context.Context) error { started.Wait(); return nil }}
	stopErr := errors.New("flush failed")
	grumpy := workers.Worker{Name: "grumpy", Run: func(ctx context.Context) error { <-ctx.Done(); return stopErr }}
	err := wait(t, runAsync(context.Background(), patient(&j, "http", &started), quitter, grumpy))
	if err == nil || !strings.Contains(err.Error(), "worker quitter: returned before it was stopped") {
		t.Errorf("Run returned %v; want the early return reported", err)
	}
	if !errors.Is(err, stopErr) || !strings.Contains(err.Error(), "worker grumpy: stop") {
		t.Errorf("Run returned %v; want the error of a worker while stopping joined to it", err)
	}
	if got := j.list(); !slices.Equal(got, []string{"http cancelled", "http returned"}) {
		t.Errorf("the other workers: %q; want http stopped", got)
	}
}

// TestHTTPServerDrainsThenCutsOff stops an HTTP worker while a request is in flight: it must stop
// accepting at once, and, the request outliving the drain time, close it and report the timeout.
func TestHTTPServerDrainsThenCutsOff(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inHandler, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-release
	})}
	ctx, stop := context.WithCancel(context.Background())
	done := runAsync(ctx, workers.HTTPServer(srv, ln, 100*time.Millisecond))

	reqErr := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		reqErr <- err
	}()
	<-inHandler
	stop()
	err = wait(t, done)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "worker http: stop: drain within 100ms") {
		t.Errorf("Run returned %v; want the drain timeout reported", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the server still accepts connections after it stopped")
	}
	if err := <-reqErr; err == nil {
		t.Error("the request that outlived the drain got a response; want its connection closed")
	}
}
