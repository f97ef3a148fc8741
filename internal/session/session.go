// Package session signs users in and keeps them signed in: password login, sessions, and
// refresh-token rotation with reuse detection (OAuth 2.0 Security BCP, RFC 9700 section 4.14).
package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/audit"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/ratelimit"
	"github.com/tasker/tasker/internal/reqinfo"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

// Config sets session lifetimes and login protection.
type Config struct {
	// Grace is how long a just-rotated refresh token still yields its successor, for clients
	// that refresh concurrently.
	Grace time.Duration
	// MaxAge ends a session this long after login, however active.
	MaxAge time.Duration
	// IdleTimeout ends a session that has not refreshed for this long.
	IdleTimeout time.Duration
	// LoginPerIP is credential attempts a minute per client IP; LoginPerAccount is failed logins
	// a minute per account, and per account and client IP (bursts of the same size). See Login.
	LoginPerIP, LoginPerAccount int
}

// DefaultConfig is what the server uses unless configured otherwise.
var DefaultConfig = Config{
	Grace: 10 * time.Second, MaxAge: 30 * 24 * time.Hour, IdleTimeout: 7 * 24 * time.Hour,
	LoginPerIP: 30, LoginPerAccount: 10,
}

// Service runs logins and refreshes.
type Service struct {
	db        *tenancy.DB
	issuer    *tokens.Issuer
	cfg       Config
	dummyHash string
	perIP     *ratelimit.Limiter
	// accountFailures counts failed logins per account (tenant slug and email);
	// accountIPFailures counts them per account and client network.
	accountFailures, accountIPFailures *ratelimit.Limiter
	// known holds, for each account, the client networks that signed in to it lately (a spent
	// bucket refills after knownFor); strangers is each account's budget of password checks,
	// while it is under attack, for networks that have neither failed on it nor signed in to it.
	known, strangers *ratelimit.Limiter
	now              func() time.Time
}

// New returns a Service. hashing are the argon2id parameters passwords are hashed with, the
// same the caller hashes them with: a login for an unknown email verifies a dummy hash made with
// them, so that a miss costs what a wrong password costs and response times do not reveal
// which emails exist.
func New(d *tenancy.DB, issuer *tokens.Issuer, hashing password.Params, cfg Config) (*Service, error) {
	dummy, err := password.Hash("tasker timing equaliser", hashing)
	if err != nil {
		return nil, err
	}
	return &Service{
		db: d, issuer: issuer, cfg: cfg, dummyHash: dummy,
		perIP:             ratelimit.New(float64(cfg.LoginPerIP), cfg.LoginPerIP),
		accountFailures:   ratelimit.New(float64(cfg.LoginPerAccount), cfg.LoginPerAccount),
		accountIPFailures: ratelimit.New(float64(cfg.LoginPerAccount), cfg.LoginPerAccount),
		known:             ratelimit.New(1/knownFor.Minutes(), 1),
		strangers:         ratelimit.New(float64(cfg.LoginPerAccount), cfg.LoginPerAccount),
		now:               time.Now,
	}, nil
}

// Pair is a freshly issued access and refresh token.
type Pair struct {
	Access    string
	Refresh   string
	ExpiresIn int
	Session   uuid.UUID
}

// How a session began (sessions.method).
const (
	MethodPassword = "password"
	MethodSSO      = "sso"
)

// Start opens a session for a user inside the caller's tenant transaction and returns its
// first token pair. Sign-up, login, invitation acceptance and SSO use it; method says which
// kind of sign-in it was (MethodPassword or MethodSSO).
func (s *Service) Start(ctx context.Context, q *db.Queries, tenant, user uuid.UUID, role auth.Role, method string) (Pair, error) {
	ip, ua := reqinfo.Client(ctx)
	sess, err := q.CreateSession(ctx, db.CreateSessionParams{
		TenantID: tenant, ID: newID(), UserID: user, ExpiresAt: s.now().Add(s.cfg.MaxAge), UserAgent: ua, Ip: ip, Method: method,
	})
	if err != nil {
		return Pair{}, fmt.Errorf("create session: %w", err)
	}
	refresh := tokens.NewOpaque(tokens.RefreshToken, tenant, newID())
	if err := q.CreateRefreshToken(ctx, db.CreateRefreshTokenParams{
		TenantID: tenant, ID: refresh.ID, SessionID: sess.ID, SecretHash: refresh.Hash(),
	}); err != nil {
		return Pair{}, fmt.Errorf("create refresh token: %w", err)
	}
	return s.pair(tokens.Subject{User: user, Tenant: tenant, Session: sess.ID, Role: string(role)}, refresh)
}

