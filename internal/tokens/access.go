package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// AccessType is the JWT "typ" header of access tokens (RFC 9068), so no other JWT of ours, or
// of anyone sharing the key, can be replayed as one (RFC 8725 section 3.11).
const AccessType = "at+jwt"

// Claims are an access token's claims. sub is the user id.
type Claims struct {
	jwt.RegisteredClaims
	TenantID  uuid.UUID `json:"tid"`
	Role      string    `json:"role"`
	SessionID uuid.UUID `json:"sid"`
}

// Issuer signs and verifies access tokens.
type Issuer struct {
	keys     *KeySet
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	verified verifiedCache
}

// IssuerConfig configures an Issuer; Now defaults to time.Now.
type IssuerConfig struct {
	Keys     *KeySet
	Issuer   string
	Audience string
	TTL      time.Duration
	Now      func() time.Time
}

// NewIssuer returns an Issuer for cfg.
func NewIssuer(cfg IssuerConfig) *Issuer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Issuer{keys: cfg.Keys, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.TTL, now: cfg.Now,
		verified: verifiedCache{m: map[string]*Claims{}, max: verifiedCacheSize}}
}

// TTL is how long issued tokens live.
func (is *Issuer) TTL() time.Duration { return is.ttl }

// Keys is the key set, for publishing it.
func (is *Issuer) Keys() *KeySet { return is.keys }

// Subject is whom an access token is for.
type Subject struct {
	User, Tenant, Session uuid.UUID
	Role                  string
}

// Issue signs an access token for s with the current key.
func (is *Issuer) Issue(s Subject) (string, error) {
	now := is.now().Truncate(time.Second)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    is.issuer,
			Subject:   s.User.String(),
			Audience:  jwt.ClaimStrings{is.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(is.ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		TenantID:  s.Tenant,
		Role:      s.Role,
		SessionID: s.Session,
	}
	k := is.keys.signer()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = k.ID
	t.Header["typ"] = AccessType
	signed, err := t.SignedString(k.private)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return signed, nil
}

// ErrInvalidToken wraps every verification failure; the wrapped text says why, for logs only.
var ErrInvalidToken = errors.New("invalid access token")

// Verify checks an access token's signature with the key its kid names, pinning the algorithm
// to EdDSA, the typ, issuer and audience, and requiring exp, nbf and iat to be present, to be
// JSON numbers (RFC 7519 NumericDate) and to hold.
func (is *Issuer) Verify(token string) (*Claims, error) {
	now := is.now()
	if c := is.verified.get(token); c != nil {
		// The same string verified before; only the clock can have changed the answer.
		if !now.Before(c.ExpiresAt.Time) {
			return nil, fmt.Errorf("%w: token is expired", ErrInvalidToken)
		}
		cp := *c
		return &cp, nil
	}
	var claims Claims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(is.issuer),
		jwt.WithAudience(is.audience),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(is.now),
		jwt.WithStrictDecoding(),
	)
	parsed, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != AccessType {
			return nil, fmt.Errorf("typ %q is not %s", typ, AccessType)
		}
		kid, _ := t.Header["kid"].(string)
		pub, ok := is.keys.byID[kid]
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return pub, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := numericTimes(parser, parsed); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if _, err := uuid.Parse(claims.Subject); err != nil || claims.TenantID == uuid.Nil || claims.SessionID == uuid.Nil || claims.Role == "" {
		return nil, fmt.Errorf("%w: missing sub, tid, sid or role", ErrInvalidToken)
	}
	is.verified.put(token, &claims)
	cp := claims
	return &cp, nil
}

// timeClaims are the claims Verify requires as JSON numbers.
var timeClaims = [...]string{"exp", "nbf", "iat"}

// numericTimes checks that the signed payload holds exp, nbf and iat as JSON numbers. The parser
// cannot: WithIssuedAt checks iat only when present, and jwt.NumericDate also decodes a string
// such as "1999999999".
func numericTimes(p *jwt.Parser, t *jwt.Token) error {
	parts := strings.Split(t.Raw, ".")
	if len(parts) != 3 {
		return errors.New("malformed token")
	}
	raw, err := p.DecodeSegment(parts[1])
	if err != nil {
		return fmt.Errorf("decode payload: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return fmt.Errorf("decode payload: %w", err)
	}
	for _, name := range timeClaims {
		if _, ok := fields[name].(json.Number); !ok {
			return fmt.Errorf("%s is missing or not a number", name)
		}
	}
	return nil
}

// verifiedCacheSize bounds the tokens remembered as verified (about 0.5 KB each).
const verifiedCacheSize = 20000

// verifiedCache remembers tokens whose signature and claims checked out, so a client sending the
// same token on every request pays the EdDSA verification (about 60 µs) once, not each time. It
// is keyed by the whole token string, so any change to a token misses it; entries still expire
// with their token.
type verifiedCache struct {
	mu  sync.Mutex
	m   map[string]*Claims
	max int
}

func (c *verifiedCache) get(token string) *Claims {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[token]
}

func (c *verifiedCache) put(token string, claims *Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Drop about a tenth, arbitrarily (map order is random): cheaper than LRU bookkeeping on
		// every hit, and a dropped token only costs one more verification.
		n := c.max / 10
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[token] = claims
}
