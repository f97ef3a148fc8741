package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
)

// epoch is the run's clock: every timestamp is nanoseconds since it, on the monotonic clock.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// receipt is one task event as a socket received it.
type receipt struct {
	id   int64     // the event id
	task uuid.UUID // data.id
	at   int64     // when the whole frame had been read
}

// subscriber is one socket. Only the goroutine that reads it (its own, or its poller for
// -client epoll) touches it until the run ends.
type subscriber struct {
	ws     *websocket.Conn // -client library only
	got    []receipt
	bytes  int64    // of the task.created frames
	other  int      // messages that are not task.created events
	errors []string // the first error messages the server sent
	ended  error    // why the socket ended before the run stopped it, if it did
	bad    error    // a frame the fast parser and encoding/json read differently
}

// write is one task create of the paced writer.
type write struct {
	sent, done int64 // just before the request was sent; when its response had been read
	task       uuid.UUID
	err        error
}

func fanout(ctx context.Context, o options) error {
	client, err := newClient(o.url, 64)
	if err != nil {
		return err
	}
	t, err := signup(ctx, client)
	if err != nil {
		return err
	}
	tokens := []string{t.owner}
	for i := 1; i < o.users; i++ {
		tok, err := t.addMember(ctx, client, i)
		if err != nil {
			return err
		}
		tokens = append(tokens, tok)
	}
	clientDesc := o.client
	if o.client == "epoll" {
		clientDesc += fmt.Sprintf(" readers=%d", o.readers)
	}
	fmt.Printf("client=%s tenant=%s project=%s users=%d subscribers=%d (%d per user at most)\n",
		clientDesc, t.slug, t.project, o.users, o.subscribers, (o.subscribers+o.users-1)/o.users)

	before, err := settle(ctx, o.url, "before", o.gcWait)
	if err != nil {
		return err
	}

	// Open the sockets, -dialers at a time; each is then read, by its own goroutine or by a
	// poller, until the run stops it.
	wsURL := "ws" + strings.TrimPrefix(o.url, "http") + "/v1/realtime"
	topic := "project:" + t.project.String()
	subs := make([]*subscriber, o.subscribers)
	var (
		received atomic.Int64
		opened   sync.WaitGroup
		readers  sync.WaitGroup
		failMu   sync.Mutex
		failures []error
	)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var ep *epollClient
	if o.client == "epoll" {
		if ep, err = startEpoll(rctx, o.url, o.readers, o.subscribers, &received, &readers); err != nil {
			return err
		}
	}
	sem := make(chan struct{}, o.dialers)
	openStart := time.Now()
	for i := range subs {
		s := &subscriber{}
		subs[i] = s
		opened.Add(1)
		readers.Add(1)
		go func() {
			defer readers.Done()
			sem <- struct{}{}
			var err error
			if ep != nil {
				err = ep.open(rctx, i, s, tokens[i%len(tokens)], topic)
			} else {
				err = s.open(rctx, wsURL, tokens[i%len(tokens)], topic)
			}
			<-sem
			if err != nil {
				failMu.Lock()
				failures = append(failures, err)
				failMu.Unlock()
				opened.Done()
				return
			}
			opened.Done()
			if ep == nil {
				s.read(rctx, &received)
			}
		}()
	}
	opened.Wait()
	openTime := time.Since(openStart)
	if len(failures) > 0 {
		stop()
		readers.Wait()
		return fmt.Errorf("%d of %d sockets failed to open or subscribe; the first: %w", len(failures), o.subscribers, failures[0])
	}
	fmt.Printf("opened and subscribed %d sockets in %s (%.0f/s)\n", o.subscribers, openTime.Round(time.Millisecond),
		float64(o.subscribers)/openTime.Seconds())

	idle, err := settle(ctx, o.url, "open", o.gcWait)
	if err != nil {
		return err
	}
	n := float64(o.subscribers)
	fmt.Printf("server memory per idle socket: rss=%.1fKiB heap_inuse=%.1fKiB heap_alloc=%.1fKiB stack_inuse=%.1fKiB (deltas / %d; goroutines +%.0f, fds +%.0f)\n",
		(idle.rss-before.rss)/n/kib, (idle.heapInuse-before.heapInuse)/n/kib, (idle.heapAlloc-before.heapAlloc)/n/kib,
		(idle.stackInuse-before.stackInuse)/n/kib, o.subscribers, idle.goroutines-before.goroutines, idle.openFDs-before.openFDs)

	// Paced writes: write i goes at start + i/rate, each on its own goroutine, so a slow
	// response never delays the next write.
	count := int(o.duration.Seconds() * o.rate)
	interval := time.Duration(float64(time.Second) / o.rate)
	writes := make([]write, count)
	var wg sync.WaitGroup
	cpuServer0, cpuClient0 := idle.cpu, cpuSeconds()
	wstart := time.Now()
	var lag time.Duration
	for i := range writes {
		at := wstart.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		lag = max(lag, time.Since(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &writes[i]
			w.sent = now()
			w.task, w.err = t.createTask(ctx, client, "rtbench "+strconv.Itoa(i))
			w.done = now()
		}()
	}
	wg.Wait()
	writeTime := time.Since(wstart)
	ok := 0
	var firstErr error
	var writeLat durations
	for _, w := range writes {
		if w.err != nil {
			if firstErr == nil {
				firstErr = w.err
			}
			continue
		}
		ok++
		writeLat = append(writeLat, w.done-w.sent)
	}

	// Grace: until every socket has every event (and a little longer, for duplicates), or
	// the grace period ends.
	expected := int64(ok) * int64(o.subscribers)
	graceEnd := time.Now().Add(o.grace)
	for received.Load() < expected && time.Now().Before(graceEnd) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(min(500*time.Millisecond, time.Until(graceEnd)))
	after, err := scrape(ctx, o.url)
	if err != nil {
		return err
	}
	cpuClient := cpuSeconds() - cpuClient0
	stop()
	readers.Wait()

	fmt.Printf("writes: scheduled=%d ok=%d failed=%d rate=%.2f/s (ok / -duration; target %.4g/s) last-response-at=%s send-lag-max=%s latency %s\n",
		count, ok, count-ok, float64(ok)/o.duration.Seconds(), o.rate, writeTime.Round(time.Millisecond),
		lag.Round(time.Microsecond), writeLat.summary())
	if firstErr != nil {
		fmt.Printf("writes: first error: %v\n", firstErr)
	}
	r := match(subs, writes)
	fmt.Printf("deliveries: expected=%d delivered=%d missed=%d (writes missed by some socket: %d) duplicated=%d out-of-order=%d unmatched=%d other-messages=%d sockets-ended-early=%d frame-bytes-avg=%d\n",
		expected, r.delivered, r.missed, r.missedWrites, r.duplicated, r.outOfOrder, r.unmatched, r.other, r.ended, r.bytes/max(r.frames, 1))
	for reason, k := range r.endReasons {
		fmt.Printf("deliveries: %d sockets ended early: %s\n", k, reason)
	}
	for _, e := range r.errors {
		fmt.Printf("deliveries: server error message: %s\n", e)
	}
	fmt.Printf("latency from send (upper bound: the write was sent before it committed): %s\n", r.fromSend.summary())
	fmt.Printf("latency from response (lower bound: it committed before its response; negative = event before response): %s\n", r.fromResp.summary())
	fmt.Printf("fan-out complete (last socket's receipt, from send): %s\n", r.lastFromSend.summary())
	fmt.Printf("cpu during writes and grace: server=%.2fs client=%.2fs over %s (2 cores shared with PostgreSQL)\n",
		after.cpu-cpuServer0, cpuClient, time.Since(wstart).Round(time.Millisecond))
	if r.bad != nil {
		return r.bad
	}
	if r.missed > 0 || r.duplicated > 0 || r.outOfOrder > 0 || ok < count {
		return errors.New("deliveries or writes were lost, duplicated or out of order (see above)")
	}
	return nil
}

// open dials, subscribes to topic, and reads until the server confirms.
func (s *subscriber) open(ctx context.Context, url, token, topic string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
		Subprotocols: []string{"tasker.v1"},
	})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %s: %w", resp.Status, err)
		}
		return fmt.Errorf("dial: %w", err)
	}
	s.ws = ws
	msg, _ := json.Marshal(map[string]string{"type": "subscribe", "topic": topic})
	if err := ws.Write(ctx, websocket.MessageText, msg); err != nil {
		ws.CloseNow()
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			return fmt.Errorf("subscribe: %w", err)
		}
		var m struct{ Type, Topic, Code, Message string }
		if err := json.Unmarshal(data, &m); err != nil {
			ws.CloseNow()
			return fmt.Errorf("subscribe: %w: %s", err, data)
		}
		switch {
		case m.Type == "subscribed" && m.Topic == topic:
			return nil
		case m.Type == "error":
			ws.CloseNow()
			return fmt.Errorf("subscribe: %s: %s", m.Code, m.Message)
		}
	}
}

