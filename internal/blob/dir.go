package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

var _ Store = (*Dir)(nil)

// tmpName is the directory under root that holds uploads in progress. It is
// reserved: no key may start with it, and List skips it.
const tmpName = ".tmp"

// copyBufSize is the one buffer Put copies through, so a Put costs the same
// memory whatever the size of the body.
const copyBufSize = 128 << 10

// writebackChunk is how much a Put writes before it asks the kernel to start writing it out.
const writebackChunk = 8 << 20

// Dir is a Store that keeps each blob as a file under a root directory, at the
// key's path. It has no URLs of its own: PresignGet answers ok=false and the
// server streams downloads itself.
type Dir struct {
	root string
	tmp  string
}

// NewDir returns a Dir rooted at root, creating root (and root/.tmp) with mode
// 0o750 when missing. root/.tmp must stay on root's filesystem, because Put
// moves finished uploads into place with a rename.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("blob: empty root directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob: root: %w", err)
	}
	d := &Dir{root: abs, tmp: filepath.Join(abs, tmpName)}
	if err := os.MkdirAll(d.tmp, 0o750); err != nil {
		return nil, fmt.Errorf("blob: create root: %w", err)
	}
	return d, nil
}

// Root returns the absolute directory that holds the blobs.
func (d *Dir) Root() string { return d.root }

// path maps a valid key to its file under root.
func (d *Dir) path(key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", err
	}
	if key == tmpName || strings.HasPrefix(key, tmpName+"/") {
		return "", fmt.Errorf("%w: %q is reserved", ErrInvalidKey, tmpName)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put writes r to a temp file in root/.tmp, fsyncs it, renames it to key's path
// and fsyncs the directory, so that a crash leaves either the old blob or the
// new one under key, never a half-written file. On failure the temp file is
// removed and any previous blob under key is untouched. Cancelling ctx takes
// effect between reads of r.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (n int64, err error) {
	path, err := d.path(key)
	if err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(d.tmp, "put-*")
	if err != nil {
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	// Our own loop rather than io.CopyBuffer: that would hand r to
	// f.ReadFrom, which skips the fixed buffer and the ctx checks.
	buf := make([]byte, copyBufSize)
	cr := &ctxReader{ctx: ctx, r: r}
	// Readers such as a multipart part hand out a few KiB per Read: fill the buffer first, so
	// the file is written in large chunks rather than one syscall per small read.
	var written, flushed int64
	for {
		nr, rerr := Fill(cr, buf)
		if _, werr := f.Write(buf[:nr]); werr != nil {
			return 0, fmt.Errorf("blob: put %q: %w", key, werr)
		}
		written += int64(nr)
		if written-flushed >= writebackChunk {
			// Start the disk writing what has arrived so far, so the fsync at the end waits
			// for the last chunk rather than the whole file.
			startWriteback(f, flushed, written-flushed)
			flushed = written
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, fmt.Errorf("blob: put %q: %w", key, rerr)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	segs := strings.Split(key, "/")
	if err := d.mkdirs(segs[:len(segs)-1]); err != nil {
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		// The blob is in place but may not survive a crash: take it back
		// out rather than report a failure and leave it there.
		os.Remove(path)
		return 0, fmt.Errorf("blob: put %q: %w", key, err)
	}
	return cr.n, nil
}

// mkdirs creates the directories segs under root, fsyncing the parent of each
// one it creates so that a new directory survives a crash with its blob.
func (d *Dir) mkdirs(segs []string) error {
	dir := d.root
	for _, seg := range segs {
		next := filepath.Join(dir, seg)
		switch err := os.Mkdir(next, 0o750); {
		case err == nil:
			if err := syncDir(dir); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrExist):
			return err
		}
		dir = next
	}
	return nil
}

// syncDir fsyncs a directory, which makes renames and new entries in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// isNotExist also counts ENOTDIR (a path through a file) as missing: with keys
// "a" and "a/b" only one can exist, and the other is simply not there.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Open opens key's file and seeks to offset. An offset at or past the end
// yields an empty stream.
func (d *Dir) Open(_ context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkOffset(offset); err != nil {
		return nil, err
	}
	path, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if isNotExist(err) {
		return nil, fmt.Errorf("blob: open %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open %q: %w", key, err)
	}
	// A directory is where other keys live, not a blob.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("blob: open %q: %w", key, err)
		}
		return nil, fmt.Errorf("blob: open %q: %w", key, ErrNotFound)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("blob: open %q: %w", key, err)
		}
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

// Delete removes key's file. Directories left empty stay: removing them would
// race with a Put creating a blob in them, and they cost nothing.
func (d *Dir) Delete(_ context.Context, key string) error {
	path, err := d.path(key)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(path); isNotExist(err) || err == nil && fi.IsDir() {
		return nil
	}
	if err := os.Remove(path); err != nil && !isNotExist(err) {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	return nil
}

// List walks the directory named by prefix up to its last "/" (so that one
// tenant's listing never reads another's files), in lexical order, skipping
// root/.tmp. Blobs deleted during the walk are skipped.
func (d *Dir) List(ctx context.Context, prefix string, fn func(Info) error) error {
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if validateKey(prefix[:i]) != nil {
			return nil // no valid key starts with this prefix
		}
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	return filepath.WalkDir(start, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			if path == d.tmp {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := e.Info()
		if isNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(Info{Key: key, Size: fi.Size(), Modified: fi.ModTime()})
	})
}

// PresignGet answers ok=false: a directory has no URLs of its own.
func (d *Dir) PresignGet(context.Context, string, time.Duration, string, string) (string, bool, error) {
	return "", false, nil
}

// RemoveStaleTemp removes files in root/.tmp last written more than olderThan
// ago: a crash or kill in the middle of Put leaves them behind. An upload in
// progress rewrites its temp file with every read, so olderThan only needs to
// exceed the longest stall of a client's upload. It returns how many files it
// removed.
func (d *Dir) RemoveStaleTemp(olderThan time.Duration) (int, error) {
	entries, err := os.ReadDir(d.tmp)
	if err != nil {
		return 0, fmt.Errorf("blob: remove stale temp: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	var errs []error
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
			continue // gone already, or not ours to judge
		}
		if err := os.Remove(filepath.Join(d.tmp, e.Name())); err != nil {
			if !isNotExist(err) {
				errs = append(errs, err)
			}
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("blob: remove stale temp: %w", err)
	}
	return removed, nil
}

// Fill reads into buf until it is full or r fails; unlike io.ReadFull it passes r's errors on
// unchanged, so a reader's own io.ErrUnexpectedEOF (a truncated upload) is never taken for the
// end of the data.
func Fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
