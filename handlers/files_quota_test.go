package handlers_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/billing"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/problem"
)

// storagePlan is the test catalog with the free plan's storage set to bytes.
func storagePlan(bytes int64) handlers.BillingConfig {
	c := apitest.TestCatalog()
	l := c.Limits[billing.Free]
	l.StorageBytes = bytes
	c.Limits[billing.Free] = l
	return handlers.BillingConfig{Catalog: c}
}

func TestConcurrentUploadsAtTheStorageLimitNeverOvershoot(t *testing.T) {
	t.Parallel()
	const size, quota = 100_000, 1_050_000 // room for 10 files of size, not 11
	eachStore(t, apitest.Options{Billing: storagePlan(quota)}, func(t *testing.T, env *apitest.Env) {
		w := newWorkspace(t, env)
		// Another tenant's files never count toward this one's quota.
		other := newWorkspace(t, env)
		mustUpload(t, env, other.tokens[api.UserRoleMember], nil, "theirs.png", pngBytes(size*5))

		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			stored  []api.File
			refused int
		)
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := upload(t, env, w.tokens[api.UserRoleMember], nil, "edge.png", bytes.NewReader(pngBytes(size)))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case r.JSON201 != nil:
					stored = append(stored, *r.JSON201)
				case r.StatusCode() == http.StatusPaymentRequired && problemIn(r.Body) != nil &&
					problemIn(r.Body).Type == problem.LimitExceeded.Type() &&
					deref(problemIn(r.Body).Limit) == api.Storage && deref(problemIn(r.Body).Allowed) == quota &&
					deref(problemIn(r.Body).Plan) == api.ProblemPlanFree:
					refused++
				default:
					t.Errorf("upload %d: %d %s", i, r.StatusCode(), r.Body)
				}
			}()
		}
		wg.Wait()
		if len(stored) != 10 || refused != 14 {
			t.Fatalf("%d stored, %d refused; want exactly 10 stored (the quota's room) and 14 refused", len(stored), refused)
		}
		if used := storageUsed(t, env, w); used != 10*size {
			t.Fatalf("storage used %d, want %d", used, 10*size)
		}
		if keys := blobs(t, env); len(keys) != 11 { // 10 of ours, 1 of the other tenant
			t.Errorf("%d blobs, want 11: the refused uploads must leave none", len(keys))
		}

		// Deletes and uploads racing each other keep the count equal to the rows.
		var wg2 sync.WaitGroup
		for i, f := range stored[:6] {
			wg2.Add(2)
			go func() {
				defer wg2.Done()
				if r, _ := env.Client.DeleteFileWithResponse(bg, f.Id, w.as(api.UserRoleMember)); r.StatusCode() != http.StatusNoContent {
					t.Errorf("delete %d: %d", i, r.StatusCode())
				}
			}()
			go func() {
				defer wg2.Done()
				upload(t, env, w.tokens[api.UserRoleMember], nil, "again.png", bytes.NewReader(pngBytes(size)))
			}()
		}
		wg2.Wait()
		used := storageUsed(t, env, w) // fails on any drift between the count and the rows
		if used > quota {
			t.Errorf("storage used %d passed the quota %d", used, quota)
		}
		// The room left is exactly usable.
		if room := quota - used; room > 0 {
			mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "fill.png", pngBytes(int(room)))
		}
		if r := upload(t, env, w.tokens[api.UserRoleMember], nil, "one-too-many.png", bytes.NewReader(pngBytes(1000))); r.StatusCode() != http.StatusPaymentRequired {
			t.Errorf("an upload to a full tenant: %d %s", r.StatusCode(), r.Body)
		}
	})
}

