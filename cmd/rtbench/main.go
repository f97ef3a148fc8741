// Command rtbench measures the realtime stream of a running Tasker server: how long a task
// write takes to reach N WebSocket subscribers of its project, whether every subscriber gets
// every event exactly once and in order, and what an idle socket costs the server in memory.
// It only talks to the URL it is given, and stops after -duration (plus the grace period).
//
//	rtbench -url http://127.0.0.1:8080 -subscribers 1000 -rate 20 -duration 30s
//	rtbench -url http://127.0.0.1:8080 -subscribers 10000 -rate 2 -duration 30s -users 1
//	rtbench -url http://127.0.0.1:8080 -mode writes -concurrency 16 -duration 15s
//	rtbench -mode baseline -listen 127.0.0.1:8093 &   # then fanout with -url http://127.0.0.1:8093
//
// Mode fanout (the default) signs up a fresh tenant, creates a team and a project, opens
// -subscribers sockets to project:<id> (spread round-robin over -users users of the tenant),
// waits until every one is subscribed, then creates tasks at -rate a second for -duration,
// open loop (each write on its own goroutine at its scheduled time). Every socket records what
// it receives; after the writes and -grace the run is matched up per socket and per write.
// Mode baseline serves the same-run baseline for mode fanout on -listen: the same calls answered
// by a minimal coder/websocket fan-out with no database (see serveBaseline); run mode fanout
// against it right before or after the server to get a ratio from the same state of the machine.
// Mode writes creates tasks as fast as -concurrency clients can for -duration, with no socket,
// so the same run against a server with REALTIME_ENABLED=true and one with false gives the cost
// of the NOTIFY on commit.
// -client picks how mode fanout reads its sockets. The client shares the machine's cores with
// the server, so what it spends per received frame is taken from the latency it measures:
// epoll (the default; Linux, plain ws only) does the handshake by hand and reads every socket
// from -readers goroutines, each with an epoll instance of its own; library runs a
// coder/websocket client with a reader goroutine per socket, which costs about twice the client
// CPU per frame and, at 10,000 sockets, a visible share of two cores.
//
// The server must allow the sockets (REALTIME_MAX_CONNECTIONS_PER_USER at least
// subscribers/users) and the sign-ins (LOGIN_RATE_PER_IP counts sign-ups and logins: 1 + users,
// or -tenants in mode writes).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/tasker/tasker/gen/api"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rtbench:", err)
		os.Exit(1)
	}
}

type options struct {
	url         string
	mode        string
	subscribers int
	users       int
	rate        float64
	duration    time.Duration
	grace       time.Duration
	dialers     int
	gcWait      time.Duration
	concurrency int
	tenants     int
	warmup      time.Duration
	cpuProfile  string
	listen      string
	client      string
	readers     int
}

func run() error {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "server base URL")
	flag.StringVar(&o.mode, "mode", "fanout", "fanout (sockets and paced writes), writes (creates as fast as possible, no sockets), or baseline (serve the minimal fan-out server on -listen)")
	flag.IntVar(&o.subscribers, "subscribers", 1000, "fanout: WebSocket subscribers to the project")
	flag.IntVar(&o.users, "users", 1, "fanout: users the sockets are spread over (the server caps sockets per user)")
	flag.Float64Var(&o.rate, "rate", 20, "fanout: task creates a second")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long to write")
	flag.DurationVar(&o.grace, "grace", 5*time.Second, "fanout: how long after the last write's response a delivery still counts")
	flag.IntVar(&o.dialers, "dialers", 32, "fanout: sockets being opened at once")
	flag.StringVar(&o.client, "client", "epoll", "fanout: how the sockets are read: epoll (a hand-written client, every socket read from -readers epoll goroutines; Linux, http:// only) or library (coder/websocket, a reader goroutine per socket: about twice the client CPU per frame)")
	flag.IntVar(&o.readers, "readers", 1, "fanout, -client epoll: reader goroutines, each with its own epoll instance and an equal share of the sockets")
	flag.DurationVar(&o.gcWait, "gcwait", 0, "fanout: before each memory reading, wait up to this long for a garbage collection in the server (it runs one every 2 minutes when idle); 0 reads at once")
	flag.IntVar(&o.concurrency, "concurrency", 16, "writes: concurrent clients")
	flag.IntVar(&o.tenants, "tenants", 1, "writes: tenants the clients are spread over (each tenant's event ids serialise its own writes)")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "writes: creates before the measured period")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8093", "baseline: address to serve on")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the client's own CPU profile to this file")
	flag.Parse()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	switch o.mode {
	case "fanout":
		if o.subscribers < 1 || o.users < 1 || o.users > o.subscribers || o.rate <= 0 {
			return errors.New("want -subscribers >= -users >= 1 and -rate > 0")
		}
		if o.client != "epoll" && o.client != "library" {
			return fmt.Errorf("unknown -client %q: want epoll or library", o.client)
		}
		if o.readers < 1 {
			return errors.New("want -readers >= 1")
		}
		if o.client == "epoll" && !strings.HasPrefix(o.url, "http://") {
			return errors.New("-client epoll speaks plain ws only: want an http:// -url, or -client library")
		}
		if err := raiseFileLimit(uint64(o.subscribers) + 1024); err != nil {
			return err
		}
		return fanout(context.Background(), o)
	case "writes":
		if o.concurrency < 1 || o.tenants < 1 {
			return errors.New("want -concurrency and -tenants >= 1")
		}
		return writes(context.Background(), o)
	case "baseline":
		if err := raiseFileLimit(0); err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := serveBaseline(ctx, o.listen)
		if ctx.Err() != nil {
			return nil
		}
		return err
	default:
		return fmt.Errorf("unknown -mode %q", o.mode)
	}
}

