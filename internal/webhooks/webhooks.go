// Package webhooks holds what outbound webhooks need besides the queue: signing secrets, the
// Standard Webhooks signature (https://www.standardwebhooks.com), and the rules for the URLs
// tenants may point deliveries at.
package webhooks

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tasker/tasker/internal/netguard"
)

// secretPrefix marks a signing secret, as Standard Webhooks' verifier libraries expect it.
const secretPrefix = "whsec_"

// NewSecret makes a signing secret: whsec_ and the base64 of 32 random bytes.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Headers are a delivery's webhook-id, webhook-timestamp and webhook-signature: one v1
// signature for each secret, space-separated, so that during a rotation receivers holding
// either secret accept it. The signing is the Standard Webhooks library's own.
func Headers(secrets []string, msgID string, at time.Time, body []byte) (http.Header, error) {
	if len(secrets) == 0 {
		return nil, errors.New("webhooks: no signing secret")
	}
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("webhooks: signing secret: %w", err)
		}
		sig, err := wh.Sign(msgID, at, body)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, msgID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
	return h, nil
}

// Guard is where deliveries may go.
type Guard struct {
	// AllowPrivate lets endpoints be on loopback, private, link-local and other non-public
	// addresses (tests, on-premise receivers). Off, such addresses are refused when dialled.
	AllowPrivate bool
	// Timeout bounds one delivery attempt (10 s when zero).
	Timeout time.Duration
}

// ErrURL is an endpoint URL that is refused.
var ErrURL = errors.New("webhooks: the URL is not allowed")

// CheckURL refuses what can be refused before any connection: a scheme other than http(s), no
// host, credentials in the URL, a fragment, port 0, and (unless AllowPrivate) a literal
// address that is not public, and a host that is neither a canonical IP address nor a plain
// DNS name (2130706433, 0x7f.1, 127.1 and Unicode look-alikes all mean 127.0.0.1 to some
// client), or a localhost name. Whatever a name resolves to is checked when it is dialled.
func (g Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%w: want an absolute http or https URL", ErrURL)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: the scheme must be http or https", ErrURL)
	case u.User != nil:
		return fmt.Errorf("%w: credentials in the URL are refused; the signature authenticates deliveries", ErrURL)
	case strings.Contains(raw, "#"):
		return fmt.Errorf("%w: a fragment is never sent", ErrURL)
	case u.Port() == "" && strings.HasSuffix(u.Host, ":"), u.Port() != "" && !validPort(u.Port()):
		return fmt.Errorf("%w: the port is not one to deliver to (1 to 65535)", ErrURL)
	}
	if g.AllowPrivate {
		return nil
	}
	if addr, err := netip.ParseAddr(u.Hostname()); err == nil {
		if !netguard.Public(addr) {
			return fmt.Errorf("%w: the address is not public", ErrURL)
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if !dnsName(name) {
		return fmt.Errorf("%w: the host is neither an IP address nor a DNS name (use the punycode form of a Unicode name)", ErrURL)
	}
	if name == "localhost.localdomain" || strings.HasSuffix("."+name, ".localhost") {
		return fmt.Errorf("%w: the address is not public", ErrURL)
	}
	return nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == p
}

// dnsName reports whether name is a plain DNS name of two or more ASCII labels whose last one
// is a top-level domain (letters, or an xn-- punycode label): no numeric forms of an address.
func dnsName(name string) bool {
	labels := strings.Split(name, ".")
	if len(name) > 253 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	tld := labels[len(labels)-1]
	if strings.HasPrefix(tld, "xn--") {
		return true
	}
	return strings.Trim(tld, "abcdefghijklmnopqrstuvwxyz") == ""
}

// Client is the HTTP client of deliveries: no redirects, bounded in time, and public addresses
// only unless AllowPrivate, checked on the address actually dialled (DNS rebinding included).
func (g Guard) Client() *http.Client {
	return netguard.Client(netguard.Options{AllowPrivate: g.AllowPrivate, Timeout: g.Timeout})
}
