package files

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// StorageKey is where a file's blob lives: under its tenant's prefix, named by the file's id.
// Only the server chooses it; no client input is part of it.
func StorageKey(tenant, file uuid.UUID) string { return TenantPrefix(tenant) + file.String() }

// TenantPrefix is the key prefix of every blob of tenant.
func TenantPrefix(tenant uuid.UUID) string { return "t/" + tenant.String() + "/" }

// ParseStorageKey returns the tenant a key belongs to; ok is false for a key that is not one of
// StorageKey's.
func ParseStorageKey(key string) (tenant, file uuid.UUID, ok bool) {
	rest, found := strings.CutPrefix(key, "t/")
	if !found {
		return uuid.Nil, uuid.Nil, false
	}
	t, f, found := strings.Cut(rest, "/")
	if !found {
		return uuid.Nil, uuid.Nil, false
	}
	tenant, err1 := uuid.Parse(t)
	file, err2 := uuid.Parse(f)
	if err1 != nil || err2 != nil || StorageKey(tenant, file) != key {
		return uuid.Nil, uuid.Nil, false
	}
	return tenant, file, true
}

// Signer signs download URLs for stores without URLs of their own: an HMAC-SHA256 over the file
// id, its tenant and the expiry, so a URL opens exactly one file of one tenant until it expires.
type Signer struct {
	key []byte
}

// Zero reports whether s has no key (the zero Signer).
func (s Signer) Zero() bool { return len(s.key) == 0 }

// NewSigner returns a Signer with key, which every instance must share (32 bytes or more).
func NewSigner(key []byte) Signer { return Signer{key: key} }

// Sign returns the signature of a URL for file of tenant valid until expires.
func (s Signer) Sign(tenant, file uuid.UUID, expires time.Time) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(tenant, file, expires.Unix()))
}

// Verify reports whether sig is Sign's for file, tenant and expires (Unix seconds), and the
// expiry has not passed at now.
func (s Signer) Verify(tenant, file uuid.UUID, expires int64, sig string, now time.Time) bool {
	// Strict: one spelling per signature (the padding bits of the last character must be 0).
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		return false
	}
	// The MAC first, so a forged URL costs the same whether or not it has expired.
	ok := hmac.Equal(got, s.mac(tenant, file, expires))
	return ok && now.Unix() < expires
}

func (s Signer) mac(tenant, file uuid.UUID, expires int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("tasker file url v1\x00"))
	m.Write(tenant[:])
	m.Write(file[:])
	m.Write([]byte(strconv.FormatInt(expires, 10)))
	return m.Sum(nil)
}