func (s *Service) pair(sub tokens.Subject, refresh tokens.Opaque) (Pair, error) {
	access, err := s.issuer.Issue(sub)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Access: access, Refresh: refresh.String(), ExpiresIn: int(s.issuer.TTL().Seconds()), Session: sub.Session}, nil
}

// errBadLogin is the one answer to every failed login, whatever failed.
func errBadLogin() error {
	return auth.Unauthenticated("invalid_grant", "The tenant, email or password is wrong.")
}

// Login checks a password and starts a session. Unknown tenant, unknown email, inactive user
// and wrong password all cost one argon2id verification and give the same error.
//
// Guessing is limited by failures, never by successes, so an attacker cannot lock the owner out
// (see checkFailures); each failure counts against the account and against the account from
// this client IP. Every attempt also spends the IP's credential budget (Throttle).
func (s *Service) Login(ctx context.Context, slug, email, pw string) (Pair, error) {
	ip, _ := reqinfo.Client(ctx)
	email = NormalizeEmail(email)
	if err := s.Throttle(ctx); err != nil {
		return Pair{}, err
	}
	account := slug + "\x00" + email
	fromIP := account + "\x00" + ratelimit.Network(ip)
	if err := s.checkFailures(account, fromIP); err != nil {
		return Pair{}, err
	}
	failed := func() {
		s.accountFailures.Spend(account)
		s.accountIPFailures.Spend(fromIP)
	}

	var tenant uuid.UUID
	err := s.db.Global(ctx, func(q *db.Queries) error {
		var err error
		tenant, err = q.LookupTenantBySlug(ctx, slug)
		return err
	})
	if problem.Is(err, problem.NotFound) {
		_ = password.Verify(pw, s.dummyHash)
		failed()
		return Pair{}, errBadLogin()
	}
	if err != nil {
		return Pair{}, fmt.Errorf("login: %w", err)
	}

	user, err := tenancy.ReadV(ctx, s.db, tenancy.Scope{Tenant: tenant}, func(q *db.Queries) (db.User, error) {
		return q.GetUserByEmail(ctx, email)
	})
	if err != nil && !problem.Is(err, problem.NotFound) {
		return Pair{}, fmt.Errorf("login: %w", err)
	}
	found := err == nil && user.PasswordHash != nil
	hash := s.dummyHash
	if found {
		hash = *user.PasswordHash
	}
	// The slow part runs outside any transaction, holding no connection.
	verr := password.Verify(pw, hash)
	ok := found && verr == nil && user.Status == "active"
	if !ok {
		failed()
	}

	scope := tenancy.Scope{Tenant: tenant}
	if ok {
		scope.User = user.ID
	}
	refused, ssoOnly := !ok, false
	pair, err := tenancy.WriteV(ctx, s.db, scope, func(tx *tenancy.Tx) (Pair, error) {
		refused, ssoOnly = !ok, false // a retried run starts over
		if ok {
			// The password was checked against a read taken before the hash; a deactivation or
			// role change may have committed since. Hold the user as it is now.
			cur, err := tx.Q.GetUserForShare(ctx, user.ID)
			if err != nil {
				return Pair{}, err
			}
			user.Role = cur.Role
			refused = cur.Status != "active"
			if !refused && cur.Role != string(auth.Owner) {
				// SSO may have taken password sign-in away from all but owners (who keep it, so
				// that a broken provider locks nobody out).
				allowed, err := PasswordRule(ctx, tx.Q, tenant)
				if err != nil {
					return Pair{}, err
				}
				ssoOnly = !allowed
			}
		}
		if refused || ssoOnly {
			// Nobody acted: whoever tried is unknown. The account tried, if it exists, is the
			// resource (uuid.Nil, recorded as none, for an unknown email).
			data := map[string]any{"email": email}
			if ssoOnly {
				data["reason"] = "sso_required"
			}
			tx.ActAs(uuid.Nil)
			tx.Record(tenancy.Entry{Action: audit.LoginFailed, ResourceType: audit.ResourceUser, ResourceID: user.ID, Data: data})
			return Pair{}, nil
		}
		pair, err := s.Start(ctx, tx.Q, tenant, user.ID, auth.Role(user.Role), MethodPassword)
		if err != nil {
			return Pair{}, err
		}
		tx.Record(tenancy.Entry{Action: audit.LoginSucceeded, ResourceType: audit.ResourceSession, ResourceID: pair.Session})
		return pair, nil
	})
	if err != nil {
		return Pair{}, fmt.Errorf("login: %w", err)
	}
	if refused {
		return Pair{}, errBadLogin()
	}
	if ssoOnly {
		// The same answer as a wrong password: a distinct one would confirm the password to
		// whoever guessed it. The audit entry says why (sso_required).
		return Pair{}, errBadLogin()
	}
	if s.known.Until(fromIP, 1) == 0 {
		s.known.Spend(fromIP) // once per knownFor: the bucket's debt never grows past one
	}
	return pair, nil
}

