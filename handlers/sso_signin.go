package handlers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/audit"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/ratelimit"
	"github.com/tasker/tasker/internal/reqinfo"
	"github.com/tasker/tasker/internal/session"
	"github.com/tasker/tasker/internal/sso"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

const (
	// ssoCookieName binds a sign-in to the browser that started it, so that a callback URL sent to
	// someone else (login CSRF) signs nobody in.
	ssoCookieName   = "tasker_sso"
	ssoCookiePath   = "/v1/auth/sso/"
	ssoCallbackPath = "/v1/auth/sso/callback"
	// ssoMaxBindings is how many sign-ins in progress (tabs) one browser's cookie holds.
	ssoMaxBindings = 4
	// ssoPruneAfter keeps expired states and codes this long, so a late replay is still told
	// apart from a forgery in the audit log.
	ssoPruneAfter = time.Hour
)

// Audit actions of SSO sign-ins (a successful one is audit.LoginSucceeded with method sso).
const (
	actionSSOFailed       = "auth.sso_failed"
	actionSSOLinked       = "sso.identity_link"
	actionSSOCodeReplayed = "auth.sso_code_replayed"
)

// StartSSO sends the browser to the tenant's provider, or back to the frontend with an error.
func (s *Server) StartSSO(ctx context.Context, req api.StartSSORequestObject) (api.StartSSOResponseObject, error) {
	back, err := s.ssoFrontend(req.Params.RedirectUri)
	if err != nil {
		return nil, err
	}
	ip, _ := reqinfo.Client(ctx)
	// Per tenant and client network: behind a proxy every client shares one address, and one
	// tenant's flood must not stop the others' sign-ins.
	if ok, wait := s.ssoStarts.Allow(req.TenantSlug + "\x00" + ratelimit.Network(ip)); !ok {
		return nil, problem.TooMany("SSO sign-ins from this address", wait)
	}
	fail := func(tenant uuid.UUID, err error) (api.StartSSOResponseObject, error) {
		loc := s.ssoFailed(ctx, tenant, back, req.Params.State, err)
		return api.StartSSO302Response{Headers: api.StartSSO302ResponseHeaders{Location: loc, CacheControl: ptr("no-store")}}, nil
	}
	if s.sso.Box == nil {
		return fail(uuid.Nil, sso.Fail(sso.Unavailable, errors.New("SSO is not configured on this server")))
	}
	var tenant uuid.UUID
	err = s.db.Global(ctx, func(q *db.Queries) error {
		tenant, err = q.LookupTenantBySlug(ctx, req.TenantSlug)
		return err
	})
	if err != nil {
		return fail(uuid.Nil, ssoUnavailable(err))
	}
	cfg, err := tenancy.ReadV(ctx, s.db, tenancy.Scope{Tenant: tenant}, func(q *db.Queries) (db.SsoConfig, error) {
		return q.GetSSOConfig(ctx)
	})
	if err != nil {
		// A tenant without SSO looks like no tenant: its sign-ins are no attempt to audit.
		return fail(uuid.Nil, ssoUnavailable(err))
	}
	provider, err := s.ssoProviders.Get(ctx, cfg.Issuer)
	if err != nil {
		return fail(tenant, sso.Fail(sso.ProviderUnavailable, err))
	}

	state := tokens.NewOpaque(tokens.SSOState, tenant, newID())
	binding, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	callback := s.publicURL(rawRequest(ctx)) + ssoCallbackPath
	now := time.Now()
	err = s.db.Write(ctx, tenancy.Scope{Tenant: tenant}, func(tx *tenancy.Tx) error {
		if err := tx.Q.PruneSSOFlows(ctx, now.Add(-ssoPruneAfter)); err != nil {
			return err
		}
		return tx.Q.CreateSSOState(ctx, db.CreateSSOStateParams{
			TenantID: tenant, ID: state.ID, SecretHash: state.Hash(), BrowserHash: sha(binding), Nonce: nonce,
			CodeVerifier: verifier, Issuer: cfg.Issuer, ClientID: cfg.ClientID, CallbackUrl: callback,
			RedirectUri: back, AppState: req.Params.State, ExpiresAt: now.Add(s.sso.StateTTL),
		})
	})
	if err != nil {
		return fail(tenant, err)
	}
	bindings := append(ssoBindings(deref(req.Params.TaskerSso)), binding)
	if len(bindings) > ssoMaxBindings {
		bindings = bindings[len(bindings)-ssoMaxBindings:]
	}
	loc := sso.AuthURL(provider, sso.Client{ID: cfg.ClientID, CallbackURL: callback}, state.String(), nonce, verifier)
	return api.StartSSO302Response{Headers: api.StartSSO302ResponseHeaders{
		Location: loc, SetCookie: ptr(s.ssoCookie(bindings, callback)), CacheControl: ptr("no-store"),
	}}, nil
}

