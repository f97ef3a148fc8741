package password

import (
	"errors"
	"strings"
	"testing"
)

var fast = Params{Memory: 1024, Time: 1, Threads: 1}

func TestHashVerifiesOnlyTheSamePassword(t *testing.T) {
	t.Parallel()
	h, err := Hash("correct horse battery", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q is not PHC argon2id with the given parameters", h)
	}
	if err := Verify("correct horse battery", h); err != nil {
		t.Fatalf("right password rejected: %v", err)
	}
	if err := Verify("correct horse batterz", h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: got %v, want ErrMismatch", err)
	}
}

func TestHashSaltsEachHash(t *testing.T) {
	t.Parallel()
	a, _ := Hash("same", fast)
	b, _ := Hash("same", fast)
	if a == b {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"", "plain", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=18$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=x$AAAA$AAAA", "$argon2id$v=19$m=1024,t=1,p=1$!!$AAAA"} {
		if err := Verify("pw", h); err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(%q) = %v, want a malformed-hash error", h, err)
		}
	}
}
