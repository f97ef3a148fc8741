// Package sso holds the rules of per-tenant OpenID Connect: which issuers a tenant may name,
// and checking one by its discovery document before it is stored.
package sso

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tasker/tasker/internal/netguard"
)

// Policy is what issuers the server accepts.
type Policy struct {
	// AllowInsecure accepts http issuers and issuers on loopback, private and link-local
	// addresses: for development, tests and providers inside the company network.
	AllowInsecure bool
	// Timeout bounds fetching the discovery document (10 s when zero).
	Timeout time.Duration
}

// CheckIssuerURL refuses an issuer that is not an absolute https URL without query or fragment
// (http too when insecure issuers are allowed).
func (p Policy) CheckIssuerURL(issuer string) error {
	u, err := url.Parse(issuer)
	switch {
	case err != nil || u.Host == "" || u.User != nil:
		return errors.New("the issuer must be an absolute URL such as https://login.example.com")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("the issuer may not have a query or a fragment")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && p.AllowInsecure:
		return nil
	case u.Scheme == "http":
		return errors.New("the issuer must use https (this server does not allow insecure issuers)")
	}
	return fmt.Errorf("the issuer's scheme %q is not https", u.Scheme)
}

// Client is the HTTP client of every call to a tenant's provider: bounded in time, and unless
// insecure issuers are allowed, refusing to connect to loopback, private, link-local and other
// non-public addresses, whatever the name resolves to when it is dialled (so a tenant cannot
// point the server at its own network).
func (p Policy) Client() *http.Client {
	return netguard.Client(netguard.Options{AllowPrivate: p.AllowInsecure, Timeout: p.Timeout})
}

// Discover fetches issuer's discovery document with the policy's client and checks it: it must
// parse and name the same issuer. The error says why, in words fit for the admin who typed it.
func (p Policy) Discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	if err := p.CheckIssuerURL(issuer); err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, p.Client())
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, explain(err)
	}
	if !p.AllowInsecure {
		// The browser is sent to the authorization endpoint and the client secret to the token
		// endpoint: both, and the keys, must be https like the issuer.
		var eps endpoints
		if err := provider.Claims(&eps); err != nil {
			return nil, explain(err)
		}
		if err := eps.secure(); err != nil {
			return nil, err
		}
	}
	return provider, nil
}

// httpStatus is how go-oidc's error for a non-200 discovery answer starts ("404 Not Found: ...").
var httpStatus = regexp.MustCompile(`^[1-5][0-9][0-9] `)

// explain turns go-oidc's and net/http's errors into a reason that names no internal detail
// beyond what the admin's own URL implies.
func explain(err error) error {
	msg := err.Error()
	var mismatch *oidc.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		return fmt.Errorf("the discovery document names another issuer (%q); use exactly the issuer it names", mismatch.Discovered)
	case errors.Is(err, netguard.ErrNotPublic):
		return errors.New("the issuer is not on a public address (this server does not allow insecure issuers)")
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "timeout"):
		return errors.New("the issuer's discovery document did not arrive in time")
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "dial"):
		return errors.New("the issuer could not be reached")
	case strings.HasPrefix(msg, "oidc: failed to decode provider discovery object"):
		return errors.New("the issuer's discovery document is not valid JSON")
	case httpStatus.MatchString(msg):
		return fmt.Errorf("the issuer answered its discovery URL with %s (is /.well-known/openid-configuration there?)", msg[:3])
	}
	return errors.New("the issuer's discovery document could not be fetched or read")
}

// endpoints are the URLs a discovery document names.
type endpoints struct {
	Auth     string `json:"authorization_endpoint"`
	Token    string `json:"token_endpoint"`
	JWKS     string `json:"jwks_uri"`
	UserInfo string `json:"userinfo_endpoint"`
}

// secure refuses endpoints that are not https (the user info endpoint may be absent).
func (e endpoints) secure() error {
	for _, ep := range []struct{ name, url string }{
		{"authorization_endpoint", e.Auth}, {"token_endpoint", e.Token}, {"jwks_uri", e.JWKS}, {"userinfo_endpoint", e.UserInfo},
	} {
		if ep.url == "" && ep.name == "userinfo_endpoint" {
			continue
		}
		if u, err := url.Parse(ep.url); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return fmt.Errorf("the discovery document's %s is not an https URL", ep.name)
		}
	}
	return nil
}
