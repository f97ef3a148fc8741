package auth

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRevocationsDenyWhatTheStreamEnded(t *testing.T) {
	t.Parallel()
	r := NewRevocations(15 * time.Minute)
	user, session, other := uuid.New(), uuid.New(), uuid.New()
	t0 := time.Now().Add(-10 * time.Minute)
	before, after := t0.Add(-time.Minute), t0.Add(time.Minute)

	if role, ok := r.Check(user, session, Admin, before); !ok || role != Admin {
		t.Fatalf("nothing known: got %s %v, want the token's role", role, ok)
	}
	r.SessionRevoked(session, t0)
	if _, ok := r.Check(user, session, Admin, after); ok {
		t.Error("a revoked session's token is still accepted")
	}
	if _, ok := r.Check(user, other, Admin, before); !ok {
		t.Error("another session of the user is refused")
	}

	r.UserChanged(user, 10, Member, true, t0)
	if role, ok := r.Check(user, other, Admin, before); !ok || role != Member {
		t.Errorf("demoted: a token from before acts as %s (%v), want member", role, ok)
	}
	if role, _ := r.Check(user, other, Admin, after); role != Admin {
		t.Errorf("a token issued after the change acts as %s, want its own admin", role)
	}
	if role, _ := r.Check(user, other, Viewer, before); role != Viewer {
		t.Errorf("a lower token role became %s: changes never raise a token", role)
	}

	t1 := t0.Add(2 * time.Minute)
	r.UserChanged(user, 11, Member, false, t1)
	if _, ok := r.Check(user, other, Member, t1.Add(-time.Second)); ok {
		t.Error("a deactivated user's token is accepted")
	}
	// A change that began later but committed earlier (a smaller id) arrives after: it must
	// not undo the deactivation (time order is not commit order).
	r.UserChanged(user, 9, Admin, true, t1.Add(time.Second))
	if _, ok := r.Check(user, other, Member, t1.Add(-time.Second)); ok {
		t.Error("an older event undid the deactivation")
	}
	r.UserChanged(user, 12, Admin, true, t1.Add(time.Minute))
	if _, ok := r.Check(user, other, Member, t1.Add(2*time.Minute)); !ok {
		t.Error("a token issued after the reactivation is refused")
	}
}
