// Command authload drives a running Tasker server with concurrent sign-ins or refresh-token
// rotations and prints throughput and latency. It only talks to the URL it is given, and stops
// after -duration.
//
//	authload -url http://127.0.0.1:8080 -mode refresh -sessions 16 -duration 10s
//	authload -url http://127.0.0.1:8080 -mode login -sessions 4 -duration 10s
//
// The server must allow the login rate (LOGIN_RATE_PER_IP; LOGIN_RATE_PER_ACCOUNT counts only
// failed logins).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tasker/tasker/gen/api"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "authload:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	mode := flag.String("mode", "refresh", "refresh or login")
	workers := flag.Int("sessions", 16, "concurrent sessions (refresh) or login loops (login)")
	duration := flag.Duration("duration", 10*time.Second, "how long to run")
	flag.Parse()

	httpClient := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: *workers * 2, MaxConnsPerHost: *workers * 2},
	}
	client, err := api.NewClientWithResponses(*url, api.WithHTTPClient(httpClient))
	if err != nil {
		return err
	}
	ctx := context.Background()

	suffix := make([]byte, 5)
	_, _ = rand.Read(suffix)
	slug := "load-" + hex.EncodeToString(suffix)
	const email, password = "load@example.test", "load test password"
	signup, err := client.SignupWithResponse(ctx, api.SignupRequest{TenantName: "Load", TenantSlug: slug, Email: email, Password: password, Name: "Load"})
	if err != nil {
		return err
	}
	if signup.JSON201 == nil {
		return fmt.Errorf("signup: %d %s", signup.StatusCode(), signup.Body)
	}
	login := func() (api.TokenPair, error) {
		resp, err := client.LoginWithResponse(ctx, api.LoginRequest{TenantSlug: slug, Email: email, Password: password})
		if err != nil {
			return api.TokenPair{}, err
		}
		if resp.JSON200 == nil {
			return api.TokenPair{}, fmt.Errorf("login: %d %s", resp.StatusCode(), resp.Body)
		}
		return *resp.JSON200, nil
	}

	var op func(state *string) error
	switch *mode {
	case "refresh":
		op = func(token *string) error {
			resp, err := client.RefreshWithResponse(ctx, api.RefreshRequest{RefreshToken: *token})
			if err != nil {
				return err
			}
			if resp.JSON200 == nil {
				return fmt.Errorf("refresh: %d %s", resp.StatusCode(), resp.Body)
			}
			*token = resp.JSON200.RefreshToken
			return nil
		}
	case "login":
		op = func(*string) error { _, err := login(); return err }
	default:
		return fmt.Errorf("unknown -mode %q", *mode)
	}

	states := make([]string, *workers)
	if *mode == "refresh" {
		for i := range states {
			pair, err := login()
			if err != nil {
				return err
			}
			states[i] = pair.RefreshToken
		}
	}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  int
		firstErr  error
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(*duration)
	start := time.Now()
	for i := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			fails := 0
			var ferr error
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := op(&states[i]); err != nil {
					fails++
					if ferr == nil {
						ferr = err
					}
					if *mode == "refresh" {
						break // the chain is broken; a real client would sign in again
					}
					continue
				}
				local = append(local, time.Since(t))
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
	elapsed := time.Since(start)

	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(float64(len(latencies))*p))]
	}
	fmt.Printf("mode=%s workers=%d duration=%s ok=%d failed=%d rate=%.0f/s p50=%s p90=%s p99=%s max=%s\n",
		*mode, *workers, elapsed.Round(time.Millisecond), len(latencies), failures,
		float64(len(latencies))/elapsed.Seconds(), pct(0.50), pct(0.90), pct(0.99), pct(1))
	if failures > 0 {
		return errors.Join(fmt.Errorf("%d operations failed", failures), firstErr)
	}
	return nil
}
