package sso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Failure is why a sign-in ended without signing anyone in: a documented code that the
// frontend receives as ?error= on its redirect URI (README, "SSO").
type Failure string

const (
	AccessDenied        Failure = "access_denied"        // the person declined, or the provider refused them
	ProviderError       Failure = "provider_error"       // the provider answered the sign-in with another error
	StateInvalid        Failure = "state_invalid"        // unknown, expired, replayed, or another browser's state
	Unavailable         Failure = "sso_unavailable"      // the tenant has no SSO (or it changed during the sign-in)
	ProviderUnavailable Failure = "provider_unavailable" // the provider could not be reached
	CodeInvalid         Failure = "code_invalid"         // the provider refused the authorization code (expired, used, PKCE)
	TokenInvalid        Failure = "token_invalid"        // the ID token failed verification (signature, iss, aud, exp)
	NonceInvalid        Failure = "nonce_invalid"        // the ID token is not for this sign-in
	EmailUnverified     Failure = "email_unverified"     // no email, or not verified by the provider
	EmailInvalid        Failure = "email_invalid"        // an email this server cannot match safely (not plain ASCII)
	DomainNotAllowed    Failure = "domain_not_allowed"   // the email's domain is not one the tenant allows
	UserDeactivated     Failure = "user_deactivated"     // the account exists and is deactivated
	OwnerNeedsOwner     Failure = "owner_not_allowed"    // linking an owner, while no active owner saved the configuration last
	SeatLimit           Failure = "seat_limit"           // provisioning would pass the plan's seats
	ServerError         Failure = "server_error"         // anything else; the server log has the cause
)

// Error is a failed sign-in: the code the frontend sees, and the cause kept for the log.
type Error struct {
	Code  Failure
	Cause error
}

func (e *Error) Error() string {
	if e.Cause == nil {
		return "sso: " + string(e.Code)
	}
	return "sso: " + string(e.Code) + ": " + e.Cause.Error()
}

func (e *Error) Unwrap() error { return e.Cause }

// Fail is a sign-in failure with code; cause may be nil.
func Fail(code Failure, cause error) error { return &Error{Code: code, Cause: cause} }

// CodeOf is err's failure code; an error that is not a sign-in failure is a ServerError.
func CodeOf(err error) Failure {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ServerError
}

// Client is a tenant's registration at its provider.
type Client struct {
	ID, Secret string
	// CallbackURL is this server's callback, as registered at the provider.
	CallbackURL string
}

// Scopes asks for the ID token and the claims provisioning needs.
var Scopes = []string{oidc.ScopeOpenID, "email", "profile"}