// read records every frame until ctx ends or the socket does; received counts task events
// over all sockets.
func (s *subscriber) read(ctx context.Context, received *atomic.Int64) {
	var buf bytes.Buffer
	for {
		_, r, err := s.ws.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		at := now()
		if err != nil {
			if ctx.Err() == nil {
				s.ended = err
			}
			s.ws.CloseNow()
			return
		}
		s.record(buf.Bytes(), at, received)
	}
}

// record takes in one whole message, read at at; it keeps nothing of msg.
func (s *subscriber) record(msg []byte, at int64, received *atomic.Int64) {
	id, task, ok := parseTaskCreated(msg)
	if ok && len(s.got) == 0 {
		s.bad = crossCheck(msg, id, task)
	}
	if !ok {
		s.other++
		if bytes.HasPrefix(msg, []byte(`{"type":"error"`)) && len(s.errors) < 3 {
			s.errors = append(s.errors, string(msg))
		}
		return
	}
	s.got = append(s.got, receipt{id: id, task: task, at: at})
	s.bytes += int64(len(msg))
	received.Add(1)
}

var (
	eventPrefix  = []byte(`{"type":"event","id":`)
	createdField = []byte(`"event":"task.created"`)
	dataField    = []byte(`"data":{`)
	idField      = []byte(`"id":"`)
)

