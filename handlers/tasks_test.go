package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/oapi-codegen/nullable"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/tenancy"
)

func TestTasksAreNumberedPerProjectAndReadableByKey(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	first := createTask(t, env, w, api.TaskCreate{Title: "First"})
	second := createTask(t, env, w, api.TaskCreate{Title: "Second"})
	if first.Number != 1 || second.Number != 2 || first.Key != "PLAT-1" || second.Key != "PLAT-2" {
		t.Fatalf("numbers %d/%s, %d/%s; want 1/PLAT-1, 2/PLAT-2", first.Number, first.Key, second.Number, second.Key)
	}
	if first.Status != api.TaskStatusBacklog || first.Priority != 0 || first.Version != 1 || first.CreatedBy != w.Owner.Id || len(first.Labels) != 0 {
		t.Errorf("defaults of a new task: %+v", first)
	}
	for _, ref := range []string{second.Id.String(), "PLAT-2"} {
		resp, err := env.Client.GetTaskWithResponse(bg, ref, w.as(api.UserRoleViewer))
		if err != nil || resp.JSON200 == nil || resp.JSON200.Id != second.Id {
			t.Fatalf("GET %s: %v %s", ref, err, resp.Body)
		}
		if et := resp.HTTPResponse.Header.Get("ETag"); et != `"1"` {
			t.Errorf("GET %s: ETag %q, want \"1\"", ref, et)
		}
	}
	for _, ref := range []string{"PLAT-99", "NOPE-1", uuid.NewString()} {
		resp, _ := env.Client.GetTaskWithResponse(bg, ref, w.as(api.UserRoleViewer))
		wantStatus(t, "GET "+ref, resp.StatusCode(), resp.Body, http.StatusNotFound)
	}
	// Concurrent creates still get distinct consecutive numbers.
	var wg sync.WaitGroup
	numbers := make(chan int64, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := env.Client.CreateTaskWithResponse(bg, w.project.Id, nil, api.TaskCreate{Title: "parallel"}, w.as(api.UserRoleMember))
			if err != nil || resp.JSON201 == nil {
				t.Errorf("parallel create: %v %v", err, resp)
				return
			}
			numbers <- resp.JSON201.Number
		}()
	}
	wg.Wait()
	close(numbers)
	var got []int64
	for n := range numbers {
		got = append(got, n)
	}
	slices.Sort(got)
	if len(got) != 10 || got[0] != 3 || got[9] != 12 {
		t.Errorf("parallel numbers %v; want 3..12", got)
	}
}

func TestPatchIsPartialAndNullClears(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	parent := createTask(t, env, w, api.TaskCreate{Title: "Parent"})
	due := openapi_types.Date{Time: time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)}
	assignee := w.users[api.UserRoleMember].Id
	labels := api.Labels{"bug", "ui"}
	task := createTask(t, env, w, api.TaskCreate{
		Title: "Child", Description: ptr("details"), AssigneeId: &assignee, DueDate: &due, ParentId: &parent.Id,
		Labels: &labels, Priority: ptr(api.Priority(3)), Status: ptr(api.TaskStatusTodo),
	})

	// Only the title: everything else stays.
	resp, err := env.Client.UpdateTaskWithBodyWithResponse(bg, task.Id.String(), nil, "application/json", strings.NewReader(`{"title":"Renamed"}`), w.as(api.UserRoleMember))
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("patch title: %v %s", err, resp.Body)
	}
	got := resp.JSON200
	if got.Title != "Renamed" || got.Description != "details" || got.AssigneeId.MustGet() != assignee || got.DueDate.MustGet().Time != due.Time ||
		got.ParentId.MustGet() != parent.Id || got.Priority != 3 || got.Status != api.TaskStatusTodo || !slices.Equal(got.Labels, labels) {
		t.Fatalf("after a title-only patch: %+v", got)
	}
	if got.Version != 2 || resp.HTTPResponse.Header.Get("ETag") != `"2"` {
		t.Errorf("version %d, ETag %q after one change; want 2", got.Version, resp.HTTPResponse.Header.Get("ETag"))
	}

	// Explicit nulls clear.
	resp, err = env.Client.UpdateTaskWithBodyWithResponse(bg, task.Id.String(), nil, "application/json",
		strings.NewReader(`{"assignee_id":null,"due_date":null,"parent_id":null}`), w.as(api.UserRoleMember))
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("patch nulls: %v %s", err, resp.Body)
	}
	got = resp.JSON200
	if !got.AssigneeId.IsNull() || !got.DueDate.IsNull() || !got.ParentId.IsNull() || got.Title != "Renamed" || got.Description != "details" {
		t.Fatalf("after clearing: %+v", got)
	}
	// Nulls are refused where a field cannot be empty.
	bad, _ := env.Client.UpdateTaskWithBodyWithResponse(bg, task.Id.String(), nil, "application/json", strings.NewReader(`{"title":null}`), w.as(api.UserRoleMember))
	wantStatus(t, "title: null", bad.StatusCode(), bad.Body, http.StatusBadRequest)
	for name, body := range map[string]string{"empty": `{}`, "unknown field": `{"colour":"red"}`, "priority 5": `{"priority":5}`, "bad status": `{"status":"later"}`} {
		bad, _ := env.Client.UpdateTaskWithBodyWithResponse(bg, task.Id.String(), nil, "application/json", strings.NewReader(body), w.as(api.UserRoleMember))
		wantStatus(t, name, bad.StatusCode(), bad.Body, http.StatusBadRequest)
		if problemIn(bad.Body) == nil {
			t.Errorf("%s: not a problem", name)
		}
	}
}

