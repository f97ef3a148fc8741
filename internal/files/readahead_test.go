package files

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadAheadPassesBytesAndErrorsThrough(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3<<20+123)
	_, _ = rand.Read(data)
	ra := newReadAhead(iotest.HalfReader(bytes.NewReader(data)), 3, 64<<10)
	got, err := io.ReadAll(ra)
	ra.stop(nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (%v), want the %d sent", len(got), err, len(data))
	}

	// A truncated upload's error is not the end of the data.
	ra = newReadAhead(io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(io.ErrUnexpectedEOF)), 2, 4096)
	got, err = io.ReadAll(ra)
	ra.stop(nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != 1000 {
		t.Fatalf("truncated source: %d bytes, %v; want 1000 and io.ErrUnexpectedEOF", len(got), err)
	}
}

// blockingReader blocks in Read until unblocked, like a socket whose client went quiet.
type blockingReader struct{ entered, unblock chan struct{} }

func (b blockingReader) Read(p []byte) (int, error) {
	close(b.entered)
	<-b.unblock
	return 0, errors.New("read deadline passed")
}

func TestReadAheadStopInterruptsABlockedRead(t *testing.T) {
	t.Parallel()
	src := blockingReader{entered: make(chan struct{}), unblock: make(chan struct{})}
	ra := newReadAhead(src, 2, 4096)
	<-src.entered
	interrupted := false
	stopped := make(chan struct{})
	go func() {
		ra.stop(func() { interrupted = true; close(src.unblock) })
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return")
	}
	if !interrupted {
		t.Fatal("stop returned without interrupting the blocked read")
	}
	select {
	case <-ra.done:
	default:
		t.Fatal("the read-ahead goroutine still runs after stop")
	}
}