// parseTaskCreated reads the event id and data.id of a task.created frame without decoding
// the whole of it: the client shares two cores with the server, and at 20,000 frames a second
// encoding/json would be a noticeable share of them. It relies on the field order the server
// writes (type, id, ..., event, ..., data); the first frame of every socket is checked against
// encoding/json (crossCheck). A JSON string cannot hold an unescaped quote, so `"id":"` inside
// data is its own key, not text in a title (and not "project_id", whose quote comes earlier).
func parseTaskCreated(msg []byte) (int64, uuid.UUID, bool) {
	rest, ok := bytes.CutPrefix(msg, eventPrefix)
	if !ok {
		return 0, uuid.Nil, false
	}
	comma := bytes.IndexByte(rest, ',')
	if comma < 0 {
		return 0, uuid.Nil, false
	}
	id, err := strconv.ParseInt(string(rest[:comma]), 10, 64)
	if err != nil || !bytes.Contains(rest, createdField) {
		return 0, uuid.Nil, false
	}
	_, data, ok := bytes.Cut(rest, dataField)
	if !ok {
		return 0, uuid.Nil, false
	}
	_, v, ok := bytes.Cut(data, idField)
	if !ok || len(v) < 36 {
		return 0, uuid.Nil, false
	}
	task, err := uuid.ParseBytes(v[:36])
	if err != nil {
		return 0, uuid.Nil, false
	}
	return id, task, true
}

func crossCheck(msg []byte, id int64, task uuid.UUID) error {
	var m struct {
		Type  string `json:"type"`
		ID    int64  `json:"id"`
		Event string `json:"event"`
		Data  struct {
			ID uuid.UUID `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(msg, &m); err != nil || m.Type != "event" || m.Event != "task.created" || m.ID != id || m.Data.ID != task {
		return fmt.Errorf("the fast parser read id=%d data.id=%s from a frame encoding/json reads otherwise (%v): %s", id, task, err, msg)
	}
	return nil
}

// result is what the sockets received, matched to the writes.
type result struct {
	delivered, missed, missedWrites, duplicated, outOfOrder, unmatched, other, ended int
	frames, bytes                                                                    int64
	endReasons                                                                       map[string]int
	errors                                                                           []string
	fromSend, fromResp, lastFromSend                                                 durations
	bad                                                                              error
}

// match pairs each socket's receipts with the writes by task id. A duplicate is an event id a
// socket got twice (or a second event for the same task); out of order is an event id below
// one the socket already had; missed is a successful write some socket never got.
func match(subs []*subscriber, writes []write) result {
	r := result{endReasons: map[string]int{}}
	index := make(map[uuid.UUID]int, len(writes))
	for i, w := range writes {
		if w.err == nil {
			index[w.task] = i
		}
	}
	last := make([]int64, len(writes))
	missedBy := make([]bool, len(writes))
	for _, s := range subs {
		r.other += s.other
		r.frames += int64(len(s.got))
		r.bytes += s.bytes
		if r.bad == nil {
			r.bad = s.bad
		}
		if len(r.errors) < 5 {
			r.errors = append(r.errors, s.errors...)
		}
		if s.ended != nil {
			r.ended++
			reason := s.ended.Error()
			if code := websocket.CloseStatus(s.ended); code != -1 {
				reason = fmt.Sprintf("close code %d", code)
			}
			r.endReasons[reason]++
		}
		seen := make(map[int64]struct{}, len(s.got))
		have := make([]bool, len(writes))
		var maxID int64
		for _, g := range s.got {
			if _, dup := seen[g.id]; dup {
				r.duplicated++
				continue
			}
			seen[g.id] = struct{}{}
			if g.id < maxID {
				r.outOfOrder++
			}
			maxID = max(maxID, g.id)
			i, ok := index[g.task]
			switch {
			case !ok:
				r.unmatched++
				continue
			case have[i]:
				r.duplicated++
				continue
			}
			have[i] = true
			r.delivered++
			w := writes[i]
			r.fromSend = append(r.fromSend, g.at-w.sent)
			r.fromResp = append(r.fromResp, g.at-w.done)
			last[i] = max(last[i], g.at)
		}
		for i, w := range writes {
			if w.err == nil && !have[i] {
				r.missed++
				missedBy[i] = true
			}
		}
	}
	for i, w := range writes {
		if w.err != nil {
			continue
		}
		if missedBy[i] {
			r.missedWrites++
		} else {
			r.lastFromSend = append(r.lastFromSend, last[i]-w.sent)
		}
	}
	if len(r.errors) > 5 {
		r.errors = r.errors[:5]
	}
	slices.Sort(r.errors)
	return r
}
