package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/realtime"
)

// A client that stops reading while big events pile up is closed as a slow consumer (4008,
// when the close frame gets through at all), and logged so; a client reading alongside it on
// the same instance gets every event.
func TestRealtimeSlowConsumerIsClosedWhileOthersKeepReceiving(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true, SendBuffer: 64 << 10, RealtimeConfig: realtime.Config{
		SendQueue: 4, WriteTimeout: 5 * time.Second,
	}})
	f := newRTFixture(t, env)
	topic := projectTopic(f.project.Id)
	slow := env.MustDial(t, f.acct.Tokens.AccessToken)
	slow.Subscribe(topic, nil)
	fast := env.MustDial(t, f.acct.Tokens.AccessToken)
	first := int64(fast.Subscribe(topic, nil)["last_id"].(float64)) + 1

	got := make(chan apitest.Message, 1024)
	go func() {
		defer close(got)
		for {
			m, err := fast.Read(10 * time.Second)
			if err != nil {
				return
			}
			got <- m
		}
	}()

	// ~50 KB each, so the slow socket's TCP buffers (the server's small: SendBuffer) fill
	// after a few and its queue after that.
	description := strings.Repeat("slow consumers are closed, not waited for. ", 1200)[:49000]
	closedLog := func() map[string]any {
		return logRecord(env, "realtime: closing socket", func(r map[string]any) bool { return r["code"] == float64(realtime.CloseSlowConsumer) })
	}
	n := 0
	for ; n < 100 && closedLog() == nil; n++ {
		resp, err := env.Client.CreateTaskWithResponse(context.Background(), f.project.Id, nil,
			api.TaskCreate{Title: "big", Description: &description}, f.owner)
		mustStatus(t, "create task", err, resp.StatusCode(), http.StatusCreated, resp.Body)
	}
	rec := closedLog()
	if rec == nil {
		t.Fatalf("after %d events of 50 KB no socket was closed as a slow consumer", n)
	}
	t.Logf("slow consumer closed after %d events: %v", n, rec["reason"])
	if !env.WaitConnections(1, 8*time.Second) {
		t.Fatalf("the slow socket was not ended: %d sockets open", env.Realtime.Connections())
	}

	for i := range n {
		select {
		case m, ok := <-got:
			if !ok {
				t.Fatalf("the reading socket ended after %d of %d events", i, n)
			}
			if m.Type() != "event" || m.ID() != first+int64(i) || m.Data()["description"] != description {
				t.Fatalf("reading socket, event %d: got %v (id %d), want id %d", i, m.Type(), m.ID(), first+int64(i))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the reading socket got %d of %d events", i, n)
		}
	}

	// The slow one, reading at last, finds what was buffered and then the end: 4008 if the
	// close frame got through, else no close frame at all.
	if code := slow.CloseStatus(10 * time.Second); code != realtime.CloseSlowConsumer && code != -1 {
		t.Errorf("slow socket closed with %d, want %d or no close frame", code, realtime.CloseSlowConsumer)
	}
}

