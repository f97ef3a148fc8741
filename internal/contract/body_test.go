package contract_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tasker/tasker/internal/contract"
)

// limitsSpec has an operation with a small body limit, one with the default limit and one that
// takes no body.
const limitsSpec = `
openapi: 3.0.3
info: {title: limits, version: "1"}
paths:
  /small:
    post:
      operationId: small
      x-max-body-bytes: 64
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object}
      responses:
        "204": {description: done}
  /big:
    post:
      operationId: big
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object}
      responses:
        "204": {description: done}
  /thing:
    get:
      operationId: getThing
      responses:
        "204": {description: done}
    delete:
      operationId: deleteThing
      responses:
        "204": {description: done}
`

// countingBody counts the bytes the server side pulls from a request body.
type countingBody struct {
	r    io.Reader
	read int
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func (c *countingBody) Close() error { return nil }

// served is what became of one request through the validator.
type served struct {
	status  int
	fields  []string // the problem's errors, as in:field
	read    int      // body bytes read
	reached []byte   // the body the handler got; nil when it did not run
	closed  bool     // the response closes the connection
}

// serve runs one request through the validator with a 1 KiB global limit. contentLength -1 is
// a chunked body of unknown length.
func serve(t *testing.T, spec *contract.Spec, method, path, body string, contentLength int64) served {
	t.Helper()
	cb := &countingBody{r: strings.NewReader(body)}
	r := httptest.NewRequest(method, path, nil)
	r.Body, r.ContentLength = cb, contentLength
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	var out served
	spec.RequestValidator(contract.ValidatorOptions{MaxBodyBytes: 1024})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held, ok := contract.Body(r.Context())
		if !ok {
			t.Errorf("%s %s: the handler has no body from the validator", method, path)
		}
		again, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(again, held) {
			t.Errorf("%s %s: r.Body gives %q (%v), the validator holds %q", method, path, again, err, held)
		}
		out.reached = append([]byte{}, held...)
		w.WriteHeader(http.StatusNoContent)
	})).ServeHTTP(w, r)
	out.status, out.read, out.closed = w.Code, cb.read, w.Header().Get("Connection") == "close"
	if w.Code >= 400 {
		var p struct{ Errors []struct{ Field, In string } }
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s %s: %d is not a problem document: %s", method, path, w.Code, w.Body)
		}
		for _, f := range p.Errors {
			out.fields = append(out.fields, f.In+":"+f.Field)
		}
	}
	// A refused body closes the connection, so the server does not read the rest of it either.
	if refused := w.Code == http.StatusBadRequest || w.Code == http.StatusRequestEntityTooLarge; out.closed != refused {
		t.Errorf("%s %s: %d with Connection: close %v; want it exactly when the body is refused", method, path, w.Code, out.closed)
	}
	return out
}

func TestBodyLimitIsTheOperations(t *testing.T) {
	t.Parallel()
	spec, err := contract.LoadBytes(context.Background(), []byte(limitsSpec))
	if err != nil {
		t.Fatal(err)
	}
	obj := func(n int) string { return `{"a":"` + strings.Repeat("x", n-8) + `"}` }
	cases := []struct {
		name, method, path, body string
		contentLength            int64
		status                   int
		maxRead                  int
	}{
		{"at the operation's limit", "POST", "/small", obj(64), 64, 204, 64},
		{"over the operation's limit, chunked", "POST", "/small", obj(4096), -1, 413, 65},
		{"over the operation's limit, declared", "POST", "/small", obj(4096), 4096, 413, 0},
		{"the same body on an operation with the default limit", "POST", "/big", obj(1000), -1, 204, 1000},
		{"over the default limit, chunked", "POST", "/big", obj(4096), -1, 413, 1025},
	}
	for _, c := range cases {
		got := serve(t, spec, c.method, c.path, c.body, c.contentLength)
		if got.status != c.status || got.read > c.maxRead {
			t.Errorf("%s: status %d after reading %d bytes; want %d after at most %d", c.name, got.status, got.read, c.status, c.maxRead)
		}
		if got.status == http.StatusNoContent && string(got.reached) != c.body {
			t.Errorf("%s: the handler got %d bytes, want the body's %d", c.name, len(got.reached), len(c.body))
		}
	}
}

func TestBodyOnAnOperationWithoutOneIsRefusedUnread(t *testing.T) {
	t.Parallel()
	spec, err := contract.LoadBytes(context.Background(), []byte(limitsSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET", "HEAD", "DELETE"} {
		for _, cl := range []int64{2, -1} {
			got := serve(t, spec, method, "/thing", "{}", cl)
			if got.status != http.StatusBadRequest || got.read != 0 || len(got.fields) != 1 || got.fields[0] != "body:body" || got.reached != nil {
				t.Errorf("%s with a body (Content-Length %d): %d %v after reading %d bytes; want 400 naming the body, nothing read", method, cl, got.status, got.fields, got.read)
			}
		}
		// Without a body the operation runs, and its handler sees an empty one.
		if got := serve(t, spec, method, "/thing", "", 0); got.status != http.StatusNoContent || got.reached == nil || len(got.reached) != 0 {
			t.Errorf("%s without a body: %d, handler got %q", method, got.status, got.reached)
		}
	}
}

func TestLoadRefusesMalformedBodyLimits(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{`"big"`, "0", "-1", "1.5", "true"} {
		doc := strings.Replace(limitsSpec, "x-max-body-bytes: 64", "x-max-body-bytes: "+bad, 1)
		if _, err := contract.LoadBytes(context.Background(), []byte(doc)); err == nil {
			t.Errorf("x-max-body-bytes: %s loaded", bad)
		}
	}
	// A limit on an operation that takes no body is a mistake in the document too.
	doc := strings.Replace(limitsSpec, "operationId: getThing", "operationId: getThing\n      x-max-body-bytes: 64", 1)
	if _, err := contract.LoadBytes(context.Background(), []byte(doc)); err == nil {
		t.Error("x-max-body-bytes on an operation without a requestBody loaded")
	}
}

func TestEveryOperationOfTheAPIHasABodyLimit(t *testing.T) {
	t.Parallel()
	spec := load(t)
	for path, item := range spec.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			limit := spec.BodyLimit(op, 1<<20)
			switch {
			case op.RequestBody == nil && limit != 0:
				t.Errorf("%s %s takes no body but allows %d bytes", method, path, limit)
			case op.RequestBody != nil && (limit <= 0 || limit > 1<<20):
				t.Errorf("%s %s: body limit %d, want 1..%d", method, path, limit, 1<<20)
			}
		}
	}
	login := spec.Doc.Paths.Value("/v1/auth/login").Post
	if got := spec.BodyLimit(login, 1<<20); got != 8<<10 {
		t.Errorf("login's body limit is %d, want 8 KiB", got)
	}
	if got := spec.BodyLimit(login, 256); got != 256 {
		t.Errorf("login's body limit under a global 256 is %d: the global limit must cap it", got)
	}
}
