// Package ratelimit holds keyed token buckets, such as login attempts per client IP.
//
// Buckets live in the process: with N server instances behind a balancer a client gets up to N
// times the configured rate. That bounds password guessing well enough next to argon2id's cost;
// a shared limiter (in PostgreSQL) is the step up if that ever matters.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter allows each key Burst events at once and Rate per second after that.
type Limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter allowing perMinute events a minute per key, in bursts of up to burst.
func New(perMinute float64, burst int) *Limiter {
	return &Limiter{rate: rate.Limit(perMinute / 60), burst: burst, now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes one event for key. When the bucket is empty it returns false and how long until
// the next event would be allowed.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// sweep forgets buckets idle long enough to have refilled, so memory stays bounded by the keys
// seen in the last few minutes.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	full := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Minute
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
}