// PasswordRule says whether people other than owners may use a password in the tenant of the
// caller's write transaction (SSO may reserve passwords to owners), holding the rule until the
// transaction ends: a change of it waits, and then sees whatever the caller started.
func PasswordRule(ctx context.Context, q *db.Queries, tenant uuid.UUID) (bool, error) {
	if err := q.SharePasswordRule(ctx, tenant); err != nil {
		return false, err
	}
	return q.SSOPasswordLogin(ctx)
}

// NormalizeEmail is the form in which an email is stored and looked up: trimmed and lower-cased,
// so that sign-up, user creation and login agree on it.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// Throttle spends one of the client IP's credential attempts (shared by login, sign-up and
// invitation acceptance, each of which costs an argon2id hash) and answers 429 when none is left.
func (s *Service) Throttle(ctx context.Context) error {
	ip, _ := reqinfo.Client(ctx)
	return s.limit(s.perIP, "ip\x00"+ratelimit.Network(ip))
}

// knownFor is how long a client network that signed in to an account keeps its way past the
// account's limit.
const knownFor = 30 * 24 * time.Hour

// checkFailures refuses a login, before any password is checked, when this client network has
// used up its failures on the account. While the account as a whole has used up its failures
// (it is under attack), a network that signed in to it lately always reaches the password check;
// one that failed on it lately is refused; any other draws on the account's budget for strangers,
// so an attack spread over many addresses gets at most that budget of guesses a minute on top of
// the account's own. The owner on a network they signed in from is never locked out; on a new one
// during a sustained attack they may wait for the strangers' budget.
func (s *Service) checkFailures(account, fromIP string) error {
	if wait := s.accountIPFailures.Until(fromIP, 1); wait > 0 {
		return tooManyAttempts(wait)
	}
	wait := s.accountFailures.Until(account, 1)
	if wait == 0 || s.known.Until(fromIP, 1) > 0 {
		return nil
	}
	if failing := s.accountIPFailures.Until(fromIP, s.accountIPFailures.Burst()); failing > 0 {
		return tooManyAttempts(min(wait, failing))
	}
	if ok, next := s.strangers.Allow(account); !ok {
		return tooManyAttempts(min(wait, next))
	}
	return nil
}

func (s *Service) limit(l *ratelimit.Limiter, key string) error {
	allowed, wait := l.Allow(key)
	if allowed {
		return nil
	}
	return tooManyAttempts(wait)
}

// tooManyAttempts is the 429 problem telling the client to retry after wait.
func tooManyAttempts(wait time.Duration) error { return problem.TooMany("login attempts", wait) }

func errBadRefresh() error {
	return auth.Unauthenticated("invalid_grant", "The refresh token is invalid, expired or revoked.")
}