func TestDeletingATaskTakesItsFilesAndTheSweepOrphans(t *testing.T) {
	t.Parallel()
	eachStore(t, apitest.Options{Realtime: true}, func(t *testing.T, env *apitest.Env) {
		w := newWorkspace(t, env)
		task := createTask(t, env, w, api.TaskCreate{Title: "doomed"})
		keep := createTask(t, env, w, api.TaskCreate{Title: "kept"})
		sock := env.MustDial(t, w.tokens[api.UserRoleMember])
		sock.Subscribe("project:"+w.project.Id.String(), nil)

		a := mustUpload(t, env, w.tokens[api.UserRoleMember], &task.Id, "a.png", pngBytes(1000))
		m := expectEvent(t, sock, "file.created", "project:"+w.project.Id.String(), a.Id)
		if m.Data()["sha256"] != a.Sha256 || m.Data()["filename"] != "a.png" {
			t.Errorf("file.created carries %v, want the REST representation", m.Data())
		}
		b := mustUpload(t, env, w.tokens[api.UserRoleMember], &task.Id, "b.png", pngBytes(2000))
		expectEvent(t, sock, "file.created", "project:"+w.project.Id.String(), b.Id)
		kept := mustUpload(t, env, w.tokens[api.UserRoleMember], &keep.Id, "kept.png", pngBytes(500))
		expectEvent(t, sock, "file.created", "project:"+w.project.Id.String(), kept.Id)
		if used := storageUsed(t, env, w); used != 3500 {
			t.Fatalf("used %d, want 3500", used)
		}
		if r, _ := env.Client.DeleteFileWithResponse(bg, kept.Id, w.as(api.UserRoleMember)); r.StatusCode() != http.StatusNoContent {
			t.Fatalf("delete: %d", r.StatusCode())
		}
		gone := expectEvent(t, sock, "file.deleted", "project:"+w.project.Id.String(), kept.Id)
		if gone.Data()["id"] != kept.Id.String() {
			t.Errorf("file.deleted carries %v", gone.Data())
		}
		kept = mustUpload(t, env, w.tokens[api.UserRoleMember], &keep.Id, "kept.png", pngBytes(500))

		if r, _ := env.Client.DeleteTaskWithResponse(bg, task.Id.String(), nil, w.as(api.UserRoleMember)); r.StatusCode() != http.StatusNoContent {
			t.Fatalf("delete task: %d %s", r.StatusCode(), r.Body)
		}
		for _, f := range []api.File{a, b} {
			if r, _ := env.Client.GetFileWithResponse(bg, f.Id, w.as(api.UserRoleMember)); r.StatusCode() != http.StatusNotFound {
				t.Errorf("file of a deleted task: %d, want 404", r.StatusCode())
			}
		}
		if used := storageUsed(t, env, w); used != 500 {
			t.Errorf("used %d after the task's deletion, want 500", used)
		}
		// The deletion freed the disk too, not only the quota.
		if left := blobs(t, env); len(left) != 1 || left[0] != files.StorageKey(w.Tenant.Id, kept.Id) {
			t.Fatalf("blobs after the task's deletion: %v, want only the kept file's", left)
		}

		// A crash between blob and commit leaves a blob without metadata too.
		crashed := files.StorageKey(w.Tenant.Id, uuid.New())
		if _, err := env.Files.Store.Put(bg, crashed, bytes.NewReader([]byte("half an upload"))); err != nil {
			t.Fatal(err)
		}
		var logs apitest.SyncBuffer
		sweep := &files.Sweeper{Store: env.Files.Store, DB: env.DB, Grace: time.Hour, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		if n, err := sweep.Sweep(bg); err != nil || n != 0 {
			t.Fatalf("sweep inside the grace period removed %d (%v), want 0", n, err)
		}
		sweep.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		n, err := sweep.Sweep(bg)
		if err != nil || n != 1 {
			t.Fatalf("sweep removed %d (%v), want the one orphan", n, err)
		}
		left := blobs(t, env)
		if len(left) != 1 || left[0] != files.StorageKey(w.Tenant.Id, kept.Id) {
			t.Errorf("after the sweep: %v, want only %s", left, kept.Id)
		}
		if !strings.Contains(string(logsOf(&logs)), crashed) {
			t.Errorf("the sweep did not log what it removed: %s", logsOf(&logs))
		}
		if r, _ := env.Client.GetFileContentWithResponse(bg, kept.Id, nil, w.as(api.UserRoleViewer)); r.StatusCode() != http.StatusOK || len(r.Body) != 500 {
			t.Errorf("the kept file after the sweep: %d", r.StatusCode())
		}
	})
}

func logsOf(b *apitest.SyncBuffer) []byte {
	var out []byte
	for _, l := range b.Lines() {
		j, _ := json.Marshal(l)
		out = append(append(out, j...), '\n')
	}
	return out
}

func TestTaskFilesArePagedOldestFirst(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "many"})
	other := createTask(t, env, w, api.TaskCreate{Title: "other"})
	var want []uuid.UUID
	for i := range 5 {
		want = append(want, mustUpload(t, env, w.tokens[api.UserRoleMember], &task.Id, "f.txt", []byte{'a' + byte(i)}).Id)
	}
	mustUpload(t, env, w.tokens[api.UserRoleMember], &other.Id, "elsewhere.txt", []byte("x"))
	var got []uuid.UUID
	var cursor *string
	for pages := 0; ; pages++ {
		r, err := env.Client.ListTaskFilesWithResponse(bg, task.Key, &api.ListTaskFilesParams{Limit: ptr(2), Cursor: cursor}, w.as(api.UserRoleViewer))
		if err != nil || r.JSON200 == nil {
			t.Fatalf("page %d: %v %s", pages, err, r.Body)
		}
		for _, f := range r.JSON200.Items {
			got = append(got, f.Id)
		}
		next, err := r.JSON200.NextCursor.Get()
		if err != nil || pages > 5 {
			break
		}
		cursor = &next
	}
	if len(got) != len(want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("listed %v, want %v in upload order", got, want)
		}
	}
	bad := "not-a-cursor"
	if r, _ := env.Client.ListTaskFilesWithResponse(bg, task.Key, &api.ListTaskFilesParams{Cursor: &bad}, w.as(api.UserRoleViewer)); r.StatusCode() != http.StatusBadRequest {
		t.Errorf("a foreign cursor: %d", r.StatusCode())
	}
}