// CompleteSSO takes the provider's answer: it spends the state, redeems the code, verifies the
// ID token, admits the person and hands the frontend a one-time code for its token pair.
func (s *Server) CompleteSSO(ctx context.Context, req api.CompleteSSORequestObject) (api.CompleteSSOResponseObject, error) {
	p := req.Params
	// The cookie changes only when this browser's binding matched the state: a forged or
	// foreign callback must not end the browser's other sign-ins.
	var setCookie *string
	answer := func(loc string) (api.CompleteSSOResponseObject, error) {
		return api.CompleteSSO302Response{Headers: api.CompleteSSO302ResponseHeaders{
			Location: loc, SetCookie: setCookie, CacheControl: ptr("no-store"),
		}}, nil
	}
	st, err := tokens.ParseOpaque(tokens.SSOState, deref(p.State))
	if err != nil {
		// Nothing says where this browser came from: the first frontend gets the error.
		if len(s.sso.RedirectURIs) == 0 {
			return nil, problem.New(problem.Invalid, "The SSO state is invalid.")
		}
		return answer(s.ssoFailed(ctx, uuid.Nil, s.sso.RedirectURIs[0], nil, sso.Fail(sso.StateInvalid, err)))
	}
	bindings := ssoBindings(deref(p.TaskerSso))
	row, matched, err := s.takeSSOState(ctx, st, bindings)
	if matched >= 0 {
		setCookie = ptr(s.ssoCookie(slices.Delete(bindings, matched, matched+1), row.CallbackUrl))
	}
	if row.RedirectUri == "" {
		if len(s.sso.RedirectURIs) == 0 {
			return nil, problem.New(problem.Invalid, "The SSO state is invalid.")
		}
		// An unknown state names a tenant nobody proved: nothing is audited there.
		return answer(s.ssoFailed(ctx, uuid.Nil, s.sso.RedirectURIs[0], nil, err))
	}
	if err == nil {
		var code string
		code, err = s.finishSSO(ctx, row, p)
		if err == nil {
			return answer(withQuery(row.RedirectUri, "code", code, row.AppState))
		}
	}
	return answer(s.ssoFailed(ctx, st.Tenant, row.RedirectUri, row.AppState, err))
}

// takeSSOState spends the state in its own transaction, before anything else is tried, so that
// a replay fails whatever happens next. A state that was found comes back (its RedirectUri
// set) even when it is refused, so the refusal can go to its frontend; matched is the index of
// the browser's binding that belongs to it, or -1.
func (s *Server) takeSSOState(ctx context.Context, st tokens.Opaque, bindings []string) (row db.SsoState, matched int, err error) {
	matched = -1
	err = s.db.Write(ctx, tenancy.Scope{Tenant: st.Tenant}, func(tx *tenancy.Tx) error {
		var err error
		row, err = tx.Q.GetSSOStateForUpdate(ctx, st.ID)
		if err != nil {
			return err
		}
		if !st.Matches(row.SecretHash) {
			row = db.SsoState{}
			return sso.Fail(sso.StateInvalid, errors.New("the state's secret does not match"))
		}
		if row.UsedAt != nil {
			return sso.Fail(sso.StateInvalid, errors.New("the state was used already (a replayed callback)"))
		}
		matched = slices.IndexFunc(bindings, func(b string) bool { return subtle.ConstantTimeCompare(sha(b), row.BrowserHash) == 1 })
		if matched < 0 {
			// Left unspent: whoever holds the URL without the browser cannot end the sign-in.
			return sso.Fail(sso.StateInvalid, errors.New("the callback came to another browser than the one that started the sign-in"))
		}
		return tx.Q.UseSSOState(ctx, st.ID)
	})
	switch {
	case err != nil && row.RedirectUri == "":
		return db.SsoState{}, -1, sso.Fail(sso.StateInvalid, err)
	case err != nil:
		return row, -1, err
	case time.Now().After(row.ExpiresAt):
		return row, matched, sso.Fail(sso.StateInvalid, errors.New("the state expired"))
	}
	return row, matched, nil
}

