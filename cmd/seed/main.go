// Command seed fills a Tasker database with benchmark data: a "bench" tenant whose BENCH project
// holds exactly -bench-tasks tasks, and -tenants more tenants (seed-1..seed-N) of uneven sizes
// holding the rest of -tasks. Rows go in as the application role through row-level security,
// one tenant-scoped transaction per batch, exactly as the API writes them.
//
//	seed -database-url "$DATABASE_URL" -tenants 1000 -tasks 1000000
//
// The database must be migrated (`server migrate`). Seed refuses a database that already holds
// seeded tenants: -reset deletes them first (through RLS, tenant by tenant; dropping the database
// is faster), and -reuse keeps them and only prints the result line. Every seeded user's password
// is "bench password 1". Progress goes to stderr; stdout gets one JSON line for benchmarks:
//
//	{"tenant_slug":"bench","email":"owner@bench.test","password":"bench password 1",
//	 "tenant_id":"...","project_id":"...","task_id":"..."}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/tasker/tasker/gen/db"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/tenancy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

type config struct {
	databaseURL string
	tenants     int
	tasks       int
	benchTasks  int
	batch       int
	workers     int
	seed        uint64
	reset       bool
	reuse       bool
}

// result is the JSON line printed on stdout: how to sign in as the bench owner and what to read.
type result struct {
	TenantSlug string    `json:"tenant_slug"`
	Email      string    `json:"email"`
	Password   string    `json:"password"`
	TenantID   uuid.UUID `json:"tenant_id"`
	ProjectID  uuid.UUID `json:"project_id"`
	TaskID     uuid.UUID `json:"task_id"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.databaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL of a migrated database (default $DATABASE_URL)")
	fs.IntVar(&cfg.tenants, "tenants", 1000, "tenants besides bench")
	fs.IntVar(&cfg.tasks, "tasks", 1_000_000, "tasks in all, bench included")
	fs.IntVar(&cfg.benchTasks, "bench-tasks", 2000, "tasks in the bench tenant's BENCH project")
	fs.IntVar(&cfg.batch, "batch", 2000, "tasks per INSERT (and per transaction)")
	fs.IntVar(&cfg.workers, "workers", 2*runtime.NumCPU(), "concurrent transactions")
	fs.Uint64Var(&cfg.seed, "seed", 1, "random seed (names, sizes and contents; ids are always new)")
	fs.BoolVar(&cfg.reset, "reset", false, "delete previously seeded tenants (bench, seed-N) first")
	fs.BoolVar(&cfg.reuse, "reuse", false, "if the database is already seeded, print the result line and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.databaseURL == "":
		return errors.New("no database: set -database-url or DATABASE_URL")
	case cfg.tenants < 0 || cfg.benchTasks < 1 || cfg.tasks < cfg.benchTasks:
		return errors.New("want -tenants >= 0 and 1 <= -bench-tasks <= -tasks")
	case cfg.batch < 1 || cfg.workers < 1:
		return errors.New("want -batch >= 1 and -workers >= 1")
	}

	pool, err := database.Open(ctx, cfg.databaseURL, database.Options{MaxConns: int32(cfg.workers + 1)})
	if err != nil {
		return err
	}
	defer pool.Close()
	tdb := tenancy.New(pool)
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	var seeded []db.TenantDirectory
	if err := tdb.Global(ctx, func(q *db.Queries) (err error) { seeded, err = q.SeededTenants(ctx); return err }); err != nil {
		return fmt.Errorf("look for seeded tenants: %w", err)
	}
	if len(seeded) > 0 {
		switch {
		case cfg.reuse:
			logf("reusing the %d seeded tenants already in the database", len(seeded))
			for _, t := range seeded {
				if t.Slug == benchSlug {
					return printResult(ctx, tdb, t.TenantID, stdout)
				}
			}
			return errors.New("the database holds seed-N tenants but no bench tenant: rerun with -reset")
		case cfg.reset:
			if err := reset(ctx, tdb, seeded, cfg.workers, logf); err != nil {
				return err
			}
		default:
			return fmt.Errorf("the database already holds %d seeded tenants (bench, seed-N): "+
				"rerun with -reset to delete them first, or -reuse to keep them (or drop the database)", len(seeded))
		}
	}

	start := time.Now()
	hash, err := password.Hash(seedPassword, password.DefaultParams)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5eed))
	plans, err := makePlan(rng, cfg.tenants, cfg.tasks, cfg.benchTasks, start)
	if err != nil {
		return err
	}

	// Phase 1: tenants, users, teams, members and projects, one transaction per tenant.
	var users, teams, projects int
	for _, t := range plans {
		users, teams, projects = users+len(t.users), teams+len(t.teams), projects+len(t.projects)
	}
	logf("seeding %d tenants, %d users, %d teams, %d projects, %d tasks with %d workers",
		len(plans), users, teams, projects, cfg.tasks, cfg.workers)
	var done atomic.Int64
	stopProgress := progress(stderr, "tenants", len(plans), &done)
	err = parallel(ctx, cfg.workers, len(plans), func(ctx context.Context, i int) error {
		if err := createTenant(ctx, tdb, &plans[i], hash); err != nil {
			return fmt.Errorf("tenant %s: %w", plans[i].slug, err)
		}
		done.Add(1)
		return nil
	})
	stopProgress()
	if err != nil {
		return err
	}
	tenantsTook := time.Since(start)

	// Phase 2: tasks, one batch per transaction, batches shuffled so that workers write to
	// different projects (and different parts of each index) at once.
	jobs := taskJobs(plans, cfg.batch, cfg.seed)
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	tasksStart := time.Now()
	done.Store(0)
	stopProgress = progress(stderr, "tasks", cfg.tasks, &done)
	err = parallel(ctx, cfg.workers, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		params := j.params(start)
		err := tdb.Write(ctx, tenancy.Scope{Tenant: j.tenant.id}, func(tx *tenancy.Tx) error { return tx.Q.SeedTasks(ctx, params) })
		if err != nil {
			return fmt.Errorf("tasks %d-%d of %s/%s: %w", j.from, j.to, j.tenant.slug, j.project.key, err)
		}
		done.Add(int64(j.to - j.from + 1))
		return nil
	})
	stopProgress()
	if err != nil {
		return err
	}
	tasksTook := time.Since(tasksStart)
	total := time.Since(start)
	rows := len(plans) + users + teams + projects + cfg.tasks
	logf("done in %s: tenants etc. %s, tasks %s (%.0f tasks/s); %d rows, %.0f rows/s overall",
		total.Round(time.Millisecond), tenantsTook.Round(time.Millisecond), tasksTook.Round(time.Millisecond),
		float64(cfg.tasks)/tasksTook.Seconds(), rows, float64(rows)/total.Seconds())
	logf("tip: run VACUUM ANALYZE as the owner or a superuser before benchmarking")
	return printResult(ctx, tdb, plans[0].id, stdout)
}

// createTenant inserts one tenant with its directory entry, users, teams, members and projects.
func createTenant(ctx context.Context, tdb *tenancy.DB, t *tenantPlan, hash string) error {
	return tdb.Write(ctx, tenancy.Scope{Tenant: t.id, User: t.users[0].id}, func(tx *tenancy.Tx) error {
		q := tx.Q
		if err := q.SeedTenant(ctx, db.SeedTenantParams{ID: t.id, Slug: t.slug, Name: t.name, Plan: t.plan}); err != nil {
			return err
		}
		if err := q.SeedTenantDirectory(ctx, db.SeedTenantDirectoryParams{Slug: t.slug, TenantID: t.id}); err != nil {
			return err
		}
		var u db.SeedUsersParams
		u.TenantID, u.PasswordHash = t.id, hash
		for _, x := range t.users {
			u.Ids, u.Emails, u.Names = append(u.Ids, x.id), append(u.Emails, x.email), append(u.Names, x.name)
			u.Roles, u.CreatedAts = append(u.Roles, x.role), append(u.CreatedAts, x.createdAt)
		}
		if err := q.SeedUsers(ctx, u); err != nil {
			return fmt.Errorf("users: %w", err)
		}
		teams := db.SeedTeamsParams{TenantID: t.id}
		members := db.SeedTeamMembersParams{TenantID: t.id}
		for _, x := range t.teams {
			teams.Ids, teams.Names, teams.Keys = append(teams.Ids, x.id), append(teams.Names, x.name), append(teams.Keys, x.key)
			teams.Descriptions, teams.CreatedAts = append(teams.Descriptions, "The "+x.name+" team."), append(teams.CreatedAts, x.createdAt)
			for k, m := range x.members {
				role := "member"
				if k == 0 {
					role = "lead"
				}
				members.TeamIds, members.UserIds = append(members.TeamIds, x.id), append(members.UserIds, t.users[m].id)
				members.Roles = append(members.Roles, role)
			}
		}
		if err := q.SeedTeams(ctx, teams); err != nil {
			return fmt.Errorf("teams: %w", err)
		}
		if err := q.SeedTeamMembers(ctx, members); err != nil {
			return fmt.Errorf("team members: %w", err)
		}
		projects := db.SeedProjectsParams{TenantID: t.id}
		for _, x := range t.projects {
			projects.Ids, projects.TeamIds = append(projects.Ids, x.id), append(projects.TeamIds, t.teams[x.team].id)
			projects.Names, projects.Keys = append(projects.Names, x.name), append(projects.Keys, x.key)
			projects.Descriptions = append(projects.Descriptions, x.name+" of "+t.name+".")
			projects.TaskSeqs, projects.CreatedAts = append(projects.TaskSeqs, int64(x.tasks)), append(projects.CreatedAts, x.createdAt)
		}
		if err := q.SeedProjects(ctx, projects); err != nil {
			return fmt.Errorf("projects: %w", err)
		}
		return nil
	})
}

// reset deletes the seeded tenants and everything they own, each in its own scope.
func reset(ctx context.Context, tdb *tenancy.DB, seeded []db.TenantDirectory, workers int, logf func(string, ...any)) error {
	start := time.Now()
	var tasks atomic.Int64
	err := parallel(ctx, workers, len(seeded), func(ctx context.Context, i int) error {
		// Counted after the commit: Write may run its function again after a deadlock.
		n, err := tenancy.WriteV(ctx, tdb, tenancy.Scope{Tenant: seeded[i].TenantID}, func(tx *tenancy.Tx) (int64, error) {
			q := tx.Q
			n, err := q.SeedDeleteTasks(ctx)
			if err != nil {
				return 0, fmt.Errorf("delete tasks of %s: %w", seeded[i].Slug, err)
			}
			if _, err := q.SeedDeleteProjects(ctx); err != nil {
				return 0, fmt.Errorf("delete projects of %s: %w", seeded[i].Slug, err)
			}
			if _, err := q.SeedDeleteTenant(ctx, seeded[i].TenantID); err != nil {
				return 0, fmt.Errorf("delete tenant %s: %w", seeded[i].Slug, err)
			}
			return n, nil
		})
		tasks.Add(n)
		return err
	})
	if err != nil {
		return fmt.Errorf("reset: %w (dropping and re-creating the database also works)", err)
	}
	logf("reset: deleted %d seeded tenants and %d tasks in %s", len(seeded), tasks.Load(), time.Since(start).Round(time.Millisecond))
	return nil
}

// printResult writes the JSON line for the bench tenant, reading the project and a task back
// through RLS.
func printResult(ctx context.Context, tdb *tenancy.DB, tenant uuid.UUID, stdout io.Writer) error {
	var row db.SeedBenchTaskRow
	err := tdb.Write(ctx, tenancy.Scope{Tenant: tenant}, func(tx *tenancy.Tx) (err error) { row, err = tx.Q.SeedBenchTask(ctx); return err })
	if err != nil {
		return fmt.Errorf("read back a bench task: %w", err)
	}
	return json.NewEncoder(stdout).Encode(result{
		TenantSlug: benchSlug, Email: benchEmail, Password: seedPassword,
		TenantID: tenant, ProjectID: row.ProjectID, TaskID: row.TaskID,
	})
}

// parallel calls fn(ctx, i) for every i in [0, n) on up to workers goroutines. The first error
// cancels ctx, stops handing out work and is returned.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// progress prints done/total and the rate every two seconds until the returned func is called.
func progress(w io.Writer, what string, total int, done *atomic.Int64) (stop func()) {
	start := time.Now()
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				n := done.Load()
				fmt.Fprintf(w, "  %s: %d/%d (%.0f%%), %.0f/s\n", what, n, total,
					100*float64(n)/float64(max(total, 1)), float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(quit); <-finished }
}
