package handlers_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/files"
)

// rawUpload opens a connection and sends an upload's request head and the start of its file
// part (head bytes of PNG), declaring a much larger body, then leaves it stalled.
func rawUpload(t *testing.T, env *apitest.Env, token string, head int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	part := "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.png\"\r\n\r\n"
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: x\r\n%sContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n%s",
		auth, 50<<20, part)
	if _, err := conn.Write(pngBytes(head)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// answerWithin reads the response on conn, failing unless one (or the connection's end) comes
// within d; it returns the status, or 0 when the server closed without an answer.
func answerWithin(t *testing.T, conn net.Conn, d time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer and no close within %s", d)
		}
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestStalledUploadsAreCutAndLeaveNothing(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Files: handlers.FilesConfig{IdleTimeout: time.Second}})
	w := newWorkspace(t, env)

	// An anonymous upload is refused at once, without waiting for its body.
	start := time.Now()
	if status := answerWithin(t, rawUpload(t, env, "", 100), 3*time.Second); status != http.StatusUnauthorized {
		t.Errorf("anonymous stalled upload: %d, want 401", status)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the 401 took %s", took)
	}

	// A member's upload that stops sending is cut after the idle timeout, not the hour.
	conn := rawUpload(t, env, w.tokens[api.UserRoleMember], 300<<10)
	start = time.Now()
	status := answerWithin(t, conn, 10*time.Second)
	if took := time.Since(start); took < 900*time.Millisecond || took > 6*time.Second {
		t.Errorf("a stalled upload ended after %s (status %d); want about the 1 s idle timeout", took, status)
	}
	if status != 0 && status != http.StatusBadRequest {
		t.Errorf("stalled upload answered %d", status)
	}
	waitFor(t, "the stalled upload's blob to go", func() bool { return len(blobs(t, env)) == 0 && noTempFiles(t, env) })
	if used := storageUsed(t, env, w); used != 0 {
		t.Errorf("a cut upload counts %d bytes", used)
	}
}

func TestATenantsUploadsInProgressAreCapped(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Files: handlers.FilesConfig{MaxUploadsPerTenant: 2}})
	w := newWorkspace(t, env)
	other := newWorkspace(t, env)
	member := w.tokens[api.UserRoleMember]
	stalled := []net.Conn{rawUpload(t, env, member, 1000), rawUpload(t, env, member, 1000)}
	// Both must be in progress before the third comes, or the third could take a place first.
	time.Sleep(time.Second)
	var last *api.UploadFileResponse
	waitFor(t, "a third upload to be refused", func() bool {
		last = upload(t, env, member, nil, "third.png", bytes.NewReader(pngBytes(100)))
		return last.StatusCode() == http.StatusTooManyRequests
	})
	if last.HTTPResponse.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Another tenant is not held up.
	mustUpload(t, env, other.tokens[api.UserRoleMember], nil, "theirs.png", pngBytes(100))
	for _, c := range stalled {
		c.Close()
	}
	waitFor(t, "an upload once the stalled ones are gone", func() bool {
		return upload(t, env, member, nil, "later.png", bytes.NewReader(pngBytes(100))).StatusCode() == http.StatusCreated
	})
}

func TestUploadHeadsAreBounded(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "t"})
	send := func(name string, want int, parts ...formPart) {
		t.Helper()
		ct, body := form(parts...)
		sendUpload(t, env, w.tokens[api.UserRoleMember], name, ct, body, want)
	}
	file := func() formPart { return formPart{name: "file", filename: "a.txt", body: strings.NewReader("words\n")} }
	pad := strings.Repeat("x", 100<<10)
	send("a 100 KiB part header", http.StatusBadRequest, formPart{name: "file", filename: "a.txt", contentType: "text/plain\r\nX-Pad: " + pad, body: strings.NewReader("words\n")})
	send("a 100 KiB part header after the file", http.StatusBadRequest, file(),
		formPart{name: "more", contentType: "text/plain\r\nX-Pad: " + pad, body: strings.NewReader("x")})
	send("task_id twice", http.StatusBadRequest, formPart{name: "task_id", body: strings.NewReader(task.Id.String())},
		formPart{name: "task_id", body: strings.NewReader(task.Id.String())}, file())
	for _, spelling := range []string{"{" + task.Id.String() + "}", "urn:uuid:" + task.Id.String(), strings.ReplaceAll(task.Id.String(), "-", "")} {
		send("task_id as "+spelling, http.StatusBadRequest, formPart{name: "task_id", body: strings.NewReader(spelling)}, file())
	}
	if keys := blobs(t, env); len(keys) != 0 {
		t.Errorf("refused forms left blobs: %v", keys)
	}

	archived := "archived"
	if r, err := env.Client.UpdateProjectWithResponse(bg, w.project.Id, api.ProjectUpdate{Status: (*api.ProjectStatus)(&archived)}, w.as(api.UserRoleOwner)); err != nil || r.JSON200 == nil {
		t.Fatalf("archive: %v %s", err, r.Body)
	}
	r := upload(t, env, w.tokens[api.UserRoleMember], &task.Id, "late.png", bytes.NewReader(pngBytes(100)))
	wantStatus(t, "an attachment in an archived project", r.StatusCode(), r.Body, http.StatusConflict)
}

