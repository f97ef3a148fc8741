package auth

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// Revocations is what this server instance has learnt, from the event stream, about access
// tokens it would otherwise accept on their signature alone: sessions that ended and users whose
// role or status changed. Access tokens are checked against it on every request, in memory, so a
// revocation takes effect within the relay's delay instead of the token's lifetime.
//
// An entry is needed only while tokens issued before it can still be valid, so entries older
// than the token lifetime (plus a margin for clock skew) are dropped.
type Revocations struct {
	mu       sync.RWMutex
	sessions map[uuid.UUID]time.Time // session -> when it was revoked
	users    map[uuid.UUID]standing
	keep     time.Duration
	now      func() time.Time
	lastGC   time.Time
}

const changeMargin = 5 * time.Second

type standing struct {
	seq    int64
	role   Role
	active bool
	at     time.Time
}

// NewRevocations keeps entries for tokenTTL plus a minute.
func NewRevocations(tokenTTL time.Duration) *Revocations {
	return &Revocations{
		sessions: map[uuid.UUID]time.Time{}, users: map[uuid.UUID]standing{},
		keep: tokenTTL + time.Minute, now: time.Now,
	}
}

// SessionRevoked records that session ended at at: none of its access tokens is valid any more.
func (r *Revocations) SessionRevoked(session uuid.UUID, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.sessions[session]; !ok || at.After(prev) {
		r.sessions[session] = at
	}
	r.gc()
}

// UserChanged records user's role and status as of event seq of the user's tenant, whose
// transaction began at at. The latest event wins, by id (commit order), whatever order they
// arrive in: their start times do not follow commit order. Tokens issued up to changeMargin
// after at carry at most this role, and none is valid while the user is not active; a later
// token was issued with the new standing already. The margin covers iat's second precision and
// a refresh that read the old standing while the change was committing; a token it catches that
// was issued with the new standing loses nothing. The sessions a deactivation ends are revoked
// one by one (SessionRevoked), so they stay ended after a reactivation.
func (r *Revocations) UserChanged(user uuid.UUID, seq int64, role Role, active bool, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.users[user]; ok && prev.seq >= seq {
		return
	}
	r.users[user] = standing{seq: seq, role: role, active: active, at: at}
	r.gc()
}

// Check returns the role an access token of session for user, issued at issued with role
// claimed, may act with now; ok is false when the token must be refused.
func (r *Revocations) Check(user, session uuid.UUID, claimed Role, issued time.Time) (role Role, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, revoked := r.sessions[session]; revoked {
		return "", false
	}
	s, changed := r.users[user]
	if !changed || issued.After(s.at.Add(changeMargin)) {
		return claimed, true
	}
	if !s.active {
		return "", false
	}
	return Lower(claimed, s.role), true
}

// gc drops entries older than keep, at most once a minute; r.mu is held.
func (r *Revocations) gc() {
	now := r.now()
	if now.Sub(r.lastGC) < time.Minute {
		return
	}
	r.lastGC = now
	cutoff := now.Add(-r.keep)
	for id, at := range r.sessions {
		if at.Before(cutoff) {
			delete(r.sessions, id)
		}
	}
	for id, s := range r.users {
		if s.at.Before(cutoff) {
			delete(r.users, id)
		}
	}
}
