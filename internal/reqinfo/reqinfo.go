// Package reqinfo carries what the outer middleware must know about a request after inner layers
// have handled it: its id, the API route it matched and the tenant it ran as. Inner layers fill it
// in place, so logs and metrics can name the route and tenant without re-parsing anything.
package reqinfo

import (
	"context"
	"sync"

	"github.com/google/uuid"
)

// Info is shared by pointer through the request's context.
type Info struct {
	RequestID string
	// ClientIP is the peer address of the connection. UserAgent is as the client sent it, made
	// storable: valid UTF-8 without NUL, at most 512 bytes, cut between characters.
	ClientIP  string
	UserAgent string

	mu     sync.Mutex
	route  string
	tenant uuid.UUID
}

type ctxKey struct{}

// With returns ctx carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the request's Info, or nil outside a request.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}

// RequestID is the id of the request in ctx, or "".
func RequestID(ctx context.Context) string {
	if info := From(ctx); info != nil {
		return info.RequestID
	}
	return ""
}

// SetRoute records the route template the request matched, such as "GET /v1/tasks/{id}".
func SetRoute(ctx context.Context, route string) {
	if info := From(ctx); info != nil {
		info.mu.Lock()
		info.route = route
		info.mu.Unlock()
	}
}

// SetTenant records the tenant the request acts for.
func SetTenant(ctx context.Context, tenant uuid.UUID) {
	if info := From(ctx); info != nil {
		info.mu.Lock()
		info.tenant = tenant
		info.mu.Unlock()
	}
}

// Route is the matched route template, or "" when none matched.
func (i *Info) Route() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.route
}

// Tenant is the tenant the request acted for, or uuid.Nil.
func (i *Info) Tenant() uuid.UUID {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.tenant
}

// Client returns the request's client IP and user agent, or empty strings outside a request.
func Client(ctx context.Context) (ip, userAgent string) {
	if info := From(ctx); info != nil {
		return info.ClientIP, info.UserAgent
	}
	return "", ""
}
