package handlers_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/files"
)

// fakeClock is a settable clock for signed URLs.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func TestSignedURLDownloadsWithoutATokenUntilItExpires(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	env := apitest.NewWithOptions(t, apitest.Options{Files: handlers.FilesConfig{URLTTL: time.Minute, Now: clock.Now}})
	w, other := newWorkspace(t, env), newWorkspace(t, env)
	content := pngBytes(3000)
	f := mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "signed.png", content)
	theirs := mustUpload(t, env, other.tokens[api.UserRoleMember], nil, "theirs.png", pngBytes(10))

	minted, err := env.Client.GetFileURLWithResponse(bg, f.Id, w.as(api.UserRoleViewer))
	if err != nil || minted.JSON200 == nil {
		t.Fatalf("mint: %v %s", err, minted.Body)
	}
	link := minted.JSON200.Url
	if !strings.HasPrefix(link, env.URL+"/v1/files/"+f.Id.String()+"/download?") || minted.JSON200.ExpiresAt.Sub(clock.Now()) > time.Minute {
		t.Fatalf("URL %s expiring %s; want ours, within a minute", link, minted.JSON200.ExpiresAt)
	}
	// A plain client with no credentials, as an <img> or another service would fetch it.
	get := func(u string) (*http.Response, []byte) {
		t.Helper()
		resp, err := env.HTTP.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get(link)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) || resp.Header.Get("Content-Disposition") == "" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("signed download: %d, %d bytes, headers %v", resp.StatusCode, len(body), resp.Header)
	}

	u, _ := url.Parse(link)
	tamper := func(change func(q url.Values), path string) string {
		q := u.Query()
		change(q)
		c := *u
		if path != "" {
			c.Path = path
		}
		c.RawQuery = q.Encode()
		return c.String()
	}
	sig := u.Query().Get("signature")
	flipped := "A" + sig[1:]
	if sig[0] == 'A' {
		flipped = "B" + sig[1:]
	}
	refused := map[string]string{
		"tampered signature":                  tamper(func(q url.Values) { q.Set("signature", flipped) }, ""),
		"later expiry":                        tamper(func(q url.Values) { q.Set("expires", strconv.FormatInt(clock.Now().Add(time.Hour).Unix(), 10)) }, ""),
		"other tenant":                        tamper(func(q url.Values) { q.Set("tenant", other.Tenant.Id.String()) }, ""),
		"other file, same tenant's signature": tamper(func(q url.Values) {}, "/v1/files/"+theirs.Id.String()+"/download"),
		"other tenant's file with its tenant": tamper(func(q url.Values) { q.Set("tenant", other.Tenant.Id.String()) }, "/v1/files/"+theirs.Id.String()+"/download"),
		"no signature":                        tamper(func(q url.Values) { q.Del("signature") }, ""),
	}
	for name, bad := range refused {
		resp, body := get(bad)
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 404 (or 400 when malformed)", name, resp.StatusCode)
		}
		if bytes.Contains(body, content[:16]) {
			t.Errorf("%s: the content leaked", name)
		}
	}
	// Ranges work through the link too.
	req, _ := http.NewRequest(http.MethodGet, link, nil)
	req.Header.Set("Range", "bytes=10-19")
	rr, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rr.Body)
	rr.Body.Close()
	if rr.StatusCode != http.StatusPartialContent || !bytes.Equal(part, content[10:20]) {
		t.Errorf("ranged signed download: %d, %d bytes", rr.StatusCode, len(part))
	}

	clock.Add(time.Minute + time.Second)
	if resp, _ := get(link); resp.StatusCode != http.StatusNotFound {
		t.Errorf("expired link: %d, want 404", resp.StatusCode)
	}
	// A deleted file's link dies with it.
	fresh, _ := env.Client.GetFileURLWithResponse(bg, f.Id, w.as(api.UserRoleViewer))
	if del, _ := env.Client.DeleteFileWithResponse(bg, f.Id, w.as(api.UserRoleMember)); del.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete: %d %s", del.StatusCode(), del.Body)
	}
	if resp, _ := get(fresh.JSON200.Url); resp.StatusCode != http.StatusNotFound {
		t.Errorf("link of a deleted file: %d, want 404", resp.StatusCode)
	}
}

// S3 URLs are S3's own presigned ones. The in-process S3 server checks neither signatures nor
// expiry (real S3 does), so this checks what we control: the URL names the tenant's key, is
// signed for the TTL, and serves the bytes with our headers.
func TestSignedURLOnS3IsPresignedForTheTenantsKey(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Files: handlers.FilesConfig{Store: newS3Store(t), URLTTL: 2 * time.Minute}})
	w := newWorkspace(t, env)
	content := pngBytes(2048)
	f := mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "s3.png", content)
	minted, err := env.Client.GetFileURLWithResponse(bg, f.Id, w.as(api.UserRoleViewer))
	if err != nil || minted.JSON200 == nil {
		t.Fatalf("mint: %v %s", err, minted.Body)
	}
	u, _ := url.Parse(minted.JSON200.Url)
	q := u.Query()
	if !strings.HasSuffix(u.Path, files.StorageKey(w.Tenant.Id, f.Id)) || q.Get("X-Amz-Expires") != "120" || q.Get("X-Amz-Signature") == "" {
		t.Fatalf("presigned URL %s: want the tenant's key, X-Amz-Expires=120 and a signature", minted.JSON200.Url)
	}
	resp, err := http.Get(minted.JSON200.Url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) || resp.Header.Get("Content-Type") != "image/png" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Errorf("presigned download: %d, %d bytes, headers %v", resp.StatusCode, len(body), resp.Header)
	}
}

