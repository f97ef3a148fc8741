package files

import (
	"io"
	"time"

	"github.com/tasker/tasker/internal/blob"
)

// readAhead reads its source on a goroutine of its own into a few large buffers, so that
// receiving an upload (the socket, the multipart parsing) runs on one core while the buffer
// before is hashed and written to the store on another.
type readAhead struct {
	full chan []byte
	free chan []byte
	quit chan struct{}
	done chan struct{}
	// srcErr is the source's final error (io.EOF at the end); set before full is closed.
	srcErr error
	buf    []byte // the buffer being handed out, returned to free once empty
	rest   []byte
}

func newReadAhead(src io.Reader, buffers, size int) *readAhead {
	ra := &readAhead{
		full: make(chan []byte, buffers), free: make(chan []byte, buffers),
		quit: make(chan struct{}), done: make(chan struct{}),
	}
	for range buffers {
		ra.free <- make([]byte, size)
	}
	go ra.run(src)
	return ra
}

func (ra *readAhead) run(src io.Reader) {
	defer close(ra.done)
	defer close(ra.full)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.quit:
			return
		}
		n, err := blob.Fill(src, buf[:cap(buf)])
		if n > 0 {
			select {
			case ra.full <- buf[:n]:
			case <-ra.quit:
				return
			}
		}
		if err != nil {
			ra.srcErr = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.rest) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf // never blocks: free holds every buffer
			ra.buf = nil
		}
		buf, ok := <-ra.full
		if !ok {
			return 0, ra.srcErr
		}
		ra.buf, ra.rest = buf, buf
	}
	n := copy(p, ra.rest)
	ra.rest = ra.rest[n:]
	return n, nil
}

// stopGrace is how long stop lets a read in progress finish on its own. A client still sending
// ends it within microseconds; only a stalled one is interrupted.
const stopGrace = 2 * time.Second

// stop ends the read-ahead and waits for its goroutine, which after that never touches the
// source again. A read in progress is left to finish for stopGrace, which keeps the connection
// usable for the server's graceful close (so the client reads the answer, not a reset); after
// that interrupt (if not nil) must make it return, by a deadline on the connection.
func (ra *readAhead) stop(interrupt func()) {
	close(ra.quit)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-ra.done:
		return
	case <-t.C:
	}
	if interrupt != nil {
		interrupt()
	}
	<-ra.done
}