// ssoBindings reads the cookie's bindings, skipping whatever is not one.
func ssoBindings(cookie string) []string {
	var out []string
	for _, b := range strings.Split(cookie, ".") {
		if raw, err := base64.RawURLEncoding.Strict().DecodeString(b); err == nil && len(raw) == 32 {
			out = append(out, b)
		}
	}
	return out
}

// ssoCookie is the Set-Cookie of the browser's remaining bindings (none removes the cookie).
// It is sent only to /v1/auth/sso/, and Secure when the callback is https.
func (s *Server) ssoCookie(bindings []string, callback string) string {
	c := &http.Cookie{Name: ssoCookieName, Value: strings.Join(bindings, "."), Path: ssoCookiePath, MaxAge: int(s.sso.StateTTL.Seconds()),
		HttpOnly: true, Secure: strings.HasPrefix(callback, "https:"), SameSite: http.SameSiteLaxMode}
	if len(bindings) == 0 {
		c.MaxAge = -1
	}
	return c.String()
}

// finishSSO runs the rest of a callback whose state was good, and returns the one-time code.
func (s *Server) finishSSO(ctx context.Context, st db.SsoState, p api.CompleteSSOParams) (string, error) {
	if e := deref(p.Error); e != "" {
		if e == "access_denied" {
			return "", sso.Fail(sso.AccessDenied, fmt.Errorf("provider: %s %q", e, deref(p.ErrorDescription)))
		}
		return "", sso.Fail(sso.ProviderError, fmt.Errorf("provider: %q %q", e, deref(p.ErrorDescription)))
	}
	if deref(p.Code) == "" {
		return "", sso.Fail(sso.ProviderError, errors.New("the provider sent neither a code nor an error"))
	}
	if s.sso.Box == nil {
		return "", sso.Fail(sso.Unavailable, errors.New("SSO is not configured on this server"))
	}
	cfg, err := tenancy.ReadV(ctx, s.db, tenancy.Scope{Tenant: st.TenantID}, func(q *db.Queries) (db.SsoConfig, error) {
		return q.GetSSOConfig(ctx)
	})
	if err != nil {
		return "", ssoUnavailable(err)
	}
	if cfg.Issuer != st.Issuer || cfg.ClientID != st.ClientID {
		return "", sso.Fail(sso.Unavailable, errors.New("the tenant's provider changed during the sign-in"))
	}
	secret, err := s.sso.Box.Open(cfg.ClientSecretSealed, st.TenantID[:])
	if err != nil {
		return "", fmt.Errorf("open the client secret: %w", err)
	}
	provider, err := s.ssoProviders.Get(ctx, cfg.Issuer)
	if err != nil {
		return "", sso.Fail(sso.ProviderUnavailable, err)
	}
	client := sso.Client{ID: cfg.ClientID, Secret: string(secret), CallbackURL: st.CallbackUrl}
	id, err := s.ssoProviders.SignIn(ctx, provider, client, *p.Code, st.CodeVerifier, st.Nonce)
	if err != nil {
		return "", err
	}
	// Two first sign-ins of one person race on the identity's key: the loser runs again and
	// finds what the winner made.
	for attempt := 0; ; attempt++ {
		code, err := s.admitSSO(ctx, cfg, st, id)
		if attempt == 0 && tenancy.IsDuplicate(err) {
			continue
		}
		return code, err
	}
}

