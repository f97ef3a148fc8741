// Package tasks holds the rules of task writes: who may write tasks in a project, which assignees
// and parents are allowed, and how If-Match preconditions compare with a task's version. The
// handlers glue these to the API; row-level security keeps every lookup inside the tenant.
package tasks

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/authz"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
)

// MayWrite applies the task-writing rule to p for a project of team: admins anywhere, members in
// their teams' projects, viewers nowhere.
func MayWrite(ctx context.Context, q *db.Queries, p auth.Principal, team uuid.UUID) error {
	member := false
	if !p.Role.AtLeast(auth.Admin) && p.Role.AtLeast(auth.Member) {
		var err error
		if member, err = q.IsTeamMember(ctx, db.IsTeamMemberParams{TeamID: team, UserID: p.User}); err != nil {
			return err
		}
	}
	return authz.WriteTasks(p, member)
}

// CheckAssignee makes sure an assignee, if any, is a user of the tenant.
func CheckAssignee(ctx context.Context, q *db.Queries, id *uuid.UUID) error {
	if id == nil {
		return nil
	}
	if _, err := q.GetUser(ctx, *id); err != nil {
		return tenancy.Missing(err, "user (assignee_id)")
	}
	return nil
}

// CheckParent makes sure parent is a task of the same project and, for an existing task child,
// not one of its descendants, however deep the tree. Callers changing an existing task's parent
// hold the project's lock, so two changes cannot each pass and together make a cycle.
func CheckParent(ctx context.Context, q *db.Queries, tenant, project uuid.UUID, child *uuid.UUID, parent uuid.UUID) error {
	field := func(msg string) error {
		return problem.Fields("The parent task is not allowed.", problem.FieldError{Field: "parent_id", In: "body", Message: msg})
	}
	if child != nil && *child == parent {
		return field("a task cannot be its own parent")
	}
	r, err := q.GetTask(ctx, db.GetTaskParams{TenantID: tenant, ID: parent})
	if err != nil {
		return tenancy.Missing(err, "parent task (parent_id)")
	}
	if r.Task.ProjectID != project {
		return field("must be a task of the same project")
	}
	if child != nil {
		cycle, err := q.TaskCreatesCycle(ctx, db.TaskCreatesCycleParams{TenantID: tenant, ParentID: parent, ID: *child})
		if err != nil {
			return err
		}
		if cycle {
			return field("would make the task its own ancestor")
		}
	}
	return nil
}

// Precondition is a parsed If-Match header: nil matches any current version.
type Precondition []int32

// IfMatch parses an If-Match header: absent or "*" is no precondition, otherwise a list of
// entity tags. If-Match uses the strong comparison (RFC 9110 section 13.1.1): a weak tag (W/"3")
// never matches, and neither does a tag that is none of ours, so both are answered 412, as is a
// header that names no version at all.
func IfMatch(h *string) (Precondition, error) {
	if h == nil || strings.TrimSpace(*h) == "*" {
		return nil, nil
	}
	var out Precondition
	for tag := range strings.SplitSeq(*h, ",") {
		tag = strings.TrimSpace(tag)
		if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' {
			continue // weak, or not an entity tag of ours: matches nothing
		}
		// Strong comparison is character for character: "08" is not "8".
		n, err := strconv.ParseInt(tag[1:len(tag)-1], 10, 32)
		if err != nil || n < 1 || strconv.FormatInt(n, 10) != tag[1:len(tag)-1] {
			continue
		}
		out = append(out, int32(n))
	}
	if len(out) == 0 {
		return nil, problem.New(problem.PreconditionFailed, "If-Match names no current version of this task (weak tags never match).")
	}
	return out, nil
}

// Expected is the version a write may apply to, or nil for any: a list of several tags
// matches the current version when any of them does.
func (pc Precondition) Expected(current int32) (*int32, error) {
	if pc == nil {
		return nil, nil
	}
	for _, v := range pc {
		if v == current {
			return &v, nil
		}
	}
	return nil, Stale(current)
}

// Stale is the 412 answer to a write whose If-Match names an old version.
func Stale(current int32) error {
	return problem.New(problem.PreconditionFailed, "The task has changed since that version; its current ETag is %s.", ETag(current))
}

// ETag is the strong entity tag of a task version.
func ETag(version int32) string { return fmt.Sprintf(`"%d"`, version) }

// Gone answers a write that found no row to change after its read found the task: the task was
// deleted meanwhile (404), or its version moved past the precondition (412 with the current
// ETag). It reads the task again to tell which.
func Gone(ctx context.Context, q *db.Queries, tenant, id uuid.UUID) error {
	r, err := q.GetTask(ctx, db.GetTaskParams{TenantID: tenant, ID: id})
	if err != nil {
		return tenancy.Missing(err, "task")
	}
	return Stale(r.Task.Version)
}
