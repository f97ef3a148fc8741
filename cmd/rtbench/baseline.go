package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tasker/tasker/gen/api"
)

// serveBaseline runs the same-run baseline for mode fanout: the least a Go server built on
// coder/websocket does to fan a task create out to its project's sockets. It answers the calls
// mode fanout makes (sign-up, team, project, task create; one user only) with made-up resources,
// and on a task create hands the event frame, shaped as Tasker's, to every subscribed socket's
// buffered channel before it responds. Each socket has a reader and a writer goroutine, as in
// Tasker, but there is no database, no authentication, no middleware and no per-frame timeout.
// /metrics has the same Go and process collectors as the server's.
func serveBaseline(ctx context.Context, addr string) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b := &baseline{user: uuid.New(), conns: map[*baselineConn]struct{}{}}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /v1/auth/signup", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UTC()
		reply(w, http.StatusCreated, api.SignupResult{
			Tenant: api.Tenant{CreatedAt: now, Id: uuid.New(), Name: "Baseline", Plan: "free", Slug: "baseline"},
			Tokens: api.TokenPair{AccessToken: "baseline", ExpiresIn: 900, RefreshToken: "baseline", TokenType: "Bearer"},
			User:   api.User{CreatedAt: now, Email: "owner@example.test", Id: b.user, Name: "Owner", Role: api.UserRoleOwner, Status: "active", UpdatedAt: now},
		})
	})
	mux.HandleFunc("POST /v1/teams", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UTC()
		reply(w, http.StatusCreated, api.Team{CreatedAt: now, Id: uuid.New(), Key: "RT", Name: "Realtime", UpdatedAt: now})
	})
	mux.HandleFunc("POST /v1/projects", func(w http.ResponseWriter, r *http.Request) {
		var in api.ProjectCreate
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now().UTC()
		reply(w, http.StatusCreated, api.Project{CreatedAt: now, Id: uuid.New(), Key: in.Key, Name: in.Name, Status: "active", TeamId: in.TeamId, UpdatedAt: now})
	})
	mux.HandleFunc("POST /v1/projects/{id}/tasks", b.createTask)
	mux.HandleFunc("GET /v1/realtime", b.serveSocket)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Printf("baseline fan-out server on http://%s\n", addr)
	err := srv.ListenAndServe()
	fmt.Printf("baseline: %d frames dropped for full send queues\n", b.dropped.Load())
	return err
}

type baseline struct {
	user    uuid.UUID
	number  atomic.Int64
	mu      sync.Mutex // guards lastID and conns
	lastID  int64
	conns   map[*baselineConn]struct{}
	dropped atomic.Int64
}

type baselineConn struct {
	topic string
	ch    chan []byte
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (b *baseline) createTask(w http.ResponseWriter, r *http.Request) {
	project, err := uuid.Parse(r.PathValue("id"))
	var in api.TaskCreate
	if err == nil {
		err = json.NewDecoder(r.Body).Decode(&in)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now().UTC()
	n := b.number.Add(1)
	task := api.Task{CreatedAt: now, CreatedBy: b.user, Id: uuid.New(), Key: fmt.Sprintf("RT-%d", n), Labels: []string{},
		Number: n, Position: float64(n), ProjectId: project, Status: "backlog", Title: in.Title, UpdatedAt: now, Version: 1}
	data, _ := json.Marshal(task)
	topic := "project:" + project.String()
	// The id is taken under the lock that fans out, so ids reach every socket in order.
	b.mu.Lock()
	b.lastID++
	frame, _ := json.Marshal(struct {
		Type         string          `json:"type"`
		ID           int64           `json:"id"`
		Topic        string          `json:"topic"`
		Event        string          `json:"event"`
		ResourceType string          `json:"resource_type"`
		ResourceID   uuid.UUID       `json:"resource_id"`
		ProjectID    uuid.UUID       `json:"project_id"`
		Data         json.RawMessage `json:"data"`
		Actor        uuid.UUID       `json:"actor"`
		At           time.Time       `json:"at"`
	}{"event", b.lastID, topic, "task.created", "task", task.Id, project, data, b.user, now})
	for c := range b.conns {
		if c.topic != topic {
			continue
		}
		select {
		case c.ch <- frame:
		default:
			b.dropped.Add(1) // a slow consumer; Tasker would close it with 4008
		}
	}
	b.mu.Unlock()
	reply(w, http.StatusCreated, task)
}

func (b *baseline) serveSocket(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"tasker.v1"}, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sub struct{ Type, Topic string }
	_, msg, err := ws.Read(ctx)
	if err != nil || json.Unmarshal(msg, &sub) != nil || sub.Type != "subscribe" || !strings.HasPrefix(sub.Topic, "project:") {
		ws.Close(websocket.StatusPolicyViolation, "want a subscribe message first")
		return
	}
	c := &baselineConn{topic: sub.Topic, ch: make(chan []byte, 256)}
	b.mu.Lock()
	b.conns[c] = struct{}{}
	last := b.lastID
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	ok, _ := json.Marshal(map[string]any{"type": "subscribed", "topic": sub.Topic, "last_id": last})
	if ws.Write(ctx, websocket.MessageText, ok) != nil {
		return
	}
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case f := <-c.ch:
				if ws.Write(ctx, websocket.MessageText, f) != nil {
					return
				}
			}
		}
	}()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return
		}
	}
}
