package handlers

import (
	"context"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/cursor"
	"github.com/tasker/tasker/internal/tenancy"
)

// noDueDate stands in for "no due date" in the due-date sort order, after every date (see
// tasks_due_idx).
const noDueDate = "infinity"

// taskCursor is the position in a task list: the sort's key of the last row and its id.
type taskCursor struct {
	K  string    `json:"k"`
	F  float64   `json:"f,omitempty"` // position, or priority
	T  time.Time `json:"t,omitzero"`  // created_at or updated_at
	D  string    `json:"d,omitempty"` // due date, or noDueDate
	ID uuid.UUID `json:"id"`
}

// taskFilter holds the list filters in the shape every list query takes.
type taskFilter struct {
	statuses         []string
	filterAssignee   bool
	assignee, parent *uuid.UUID
	label, q         *string
	before, after    *time.Time
}

func (f taskFilter) none() bool {
	return f.statuses == nil && !f.filterAssignee && f.assignee == nil && f.parent == nil && f.label == nil &&
		f.q == nil && f.before == nil && f.after == nil
}

// ListTasks lists a project's tasks with filters, sorted and keyset-paginated. Each page is one
// round trip to the database; a second one only when the page is empty, to tell an empty
// project from a missing one.
func (s *Server) ListTasks(ctx context.Context, req api.ListTasksRequestObject) (api.ListTasksResponseObject, error) {
	p := principal(ctx)
	prm := req.Params
	sort := api.ListTasksParamsSortPosition
	if prm.Sort != nil {
		sort = *prm.Sort
	}
	var c *taskCursor
	if prm.Cursor != nil {
		c = &taskCursor{}
		if err := cursor.Decode(*prm.Cursor, c); err != nil {
			return nil, err
		}
		if c.K != string(sort) {
			return nil, cursor.Invalid()
		}
	}
	f := filterOf(p, prm)

	// The unfiltered list in manual order is the common case and has a query of its own whose
	// cached plan is always right; anything filtered is planned per call.
	plain := sort == api.ListTasksParamsSortPosition && f.none()
	read := tenancy.SearchV[[]listedTask]
	if plain {
		read = tenancy.ReadV[[]listedTask]
	}
	rows, err := read(ctx, s.db, scope(p), func(q *db.Queries) ([]listedTask, error) {
		var rows []listedTask
		var err error
		if plain {
			rows, err = listProjectTasks(ctx, q, p.Tenant, req.Id, c, fetchLimit(prm.Limit))
		} else {
			rows, err = listTasks(ctx, q, p.Tenant, req.Id, sort, f, c, fetchLimit(prm.Limit))
		}
		if err != nil || len(rows) > 0 {
			return rows, err
		}
		_, err = q.GetProject(ctx, req.Id)
		return nil, notFound(err, resourceProject)
	})
	if err != nil {
		return nil, err
	}
	rows, next := page(rows, limitOf(prm.Limit), func(t listedTask) string { return cursor.Encode(cursorOf(sort, t.task)) })
	out := taskPage{Items: make([]taskWire, len(rows)), NextCursor: next}
	for i, r := range rows {
		out.Items[i] = taskToWire(r)
	}
	return out, nil
}

// filterOf reads the list filters of a request; "me" is the caller.
func filterOf(p auth.Principal, prm api.ListTasksParams) taskFilter {
	f := taskFilter{label: prm.Label, parent: prm.ParentId, q: prm.Q}
	if prm.Status != nil {
		for _, st := range *prm.Status {
			f.statuses = append(f.statuses, string(st))
		}
	}
	if prm.Assignee != nil {
		f.filterAssignee = true
		switch *prm.Assignee {
		case "me":
			f.assignee = &p.User
		case "none":
		default:
			id := uuid.MustParse(*prm.Assignee) // the spec's pattern admitted only a UUID here
			f.assignee = &id
		}
	}
	if prm.DueBefore != nil {
		f.before = &prm.DueBefore.Time
	}
	if prm.DueAfter != nil {
		f.after = &prm.DueAfter.Time
	}
	return f
}

type listedTask struct {
	task       db.Task
	projectKey string
}

func cursorOf(sort api.ListTasksParamsSort, t db.Task) taskCursor {
	c := taskCursor{K: string(sort), ID: t.ID}
	switch sort {
	case api.ListTasksParamsSortCreatedAt:
		c.T = t.CreatedAt
	case api.ListTasksParamsSortUpdatedAt:
		c.T = t.UpdatedAt
	case api.ListTasksParamsSortPriority:
		c.F = float64(t.Priority)
	case api.ListTasksParamsSortDueDate:
		c.D = noDueDate
		if t.DueDate != nil {
			c.D = t.DueDate.Format(time.DateOnly)
		}
	default:
		c.F = t.Position
	}
	return c
}