func TestIfMatchGuardsAgainstLostUpdates(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "Contended"})
	v1 := `"1"`
	ok, err := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), &api.UpdateTaskParams{IfMatch: &v1}, api.TaskUpdate{Title: ptr("first writer")}, w.as(api.UserRoleOwner))
	if err != nil || ok.JSON200 == nil || ok.JSON200.Version != 2 {
		t.Fatalf("write with the current ETag: %v %s", err, ok.Body)
	}
	stale, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), &api.UpdateTaskParams{IfMatch: &v1}, api.TaskUpdate{Title: ptr("second writer")}, w.as(api.UserRoleOwner))
	wantStatus(t, "PATCH with a stale ETag", stale.StatusCode(), stale.Body, http.StatusPreconditionFailed)
	garbage := "not-an-etag"
	g, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), &api.UpdateTaskParams{IfMatch: &garbage}, api.TaskUpdate{Title: ptr("x")}, w.as(api.UserRoleOwner))
	wantStatus(t, "PATCH with a foreign ETag", g.StatusCode(), g.Body, http.StatusPreconditionFailed)
	del, _ := env.Client.DeleteTaskWithResponse(bg, task.Id.String(), &api.DeleteTaskParams{IfMatch: &v1}, w.as(api.UserRoleOwner))
	wantStatus(t, "DELETE with a stale ETag", del.StatusCode(), del.Body, http.StatusPreconditionFailed)

	cur, _ := env.Client.GetTaskWithResponse(bg, task.Id.String(), w.as(api.UserRoleOwner))
	if cur.JSON200.Title != "first writer" || cur.JSON200.Version != 2 {
		t.Fatalf("after rejected writes: %+v", cur.JSON200)
	}
	v2 := cur.HTTPResponse.Header.Get("ETag")
	del, _ = env.Client.DeleteTaskWithResponse(bg, task.Id.String(), &api.DeleteTaskParams{IfMatch: &v2}, w.as(api.UserRoleOwner))
	wantStatus(t, "DELETE with the current ETag", del.StatusCode(), del.Body, http.StatusNoContent)
	gone, _ := env.Client.GetTaskWithResponse(bg, task.Id.String(), w.as(api.UserRoleOwner))
	wantStatus(t, "GET after delete", gone.StatusCode(), gone.Body, http.StatusNotFound)
}

func TestParentsStayInTheProjectAndFormNoCycle(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	a := createTask(t, env, w, api.TaskCreate{Title: "A"})
	b := createTask(t, env, w, api.TaskCreate{Title: "B", ParentId: &a.Id})
	c := createTask(t, env, w, api.TaskCreate{Title: "C", ParentId: &b.Id})
	owner := w.as(api.UserRoleOwner)

	for name, target := range map[string]uuid.UUID{"itself": a.Id, "its grandchild": c.Id} {
		body := api.TaskUpdate{ParentId: nullable.NewNullableWithValue(target)}
		resp, _ := env.Client.UpdateTaskWithResponse(bg, a.Id.String(), nil, body, owner)
		wantStatus(t, "parent = "+name, resp.StatusCode(), resp.Body, http.StatusBadRequest)
	}
	other, _ := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.team.Id, Name: "Other", Key: "OTH"}, owner)
	foreign, _ := env.Client.CreateTaskWithResponse(bg, other.JSON201.Id, nil, api.TaskCreate{Title: "elsewhere"}, owner)
	resp, _ := env.Client.UpdateTaskWithResponse(bg, a.Id.String(), nil, api.TaskUpdate{ParentId: nullable.NewNullableWithValue(foreign.JSON201.Id)}, owner)
	wantStatus(t, "parent in another project", resp.StatusCode(), resp.Body, http.StatusBadRequest)
	missing := uuid.New()
	cr, _ := env.Client.CreateTaskWithResponse(bg, w.project.Id, nil, api.TaskCreate{Title: "orphan", ParentId: &missing}, owner)
	wantStatus(t, "create with a missing parent", cr.StatusCode(), cr.Body, http.StatusNotFound)

	// Deleting a parent keeps its children, unparented.
	del, _ := env.Client.DeleteTaskWithResponse(bg, b.Id.String(), nil, owner)
	wantStatus(t, "delete B", del.StatusCode(), del.Body, http.StatusNoContent)
	got, _ := env.Client.GetTaskWithResponse(bg, c.Id.String(), owner)
	if got.JSON200 == nil || !got.JSON200.ParentId.IsNull() {
		t.Fatalf("C after its parent was deleted: %s", got.Body)
	}
}

