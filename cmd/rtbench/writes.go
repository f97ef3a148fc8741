package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// writes creates tasks as fast as o.concurrency clients can, spread over o.tenants tenants,
// for o.warmup unmeasured and then o.duration measured. No socket is opened.
func writes(ctx context.Context, o options) error {
	client, err := newClient(o.url, o.concurrency*2)
	if err != nil {
		return err
	}
	tenants := make([]tenant, o.tenants)
	for i := range tenants {
		if tenants[i], err = signup(ctx, client); err != nil {
			return err
		}
	}

	var (
		mu        sync.Mutex
		latencies durations
		failures  int
		firstErr  error
		wg        sync.WaitGroup
	)
	measureFrom := time.Now().Add(o.warmup)
	deadline := measureFrom.Add(o.duration)
	var cpuServer0, cpuClient0 float64
	statsTaken := make(chan error, 1)
	go func() {
		time.Sleep(time.Until(measureFrom))
		s, err := scrape(ctx, o.url)
		cpuServer0, cpuClient0 = s.cpu, cpuSeconds()
		statsTaken <- err
	}()
	for i := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := tenants[i%len(tenants)]
			var local durations
			fails := 0
			var ferr error
			for n := 0; ; n++ {
				start := time.Now()
				if !start.Before(deadline) {
					break
				}
				_, err := t.createTask(ctx, client, "rtbench "+strconv.Itoa(i)+"-"+strconv.Itoa(n))
				if start.Before(measureFrom) {
					continue
				}
				if err != nil {
					fails++
					if ferr == nil {
						ferr = err
					}
					continue
				}
				local = append(local, int64(time.Since(start)))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			failures += fails
			if firstErr == nil {
				firstErr = ferr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	if err := <-statsTaken; err != nil {
		return err
	}
	end, err := scrape(ctx, o.url)
	if err != nil {
		return err
	}
	ok := len(latencies)
	serverCPU := end.cpu - cpuServer0
	fmt.Printf("mode=writes concurrency=%d tenants=%d warmup=%s duration=%s ok=%d failed=%d rate=%.0f/s latency %s server-cpu=%.2fs (%.0f µs/create) client-cpu=%.2fs\n",
		o.concurrency, o.tenants, o.warmup, elapsed.Round(time.Millisecond), ok, failures, float64(ok)/elapsed.Seconds(),
		latencies.summary(), serverCPU, serverCPU/float64(max(ok, 1))*1e6, cpuSeconds()-cpuClient0)
	if failures > 0 {
		return errors.Join(fmt.Errorf("%d creates failed", failures), firstErr)
	}
	return nil
}