func TestFileAccessFollowsTheTasksProject(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "attach here"})
	member, viewer, outside := w.tokens[api.UserRoleMember], w.tokens[api.UserRoleViewer], w.outside

	// Writers: admins anywhere, members in their teams' projects; viewers never.
	wantUpload := func(who, token string, task *uuid.UUID, want int) *api.UploadFileResponse {
		t.Helper()
		r := upload(t, env, token, task, "a.txt", strings.NewReader("attachment\n"))
		wantStatus(t, who+" uploads", r.StatusCode(), r.Body, want)
		return r
	}
	wantUpload("a viewer", viewer, &task.Id, http.StatusForbidden)
	wantUpload("a viewer, no task", viewer, nil, http.StatusForbidden)
	wantUpload("a member outside the team", outside, &task.Id, http.StatusForbidden)
	wantUpload("a task that does not exist", member, ptr(uuid.New()), http.StatusNotFound)
	onTask := wantUpload("a member of the team", member, &task.Id, http.StatusCreated).JSON201
	wantUpload("an admin", w.tokens[api.UserRoleAdmin], &task.Id, http.StatusCreated)
	loose := wantUpload("a member outside the team, no task", outside, nil, http.StatusCreated).JSON201
	if got, ok := onTask.ProjectId.Get(); ok != nil || got != w.project.Id {
		t.Errorf("project_id %v, want the task's project %v", got, w.project.Id)
	}
	if !loose.TaskId.IsNull() || !loose.ProjectId.IsNull() {
		t.Errorf("a file without a task has task %v project %v", loose.TaskId, loose.ProjectId)
	}

	// Readers: everyone in the tenant, viewers included, as for tasks.
	for who, token := range map[string]string{"viewer": viewer, "outsider": outside} {
		if r, _ := env.Client.GetFileContentWithResponse(bg, onTask.Id, nil, apitest.Bearer(token)); r.StatusCode() != http.StatusOK {
			t.Errorf("%s reads a task's file: %d", who, r.StatusCode())
		}
	}
	if r, _ := env.Client.GetFileWithResponse(bg, onTask.Id, nil...); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", r.StatusCode())
	}
	if r, _ := env.Client.GetFileContentWithResponse(bg, onTask.Id, nil, apitest.Bearer("not-a-token")); r.StatusCode() != http.StatusUnauthorized {
		t.Errorf("a bad token: %d, want 401", r.StatusCode())
	}

	// Deleters: writers of the project; for a file without a task, its uploader and admins.
	del := func(who, token string, id uuid.UUID, want int) {
		t.Helper()
		r, err := env.Client.DeleteFileWithResponse(bg, id, apitest.Bearer(token))
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, who+" deletes", r.StatusCode(), r.Body, want)
	}
	del("a viewer", viewer, onTask.Id, http.StatusForbidden)
	del("a member outside the team", outside, onTask.Id, http.StatusForbidden)
	del("another member, a file without a task", member, loose.Id, http.StatusForbidden)
	del("the uploader, a file without a task", outside, loose.Id, http.StatusNoContent)
	del("a member of the team", member, onTask.Id, http.StatusNoContent)
	del("anyone, again", member, onTask.Id, http.StatusNotFound)

	// The audit log names both kinds of change.
	audit, err := env.Client.ListAuditEventsWithResponse(bg, &api.ListAuditEventsParams{ResourceType: ptr("file")}, w.as(api.UserRoleOwner))
	if err != nil || audit.JSON200 == nil {
		t.Fatalf("audit: %v", err)
	}
	actions := map[string]int{}
	for _, e := range audit.JSON200.Items {
		actions[e.Action]++
	}
	if actions["file.create"] != 3 || actions["file.delete"] != 2 {
		t.Errorf("audit actions %v; want 3 file.create and 2 file.delete", actions)
	}
}

func TestUploadFormsThatAreNotOursAreRefused(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "t"})
	send := func(name, ct string, body io.Reader, want int) {
		t.Helper()
		sendUpload(t, env, w.tokens[api.UserRoleMember], name, ct, body, want)
	}
	file := func() formPart {
		return formPart{name: "file", filename: "a.txt", body: strings.NewReader("words\n")}
	}
	ct, body := form(formPart{name: "task_id", body: strings.NewReader(task.Id.String())})
	send("no file part", ct, body, http.StatusBadRequest)
	ct, body = form(formPart{name: "task_id", body: strings.NewReader("ENG-1")}, file())
	send("a task_id that is no UUID", ct, body, http.StatusBadRequest)
	ct, body = form(formPart{name: "colour", body: strings.NewReader("red")}, file())
	send("an unknown field", ct, body, http.StatusBadRequest)
	ct, body = form(file(), formPart{name: "task_id", body: strings.NewReader(task.Id.String())})
	send("task_id after the file", ct, body, http.StatusBadRequest)
	send("JSON", "application/json", strings.NewReader(`{"file":"x"}`), http.StatusUnsupportedMediaType)
	send("multipart without a boundary", "multipart/form-data", strings.NewReader("x"), http.StatusUnsupportedMediaType)
	send("a truncated form", "multipart/form-data; boundary=XYZ", strings.NewReader("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello"), http.StatusBadRequest)
	if keys := blobs(t, env); len(keys) != 0 {
		t.Errorf("refused forms left blobs: %v", keys)
	}
	if used := storageUsed(t, env, w); used != 0 {
		t.Errorf("refused forms count %d bytes", used)
	}
	// An empty file is a file (empty text, by the sniffing rules).
	empty := mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "empty.txt", nil)
	if empty.Size != 0 || empty.Sha256 != sha256Hex(nil) {
		t.Errorf("empty file stored as %+v", empty)
	}
}