func TestTaskWritesFollowRolesAndTeams(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "Guarded"})
	cases := []struct {
		who  string
		as   api.RequestEditorFn
		want int
	}{
		{"owner", w.as(api.UserRoleOwner), http.StatusCreated},
		{"admin (not in the team)", w.as(api.UserRoleAdmin), http.StatusCreated},
		{"member of the team", w.as(api.UserRoleMember), http.StatusCreated},
		{"member outside the team", apitest.Bearer(w.outside), http.StatusForbidden},
		{"viewer", w.as(api.UserRoleViewer), http.StatusForbidden},
	}
	for _, c := range cases {
		cr, _ := env.Client.CreateTaskWithResponse(bg, w.project.Id, nil, api.TaskCreate{Title: "by " + c.who}, c.as)
		wantStatus(t, c.who+" creates", cr.StatusCode(), cr.Body, c.want)
		up, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), nil, api.TaskUpdate{Priority: ptr(api.Priority(2))}, c.as)
		wantStatus(t, c.who+" updates", up.StatusCode(), up.Body, map[int]int{201: 200, 403: 403}[c.want])
		// Everyone reads.
		rd, _ := env.Client.GetTaskWithResponse(bg, task.Id.String(), c.as)
		wantStatus(t, c.who+" reads", rd.StatusCode(), rd.Body, http.StatusOK)
	}
	del, _ := env.Client.DeleteTaskWithResponse(bg, task.Id.String(), nil, w.as(api.UserRoleViewer))
	wantStatus(t, "viewer deletes", del.StatusCode(), del.Body, http.StatusForbidden)
	// Archived projects take no new tasks.
	_, _ = env.Client.UpdateProjectWithResponse(bg, w.project.Id, api.ProjectUpdate{Status: ptr(api.ProjectStatusArchived)}, w.as(api.UserRoleOwner))
	cr, _ := env.Client.CreateTaskWithResponse(bg, w.project.Id, nil, api.TaskCreate{Title: "late"}, w.as(api.UserRoleOwner))
	wantStatus(t, "create in an archived project", cr.StatusCode(), cr.Body, http.StatusConflict)
}

func listTasks(t *testing.T, env *apitest.Env, w workspace, params api.ListTasksParams) []api.Task {
	t.Helper()
	resp, err := env.Client.ListTasksWithResponse(bg, w.project.Id, &params, w.as(api.UserRoleViewer))
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("list %+v: %v %s", params, err, resp.Body)
	}
	return resp.JSON200.Items
}

func titles(ts []api.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Title
	}
	return out
}

