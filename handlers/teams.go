package handlers

import (
	"context"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tenancy"
)

const resourceTeam = "team"

// ListTeams lists the tenant's teams, oldest first.
func (s *Server) ListTeams(ctx context.Context, req api.ListTeamsRequestObject) (api.ListTeamsResponseObject, error) {
	p := principal(ctx)
	afterT, afterID, err := timeCursorAt("teams", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(p), func(q *db.Queries) ([]db.Team, error) {
		return q.ListTeams(ctx, db.ListTeamsParams{AfterCreatedAt: afterT, AfterID: afterID, Lim: fetchLimit(req.Params.Limit)})
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(t db.Team) string { return timeNext("teams")(t.CreatedAt, t.ID) })
	out := api.ListTeams200JSONResponse{Items: make([]api.Team, len(rows)), NextCursor: nullableString(next)}
	for i, t := range rows {
		out.Items[i] = teamToAPI(t)
	}
	return out, nil
}

// GetTeam reads one team.
func (s *Server) GetTeam(ctx context.Context, req api.GetTeamRequestObject) (api.GetTeamResponseObject, error) {
	t, err := tenancy.ReadV(ctx, s.db, scope(principal(ctx)), func(q *db.Queries) (db.Team, error) {
		return q.GetTeam(ctx, req.Id)
	})
	if err != nil {
		return nil, notFound(err, resourceTeam)
	}
	return api.GetTeam200JSONResponse(teamToAPI(t)), nil
}

// CreateTeam creates a team; its key is unique in the tenant.
func (s *Server) CreateTeam(ctx context.Context, req api.CreateTeamRequestObject) (api.CreateTeamResponseObject, error) {
	out, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (api.Team, error) {
		t, err := tx.Q.CreateTeam(ctx, db.CreateTeamParams{
			TenantID: p.Tenant, ID: newID(), Name: req.Body.Name, Key: req.Body.Key, Description: deref(req.Body.Description),
		})
		if err != nil {
			return api.Team{}, err
		}
		out := teamToAPI(t)
		tx.Changed("team.created", tenancy.Entry{Action: "team.create", ResourceType: resourceTeam, ResourceID: t.ID, Data: map[string]any{"key": t.Key, "name": t.Name}}, uuid.Nil, out)
		return out, nil
	})
	if err != nil {
		return nil, keyTaken(err, "team", req.Body.Key)
	}
	return api.CreateTeam201JSONResponse(out), nil
}

// UpdateTeam changes the fields present in the body.
func (s *Server) UpdateTeam(ctx context.Context, req api.UpdateTeamRequestObject) (api.UpdateTeamResponseObject, error) {
	b := req.Body
	params := db.UpdateTeamParams{ID: req.Id}
	changes := map[string]any{}
	if b.Name != nil {
		params.SetName, params.Name, changes["name"] = true, *b.Name, *b.Name
	}
	if b.Key != nil {
		params.SetKey, params.Key, changes["key"] = true, *b.Key, *b.Key
	}
	if b.Description != nil {
		params.SetDescription, params.Description, changes["description"] = true, *b.Description, true
	}
	out, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, _ auth.Principal) (api.Team, error) {
		t, err := tx.Q.UpdateTeam(ctx, params)
		if err != nil {
			return api.Team{}, notFound(err, resourceTeam)
		}
		out := teamToAPI(t)
		tx.Changed("team.updated", tenancy.Entry{Action: "team.update", ResourceType: resourceTeam, ResourceID: t.ID, Data: changes}, uuid.Nil, out)
		return out, nil
	})
	if err != nil {
		return nil, keyTaken(err, "team", deref(b.Key))
	}
	return api.UpdateTeam200JSONResponse(out), nil
}

