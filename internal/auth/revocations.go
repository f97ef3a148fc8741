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
	role   Role
	active bool
	at     time.Time
	// deadBefore is set once the user was deactivated: deactivation ends every session, so
	// no token issued up to it is valid again, even after a reactivation (which revives no
	// session). See UserChanged.
	deadBefore time.Time
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

// UserChanged records user's role and status as of at (the changing transaction's start). Tokens
// issued up to changeMargin after at carry at most this role, and none is valid while the user
// is not active; a later token was issued with the new standing already. The margin covers iat's
// second precision and a refresh that read the old standing while the change was committing;
// a token it catches that was in fact issued with the new standing loses nothing.
//
// A deactivation is remembered past a reactivation: the sessions it ended stay ended, so tokens
// issued up to changeMargin after it stay refused, except those issued after the reactivation
// (iat is whole seconds, hence the second before it). Without this, a reactivation made every
// token of the sessions the deactivation had ended valid again until it expired.
func (r *Revocations) UserChanged(user uuid.UUID, role Role, active bool, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.users[user]
	if ok && prev.at.After(at) {
		return
	}
	next := standing{role: role, active: active, at: at, deadBefore: prev.deadBefore}
	switch {
	case !active:
		next.deadBefore = at.Add(changeMargin)
	case ok && !prev.active:
		// Reactivated: what is issued from now on is of new sessions.
		next.deadBefore = minTime(prev.deadBefore, at.Add(-time.Second))
	}
	r.users[user] = next
	r.gc()
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
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
	if changed && !issued.After(s.deadBefore) {
		return "", false
	}
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