func TestTaskListFiltersAndSorts(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	member := w.users[api.UserRoleMember].Id
	d := func(day int) *openapi_types.Date {
		return &openapi_types.Date{Time: time.Date(2027, 3, day, 0, 0, 0, 0, time.UTC)}
	}
	mk := func(title string, status api.TaskStatus, prio int, assignee *uuid.UUID, labels api.Labels, due *openapi_types.Date, pos float64, desc string) api.Task {
		return createTask(t, env, w, api.TaskCreate{Title: title, Status: &status, Priority: ptr(api.Priority(prio)), AssigneeId: assignee,
			Labels: &labels, DueDate: due, Position: &pos, Description: &desc})
	}
	t1 := mk("Login page crashes", api.TaskStatusTodo, 4, &member, api.Labels{"bug"}, d(3), 30, "The login form throws on submit")
	mk("Write onboarding docs", api.TaskStatusBacklog, 1, nil, api.Labels{"docs"}, nil, 10, "Explain teams and projects")
	mk("Dark mode", api.TaskStatusInProgress, 2, &w.Owner.Id, api.Labels{"ui", "feature"}, d(1), 20, "Theme toggle")
	mk("Export to CSV", api.TaskStatusDone, 0, &member, api.Labels{"feature"}, d(9), 40, "Spreadsheet export of tasks")
	createTask(t, env, w, api.TaskCreate{Title: "Reproduce crash", ParentId: &t1.Id, Position: ptr(50.0)})

	statuses := []api.TaskStatus{api.TaskStatusTodo, api.TaskStatusInProgress}
	me, none, label, q := "me", "none", api.Label("feature"), "login"
	memberStr := member.String()
	cases := []struct {
		name   string
		params api.ListTasksParams
		want   []string
	}{
		{"default: by position", api.ListTasksParams{}, []string{"Write onboarding docs", "Dark mode", "Login page crashes", "Export to CSV", "Reproduce crash"}},
		{"several statuses", api.ListTasksParams{Status: &statuses}, []string{"Dark mode", "Login page crashes"}},
		{"assignee id", api.ListTasksParams{Assignee: &memberStr}, []string{"Login page crashes", "Export to CSV"}},
		{"assignee none", api.ListTasksParams{Assignee: &none}, []string{"Write onboarding docs", "Reproduce crash"}},
		{"label", api.ListTasksParams{Label: &label}, []string{"Dark mode", "Export to CSV"}},
		{"parent", api.ListTasksParams{ParentId: &t1.Id}, []string{"Reproduce crash"}},
		{"due before", api.ListTasksParams{DueBefore: d(5)}, []string{"Dark mode", "Login page crashes"}},
		{"due after", api.ListTasksParams{DueAfter: d(2)}, []string{"Login page crashes", "Export to CSV"}},
		{"text in title", api.ListTasksParams{Q: &q}, []string{"Login page crashes"}},
		{"text in description", api.ListTasksParams{Q: ptr("spreadsheet")}, []string{"Export to CSV"}},
		{"combined", api.ListTasksParams{Label: &label, Status: &[]api.TaskStatus{api.TaskStatusDone}}, []string{"Export to CSV"}},
		{"by priority", api.ListTasksParams{Sort: ptr(api.ListTasksParamsSortPriority), Status: &[]api.TaskStatus{api.TaskStatusTodo, api.TaskStatusInProgress, api.TaskStatusDone, api.TaskStatusBacklog}},
			[]string{"Login page crashes", "Dark mode", "Write onboarding docs", "Reproduce crash", "Export to CSV"}}, // ties: newest first
		{"by due date, undated last", api.ListTasksParams{Sort: ptr(api.ListTasksParamsSortDueDate)}, []string{"Dark mode", "Login page crashes", "Export to CSV", "Write onboarding docs", "Reproduce crash"}},
		{"by creation, newest first", api.ListTasksParams{Sort: ptr(api.ListTasksParamsSortCreatedAt)}, []string{"Reproduce crash", "Export to CSV", "Dark mode", "Write onboarding docs", "Login page crashes"}},
	}
	for _, c := range cases {
		if got := titles(listTasks(t, env, w, c.params)); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	// "me" is the caller.
	mine, err := env.Client.ListTasksWithResponse(bg, w.project.Id, &api.ListTasksParams{Assignee: &me}, w.as(api.UserRoleMember))
	if err != nil || !slices.Equal(titles(mine.JSON200.Items), []string{"Login page crashes", "Export to CSV"}) {
		t.Errorf("assignee=me for the member: %s", mine.Body)
	}
	// Updated-at order follows the last change.
	_, _ = env.Client.UpdateTaskWithResponse(bg, "PLAT-2", nil, api.TaskUpdate{Priority: ptr(api.Priority(1))}, w.as(api.UserRoleOwner))
	if got := titles(listTasks(t, env, w, api.ListTasksParams{Sort: ptr(api.ListTasksParamsSortUpdatedAt), Limit: ptr(1)})); !slices.Equal(got, []string{"Write onboarding docs"}) {
		t.Errorf("by updated_at: %q", got)
	}
}

func TestTaskPagesAreStableUnderConcurrentInserts(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	for i := range 25 {
		createTask(t, env, w, api.TaskCreate{Title: fmt.Sprintf("task %02d", i)})
	}
	for _, sort := range []api.ListTasksParamsSort{api.ListTasksParamsSortPosition, api.ListTasksParamsSortCreatedAt, api.ListTasksParamsSortPriority, api.ListTasksParamsSortDueDate, api.ListTasksParamsSortUpdatedAt} {
		seen := map[uuid.UUID]bool{}
		var cursor *string
		pages := 0
		for {
			resp, err := env.Client.ListTasksWithResponse(bg, w.project.Id, &api.ListTasksParams{Limit: ptr(10), Cursor: cursor, Sort: &sort}, w.as(api.UserRoleViewer))
			if err != nil || resp.JSON200 == nil {
				t.Fatalf("%s page %d: %v %s", sort, pages, err, resp.Body)
			}
			for _, it := range resp.JSON200.Items {
				if seen[it.Id] {
					t.Fatalf("%s: %s appears on two pages", sort, it.Title)
				}
				seen[it.Id] = true
			}
			pages++
			// Someone adds a task between our pages; the walk must neither repeat nor skip.
			if pages == 1 {
				createTask(t, env, w, api.TaskCreate{Title: "inserted while paging " + string(sort)})
			}
			if resp.JSON200.NextCursor.IsNull() {
				break
			}
			c := resp.JSON200.NextCursor.MustGet()
			cursor = &c
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
		}
		if len(seen) < 25 {
			t.Errorf("%s: walked %d tasks, want all 25 that existed before", sort, len(seen))
		}
	}
	// Limits and cursors are checked.
	for name, p := range map[string]api.ListTasksParams{
		"limit 0": {Limit: ptr(0)}, "limit 201": {Limit: ptr(201)}, "garbage cursor": {Cursor: ptr("%%%")},
		"cursor of another sort": {Cursor: ptr("eyJrIjoicHJpb3JpdHkiLCJpZCI6IjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJ9")},
		"assignee garbage":       {Assignee: ptr("someone")}, "status garbage": {Status: &[]api.TaskStatus{"soon"}},
	} {
		resp, _ := env.Client.ListTasksWithResponse(bg, w.project.Id, &p, w.as(api.UserRoleViewer))
		wantStatus(t, name, resp.StatusCode(), resp.Body, http.StatusBadRequest)
	}
	missing, _ := env.Client.ListTasksWithResponse(bg, uuid.New(), nil, w.as(api.UserRoleViewer))
	wantStatus(t, "tasks of a missing project", missing.StatusCode(), missing.Body, http.StatusNotFound)
}

func TestCreateTaskIsIdempotent(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	key := "create-task-" + uuid.NewString()
	send := func(title string) *api.CreateTaskResponse {
		resp, err := env.Client.CreateTaskWithResponse(bg, w.project.Id, &api.CreateTaskParams{IdempotencyKey: &key}, api.TaskCreate{Title: title}, w.as(api.UserRoleMember))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := send("once")
	again := send("once")
	if first.JSON201 == nil || again.JSON201 == nil || first.JSON201.Id != again.JSON201.Id || again.HTTPResponse.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry with the same key and body: %s / %s", first.Body, again.Body)
	}
	if again.HTTPResponse.Header.Get("ETag") != first.HTTPResponse.Header.Get("ETag") || again.HTTPResponse.Header.Get("ETag") == "" {
		t.Errorf("replayed ETag %q, first %q", again.HTTPResponse.Header.Get("ETag"), first.HTTPResponse.Header.Get("ETag"))
	}
	other := send("twice")
	wantStatus(t, "same key, other body", other.StatusCode(), other.Body, http.StatusUnprocessableEntity)
	// The same key and body sent to another project is another request, not a replay.
	proj2, _ := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.team.Id, Name: "Second", Key: "SEC"}, w.as(api.UserRoleOwner))
	elsewhere, _ := env.Client.CreateTaskWithResponse(bg, proj2.JSON201.Id, &api.CreateTaskParams{IdempotencyKey: &key}, api.TaskCreate{Title: "once"}, w.as(api.UserRoleMember))
	if elsewhere.StatusCode() == http.StatusCreated && elsewhere.JSON201.ProjectId != proj2.JSON201.Id {
		t.Fatalf("a key used on project A replayed A's task for project B: %s", elsewhere.Body)
	}
	wantStatus(t, "same key and body, other project", elsewhere.StatusCode(), elsewhere.Body, http.StatusUnprocessableEntity)
	if n := len(listTasks(t, env, w, api.ListTasksParams{})); n != 1 {
		t.Fatalf("%d tasks after three sends with one key; want 1", n)
	}
	// The key belongs to its user: another user's identical request creates its own task.
	mine, _ := env.Client.CreateTaskWithResponse(bg, w.project.Id, &api.CreateTaskParams{IdempotencyKey: &key}, api.TaskCreate{Title: "once"}, w.as(api.UserRoleAdmin))
	if mine.JSON201 == nil || mine.JSON201.Id == first.JSON201.Id {
		t.Fatalf("another user's request with the same key: %s", mine.Body)
	}
	// A failed request releases its key.
	failKey := "fail-" + uuid.NewString()
	bad, _ := env.Client.CreateTaskWithResponse(bg, uuid.New(), &api.CreateTaskParams{IdempotencyKey: &failKey}, api.TaskCreate{Title: "x"}, w.as(api.UserRoleOwner))
	wantStatus(t, "create in a missing project", bad.StatusCode(), bad.Body, http.StatusNotFound)
	good, _ := env.Client.CreateTaskWithResponse(bg, w.project.Id, &api.CreateTaskParams{IdempotencyKey: &failKey}, api.TaskCreate{Title: "x"}, w.as(api.UserRoleOwner))
	wantStatus(t, "reuse of a released key", good.StatusCode(), good.Body, http.StatusCreated)
}

