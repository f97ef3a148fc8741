// Package ratelimit holds keyed token buckets, such as login attempts per client IP.
//
// Buckets live in the process: with N server instances behind a balancer a client gets up to N
// times the configured rate. That bounds password guessing well enough next to argon2id's cost;
// a shared limiter (in PostgreSQL) is the step up if that ever matters.
package ratelimit

import (
	"math"
	"net/netip"
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
	buckets map[string]*rate.Limiter
	swept   time.Time
}

// New returns a limiter allowing perMinute events a minute per key, in bursts of up to burst.
func New(perMinute float64, burst int) *Limiter {
	return &Limiter{rate: rate.Limit(perMinute / 60), burst: burst, now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// Allow takes one event for key. When the bucket is empty it returns false and how long until
// the next event would be allowed.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.bucket(key, now).ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// Spend takes one event for key whether or not one is left, for events counted after they
// happened (such as failed logins). An empty bucket goes into debt, so every event spent costs
// its time, however many got past a check before they were counted.
func (l *Limiter) Spend(key string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucket(key, now).ReserveN(now, 1)
}

// Until is how long until key's bucket holds n events, n capped at the burst: 0 if it holds
// them now. It changes nothing; a key never seen (or forgotten) has a full bucket.
func (l *Limiter) Until(key string, n int) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return 0
	}
	missing := float64(min(n, l.burst)) - b.TokensAt(now)
	switch {
	case missing <= 0:
		return 0
	case l.rate <= 0:
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(math.Ceil(missing / float64(l.rate) * float64(time.Second)))
}

// Burst is the most events a key may have at once.
func (l *Limiter) Burst() int { return l.burst }

// bucket returns key's bucket, creating it full; l.mu must be held.
func (l *Limiter) bucket(key string, now time.Time) *rate.Limiter {
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[key] = b
	}
	return b
}

// sweep forgets buckets that have refilled: a full bucket is the same as none. Memory stays
// bounded by the keys with events in the last few minutes (longer for keys in debt).
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// Network is the client address as the limits count it: an IPv4 address, or the /64 of an IPv6
// one, since a single IPv6 client commonly holds a whole /64 to rotate through.
func Network(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Unmap().Is4() {
		return ip
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
