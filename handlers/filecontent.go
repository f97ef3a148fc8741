package handlers

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

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
	s   *Server
	ctx context.Context
	r   *http.Request
	f   db.File
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
	if err := checkRanges(c.r.Header.Get("Range")); err != nil {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(c.f.Size, 10))
		return err
	}
	content := &blobReader{ctx: c.ctx, store: c.s.files.Store, key: c.f.StorageKey, size: c.f.Size}
	defer content.Close()
	if strings.Contains(c.r.Header.Get("Range"), ",") && c.f.Size > 0 {
		// Several ranges go out as multipart/byteranges, whose first part header is written
		// before the blob is read: make sure it is there first.
		if err := content.open(); err != nil {
			return err
		}
	}
	dw := &downloadWriter{ResponseWriter: w, r: c.r, size: c.f.Size}
	if conn := connOf(c.ctx); conn != nil {
		limitUnsent(conn, downloadLowWater)
	}
	if c.s.files.TransferTimeout > 0 {
		rc := http.NewResponseController(w)
		dw.deadline = &rollingDeadline{set: rc.SetWriteDeadline, end: time.Now().Add(c.s.files.TransferTimeout), idle: c.s.files.IdleTimeout}
		dw.deadline.extend()
	}
	http.ServeContent(dw, c.r, "", c.f.CreatedAt, content)
	if content.err != nil && !dw.sent {
		// Nothing went out yet (the blob is missing, say): a proper error, not a cut body.
		for _, k := range []string{"Content-Length", "Content-Range", "Content-Disposition", "ETag", "Last-Modified", "Accept-Ranges", "Content-Security-Policy"} {
			h.Del(k)
		}
		return content.err
	}
	if content.err != nil {
		c.s.logger.ErrorContext(c.ctx, "file download cut short", "request_id", reqinfo.RequestID(c.ctx),
			"file", c.f.ID, "error", content.err.Error())
	}
	dw.flushHeader()
	return nil
}

// maxRanges is the most byte ranges one request may ask for: each one costs the store a read.
const maxRanges = 10

// checkRanges refuses with 416 a Range header asking for more than maxRanges ranges or for an
// empty suffix (bytes=-0), which http.ServeContent would answer with an invalid Content-Range.
// Everything else is ServeContent's to judge.
func checkRanges(header string) error {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return nil
	}
	parts := strings.Split(spec, ",")
	if len(parts) > maxRanges {
		return problem.New(problem.RangeNotSatisfiable, "At most %d ranges may be asked for at once.", maxRanges)
	}
	for _, p := range parts {
		suffix, isSuffix := strings.CutPrefix(strings.TrimSpace(p), "-")
		if n, err := strconv.ParseInt(strings.TrimSpace(suffix), 10, 64); isSuffix && err == nil && n == 0 {
			return problem.New(problem.RangeNotSatisfiable, "An empty suffix range (-0) selects nothing.")
		}
	}
	return nil
}

// downloadWriter sits between ServeContent and the connection. It turns ServeContent's
// plain-text refusals (416 for ranges, 412 for If-Match and If-Unmodified-Since) into problem
// documents; it holds the status back until the first byte of the body, so a blob that fails
// to open is still answered with an error; and it keeps the write deadline moving while bytes
// go out.
type downloadWriter struct {
	http.ResponseWriter
	r        *http.Request
	size     int64
	deadline *rollingDeadline
	status   int  // held back until the first Write
	sent     bool // the status has gone out
	blocked  bool // a problem was written instead
}

func (d *downloadWriter) WriteHeader(status int) {
	var pe *problem.Error
	switch status {
	case http.StatusRequestedRangeNotSatisfiable:
		pe = problem.New(problem.RangeNotSatisfiable, "The range is malformed or lies outside the file; see Content-Range for its size.")
		d.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(d.size, 10))
	case http.StatusPreconditionFailed:
		pe = problem.New(problem.PreconditionFailed, "The file does not match If-Match or has changed since If-Unmodified-Since.")
	}
	if pe == nil {
		d.status = status
		return
	}
	d.blocked, d.sent = true, true
	h := d.Header()
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Disposition", "Content-Security-Policy"} {
		h.Del(k)
	}
	problem.Write(d.ResponseWriter, d.r, reqinfo.RequestID(d.r.Context()), pe)
}

// flushHeader sends a status held back by WriteHeader (a 304, an empty file).
func (d *downloadWriter) flushHeader() {
	if !d.sent && d.status != 0 {
		d.sent = true
		d.ResponseWriter.WriteHeader(d.status)
	}
}

func (d *downloadWriter) Write(b []byte) (int, error) {
	if d.blocked {
		return len(b), nil
	}
	if !d.sent {
		d.sent = true
		d.ResponseWriter.WriteHeader(cmp.Or(d.status, http.StatusOK))
	}
	if d.deadline != nil {
		d.deadline.extend()
	}
	return d.ResponseWriter.Write(b)
}

// blobReader is an io.ReadSeeker over a stored blob for ServeContent: seeking only moves the
// offset, and a read opens the store there unless the open stream already is. Each open asks
// for a window that starts at 64 KiB and doubles up to 8 MiB while reads go on in sequence, so a
// one-byte range costs the store a small read, not the rest of the file, and a whole download
// a few dozen.
type blobReader struct {
	ctx    context.Context
	store  blob.Store
	key    string
	size   int64
	off    int64 // where the next read starts
	window int64
	rc     io.ReadCloser
	pos    int64 // where the open stream is
	end    int64 // where the open stream ends
	err    error
}

const (
	firstWindow = 64 << 10
	maxWindow   = 8 << 20
)

func (b *blobReader) open() error {
	b.window = min(max(2*b.window, firstWindow), maxWindow)
	n := min(b.window, b.size-b.off)
	rc, err := b.store.Open(b.ctx, b.key, b.off, n)
	if err != nil {
		b.err = err
		return fmt.Errorf("open blob %s: %w", b.key, err)
	}
	b.rc, b.pos, b.end = rc, b.off, b.off+n
	return nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.rc != nil && b.pos != b.off {
		b.Close()
		b.window = 0 // a jump: start small again
	}
	if b.rc != nil && b.pos >= b.end {
		b.Close()
	}
	if b.rc == nil {
		if err := b.open(); err != nil {
			return 0, err
		}
	}
	n, err := b.rc.Read(p[:min(int64(len(p)), b.end-b.pos)])
	b.off += int64(n)
	b.pos += int64(n)
	if errors.Is(err, io.EOF) && b.pos < b.end {
		err = io.ErrUnexpectedEOF // the blob is shorter than its metadata says
	}
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
		return n, err
	}
	return n, nil
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
	case "GetFileContent", "DownloadSignedFile", "GetFileURL", "UploadFile", "StartSSO":
	default:
		return f
	}
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, req any) (any, error) {
		ctx = context.WithValue(context.WithValue(ctx, rawRequestKey{}, r), rawResponseWriterKey{}, w)
		return f(ctx, w, r, req)
	}
}
