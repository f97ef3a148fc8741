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

	r.UserChanged(user, Member, true, t0)
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
	r.UserChanged(user, Member, false, t1)
	r.UserChanged(user, Admin, true, t1.Add(time.Minute))
	if _, ok := r.Check(user, other, Member, t1.Add(-time.Second)); ok {
		t.Error("a token from before a deactivation works again after the reactivation")
	}
	if _, ok := r.Check(user, other, Member, t1.Add(2*time.Minute)); !ok {
		t.Error("a token issued after the reactivation is refused")
	}

	// An older change arriving late (a catch-up) does not undo a newer one.
	r.UserChanged(user, Owner, true, t0.Add(-time.Hour))
	if role, _ := r.Check(user, other, Owner, t1.Add(30*time.Second)); role != Admin {
		t.Errorf("a late older change won: role %s, want admin", role)
	}
}