func TestDownloadRefusalsAreProblems(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	f := mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "d.png", pngBytes(1000))
	get := func(name string, header, value string, want int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/v1/files/"+f.Id.String()+"/content", nil)
		req.Header.Set("Authorization", "Bearer "+w.tokens[api.UserRoleViewer])
		req.Header.Set(header, value)
		resp, err := env.HTTP.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantStatus(t, name, resp.StatusCode, body, want)
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", name)
		}
		return resp
	}
	get("If-Match another", "If-Match", `"nope"`, http.StatusPreconditionFailed)
	get("If-Unmodified-Since the past", "If-Unmodified-Since", "Mon, 02 Jan 2006 15:04:05 GMT", http.StatusPreconditionFailed)
	get("If-Match the ETag", "If-Match", `"`+f.Sha256+`"`, http.StatusOK)
	if r := get("an empty suffix", "Range", "bytes=-0", http.StatusRequestedRangeNotSatisfiable); r.Header.Get("Content-Range") != "bytes */1000" {
		t.Errorf("bytes=-0: Content-Range %q", r.Header.Get("Content-Range"))
	}
	get("an empty suffix spelled -00", "Range", "bytes=-00", http.StatusRequestedRangeNotSatisfiable)
	if r := get("a malformed range", "Range", "bytes=abc", http.StatusRequestedRangeNotSatisfiable); r.Header.Get("Content-Range") != "bytes */1000" {
		t.Errorf("bytes=abc: Content-Range %q", r.Header.Get("Content-Range"))
	}
	get("eleven ranges", "Range", "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20", http.StatusRequestedRangeNotSatisfiable)
	get("ten ranges", "Range", "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18", http.StatusPartialContent)

	// A file whose blob is gone is a server error, not a 200 cut short.
	if err := env.Files.Store.Delete(bg, files.StorageKey(w.Tenant.Id, f.Id)); err != nil {
		t.Fatal(err)
	}
	for _, h := range [][2]string{{"X-None", ""}, {"Range", "bytes=0-99"}, {"Range", "bytes=0-1,5-6"}, {"If-None-Match", `"other"`},
		{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}} {
		r := get("a file without its blob, "+h[0], h[0], h[1], http.StatusInternalServerError)
		if r.Header.Get("Content-Length") == "0" || r.Header.Get("Content-Range") != "" {
			t.Errorf("%s: the error kept the download's headers: %v", h[0], r.Header)
		}
	}
}

// countingHandler counts the bytes an HTTP server sends.
type countingHandler struct {
	next http.Handler
	sent atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.next.ServeHTTP(countingWriter{w, &c.sent}, r)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

func TestRangesReadOnlyWhatTheyNeedFromS3(t *testing.T) {
	t.Parallel()
	s3srv := &countingHandler{}
	store := newS3StoreBehind(t, func(h http.Handler) http.Handler { s3srv.next = h; return s3srv })
	env := apitest.NewWithOptions(t, apitest.Options{Files: handlers.FilesConfig{Store: store}})
	w := newWorkspace(t, env)
	content := pngBytes(10 << 20)
	f := mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "big.png", content)
	for _, c := range []struct {
		rng  string
		most int64
	}{
		{"bytes=0-0", 128 << 10},
		{"bytes=0-0,1000000-1000000,2000000-2000000,3000000-3000000,4000000-4000000,5000000-5000000,6000000-6000000,7000000-7000000,8000000-8000000,9000000-9000000", 10 * 128 << 10},
		{"bytes=-1", 128 << 10},
	} {
		before := s3srv.sent.Load()
		r, err := env.Client.GetFileContentWithResponse(bg, f.Id, &api.GetFileContentParams{Range: &c.rng}, w.as(api.UserRoleViewer))
		if err != nil || r.StatusCode() != http.StatusPartialContent {
			t.Fatalf("%s: %v %d", c.rng, err, r.StatusCode())
		}
		if sent := s3srv.sent.Load() - before; sent > c.most {
			t.Errorf("%s: S3 sent %d bytes for it, want at most %d", c.rng, sent, c.most)
		}
	}
	before := s3srv.sent.Load()
	r, _ := env.Client.GetFileContentWithResponse(bg, f.Id, nil, w.as(api.UserRoleViewer))
	if !bytes.Equal(r.Body, content) {
		t.Fatalf("whole download through windows: %d bytes, not the file", len(r.Body))
	}
	if sent := s3srv.sent.Load() - before; sent > int64(len(content))+64<<10 {
		t.Errorf("the whole file cost S3 %d bytes, want about %d", sent, len(content))
	}
}