func TestConcurrentParentChangesCannotMakeACycle(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	a := createTask(t, env, w, api.TaskCreate{Title: "A"})
	b := createTask(t, env, w, api.TaskCreate{Title: "B"})
	owner := w.as(api.UserRoleOwner)
	for round := range 15 {
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for i, pair := range [][2]api.Task{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := env.Client.UpdateTaskWithResponse(bg, pair[0].Id.String(), nil, api.TaskUpdate{ParentId: nullableValue(pair[1].Id)}, owner)
				if err != nil {
					t.Error(err)
					return
				}
				codes[i] = resp.StatusCode()
			}()
		}
		wg.Wait()
		if codes[0] == http.StatusOK && codes[1] == http.StatusOK {
			t.Fatalf("round %d: both parent changes succeeded: A and B are each other's parent", round)
		}
		if codes[0] != http.StatusOK && codes[1] != http.StatusOK {
			t.Fatalf("round %d: neither parent change succeeded: %v", round, codes)
		}
		for _, x := range []api.Task{a, b} {
			_, _ = env.Client.UpdateTaskWithBodyWithResponse(bg, x.Id.String(), nil, "application/json", strings.NewReader(`{"parent_id":null}`), owner)
		}
	}
}

func TestNewTasksGoLastByDefault(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	createTask(t, env, w, api.TaskCreate{Title: "placed at 10", Position: ptr(10.0)})
	createTask(t, env, w, api.TaskCreate{Title: "placed at 20", Position: ptr(20.0)})
	last := createTask(t, env, w, api.TaskCreate{Title: "default"})
	if last.Position != 21 {
		t.Errorf("default position %v, want 21 (after the last task)", last.Position)
	}
	if got := titles(listTasks(t, env, w, api.ListTasksParams{})); !slices.Equal(got, []string{"placed at 10", "placed at 20", "default"}) {
		t.Errorf("manual order %q", got)
	}
}

