package handlers_test

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
)

func TestFileRoundTripKeepsBytesHashAndETag(t *testing.T) {
	t.Parallel()
	eachStore(t, apitest.Options{}, func(t *testing.T, env *apitest.Env) {
		w := newWorkspace(t, env)
		task := createTask(t, env, w, api.TaskCreate{Title: "with attachment"})
		content := pngBytes(5 << 20)
		f := mustUpload(t, env, w.tokens[api.UserRoleMember], &task.Id, "shot.png", content)
		if f.Size != int64(len(content)) || f.Sha256 != sha256Hex(content) || f.ContentType != "image/png" || f.Filename != "shot.png" {
			t.Fatalf("stored %+v; want size %d, sha256 %s, image/png", f, len(content), sha256Hex(content))
		}
		if got, _ := f.TaskId.Get(); got != task.Id {
			t.Errorf("task_id %v, want %v", got, task.Id)
		}
		got, err := env.Client.GetFileContentWithResponse(bg, f.Id, nil, w.as(api.UserRoleViewer))
		if err != nil {
			t.Fatal(err)
		}
		if got.StatusCode() != http.StatusOK || !bytes.Equal(got.Body, content) {
			t.Fatalf("download: %d, %d bytes (equal %v)", got.StatusCode(), len(got.Body), bytes.Equal(got.Body, content))
		}
		h := got.HTTPResponse.Header
		if h.Get("ETag") != `"`+sha256Hex(content)+`"` || h.Get("Content-Type") != "image/png" ||
			h.Get("Content-Length") != "5242880" || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Content-Security-Policy") == "" || h.Get("Content-Disposition") != `attachment; filename="shot.png"; filename*=UTF-8''shot.png` {
			t.Errorf("download headers: %v", h)
		}
	})
}

