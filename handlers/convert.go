package handlers

import (
	"github.com/google/uuid"
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
