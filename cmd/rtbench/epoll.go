//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// The epoll client exists because the client shares the server's two cores: a coder/websocket
// reader goroutine per socket costs the client 25-30 µs of CPU a frame, which at 10,000 sockets
// is taken from the server whose latency is being measured. This client speaks just enough of
// RFC 6455 for Tasker's realtime endpoint (plain ws, no extensions): the handshake and the
// subscribe go over a net.Conn, then a duplicate of the socket's descriptor is handed to a
// poller, which reads many sockets per epoll_wait from one goroutine and a 64 KiB buffer.

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa

	finBit  = 0x80
	maskBit = 0x80

	// maxMessage bounds a frame and a reassembled message, so that a misread length ends the
	// socket instead of making the reader wait for (and buffer) gigabytes.
	maxMessage = 1 << 20
)

// epollClient opens sockets by hand and has its pollers read them.
type epollClient struct {
	addr    string // host:port to dial
	host    string // the Host header
	path    string // of the realtime endpoint
	pollers []*poller
}

// startEpoll starts readers pollers for n sockets, wg counting them. They read until ctx ends,
// then close every socket handed to them. Every open must return before ctx ends (fanout waits
// for all of them before it stops the run), or its socket is closed unread.
func startEpoll(ctx context.Context, base string, readers, n int, received *atomic.Int64, wg *sync.WaitGroup) (*epollClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	c := &epollClient{addr: u.Host, host: u.Host, path: u.EscapedPath() + "/v1/realtime"}
	if u.Port() == "" {
		c.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	for range readers {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			for _, p := range c.pollers {
				_ = syscall.Close(p.epfd)
			}
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		c.pollers = append(c.pollers, &poller{
			epfd: epfd,
			// Room for every socket of the poller's share, so an open never waits for it.
			add:      make(chan *rawSocket, (n+readers-1)/readers),
			socks:    map[int32]*rawSocket{},
			buf:      make([]byte, 64<<10),
			received: received,
		})
	}
	for _, p := range c.pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx)
		}()
	}
	return c, nil
}

// open dials, upgrades, subscribes to topic, and reads until the server confirms, as
// subscriber.open does; then it hands the socket, as socket i, to a poller.
func (c *epollClient) open(ctx context.Context, i int, s *subscriber, token, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// The handshake's reads and writes block; a deadline is what ends them when ctx does.
	stopAfter := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stopAfter()
	br := bufio.NewReader(conn)
	if err := c.handshake(conn, br, token); err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	if err := subscribe(conn, br, topic); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}

	rs := &rawSocket{subscriber: s}
	// Whatever the server sent after the confirmation is already out of the kernel's buffer.
	left, _ := br.Peek(br.Buffered())
	rs.pending = append([]byte(nil), left...)
	rs.pendingAt = now()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	var dupErr error
	if err := raw.Control(func(fd uintptr) { rs.fd, dupErr = syscall.Dup(int(fd)) }); err != nil {
		return err
	}
	if dupErr != nil {
		return fmt.Errorf("dup: %w", dupErr)
	}
	// Closing the net.Conn takes the socket out of Go's own epoll (which would otherwise keep
	// waking the runtime for it); the duplicate keeps the socket open.
	stopAfter()
	if err := conn.Close(); err != nil {
		_ = syscall.Close(rs.fd)
		return err
	}
	if err := syscall.SetNonblock(rs.fd, true); err != nil {
		_ = syscall.Close(rs.fd)
		return fmt.Errorf("set nonblock: %w", err)
	}
	c.pollers[i%len(c.pollers)].add <- rs
	return nil
}

// handshake sends the upgrade request and reads the response; anything but 101 is an error
// that carries the status line and the start of the body.
func (c *epollClient) handshake(conn net.Conn, br *bufio.Reader, token string) error {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + c.path + " HTTP/1.1\r\n" +
		"Host: " + c.host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Protocol: tasker.v1\r\n" +
		"Authorization: Bearer " + token + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	// For a 1xx status ReadResponse stops at the blank line and reads no body, so the
	// frames that follow stay in br.
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s", resp.Proto, resp.Status, body)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		return fmt.Errorf("Sec-WebSocket-Accept %q does not answer the key sent", got)
	}
	return nil
}

// subscribe sends the subscribe message and reads until the server confirms it or refuses.
func subscribe(conn net.Conn, br *bufio.Reader, topic string) error {
	msg, _ := json.Marshal(map[string]string{"type": "subscribe", "topic": topic})
	if _, err := conn.Write(clientFrame(opText, msg)); err != nil {
		return err
	}
	for {
		h, data, err := readFrame(br)
		if err != nil {
			return err
		}
		switch {
		case h.opcode == opPing:
			if _, err := conn.Write(clientFrame(opPong, data)); err != nil {
				return err
			}
			continue
		case h.opcode == opPong:
			continue
		case h.opcode == opClose:
			return closeError(data)
		case h.opcode != opText || !h.fin:
			// The server sends its few small replies whole, as text.
			return fmt.Errorf("protocol: frame with opcode %d (fin %t) before the subscription", h.opcode, h.fin)
		}
		var m struct{ Type, Topic, Code, Message string }
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("%w: %s", err, data)
		}
		switch {
		case m.Type == "subscribed" && m.Topic == topic:
			return nil
		case m.Type == "error":
			return fmt.Errorf("%s: %s", m.Code, m.Message)
		}
	}
}

