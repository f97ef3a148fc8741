package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverStats are the readings of the server's /metrics (Prometheus text) that rtbench uses:
// the process collector's RSS and CPU, the Go collector's heap and stack figures.
type serverStats struct {
	rss, heapInuse, heapAlloc, stackInuse, nextGC float64
	gcCount, goroutines, cpu, openFDs             float64
}

var statNames = map[string]func(*serverStats) *float64{
	"process_resident_memory_bytes": func(s *serverStats) *float64 { return &s.rss },
	"go_memstats_heap_inuse_bytes":  func(s *serverStats) *float64 { return &s.heapInuse },
	"go_memstats_heap_alloc_bytes":  func(s *serverStats) *float64 { return &s.heapAlloc },
	"go_memstats_stack_inuse_bytes": func(s *serverStats) *float64 { return &s.stackInuse },
	"go_memstats_next_gc_bytes":     func(s *serverStats) *float64 { return &s.nextGC },
	"go_gc_duration_seconds_count":  func(s *serverStats) *float64 { return &s.gcCount },
	"go_goroutines":                 func(s *serverStats) *float64 { return &s.goroutines },
	"process_cpu_seconds_total":     func(s *serverStats) *float64 { return &s.cpu },
	"process_open_fds":              func(s *serverStats) *float64 { return &s.openFDs },
}

// scrape reads the server's /metrics.
func scrape(ctx context.Context, url string) (serverStats, error) {
	var s serverStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		field := statNames[name]
		if !ok || field == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return s, fmt.Errorf("metrics: %s: %w", name, err)
		}
		*field(&s) = v
		found++
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("metrics: %w", err)
	}
	if found < len(statNames) {
		return s, fmt.Errorf("metrics: found %d of the %d readings wanted (Go and process collectors)", found, len(statNames))
	}
	return s, nil
}

// settle takes the memory reading: if gcWait is set, it first waits up to that long for the
// server to finish a garbage collection (so the heap figures hold live memory, not garbage),
// then takes three samples a second apart and returns the last.
func settle(ctx context.Context, url, label string, gcWait time.Duration) (serverStats, error) {
	s, err := scrape(ctx, url)
	if err != nil {
		return s, err
	}
	if gcWait > 0 {
		start, gcs := time.Now(), s.gcCount
		for s.gcCount == gcs && time.Since(start) < gcWait {
			time.Sleep(time.Second)
			if s, err = scrape(ctx, url); err != nil {
				return s, err
			}
		}
		if s.gcCount == gcs {
			fmt.Printf("memory %s: no garbage collection within %s\n", label, gcWait)
		} else {
			fmt.Printf("memory %s: a garbage collection came after %s\n", label, time.Since(start).Round(time.Second))
		}
	}
	for range 3 {
		time.Sleep(time.Second)
		if s, err = scrape(ctx, url); err != nil {
			return s, err
		}
		fmt.Printf("memory %s: rss=%.1fMiB heap_inuse=%.1fMiB heap_alloc=%.1fMiB stack_inuse=%.1fMiB next_gc=%.1fMiB gcs=%.0f goroutines=%.0f fds=%.0f\n",
			label, s.rss/mib, s.heapInuse/mib, s.heapAlloc/mib, s.stackInuse/mib, s.nextGC/mib, s.gcCount, s.goroutines, s.openFDs)
	}
	return s, nil
}

const (
	kib = 1024.0
	mib = 1024.0 * 1024.0
)
