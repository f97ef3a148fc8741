package files

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker/tasker/internal/problem"
)

func TestUploadsCapAndShareTheRoom(t *testing.T) {
	t.Parallel()
	u := NewUploads(2)
	tenant, other := uuid.New(), uuid.New()
	a, err := u.Begin(tenant)
	if err != nil {
		t.Fatal(err)
	}
	b, err := u.Begin(tenant)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Begin(tenant); !problem.Is(err, problem.RateLimited) || problem.As(err).Header.Get("Retry-After") == "" {
		t.Fatalf("a third upload: %v; want 429 with Retry-After", err)
	}
	if problem.As(func() error { _, err := u.Begin(tenant); return err }()).Kind.Status() != http.StatusTooManyRequests {
		t.Fatal("not a 429")
	}
	c, err := u.Begin(other)
	if err != nil {
		t.Fatalf("another tenant is held up: %v", err)
	}
	if got := a.add(10); got != 0 {
		t.Errorf("a's others: %d, want 0", got)
	}
	if got := b.add(5); got != 10 {
		t.Errorf("b's others: %d, want a's 10", got)
	}
	if got := c.add(7); got != 0 {
		t.Errorf("the other tenant sees %d of this one's", got)
	}
	a.Stored(10)
	a.End()
	if got := b.add(1); got != 10 {
		t.Errorf("b's others after a stored 10 and ended: %d, want 10 (stored since b began)", got)
	}
	late, err := u.Begin(tenant)
	if err != nil {
		t.Fatal(err)
	}
	if got := late.add(1); got != 6 {
		t.Errorf("a later upload's others: %d, want b's 6 (what was stored before it began is in its room)", got)
	}
	b.End()
	late.End()
	c.End()
	if len(u.tenants) != 0 {
		t.Errorf("%d tenants left after every upload ended", len(u.tenants))
	}
}