// admitSSO finds the person by (issuer, subject), else links the user with their email, else
// provisions one with the tenant's default role; then it writes the one-time code.
//
// An owner is signed in only by an identity linked or used while an active owner's
// configuration was in force (owner_safe), or under such a configuration now: an admin may name
// any provider, one they run included, and must not become an owner through it.
func (s *Server) admitSSO(ctx context.Context, cfg db.SsoConfig, st db.SsoState, id sso.Identity) (string, error) {
	tenant := cfg.TenantID
	return tenancy.WriteV(ctx, s.db, tenancy.Scope{Tenant: tenant}, func(tx *tenancy.Tx) (string, error) {
		// The configuration as it is now, held until COMMIT: a save racing this sign-in waits
		// for it, or this sign-in sees the new one and is refused.
		current, err := tx.Q.LockSSOConfigForSignIn(ctx)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", sso.Fail(sso.Unavailable, errors.New("SSO was turned off during the sign-in"))
		}
		if err != nil {
			return "", err
		}
		if current.Issuer != st.Issuer || current.ClientID != st.ClientID || id.Issuer != st.Issuer {
			return "", sso.Fail(sso.Unavailable, errors.New("the tenant's provider changed during the sign-in"))
		}
		// The domains and the default role are the ones in force now too, not those read before
		// the provider answered.
		if err := sso.CheckEmail(id, current.AllowedDomains); err != nil {
			return "", err
		}
		// An identity is vouched for under the client it came through: trust given to one
		// client of an issuer is none for another client of it an admin may run.
		var vouch *string
		if current.SavedByOwner {
			vouch = &current.ClientID
		}
		var (
			user      db.User
			ownerSafe = current.SavedByOwner
		)
		found, err := tx.Q.GetSSOIdentityUser(ctx, db.GetSSOIdentityUserParams{Issuer: id.Issuer, Subject: id.Subject})
		switch {
		case err == nil:
			user = found.User
			ownerSafe = ownerSafe || (found.VouchedClient != nil && *found.VouchedClient == current.ClientID)
			if err := tx.Q.TouchSSOIdentity(ctx, db.TouchSSOIdentityParams{
				Email: id.Email, VouchedClient: vouch, Issuer: id.Issuer, Subject: id.Subject,
			}); err != nil {
				return "", err
			}
		case errors.Is(err, pgx.ErrNoRows):
			user, err = s.linkOrProvision(ctx, tx, tenant, current, id)
			if err != nil {
				return "", err
			}
		default:
			return "", err
		}
		if user.Status == string(api.UserStatusDeactivated) {
			return "", sso.Fail(sso.UserDeactivated, fmt.Errorf("user %s is deactivated", user.ID))
		}
		if user.Role == string(auth.Owner) && !ownerSafe {
			return "", sso.Fail(sso.OwnerNeedsOwner, fmt.Errorf("owner %s by an identity no owner's configuration vouched for", user.ID))
		}
		if user.Status == string(api.UserStatusInvited) {
			// The provider vouches for the invited email: the invitation is answered.
			if _, err := tx.Q.ActivateInvitedUser(ctx, db.ActivateInvitedUserParams{ID: user.ID}); err != nil {
				return "", err
			}
			user.Status = string(api.UserStatusActive)
			tx.ActAs(user.ID)
			tx.Changed("user.updated", tenancy.Entry{Action: "user.accept_invite", ResourceType: audit.ResourceUser, ResourceID: user.ID,
				Data: map[string]any{"method": "sso"}}, uuid.Nil, userToAPI(user))
		}
		code := tokens.NewOpaque(tokens.SSOCode, tenant, newID())
		if err := tx.Q.CreateSSOCode(ctx, db.CreateSSOCodeParams{
			TenantID: tenant, ID: code.ID, SecretHash: code.Hash(), UserID: user.ID, ExpiresAt: time.Now().Add(s.sso.CodeTTL),
		}); err != nil {
			return "", err
		}
		return code.String(), nil
	})
}