// Upgrades: an API key authenticates over Authorization (and its revocation ends the socket),
// a browser origin in AllowedOrigins is let in while others are not, and a user's sockets
// beyond MaxConnsPerUser are refused with 429 until one closes.
func TestRealtimeUpgradeTakesAPIKeysListedOriginsAndLimitsSocketsPerUser(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.test"
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true, RealtimeConfig: realtime.Config{
		AllowedOrigins: []string{app}, MaxConnsPerUser: 2,
	}})
	f := newRTFixture(t, env)
	ctx := context.Background()

	t.Run("api key", func(t *testing.T) {
		key, err := env.Client.CreateAPIKeyWithResponse(ctx, api.APIKeyCreate{Name: "bot", Role: "admin"}, f.owner)
		mustStatus(t, "create API key", err, key.StatusCode(), http.StatusCreated, key.Body)
		sock := env.MustDial(t, key.JSON201.Key)
		sock.Subscribe("tenant", nil)
		sock.Subscribe(projectTopic(f.project.Id), nil)
		task := f.createTask(t, "seen by the key")
		expectEvent(t, sock, "task.created", projectTopic(f.project.Id), task.Id)

		// The key's own user's access token does not turn the key's socket into the session's,
		// which would outlive the key's revocation below.
		sock.Send(map[string]any{"type": "auth", "token": f.acct.Tokens.AccessToken})
		if m := sock.Expect("error"); m.Str("code") != realtime.ErrAuthFailed {
			t.Fatalf("renewing a key's socket with an access token: got %v, want auth_failed", m)
		}

		del, err := env.Client.DeleteAPIKeyWithResponse(ctx, key.JSON201.Id, f.owner)
		mustStatus(t, "delete API key", err, del.StatusCode(), http.StatusNoContent, del.Body)
		if code := sock.CloseStatus(5 * time.Second); code != realtime.CloseAccessRevoked {
			t.Errorf("socket of a revoked key closed with %d, want %d", code, realtime.CloseAccessRevoked)
		}
		_, resp, err := env.DialRealtime(ctx, key.JSON201.Key, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("dial with a revoked key: %v %v, want 401", err, resp)
		}
	})

	t.Run("origins", func(t *testing.T) {
		u := f.user(t, "browser", "member", true)
		dial := func(origin string) (*apitest.Socket, *http.Response, error) {
			return env.DialRealtime(ctx, "", &websocket.DialOptions{
				Subprotocols: []string{realtime.Subprotocol, realtime.BearerSubprotocolPrefix + u.tokens.AccessToken},
				HTTPHeader:   http.Header{"Origin": {origin}},
			})
		}
		s, resp, err := dial(app)
		if err != nil {
			t.Fatalf("dial from the listed origin %s: %v %v", app, err, resp)
		}
		s.Send(map[string]any{"type": "ping"})
		s.Expect("pong")
		_ = s.Conn.Close(websocket.StatusNormalClosure, "")
		for _, origin := range []string{"https://app.example.test.evil.example", "http://app.example.test", "https://evil.example", "null"} {
			_, resp, err := dial(origin)
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("origin %s: %v %v, want 403 problem+json", origin, err, resp)
			}
		}
	})

	t.Run("sockets per user", func(t *testing.T) {
		u := f.user(t, "many", "member", true)
		first := env.MustDial(t, u.tokens.AccessToken)
		env.MustDial(t, u.tokens.AccessToken)
		_, resp, err := env.DialRealtime(ctx, u.tokens.AccessToken, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("third socket: %v %v, want 429 problem+json", err, resp)
		}
		// Another user is not held to this one's count.
		env.MustDial(t, f.acct.Tokens.AccessToken)
		_ = first.Conn.Close(websocket.StatusNormalClosure, "")
		if _, ok := pollUntil(2*time.Second, func() bool {
			s, _, err := env.DialRealtime(ctx, u.tokens.AccessToken, nil)
			if err != nil {
				return false
			}
			t.Cleanup(func() { _ = s.Conn.CloseNow() })
			return true
		}); !ok {
			t.Errorf("a socket closed did not free its place")
		}
	})
}

