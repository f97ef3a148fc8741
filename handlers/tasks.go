package handlers

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/authz"
	"github.com/tasker/tasker/internal/cursor"
	"github.com/tasker/tasker/internal/problem"
)

const resourceTask = "task"

// noDueDate stands in for "no due date" in the due-date sort order (see tasks_due_idx).
var noDueDate = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// taskCursor is the position in a task list: the sort's key of the last row and its id.
type taskCursor struct {
	K  string    `json:"k"`
	F  float64   `json:"f,omitempty"` // position, or priority
	T  time.Time `json:"t,omitzero"`  // created_at, updated_at or due date
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

	// The unfiltered list in manual order is the common case and has a query of its own whose
	// cached plan is always right; anything filtered is planned per call.
	plain := sort == api.ListTasksParamsSortPosition && f.none()
	read := s.db.Search
	if plain {
		read = s.db.Read
	}
	var rows []listedTask
	err := read(ctx, scope(p), func(q *db.Queries) error {
		var err error
		if plain {
			rows, err = listProjectTasks(ctx, q, p.Tenant, req.Id, c, fetchLimit(prm.Limit))
		} else {
			rows, err = listTasks(ctx, q, p.Tenant, req.Id, sort, f, c, fetchLimit(prm.Limit))
		}
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			_, err = q.GetProject(ctx, req.Id)
			return notFound(err, resourceProject)
		}
		return nil
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
		c.T = noDueDate
		if t.DueDate != nil {
			c.T = *t.DueDate
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
			p.AfterDueDate = &c.T
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

// loadedTask is a task with what authorization and responses need from its project.
type loadedTask struct {
	db.Task
	projectKey string
	teamID     uuid.UUID
}

// loadTask finds a task by id or by key (ENG-42).
func loadTask(ctx context.Context, q *db.Queries, tenant uuid.UUID, ref string) (loadedTask, error) {
	if id, err := uuid.Parse(ref); err == nil {
		r, err := q.GetTask(ctx, db.GetTaskParams{TenantID: tenant, ID: id})
		if err != nil {
			return loadedTask{}, notFound(err, resourceTask)
		}
		return loadedTask{r.Task, r.ProjectKey, r.TeamID}, nil
	}
	i := strings.LastIndexByte(ref, '-')
	number, err := strconv.ParseInt(ref[i+1:], 10, 64)
	if i < 0 || err != nil {
		return loadedTask{}, problem.New(problem.NotFound, "No such task.")
	}
	r, err := q.GetTaskByKey(ctx, db.GetTaskByKeyParams{TenantID: tenant, ProjectKey: ref[:i], Number: number})
	if err != nil {
		return loadedTask{}, notFound(err, resourceTask)
	}
	return loadedTask{r.Task, r.ProjectKey, r.TeamID}, nil
}

// GetTask reads one task, with its version as the ETag.
func (s *Server) GetTask(ctx context.Context, req api.GetTaskRequestObject) (api.GetTaskResponseObject, error) {
	p := principal(ctx)
	var t loadedTask
	err := s.db.Read(ctx, scope(p), func(q *db.Queries) error {
		var err error
		t, err = loadTask(ctx, q, p.Tenant, req.Id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return api.GetTask200JSONResponse{Body: taskToAPI(t.Task, t.projectKey), Headers: api.GetTask200ResponseHeaders{ETag: ptr(etag(t.Version))}}, nil
}

// mayWriteTasks applies the task-writing rule for a project of team.
func mayWriteTasks(ctx context.Context, q *db.Queries, p auth.Principal, team uuid.UUID) error {
	member := false
	if !p.Role.AtLeast(auth.Admin) && p.Role.AtLeast(auth.Member) {
		var err error
		if member, err = q.IsTeamMember(ctx, db.IsTeamMemberParams{TeamID: team, UserID: p.User}); err != nil {
			return err
		}
	}
	return authz.WriteTasks(p, member)
}

// checkAssignee makes sure an assignee is a user of the tenant.
func checkAssignee(ctx context.Context, q *db.Queries, id *uuid.UUID) error {
	if id == nil {
		return nil
	}
	_, err := q.GetUser(ctx, *id)
	return notFound(err, "user (assignee_id)")
}

// checkParent makes sure a parent is a task of the same project and, for an existing task, not
// one of its descendants.
func checkParent(ctx context.Context, q *db.Queries, tenant, project uuid.UUID, child *uuid.UUID, parent uuid.UUID) error {
	field := func(msg string) error {
		return problem.Fields("The parent task is not allowed.", problem.FieldError{Field: "parent_id", In: "body", Message: msg})
	}
	if child != nil && *child == parent {
		return field("a task cannot be its own parent")
	}
	r, err := q.GetTask(ctx, db.GetTaskParams{TenantID: tenant, ID: parent})
	if err != nil {
		return notFound(err, "parent task (parent_id)")
	}
	if r.Task.ProjectID != project {
		return field("must be a task of the same project")
	}
	if child != nil {
		cycle, err := q.TaskCreatesCycle(ctx, db.TaskCreatesCycleParams{ParentID: parent, TenantID: tenant, ID: *child})
		if err != nil {
			return err
		}
		if cycle {
			return field("would make the task its own ancestor")
		}
	}
	return nil
}

// CreateTask creates a task with the project's next number.
func (s *Server) CreateTask(ctx context.Context, req api.CreateTaskRequestObject) (api.CreateTaskResponseObject, error) {
	p := principal(ctx)
	b := req.Body
	var out db.Task
	var key string
	err := s.write(ctx, p, func(q *db.Queries, p auth.Principal) error {
		proj, err := q.NextTaskNumber(ctx, req.Id)
		if err != nil {
			return notFound(err, resourceProject)
		}
		if err := mayWriteTasks(ctx, q, p, proj.TeamID); err != nil {
			return err
		}
		if proj.Status == string(api.ProjectStatusArchived) {
			return problem.New(problem.Conflict, "The project is archived; unarchive it to add tasks.")
		}
		if err := checkAssignee(ctx, q, b.AssigneeId); err != nil {
			return err
		}
		if b.ParentId != nil {
			if err := checkParent(ctx, q, p.Tenant, req.Id, nil, *b.ParentId); err != nil {
				return err
			}
		}
		params := db.CreateTaskParams{
			TenantID: p.Tenant, ID: newID(), ProjectID: req.Id, Number: proj.TaskSeq, Title: b.Title,
			Description: deref(b.Description), Status: string(api.Backlog), AssigneeID: b.AssigneeId,
			Labels: []string{}, ParentID: b.ParentId, CreatedBy: p.User,
		}
		if b.Status != nil {
			params.Status = string(*b.Status)
		}
		if b.Priority != nil {
			params.Priority = int16(*b.Priority)
		}
		if b.Labels != nil {
			params.Labels = *b.Labels
		}
		if b.DueDate != nil {
			params.DueDate = &b.DueDate.Time
		}
		if b.Position != nil {
			params.Position = *b.Position
		} else {
			// Last in the manual order (creates take turns on the project row lock above).
			last, err := q.LastTaskPosition(ctx, db.LastTaskPositionParams{TenantID: p.Tenant, ProjectID: req.Id})
			if err != nil {
				return err
			}
			params.Position = last + 1
		}
		if out, err = q.CreateTask(ctx, params); err != nil {
			return err
		}
		key = proj.Key
		return s.record(ctx, q, p, "task.create", resourceTask, out.ID, map[string]any{"key": taskKey(key, out.Number)})
	})
	if err != nil {
		return nil, err
	}
	return api.CreateTask201JSONResponse{Body: taskToAPI(out, key), Headers: api.CreateTask201ResponseHeaders{ETag: ptr(etag(out.Version))}}, nil
}

// UpdateTask applies a partial update, honouring If-Match.
func (s *Server) UpdateTask(ctx context.Context, req api.UpdateTaskRequestObject) (api.UpdateTaskResponseObject, error) {
	p := principal(ctx)
	expected, err := ifMatch(req.Params.IfMatch)
	if err != nil {
		return nil, err
	}
	b := req.Body
	var out loadedTask
	err = s.write(ctx, p, func(q *db.Queries, p auth.Principal) error {
		t, err := loadTask(ctx, q, p.Tenant, req.Id)
		if err != nil {
			return err
		}
		if err := mayWriteTasks(ctx, q, p, t.teamID); err != nil {
			return err
		}
		if expected != nil && *expected != t.Version {
			return stale(t.Version)
		}
		params := db.UpdateTaskParams{ID: t.ID, ExpectedVersion: expected}
		changed := []string{}
		if b.Title != nil {
			params.SetTitle, params.Title, changed = true, *b.Title, append(changed, "title")
		}
		if b.Description != nil {
			params.SetDescription, params.Description, changed = true, *b.Description, append(changed, "description")
		}
		if b.Status != nil {
			params.SetStatus, params.Status, changed = true, string(*b.Status), append(changed, "status")
		}
		if b.Priority != nil {
			params.SetPriority, params.Priority, changed = true, int16(*b.Priority), append(changed, "priority")
		}
		if b.Labels != nil {
			params.SetLabels, params.Labels, changed = true, *b.Labels, append(changed, "labels")
		}
		if b.Position != nil {
			params.SetPosition, params.Position, changed = true, *b.Position, append(changed, "position")
		}
		if b.AssigneeId.IsSpecified() {
			params.SetAssignee, changed = true, append(changed, "assignee_id")
			if !b.AssigneeId.IsNull() {
				params.AssigneeID = ptr(b.AssigneeId.MustGet())
				if err := checkAssignee(ctx, q, params.AssigneeID); err != nil {
					return err
				}
			}
		}
		if b.DueDate.IsSpecified() {
			params.SetDueDate, changed = true, append(changed, "due_date")
			if !b.DueDate.IsNull() {
				params.DueDate = ptr(b.DueDate.MustGet().Time)
			}
		}
		if b.ParentId.IsSpecified() {
			params.SetParent, changed = true, append(changed, "parent_id")
			if !b.ParentId.IsNull() {
				parent := b.ParentId.MustGet()
				// Parent changes in a project take turns, so two of them cannot each pass the
				// cycle check and together make a cycle.
				if _, err := q.LockProject(ctx, t.ProjectID); err != nil {
					return err
				}
				if err := checkParent(ctx, q, p.Tenant, t.ProjectID, &t.ID, parent); err != nil {
					return err
				}
				params.ParentID = &parent
			}
		}
		if params.Labels == nil {
			params.Labels = []string{}
		}
		updated, err := q.UpdateTask(ctx, params)
		if errors.Is(err, pgx.ErrNoRows) {
			return stale(t.Version) // it exists (we hold it), so the version moved on
		}
		if err != nil {
			return err
		}
		out = loadedTask{updated, t.projectKey, t.teamID}
		return s.record(ctx, q, p, "task.update", resourceTask, t.ID, map[string]any{"fields": changed, "version": updated.Version})
	})
	if err != nil {
		return nil, err
	}
	return api.UpdateTask200JSONResponse{Body: taskToAPI(out.Task, out.projectKey), Headers: api.UpdateTask200ResponseHeaders{ETag: ptr(etag(out.Version))}}, nil
}

// DeleteTask deletes a task, honouring If-Match; its subtasks lose their parent.
func (s *Server) DeleteTask(ctx context.Context, req api.DeleteTaskRequestObject) (api.DeleteTaskResponseObject, error) {
	p := principal(ctx)
	expected, err := ifMatch(req.Params.IfMatch)
	if err != nil {
		return nil, err
	}
	err = s.write(ctx, p, func(q *db.Queries, p auth.Principal) error {
		t, err := loadTask(ctx, q, p.Tenant, req.Id)
		if err != nil {
			return err
		}
		if err := mayWriteTasks(ctx, q, p, t.teamID); err != nil {
			return err
		}
		n, err := q.DeleteTask(ctx, db.DeleteTaskParams{ID: t.ID, ExpectedVersion: expected})
		if err != nil {
			return err
		}
		if n == 0 {
			return stale(t.Version)
		}
		return s.record(ctx, q, p, "task.delete", resourceTask, t.ID, map[string]any{"key": taskKey(t.projectKey, t.Number)})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteTask204Response{}, nil
}

// ifMatch reads an If-Match header: nil for none or "*", the version for "N" or W/"N". An
// entity tag that is none of ours can never match (RFC 9110 section 13.1.1), so it is 412.
func ifMatch(h *string) (*int32, error) {
	if h == nil || strings.TrimSpace(*h) == "*" {
		return nil, nil
	}
	v := strings.TrimPrefix(strings.TrimSpace(*h), "W/")
	n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 32)
	if err != nil || len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, problem.New(problem.PreconditionFailed, "If-Match does not name a version of this task.")
	}
	return ptr(int32(n)), nil
}

func stale(current int32) error {
	return problem.New(problem.PreconditionFailed, "The task has changed since that version; its current ETag is %s.", etag(current))
}

func taskKey(projectKey string, number int64) string {
	return projectKey + "-" + strconv.FormatInt(number, 10)
}
