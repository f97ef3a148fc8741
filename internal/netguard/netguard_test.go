package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPublicRefusesEverySpecialRange(t *testing.T) {
	refused := []string{
		"127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "fe80::1",
		"100.64.0.1", "100.100.100.200", "198.18.0.1", "0.0.0.0", "0.1.2.3", "240.0.0.1", "255.255.255.255",
		"224.0.0.1", "ff02::1", "fd00::1", "64:ff9b::a00:1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::",
		"2002:a00:1::", "2001:db8::1", "192.0.2.1", "::127.0.0.1",
	}
	for _, s := range refused {
		if Public(netip.MustParseAddr(s)) {
			t.Errorf("%s counted as public", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "100.128.0.1"} {
		if !Public(netip.MustParseAddr(s)) {
			t.Errorf("%s counted as not public", s)
		}
	}
	if err := Control("tcp", "[::1]:443", nil); !errors.Is(err, ErrNotPublic) {
		t.Errorf("Control on loopback: %v", err)
	}
	if err := Control("tcp", "8.8.8.8:443", nil); err != nil {
		t.Errorf("Control on a public address: %v", err)
	}
}
