package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tasker/tasker/internal/blob"
)

const (
	mib        = 1 << 20
	s3PartSize = 5 * mib // the smallest S3 allows, to reach multipart with small bodies
	tenantA    = "t/0b7e2c1a-5f3d-4e8b-9a6c-1d2e3f4a5b6c"
	tenantB    = "t/7c6b5a4f-3e2d-1c0b-9a8f-7e6d5c4b3a29"
)

// fixture is one store under test, with what the contract cases need to know
// about it beyond the Store interface.
type fixture struct {
	name  string
	store blob.Store
	// big is a body size that takes the store's long path: multipart for
	// S3 (more than one part), many buffer fills for Dir.
	big int
	// leftovers lists partial uploads the store still holds: temp files
	// for Dir, unfinished multipart uploads for S3.
	leftovers func(t *testing.T) []string
	// multipart counts multipart uploads created and aborted (S3 only), to
	// show that a failing case really took the multipart path.
	multipart *multipartLog
}

// multipartLog counts multipart requests reaching the fake S3 server.
type multipartLog struct{ created, aborted atomic.Int64 }

func (m *multipartLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			m.created.Add(1)
		case r.Method == http.MethodDelete && q.Has("uploadId"):
			m.aborted.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// check fails the test unless a multipart upload was created and every one
// was aborted.
func (m *multipartLog) check(t *testing.T) {
	t.Helper()
	if m == nil {
		return
	}
	if c, a := m.created.Load(), m.aborted.Load(); c == 0 || a != c {
		t.Errorf("%d multipart uploads created, %d aborted; want at least 1, all aborted", c, a)
	}
}

// stores returns a fresh instance of every Store implementation.
func stores(t *testing.T) []fixture {
	t.Helper()
	return []fixture{newDirFixture(t), newS3Fixture(t)}
}

func newDirFixture(t *testing.T) fixture {
	t.Helper()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return fixture{
		name:  "dir",
		store: d,
		big:   6 * mib,
		leftovers: func(t *testing.T) []string {
			return tempFiles(t, d)
		},
	}
}

func tempFiles(t *testing.T, d *blob.Dir) []string {
	t.Helper()
	entries, err := os.ReadDir(d.Root() + "/.tmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func newS3Fixture(t *testing.T) fixture {
	t.Helper()
	mp := &multipartLog{}
	s, _ := newS3(t, mp.wrap)
	return fixture{
		name:      "s3",
		store:     s,
		big:       2*s3PartSize + mib,
		multipart: mp,
		leftovers: func(t *testing.T) []string {
			t.Helper()
			out, err := blob.S3Client(s).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: new("blobs")})
			var api smithy.APIError
			if errors.As(err, &api) && api.ErrorCode() == "NoSuchUpload" {
				// gofakes3 answers so for a bucket that never had a
				// multipart upload.
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, u := range out.Uploads {
				keys = append(keys, *u.Key)
			}
			return keys
		},
	}
}

// newS3 starts an in-memory gofakes3 server, with its handler passed through
// wrap if given, and returns a store on a fresh bucket in it and the server's URL.
func newS3(t *testing.T, wrap ...func(http.Handler) http.Handler) (*blob.S3, string) {
	t.Helper()
	h := gofakes3.New(s3mem.New()).Server()
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s, err := blob.NewS3(t.Context(), blob.S3Config{
		Endpoint:        srv.URL,
		Region:          "us-east-1",
		Bucket:          "blobs",
		AccessKeyID:     "test",
		SecretAccessKey: "test",
		PathStyle:       true,
		PartSize:        s3PartSize,
		HTTPClient:      srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBucket(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, srv.URL
}

func TestStoreContract(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, f fixture)
	}{
		{"RoundTrip5MiB", testRoundTrip5MiB},
		{"EmptyBlob", testEmptyBlob},
		{"RangedReads", testRangedReads},
		{"OpenMissingIsNotFound", testOpenMissing},
		{"FailingReaderLeavesNothing", testFailingReader},
		{"CancelledContextLeavesNothing", testCancelled},
		{"DeleteThenOpenIsNotFound", testDelete},
		{"ListByTenantPrefix", testListByPrefix},
		{"ListStopsOnCallbackError", testListStops},
		{"OverwriteReplacesContent", testOverwrite},
		{"InvalidKeysRefused", testInvalidKeys},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, f := range stores(t) {
				t.Run(f.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, f)
				})
			}
		})
	}
}

func testRoundTrip5MiB(t *testing.T, f fixture) {
	ctx := t.Context()
	data := randomBytes(5*mib, 1)
	key := tenantA + "/a1b2c3d4-0000-4000-8000-000000000001"
	// A reader with no WriteTo or Seek, like a request body.
	n, err := f.store.Put(ctx, key, io.MultiReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Errorf("Put returned %d bytes, want %d", n, len(data))
	}
	got := readAll(t, f.store, key, 0, -1)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Errorf("content differs: got %d bytes, want %d", len(got), len(data))
	}
	wantInfos(t, f.store, "", map[string]int64{key: int64(len(data))})
	if l := f.leftovers(t); len(l) > 0 {
		t.Errorf("leftovers after a successful Put: %v", l)
	}
}

func testEmptyBlob(t *testing.T, f fixture) {
	ctx := t.Context()
	key := tenantA + "/empty"
	n, err := f.store.Put(ctx, key, strings.NewReader(""))
	if err != nil || n != 0 {
		t.Fatalf("Put = %d, %v; want 0, nil", n, err)
	}
	if got := readAll(t, f.store, key, 0, -1); len(got) != 0 {
		t.Errorf("read %d bytes, want 0", len(got))
	}
	wantInfos(t, f.store, tenantA+"/", map[string]int64{key: 0})
}

func testRangedReads(t *testing.T, f fixture) {
	data := randomBytes(64<<10+7, 2)
	key := tenantA + "/ranged"
	put(t, f.store, key, data)
	size := int64(len(data))
	for _, r := range []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"whole", 0, -1, data},
		{"start", 0, 100, data[:100]},
		{"middle", 1000, 5000, data[1000:6000]},
		{"tail to end", size - 10, -1, data[size-10:]},
		{"tail past end", size - 10, 100, data[size-10:]},
		{"length zero", 500, 0, nil},
		{"offset at end", size, -1, nil},
		{"offset at end with length", size, 10, nil},
		{"offset past end", size + 100, -1, nil},
	} {
		got := readAll(t, f.store, key, r.offset, r.length)
		if !bytes.Equal(got, r.want) {
			t.Errorf("%s: Open(%d, %d) gave %d bytes, want %d", r.name, r.offset, r.length, len(got), len(r.want))
		}
	}
	if _, err := f.store.Open(t.Context(), key, -1, 10); err == nil {
		t.Error("Open with a negative offset succeeded")
	}
}

func testOpenMissing(t *testing.T, f fixture) {
	ctx := t.Context()
	put(t, f.store, tenantA+"/dir/x", []byte("x"))
	for _, key := range []string{tenantA + "/missing", tenantA + "/dir", tenantA + "/dir/x/y"} {
		for _, r := range [][2]int64{{0, -1}, {10, 5}} {
			rc, err := f.store.Open(ctx, key, r[0], r[1])
			if !errors.Is(err, blob.ErrNotFound) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("Open(%q, %d, %d) = %v, want ErrNotFound", key, r[0], r[1], err)
			}
		}
	}
}

var errBoom = errors.New("boom")

func testFailingReader(t *testing.T, f fixture) {
	ctx := t.Context()
	key := tenantA + "/fails"
	// Fail after more than one S3 part, so a multipart upload has begun.
	body := io.MultiReader(io.LimitReader(newRandReader(3), int64(f.big)-mib), errReader{errBoom})
	if _, err := f.store.Put(ctx, key, body); !errors.Is(err, errBoom) {
		t.Fatalf("Put = %v, want %v", err, errBoom)
	}
	wantGone(t, f, key)
	f.multipart.check(t)

	// A failed overwrite keeps the previous content.
	old := []byte("previous content")
	key2 := tenantA + "/kept"
	put(t, f.store, key2, old)
	body = io.MultiReader(io.LimitReader(newRandReader(4), int64(f.big)-mib), errReader{errBoom})
	if _, err := f.store.Put(ctx, key2, body); !errors.Is(err, errBoom) {
		t.Fatalf("Put = %v, want %v", err, errBoom)
	}
	if got := readAll(t, f.store, key2, 0, -1); !bytes.Equal(got, old) {
		t.Errorf("after a failed overwrite got %q, want %q", got, old)
	}
	if l := f.leftovers(t); len(l) > 0 {
		t.Errorf("leftovers after failed Puts: %v", l)
	}
}

func testCancelled(t *testing.T, f fixture) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	key := tenantA + "/cancelled-before"
	if _, err := f.store.Put(ctx, key, strings.NewReader("data")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled ctx = %v, want context.Canceled", err)
	}
	wantGone(t, f, key)

	// Cancelled in the middle of the body, after the first S3 part.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	key = tenantA + "/cancelled-during"
	body := &cancelAfter{r: newRandReader(5), n: int64(f.big) - mib, cancel: cancel}
	if _, err := f.store.Put(ctx, key, io.LimitReader(body, int64(f.big))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled midway = %v, want context.Canceled", err)
	}
	wantGone(t, f, key)
	f.multipart.check(t)
}

func testDelete(t *testing.T, f fixture) {
	ctx := t.Context()
	key := tenantA + "/deleted"
	put(t, f.store, key, []byte("bye"))
	if err := f.store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	wantGone(t, f, key)
	if err := f.store.Delete(ctx, key); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	if err := f.store.Delete(ctx, tenantB+"/never-existed"); err != nil {
		t.Errorf("Delete of a missing key = %v, want nil", err)
	}
}

