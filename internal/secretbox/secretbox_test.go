package secretbox

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealedSecretsOpenOnlyWithTheirKeyAndOwner(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	secret, owner := []byte("client secret"), []byte("tenant-a")
	sealed := b.Seal(secret, owner)
	if bytes.Contains(sealed, secret) {
		t.Fatal("the sealed value holds the secret in the clear")
	}
	if again := b.Seal(secret, owner); bytes.Equal(again, sealed) {
		t.Error("two seals of one secret are equal: the nonce is not fresh")
	}
	got, err := b.Open(sealed, owner)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another owner": func() ([]byte, error) { return b.Open(sealed, []byte("tenant-b")) },
		"another key":   func() ([]byte, error) { return other.Open(sealed, owner) },
		"tampered":      func() ([]byte, error) { return b.Open(tampered, owner) },
		"truncated":     func() ([]byte, error) { return b.Open(sealed[:10], owner) },
		"empty":         func() ([]byte, error) { return b.Open(nil, owner) },
	} {
		if got, err := open(); !errors.Is(err, ErrOpen) || got != nil {
			t.Errorf("%s: %q %v, want ErrOpen", name, got, err)
		}
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("a short key was accepted")
	}
}
