package ratelimit

import "testing"

func TestLimitsCountIPv6ClientsByTheirSlash64(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"127.0.0.1":                      "127.0.0.1",
		"2001:db8:1:2:3:4:5:6":           "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff:ffff:ff": "2001:db8:1:2::/64",
		"::ffff:10.0.0.1":                "::ffff:10.0.0.1",
		"not an address":                 "not an address",
	}
	for in, want := range cases {
		if got := Network(in); got != want {
			t.Errorf("Network(%q) = %q, want %q", in, got, want)
		}
	}
}
