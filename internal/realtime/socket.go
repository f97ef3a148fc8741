package realtime

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// netConn is the hijacked connection under one WebSocket. Its writes never block: what the
// kernel takes at once is sent, the rest waits in a backlog that a goroutine of the socket's
// own drains within the write timeout. So the relay writes each event to thousands of sockets
// from a couple of goroutines, one write(2) per socket, and a client that stops reading costs
// only its own backlog (bounded by the send queue, see Conn.writeQueue), never anyone's time.
//
// While corked, writes collect in the corker's buffer and go to the kernel as one write when it
// uncorks: coder/websocket writes a frame's header and payload separately, and a flush of
// several frames should still be one system call.
type netConn struct {
	net.Conn
	raw     syscall.RawConn // nil when the connection has no descriptor: every write is drained
	timeout time.Duration

	mu       sync.Mutex
	corked   bool
	cork     []byte
	backlog  []byte
	draining bool
	drained  *sync.Cond // draining ended
	err      error
}

// errWriteTimeout ends a socket whose backlog did not drain within the write timeout.
var errWriteTimeout = errors.New("realtime: the client took no data within the write timeout")

func newNetConn(c net.Conn, timeout time.Duration) *netConn {
	nc := &netConn{Conn: c, timeout: timeout}
	nc.drained = sync.NewCond(&nc.mu)
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			nc.raw = raw
		}
	}
	return nc
}

// Write queues p behind anything not yet sent and sends what the kernel takes now. It fails
// only once the connection has failed.
func (nc *netConn) Write(p []byte) (int, error) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.err != nil {
		return 0, nc.err
	}
	if nc.corked {
		nc.cork = append(nc.cork, p...)
		return len(p), nil
	}
	nc.sendLocked(p)
	if nc.err != nil {
		return 0, nc.err
	}
	return len(p), nil
}

// corkWith starts collecting writes in buf (reused by the caller across sockets).
func (nc *netConn) corkWith(buf []byte) {
	nc.mu.Lock()
	nc.corked, nc.cork = true, buf[:0]
	nc.mu.Unlock()
}

// uncork sends what was collected; it returns the buffer for reuse, whether some of the data
// is still waiting for the kernel, and the connection's error.
func (nc *netConn) uncork() (buf []byte, behind bool, err error) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	buf = nc.cork
	nc.corked, nc.cork = false, nil
	if nc.err == nil && len(buf) > 0 {
		nc.sendLocked(buf)
	}
	return buf, nc.draining, nc.err
}

// sendLocked writes p at once as far as the kernel takes it, or queues it behind the backlog.
func (nc *netConn) sendLocked(p []byte) {
	if nc.draining || nc.raw == nil {
		nc.backlog = append(nc.backlog, p...)
		nc.startDrainLocked()
		return
	}
	var n int
	var werr error
	err := nc.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
			case e != nil:
				werr = e
			case m > 0:
				continue
			}
			break
		}
		return true // never wait here: the drain does
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		nc.err = err
		return
	}
	if n < len(p) {
		nc.backlog = append(nc.backlog, p[n:]...)
		nc.startDrainLocked()
	}
}

func (nc *netConn) startDrainLocked() {
	if nc.draining {
		return
	}
	nc.draining = true
	go nc.drain()
}

// drain writes the backlog, blocking, until it is empty; a client that takes nothing for the
// write timeout fails the connection, which closes it.
func (nc *netConn) drain() {
	for {
		nc.mu.Lock()
		buf := nc.backlog
		nc.backlog = nil
		if len(buf) == 0 || nc.err != nil {
			nc.draining = false
			nc.drained.Broadcast()
			nc.mu.Unlock()
			return
		}
		nc.mu.Unlock()
		_ = nc.Conn.SetWriteDeadline(time.Now().Add(nc.timeout))
		_, err := nc.Conn.Write(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = errWriteTimeout
			}
			nc.mu.Lock()
			nc.err, nc.draining, nc.backlog = err, false, nil
			nc.drained.Broadcast()
			nc.mu.Unlock()
			_ = nc.Conn.Close()
			return
		}
	}
}

// waitDrained waits until the kernel has taken everything written, or the connection failed
// (false); the drain's write timeout bounds the wait.
func (nc *netConn) waitDrained() bool {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	for nc.draining && nc.err == nil {
		nc.drained.Wait()
	}
	return nc.err == nil
}

// Close closes the connection; what is still in the backlog is dropped.
func (nc *netConn) Close() error {
	nc.mu.Lock()
	if nc.err == nil {
		nc.err = net.ErrClosed
	}
	nc.backlog = nil
	nc.drained.Broadcast()
	nc.mu.Unlock()
	return nc.Conn.Close()
}

// failed is the connection's error, if it has one.
func (nc *netConn) failed() error {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	return nc.err
}

// hijackWriter hands coder/websocket a netConn in place of the raw connection, with small
// buffers: net/http's hijack keeps a 4 KiB reader and a 4 KiB writer per connection, which
// were the largest part of an idle socket's memory. Client messages are small (the read limit
// is a few KiB) and the server's frames are corked, so 512 and 128 bytes do.
type hijackWriter struct {
	http.ResponseWriter
	timeout time.Duration
	nc      *netConn
}

const (
	socketReadBuffer  = 512
	socketWriteBuffer = 128 // a control frame: 2 bytes of header, at most 125 of payload
)

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.nc = newNetConn(raw, h.timeout)
	r := brw.Reader
	if r.Buffered() == 0 {
		// Anything a client sent right behind its handshake is in net/http's reader, which
		// coder/websocket reads first: only a reader holding nothing may be swapped.
		r = bufio.NewReaderSize(h.nc, socketReadBuffer)
	}
	return h.nc, bufio.NewReadWriter(r, bufio.NewWriterSize(h.nc, socketWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }
