//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
)

// TestEpollClientReadsWhatCoderWebsocketSends runs the epoll client against a coder/websocket
// server that does what the bench's baseline never does: a message in fragments with a ping
// between them (which waits for the pong), a message over 64 KiB (a 64-bit length, across
// reads), and a close with a code.
func TestEpollClientReadsWhatCoderWebsocketSends(t *testing.T) {
	t.Parallel()
	const topic = "project:p"
	tasks := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	event := func(id int) []byte {
		return fmt.Appendf(nil, `{"type":"event","id":%d,"topic":%q,"event":"task.created","data":{"id":"%s","title":"t"}}`, id, topic, tasks[id-1])
	}
	serverErr := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			http.Error(w, `{"title":"Unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		serverErr <- func() error {
			ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"tasker.v1"}})
			if err != nil {
				return err
			}
			defer ws.CloseNow()
			ctx := r.Context()
			if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), topic) {
				return fmt.Errorf("subscribe: %v %s", err, msg)
			}
			// The read loop answers the client's close frame; the ping needs it for its pong.
			ctx = ws.CloseRead(ctx)
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribed","topic":"`+topic+`"}`)); err != nil {
				return err
			}
			if err := ws.Write(ctx, websocket.MessageText, event(1)); err != nil {
				return err
			}
			e := event(2)
			mw, err := ws.Writer(ctx, websocket.MessageText)
			if err != nil {
				return err
			}
			if _, err := mw.Write(e[:10]); err != nil {
				return err
			}
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			if err := ws.Ping(pctx); err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			if _, err := mw.Write(e[10:]); err != nil {
				return err
			}
			if err := mw.Close(); err != nil {
				return err
			}
			if err := ws.Write(ctx, websocket.MessageBinary, make([]byte, 70_000)); err != nil {
				return err
			}
			if err := ws.Write(ctx, websocket.MessageText, event(3)); err != nil {
				return err
			}
			return ws.Close(4008, "too slow")
		}()
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var received atomic.Int64
	var wg sync.WaitGroup
	c, err := startEpoll(ctx, srv.URL, 1, 2, &received, &wg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.open(ctx, 0, &subscriber{}, "bad", topic); err == nil || !strings.Contains(err.Error(), "401 Unauthorized: {\"title\"") {
		t.Errorf("open with a bad token: %v, want the 401 status line and body", err)
	}
	s := &subscriber{}
	if err := c.open(ctx, 1, s, "good", topic); err != nil {
		t.Fatal(err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	cancel()
	wg.Wait()

	if len(s.got) != 3 || received.Load() != 3 {
		t.Fatalf("got %d receipts (received %d), want 3: %+v", len(s.got), received.Load(), s.got)
	}
	for i, g := range s.got {
		if g.id != int64(i+1) || g.task != tasks[i] {
			t.Errorf("receipt %d: id %d task %s, want %d %s", i, g.id, g.task, i+1, tasks[i])
		}
	}
	if s.other != 1 || s.bad != nil {
		t.Errorf("other=%d bad=%v, want the binary message as the one other message", s.other, s.bad)
	}
	if code := websocket.CloseStatus(s.ended); code != 4008 {
		t.Errorf("ended: %v, want close code 4008", s.ended)
	}
}
