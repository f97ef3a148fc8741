package realtime

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// netConn is the hijacked connection under one WebSocket. Its writes never block: what the
// kernel takes at once is sent, the rest waits in a backlog that a goroutine of the socket's
// own drains within the write timeout. So the relay writes each event to thousands of sockets
// from a couple of goroutines, one write(2) per socket, and a client that stops reading costs
// only its own backlog (bounded by the send queue, see Conn.writeQueued), never anyone's time.
//
// coder/websocket upgrades, reads, and writes the control frames (ping, pong, close) through
// Write; the server's messages go through writeFrames, already framed (textFrame). An event's
// frame is the same bytes for every subscriber of a topic, so it is encoded once, and a
// subscriber costs one system call: coder/websocket's own per-message path (two lock channels,
// a header and a copy per socket) was a seventh of the server's CPU in a 10,000-socket fan-out.
// The two never split each other's frames: each Write and each writeFrames call holds mu, and
// every control frame fits the 128-byte buffer coder/websocket flushes through Write, so it
// arrives in one call.
type netConn struct {
	net.Conn
	raw     syscall.RawConn // nil when the connection has no descriptor: every write is drained
	timeout time.Duration
	// reads paces what the client sends, in bytes: the message rate counts messages and pings,
	// not the frames the library handles alone (pongs, empty fragments), whose floods would
	// otherwise take a core.
	reads *rate.Limiter

	mu sync.Mutex
	// closeSent is set once coder/websocket wrote a close frame: no message may follow it.
	closeSent bool
	backlog   []byte
	inflight  int // bytes the drain took from the backlog and is writing
	draining  bool
	drained   *sync.Cond // draining ended
	err       error
}

// errWriteTimeout ends a socket whose backlog did not drain within the write timeout, and
// errBacklogFull one whose backlog outgrew maxBacklog: both are slow consumers.
var (
	errWriteTimeout = errors.New("realtime: the client took no data within the write timeout")
	errBacklogFull  = errors.New("realtime: the client left more than the backlog's limit unread")
)

// maxBacklog bounds what one socket holds unsent, in the backlog and in the drain's hands,
// whatever fills it: the send queue counts the server's messages, not their size, nor the pongs
// the library answers a client's pings with.
const maxBacklog = 1 << 20

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

// Read reads from the client at most at the reads limiter's pace: past it, the reader waits.
func (nc *netConn) Read(p []byte) (int, error) {
	n, err := nc.Conn.Read(p)
	if nc.reads != nil {
		// WaitN takes at most a burst at a time.
		for left := n; left > 0; left -= nc.reads.Burst() {
			_ = nc.reads.WaitN(context.Background(), min(left, nc.reads.Burst()))
		}
	}
	return n, err
}

// Write queues p behind anything not yet sent and sends what the kernel takes now. It fails
// only once the connection has failed.
func (nc *netConn) Write(p []byte) (int, error) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.err != nil {
		return 0, nc.err
	}
	if len(p) > 0 && p[0]&0x0f == opClose {
		nc.closeSent = true
	}
	nc.sendLocked(p)
	if nc.err != nil {
		return 0, nc.err
	}
	return len(p), nil
}

const opClose = 0x8

// errCloseSent refuses messages after the close frame.
var errCloseSent = errors.New("realtime: the close frame was sent")

// writeFrames writes whole frames (textFrame) without blocking, several as one system call
// (buf is the caller's scratch space for joining them, returned for reuse). behind reports that
// some of the bytes wait for the kernel in the backlog.
func (nc *netConn) writeFrames(buf []byte, frames [][]byte) (_ []byte, behind bool, err error) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	switch {
	case nc.err != nil:
		return buf, false, nc.err
	case nc.closeSent:
		return buf, false, errCloseSent
	case len(frames) == 1:
		nc.sendLocked(frames[0])
	default:
		buf = buf[:0]
		for _, f := range frames {
			buf = append(buf, f...)
		}
		nc.sendLocked(buf)
	}
	return buf, nc.draining, nc.err
}

// textFrame is v as one unmasked, unfragmented WebSocket text frame (RFC 6455, section 5.2):
// how every message of the server is written.
func textFrame(v any) []byte { return frameText(mustJSON(v)) }

func frameText(payload []byte) []byte {
	const finText = 0x81
	n := len(payload)
	f := make([]byte, 0, n+10)
	switch {
	case n < 126:
		f = append(f, finText, byte(n))
	case n <= 0xffff:
		f = append(f, finText, 126, byte(n>>8), byte(n))
	default:
		f = append(f, finText, 127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	return append(f, payload...)
}

// sendLocked writes p at once as far as the kernel takes it, or queues it behind the backlog.
func (nc *netConn) sendLocked(p []byte) {
	if nc.draining || nc.raw == nil {
		nc.queueLocked(p)
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
		nc.queueLocked(p[n:])
	}
}

// queueLocked puts p behind the backlog; past maxBacklog the connection fails and closes.
func (nc *netConn) queueLocked(p []byte) {
	if nc.inflight+len(nc.backlog)+len(p) > maxBacklog {
		nc.failLocked(errBacklogFull)
		_ = nc.Conn.Close()
		return
	}
	nc.backlog = append(nc.backlog, p...)
	nc.startDrainLocked()
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
		nc.backlog, nc.inflight = nil, len(buf)
		if len(buf) == 0 || nc.err != nil {
			nc.draining, nc.inflight = false, 0
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
			nc.draining = false
			nc.failLocked(err)
			nc.mu.Unlock()
			_ = nc.Conn.Close()
			return
		}
	}
}

// failLocked ends the connection with err, unless it failed already (the first cause stays):
// what is unsent is dropped and waiters are told. The caller closes the connection.
func (nc *netConn) failLocked(err error) {
	if nc.err == nil {
		nc.err = err
	}
	nc.backlog, nc.inflight = nil, 0
	nc.drained.Broadcast()
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
	nc.failLocked(net.ErrClosed)
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
// is a few KiB) and coder/websocket writes only control frames, so 512 and 128 bytes do.
type hijackWriter struct {
	http.ResponseWriter
	timeout time.Duration
	reads   *rate.Limiter
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
	h.nc.reads = h.reads
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
