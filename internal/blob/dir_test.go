package blob_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker/tasker/internal/blob"
)

func TestDirInvalidKeysStayInsideRoot(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	parent := t.TempDir()
	outside := filepath.Join(parent, "x")
	if err := os.WriteFile(outside, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := blob.NewDir(filepath.Join(parent, "root"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range append(invalidKeys, ".tmp", ".tmp/x", "abs/../../x") {
		if _, err := d.Put(ctx, key, strings.NewReader("evil")); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if rc, err := d.Open(ctx, key, 0, -1); !errors.Is(err, blob.ErrInvalidKey) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Open(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := d.Delete(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "outside" {
		t.Errorf("file outside root: %q, %v", b, err)
	}
	if got := dirTree(t, parent); strings.Join(got, " ") != "root root/.tmp x" {
		t.Errorf("tree after invalid keys = %v, want only root, root/.tmp and x", got)
	}
}

func TestDirAcceptsLongestKey(t *testing.T) {
	t.Parallel()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Segments stay under the usual 255-byte file name limit.
	key := strings.Repeat("a", 200) + "/" + strings.Repeat("b", 200) + "/" + strings.Repeat("c", blob.MaxKeyLen-402)
	if len(key) != blob.MaxKeyLen {
		t.Fatalf("key is %d bytes", len(key))
	}
	put(t, d, key, []byte("long"))
	if got := readAll(t, d, key, 0, -1); string(got) != "long" {
		t.Errorf("got %q", got)
	}
}

func TestDirPutLeavesNoTempFile(t *testing.T) {
	t.Parallel()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, p := range []struct {
		name string
		ctx  context.Context
		body io.Reader
	}{
		{"success", t.Context(), strings.NewReader("ok")},
		{"reader fails", t.Context(), io.MultiReader(strings.NewReader("part"), errReader{errBoom})},
		{"ctx cancelled", cancelled, strings.NewReader("never")},
	} {
		_, err := d.Put(p.ctx, tenantA+"/f", p.body)
		if (err == nil) != (p.name == "success") {
			t.Errorf("%s: Put = %v", p.name, err)
		}
		if l := tempFiles(t, d); len(l) > 0 {
			t.Errorf("%s: temp files left: %v", p.name, l)
		}
	}
}

func TestDirRemoveStaleTempRemovesOnlyOldTempFiles(t *testing.T) {
	t.Parallel()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-2 * time.Hour)
	write := func(path string, mtime time.Time) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(d.Root(), ".tmp")
	write(filepath.Join(tmp, "put-old"), long)
	write(filepath.Join(tmp, "put-new"), time.Now())
	write(filepath.Join(d.Root(), tenantA, "old-blob"), long)

	n, err := d.RemoveStaleTemp(time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("RemoveStaleTemp = %d, %v; want 1, nil", n, err)
	}
	if got := tempFiles(t, d); len(got) != 1 || got[0] != "put-new" {
		t.Errorf("temp files left = %v, want [put-new]", got)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), tenantA, "old-blob")); err != nil {
		t.Errorf("an old blob was touched: %v", err)
	}
}

func TestDirHasNoPresignedURLs(t *testing.T) {
	t.Parallel()
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	url, ok, err := d.PresignGet(t.Context(), tenantA+"/f", time.Minute, "text/plain", "inline")
	if url != "" || ok || err != nil {
		t.Errorf("PresignGet = %q, %v, %v; want \"\", false, nil", url, ok, err)
	}
}

// TestDirPutStreamsWithBoundedMemory puts 200 MiB and samples the heap
// meanwhile: a Put that buffered the body would grow it by about that much.
// It does not run in parallel, so that other tests don't move the heap.
func TestDirPutStreamsWithBoundedMemory(t *testing.T) {
	const size, limit = 200 * mib, 32 * mib
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	n, err := d.Put(t.Context(), "big", &patternReader{left: size})
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Errorf("Put stored %d bytes, want %d", n, size)
	}
	if fi, err := os.Stat(filepath.Join(d.Root(), "big")); err != nil || fi.Size() != size {
		t.Errorf("stored file: %v, %v", fi, err)
	}
	growth := int64(peak) - int64(base)
	t.Logf("heap in use grew by %d KiB at most", growth>>10)
	if growth > limit {
		t.Errorf("heap in use grew by %d MiB during a %d MiB Put, limit %d MiB", growth/mib, size/mib, limit/mib)
	}
}

// patternReader yields left bytes of a fixed pattern without allocating and
// without a Seek or WriteTo a store could take a shortcut through.
type patternReader struct{ left int64 }

var pattern = func() (b [64 << 10]byte) {
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, pattern[:])
	r.left -= int64(n)
	return n, nil
}

// dirTree lists everything under root, as sorted slash-separated paths.
func dirTree(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root {
			rel, _ := filepath.Rel(root, path)
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}
