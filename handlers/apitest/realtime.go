package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Socket is a real WebSocket client of GET /v1/realtime.
type Socket struct {
	t    testing.TB
	Conn *websocket.Conn
	// Subprotocol is what the server selected.
	Subprotocol string
}

// RealtimeURL is the ws:// address of the endpoint.
func (e *Env) RealtimeURL() string { return "ws" + strings.TrimPrefix(e.URL, "http") + "/v1/realtime" }

// DialRealtime opens a socket with opts (nil: an Authorization header carrying token). The
// response is the server's answer to the upgrade (a problem when refused).
func (e *Env) DialRealtime(ctx context.Context, token string, opts *websocket.DialOptions) (*Socket, *http.Response, error) {
	if opts == nil {
		opts = &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}}
	}
	c, resp, err := websocket.Dial(ctx, e.RealtimeURL(), opts)
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(1 << 24)
	s := &Socket{t: e.t, Conn: c, Subprotocol: c.Subprotocol()}
	return s, resp, nil
}

// MustDial opens a socket for token or fails the test; it is closed when the test ends.
func (e *Env) MustDial(t testing.TB, token string) *Socket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, resp, err := e.DialRealtime(ctx, token, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial realtime: %v (status %d)", err, status)
	}
	s.t = t
	t.Cleanup(func() { _ = s.Conn.CloseNow() })
	return s
}

// Send writes one JSON message.
func (s *Socket) Send(v any) {
	s.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Conn.Write(ctx, websocket.MessageText, b); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

// Message is a server message, decoded.
type Message map[string]any

// Type is the message's type field.
func (m Message) Type() string { s, _ := m["type"].(string); return s }

// ID is an event's id.
func (m Message) ID() int64 { f, _ := m["id"].(float64); return int64(f) }

// Str is a string field.
func (m Message) Str(k string) string { s, _ := m[k].(string); return s }

// Data is an event's data object.
func (m Message) Data() map[string]any { d, _ := m["data"].(map[string]any); return d }

// Read returns the next message, or the error that ended the socket, within timeout.
func (s *Socket) Read(timeout time.Duration) (Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := s.Conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, errors.New("binary message from the server")
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Next returns the next message or fails the test.
func (s *Socket) Next() Message {
	s.t.Helper()
	m, err := s.Read(5 * time.Second)
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	return m
}

// Expect reads the next message and fails unless it has type typ.
func (s *Socket) Expect(typ string) Message {
	s.t.Helper()
	m := s.Next()
	if m.Type() != typ {
		s.t.Fatalf("got %v, want a %s message", m, typ)
	}
	return m
}

// Subscribe subscribes to topic (from since, if not nil) and returns the subscribed message.
func (s *Socket) Subscribe(topic string, since *int64) Message {
	s.t.Helper()
	msg := map[string]any{"type": "subscribe", "topic": topic}
	if since != nil {
		msg["since"] = *since
	}
	s.Send(msg)
	m := s.Next()
	if m.Type() != "subscribed" || m.Str("topic") != topic {
		s.t.Fatalf("subscribe %s: got %v", topic, m)
	}
	return m
}

// CloseStatus waits up to timeout for the socket to end and returns its close code (-1 when it
// ended without one). Messages before the end are skipped.
func (s *Socket) CloseStatus(timeout time.Duration) websocket.StatusCode {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, err := s.Read(time.Until(deadline))
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
	return -2
}

// ExpectError reads the next message and fails unless it is an error with code about topic.
func (s *Socket) ExpectError(code, topic string) Message {
	s.t.Helper()
	m := s.Next()
	if m.Type() != "error" || m.Str("code") != code || m.Str("topic") != topic {
		s.t.Fatalf("got %v, want an error %s about topic %q", m, code, topic)
	}
	return m
}

// WriteFrame writes one raw frame, for tests of what the server refuses.
func (s *Socket) WriteFrame(typ websocket.MessageType, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Conn.Write(ctx, typ, b)
}

// WaitConnections waits up to timeout for the instance to hold n open sockets; it reports
// whether it did.
func (e *Env) WaitConnections(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if e.Realtime.Connections() == n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