func TestDeletingAProjectRemovesItsBlobs(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	task := createTask(t, env, w, api.TaskCreate{Title: "t"})
	mustUpload(t, env, w.tokens[api.UserRoleMember], &task.Id, "a.png", pngBytes(100))
	loose := mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "loose.png", pngBytes(100))
	r, err := env.Client.DeleteProjectWithResponse(bg, w.project.Id, &api.DeleteProjectParams{Force: ptr(true)}, w.as(api.UserRoleOwner))
	if err != nil || r.StatusCode() != http.StatusNoContent {
		t.Fatalf("delete project: %v %d", err, r.StatusCode())
	}
	if left := blobs(t, env); len(left) != 1 || left[0] != files.StorageKey(w.Tenant.Id, loose.Id) {
		t.Errorf("blobs after the project's deletion: %v, want only the loose file's", left)
	}
	if used := storageUsed(t, env, w); used != 100 {
		t.Errorf("used %d, want 100", used)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// noTempFiles reports whether the directory store holds no upload in progress.
func noTempFiles(t *testing.T, env *apitest.Env) bool {
	t.Helper()
	d, ok := env.Files.Store.(*blob.Dir)
	if !ok {
		return true
	}
	n, err := d.RemoveStaleTemp(-time.Hour) // counts (and removes) every temp file
	if err != nil {
		t.Fatal(err)
	}
	return n == 0
}

func TestUploadsRacingDeletionsLeaveNoBlobBehind(t *testing.T) {
	t.Parallel()
	env := apitest.New(t)
	w := newWorkspace(t, env)
	for range 15 {
		task := createTask(t, env, w, api.TaskCreate{Title: "racing"})
		done := make(chan struct{}, 3)
		for range 2 {
			go func() {
				defer func() { done <- struct{}{} }()
				upload(t, env, w.tokens[api.UserRoleMember], &task.Id, "race.png", bytes.NewReader(pngBytes(20000)))
			}()
		}
		go func() {
			defer func() { done <- struct{}{} }()
			if r, err := env.Client.DeleteTaskWithResponse(bg, task.Id.String(), nil, w.as(api.UserRoleMember)); err != nil || r.StatusCode() != http.StatusNoContent {
				t.Errorf("delete task: %v %d", err, r.StatusCode())
			}
		}()
		for range 3 {
			<-done
		}
	}
	for i := range 8 {
		proj, err := env.Client.CreateProjectWithResponse(bg, nil, api.ProjectCreate{TeamId: w.team.Id, Name: "Racing", Key: fmt.Sprintf("RACE%c", 'A'+i)}, w.as(api.UserRoleOwner))
		if err != nil || proj.JSON201 == nil {
			t.Fatalf("project: %v", err)
		}
		task, err := env.Client.CreateTaskWithResponse(bg, proj.JSON201.Id, nil, api.TaskCreate{Title: "racing"}, w.as(api.UserRoleOwner))
		if err != nil || task.JSON201 == nil {
			t.Fatalf("task: %v", err)
		}
		done := make(chan struct{}, 3)
		for range 2 {
			go func() {
				defer func() { done <- struct{}{} }()
				upload(t, env, w.tokens[api.UserRoleMember], &task.JSON201.Id, "race.png", bytes.NewReader(pngBytes(20000)))
			}()
		}
		go func() {
			defer func() { done <- struct{}{} }()
			r, err := env.Client.DeleteProjectWithResponse(bg, proj.JSON201.Id, &api.DeleteProjectParams{Force: ptr(true)}, w.as(api.UserRoleOwner))
			if err != nil || r.StatusCode() != http.StatusNoContent {
				t.Errorf("delete project: %v %d %s", err, r.StatusCode(), r.Body)
			}
		}()
		for range 3 {
			<-done
		}
	}
	// Every blob still on disk has its row: the deletions took the blobs of every upload that
	// committed before them, and refused the ones after.
	rows := int(storageUsed(t, env, w) / 20000)
	if n := len(blobs(t, env)); n != rows {
		t.Errorf("%d blobs on disk, %d files in the database: orphans were left", n, rows)
	}
}
