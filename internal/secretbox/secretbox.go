// Package secretbox seals the secrets Tasker must keep but never show (an SSO client secret):
// AES-256-GCM from the standard library, with a fresh random nonce per seal and the owner (a
// tenant id) as additional data, so a sealed value copied to another tenant's row does not open.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// version prefixes every sealed value, so the format can change later.
const version byte = 1

// ErrOpen is any sealed value that does not open: tampered, another key's, another owner's.
var ErrOpen = errors.New("secretbox: the sealed value does not open with this key and owner")

// Box seals and opens with one key.
type Box struct{ aead cipher.AEAD }

// New returns a Box for key, which must be KeySize bytes.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts secret for owner: version, nonce, ciphertext and tag.
func (b *Box) Seal(secret, owner []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("secretbox: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, secret, owner)
}

// Open decrypts what Seal made for owner, or returns ErrOpen.
func (b *Box) Open(sealed, owner []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	out, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], owner)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