func (c Client) oauth(p *oidc.Provider) *oauth2.Config {
	ep := p.Endpoint()
	// RFC 6749 makes client_secret_basic the one every provider takes, but some only take the
	// form: a provider that lists only client_secret_post gets it; any other is tried with the
	// header first, then the form (x/oauth2's detection, remembered per client).
	var meta struct {
		Methods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if p.Claims(&meta) == nil && slices.Contains(meta.Methods, "client_secret_post") && !slices.Contains(meta.Methods, "client_secret_basic") {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, Endpoint: ep, RedirectURL: c.CallbackURL, Scopes: Scopes}
}

// AuthURL is the provider's sign-in page for this flow: the authorization-code flow with
// PKCE (S256 challenge of verifier), state and nonce.
func AuthURL(p *oidc.Provider, c Client, state, nonce, verifier string) string {
	return c.oauth(p).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
}

// Identity is what a verified ID token says about the person signing in.
type Identity struct {
	Issuer, Subject string
	// Email is lower-cased; EmailVerified is the provider's email_verified claim.
	Email         string
	EmailVerified bool
	Name          string
}

// SignIn redeems the authorization code (with the PKCE verifier) at the provider's token
// endpoint and verifies the ID token it returns: signature by the provider's published keys,
// iss, aud (and azp when there are several audiences), exp, and the flow's nonce, which go-oidc
// leaves to its caller. The error is an *Error whose code says what failed.
func (ps *Providers) SignIn(ctx context.Context, p *oidc.Provider, c Client, code, verifier, nonce string) (Identity, error) {
	ctx = oidc.ClientContext(ctx, ps.policy.Client())
	tok, err := c.oauth(p).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	var refused *oauth2.RetrieveError
	switch {
	case errors.As(err, &refused):
		return Identity{}, Fail(CodeInvalid, err)
	case err != nil:
		return Identity{}, Fail(ProviderUnavailable, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, Fail(TokenInvalid, errors.New("the token response has no id_token"))
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: c.ID}).Verify(ctx, raw)
	if err != nil {
		return Identity{}, Fail(TokenInvalid, err)
	}
	var claims struct {
		Email         string          `json:"email"`
		EmailVerified json.RawMessage `json:"email_verified"`
		Name          string          `json:"name"`
		Username      string          `json:"preferred_username"`
		AZP           string          `json:"azp"`
		// Entra ID sends no email_verified; its optional claim xms_edov says the email's
		// domain is one the directory proved it owns, which is what email_verified vouches for.
		EntraDomainVerified json.RawMessage `json:"xms_edov"`
	}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, Fail(TokenInvalid, err)
	}
	if len(idt.Audience) > 1 && claims.AZP != c.ID {
		return Identity{}, Fail(TokenInvalid, fmt.Errorf("azp %q is not the client", claims.AZP))
	}
	if idt.Nonce != nonce {
		return Identity{}, Fail(NonceInvalid, errors.New("the ID token's nonce is not this sign-in's"))
	}
	if idt.Subject == "" || len(idt.Subject) > 255 {
		return Identity{}, Fail(TokenInvalid, errors.New("the subject is empty or longer than 255 bytes"))
	}
	id := Identity{Issuer: idt.Issuer, Subject: idt.Subject, Email: asciiLower(strings.TrimSpace(claims.Email)),
		EmailVerified: verified(claims.EmailVerified)}
	if claims.EmailVerified == nil { // absent; a JSON null is present, and false
		id.EmailVerified = verified(claims.EntraDomainVerified)
	}
	local, _, _ := strings.Cut(id.Email, "@")
	id.Name = displayName(claims.Name, claims.Username, local)
	return id, nil
}

// asciiLower lower-cases A to Z only: Unicode folding would turn lookalikes (the Kelvin sign)
// into ASCII letters before CheckEmail could refuse them.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// verified reads email_verified, which some providers send as the string "true".
func verified(raw json.RawMessage) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// displayName is the first usable name: the name claim, the username, the email's local part.
func displayName(candidates ...string) string {
	for _, c := range candidates {
		c = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, strings.TrimSpace(c))
		if c == "" || !utf8.ValidString(c) {
			continue
		}
		if r := []rune(c); len(r) > 200 {
			c = string(r[:200])
		}
		return c
	}
	return "SSO user"
}

// CheckEmail lets in a verified email of one of the allowed domains (exact domain match: a
// subdomain must be listed itself). The email must be printable ASCII: Unicode case folding
// would let a lookalike (the Kelvin sign K) match, and link to, another person's account.
func CheckEmail(id Identity, allowed []string) error {
	for _, r := range id.Email {
		if r <= 0x20 || r >= 0x7f {
			return Fail(EmailInvalid, fmt.Errorf("email %q is not printable ASCII", id.Email))
		}
	}
	at := strings.LastIndexByte(id.Email, '@')
	if !id.EmailVerified || at < 1 || at == len(id.Email)-1 || len(id.Email) > 254 || strings.Count(id.Email, "@") != 1 {
		return Fail(EmailUnverified, fmt.Errorf("email %q, verified %t", id.Email, id.EmailVerified))
	}
	if !slices.Contains(allowed, id.Email[at+1:]) {
		return Fail(DomainNotAllowed, fmt.Errorf("domain %q", id.Email[at+1:]))
	}
	return nil
}

// ParseRedirectURIs reads a comma-separated list of frontend URIs a sign-in may end on: each an
// absolute http(s) URL without credentials or fragment. They are later compared exactly.
func ParseRedirectURIs(list string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
			return nil, fmt.Errorf("%q is not an absolute http(s) URL without credentials or fragment", raw)
		}
		if !slices.Contains(out, raw) {
			out = append(out, raw)
		}
	}
	return out, nil
}
