package realtime

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// tcpPair is a loopback connection whose server side has a small send buffer, so a client
// that does not read fills the kernel's buffers with a few hundred KiB. (A small receive buffer
// on the client too made the kernel here stall the stream for good, even for plain blocking
// writes: not what these tests are about.)
func tcpPair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := (<-accepted).(*net.TCPConn)
	if err := sc.SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close(); client.Close() })
	return sc, client
}

// Writes to a client that reads nothing return at once, whatever the kernel would take; once
// the client reads, it gets every byte in the order written, one frame at a time or joined.
func TestNetConnWritesWithoutBlockingAndKeepsOrder(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	nc := newNetConn(server, 10*time.Second)

	var want bytes.Buffer
	wrote := make(chan error, 1)
	go func() {
		var buf []byte
		for i := range 400 {
			chunk := bytes.Repeat([]byte{byte(i)}, 2_000)
			chunk[0] = 0x81 // what the writes of coder/websocket start with is read as a frame's first byte
			if i%2 == 0 {
				if _, err := nc.Write(chunk); err != nil {
					wrote <- err
					return
				}
			} else {
				var err error
				if buf, _, err = nc.writeFrames(buf, [][]byte{chunk[:700], chunk[700:]}); err != nil {
					wrote <- err
					return
				}
			}
			want.Write(chunk)
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("800 KB of writes to a client that reads nothing blocked the writer")
	}
	nc.mu.Lock()
	behind := len(nc.backlog) > 0 || nc.draining
	nc.mu.Unlock()
	if !behind {
		t.Fatal("800 KB written to a client that reads nothing, yet nothing waits in the backlog")
	}

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(want.Len())))
		got <- b
	}()
	if !nc.waitDrained() {
		t.Fatalf("drain failed: %v", nc.failed())
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("the client read %d bytes, not the %d written in order", len(b), want.Len())
	}
}

// A client that takes nothing for the write timeout fails the connection: the drain gives up,
// closes it, and later writes fail.
func TestNetConnFailsWhenTheClientTakesNothingInTime(t *testing.T) {
	t.Parallel()
	server, _ := tcpPair(t)
	nc := newNetConn(server, 200*time.Millisecond)
	chunk := make([]byte, 256<<10)
	for range 3 { // over what the kernel holds, under maxBacklog
		if _, err := nc.Write(chunk); err != nil {
			break
		}
	}
	if nc.waitDrained() {
		t.Fatal("waitDrained reported success for a client that read nothing")
	}
	if err := nc.failed(); !errors.Is(err, errWriteTimeout) {
		t.Fatalf("failed() = %v, want errWriteTimeout", err)
	}
	if _, err := nc.Write([]byte("x")); err == nil {
		t.Fatal("a write after the connection failed succeeded")
	}
}

// Once coder/websocket has written its close frame, the server's messages are refused, so none
// follows it on the wire.
func TestNetConnRefusesMessagesAfterTheCloseFrame(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	nc := newNetConn(server, time.Second)
	first := textFrame(map[string]string{"type": "pong"})
	if _, _, err := nc.writeFrames(nil, [][]byte{first}); err != nil {
		t.Fatal(err)
	}
	closeFrame := []byte{0x88, 2, 0x03, 0xe9} // 1001
	if _, err := nc.Write(closeFrame); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nc.writeFrames(nil, [][]byte{first}); !errors.Is(err, errCloseSent) {
		t.Fatalf("a message after the close frame: err = %v, want errCloseSent", err)
	}
	want := append(append([]byte{}, first...), closeFrame...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

// Frames carry their payload length in the form RFC 6455 sets for its size.
func TestFrameTextHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n      int
		header []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		payload := bytes.Repeat([]byte{'a'}, tc.n)
		f := frameText(payload)
		if !bytes.Equal(f[:len(tc.header)], tc.header) || !bytes.Equal(f[len(tc.header):], payload) {
			t.Errorf("%d bytes: header % x, want % x", tc.n, f[:min(len(f), len(tc.header))], tc.header)
		}
	}
}

// A client that leaves more than maxBacklog unread fails the connection at once, rather than
// after the write timeout: nothing it is sent, pongs included, may pile up without bound.
func TestNetConnFailsPastTheBacklogLimit(t *testing.T) {
	t.Parallel()
	server, _ := tcpPair(t)
	nc := newNetConn(server, time.Hour)
	chunk := bytes.Repeat([]byte{0x81}, 16<<10)
	var err error
	written := 0
	for written <= 2*maxBacklog && err == nil {
		_, err = nc.Write(chunk)
		written += len(chunk)
	}
	if !errors.Is(err, errBacklogFull) {
		t.Fatalf("after %d bytes to a client that reads nothing: err = %v, want errBacklogFull", written, err)
	}

	nc.mu.Lock()
	held := len(nc.backlog)
	nc.mu.Unlock()
	if held != 0 {
		t.Fatalf("the failed connection still holds %d bytes", held)
	}
	if nc.waitDrained() {
		t.Fatal("waitDrained reported success on a failed connection")
	}
}

// A client's bytes are read at the reads limiter's pace: a flood of frames the library handles
// alone (pongs, empty fragments) waits instead of taking a core.
func TestNetConnPacesWhatTheClientSends(t *testing.T) {
	t.Parallel()
	server, client := tcpPair(t)
	nc := newNetConn(server, time.Second)
	nc.reads = rate.NewLimiter(4000, 1000) // bytes a second, burst
	go func() { _, _ = client.Write(make([]byte, 5000)) }()
	start := time.Now()
	if _, err := io.ReadFull(nc, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	// 1000 bytes of burst, then 4000 at 4000 a second: at least a second, whatever the machine.
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("5000 bytes were read in %v, faster than the limiter allows", took)
	}
}

// What the drain has taken from the backlog and is still writing counts toward the limit: a
// client reading slowly let the drain hold one backlog's worth while another filled up.
func TestNetConnCountsWhatTheDrainHoldsTowardTheLimit(t *testing.T) {
	t.Parallel()
	server, _ := tcpPair(t)
	nc := newNetConn(server, time.Hour)
	nc.mu.Lock()
	nc.draining, nc.inflight = true, maxBacklog-1000 // as if the drain were writing that much
	nc.mu.Unlock()
	if _, err := nc.Write(make([]byte, 2000)); !errors.Is(err, errBacklogFull) {
		t.Fatalf("2000 bytes behind %d in flight: err = %v, want errBacklogFull", maxBacklog-1000, err)
	}
}