// TestDeepParentCycleIsRejected builds a chain deeper than any fixed walk limit and makes its
// root the child of its deepest task: the cycle check must see the whole chain.
func TestDeepParentCycleIsRejected(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.as(api.UserRoleOwner)
	root := createTask(t, env, w, api.TaskCreate{Title: "root"})

	const depth = 1500
	ids := make([]uuid.UUID, depth)
	parents := make([]uuid.UUID, depth)
	numbers := make([]int64, depth)
	prev := root.Id
	for i := range ids {
		ids[i], parents[i], numbers[i] = uuid.Must(uuid.NewV7()), prev, int64(1000+i)
		prev = ids[i]
	}
	err := env.DB.Tx(bg, tenancy.Scope{Tenant: w.Tenant.Id}, func(tx pgx.Tx) error {
		// One statement: foreign keys are checked at its end, so the order of rows does not matter.
		_, err := tx.Exec(bg, `
			INSERT INTO tasks (tenant_id, id, project_id, number, title, parent_id, position, created_by)
			SELECT $1, c.id, $2, c.number, 'link ' || c.number, c.parent_id, c.number, $3
			FROM unnest($4::uuid[], $5::uuid[], $6::bigint[]) AS c(id, parent_id, number)`,
			w.Tenant.Id, w.project.Id, w.Owner.Id, ids, parents, numbers)
		return err
	})
	if err != nil {
		t.Fatalf("insert the chain: %v", err)
	}

	deepest := ids[depth-1]
	resp, err := env.Client.UpdateTaskWithResponse(bg, root.Id.String(), nil, api.TaskUpdate{ParentId: nullableValue(deepest)}, owner)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "root under its deepest descendant", resp.StatusCode(), resp.Body, http.StatusBadRequest)
	var p api.Problem
	if err := json.Unmarshal(resp.Body, &p); err != nil || p.Errors == nil || len(*p.Errors) != 1 || (*p.Errors)[0].Field != "parent_id" {
		t.Errorf("problem %s; want one error naming parent_id", resp.Body)
	}
	got, err := env.Client.GetTaskWithResponse(bg, root.Id.String(), owner)
	if err != nil || got.JSON200 == nil {
		t.Fatalf("get root: %v %s", err, got.Body)
	}
	if !got.JSON200.ParentId.IsNull() || got.JSON200.Version != root.Version {
		t.Errorf("root after the rejected change: parent %v, version %d; want no parent, version %d", got.JSON200.ParentId, got.JSON200.Version, root.Version)
	}

	// The walk ends even on data that already holds a cycle (written past the API).
	x, y := createTask(t, env, w, api.TaskCreate{Title: "X"}), createTask(t, env, w, api.TaskCreate{Title: "Y"})
	err = env.DB.Tx(bg, tenancy.Scope{Tenant: w.Tenant.Id}, func(tx pgx.Tx) error {
		_, err := tx.Exec(bg, `UPDATE tasks SET parent_id = CASE id WHEN $1 THEN $2::uuid ELSE $1::uuid END WHERE id IN ($1, $2)`, x.Id, y.Id)
		return err
	})
	if err != nil {
		t.Fatalf("make a cycle: %v", err)
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	under, err := env.Client.UpdateTaskWithResponse(ctx, root.Id.String(), nil, api.TaskUpdate{ParentId: nullableValue(x.Id)}, owner)
	if err != nil {
		t.Fatalf("parent inside an existing cycle: %v", err)
	}
	wantStatus(t, "root under a task of an existing cycle", under.StatusCode(), under.Body, http.StatusOK)
}

func TestEveryTaskResponseAndItsEventEncodeTheSame(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	parent := createTask(t, env, w, api.TaskCreate{Title: "parent"})
	due := openapi_types.Date{Time: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)}
	created, err := env.Client.CreateTaskWithResponse(bg, w.project.Id, nil, api.TaskCreate{
		Title: "full", Description: ptr("every field set"), Status: ptr(api.TaskStatusInProgress), Priority: ptr(api.Priority(4)),
		Labels: &[]string{"a", "b"}, DueDate: &due, ParentId: &parent.Id, AssigneeId: ptr(w.users[api.UserRoleMember].Id), Position: ptr(2.5),
	}, w.as(api.UserRoleOwner))
	if err != nil || created.JSON201 == nil {
		t.Fatalf("create: %v %s", err, created.Body)
	}
	id := created.JSON201.Id
	got, _ := env.Client.GetTaskWithResponse(bg, id.String(), w.as(api.UserRoleOwner))
	list, _ := env.Client.ListTasksWithResponse(bg, w.project.Id, &api.ListTasksParams{ParentId: &parent.Id}, w.as(api.UserRoleOwner))
	var page struct{ Items []json.RawMessage }
	if err := json.Unmarshal(list.Body, &page); err != nil || len(page.Items) != 1 {
		t.Fatalf("list: %v %s", err, list.Body)
	}
	var event []byte
	err = env.DB.Tx(bg, tenancy.Scope{Tenant: w.Tenant.Id}, func(tx pgx.Tx) error {
		return tx.QueryRow(bg, "SELECT payload FROM events WHERE type = 'task.created' AND resource_id = $1", id).Scan(&event)
	})
	if err != nil {
		t.Fatalf("the create's event: %v", err)
	}
	canonical := func(b []byte) string {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		out, _ := json.Marshal(v)
		return string(out)
	}
	want := canonical(created.Body)
	for what, body := range map[string][]byte{"GET": got.Body, "list item": page.Items[0], "event payload": event} {
		if c := canonical(body); c != want {
			t.Errorf("%s differs from the POST response:\n got %s\nwant %s", what, c, want)
		}
	}
	if got.HTTPResponse.Header.Get("ETag") != `"1"` || created.HTTPResponse.Header.Get("ETag") != `"1"` {
		t.Errorf("ETags: create %q, get %q", created.HTTPResponse.Header.Get("ETag"), got.HTTPResponse.Header.Get("ETag"))
	}
}

func TestIfMatchComparesStrongly(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "strong"})
	owner := w.as(api.UserRoleOwner)
	weak, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), &api.UpdateTaskParams{IfMatch: ptr(`W/"1"`)}, api.TaskUpdate{Title: ptr("weak")}, owner)
	wantStatus(t, `If-Match: W/"1" on version 1`, weak.StatusCode(), weak.Body, http.StatusPreconditionFailed)
	strong, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), &api.UpdateTaskParams{IfMatch: ptr(`"1"`)}, api.TaskUpdate{Title: ptr("strong")}, owner)
	wantStatus(t, `If-Match: "1" on version 1`, strong.StatusCode(), strong.Body, http.StatusOK)
	list, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), &api.UpdateTaskParams{IfMatch: ptr(`"7", "2"`)}, api.TaskUpdate{Title: ptr("listed")}, owner)
	wantStatus(t, `If-Match: "7", "2" on version 2`, list.StatusCode(), list.Body, http.StatusOK)
	for _, tag := range []string{`"03"`, `"+3"`, `""3""`} {
		r, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), &api.UpdateTaskParams{IfMatch: ptr(tag)}, api.TaskUpdate{Title: ptr("spelled")}, owner)
		wantStatus(t, "If-Match: "+tag+" on version 3", r.StatusCode(), r.Body, http.StatusPreconditionFailed)
	}
	del, _ := env.Client.DeleteTaskWithResponse(bg, task.Id.String(), &api.DeleteTaskParams{IfMatch: ptr(`W/"3"`)}, owner)
	wantStatus(t, `DELETE with If-Match: W/"3" on version 3`, del.StatusCode(), del.Body, http.StatusPreconditionFailed)
}