func listProjectTasks(ctx context.Context, q *db.Queries, tenant, project uuid.UUID, c *taskCursor, limit int32) ([]listedTask, error) {
	p := db.ListProjectTasksParams{TenantID: tenant, ProjectID: project, AfterPosition: math.Inf(-1), Lim: limit}
	if c != nil {
		p.AfterPosition, p.AfterID = c.F, c.ID
	}
	return collect(q.ListProjectTasks(ctx, p))(func(r db.ListProjectTasksRow) listedTask { return listedTask{r.Task, r.ProjectKey} })
}

// listTasks runs the list query of the sort order; each walks its own index.
func listTasks(ctx context.Context, q *db.Queries, tenant, project uuid.UUID, sort api.ListTasksParamsSort, f taskFilter, c *taskCursor, limit int32) ([]listedTask, error) {
	var afterID *uuid.UUID
	if c != nil {
		afterID = &c.ID
	}
	switch sort {
	case api.ListTasksParamsSortCreatedAt:
		p := db.ListTasksByCreatedAtParams{TenantID: tenant, ProjectID: project, Statuses: f.statuses, FilterAssignee: f.filterAssignee, AssigneeID: f.assignee,
			Label: f.label, ParentID: f.parent, DueBefore: f.before, DueAfter: f.after, Q: f.q, AfterID: afterID, Lim: limit}
		if c != nil {
			p.AfterCreatedAt = &c.T
		}
		return collect(q.ListTasksByCreatedAt(ctx, p))(func(r db.ListTasksByCreatedAtRow) listedTask { return listedTask{r.Task, r.ProjectKey} })
	case api.ListTasksParamsSortUpdatedAt:
		p := db.ListTasksByUpdatedAtParams{TenantID: tenant, ProjectID: project, Statuses: f.statuses, FilterAssignee: f.filterAssignee, AssigneeID: f.assignee,
			Label: f.label, ParentID: f.parent, DueBefore: f.before, DueAfter: f.after, Q: f.q, AfterID: afterID, Lim: limit}
		if c != nil {
			p.AfterUpdatedAt = &c.T
		}
		return collect(q.ListTasksByUpdatedAt(ctx, p))(func(r db.ListTasksByUpdatedAtRow) listedTask { return listedTask{r.Task, r.ProjectKey} })
	case api.ListTasksParamsSortPriority:
		p := db.ListTasksByPriorityParams{TenantID: tenant, ProjectID: project, Statuses: f.statuses, FilterAssignee: f.filterAssignee, AssigneeID: f.assignee,
			Label: f.label, ParentID: f.parent, DueBefore: f.before, DueAfter: f.after, Q: f.q, AfterID: afterID, Lim: limit}
		if c != nil {
			p.AfterPriority = ptr(int16(c.F))
		}
		return collect(q.ListTasksByPriority(ctx, p))(func(r db.ListTasksByPriorityRow) listedTask { return listedTask{r.Task, r.ProjectKey} })
	case api.ListTasksParamsSortDueDate:
		p := db.ListTasksByDueDateParams{TenantID: tenant, ProjectID: project, Statuses: f.statuses, FilterAssignee: f.filterAssignee, AssigneeID: f.assignee,
			Label: f.label, ParentID: f.parent, DueBefore: f.before, DueAfter: f.after, Q: f.q, AfterID: afterID, Lim: limit}
		if c != nil {
			if c.D != noDueDate {
				if _, err := time.Parse(time.DateOnly, c.D); err != nil {
					return nil, cursor.Invalid()
				}
			}
			p.AfterDueDate = &c.D
		}
		return collect(q.ListTasksByDueDate(ctx, p))(func(r db.ListTasksByDueDateRow) listedTask { return listedTask{r.Task, r.ProjectKey} })
	default:
		p := db.ListTasksByPositionParams{TenantID: tenant, ProjectID: project, Statuses: f.statuses, FilterAssignee: f.filterAssignee, AssigneeID: f.assignee,
			Label: f.label, ParentID: f.parent, DueBefore: f.before, DueAfter: f.after, Q: f.q, AfterID: afterID, Lim: limit}
		if c != nil {
			p.AfterPosition = &c.F
		}
		return collect(q.ListTasksByPosition(ctx, p))(func(r db.ListTasksByPositionRow) listedTask { return listedTask{r.Task, r.ProjectKey} })
	}
}

// collect maps query rows to listedTask; sqlc gives each list query its own row type.
func collect[R any](rows []R, err error) func(func(R) listedTask) ([]listedTask, error) {
	return func(conv func(R) listedTask) ([]listedTask, error) {
		if err != nil {
			return nil, err
		}
		out := make([]listedTask, len(rows))
		for i, r := range rows {
			out[i] = conv(r)
		}
		return out, nil
	}
}
