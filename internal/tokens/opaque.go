package tokens

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Kind names an opaque credential's purpose; it is the credential's visible prefix, which also
// lets secret scanners recognise leaked keys.
type Kind string

const (
	RefreshToken Kind = "tkr"
	APIKey       Kind = "tka"
	Invitation   Kind = "tki"
	// SSOState is the state of an SSO sign-in, sent to the provider and back.
	SSOState Kind = "tks"
	// SSOCode is the one-time code an SSO sign-in hands the frontend for its token pair.
	SSOCode Kind = "tkc"
)

// secretLen is 256 bits of randomness.
const secretLen = 32

// Opaque is a parsed credential: the tenant and row id it names, and the secret proving it.
type Opaque struct {
	Kind   Kind
	Tenant uuid.UUID
	ID     uuid.UUID
	Secret []byte
}

// NewOpaque makes a credential with a fresh random secret.
func NewOpaque(kind Kind, tenant, id uuid.UUID) Opaque {
	secret := make([]byte, secretLen)
	_, _ = rand.Read(secret)
	return Opaque{Kind: kind, Tenant: tenant, ID: id, Secret: secret}
}

var b64 = base64.RawURLEncoding

// idsLen and encodedLen are the base64url lengths of tenant+id (32 bytes) and of the secret.
const (
	idsLen     = 43
	encodedLen = 43
)

// String encodes the credential as kind_ followed by base64url(tenant || id) and
// base64url(secret), each 43 characters. base64url uses '_' too, so parsing goes by length.
func (o Opaque) String() string {
	return o.Prefix() + b64.EncodeToString(o.Secret)
}

// Prefix is the public part (kind, tenant and id), safe to show in lists.
func (o Opaque) Prefix() string {
	return string(o.Kind) + "_" + b64.EncodeToString(append(o.Tenant[:], o.ID[:]...))
}

// Hash is what is stored: SHA-256 of the secret. The secret has 256 bits of entropy, so a fast
// hash is enough; a slow password hash would only cost CPU on every request.
func (o Opaque) Hash() []byte {
	sum := sha256.Sum256(o.Secret)
	return sum[:]
}

// Matches compares the credential's secret with a stored hash in constant time.
func (o Opaque) Matches(storedHash []byte) bool {
	return subtle.ConstantTimeCompare(o.Hash(), storedHash) == 1
}

// ErrMalformed means the string is not a credential of the expected kind.
var ErrMalformed = errors.New("malformed credential")

// ParseOpaque parses s as a credential of kind.
func ParseOpaque(kind Kind, s string) (Opaque, error) {
	head := string(kind) + "_"
	if len(s) != len(head)+idsLen+encodedLen || !strings.HasPrefix(s, head) {
		return Opaque{}, ErrMalformed
	}
	ids, err := b64.Strict().DecodeString(s[len(head) : len(head)+idsLen])
	if err != nil || len(ids) != 32 {
		return Opaque{}, ErrMalformed
	}
	secret, err := b64.Strict().DecodeString(s[len(head)+idsLen:])
	if err != nil || len(secret) != secretLen {
		return Opaque{}, ErrMalformed
	}
	o := Opaque{Kind: kind, Secret: secret}
	copy(o.Tenant[:], ids[:16])
	copy(o.ID[:], ids[16:])
	if o.Tenant == uuid.Nil || o.ID == uuid.Nil {
		return Opaque{}, ErrMalformed
	}
	return o, nil
}

// Seal encrypts next's secret under a key derived from o's secret (HKDF-SHA256, AES-256-GCM).
// A refresh token's successor is stored sealed this way, so a client that presents the retired
// token again inside the grace window can be given the same successor, while the database alone
// never reveals a usable token.
func (o Opaque) Seal(next Opaque) ([]byte, error) {
	aead, err := o.aead(next.ID)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, next.Secret, nil), nil
}

// Open recovers the successor sealed by Seal.
func (o Opaque) Open(nextID uuid.UUID, sealed []byte) (Opaque, error) {
	aead, err := o.aead(nextID)
	if err != nil {
		return Opaque{}, err
	}
	if len(sealed) < aead.NonceSize() {
		return Opaque{}, errors.New("sealed successor too short")
	}
	secret, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return Opaque{}, fmt.Errorf("open successor: %w", err)
	}
	return Opaque{Kind: o.Kind, Tenant: o.Tenant, ID: nextID, Secret: secret}, nil
}

func (o Opaque) aead(nextID uuid.UUID) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, o.Secret, nextID[:], "tasker refresh successor v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
