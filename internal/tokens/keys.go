// Package tokens issues and verifies Tasker's credentials: EdDSA-signed JWT access tokens with a
// published key set, and opaque secrets (refresh tokens, API keys) that carry their tenant and
// id in a public prefix while only a hash of the secret is stored.
package tokens

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// Key is one Ed25519 signing key and its JWK thumbprint id.
type Key struct {
	ID      string
	private ed25519.PrivateKey
	public  ed25519.PublicKey
}

// KeySet signs with its first key and verifies with any of them, so keys can be rotated: put the
// new key first, keep the old one until every token it signed has expired, then drop it.
type KeySet struct {
	keys []Key
	byID map[string]ed25519.PublicKey
}

// NewKeySet builds a set from private keys; the first one signs.
func NewKeySet(private ...ed25519.PrivateKey) (*KeySet, error) {
	if len(private) == 0 {
		return nil, errors.New("tokens: no signing key")
	}
	ks := &KeySet{byID: map[string]ed25519.PublicKey{}}
	for _, p := range private {
		pub := p.Public().(ed25519.PublicKey)
		k := Key{ID: thumbprint(pub), private: p, public: pub}
		if _, dup := ks.byID[k.ID]; dup {
			return nil, fmt.Errorf("tokens: key %s given twice", k.ID)
		}
		ks.keys = append(ks.keys, k)
		ks.byID[k.ID] = pub
	}
	return ks, nil
}

// ParsePEM reads one or more PKCS #8 "PRIVATE KEY" blocks holding Ed25519 keys, as written by
// `openssl genpkey -algorithm ed25519`.
func ParsePEM(data []byte) (*KeySet, error) {
	var keys []ed25519.PrivateKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("tokens: PEM block %q, want PRIVATE KEY (PKCS #8)", block.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tokens: parse key: %w", err)
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("tokens: key is %T, want Ed25519", k)
		}
		keys = append(keys, ed)
	}
	return NewKeySet(keys...)
}

// GenerateKey makes a fresh Ed25519 key, for development and tests.
func GenerateKey() ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return priv
}

// EncodePEM writes a key as a PKCS #8 PEM block.
func EncodePEM(k ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func (ks *KeySet) signer() Key { return ks.keys[0] }

// JWK is one public key in JSON Web Key form (RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS lists every public key of the set, the signing key first.
func (ks *KeySet) JWKS() []JWK {
	out := make([]JWK, len(ks.keys))
	for i, k := range ks.keys {
		out[i] = JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.public), Kid: k.ID, Alg: "EdDSA", Use: "sig"}
	}
	return out
}

// thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required members in lexical order.
func thumbprint(pub ed25519.PublicKey) string {
	canonical, _ := json.Marshal(struct {
		Crv string `json:"crv"`
		Kty string `json:"kty"`
		X   string `json:"x"`
	}{"Ed25519", "OKP", base64.RawURLEncoding.EncodeToString(pub)})
	sum := sha256.Sum256(canonical)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// DeriveSecret returns a 32-byte key for purpose, derived with HKDF-SHA256 from the signing key,
// so every instance sharing the signing keys shares it without another secret to configure.
// Rotating the signing key changes it.
func (ks *KeySet) DeriveSecret(purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, ks.signer().private.Seed(), nil, "tasker "+purpose, 32)
}
