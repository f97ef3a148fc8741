package handlers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/tenancy"
)

// fileStores are the blob stores every file contract test runs against: the directory store
// (apitest's default) and S3, through an S3-compatible server running in the test process.
var fileStores = []struct {
	name string
	open func(t *testing.T) handlers.FilesConfig
}{
	{"dir", func(t *testing.T) handlers.FilesConfig { return handlers.FilesConfig{} }},
	{"s3", func(t *testing.T) handlers.FilesConfig { return handlers.FilesConfig{Store: newS3Store(t)} }},
}

func newS3Store(t testing.TB) *blob.S3 { return newS3StoreBehind(t, nil) }

// newS3StoreBehind is newS3Store with the S3 server's handler wrapped by wrap (when not nil),
// for tests that watch what S3 is asked.
func newS3StoreBehind(t testing.TB, wrap func(http.Handler) http.Handler) *blob.S3 {
	t.Helper()
	var h http.Handler = gofakes3.New(s3mem.New()).Server()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := blob.NewS3(context.Background(), blob.S3Config{
		Endpoint: srv.URL, Region: "us-east-1", Bucket: "tasker-test", PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test-secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// eachStore runs f as a subtest against a fresh server on each blob store.
func eachStore(t *testing.T, opts apitest.Options, f func(t *testing.T, env *apitest.Env)) {
	for _, s := range fileStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			o := opts
			fc := s.open(t)
			fc.MaxBytes, fc.URLTTL, fc.Now = opts.Files.MaxBytes, opts.Files.URLTTL, opts.Files.Now
			fc.IdleTimeout, fc.MaxUploadsPerTenant = opts.Files.IdleTimeout, opts.Files.MaxUploadsPerTenant
			o.Files = fc
			f(t, apitest.NewWithOptions(t, o))
		})
	}
}

// formPart is one part of an upload form; disposition, when set, replaces the generated
// Content-Disposition header, for filenames the standard writer would escape.
type formPart struct {
	name, filename, disposition, contentType string
	body                                     io.Reader
}

// form streams parts as multipart/form-data, as a browser or curl -F would send them.
func form(parts ...formPart) (string, io.Reader) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, p := range parts {
			h := textproto.MIMEHeader{}
			switch {
			case p.disposition != "":
				h.Set("Content-Disposition", p.disposition)
			case p.filename != "":
				h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.filename))
			default:
				h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, p.name))
			}
			if p.contentType != "" {
				h.Set("Content-Type", p.contentType)
			}
			w, err := mw.CreatePart(h)
			if err == nil {
				_, err = io.Copy(w, p.body)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	return mw.FormDataContentType(), pr
}

// pngBytes is n bytes that sniff as PNG: the signature, then random bytes.
func pngBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// upload sends content as file name, attached to task when not nil.
func upload(t testing.TB, env *apitest.Env, token string, task *uuid.UUID, name string, content io.Reader) *api.UploadFileResponse {
	t.Helper()
	var parts []formPart
	if task != nil {
		parts = append(parts, formPart{name: "task_id", body: strings.NewReader(task.String())})
	}
	parts = append(parts, formPart{name: "file", filename: name, contentType: "application/octet-stream", body: content})
	ct, body := form(parts...)
	resp, err := env.Client.UploadFileWithBodyWithResponse(bg, ct, body, apitest.Bearer(token))
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return resp
}

// sendUpload sends body (of content type ct) to POST /v1/files as token and checks the status.
func sendUpload(t *testing.T, env *apitest.Env, token, name, ct string, body io.Reader, want int) {
	t.Helper()
	r, err := env.Client.UploadFileWithBodyWithResponse(bg, ct, body, apitest.Bearer(token))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, name, r.StatusCode(), r.Body, want)
}

// mustUpload uploads content and fails unless it was stored.
func mustUpload(t testing.TB, env *apitest.Env, token string, task *uuid.UUID, name string, content []byte) api.File {
	t.Helper()
	resp := upload(t, env, token, task, name, bytes.NewReader(content))
	if resp.JSON201 == nil {
		t.Fatalf("upload %s: %d %s", name, resp.StatusCode(), resp.Body)
	}
	return *resp.JSON201
}

// blobs lists the keys in env's store.
func blobs(t *testing.T, env *apitest.Env) []string {
	t.Helper()
	var keys []string
	if err := env.Files.Store.List(bg, "", func(i blob.Info) error { keys = append(keys, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// storageUsed is the tenant's stored bytes as the database counts them, and fails unless that
// count equals the sum of its files' sizes: the count may never drift from the rows.
func storageUsed(t *testing.T, env *apitest.Env, w workspace) int64 {
	t.Helper()
	var used, sum int64
	err := env.DB.Tx(bg, tenancy.Scope{Tenant: w.Tenant.Id}, func(tx pgx.Tx) error {
		return tx.QueryRow(bg, `SELECT coalesce((SELECT bytes FROM storage_usage), 0), coalesce((SELECT sum(size) FROM files), 0)`).Scan(&used, &sum)
	})
	if err != nil {
		t.Fatal(err)
	}
	if used != sum {
		t.Fatalf("storage_usage says %d bytes, the files add up to %d", used, sum)
	}
	return used
}

// signedParams reads the query of a signed download URL of ours.
func signedParams(t *testing.T, link string) api.DownloadSignedFileParams {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	tenant, err := uuid.Parse(q.Get("tenant"))
	if err != nil {
		t.Fatalf("signed URL %s: tenant: %v", link, err)
	}
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		t.Fatalf("signed URL %s: expires: %v", link, err)
	}
	return api.DownloadSignedFileParams{Tenant: tenant, Expires: exp, Signature: q.Get("signature")}
}

// deref is the value p points to, or the zero value for nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