func testListByPrefix(t *testing.T, f fixture) {
	blobs := map[string]int64{
		tenantA + "/f1": 10,
		tenantA + "/f2": 2000,
		tenantB + "/f1": 30,
		// Starts with tenantA but belongs to another tenant.
		tenantA + "0/f1": 40,
	}
	for key, size := range blobs {
		put(t, f.store, key, randomBytes(int(size), 6))
	}
	wantInfos(t, f.store, tenantA+"/", map[string]int64{tenantA + "/f1": 10, tenantA + "/f2": 2000})
	wantInfos(t, f.store, tenantB+"/", map[string]int64{tenantB + "/f1": 30})
	wantInfos(t, f.store, tenantA+"/f", map[string]int64{tenantA + "/f1": 10, tenantA + "/f2": 2000})
	wantInfos(t, f.store, "", blobs)
	wantInfos(t, f.store, "t/nobody/", nil)
	wantInfos(t, f.store, "../", nil)
}

func testListStops(t *testing.T, f fixture) {
	for _, k := range []string{"a", "b", "c"} {
		put(t, f.store, tenantA+"/"+k, []byte(k))
	}
	errStop := errors.New("stop")
	calls := 0
	err := f.store.List(t.Context(), tenantA+"/", func(blob.Info) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("List = %v after %d calls, want %v after 1", err, calls, errStop)
	}
}

func testOverwrite(t *testing.T, f fixture) {
	key := tenantA + "/overwritten"
	put(t, f.store, key, []byte("the first, longer version"))
	put(t, f.store, key, []byte("second"))
	if got := readAll(t, f.store, key, 0, -1); string(got) != "second" {
		t.Errorf("got %q, want %q", got, "second")
	}
	wantInfos(t, f.store, tenantA+"/", map[string]int64{key: 6})
}

// invalidKeys break the key rules that both stores share.
var invalidKeys = []string{
	"", "../x", "/abs", "a//b", "a/./b", "a/../../x", ".", "..", "a/", "a\\b", "a b", "é",
	"x/" + strings.Repeat("k", blob.MaxKeyLen-1),
}

func testInvalidKeys(t *testing.T, f fixture) {
	ctx := t.Context()
	for _, key := range invalidKeys {
		if _, err := f.store.Put(ctx, key, strings.NewReader("x")); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := f.store.Open(ctx, key, 0, -1); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Open(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := f.store.Delete(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	wantInfos(t, f.store, "", nil)
}

// put stores data under key or fails the test.
func put(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	n, err := s.Put(t.Context(), key, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(data)) {
		t.Fatalf("Put(%q) stored %d bytes, want %d", key, n, len(data))
	}
}

func readAll(t *testing.T, s blob.Store, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := s.Open(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

// wantGone checks that key holds nothing, and that no partial upload is left.
func wantGone(t *testing.T, f fixture, key string) {
	t.Helper()
	if rc, err := f.store.Open(t.Context(), key, 0, -1); !errors.Is(err, blob.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open(%q) = %v, want ErrNotFound", key, err)
	}
	err := f.store.List(t.Context(), key, func(i blob.Info) error {
		t.Errorf("List(%q) shows %q (%d bytes)", key, i.Key, i.Size)
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if l := f.leftovers(t); len(l) > 0 {
		t.Errorf("leftovers: %v", l)
	}
}

// wantInfos checks that List(prefix) yields exactly want (key -> size), each
// with a plausible modification time.
func wantInfos(t *testing.T, s blob.Store, prefix string, want map[string]int64) {
	t.Helper()
	got := map[string]int64{}
	err := s.List(t.Context(), prefix, func(i blob.Info) error {
		if _, dup := got[i.Key]; dup {
			t.Errorf("List(%q) yields %q twice", prefix, i.Key)
		}
		got[i.Key] = i.Size
		if d := time.Since(i.Modified); d < -time.Minute || d > time.Minute {
			t.Errorf("List(%q): %q modified %v, not about now", prefix, i.Key, i.Modified)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if len(got) != len(want) {
		t.Errorf("List(%q) = %v, want %v", prefix, got, want)
		return
	}
	for k, size := range want {
		if g, ok := got[k]; !ok || g != size {
			t.Errorf("List(%q) = %v, want %v", prefix, got, want)
			return
		}
	}
}

// randomBytes returns n reproducible random bytes.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	newRandReader(seed).Read(b)
	return b
}

// newRandReader returns an endless, non-seekable stream of random bytes.
func newRandReader(seed byte) io.Reader {
	return rand.NewChaCha8([32]byte{seed})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// cancelAfter calls cancel once n bytes have been read, as a client hanging
// up mid-upload would.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= int64(n); c.n <= 0 {
		c.cancel()
	}
	return n, err
}
