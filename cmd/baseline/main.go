// Command baseline serves the task list and task read with nothing but net/http, a pgx pool and
// the same generated queries the API runs: no authentication, no validation, no transaction and,
// connected as a superuser, no row-level security. It is the floor that scripts/bench-tasks.sh
// measures the API against; never expose it.
//
// The tenant is a parameter of the queries (-tenant). With -rls, baseline instead runs each query
// as the application role with that tenant set, through tenancy.Read as the API's reads do (one
// pipelined round trip), which isolates what authentication, validation and the handlers cost.
//
//	baseline -listen 127.0.0.1:8090 -database-url "$DATABASE_URL" -tenant <bench tenant id> [-rls]
//	curl '127.0.0.1:8090/projects/{id}/tasks?limit=50'
//	curl '127.0.0.1:8090/tasks/{id}'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/cursor"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/tenancy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on")
	url := flag.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL, as a superuser (default $DATABASE_URL)")
	maxConns := flag.Int("max-conns", 10, "pool size (the server's DB_MAX_CONNS defaults to 10 too)")
	tenantFlag := flag.String("tenant", "", "the tenant whose tasks are read (required)")
	rls := flag.Bool("rls", false, "read as tasker_app with the tenant set (RLS on), as the API does")
	flag.Parse()
	tenant, err := uuid.Parse(*tenantFlag)
	if err != nil {
		return fmt.Errorf("-tenant: %w", err)
	}

	var (
		pool *pgxpool.Pool
		// read runs fn with queries against the database, with or without a tenant scope.
		read func(ctx context.Context, fn func(q *db.Queries) error) error
	)
	if !*rls {
		cfg, err := pgxpool.ParseConfig(*url)
		if err != nil {
			return err
		}
		cfg.MaxConns = int32(*maxConns)
		if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return err
		}
		read = func(_ context.Context, fn func(q *db.Queries) error) error { return fn(db.New(pool)) }
	} else {
		if pool, err = database.Open(ctx, *url, database.Options{MaxConns: int32(*maxConns)}); err != nil {
			return err
		}
		tdb := tenancy.New(pool)
		read = func(ctx context.Context, fn func(q *db.Queries) error) error {
			return tdb.Read(ctx, tenancy.Scope{Tenant: tenant}, fn)
		}
	}
	defer pool.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /projects/{id}/tasks", func(w http.ResponseWriter, r *http.Request) {
		project, _ := uuid.Parse(r.PathValue("id"))
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil || limit < 1 {
			limit = 50
		}
		// One row more than the page says whether there is a next page, as the API does.
		var rows []db.ListProjectTasksRow
		err = read(r.Context(), func(q *db.Queries) (err error) {
			rows, err = q.ListProjectTasks(r.Context(), db.ListProjectTasksParams{
				TenantID: tenant, ProjectID: project, AfterPosition: math.Inf(-1), Lim: int32(limit + 1),
			})
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		page := struct {
			Items      []db.Task `json:"items"`
			NextCursor *string   `json:"next_cursor"`
		}{Items: make([]db.Task, 0, len(rows))}
		for _, row := range rows[:min(limit, len(rows))] {
			page.Items = append(page.Items, row.Task)
		}
		if len(rows) > limit {
			last := rows[limit-1].Task
			next := cursor.Encode(struct {
				F  float64   `json:"f"`
				ID uuid.UUID `json:"id"`
			}{last.Position, last.ID})
			page.NextCursor = &next
		}
		writeJSON(w, page)
	})
	mux.HandleFunc("GET /tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := uuid.Parse(r.PathValue("id"))
		var row db.GetTaskRow
		err := read(r.Context(), func(q *db.Queries) (err error) {
			row, err = q.GetTask(r.Context(), db.GetTaskParams{TenantID: tenant, ID: id})
			return err
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			http.NotFound(w, r)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			writeJSON(w, row.Task)
		}
	})

	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Fprintf(os.Stderr, "baseline listening on %s\n", *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
