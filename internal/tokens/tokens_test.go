package tokens

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func newIssuer(t testing.TB, keys ...ed25519.PrivateKey) *Issuer {
	t.Helper()
	if len(keys) == 0 {
		keys = []ed25519.PrivateKey{GenerateKey()}
	}
	ks, err := NewKeySet(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return NewIssuer(IssuerConfig{Keys: ks, Issuer: "https://tasker.test", Audience: "tasker-api", TTL: 15 * time.Minute, Now: func() time.Time { return t0 }})
}

func subject() Subject {
	return Subject{User: uuid.New(), Tenant: uuid.New(), Session: uuid.New(), Role: "admin"}
}

func TestIssuedTokenVerifiesWithItsClaims(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	s := subject()
	tok, err := is.Issue(s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := is.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != s.User.String() || c.TenantID != s.Tenant || c.SessionID != s.Session || c.Role != "admin" || c.ID == "" {
		t.Errorf("claims %+v do not match %+v", c, s)
	}
	if !c.ExpiresAt.Equal(t0.Add(15*time.Minute)) || c.Issuer != "https://tasker.test" || c.Audience[0] != "tasker-api" {
		t.Errorf("registered claims %+v", c.RegisteredClaims)
	}
}

// forge signs arbitrary claims and headers, to build the tokens an attacker could send.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, mutate func(*Claims)) string {
	t.Helper()
	s := subject()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "https://tasker.test", Subject: s.User.String(), Audience: jwt.ClaimStrings{"tasker-api"},
			ExpiresAt: jwt.NewNumericDate(t0.Add(10 * time.Minute)), NotBefore: jwt.NewNumericDate(t0.Add(-time.Minute)),
			IssuedAt: jwt.NewNumericDate(t0.Add(-time.Minute)), ID: "x",
		},
		TenantID: s.Tenant, Role: "owner", SessionID: s.Session,
	}
	if mutate != nil {
		mutate(&c)
	}
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestVerifyRejectsForgedAndInvalidTokens(t *testing.T) {
	t.Parallel()
	key := GenerateKey()
	is := newIssuer(t, key)
	kid := is.keys.signer().ID
	pub := key.Public().(ed25519.PublicKey)
	hdr := map[string]any{"kid": kid, "typ": AccessType}
	good := forge(t, jwt.SigningMethodEdDSA, key, hdr, nil)
	if _, err := is.Verify(good); err != nil {
		t.Fatalf("the control token is rejected: %v", err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	flipped[10] ^= 0x01
	otherPayload := strings.Split(forge(t, jwt.SigningMethodEdDSA, GenerateKey(), hdr, func(c *Claims) { c.Role = "owner" }), ".")[1]

	cases := map[string]string{
		"alg none":                        forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr, nil),
		"HS256 keyed with the public key": forge(t, jwt.SigningMethodHS256, []byte(pub), hdr, nil),
		"HS256 keyed with the JWK x":      forge(t, jwt.SigningMethodHS256, []byte(base64.RawURLEncoding.EncodeToString(pub)), hdr, nil),
		"ES256":                           forge(t, jwt.SigningMethodES256, ecKey, hdr, nil),
		"tampered signature":              parts[0] + "." + parts[1] + "." + string(flipped),
		"payload swapped":                 parts[0] + "." + otherPayload + "." + parts[2],
		"signed by a foreign key":         forge(t, jwt.SigningMethodEdDSA, GenerateKey(), hdr, nil),
		"unknown kid":                     forge(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": "nope", "typ": AccessType}, nil),
		"no kid":                          forge(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": nil, "typ": AccessType}, nil),
		"wrong typ":                       forge(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid, "typ": "JWT"}, nil),
		"wrong issuer":                    forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.Issuer = "https://evil.test" }),
		"wrong audience":                  forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }),
		"expired":                         forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(t0.Add(-time.Second)) }),
		"no exp":                          forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.ExpiresAt = nil }),
		"not yet valid":                   forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.NotBefore = jwt.NewNumericDate(t0.Add(time.Minute)) }),
		"issued in the future":            forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(t0.Add(time.Hour)) }),
		"no tenant":                       forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.TenantID = uuid.Nil }),
		"no session":                      forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.SessionID = uuid.Nil }),
		"subject not a user id":           forge(t, jwt.SigningMethodEdDSA, key, hdr, func(c *Claims) { c.Subject = "admin" }),
		"empty":                           "",
		"garbage":                         "a.b.c",
	}
	for name, tok := range cases {
		if c, err := is.Verify(tok); err == nil || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify = %+v, %v; want ErrInvalidToken", name, c, err)
		}
	}
}