// DeleteTeam deletes a team that owns no projects.
func (s *Server) DeleteTeam(ctx context.Context, req api.DeleteTeamRequestObject) (api.DeleteTeamResponseObject, error) {
	err := s.write(ctx, principal(ctx), func(tx *tenancy.Tx, _ auth.Principal) error {
		t, err := tx.Q.LockTeam(ctx, req.Id)
		if err != nil {
			return notFound(err, resourceTeam)
		}
		busy, err := tx.Q.TeamHasProjects(ctx, req.Id)
		if err != nil {
			return err
		}
		if busy {
			return problem.New(problem.Conflict, "The team still owns projects; move or delete them first.")
		}
		if _, err := tx.Q.DeleteTeam(ctx, req.Id); err != nil {
			return err
		}
		tx.Changed("team.deleted", tenancy.Entry{Action: "team.delete", ResourceType: resourceTeam, ResourceID: req.Id}, uuid.Nil, teamToAPI(t))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteTeam204Response{}, nil
}

// ListTeamMembers lists a team's members in the order they joined.
func (s *Server) ListTeamMembers(ctx context.Context, req api.ListTeamMembersRequestObject) (api.ListTeamMembersResponseObject, error) {
	afterT, afterID, err := timeCursorAt("team-members", req.Params.Cursor)
	if err != nil {
		return nil, err
	}
	rows, err := tenancy.SearchV(ctx, s.db, scope(principal(ctx)), func(q *db.Queries) ([]db.ListTeamMembersRow, error) {
		if _, err := q.GetTeam(ctx, req.Id); err != nil {
			return nil, notFound(err, resourceTeam)
		}
		return q.ListTeamMembers(ctx, db.ListTeamMembersParams{
			TeamID: req.Id, AfterCreatedAt: afterT, AfterID: afterID, Lim: fetchLimit(req.Params.Limit),
		})
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(req.Params.Limit), func(r db.ListTeamMembersRow) string { return timeNext("team-members")(r.AddedAt, r.User.ID) })
	out := api.ListTeamMembers200JSONResponse{Items: make([]api.TeamMember, len(rows)), NextCursor: nullableString(next)}
	for i, r := range rows {
		out.Items[i] = api.TeamMember{TeamId: r.TeamID, User: userToAPI(r.User), Role: api.TeamRole(r.TeamRole), AddedAt: r.AddedAt}
	}
	return out, nil
}

// PutTeamMember adds a user to a team or changes their role in it.
func (s *Server) PutTeamMember(ctx context.Context, req api.PutTeamMemberRequestObject) (api.PutTeamMemberResponseObject, error) {
	out, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (api.TeamMember, error) {
		if _, err := tx.Q.GetTeam(ctx, req.Id); err != nil {
			return api.TeamMember{}, notFound(err, resourceTeam)
		}
		u, err := tx.Q.GetUser(ctx, req.UserId)
		if err != nil {
			return api.TeamMember{}, notFound(err, "user")
		}
		m, err := tx.Q.PutTeamMember(ctx, db.PutTeamMemberParams{TenantID: p.Tenant, TeamID: req.Id, UserID: u.ID, Role: string(req.Body.Role)})
		if err != nil {
			return api.TeamMember{}, err
		}
		out := api.TeamMember{TeamId: m.TeamID, User: userToAPI(u), Role: api.TeamRole(m.Role), AddedAt: m.CreatedAt}
		tx.Changed("team.member_put", tenancy.Entry{Action: "team.member_put", ResourceType: resourceTeam, ResourceID: req.Id,
			Data: map[string]any{"user_id": u.ID.String(), "role": m.Role}}, uuid.Nil, out)
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return api.PutTeamMember200JSONResponse(out), nil
}

// DeleteTeamMember removes a user from a team.
func (s *Server) DeleteTeamMember(ctx context.Context, req api.DeleteTeamMemberRequestObject) (api.DeleteTeamMemberResponseObject, error) {
	err := s.write(ctx, principal(ctx), func(tx *tenancy.Tx, _ auth.Principal) error {
		n, err := tx.Q.DeleteTeamMember(ctx, db.DeleteTeamMemberParams{TeamID: req.Id, UserID: req.UserId})
		if err != nil {
			return err
		}
		if n == 0 {
			return problem.New(problem.NotFound, "No such team member.")
		}
		tx.Changed("team.member_removed", tenancy.Entry{Action: "team.member_delete", ResourceType: resourceTeam, ResourceID: req.Id,
			Data: map[string]any{"user_id": req.UserId.String()}}, uuid.Nil, map[string]any{"team_id": req.Id, "user_id": req.UserId})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteTeamMember204Response{}, nil
}
