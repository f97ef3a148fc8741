package handlers

import (
	"context"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
)

const resourceProject = "project"

// ListProjects lists projects, oldest first, optionally of one team or status.
func (s *Server) ListProjects(ctx context.Context, req api.ListProjectsRequestObject) (api.ListProjectsResponseObject, error) {
	afterT, afterID, err := timeCursorAt("projects", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	params := db.ListProjectsParams{TeamID: req.Params.TeamId, AfterCreatedAt: afterT, AfterID: afterID, Lim: fetchLimit(req.Params.Limit)}
	if req.Params.Status != nil {
		params.Status = ptr(string(*req.Params.Status))
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(principal(ctx)), func(q *db.Queries) ([]db.Project, error) {
		return q.ListProjects(ctx, params)
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(p db.Project) string { return timeNext("projects")(p.CreatedAt, p.ID) })
	out := api.ListProjects200JSONResponse{Items: make([]api.Project, len(rows)), NextCursor: nullableString(next)}
	for i, p := range rows {
		out.Items[i] = projectToAPI(p)
	}
	return out, nil
}

// GetProject reads one project.
func (s *Server) GetProject(ctx context.Context, req api.GetProjectRequestObject) (api.GetProjectResponseObject, error) {
	p, err := tenancy.ReadV(ctx, s.db, scope(principal(ctx)), func(q *db.Queries) (db.Project, error) {
		return q.GetProject(ctx, req.Id)
	})
	if err != nil {
		return nil, notFound(err, resourceProject)
	}
	return api.GetProject200JSONResponse(projectToAPI(p)), nil
}

// CreateProject creates a project owned by a team of the tenant.
func (s *Server) CreateProject(ctx context.Context, req api.CreateProjectRequestObject) (api.CreateProjectResponseObject, error) {
	b := req.Body
	out, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (api.Project, error) {
		if _, err := tx.Q.GetTeam(ctx, b.TeamId); err != nil {
			return api.Project{}, notFound(err, resourceTeam)
		}
		if err := s.billing.Catalog.ReserveProject(ctx, tx.Q, p.Tenant, s.billing.now()); err != nil {
			return api.Project{}, err
		}
		row, err := tx.Q.CreateProject(ctx, db.CreateProjectParams{
			TenantID: p.Tenant, ID: newID(), TeamID: b.TeamId, Name: b.Name, Key: b.Key, Description: deref(b.Description),
		})
		if err != nil {
			return api.Project{}, err
		}
		out := projectToAPI(row)
		tx.Changed("project.created", tenancy.Entry{Action: "project.create", ResourceType: resourceProject, ResourceID: row.ID,
			Data: map[string]any{"key": row.Key, "team_id": row.TeamID.String()}}, row.ID, out)
		return out, nil
	})
	if err != nil {
		return nil, keyTaken(err, "project", b.Key)
	}
	return api.CreateProject201JSONResponse(out), nil
}

// UpdateProject changes the fields present in the body. The key never changes: task keys
// (ENG-42) are built from it and may be quoted anywhere.
func (s *Server) UpdateProject(ctx context.Context, req api.UpdateProjectRequestObject) (api.UpdateProjectResponseObject, error) {
	b := req.Body
	params := db.UpdateProjectParams{ID: req.Id}
	changes := map[string]any{}
	if b.TeamId != nil {
		params.SetTeam, params.TeamID, changes["team_id"] = true, *b.TeamId, b.TeamId.String()
	}
	if b.Name != nil {
		params.SetName, params.Name, changes["name"] = true, *b.Name, *b.Name
	}
	if b.Description != nil {
		params.SetDescription, params.Description, changes["description"] = true, *b.Description, true
	}
	if b.Status != nil {
		params.SetStatus, params.Status, changes["status"] = true, string(*b.Status), string(*b.Status)
	}
	out, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, _ auth.Principal) (api.Project, error) {
		if b.TeamId != nil {
			if _, err := tx.Q.GetTeam(ctx, *b.TeamId); err != nil {
				return api.Project{}, notFound(err, resourceTeam)
			}
		}
		row, err := tx.Q.UpdateProject(ctx, params)
		if err != nil {
			return api.Project{}, notFound(err, resourceProject)
		}
		out := projectToAPI(row)
		tx.Changed("project.updated", tenancy.Entry{Action: "project.update", ResourceType: resourceProject, ResourceID: row.ID, Data: changes}, row.ID, out)
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateProject200JSONResponse(out), nil
}

// DeleteProject deletes a project; one with tasks only with force, taking its tasks along in
// the same transaction.
func (s *Server) DeleteProject(ctx context.Context, req api.DeleteProjectRequestObject) (api.DeleteProjectResponseObject, error) {
	p := principal(ctx)
	force := req.Params.Force != nil && *req.Params.Force
	var blobs []string
	err := s.write(ctx, p, func(tx *tenancy.Tx, _ auth.Principal) error {
		proj, err := tx.Q.LockProject(ctx, req.Id)
		if err != nil {
			return notFound(err, resourceProject)
		}
		hasTasks, err := tx.Q.ProjectHasTasks(ctx, req.Id)
		if err != nil {
			return err
		}
		if hasTasks && !force {
			return problem.New(problem.Conflict, "The project has tasks; delete with force=true to remove them too.")
		}
		if blobs, err = tx.Q.DeleteProjectFiles(ctx, &req.Id); err != nil {
			return err
		}
		if _, err := tx.Q.DeleteProject(ctx, req.Id); err != nil {
			return err
		}
		tx.Changed("project.deleted", tenancy.Entry{Action: "project.delete", ResourceType: resourceProject, ResourceID: req.Id,
			Data: map[string]any{"force": force, "had_tasks": hasTasks}}, req.Id, projectToAPI(proj))
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.removeBlobs(ctx, blobs)
	return api.DeleteProject204Response{}, nil
}
