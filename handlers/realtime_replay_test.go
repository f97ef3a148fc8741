package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/realtime"
	"github.com/tasker/tasker/internal/testdb"
)

// A client that keeps going away and coming back with since, while four writers commit 200
// tasks, sees every event id from the first to the last exactly once, in increasing order:
// nothing committed while it resubscribes is lost or doubled, whether it reconnects or
// resubscribes on the same socket.
func TestRealtimeSinceReplaysEveryEventOnceWhileWritesCommit(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	topic := projectTopic(f.project.Id)
	sock := env.MustDial(t, f.acct.Tokens.AccessToken)
	first := int64(sock.Subscribe(topic, nil)["last_id"].(float64)) + 1

	const writers, perWriter = 4, 50
	var created atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				resp, err := env.Client.CreateTaskWithResponse(context.Background(), f.project.Id, nil,
					api.TaskCreate{Title: fmt.Sprintf("w%d-%d", w, i)}, f.owner)
				if err != nil || resp.StatusCode() != http.StatusCreated {
					t.Errorf("create task: %v %v", err, resp)
					return
				}
				created.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	last := first + writers*perWriter - 1

	var seen []int64
	tasks := map[string]bool{}
	// read takes n events (or, with n < 0, events until the last); false when it got them all.
	read := func(n int) bool {
		t.Helper()
		for n != 0 {
			if len(seen) > 0 && seen[len(seen)-1] >= last {
				return false
			}
			m := sock.Next()
			if m.Type() != "event" || m.Str("topic") != topic || m.Str("event") != "task.created" {
				t.Fatalf("got %v, want a task.created on %s", m, topic)
			}
			if len(seen) > 0 && m.ID() <= seen[len(seen)-1] {
				t.Fatalf("event %d after %d: ids must increase (seen so far: %d events)", m.ID(), seen[len(seen)-1], len(seen))
			}
			seen = append(seen, m.ID())
			id := m.Data()["id"].(string)
			if tasks[id] {
				t.Fatalf("task %s delivered twice", id)
			}
			tasks[id] = true
			n--
		}
		return true
	}
	reconnects, whileWriting := 0, 0
	for round := 0; read(3 + round%7); round++ {
		since := seen[len(seen)-1]
		select {
		case <-done:
		default:
			whileWriting++
		}
		if round%3 == 2 {
			// Resubscribe on the same socket: what was queued before "unsubscribed" counts.
			sock.Send(map[string]any{"type": "unsubscribe", "topic": topic})
			for {
				m := sock.Next()
				if m.Type() == "unsubscribed" {
					break
				}
				if m.Type() != "event" || m.ID() <= since {
					t.Fatalf("before unsubscribed: got %v", m)
				}
				seen = append(seen, m.ID())
				tasks[m.Data()["id"].(string)] = true
				since = m.ID()
			}
		} else {
			_ = sock.Conn.CloseNow()
			sock = env.MustDial(t, f.acct.Tokens.AccessToken)
		}
		reconnects++
		sock.Subscribe(topic, &since)
	}
	<-done
	t.Logf("%d resubscriptions, %d of them while writes were committing", reconnects, whileWriting)
	if whileWriting < 3 {
		t.Errorf("only %d resubscriptions overlapped the writes; the test proves little", whileWriting)
	}
	if int(created.Load()) != writers*perWriter {
		t.Fatalf("%d tasks created, want %d", created.Load(), writers*perWriter)
	}
	if int64(len(seen)) != last-first+1 || seen[0] != first || seen[len(seen)-1] != last {
		t.Fatalf("saw %d events from %d to %d, want every id from %d to %d", len(seen), seen[0], seen[len(seen)-1], first, last)
	}
	for i, id := range seen {
		if id != first+int64(i) {
			t.Fatalf("event %d has id %d, want %d: a gap or a duplicate", i, id, first+int64(i))
		}
	}
	// Nothing beyond: the next message is the answer to a ping.
	sock.Send(map[string]any{"type": "ping"})
	sock.Expect("pong")
}

// since past retention answers since_expired (the client must reload through REST); since
// beyond the newest id, or negative, since_invalid; since equal to the newest id is fine.
//
// The tenant's events are dated back three days (as the superuser), so pruning what is older
// than two touches no other test's.
func TestRealtimeSinceBeyondRetentionOrNewestIsRefused(t *testing.T) {
	t.Parallel()
	env := apitest.NewWithOptions(t, apitest.Options{Realtime: true})
	f := newRTFixture(t, env)
	topic := projectTopic(f.project.Id)
	sock := env.MustDial(t, f.acct.Tokens.AccessToken)
	old := int64(sock.Subscribe(topic, nil)["last_id"].(float64))
	f.createTask(t, "a")
	f.createTask(t, "b")
	newest := old + 2
	for range 2 {
		sock.Expect("event")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := testdb.Get(t).AdminPool(t).Exec(ctx, "UPDATE events SET created_at = now() - interval '3 days' WHERE tenant_id = $1",
		f.acct.Tenant.Id); err != nil {
		t.Fatal(err)
	}
	if n, err := env.Realtime.Prune(ctx, time.Now().Add(-48*time.Hour)); err != nil || n < 2 {
		t.Fatalf("prune: %d %v", n, err)
	}
	// Nothing younger than an hour is pruned, whatever the caller asks: the application role
	// calls the function.
	f.createTask(t, "fresh")
	sock.Expect("event")
	if n, err := env.Realtime.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("prune of fresh events: %d %v, want 0", n, err)
	}
	newest++

	again := env.MustDial(t, f.acct.Tokens.AccessToken)
	for _, c := range []struct {
		since int64
		code  string
	}{
		{old, realtime.ErrSinceExpired},
		{0, realtime.ErrSinceExpired},
		{newest + 1, realtime.ErrSinceInvalid},
		{-1, realtime.ErrSinceInvalid},
	} {
		again.Send(map[string]any{"type": "subscribe", "topic": topic, "since": c.since})
		m := again.ExpectError(c.code, topic)
		t.Logf("since %d: %s", c.since, m.Str("message"))
	}
	// Nothing was missed after the newest id, so that one needs no pruned event.
	if m := again.Subscribe(topic, &newest); int64(m["last_id"].(float64)) != newest {
		t.Fatalf("subscribed at %v, want last_id %d", m, newest)
	}
	live := f.createTask(t, "live")
	if ev := expectEvent(t, again, "task.created", topic, live.Id); ev.ID() != newest+1 {
		t.Fatalf("live event id %d, want %d", ev.ID(), newest+1)
	}
}
