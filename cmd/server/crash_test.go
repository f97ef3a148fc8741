package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
	"github.com/tasker/tasker/internal/tokens"
)

// childEnv, when set in a test binary's environment, makes it the server instead of the tests
// (see TestMain): the crash test starts and kills real server processes.
const childEnv = "TASKER_TEST_CHILD"

// TestWebhookDeliverySurvivesKilledServers kills servers with SIGKILL around deliveries:
//   - server A queues a delivery whose receiver is down (its first attempt fails), and is
//     killed while the retry waits;
//   - server C, which runs no deliveries, commits a second event, and is killed too;
//   - server B starts with the receiver up: it sends the retried delivery and dispatches the
//     event no running dispatcher saw, so the receiver gets both.
func TestWebhookDeliverySurvivesKilledServers(t *testing.T) {
	t.Parallel()
	receiverAddr := freeAddr(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keysFile := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(keysFile, tokens.EncodePEM(tokens.GenerateKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	apiAddr := freeAddr(t)
	base := []string{
		"DATABASE_URL=" + testdb.Get(t).AppURL, "LISTEN_ADDR=" + apiAddr, "JWT_SIGNING_KEYS_FILE=" + keysFile,
		"ARGON2_MEMORY_KIB=1024", "ARGON2_TIME=1", "WEBHOOK_ALLOW_PRIVATE=true", "WEBHOOK_RETRY_BASE=3s",
		"WEBHOOK_RETRY_MAX=5s", "WEBHOOK_SWEEP_INTERVAL=500ms", "WEBHOOK_TIMEOUT=2s", "LOG_LEVEL=warn",
	}
	withWebhooks := append(append([]string{}, base...), "WEBHOOK_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(key))

	a := startChild(t, apiAddr, withWebhooks)
	client, err := api.NewClientWithResponses("http://" + apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	slug := fmt.Sprintf("crash-%d", time.Now().UnixNano()%1e9)
	su, err := client.SignupWithResponse(ctx, api.SignupRequest{TenantName: "Crash", TenantSlug: slug,
		Email: openapi_types.Email("o@crash.test"), Password: "correct horse battery", Name: "O"})
	if err != nil || su.JSON201 == nil {
		t.Fatalf("signup: %v", err)
	}
	owner := apitest.Bearer(su.JSON201.Tokens.AccessToken)
	team, _ := client.CreateTeamWithResponse(ctx, nil, api.TeamCreate{Name: "T", Key: "TT"}, owner)
	proj, _ := client.CreateProjectWithResponse(ctx, nil, api.ProjectCreate{TeamId: team.JSON201.Id, Name: "P", Key: "PP"}, owner)
	hook, _ := client.CreateWebhookEndpointWithResponse(ctx, api.WebhookEndpointCreate{
		Url: "http://" + receiverAddr + "/hooks", EventTypes: []api.WebhookEventType{"task.created"}}, owner)
	if hook.JSON201 == nil {
		t.Fatalf("endpoint: %s", hook.Body)
	}
	newTask := func(title string) string {
		r, err := client.CreateTaskWithResponse(ctx, proj.JSON201.Id, nil, api.TaskCreate{Title: title}, owner)
		if err != nil || r.JSON201 == nil {
			t.Fatalf("create task: %v", err)
		}
		return r.JSON201.Id.String()
	}
	first := newTask("before the crash")
	// The first attempt fails (nothing listens yet); kill A while the retry waits.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, _ := client.ListWebhookDeliveriesWithResponse(ctx, hook.JSON201.Id, nil, owner)
		if l.JSON200 != nil && len(l.JSON200.Items) == 1 && len(l.JSON200.Items[0].Attempts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed first attempt: %s", l.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// River records the snooze a moment later (its completer batches): until then the job counts
	// as running, and a crash leaves it to River's rescuer (WEBHOOK_TIMEOUT plus two minutes).
	admin := testdb.Get(t).AdminPool(t)
	for {
		var running bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM river_job WHERE state = 'running')`).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job still runs after its attempt")
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.kill(t)

	c := startChild(t, apiAddr, base)
	second := newTask("while no server delivers")
	c.kill(t)

	rcv := &crashReceiver{got: map[string]int{}}
	ln, err := net.Listen("tcp", receiverAddr)
	if err != nil {
		t.Fatalf("the receiver's port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	b := startChild(t, apiAddr, withWebhooks)
	defer b.stop(t)
	deadline = time.Now().Add(20 * time.Second)
	for !rcv.has(first) || !rcv.has(second) {
		if time.Now().After(deadline) {
			var jobs []string
			rows, _ := admin.Query(ctx, `SELECT state || ' attempt=' || attempt || ' scheduled=' || scheduled_at || ' now=' || now() || ' errors=' || coalesce(errors::text, '') FROM river_job`)
			for rows.Next() {
				var s string
				_ = rows.Scan(&s)
				jobs = append(jobs, s)
			}
			t.Fatalf("after the restart the receiver got %v, want tasks %s and %s; jobs %v", rcv.snapshot(), first, second, jobs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type crashReceiver struct {
	mu  sync.Mutex
	got map[string]int // task id -> deliveries
}

func (r *crashReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var m struct {
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	body, _ := io.ReadAll(req.Body)
	if json.Unmarshal(body, &m) == nil && m.Type == "task.created" {
		r.mu.Lock()
		r.got[m.Data.ID]++
		r.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *crashReceiver) has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id] > 0
}

func (r *crashReceiver) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.got {
		out[k] = v
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// child is a server process started from this test binary.
type child struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
}

func startChild(t *testing.T, addr string, environ []string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = append(append(os.Environ(), childEnv+"=serve"), environ...)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: logs}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL: no shutdown runs.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

// stop ends the server gracefully.
func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Wait()
}