// raiseFileLimit lifts the soft limit on open files to the hard limit when want (0: the hard
// limit) is above it: every socket is a file descriptor. It says so when it does.
func raiseFileLimit(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if want == 0 {
		want = lim.Max
	}
	if lim.Cur >= want {
		return nil
	}
	if lim.Max < want {
		return fmt.Errorf("%d sockets need %d open files; the hard limit is %d", want-1024, want, lim.Max)
	}
	old := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	fmt.Printf("open-file soft limit raised from %d to %d\n", old, lim.Cur)
	return nil
}

// tenant is a signed-up tenant with a team and a project to write tasks into.
type tenant struct {
	slug    string
	owner   string // the owner's access token
	team    uuid.UUID
	project uuid.UUID
}

const password = "rtbench password"

func newClient(url string, conns int) (*api.ClientWithResponses, error) {
	httpClient := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
	}
	return api.NewClientWithResponses(url, api.WithHTTPClient(httpClient))
}

func bearer(token string) api.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// signup creates a tenant (its owner signed in) with team RT and project RT.
func signup(ctx context.Context, client *api.ClientWithResponses) (tenant, error) {
	suffix := make([]byte, 5)
	_, _ = rand.Read(suffix)
	t := tenant{slug: "rt-" + hex.EncodeToString(suffix)}
	resp, err := client.SignupWithResponse(ctx, api.SignupRequest{TenantName: "Realtime bench", TenantSlug: t.slug,
		Email: "owner@example.test", Password: password, Name: "Owner"})
	if err != nil {
		return t, err
	}
	if resp.JSON201 == nil {
		return t, fmt.Errorf("signup: %d %s", resp.StatusCode(), resp.Body)
	}
	t.owner = resp.JSON201.Tokens.AccessToken
	team, err := client.CreateTeamWithResponse(ctx, nil, api.TeamCreate{Key: "RT", Name: "Realtime"}, bearer(t.owner))
	if err != nil {
		return t, err
	}
	if team.JSON201 == nil {
		return t, fmt.Errorf("create team: %d %s", team.StatusCode(), team.Body)
	}
	t.team = team.JSON201.Id
	project, err := client.CreateProjectWithResponse(ctx, nil, api.ProjectCreate{Key: "RT", Name: "Realtime", TeamId: t.team}, bearer(t.owner))
	if err != nil {
		return t, err
	}
	if project.JSON201 == nil {
		return t, fmt.Errorf("create project: %d %s", project.StatusCode(), project.Body)
	}
	t.project = project.JSON201.Id
	return t, nil
}

// addMember creates a member of the team with a password and signs them in; it returns their
// access token.
func (t tenant) addMember(ctx context.Context, client *api.ClientWithResponses, i int) (string, error) {
	email := fmt.Sprintf("member%d@example.test", i)
	pw := password
	user, err := client.CreateUserWithResponse(ctx, nil, api.UserCreate{Email: openapi_types.Email(email), Name: fmt.Sprintf("Member %d", i),
		Password: &pw, Role: api.UserRoleMember}, bearer(t.owner))
	if err != nil {
		return "", err
	}
	if user.JSON201 == nil {
		return "", fmt.Errorf("create user: %d %s", user.StatusCode(), user.Body)
	}
	put, err := client.PutTeamMemberWithResponse(ctx, t.team, user.JSON201.User.Id, api.TeamMemberPut{Role: api.TeamRoleMember}, bearer(t.owner))
	if err != nil {
		return "", err
	}
	if put.StatusCode()/100 != 2 {
		return "", fmt.Errorf("put team member: %d %s", put.StatusCode(), put.Body)
	}
	login, err := client.LoginWithResponse(ctx, api.LoginRequest{TenantSlug: t.slug, Email: email, Password: pw})
	if err != nil {
		return "", err
	}
	if login.JSON200 == nil {
		return "", fmt.Errorf("login: %d %s", login.StatusCode(), login.Body)
	}
	return login.JSON200.AccessToken, nil
}

// createTask creates one task and returns its id.
func (t tenant) createTask(ctx context.Context, client *api.ClientWithResponses, title string) (uuid.UUID, error) {
	resp, err := client.CreateTaskWithResponse(ctx, t.project, nil, api.TaskCreate{Title: title}, bearer(t.owner))
	if err != nil {
		return uuid.Nil, err
	}
	if resp.JSON201 == nil {
		return uuid.Nil, fmt.Errorf("create task: %d %s", resp.StatusCode(), resp.Body)
	}
	return resp.JSON201.Id, nil
}

// durations are latency samples in nanoseconds; some may be negative (a receipt before the
// write's response arrived).
type durations []int64

func (d durations) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return time.Duration(d[min(len(d)-1, int(float64(len(d))*p))])
}

func (d durations) summary() string {
	slices.Sort(d)
	r := func(x time.Duration) time.Duration {
		if x > 10*time.Millisecond || x < -10*time.Millisecond {
			return x.Round(100 * time.Microsecond)
		}
		return x.Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s", len(d), r(d.pct(0.5)), r(d.pct(0.9)), r(d.pct(0.99)), r(d.pct(1)))
}

// cpuSeconds is this process's user plus system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