func TestFileOverTheLimitIsRefusedAtOnceAndLeavesNothing(t *testing.T) {
	t.Parallel()
	eachStore(t, apitest.Options{Files: handlers.FilesConfig{MaxBytes: 1 << 20}}, func(t *testing.T, env *apitest.Env) {
		w := newWorkspace(t, env)
		// 1 GiB would take many seconds to send: a 413 in time shows the server stopped at the
		// limit rather than reading it all.
		sent := &countingReader{r: io.MultiReader(bytes.NewReader(pngBytes(512)), io.LimitReader(zeros{}, 1<<30))}
		resp := upload(t, env, w.tokens[api.UserRoleMember], nil, "big.png", sent)
		wantStatus(t, "upload over the limit", resp.StatusCode(), resp.Body, http.StatusRequestEntityTooLarge)
		if n := sent.n.Load(); n > 64<<20 {
			t.Errorf("the client sent %d bytes before the refusal; the server read far past the limit", n)
		}
		if !strings.Contains(string(resp.Body), "1 MiB") {
			t.Errorf("the problem does not name the limit: %s", resp.Body)
		}
		if keys := blobs(t, env); len(keys) != 0 {
			t.Errorf("blobs left after a refused upload: %v", keys)
		}
		if used := storageUsed(t, env, w); used != 0 {
			t.Errorf("storage used %d after a refused upload", used)
		}
		// Exactly at the limit is fine.
		mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "fits.png", pngBytes(1<<20))
	})
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestFileTypeIsSniffedNotTrusted(t *testing.T) {
	t.Parallel()
	eachStore(t, apitest.Options{}, func(t *testing.T, env *apitest.Env) {
		w := newWorkspace(t, env)
		member := w.tokens[api.UserRoleMember]
		cases := []struct {
			name, filename, declared string
			content                  []byte
		}{
			{"HTML declared as PNG", "cat.png", "image/png", []byte("<!DOCTYPE html><html><body><script>alert(document.cookie)</script>")},
			{"ELF executable declared as text", "notes.txt", "text/plain", append([]byte("\x7fELF\x02\x01\x01\x00"), make([]byte, 600)...)},
			{"PE executable declared as PDF", "invoice.pdf", "application/pdf", append([]byte("MZ\x90\x00\x03\x00"), make([]byte, 600)...)},
			{"SVG declared as PNG", "logo.png", "image/png", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`)},
		}
		for _, c := range cases {
			ct, body := form(formPart{name: "file", filename: c.filename, contentType: c.declared, body: bytes.NewReader(c.content)})
			resp, err := env.Client.UploadFileWithBodyWithResponse(bg, ct, body, apitest.Bearer(member))
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, c.name, resp.StatusCode(), resp.Body, http.StatusUnsupportedMediaType)
		}
		if keys := blobs(t, env); len(keys) != 0 {
			t.Errorf("blobs left after refused uploads: %v", keys)
		}
		// A PNG declared as text is stored as what it is.
		f := mustUpload(t, env, member, nil, "really.txt", pngBytes(100))
		if f.ContentType != "image/png" {
			t.Errorf("a PNG declared as octet-stream named .txt stored as %q", f.ContentType)
		}
		txt := mustUpload(t, env, member, nil, "notes.txt", []byte("plain words\n"))
		if txt.ContentType != "text/plain; charset=utf-8" {
			t.Errorf("text stored as %q", txt.ContentType)
		}
	})
}

func TestHostileFilenamesAreStoredAndServedSafely(t *testing.T) {
	t.Parallel()
	eachStore(t, apitest.Options{}, func(t *testing.T, env *apitest.Env) {
		w := newWorkspace(t, env)
		member := w.tokens[api.UserRoleMember]
		long := strings.Repeat("x", 300) + ".txt"
		cases := []struct {
			name, disposition, original, safe string
		}{
			{"path traversal", `form-data; name="file"; filename="../../etc/passwd"`, "../../etc/passwd", "passwd"},
			{"NUL byte", `form-data; name="file"; filename*=UTF-8''evil%00.txt`, "evil\uFFFD.txt", "evil.txt"},
			{"300 characters", `form-data; name="file"; filename="` + long + `"`, long, strings.Repeat("x", 251) + ".txt"},
			{"RTL override", `form-data; name="file"; filename*=UTF-8''invoice%E2%80%AEfdp.exe`, "invoice\u202Efdp.exe", "invoicefdp.exe"},
			{"header injection", `form-data; name="file"; filename*=UTF-8''a%0D%0AX-Evil%3A%201.txt`, "a\r\nX-Evil: 1.txt", "aX-Evil_ 1.txt"},
			{"quotes and backslashes", `form-data; name="file"; filename="a\"b\\c.txt"`, `a"b\c.txt`, "c.txt"},
		}
		for _, c := range cases {
			ct, body := form(formPart{name: "file", disposition: c.disposition, body: strings.NewReader("hello\n")})
			resp, err := env.Client.UploadFileWithBodyWithResponse(bg, ct, body, apitest.Bearer(member))
			if err != nil {
				t.Fatal(err)
			}
			if resp.JSON201 == nil {
				t.Errorf("%s: %d %s", c.name, resp.StatusCode(), resp.Body)
				continue
			}
			f := resp.JSON201
			if f.Filename != c.safe || f.OriginalFilename != c.original {
				t.Errorf("%s: stored filename %q (original %q), want %q (original %q)", c.name, f.Filename, f.OriginalFilename, c.safe, c.original)
			}
			got, err := env.Client.GetFileContentWithResponse(bg, f.Id, nil, apitest.Bearer(member))
			if err != nil {
				t.Fatal(err)
			}
			cd := got.HTTPResponse.Header.Get("Content-Disposition")
			typ, params, err := mime.ParseMediaType(cd)
			if err != nil || typ != "attachment" || params["filename"] != c.safe || strings.ContainsAny(cd, "\r\n\x00") {
				t.Errorf("%s: Content-Disposition %q parses to %s %v (%v); want attachment; filename=%q", c.name, cd, typ, params, err, c.safe)
			}
			if got.HTTPResponse.Header.Get("X-Evil") != "" {
				t.Errorf("%s: a header was injected", c.name)
			}
		}
		for _, k := range blobs(t, env) {
			if !strings.HasPrefix(k, "t/"+w.Tenant.Id.String()+"/") || strings.Contains(k, "..") {
				t.Errorf("blob key %q is not under the tenant's prefix", k)
			}
		}
	})
}

func TestFileRangesFollowRFC9110(t *testing.T) {
	t.Parallel()
	eachStore(t, apitest.Options{}, func(t *testing.T, env *apitest.Env) {
		w := newWorkspace(t, env)
		content := pngBytes(10000)
		f := mustUpload(t, env, w.tokens[api.UserRoleMember], nil, "r.png", content)
		etag := `"` + f.Sha256 + `"`
		get := func(p api.GetFileContentParams) *api.GetFileContentResponse {
			t.Helper()
			r, err := env.Client.GetFileContentWithResponse(bg, f.Id, &p, w.as(api.UserRoleViewer))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		cases := []struct {
			name, rng    string
			status       int
			body         []byte
			contentRange string
		}{
			{"first bytes", "bytes=0-99", 206, content[:100], "bytes 0-99/10000"},
			{"middle", "bytes=5000-5009", 206, content[5000:5010], "bytes 5000-5009/10000"},
			{"suffix", "bytes=-10", 206, content[9990:], "bytes 9990-9999/10000"},
			{"open end", "bytes=9995-", 206, content[9995:], "bytes 9995-9999/10000"},
			{"end past the size is cut", "bytes=9990-20000", 206, content[9990:], "bytes 9990-9999/10000"},
			{"start past the end", "bytes=10000-", 416, nil, "bytes */10000"},
			{"malformed", "bytes=abc", 416, nil, ""},
			{"reversed", "bytes=50-10", 416, nil, ""},
			{"no range", "", 200, content, ""},
		}
		for _, c := range cases {
			p := api.GetFileContentParams{}
			if c.rng != "" {
				p.Range = &c.rng
			}
			r := get(p)
			wantStatus(t, c.name, r.StatusCode(), r.Body, c.status)
			if c.body != nil && !bytes.Equal(r.Body, c.body) {
				t.Errorf("%s: %d bytes, not the range asked for", c.name, len(r.Body))
			}
			if c.contentRange != "" && r.HTTPResponse.Header.Get("Content-Range") != c.contentRange {
				t.Errorf("%s: Content-Range %q, want %q", c.name, r.HTTPResponse.Header.Get("Content-Range"), c.contentRange)
			}
		}
		multi := get(api.GetFileContentParams{Range: ptr("bytes=0-1,10-11")})
		if multi.StatusCode() != 206 || !strings.HasPrefix(multi.HTTPResponse.Header.Get("Content-Type"), "multipart/byteranges") {
			t.Errorf("two ranges: %d %s", multi.StatusCode(), multi.HTTPResponse.Header.Get("Content-Type"))
		}
		stale := get(api.GetFileContentParams{Range: ptr("bytes=0-9"), IfRange: ptr(`"not-the-etag"`)})
		if stale.StatusCode() != 200 || len(stale.Body) != len(content) {
			t.Errorf("If-Range with another ETag: %d, %d bytes; want the whole file", stale.StatusCode(), len(stale.Body))
		}
		fresh := get(api.GetFileContentParams{Range: ptr("bytes=0-9"), IfRange: &etag})
		if fresh.StatusCode() != 206 || !bytes.Equal(fresh.Body, content[:10]) {
			t.Errorf("If-Range with the ETag: %d", fresh.StatusCode())
		}
		cached := get(api.GetFileContentParams{IfNoneMatch: &etag})
		if cached.StatusCode() != http.StatusNotModified || len(cached.Body) != 0 {
			t.Errorf("If-None-Match with the ETag: %d, %d bytes", cached.StatusCode(), len(cached.Body))
		}
	})
}
