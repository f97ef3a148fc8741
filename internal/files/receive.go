package files

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/tasker/tasker/internal/blob"
	"github.com/tasker/tasker/internal/problem"
)

// Limits bound one upload.
type Limits struct {
	// MaxBytes is the largest file.
	MaxBytes int64
	// Room is what the tenant may still store, or a negative number for no bound; the exact
	// check is the transaction's, this one only stops a doomed upload early.
	Room int64
	// Full makes the problem answered when Room runs out (the plan's storage limit, 402), given
	// the bytes the tenant's other uploads in progress hold.
	Full func(others int64) error
	// Allowed are the media types accepted (Allowed).
	Allowed []string
	// Upload, when set, is this upload among the tenant's others: the bytes they hold are
	// taken from Room as they arrive.
	Upload *Upload
}

// Received is what was learnt of a file on its way to the store.
type Received struct {
	Size        int64
	SHA256      []byte
	ContentType string
}

// Read-ahead buffers of an upload: four of 256 KiB, a megabyte per upload in flight.
const (
	readAheadBuffers = 4
	readAheadSize    = 256 << 10
)

// Receive streams r into store under key, sniffing its type from the first bytes and hashing
// and counting the rest on the way: memory stays a few buffers whatever the size. A type not
// allowed is refused (415) before anything is stored; passing a limit stops the copy at once
// (413), and the store then keeps nothing.
//
// r is read ahead on a goroutine of its own. Before Receive returns, that goroutine has
// stopped; when it stays blocked reading a stalled client, interrupt must unblock it (a read
// deadline in the past on the connection, which the refusal closes anyway).
func Receive(ctx context.Context, store blob.Store, key string, r io.Reader, l Limits, interrupt func()) (Received, error) {
	ra := newReadAhead(r, readAheadBuffers, readAheadSize)
	defer ra.stop(interrupt)
	br := bufio.NewReaderSize(ra, SniffLen)
	head, err := br.Peek(SniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return Received{}, readProblem(err)
	}
	ct := Sniff(head)
	if !Allowed(ct, l.Allowed) {
		return Received{}, problem.New(problem.UnsupportedMediaType,
			"Files of type %s are not accepted here; the type is read from the content, not the name or the declared type.", ct)
	}
	c := &counter{r: br, h: sha256.New(), limits: l}
	n, err := store.Put(ctx, key, c)
	switch {
	case c.err != nil:
		return Received{}, c.err
	case err != nil:
		if errors.Is(ctx.Err(), context.Canceled) {
			// The connection failed (the client left, or stalled past the idle timeout).
			return Received{}, readProblem(err)
		}
		if ctx.Err() != nil {
			return Received{}, fmt.Errorf("store %s: %w", key, ctx.Err())
		}
		return Received{}, fmt.Errorf("store %s: %w", key, err)
	case n != c.n:
		return Received{}, fmt.Errorf("store %s: stored %d bytes of %d", key, n, c.n)
	}
	return Received{Size: c.n, SHA256: c.h.Sum(nil), ContentType: ct}, nil
}

// counter hashes and counts what passes, and fails the copy as soon as a limit is passed. Its
// own failures are kept in err, so Receive answers with them rather than with the store's
// wrapping of them.
type counter struct {
	r      io.Reader
	h      hash.Hash
	n      int64
	limits Limits
	err    error
}

func (c *counter) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	var others int64
	if c.limits.Upload != nil {
		others = c.limits.Upload.add(int64(n))
	}
	switch {
	case c.n > c.limits.MaxBytes:
		c.err = TooLarge(c.limits.MaxBytes)
	case c.limits.Room >= 0 && c.n+others > c.limits.Room:
		c.err = c.limits.Full(others)
	case err != nil && !errors.Is(err, io.EOF):
		c.err = readProblem(err)
	}
	if c.err != nil {
		return 0, c.err
	}
	return n, err
}

// readProblem is a failure to read the client's body: a 400, since the body is the client's.
func readProblem(err error) error {
	return problem.Wrap(problem.Invalid, err, "The upload could not be read to its end.")
}

// TooLarge is the problem for a file over the size limit.
func TooLarge(max int64) *problem.Error {
	return problem.New(problem.TooLarge, "The file exceeds %s (%d bytes), the largest this server accepts.", HumanBytes(max), max)
}

// HumanBytes writes n in binary units (100 MiB).
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %ciB", int64(v), "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}
