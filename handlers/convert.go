package handlers

import (
	openapi_types "github.com/oapi-codegen/runtime/types"

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