// header is a server frame's header, decoded.
type header struct {
	fin    bool
	opcode byte
	size   int // of the header
	length int // of the payload
}

// headerSize is the size of a server frame's header given its second byte: servers do not
// mask, so 2, 4 or 10 bytes.
func headerSize(b1 byte) int {
	switch b1 & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// parseHeader decodes the header of the server frame that b starts with; ok is false while b
// is too short to hold it. A frame this client cannot read right is an error.
func parseHeader(b []byte) (h header, ok bool, err error) {
	if len(b) < 2 || len(b) < headerSize(b[1]) {
		return h, false, nil
	}
	h = header{fin: b[0]&finBit != 0, opcode: b[0] & 0x0f, size: headerSize(b[1])}
	var n uint64
	switch h.size {
	case 2:
		n = uint64(b[1] & 0x7f)
	case 4:
		n = uint64(binary.BigEndian.Uint16(b[2:]))
	default:
		n = binary.BigEndian.Uint64(b[2:])
	}
	switch {
	case b[0]&0x70 != 0:
		return h, false, fmt.Errorf("protocol: reserved bits %#x set, and no extension was negotiated", b[0]&0x70)
	case b[1]&maskBit != 0:
		return h, false, errors.New("protocol: a masked frame from the server")
	case n > maxMessage:
		return h, false, fmt.Errorf("protocol: a %d-byte frame (this client reads up to %d)", n, maxMessage)
	case h.opcode >= opClose && (!h.fin || n > 125):
		return h, false, fmt.Errorf("protocol: a control frame (opcode %d) fragmented or over 125 bytes", h.opcode)
	}
	h.length = int(n)
	return h, true, nil
}

// readFrame reads one server frame from br, for the handshake's few.
func readFrame(br *bufio.Reader) (header, []byte, error) {
	b, err := br.Peek(2)
	if err != nil {
		return header{}, nil, err
	}
	if b, err = br.Peek(headerSize(b[1])); err != nil {
		return header{}, nil, err
	}
	h, _, err := parseHeader(b)
	if err != nil {
		return h, nil, err
	}
	_, _ = br.Discard(h.size)
	data := make([]byte, h.length)
	_, err = io.ReadFull(br, data)
	return h, data, err
}

// clientFrame is one final frame from the client. RFC 6455 wants every client frame masked
// (the server closes a socket that sends one unmasked), with a fresh key each time.
func clientFrame(opcode byte, payload []byte) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, finBit|opcode)
	switch n := len(payload); {
	case n < 126:
		f = append(f, maskBit|byte(n))
	case n <= 0xffff:
		f = append(f, maskBit|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, maskBit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i&3])
	}
	return f
}

// closeError is why a close frame with this payload ended the socket, as coder/websocket
// reports it, so that match reads the close code of either client.
func closeError(payload []byte) error {
	switch len(payload) {
	case 0:
		return websocket.CloseError{Code: websocket.StatusNoStatusRcvd}
	case 1:
		return errors.New("protocol: a close frame with a 1-byte payload")
	}
	return websocket.CloseError{Code: websocket.StatusCode(binary.BigEndian.Uint16(payload)), Reason: string(payload[2:])}
}

// rawSocket is a subscriber's socket once a poller owns it.
type rawSocket struct {
	*subscriber
	fd        int
	pending   []byte // the start of a frame not yet whole
	pendingAt int64  // when the bytes left over from the handshake were read
	fragOp    byte   // the opcode of the fragmented message being put together; 0: none
	frag      []byte // its payload so far
}

// poller reads the sockets handed to it from one goroutine: once a socket is on add, only
// that goroutine touches it and its subscriber.
type poller struct {
	epfd     int
	add      chan *rawSocket
	socks    map[int32]*rawSocket // by descriptor
	buf      []byte
	received *atomic.Int64
}

func (p *poller) run(ctx context.Context) {
	defer p.closeAll()
	events := make([]syscall.EpollEvent, 512)
	for ctx.Err() == nil {
		p.takeNew()
		// The timeout is how soon the poller notices the end of the run and new sockets.
		n, err := syscall.EpollWait(p.epfd, events, 100)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			for _, s := range p.socks {
				s.ended = fmt.Errorf("epoll_wait: %w", err)
			}
			return
		}
		for _, ev := range events[:n] {
			if s := p.socks[ev.Fd]; s != nil {
				p.readSocket(s)
			}
		}
	}
}

