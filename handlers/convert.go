package handlers

import (
	"fmt"
	"github.com/google/uuid"
	"github.com/oapi-codegen/nullable"
	openapi_types "github.com/oapi-codegen/runtime/types"
	"github.com/tasker/tasker/internal/session"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
)

func tenantToAPI(t db.Tenant) api.Tenant {
	return api.Tenant{Id: t.ID, Slug: t.Slug, Name: t.Name, Plan: api.TenantPlan(t.Plan), CreatedAt: t.CreatedAt}
}

func userToAPI(u db.User) api.User {
	return api.User{
		Id: u.ID, Email: openapi_types.Email(u.Email), Name: u.Name,
		Role: api.UserRole(u.Role), Status: api.UserStatus(u.Status),
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
}

func pairToAPI(p session.Pair) api.TokenPair {
	return api.TokenPair{AccessToken: p.Access, RefreshToken: p.Refresh, TokenType: api.Bearer, ExpiresIn: p.ExpiresIn}
}

func sessionToAPI(s db.Session, current uuid.UUID) api.Session {
	out := api.Session{Id: s.ID, CreatedAt: s.CreatedAt, LastUsedAt: s.LastUsedAt, ExpiresAt: s.ExpiresAt, Current: s.ID == current}
	if s.UserAgent != "" {
		out.UserAgent = &s.UserAgent
	}
	if s.Ip != "" {
		out.Ip = &s.Ip
	}
	return out
}

func apiKeyToAPI(k db.ApiKey) api.APIKey {
	return api.APIKey{
		Id: k.ID, Name: k.Name, Role: api.UserRole(k.Role), Prefix: k.Prefix, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt,
	}
}

func teamToAPI(t db.Team) api.Team {
	return api.Team{Id: t.ID, Name: t.Name, Key: t.Key, Description: t.Description, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

func projectToAPI(p db.Project) api.Project {
	return api.Project{
		Id: p.ID, TeamId: p.TeamID, Name: p.Name, Key: p.Key, Description: p.Description,
		Status: api.ProjectStatus(p.Status), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

func taskToAPI(t db.Task, projectKey string) api.Task {
	out := api.Task{
		Id: t.ID, ProjectId: t.ProjectID, Number: t.Number, Key: taskKey(projectKey, t.Number),
		Title: t.Title, Description: t.Description, Status: api.TaskStatus(t.Status), Priority: api.Priority(t.Priority),
		Labels: t.Labels, Position: t.Position, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		Version:    int(t.Version),
		AssigneeId: nullableOf(t.AssigneeID), ParentId: nullableOf(t.ParentID),
		DueDate: nullable.NewNullNullable[openapi_types.Date](),
	}
	if t.DueDate != nil {
		out.DueDate = nullable.NewNullableWithValue(openapi_types.Date{Time: *t.DueDate})
	}
	return out
}

func nullableOf[T any](v *T) nullable.Nullable[T] {
	if v == nil {
		return nullable.NewNullNullable[T]()
	}
	return nullable.NewNullableWithValue(*v)
}

// etag is a task's version as an HTTP entity tag.
func etag(version int32) string { return fmt.Sprintf(`"%d"`, version) }