// holdRow locks one row in a transaction of its own until release is called, with the deletion
// of the row (when del is set) committed on release.
func holdRow(t *testing.T, env *apitest.Env, tenant uuid.UUID, lock, del string, id uuid.UUID) (release func()) {
	t.Helper()
	locked, done, finished := make(chan error, 1), make(chan struct{}), make(chan error, 1)
	go func() {
		finished <- env.DB.Tx(bg, tenancy.Scope{Tenant: tenant}, func(tx pgx.Tx) error {
			_, err := tx.Exec(bg, lock, id)
			locked <- err
			if err != nil {
				return err
			}
			<-done
			if del != "" {
				_, err = tx.Exec(bg, del, id)
			}
			return err
		})
	}()
	if err := <-locked; err != nil {
		t.Fatal(err)
	}
	return func() {
		close(done)
		if err := <-finished; err != nil {
			t.Fatal(err)
		}
	}
}

// waitForLockWaiters waits until n backends of the application role wait on a lock.
func waitForLockWaiters(t *testing.T, env *apitest.Env, n int) {
	t.Helper()
	for range 500 {
		var waiting int
		if err := env.Pool.QueryRow(bg, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no request ever waited on the lock")
}

func TestWritesToATaskDeletedMeanwhileAreNotFound(t *testing.T) {
	env := apitest.New(t)
	w := newWorkspace(t, env)
	owner := w.as(api.UserRoleOwner)
	for _, method := range []string{http.MethodPatch, http.MethodDelete} {
		task := createTask(t, env, w, api.TaskCreate{Title: "doomed"})
		release := holdRow(t, env, w.Tenant.Id, "SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", "DELETE FROM tasks WHERE id = $1", task.Id)
		status := make(chan *http.Response, 1)
		go func() {
			var resp *http.Response
			if method == http.MethodPatch {
				r, _ := env.Client.UpdateTaskWithResponse(bg, task.Id.String(), nil, api.TaskUpdate{Title: ptr("late")}, owner)
				resp = r.HTTPResponse
			} else {
				r, _ := env.Client.DeleteTaskWithResponse(bg, task.Id.String(), nil, owner)
				resp = r.HTTPResponse
			}
			status <- resp
		}()
		waitForLockWaiters(t, env, 1) // the write has read the task and waits to change it
		release()
		if resp := <-status; resp == nil {
			t.Errorf("%s of a task deleted while it waited: no response; want 404", method)
		} else if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s of a task deleted while it waited: %s; want 404", method, resp.Status)
		}
	}
}

func TestAForbiddenTaskWriteDoesNotWaitForTheProjectLock(t *testing.T) {
	env := apitest.New(t)
	w := newWorkspace(t, env)
	release := holdRow(t, env, w.Tenant.Id, "SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", "", w.project.Id)
	defer release()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	resp, err := env.Client.CreateTaskWithResponse(ctx, w.project.Id, nil, api.TaskCreate{Title: "nope"}, w.as(api.UserRoleViewer))
	if err != nil {
		t.Fatalf("a viewer's create waited on the project lock: %v", err)
	}
	wantStatus(t, "a viewer creates a task while the project is locked", resp.StatusCode(), resp.Body, http.StatusForbidden)
}

func TestATaskDueOnTheLastDateSortsBeforeUndatedOnes(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	date := func(s string) *openapi_types.Date {
		d, _ := time.Parse(time.DateOnly, s)
		return &openapi_types.Date{Time: d}
	}
	createTask(t, env, w, api.TaskCreate{Title: "undated 1"})
	createTask(t, env, w, api.TaskCreate{Title: "last day", DueDate: date("9999-12-31")})
	createTask(t, env, w, api.TaskCreate{Title: "undated 2"})
	createTask(t, env, w, api.TaskCreate{Title: "first day", DueDate: date("0001-01-01")})
	want := []string{"first day", "last day", "undated 1", "undated 2"}
	sort := api.ListTasksParamsSortDueDate
	if got := titles(listTasks(t, env, w, api.ListTasksParams{Sort: &sort})); !slices.Equal(got, want) {
		t.Errorf("by due date: %v, want %v", got, want)
	}
	// One at a time, through the cursors, including the one after the last dated task.
	var paged []string
	var cur *string
	for range 10 {
		r, _ := env.Client.ListTasksWithResponse(bg, w.project.Id, &api.ListTasksParams{Sort: &sort, Limit: ptr(1), Cursor: cur}, w.as(api.UserRoleOwner))
		if r.JSON200 == nil {
			t.Fatalf("page: %s", r.Body)
		}
		for _, x := range r.JSON200.Items {
			paged = append(paged, x.Title)
		}
		if r.JSON200.NextCursor.IsNull() {
			break
		}
		cur = ptr(r.JSON200.NextCursor.MustGet())
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged by due date: %v, want %v", paged, want)
	}
}