// Frames the protocol does not allow end the socket with their close code: over
// MaxMessageBytes 1009, binary 1003, more than MessagesPerSecond messages or pings 1008.
func TestRealtimeAbusiveFramesCloseWithTheirCode(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true, RealtimeConfig: realtime.Config{
		MaxMessageBytes: 1024, MessagesPerSecond: 10,
	}})
	acct := env.Signup(t)
	ping := []byte(`{"type":"ping"}`)
	cases := []struct {
		name string
		send func(*apitest.Socket) error
		want websocket.StatusCode
	}{
		{"too big", func(s *apitest.Socket) error {
			return s.WriteFrame(websocket.MessageText, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 1100)+`"}`))
		}, websocket.StatusMessageTooBig},
		{"binary", func(s *apitest.Socket) error { return s.WriteFrame(websocket.MessageBinary, ping) }, websocket.StatusUnsupportedData},
		{"not UTF-8", func(s *apitest.Socket) error {
			return s.WriteFrame(websocket.MessageText, []byte("{\"type\":\"ping\",\"x\":\"\xff\"}"))
		}, websocket.StatusInvalidFramePayloadData},
		{"too many", func(s *apitest.Socket) error {
			for range 30 {
				if err := s.WriteFrame(websocket.MessageText, ping); err != nil {
					return err
				}
			}
			return nil
		}, websocket.StatusPolicyViolation},
		// Pings are answered by the library; a flood of them would have the server write pongs
		// to a client that need not read them.
		{"too many pings", func(s *apitest.Socket) error {
			for range 30 {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					defer cancel()
					_ = s.Conn.Ping(ctx)
				}()
			}
			return nil
		}, websocket.StatusPolicyViolation},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for attempt := range 5 { // a close code lost to a race shows up in some attempts only
				s := env.MustDial(t, acct.Tokens.AccessToken)
				// Just under the limits is fine.
				s.Send(map[string]any{"type": "ping", "pad": strings.Repeat("x", 900)})
				s.Expect("pong")
				if err := c.send(s); err != nil {
					t.Fatalf("send: %v", err)
				}
				if code := s.CloseStatus(5 * time.Second); code != c.want {
					t.Fatalf("attempt %d: closed with %d, want %d", attempt, code, c.want)
				}
			}
		})
	}
}

// Shutdown closes every socket with 1001 (going away) and refuses new ones.
func TestRealtimeShutdownClosesSocketsWithGoingAway(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	socks := []*apitest.Socket{env.MustDial(t, f.acct.Tokens.AccessToken), env.MustDial(t, f.acct.Tokens.AccessToken)}
	socks[0].Subscribe(projectTopic(f.project.Id), nil)
	codes := make(chan websocket.StatusCode, len(socks))
	for _, s := range socks {
		go func() { codes <- s.CloseStatus(5 * time.Second) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	env.Realtime.Shutdown(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown took %v with clients that answer the close", took)
	}
	for range socks {
		if code := <-codes; code != websocket.StatusGoingAway {
			t.Errorf("closed with %d, want %d", code, websocket.StatusGoingAway)
		}
	}
	if n := env.Realtime.Connections(); n != 0 {
		t.Errorf("%d sockets after shutdown", n)
	}
	_, resp, err := env.DialRealtime(ctx, f.acct.Tokens.AccessToken, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after shutdown: %v %v, want 503", err, resp)
	}
}

// A peer that never answers pings is dropped after PingInterval+PingTimeout, while one that
// reads (and so answers them) stays.
func TestRealtimeHeartbeatDropsDeadPeers(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true, RealtimeConfig: realtime.Config{
		PingInterval: 100 * time.Millisecond, PingTimeout: 200 * time.Millisecond,
	}})
	acct := env.Signup(t)
	// coder/websocket answers pings only inside Read; this client never calls it.
	env.MustDial(t, acct.Tokens.AccessToken)
	alive := env.MustDial(t, acct.Tokens.AccessToken)
	got := make(chan apitest.Message, 16)
	ended := make(chan error, 1)
	go func() {
		for {
			m, err := alive.Read(time.Minute)
			if err != nil {
				ended <- err
				return
			}
			got <- m
		}
	}()
	if n := env.Realtime.Connections(); n != 2 {
		t.Fatalf("%d sockets, want 2", n)
	}
	if !env.WaitConnections(1, 3*time.Second) {
		t.Fatalf("the dead peer was not dropped: %d sockets", env.Realtime.Connections())
	}
	if rec := logRecord(env, "realtime: dropping socket", func(map[string]any) bool { return true }); rec == nil {
		t.Errorf("no log of the dropped socket")
	}
	// Several ping rounds later the reading one is still there and answers.
	time.Sleep(600 * time.Millisecond)
	select {
	case err := <-ended:
		t.Fatalf("the reading socket ended: %v", err)
	default:
	}
	alive.Send(map[string]any{"type": "ping"})
	select {
	case m := <-got:
		if m.Type() != "pong" {
			t.Fatalf("got %v, want pong", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
	if n := env.Realtime.Connections(); n != 1 {
		t.Errorf("%d sockets, want the reading one", n)
	}
}
