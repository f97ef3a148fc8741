package handlers_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
)

// statementCounter counts round trips to PostgreSQL: each statement sent on its own (BEGIN and
// COMMIT included) and each pipelined batch; begins counts the transactions opened.
type statementCounter struct{ n, begins atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, q pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	if strings.HasPrefix(q.SQL, "BEGIN") {
		c.begins.Add(1)
	}
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A pipelined batch is one round trip, whatever it holds.
func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

// A write transaction opens with BEGIN inside its first batch.
func (c *statementCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, q pgx.TraceBatchQueryData) {
	if strings.HasPrefix(q.SQL, "BEGIN") {
		c.begins.Add(1)
	}
}

func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func countingPool(tb testing.TB) (*pgxpool.Pool, *statementCounter) {
	cfg, err := pgxpool.ParseConfig(testdb.Get(tb).AppURL)
	if err != nil {
		tb.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool, counter
}

// BenchmarkRefreshEndToEnd rotates one session's refresh token through the real HTTP stack and
// reports the SQL statements each rotation costs.
func BenchmarkRefreshEndToEnd(b *testing.B) {
	pool, counter := countingPool(b)
	env := apitest.NewWithOptions(b, apitest.Options{Pool: pool})
	a := env.Signup(b)
	token := a.Tokens.RefreshToken
	ctx := context.Background()
	counter.n.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := env.Client.RefreshWithResponse(ctx, api.RefreshRequest{RefreshToken: token})
		if err != nil || resp.JSON200 == nil {
			b.Fatalf("refresh: %v %v", err, resp)
		}
		token = resp.JSON200.RefreshToken
	}
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkAuthenticatedReadWithAPIKey measures GET /v1/me with an API key, which costs a
// database lookup per request (access tokens cost none).
func BenchmarkAuthenticatedReadWithAPIKey(b *testing.B) {
	pool, counter := countingPool(b)
	env := apitest.NewWithOptions(b, apitest.Options{Pool: pool})
	a := env.Signup(b)
	k, err := env.Client.CreateAPIKeyWithResponse(context.Background(), api.APIKeyCreate{Name: "bench", Role: api.UserRoleViewer}, apitest.Bearer(a.Tokens.AccessToken))
	if err != nil || k.JSON201 == nil {
		b.Fatal(err)
	}
	counter.n.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := env.Client.GetMeWithResponse(context.Background(), apitest.Bearer(k.JSON201.Key))
		if err != nil || resp.JSON200 == nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "roundtrips/op")
}

// benchGet measures a GET through the real stack with a plain client (no response validation),
// so the numbers are the server's.
func benchGet(b *testing.B, env *apitest.Env, path, token string) {
	benchDo(b, token, func() *http.Request {
		req, _ := http.NewRequest(http.MethodGet, env.URL+path, nil)
		return req
	})
}

// benchDo sends the request newReq makes b.N times, each of which must answer 200.
func benchDo(b *testing.B, token string, newReq func() *http.Request) {
	client := &http.Client{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := newReq()
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func benchWorkspace(b *testing.B, tasks int) (*apitest.Env, *statementCounter, api.Project, api.Task, string) {
	pool, counter := countingPool(b)
	env := apitest.NewWithOptions(b, apitest.Options{Pool: pool})
	a := env.Signup(b)
	owner := apitest.Bearer(a.Tokens.AccessToken)
	team, _ := env.Client.CreateTeamWithResponse(context.Background(), nil, api.TeamCreate{Name: "T", Key: "TT"}, owner)
	proj, _ := env.Client.CreateProjectWithResponse(context.Background(), nil, api.ProjectCreate{TeamId: team.JSON201.Id, Name: "P", Key: "PP"}, owner)
	var last api.Task
	for i := 0; i < tasks; i++ {
		t, err := env.Client.CreateTaskWithResponse(context.Background(), proj.JSON201.Id, nil, api.TaskCreate{Title: "benchmark task"}, owner)
		if err != nil || t.JSON201 == nil {
			b.Fatal(err)
		}
		last = *t.JSON201
	}
	counter.n.Store(0)
	return env, counter, *proj.JSON201, last, a.Tokens.AccessToken
}

func BenchmarkGetTask(b *testing.B) {
	env, counter, _, task, token := benchWorkspace(b, 1)
	benchGet(b, env, "/v1/tasks/"+task.Id.String(), token)
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "roundtrips/op")
}

func BenchmarkListTasks50(b *testing.B) {
	env, counter, proj, _, token := benchWorkspace(b, 60)
	benchGet(b, env, "/v1/projects/"+proj.Id.String()+"/tasks?limit=50", token)
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkUpdateTask is one task write through HTTP: the write path's round trips (BEGIN with
// the tenant, the caller's standing, the task, the change, the audit row, COMMIT).
func BenchmarkUpdateTask(b *testing.B) {
	env, counter, _, task, token := benchWorkspace(b, 1)
	benchDo(b, token, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPatch, env.URL+"/v1/tasks/"+task.Id.String(), strings.NewReader(`{"priority":2}`))
		req.Header.Set("Content-Type", "application/json")
		return req
	})
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "roundtrips/op")
}