// linkOrProvision admits a person the tenant does not know by this identity yet, under the
// configuration in force (cfg, held by admitSSO). The email is verified and of an allowed domain
// (sso.CheckEmail), which is what makes linking safe.
func (s *Server) linkOrProvision(ctx context.Context, tx *tenancy.Tx, tenant uuid.UUID, cfg db.LockSSOConfigForSignInRow, id sso.Identity) (db.User, error) {
	ownerSafe := cfg.SavedByOwner
	identity := db.CreateSSOIdentityParams{TenantID: tenant, Issuer: id.Issuer, Subject: id.Subject, Email: id.Email}
	if ownerSafe {
		identity.VouchedClient = &cfg.ClientID
	}
	user, err := tx.Q.GetUserByEmailForUpdate(ctx, id.Email)
	switch {
	case err == nil:
		if user.Status == string(api.UserStatusDeactivated) {
			return user, nil // refused by the caller; nothing is linked to a deactivated user
		}
		if user.Role == string(auth.Owner) && !ownerSafe {
			return db.User{}, sso.Fail(sso.OwnerNeedsOwner, fmt.Errorf("linking owner %s under a configuration no active owner saved", user.ID))
		}
		identity.UserID = user.ID
		if err := tx.Q.CreateSSOIdentity(ctx, identity); err != nil {
			return db.User{}, err
		}
		tx.ActAs(user.ID)
		tx.Record(tenancy.Entry{Action: actionSSOLinked, ResourceType: audit.ResourceUser, ResourceID: user.ID,
			Data: map[string]any{"issuer": id.Issuer, "subject": id.Subject}})
		return user, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return db.User{}, err
	}
	if err := s.billing.Catalog.ReserveSeat(ctx, tx.Q, tenant, s.billing.now()); err != nil {
		if problem.Is(err, problem.LimitExceeded) {
			return db.User{}, sso.Fail(sso.SeatLimit, err)
		}
		return db.User{}, err
	}
	user, err = tx.Q.CreateUser(ctx, db.CreateUserParams{
		TenantID: tenant, ID: newID(), Email: id.Email, Name: id.Name, Role: cfg.DefaultRole, Status: string(api.UserStatusActive),
	})
	if err != nil {
		return db.User{}, err
	}
	identity.UserID = user.ID
	if err := tx.Q.CreateSSOIdentity(ctx, identity); err != nil {
		return db.User{}, err
	}
	tx.ActAs(user.ID)
	tx.Changed("user.created", tenancy.Entry{Action: "user.create", ResourceType: audit.ResourceUser, ResourceID: user.ID,
		Data: map[string]any{"role": user.Role, "method": "sso", "issuer": id.Issuer, "subject": id.Subject}}, uuid.Nil, userToAPI(user))
	return user, nil
}

