package handlers

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/problem"
	"github.com/tasker/tasker/internal/reqinfo"
)

// fileContent answers with a file's bytes through http.ServeContent, which handles Range,
// If-Range and If-None-Match as RFC 9110 says; the blob is opened only at the offsets it reads.
type fileContent struct {
	s *Server
	r *http.Request
	f db.File
}

func (c fileContent) VisitGetFileContentResponse(w http.ResponseWriter) error { return c.serve(w) }

func (c fileContent) VisitDownloadSignedFileResponse(w http.ResponseWriter) error { return c.serve(w) }

func (c fileContent) serve(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("Content-Type", c.f.ContentType)
	h.Set("ETag", `"`+hex.EncodeToString(c.f.Sha256)+`"`)
	h.Set("Content-Disposition", files.ContentDisposition(c.f.Filename))
	h.Set("X-Content-Type-Options", "nosniff")
	// Opened in a tab anyway, the file runs nothing and loads nothing.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "private, no-cache")
	content := &blobReader{ctx: c.r.Context(), store: c.s.files.Store, key: c.f.StorageKey, size: c.f.Size}
	defer content.Close()
	pw := &problemOn416{ResponseWriter: w, s: c.s, r: c.r}
	http.ServeContent(pw, c.r, "", c.f.CreatedAt, content)
	if content.err != nil && !pw.wrote {
		// Nothing was sent yet (the blob is missing): answer properly.
		return content.err
	}
	if content.err != nil {
		c.s.logger.ErrorContext(c.r.Context(), "file download cut short", "request_id", reqinfo.RequestID(c.r.Context()),
			"file", c.f.ID, "error", content.err.Error())
	}
	return nil
}

// problemOn416 turns ServeContent's plain-text 416 into a problem document, keeping its
// Content-Range; everything else passes.
type problemOn416 struct {
	http.ResponseWriter
	s       *Server
	r       *http.Request
	blocked bool
	wrote   bool
}

func (p *problemOn416) WriteHeader(status int) {
	if status == http.StatusRequestedRangeNotSatisfiable {
		p.blocked = true
		h := p.Header()
		h.Del("Content-Type")
		h.Del("Content-Length")
		h.Del("Content-Disposition")
		h.Del("X-Content-Type-Options")
		pe := problem.New(problem.RangeNotSatisfiable, "The range is malformed or lies outside the file; see Content-Range for its size.")
		problem.Write(p.ResponseWriter, p.r, reqinfo.RequestID(p.r.Context()), pe)
		return
	}
	p.wrote = true
	p.ResponseWriter.WriteHeader(status)
}

func (p *problemOn416) Write(b []byte) (int, error) {
	if p.blocked {
		return len(b), nil
	}
	p.wrote = true
	return p.ResponseWriter.Write(b)
}

// blobReader is an io.ReadSeeker over a stored blob for ServeContent: seeking only moves the
// offset, and the first read after it opens the store there.
type blobReader struct {
	ctx   context.Context
	store blob.Store
	key   string
	size  int64
	off   int64
	rc    io.ReadCloser
	err   error
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.rc == nil {
		rc, err := b.store.Open(b.ctx, b.key, b.off, -1)
		if err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				err = problem.Wrap(problem.Internal, err, "")
			}
			b.err = err
			return 0, err
		}
		b.rc = rc
	}
	n, err := b.rc.Read(p)
	b.off += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

func (b *blobReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = b.off + offset
	case io.SeekEnd:
		abs = b.size + offset
	}
	if abs < 0 {
		return 0, errors.New("blob: negative offset")
	}
	if abs != b.off {
		b.Close()
	}
	b.off = abs
	return abs, nil
}

func (b *blobReader) Close() error {
	if b.rc == nil {
		return nil
	}
	err := b.rc.Close()
	b.rc = nil
	return err
}

// rawRequestKey carries the *http.Request to the strict handlers that answer with
// http.ServeContent (Range and conditional headers) or build URLs from the request's host.
type rawRequestKey struct{}

func rawRequest(ctx context.Context) *http.Request {
	r, _ := ctx.Value(rawRequestKey{}).(*http.Request)
	return r
}

type rawResponseWriterKey struct{}

// rawResponseWriter is the upload's ResponseWriter, for its connection's read deadline.
func rawResponseWriter(ctx context.Context) http.ResponseWriter {
	w, _ := ctx.Value(rawResponseWriterKey{}).(http.ResponseWriter)
	return w
}

// withRawRequest is the strict middleware that provides rawRequest and rawResponseWriter.
func withRawRequest(f api.StrictHandlerFunc, operationID string) api.StrictHandlerFunc {
	switch operationID {
	case "GetFileContent", "DownloadSignedFile", "GetFileURL", "UploadFile":
	default:
		return f
	}
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, req any) (any, error) {
		ctx = context.WithValue(context.WithValue(ctx, rawRequestKey{}, r), rawResponseWriterKey{}, w)
		return f(ctx, w, r, req)
	}
}