func TestRotatedKeysVerifyUntilDropped(t *testing.T) {
	t.Parallel()
	oldKey, newKey := GenerateKey(), GenerateKey()
	before := newIssuer(t, oldKey)
	tok, err := before.Issue(subject())
	if err != nil {
		t.Fatal(err)
	}
	during := newIssuer(t, newKey, oldKey)
	if _, err := during.Verify(tok); err != nil {
		t.Errorf("after rotation the old key's token is rejected: %v", err)
	}
	fresh, _ := during.Issue(subject())
	if h, _, _ := jwt.NewParser().ParseUnverified(fresh, &Claims{}); h.Header["kid"] != during.keys.keys[0].ID || h.Header["kid"] == before.keys.keys[0].ID {
		t.Errorf("after rotation tokens are signed with kid %v; want the new key", h.Header["kid"])
	}
	if got := len(during.Keys().JWKS()); got != 2 {
		t.Errorf("JWKS during rotation has %d keys, want 2", got)
	}
	after := newIssuer(t, newKey)
	if _, err := after.Verify(tok); err == nil {
		t.Error("a token of a dropped key still verifies")
	}
}

func TestKeyIDIsTheRFC8037Thumbprint(t *testing.T) {
	t.Parallel()
	// RFC 8037 appendix A.3.
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := thumbprint(ed25519.PublicKey(x)); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint = %s", got)
	}
}

func TestPEMRoundTripKeepsKeyOrder(t *testing.T) {
	t.Parallel()
	a, b := GenerateKey(), GenerateKey()
	ks, err := ParsePEM(append(EncodePEM(a), EncodePEM(b)...))
	if err != nil {
		t.Fatal(err)
	}
	if !ks.signer().private.Equal(a) || len(ks.JWKS()) != 2 {
		t.Fatal("the first PEM key must sign and both must be published")
	}
	if _, err := ParsePEM([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")); err == nil {
		t.Error("an RSA PEM block was accepted")
	}
	if _, err := ParsePEM(nil); err == nil {
		t.Error("an empty key file was accepted")
	}
}

func TestOpaqueCredentialRoundTrip(t *testing.T) {
	t.Parallel()
	o := NewOpaque(RefreshToken, uuid.New(), uuid.New())
	s := o.String()
	if !strings.HasPrefix(s, "tkr_") || len(s) != 90 || !strings.HasPrefix(s, o.Prefix()) || strings.Contains(o.Prefix(), b64.EncodeToString(o.Secret)) {
		t.Fatalf("credential %q, prefix %q", s, o.Prefix())
	}
	p, err := ParseOpaque(RefreshToken, s)
	if err != nil || p.Tenant != o.Tenant || p.ID != o.ID || !bytes.Equal(p.Secret, o.Secret) || !p.Matches(o.Hash()) {
		t.Fatalf("parsed %+v, %v", p, err)
	}
	if _, err := ParseOpaque(APIKey, s); err == nil {
		t.Error("a refresh token parsed as an API key")
	}
	other := NewOpaque(RefreshToken, o.Tenant, o.ID)
	if other.Matches(o.Hash()) {
		t.Error("another secret matches the stored hash")
	}
	for _, bad := range []string{"", "tkr", "tkr__", "tkr_" + strings.Repeat("A", 86), s + "A", s[:89], strings.Replace(s, "_", "-", 1), "tka" + s[3:]} {
		if _, err := ParseOpaque(RefreshToken, bad); err == nil {
			t.Errorf("ParseOpaque(%q) succeeded", bad)
		}
	}
}

func TestSealedSuccessorOpensOnlyWithThePredecessorSecret(t *testing.T) {
	t.Parallel()
	tenant := uuid.New()
	old := NewOpaque(RefreshToken, tenant, uuid.New())
	next := NewOpaque(RefreshToken, tenant, uuid.New())
	sealed, err := old.Seal(next)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, next.Secret) {
		t.Fatal("the sealed successor contains its secret in the clear")
	}
	got, err := old.Open(next.ID, sealed)
	if err != nil || got.String() != next.String() {
		t.Fatalf("Open = %v, %v; want the successor", got, err)
	}
	impostor := NewOpaque(RefreshToken, tenant, old.ID)
	if _, err := impostor.Open(next.ID, sealed); err == nil {
		t.Error("a different secret opened the successor")
	}
	if _, err := old.Open(uuid.New(), sealed); err == nil {
		t.Error("the successor opened under another id")
	}
}

func FuzzVerifyNeverAccepts(f *testing.F) {
	is := newIssuer(f)
	valid, _ := is.Issue(subject())
	parts := strings.Split(valid, ".")
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + ".." + parts[2])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(strings.ToUpper(valid))
	f.Add(valid + "x")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := is.Verify(tok)
		if err == nil && tok != valid {
			t.Fatalf("Verify accepted a token it did not issue: %q -> %+v", tok, c)
		}
	})
}

