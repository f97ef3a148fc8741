// Package blob holds blob stores: where file contents live. Keys are chosen by
// the server (such as "t/<tenant uuid>/<file uuid>"), never by clients, so a
// store may refuse anything outside a small safe alphabet.
//
// Two stores implement Store: Dir keeps blobs in a local directory, S3 in an
// S3-compatible bucket. Both stream: neither holds a whole body in memory.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by Open when the key holds no blob.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned (wrapped) for a key that breaks the key rules: one
// or more non-empty segments of [A-Za-z0-9._-] separated by "/", no "." or ".."
// segment, at most MaxKeyLen bytes. The same rules hold for every store, so
// moving blobs between stores never meets a key that only one accepts.
var ErrInvalidKey = errors.New("blob: invalid key")

// MaxKeyLen is the longest key a store accepts, in bytes.
const MaxKeyLen = 512

// Info describes one stored blob.
type Info struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Store keeps blobs under server-chosen keys such as "t/<tenant uuid>/<file uuid>".
type Store interface {
	// Put stores everything r yields under key, all or nothing: when r fails, ctx ends, or the
	// store fails, nothing is left under key (and no partial temp/multipart object lingers beyond best effort). It never holds the
	// whole body in memory. It returns the number of bytes stored.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open streams length bytes starting at offset (length < 0 means to the end). ErrNotFound (wrapped ok, errors.Is must work) when key does not exist.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every blob whose key starts with prefix (in any order); fn's error stops the walk and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// PresignGet returns a URL that downloads key without other credentials until ttl has passed, answering
	// with the given Content-Type and Content-Disposition. ok is false when the store has no URLs
	// of its own (the directory store): the caller then mints its own signed URL.
	PresignGet(ctx context.Context, key string, ttl time.Duration, contentType, disposition string) (url string, ok bool, err error)
}

// validateKey reports whether key follows the key rules (see ErrInvalidKey).
// Dir relies on it to keep every path inside its root.
func validateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: length %d", ErrInvalidKey, len(key))
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
		for i := range len(seg) {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w: %q", ErrInvalidKey, key)
			}
		}
	}
	return nil
}

// checkOffset refuses a negative offset, which neither a file nor an HTTP
// range can express.
func checkOffset(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("blob: negative offset %d", offset)
	}
	return nil
}

// emptyBody is what Open returns for a range that holds no bytes.
func emptyBody() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }

// ctxReader fails with ctx's error once ctx has ended, so that a long upload
// stops promptly between reads instead of draining the whole body first.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   int64 // bytes read so far
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
