package handlers_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/handlers/apitest"
	"github.com/tasker/tasker/internal/testdb"
)

// statementCounter counts every statement sent to PostgreSQL, BEGIN and COMMIT included.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func countingPool(b *testing.B) (*pgxpool.Pool, *statementCounter) {
	cfg, err := pgxpool.ParseConfig(testdb.Get(b).AppURL)
	if err != nil {
		b.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
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
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "sql/op")
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
	b.ReportMetric(float64(counter.n.Load())/float64(b.N), "sql/op")
}
