package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/tasks"
	"github.com/tasker/tasker/internal/tenancy"
)

const resourceTask = "task"

// loadedTask is a task with what authorization and responses need from its project.
type loadedTask struct {
	db.Task
	projectKey string
	teamID     uuid.UUID
}

func (t loadedTask) wire() taskWire { return taskToWire(listedTask{t.Task, t.projectKey}) }

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
	t, err := tenancy.ReadV(ctx, s.db, scope(p), func(q *db.Queries) (loadedTask, error) {
		return loadTask(ctx, q, p.Tenant, req.Id)
	})
	if err != nil {
		return nil, err
	}
	return taskResponse{status: http.StatusOK, task: t.wire()}, nil
}

// CreateTask creates a task with the project's next number.
func (s *Server) CreateTask(ctx context.Context, req api.CreateTaskRequestObject) (api.CreateTaskResponseObject, error) {
	b := req.Body
	out, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (taskWire, error) {
		// Permission first, then the project's lock: a caller who may not write here must not
		// hold up those who may.
		proj, err := tx.Q.GetProject(ctx, req.Id)
		if err != nil {
			return taskWire{}, notFound(err, resourceProject)
		}
		if err := tasks.MayWrite(ctx, tx.Q, p, proj.TeamID); err != nil {
			return taskWire{}, err
		}
		seq, err := tx.Q.NextTaskNumber(ctx, req.Id)
		if err != nil {
			return taskWire{}, notFound(err, resourceProject)
		}
		if seq.Status == string(api.ProjectStatusArchived) {
			return taskWire{}, problem.New(problem.Conflict, "The project is archived; unarchive it to add tasks.")
		}
		if err := tasks.CheckAssignee(ctx, tx.Q, b.AssigneeId); err != nil {
			return taskWire{}, err
		}
		if b.ParentId != nil {
			if err := tasks.CheckParent(ctx, tx.Q, p.Tenant, req.Id, nil, *b.ParentId); err != nil {
				return taskWire{}, err
			}
		}
		params := newTaskParams(p, req.Id, seq.TaskSeq, b)
		if b.Position == nil {
			// Last in the manual order (creates take turns on the project row lock above).
			last, err := tx.Q.LastTaskPosition(ctx, db.LastTaskPositionParams{TenantID: p.Tenant, ProjectID: req.Id})
			if err != nil {
				return taskWire{}, err
			}
			params.Position = last + 1
		}
		row, err := tx.Q.CreateTask(ctx, params)
		if err != nil {
			return taskWire{}, err
		}
		out := taskToWire(listedTask{row, seq.Key})
		tx.Changed("task.created", tenancy.Entry{Action: "task.create", ResourceType: resourceTask, ResourceID: row.ID,
			Data: map[string]any{"key": out.Key}}, row.ProjectID, out)
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return taskResponse{status: http.StatusCreated, task: out}, nil
}

// newTaskParams turns a create body into the insert's parameters, with the defaults of absent
// fields (backlog, no priority, no labels); the default position is the caller's to fill.
func newTaskParams(p auth.Principal, project uuid.UUID, number int64, b *api.CreateTaskJSONRequestBody) db.CreateTaskParams {
	params := db.CreateTaskParams{
		TenantID: p.Tenant, ID: newID(), ProjectID: project, Number: number, Title: b.Title,
		Description: deref(b.Description), Status: string(api.TaskStatusBacklog), AssigneeID: b.AssigneeId,
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
	}
	return params
}

// UpdateTask applies a partial update, honouring If-Match.
func (s *Server) UpdateTask(ctx context.Context, req api.UpdateTaskRequestObject) (api.UpdateTaskResponseObject, error) {
	pre, err := tasks.IfMatch(req.Params.IfMatch)
	if err != nil {
		return nil, err
	}
	out, err := writeV(ctx, s, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) (taskWire, error) {
		t, err := loadTask(ctx, tx.Q, p.Tenant, req.Id)
		if err != nil {
			return taskWire{}, err
		}
		if err := tasks.MayWrite(ctx, tx.Q, p, t.teamID); err != nil {
			return taskWire{}, err
		}
		expected, err := pre.Expected(t.Version)
		if err != nil {
			return taskWire{}, err
		}
		params, changed, err := taskChanges(ctx, tx.Q, p, t, req.Body)
		if err != nil {
			return taskWire{}, err
		}
		params.ExpectedVersion = expected
		updated, err := tx.Q.UpdateTask(ctx, params)
		if errors.Is(err, pgx.ErrNoRows) {
			// The read took no lock: the task was deleted or changed since.
			return taskWire{}, tasks.Gone(ctx, tx.Q, p.Tenant, t.ID)
		}
		if err != nil {
			return taskWire{}, err
		}
		out := loadedTask{updated, t.projectKey, t.teamID}.wire()
		tx.Changed("task.updated", tenancy.Entry{Action: "task.update", ResourceType: resourceTask, ResourceID: t.ID,
			Data: map[string]any{"fields": changed, "version": updated.Version}}, t.ProjectID, out)
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return taskResponse{status: http.StatusOK, task: out}, nil
}

// taskChanges turns a PATCH body into the update's parameters and the names of the fields it
// sets, checking a new assignee and a new parent on the way.
func taskChanges(ctx context.Context, q *db.Queries, p auth.Principal, t loadedTask, b *api.UpdateTaskJSONRequestBody) (db.UpdateTaskParams, []string, error) {
	params := db.UpdateTaskParams{ID: t.ID, Labels: []string{}}
	changed := []string{}
	set := func(name string) bool { changed = append(changed, name); return true }
	if b.Title != nil {
		params.SetTitle, params.Title = set("title"), *b.Title
	}
	if b.Description != nil {
		params.SetDescription, params.Description = set("description"), *b.Description
	}
	if b.Status != nil {
		params.SetStatus, params.Status = set("status"), string(*b.Status)
	}
	if b.Priority != nil {
		params.SetPriority, params.Priority = set("priority"), int16(*b.Priority)
	}
	if b.Labels != nil {
		params.SetLabels, params.Labels = set("labels"), *b.Labels
	}
	if b.Position != nil {
		params.SetPosition, params.Position = set("position"), *b.Position
	}
	if b.AssigneeId.IsSpecified() {
		params.SetAssignee = set("assignee_id")
		if !b.AssigneeId.IsNull() {
			params.AssigneeID = ptr(b.AssigneeId.MustGet())
			if err := tasks.CheckAssignee(ctx, q, params.AssigneeID); err != nil {
				return params, nil, err
			}
		}
	}
	if b.DueDate.IsSpecified() {
		params.SetDueDate = set("due_date")
		if !b.DueDate.IsNull() {
			params.DueDate = ptr(b.DueDate.MustGet().Time)
		}
	}
	if b.ParentId.IsSpecified() {
		params.SetParent = set("parent_id")
		if !b.ParentId.IsNull() {
			parent := b.ParentId.MustGet()
			// Parent changes in a project take turns, so two of them cannot each pass the
			// cycle check and together make a cycle.
			if _, err := q.LockProject(ctx, t.ProjectID); err != nil {
				return params, nil, err
			}
			if err := tasks.CheckParent(ctx, q, p.Tenant, t.ProjectID, &t.ID, parent); err != nil {
				return params, nil, err
			}
			params.ParentID = &parent
		}
	}
	return params, changed, nil
}

// DeleteTask deletes a task, honouring If-Match; its subtasks lose their parent.
func (s *Server) DeleteTask(ctx context.Context, req api.DeleteTaskRequestObject) (api.DeleteTaskResponseObject, error) {
	pre, err := tasks.IfMatch(req.Params.IfMatch)
	if err != nil {
		return nil, err
	}
	var blobs []string
	err = s.write(ctx, principal(ctx), func(tx *tenancy.Tx, p auth.Principal) error {
		t, err := loadTask(ctx, tx.Q, p.Tenant, req.Id)
		if err != nil {
			return err
		}
		if err := tasks.MayWrite(ctx, tx.Q, p, t.teamID); err != nil {
			return err
		}
		expected, err := pre.Expected(t.Version)
		if err != nil {
			return err
		}
		// The attachments first, to learn their blobs (the cascade would remove the rows
		// silently), under the task's lock, which uploads to it wait for or hold until they
		// commit; a stale If-Match rolls this back with the rest.
		if _, err := tx.Q.LockTaskForDelete(ctx, t.ID); errors.Is(err, pgx.ErrNoRows) {
			return tasks.Gone(ctx, tx.Q, p.Tenant, t.ID)
		} else if err != nil {
			return err
		}
		if blobs, err = tx.Q.DeleteTaskFiles(ctx, &t.ID); err != nil {
			return err
		}
		n, err := tx.Q.DeleteTask(ctx, db.DeleteTaskParams{ID: t.ID, ExpectedVersion: expected})
		if err != nil {
			return err
		}
		if n == 0 {
			return tasks.Gone(ctx, tx.Q, p.Tenant, t.ID)
		}
		tx.Changed("task.deleted", tenancy.Entry{Action: "task.delete", ResourceType: resourceTask, ResourceID: t.ID,
			Data: map[string]any{"key": taskKey(t.projectKey, t.Number)}}, t.ProjectID, t.wire())
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.removeBlobs(ctx, blobs)
	return api.DeleteTask204Response{}, nil
}

func taskKey(projectKey string, number int64) string {
	return projectKey + "-" + strconv.FormatInt(number, 10)
}
