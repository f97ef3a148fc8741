// Package authz is where Tasker decides who may do what, by role and team membership. The
// coarse rule of each operation (its minimum role) is declared in the OpenAPI document and
// checked by internal/auth; the rules that depend on the resource live here. Row-level security
// is the backstop under both: these rules choose among a tenant's rows, never across tenants.
package authz

import (
	"github.com/google/uuid"

	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
)

// GrantRole allows p to give a user or key the role r: never above p's own.
func GrantRole(p auth.Principal, r auth.Role) error {
	if !p.Role.AtLeast(r) {
		return problem.New(problem.Forbidden, "You cannot grant the %s role: it is above your own (%s).", r, p.Role)
	}
	return nil
}

// ManageUser allows p to change a user whose current role is target: admins manage everyone but
// owners; only owners change owners.
func ManageUser(p auth.Principal, target auth.Role) error {
	if !p.Role.AtLeast(auth.Admin) {
		return problem.New(problem.Forbidden, "Managing users needs the admin role.")
	}
	if target == auth.Owner && p.Role != auth.Owner {
		return problem.New(problem.Forbidden, "Only an owner can change an owner.")
	}
	return nil
}

// ChangeStanding allows p to change the role or status of the user target. Nobody changes their
// own: a demoted or deactivated admin must not undo it with a token issued before. API keys
// cannot: a key that could promote or reactivate users could outlive its own revocation.
func ChangeStanding(p auth.Principal, target uuid.UUID) error {
	if p.User == target {
		return problem.New(problem.Forbidden, "You cannot change your own role or status.")
	}
	if p.Method == auth.ByAPIKey {
		return problem.New(problem.Forbidden, "Roles and statuses are changed by a signed-in admin, not with an API key.")
	}
	return nil
}

// WriteTasks allows p to create, change or delete tasks in a project of a team p belongs to
// (isTeamMember) or not: admins write anywhere, members only in their teams, viewers nowhere.
func WriteTasks(p auth.Principal, isTeamMember bool) error {
	switch {
	case p.Role.AtLeast(auth.Admin):
		return nil
	case p.Role.AtLeast(auth.Member) && isTeamMember:
		return nil
	case p.Role.AtLeast(auth.Member):
		return problem.New(problem.Forbidden, "Members write tasks only in projects of their teams.")
	default:
		return problem.New(problem.Forbidden, "Viewers cannot change tasks.")
	}
}

// ManageTenant allows p to change what the tenant as a whole runs on (SSO, billing): admins
// and owners, by the role the database holds now.
func ManageTenant(p auth.Principal, what string) error {
	if !p.Role.AtLeast(auth.Admin) {
		return problem.New(problem.Forbidden, "Only admins manage %s.", what)
	}
	return nil
}