// takeNew registers the sockets handed over since the last call. The poller is add's only
// receiver, so a non-empty add never blocks it.
func (p *poller) takeNew() {
	for len(p.add) > 0 {
		s := <-p.add
		// Level-triggered: readSocket may leave bytes in the kernel (see there).
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(s.fd)}
		if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			s.ended = fmt.Errorf("epoll_ctl: %w", err)
			_ = syscall.Close(s.fd)
			continue
		}
		p.socks[int32(s.fd)] = s
		if len(s.pending) > 0 {
			if err := p.consume(s, nil, s.pendingAt); err != nil {
				p.end(s, err)
			}
		}
	}
}

// readSocket reads what the kernel holds for s. The receipt time is taken once per read,
// right after it returns: every frame that read completes shares it.
func (p *poller) readSocket(s *rawSocket) {
	for {
		n, err := syscall.Read(s.fd, p.buf)
		at := now()
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return
		case err != nil:
			p.end(s, fmt.Errorf("read: %w", err))
			return
		case n == 0:
			p.end(s, fmt.Errorf("read: %w (no close frame)", io.EOF))
			return
		}
		if err := p.consume(s, p.buf[:n], at); err != nil {
			p.end(s, err)
			return
		}
		// A read that did not fill the buffer has, all but always, emptied the socket; the
		// epoll is level-triggered, so whatever came since wakes it again, and the read that
		// would only say EAGAIN (a syscall per socket per wake-up) is saved.
		if n < len(p.buf) {
			return
		}
	}
}

// consume handles the whole frames in s.pending followed by data, all read at at, and keeps
// the incomplete rest in s.pending. An error ends the socket.
func (p *poller) consume(s *rawSocket, data []byte, at int64) error {
	if len(s.pending) > 0 {
		s.pending = append(s.pending, data...)
		data = s.pending
	}
	for {
		h, ok, err := parseHeader(data)
		if err != nil {
			return err
		}
		if !ok || len(data) < h.size+h.length {
			break
		}
		payload := data[h.size : h.size+h.length]
		data = data[h.size+h.length:]
		if err := p.frame(s, h, payload, at); err != nil {
			return err
		}
	}
	// data may be the tail of s.pending itself; append copies as memmove does.
	s.pending = append(s.pending[:0], data...)
	return nil
}

// frame handles one whole frame; payload is only valid during the call. An error ends the
// socket: a close frame's is the websocket.CloseError coder/websocket would report.
func (p *poller) frame(s *rawSocket, h header, payload []byte, at int64) error {
	switch h.opcode {
	case opText, opBinary:
		if s.fragOp != 0 {
			return errors.New("protocol: a new message inside a fragmented one")
		}
		if !h.fin {
			s.fragOp = h.opcode
			s.frag = append(s.frag[:0], payload...)
			return nil
		}
		s.record(payload, at, p.received)
	case opContinuation:
		if s.fragOp == 0 {
			return errors.New("protocol: a continuation frame outside a fragmented message")
		}
		if len(s.frag)+len(payload) > maxMessage {
			return fmt.Errorf("protocol: a fragmented message over %d bytes", maxMessage)
		}
		s.frag = append(s.frag, payload...)
		if h.fin {
			s.fragOp = 0
			s.record(s.frag, at, p.received)
		}
	case opPing:
		// The server drops a socket that does not answer its pings (every 25 s in Tasker).
		return writeFrame(s.fd, clientFrame(opPong, payload))
	case opPong:
	case opClose:
		err := closeError(payload)
		_ = writeFrame(s.fd, clientFrame(opClose, payload[:min(len(payload), 2)]))
		return err
	default:
		return fmt.Errorf("protocol: unknown opcode %d", h.opcode)
	}
	return nil
}

// writeFrame writes a small control frame whole. The client sends nothing else after the
// subscribe, so the socket's send buffer is all but empty and a short write means the peer has
// stopped reading; the socket ends rather than carry half a frame.
func writeFrame(fd int, f []byte) error {
	for {
		n, err := syscall.Write(fd, f)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("write: %w", err)
		case n < len(f):
			return fmt.Errorf("write: %d of a %d-byte control frame", n, len(f))
		}
		return nil
	}
}

// end records why s ended and closes it.
func (p *poller) end(s *rawSocket, err error) {
	s.ended = err
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
	_ = syscall.Close(s.fd)
	delete(p.socks, int32(s.fd))
}

// closeAll closes every socket the poller holds or was handed, and the epoll instance.
func (p *poller) closeAll() {
	for len(p.add) > 0 {
		_ = syscall.Close((<-p.add).fd)
	}
	for fd := range p.socks {
		_ = syscall.Close(int(fd))
	}
	p.socks = nil
	_ = syscall.Close(p.epfd)
}
