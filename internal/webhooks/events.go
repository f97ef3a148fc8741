package webhooks

import (
	"fmt"
	"slices"
	"strings"
)

// EventTypes are the outbox's events a tenant's endpoints can receive (openapi/asyncapi.yaml
// documents each payload). Auth events (session.revoked, api_key.revoked) are not among them.
var EventTypes = []string{
	"task.created", "task.updated", "task.deleted",
	"project.created", "project.updated", "project.deleted",
	"team.created", "team.updated", "team.deleted", "team.member_put", "team.member_removed",
	"user.created", "user.updated",
	"file.created", "file.deleted",
	"billing.checkout.completed", "billing.subscription.updated", "billing.trial_will_end",
	"billing.invoice.paid", "billing.invoice.payment_failed",
}

// CheckEventTypes checks an endpoint's subscriptions and returns them de-duplicated: each an
// event type, a resource's wildcard (task.*), or * for every event.
func CheckEventTypes(patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		if !known(p) {
			return nil, fmt.Errorf("%q is not an event type (nor resource.* or *)", p)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func known(p string) bool {
	if p == "*" || slices.Contains(EventTypes, p) {
		return true
	}
	res, ok := strings.CutSuffix(p, ".*")
	return ok && slices.ContainsFunc(EventTypes, func(t string) bool { return strings.HasPrefix(t, res+".") })
}

// Matches reports whether an endpoint subscribed to patterns receives eventType.
func Matches(patterns []string, eventType string) bool {
	for _, p := range patterns {
		if p == "*" || p == eventType {
			return true
		}
		if res, ok := strings.CutSuffix(p, ".*"); ok && strings.HasPrefix(eventType, res+".") {
			return true
		}
	}
	return false
}
