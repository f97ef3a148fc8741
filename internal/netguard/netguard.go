// Package netguard tells public internet addresses from the others, for the connections the
// server makes on a tenant's behalf (its OpenID provider; outbound webhooks): a tenant must not
// be able to point the server at its own network, a cloud metadata service or a neighbour.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrNotPublic is a connection to an address that is not on the public internet.
var ErrNotPublic = errors.New("the address is not public")

// notPublic are the special-purpose ranges (IANA's registries) that Go's IsPrivate, IsLoopback,
// IsLinkLocalUnicast, IsMulticast and the like (in Public) do not cover, each of which reaches
// something other than the public internet.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT (and some clouds' metadata)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast (255.255.255.255)
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: an IPv4 address behind it
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (Teredo, ORCHID and others)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: an IPv4 address inside
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated), and unspecified
	netip.MustParsePrefix("5f00::/16"),       // SRv6 SIDs
	netip.MustParsePrefix("3fff::/20"),       // documentation
}

// Public reports whether addr is a public unicast address.
func Public(addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap()
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// Control is a net.Dialer Control hook that refuses every address Public refuses. It runs
// after name resolution, on the address actually dialled, so a name that resolves (or is
// rebound) to a private address is refused too.
func Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !Public(addr) {
		return fmt.Errorf("%w: %s", ErrNotPublic, host)
	}
	return nil
}

// Options shape Client.
type Options struct {
	// AllowPrivate lets the client reach any address (tests, on-premise deployments).
	AllowPrivate bool
	// Timeout bounds each request, from dial to the end of the body (10 s when zero).
	Timeout time.Duration
}

// Client is an HTTP client for calls a tenant chose the target of: bounded in time, following
// no redirect, and unless AllowPrivate, connecting only to public addresses, checked on the
// address actually dialled, with no proxy (a proxy would connect for it, past the check).
func Client(o Options) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: timeout}
	proxy := http.ProxyFromEnvironment
	if !o.AllowPrivate {
		dialer.Control, proxy = Control, nil
	}
	transport := &http.Transport{
		Proxy: proxy, DialContext: dialer.DialContext, MaxIdleConnsPerHost: 4,
		TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout, MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{Timeout: timeout, Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
