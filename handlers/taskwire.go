package handlers

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/internal/tasks"
)

// taskWire is api.Task as it goes over the wire, built from plain strings and numbers. The task
// list is the hottest response there is, and api.Task spends most of its encoding time in the
// nullable wrappers (a map each) and in time.Time's MarshalJSON, whose output encoding/json
// re-compacts. The shape is the spec's Task exactly; the contract tests validate every list
// response against openapi/openapi.yaml, whose Task admits no other property.
type taskWire struct {
	AssigneeID  *string  `json:"assignee_id"`
	CreatedAt   string   `json:"created_at"`
	CreatedBy   string   `json:"created_by"`
	Description string   `json:"description"`
	DueDate     *string  `json:"due_date"`
	ID          string   `json:"id"`
	Key         string   `json:"key"`
	Labels      []string `json:"labels"`
	Number      int64    `json:"number"`
	ParentID    *string  `json:"parent_id"`
	Position    float64  `json:"position"`
	Priority    int16    `json:"priority"`
	ProjectID   string   `json:"project_id"`
	Status      string   `json:"status"`
	Title       string   `json:"title"`
	UpdatedAt   string   `json:"updated_at"`
	Version     int32    `json:"version"`
}

// taskPage is a ListTasks 200 response written without the generated types.
type taskPage struct {
	Items      []taskWire `json:"items"`
	NextCursor *string    `json:"next_cursor"`
}

var _ api.ListTasksResponseObject = taskPage{}

// VisitListTasksResponse writes the page as the generated response would.
func (p taskPage) VisitListTasksResponse(w http.ResponseWriter) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err // before any byte is written, so the error handler can still answer 500
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(append(body, '\n'))
	return err
}

// taskResponse is a single task answered with its version as the ETag, through the same
// encoder as the list pages: one shape, one code path, for every task response and event.
type taskResponse struct {
	status int
	task   taskWire
}

var (
	_ api.GetTaskResponseObject    = taskResponse{}
	_ api.CreateTaskResponseObject = taskResponse{}
	_ api.UpdateTaskResponseObject = taskResponse{}
)

func (r taskResponse) write(w http.ResponseWriter) error {
	body, err := json.Marshal(r.task)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", tasks.ETag(r.task.Version))
	w.WriteHeader(r.status)
	_, err = w.Write(append(body, '\n'))
	return err
}

// VisitGetTaskResponse writes the task as GET answers it.
func (r taskResponse) VisitGetTaskResponse(w http.ResponseWriter) error { return r.write(w) }

// VisitCreateTaskResponse writes the task as POST answers it.
func (r taskResponse) VisitCreateTaskResponse(w http.ResponseWriter) error { return r.write(w) }

// VisitUpdateTaskResponse writes the task as PATCH answers it.
func (r taskResponse) VisitUpdateTaskResponse(w http.ResponseWriter) error { return r.write(w) }

func taskToWire(t listedTask) taskWire {
	labels := t.task.Labels
	if labels == nil {
		labels = []string{}
	}
	out := taskWire{
		CreatedAt: t.task.CreatedAt.Format(time.RFC3339Nano), CreatedBy: t.task.CreatedBy.String(),
		Description: t.task.Description, ID: t.task.ID.String(), Key: taskKey(t.projectKey, t.task.Number),
		Labels: labels, Number: t.task.Number, Position: t.task.Position, Priority: t.task.Priority,
		ProjectID: t.task.ProjectID.String(), Status: t.task.Status, Title: t.task.Title,
		UpdatedAt: t.task.UpdatedAt.Format(time.RFC3339Nano), Version: t.task.Version,
	}
	if t.task.AssigneeID != nil {
		out.AssigneeID = ptr(t.task.AssigneeID.String())
	}
	if t.task.ParentID != nil {
		out.ParentID = ptr(t.task.ParentID.String())
	}
	if t.task.DueDate != nil {
		out.DueDate = ptr(t.task.DueDate.Format(time.DateOnly))
	}
	return out
}