// Refresh rotates a refresh token. The presented token is retired and its successor issued in
// one statement (two round trips in all: BEGIN rides with it, then COMMIT). A retired token presented again within the grace window yields the same
// successor (concurrent refreshes by one client); later, it revokes the whole session, since
// either the client or an attacker holds a stolen copy.
func (s *Service) Refresh(ctx context.Context, token string) (Pair, error) {
	presented, err := tokens.ParseOpaque(tokens.RefreshToken, token)
	if err != nil {
		return Pair{}, errBadRefresh()
	}
	var pair Pair
	reused := false
	next := tokens.NewOpaque(tokens.RefreshToken, presented.Tenant, newID())
	sealed, err := presented.Seal(next)
	if err != nil {
		return Pair{}, err
	}
	err = s.db.Write(ctx, tenancy.Scope{Tenant: presented.Tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		reused = false // a retried run starts over
		// The common case costs one statement.
		rotated, err := q.RotateActiveRefreshToken(ctx, db.RotateActiveRefreshTokenParams{
			ID: presented.ID, SecretHash: presented.Hash(), ActiveSince: s.ActiveSince(),
			SuccessorID: &next.ID, SuccessorHash: next.Hash(), SuccessorSealed: sealed,
		})
		if err == nil {
			pair, err = s.pair(tokens.Subject{User: rotated.UserID, Tenant: presented.Tenant, Session: rotated.SessionID, Role: rotated.Role}, next)
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}

		// Otherwise find out why, with the token locked so concurrent refreshes queue here.
		rt, err := q.GetRefreshTokenForUpdate(ctx, presented.ID)
		if err != nil {
			return err
		}
		if !presented.Matches(rt.SecretHash) {
			return errMismatch
		}
		now := s.now()
		if rt.RevokedAt != nil || !now.Before(rt.ExpiresAt) || now.Sub(rt.LastUsedAt) > s.cfg.IdleTimeout || rt.Status != "active" {
			return errMismatch
		}
		sub := tokens.Subject{User: rt.UserID, Tenant: presented.Tenant, Session: rt.SessionID, Role: rt.Role}

		if rt.UsedAt == nil {
			// Live and current, yet the fast path missed (its clock and ours disagree at the
			// idle boundary): rotate here.
			if err := q.RotateRefreshToken(ctx, db.RotateRefreshTokenParams{
				ID: presented.ID, SuccessorID: &next.ID, SuccessorHash: next.Hash(), SuccessorSealed: sealed,
			}); err != nil {
				return err
			}
			pair, err = s.pair(sub, next)
			return err
		}

		inGrace := now.Sub(*rt.UsedAt) <= s.cfg.Grace && rt.SuccessorID != nil && rt.SuccessorUsedAt == nil
		if inGrace {
			next, err := presented.Open(*rt.SuccessorID, rt.SuccessorSealed)
			if err != nil {
				return err
			}
			pair, err = s.pair(sub, next)
			return err
		}

		reused = true
		if _, err := q.RevokeSession(ctx, db.RevokeSessionParams{ID: rt.SessionID, Reason: ptr("reuse")}); err != nil {
			return err
		}
		tx.ActAs(rt.UserID)
		tx.Changed(audit.EventSessionRevoked, tenancy.Entry{Action: audit.RefreshReuse, ResourceType: audit.ResourceSession, ResourceID: rt.SessionID,
			Data: map[string]any{"refresh_token_id": presented.ID.String()}}, uuid.Nil, audit.RevokedSession(rt.SessionID, rt.UserID, "reuse"))
		return nil
	})
	switch {
	case errors.Is(err, errMismatch) || problem.Is(err, problem.NotFound):
		return Pair{}, errBadRefresh()
	case err != nil:
		return Pair{}, fmt.Errorf("refresh: %w", err)
	case reused:
		return Pair{}, auth.Unauthenticated("invalid_grant", "The refresh token was already used; the session has been revoked.")
	}
	return pair, nil
}

// Logout revokes the session of a refresh token. Tokens that are malformed, unknown or already
// revoked are ignored (RFC 7009 section 2.2), so logout never tells a caller anything.
func (s *Service) Logout(ctx context.Context, token string) error {
	presented, err := tokens.ParseOpaque(tokens.RefreshToken, token)
	if err != nil {
		return nil
	}
	err = s.db.Write(ctx, tenancy.Scope{Tenant: presented.Tenant}, func(tx *tenancy.Tx) error {
		q := tx.Q
		row, err := q.GetSessionOfRefreshToken(ctx, presented.ID)
		if err != nil {
			return err
		}
		if !presented.Matches(row.SecretHash) {
			return errMismatch
		}
		n, err := q.RevokeSession(ctx, db.RevokeSessionParams{ID: row.ID, Reason: ptr("logout")})
		if err != nil || n == 0 {
			return err
		}
		tx.ActAs(row.UserID)
		tx.Changed(audit.EventSessionRevoked, tenancy.Entry{Action: audit.Logout, ResourceType: audit.ResourceSession, ResourceID: row.ID},
			uuid.Nil, audit.RevokedSession(row.ID, row.UserID, "logout"))
		return nil
	})
	if errors.Is(err, errMismatch) || problem.Is(err, problem.NotFound) {
		return nil
	}
	return err
}

// ActiveSince is the oldest last use a live session can have.
func (s *Service) ActiveSince() time.Time { return s.now().Add(-s.cfg.IdleTimeout) }

var errMismatch = errors.New("refresh token rejected")

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func ptr[T any](v T) *T { return &v }
