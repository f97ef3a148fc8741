package sso

import (
	"context"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Providers keeps each issuer's discovered provider for a while, so that a sign-in does not
// fetch the discovery document twice (start and callback) and the provider's signing keys stay
// cached between sign-ins. Failures are not kept: the next sign-in tries again.
type Providers struct {
	policy Policy
	ttl    time.Duration
	now    func() time.Time

	mu   sync.Mutex
	byIs map[string]cachedProvider
}

type cachedProvider struct {
	p  *oidc.Provider
	at time.Time
}

// maxProviders bounds the cache; past it, the cache starts over (tenants are few compared to it).
const maxProviders = 1024

// NewProviders caches providers discovered under policy for ttl (15 min when zero).
func NewProviders(policy Policy, ttl time.Duration) *Providers {
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	return &Providers{policy: policy, ttl: ttl, now: time.Now, byIs: map[string]cachedProvider{}}
}

// Get returns issuer's provider, discovering it when it is not cached or too old.
func (ps *Providers) Get(ctx context.Context, issuer string) (*oidc.Provider, error) {
	ps.mu.Lock()
	c, ok := ps.byIs[issuer]
	ps.mu.Unlock()
	if ok && ps.now().Sub(c.at) < ps.ttl {
		return c.p, nil
	}
	p, err := ps.policy.Discover(ctx, issuer)
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	if len(ps.byIs) >= maxProviders {
		clear(ps.byIs)
	}
	ps.byIs[issuer] = cachedProvider{p: p, at: ps.now()}
	ps.mu.Unlock()
	return p, nil
}

// Policy is the policy providers are fetched under.
func (ps *Providers) Policy() Policy { return ps.policy }