func FuzzParseOpaque(f *testing.F) {
	f.Add(NewOpaque(APIKey, uuid.New(), uuid.New()).String())
	f.Add("tka_AAAA_BBBB")
	f.Add("tka___")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOpaque(APIKey, s)
		if err != nil {
			return
		}
		if o.String() != s {
			t.Fatalf("ParseOpaque(%q) accepted a non-canonical form (%q)", s, o.String())
		}
	})
}

func TestVerifiedCacheStillExpiresAndMissesOnAnyChange(t *testing.T) {
	t.Parallel()
	now := t0
	is := newIssuer(t)
	is.now = func() time.Time { return now }
	tok, _ := is.Issue(subject())
	if _, err := is.Verify(tok); err != nil {
		t.Fatal(err)
	}
	c, err := is.Verify(tok) // from the cache
	if err != nil {
		t.Fatal(err)
	}
	c.Role = "owner" // callers get copies; the cache must not change
	if again, _ := is.Verify(tok); again.Role != "admin" {
		t.Fatalf("a caller changed the cached claims: role %q", again.Role)
	}
	changed := []byte(tok)
	i := len(changed) - 20 // inside the signature, clear of base64's padding bits
	changed[i] = map[bool]byte{true: 'B', false: 'A'}[changed[i] == 'A']
	if _, err := is.Verify(string(changed)); err == nil {
		t.Error("a changed token verified")
	}
	now = now.Add(16 * time.Minute)
	if _, err := is.Verify(tok); err == nil {
		t.Error("a cached token verified after it expired")
	}
}

func TestVerifiedCacheStaysBounded(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	is.verified.max = 50
	for range 200 {
		tok, _ := is.Issue(subject())
		if _, err := is.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(is.verified.m); n > 50 {
		t.Fatalf("cache holds %d tokens, bound is 50", n)
	}
}

// forgeRaw signs a claims object given as JSON text with key, so a test can send claims of any
// JSON type (Claims would always encode its times as numbers).
func forgeRaw(t *testing.T, key ed25519.PrivateKey, kid, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"EdDSA","kid":"` + kid + `","typ":"` + AccessType + `"}`))
	body := enc.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodEdDSA.Sign(head+"."+body, key)
	if err != nil {
		t.Fatal(err)
	}
	return head + "." + body + "." + enc.EncodeToString(sig)
}

func TestVerifyRequiresNumericExpNbfAndIat(t *testing.T) {
	t.Parallel()
	key := GenerateKey()
	is := newIssuer(t, key)
	kid := is.keys.signer().ID
	s := subject()
	exp, nbf, iat := t0.Add(10*time.Minute).Unix(), t0.Add(-time.Minute).Unix(), t0.Add(-time.Minute).Unix()
	claims := func(times string) string {
		return fmt.Sprintf(`{"iss":"https://tasker.test","sub":%q,"aud":["tasker-api"],"jti":"x","tid":%q,"role":"owner","sid":%q%s}`,
			s.User, s.Tenant, s.Session, times)
	}
	good := forgeRaw(t, key, kid, claims(fmt.Sprintf(`,"exp":%d,"nbf":%d,"iat":%d`, exp, nbf, iat)))
	if _, err := is.Verify(good); err != nil {
		t.Fatalf("the control token is rejected: %v", err)
	}
	cases := map[string]string{
		"no iat":           fmt.Sprintf(`,"exp":%d,"nbf":%d`, exp, nbf),
		"exp as a string":  fmt.Sprintf(`,"exp":"%d","nbf":%d,"iat":%d`, exp, nbf, iat),
		"nbf as a string":  fmt.Sprintf(`,"exp":%d,"nbf":"%d","iat":%d`, exp, nbf, iat),
		"iat as a string":  fmt.Sprintf(`,"exp":%d,"nbf":%d,"iat":"%d"`, exp, nbf, iat),
		"iat null":         fmt.Sprintf(`,"exp":%d,"nbf":%d,"iat":null`, exp, nbf),
		"exp null":         fmt.Sprintf(`,"exp":null,"nbf":%d,"iat":%d`, nbf, iat),
		"no nbf":           fmt.Sprintf(`,"exp":%d,"iat":%d`, exp, iat),
		"exp as an object": fmt.Sprintf(`,"exp":{"n":%d},"nbf":%d,"iat":%d`, exp, nbf, iat),
	}
	for name, times := range cases {
		if c, err := is.Verify(forgeRaw(t, key, kid, claims(times))); err == nil || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify = %+v, %v; want ErrInvalidToken", name, c, err)
		}
	}
}
