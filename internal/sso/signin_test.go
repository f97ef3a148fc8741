package sso

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckEmailWantsAVerifiedEmailOfAnAllowedDomainExactly(t *testing.T) {
	allowed := []string{"acme.com", "eng.acme.com"}
	cases := []struct {
		email    string
		verified bool
		want     Failure
	}{
		{"ann@acme.com", true, ""},
		{"bob@eng.acme.com", true, ""},
		{"ann@acme.com", false, EmailUnverified},
		{"", true, EmailUnverified},
		{"@acme.com", true, EmailUnverified},
		{"ann@", true, EmailUnverified},
		{"a@b@acme.com", true, EmailUnverified},
		{"ann@sales.acme.com", true, DomainNotAllowed},
		{"ann@notacme.com", true, DomainNotAllowed},
		{"ann@acme.com.evil.test", true, DomainNotAllowed},
		{strings.Repeat("a", 250) + "@acme.com", true, EmailUnverified},
		{"\u212aate@acme.com", true, EmailInvalid},
		{"ann\x00@acme.com", true, EmailInvalid},
		{"ann lee@acme.com", true, EmailInvalid},
		{"ann@acme.com\u3002", true, EmailInvalid},
	}
	for _, c := range cases {
		err := CheckEmail(Identity{Email: c.email, EmailVerified: c.verified}, allowed)
		got := Failure("")
		if err != nil {
			got = CodeOf(err)
		}
		if got != c.want {
			t.Errorf("%q verified=%t: %q, want %q", c.email, c.verified, got, c.want)
		}
	}
}

func TestVerifiedTakesBooleansAndTheStringTrueOnly(t *testing.T) {
	for v, want := range map[string]bool{`true`: true, `"true"`: true, `false`: false, `"false"`: false, `"yes"`: false, `1`: false, `null`: false, ``: false, `"True"`: false} {
		if got := verified(json.RawMessage(v)); got != want {
			t.Errorf("verified(%s) = %t", v, got)
		}
	}
}

func TestDisplayNameTakesTheFirstUsableCandidate(t *testing.T) {
	if got := displayName("  ", "\x01\x02", "ann"); got != "ann" {
		t.Errorf("got %q", got)
	}
	if got := displayName("Ann\nLee", "ann"); got != "AnnLee" {
		t.Errorf("control characters kept: %q", got)
	}
	if got := displayName(strings.Repeat("é", 300)); len([]rune(got)) != 200 {
		t.Errorf("a long name is %d runes", len([]rune(got)))
	}
	if got := displayName("", ""); got != "SSO user" {
		t.Errorf("nothing usable: %q", got)
	}
}

func TestParseRedirectURIsWantsAbsoluteHTTPURLs(t *testing.T) {
	got, err := ParseRedirectURIs(" https://app.example.com/sso , http://localhost:3000/sso,https://app.example.com/sso")
	if err != nil || len(got) != 2 || got[0] != "https://app.example.com/sso" || got[1] != "http://localhost:3000/sso" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"/sso", "javascript:alert(1)", "https://user:pw@app.example.com/", "https://app.example.com/#x", "ftp://app.example.com/"} {
		if _, err := ParseRedirectURIs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEndpointsMustAllBeHTTPS(t *testing.T) {
	good := endpoints{Auth: "https://idp.example.com/auth", Token: "https://idp.example.com/token", JWKS: "https://idp.example.com/keys"}
	if err := good.secure(); err != nil {
		t.Fatalf("https endpoints refused: %v", err)
	}
	for name, bad := range map[string]endpoints{
		"http token endpoint":  {Auth: good.Auth, Token: "http://idp.example.com/token", JWKS: good.JWKS},
		"javascript auth":      {Auth: "javascript:alert(1)", Token: good.Token, JWKS: good.JWKS},
		"no keys":              {Auth: good.Auth, Token: good.Token},
		"credentials in token": {Auth: good.Auth, Token: "https://u:p@idp.example.com/token", JWKS: good.JWKS},
		"http user info":       {Auth: good.Auth, Token: good.Token, JWKS: good.JWKS, UserInfo: "http://idp.example.com/me"},
	} {
		if err := bad.secure(); err == nil || !strings.Contains(err.Error(), "https") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