// ExchangeSSOCode turns the one-time code of a finished sign-in into a session and its tokens.
func (s *Server) ExchangeSSOCode(ctx context.Context, req api.ExchangeSSOCodeRequestObject) (api.ExchangeSSOCodeResponseObject, error) {
	bad := auth.Unauthenticated("invalid_grant", "The code is invalid, used or expired.")
	code, err := tokens.ParseOpaque(tokens.SSOCode, req.Body.Code)
	if err != nil {
		return nil, bad
	}
	replayed := false
	pair, err := tenancy.WriteV(ctx, s.db, tenancy.Scope{Tenant: code.Tenant}, func(tx *tenancy.Tx) (session.Pair, error) {
		replayed = false // a retried run starts over
		row, err := tx.Q.GetSSOCodeForUpdate(ctx, code.ID)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !code.Matches(row.SecretHash)) {
			return session.Pair{}, bad
		}
		if err != nil {
			return session.Pair{}, err
		}
		if row.UsedAt != nil && time.Now().After(row.ExpiresAt) {
			// Long after, a replay is someone who read an old URL: it ends nobody's session.
			return session.Pair{}, bad
		}
		if row.UsedAt != nil {
			// A second use within the code's life means it leaked: end what the first use
			// opened (RFC 6749, 4.1.2).
			replayed = true
			tx.ActAs(uuid.Nil)
			tx.Record(tenancy.Entry{Action: actionSSOCodeReplayed, ResourceType: audit.ResourceUser, ResourceID: row.UserID})
			if row.SessionID != nil {
				n, err := tx.Q.RevokeUserSession(ctx, db.RevokeUserSessionParams{ID: *row.SessionID, UserID: row.UserID, Reason: ptr("reuse")})
				if err != nil {
					return session.Pair{}, err
				}
				if n > 0 {
					tx.Changed(audit.EventSessionRevoked, tenancy.Entry{Action: audit.SessionRevoked, ResourceType: audit.ResourceSession, ResourceID: *row.SessionID},
						uuid.Nil, audit.RevokedSession(*row.SessionID, row.UserID, "reuse"))
				}
			}
			return session.Pair{}, nil
		}
		if time.Now().After(row.ExpiresAt) {
			return session.Pair{}, bad
		}
		user, err := tx.Q.GetUserForShare(ctx, row.UserID)
		if err != nil {
			return session.Pair{}, err
		}
		if user.Status != string(api.UserStatusActive) {
			return session.Pair{}, bad
		}
		pair, err := s.sessions.Start(ctx, tx.Q, code.Tenant, user.ID, auth.Role(user.Role), session.MethodSSO)
		if err != nil {
			return session.Pair{}, err
		}
		if err := tx.Q.UseSSOCode(ctx, db.UseSSOCodeParams{ID: code.ID, SessionID: &pair.Session}); err != nil {
			return session.Pair{}, err
		}
		tx.ActAs(user.ID)
		tx.Record(tenancy.Entry{Action: audit.LoginSucceeded, ResourceType: audit.ResourceSession, ResourceID: pair.Session,
			Data: map[string]any{"method": "sso"}})
		return pair, nil
	})
	if err != nil {
		return nil, err
	}
	if replayed {
		return nil, bad
	}
	return api.ExchangeSSOCode200JSONResponse(pairToAPI(pair)), nil
}

// ssoFrontend checks redirect_uri against the allowed frontends: exactly one of them, so the
// server never sends a code, or even an error, anywhere else.
func (s *Server) ssoFrontend(uri string) (string, error) {
	if !slices.Contains(s.sso.RedirectURIs, uri) {
		return "", problem.Fields("The redirect URI is not one of this server's frontends (SSO_REDIRECT_URIS).",
			problem.FieldError{Field: "redirect_uri", In: "query", Message: "not an allowed redirect URI"})
	}
	return uri, nil
}

// ssoFailed logs and (when the tenant is known) audits a failed sign-in, and returns where the
// browser goes: the frontend, with the error's code.
func (s *Server) ssoFailed(ctx context.Context, tenant uuid.UUID, back string, appState *string, err error) string {
	code := sso.CodeOf(err)
	level := slog.LevelInfo
	if code == sso.ServerError {
		level = slog.LevelError
	}
	s.logger.Log(ctx, level, "sso sign-in failed", "request_id", reqinfo.RequestID(ctx), "tenant", tenant, "error", code, "cause", err)
	if tenant != uuid.Nil {
		aerr := s.db.Write(context.WithoutCancel(ctx), tenancy.Scope{Tenant: tenant}, func(tx *tenancy.Tx) error {
			tx.ActAs(uuid.Nil)
			tx.Record(tenancy.Entry{Action: actionSSOFailed, ResourceType: audit.ResourceTenant, ResourceID: tenant,
				Data: map[string]any{"error": string(code)}})
			return nil
		})
		if aerr != nil {
			s.logger.Error("sso: audit a failed sign-in", "request_id", reqinfo.RequestID(ctx), "err", aerr)
		}
	}
	return withQuery(back, "error", string(code), appState)
}

// withQuery is the frontend URI with key=value and the frontend's own state.
func withQuery(uri, key, value string, appState *string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri // allowed URIs are checked when the server starts
	}
	q := u.Query()
	q.Set(key, value)
	if appState != nil && *appState != "" {
		q.Set("state", *appState)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func ssoUnavailable(err error) error {
	if problem.Is(err, problem.NotFound) || errors.Is(err, pgx.ErrNoRows) {
		return sso.Fail(sso.Unavailable, err)
	}
	return err
}

// randomToken is 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sha(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}
