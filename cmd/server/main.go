// Command server runs the Tasker API. `server migrate` applies the database migrations as the
// owner role; `server` (or `server serve`) serves HTTP as the application role.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/internal/auth"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/files"
	"github.com/tasker/tasker/internal/migrate"
	"github.com/tasker/tasker/internal/realtime"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
	"github.com/tasker/tasker/internal/webhooks"
	"github.com/tasker/tasker/internal/workers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], env.ToMap(os.Environ()), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// run is the whole command; environ is the process environment (a map in tests).
func run(ctx context.Context, args []string, environ map[string]string, out io.Writer) error {
	if len(args) > 0 && args[0] == "keygen" {
		// Needs no configuration: prints a new Ed25519 signing key for JWT_SIGNING_KEYS_FILE.
		_, err := out.Write(tokens.EncodePEM(tokens.GenerateKey()))
		return err
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: cfg.LogLevel}))

	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "migrate":
		return migrate.Up(ctx, cfg.DatabaseURL, logger)
	case "serve":
		return serve(ctx, cfg, logger, nil)
	case "billing-reconcile":
		return reconcileBilling(ctx, cfg, logger, args[1:])
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate, billing-reconcile or keygen)", cmd)
	}
}

// reconcileBilling applies the Stripe events this deployment missed (an outage longer than
// Stripe's three days of retries): it lists the handled events from -since (by default the 30
// days Stripe keeps) and applies them oldest first, each once; those already recorded are
// skipped. It is safe to run at any time, as often as wanted, and exits non-zero when an event
// failed or was parked, so a cron job notices.
func reconcileBilling(ctx context.Context, cfg config, logger *slog.Logger, args []string) error {
	flags := flag.NewFlagSet("billing-reconcile", flag.ContinueOnError)
	since := flags.String("since", "", "RFC 3339 time to list events from (default: 30 days ago, all Stripe keeps)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if cfg.StripeSecretKey == "" {
		return errors.New("billing-reconcile: STRIPE_SECRET_KEY is not set")
	}
	bc, err := cfg.billing()
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, cfg.DatabaseURL, database.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	events := handlers.NewStripeEvents(tenancy.New(pool).WakeOnCommit(realtime.Channel), bc, logger, nil)
	from := time.Now().Add(-handlers.ReconcileWindow)
	if *since != "" {
		if from, err = time.Parse(time.RFC3339, *since); err != nil {
			return fmt.Errorf("billing-reconcile: -since: %w", err)
		}
	}
	done, err := events.Reconcile(ctx, bc.Stripe, from)
	logger.InfoContext(ctx, "billing reconciled", "since", done.Since, "listed", done.Listed, "outcomes", done.Outcomes)
	return err
}

// serve runs the workers (only the HTTP server so far) until ctx is cancelled or one fails, then
// stops them in order: the HTTP server stops accepting and drains in-flight requests for at most
// cfg.ShutdownTimeout, then the other workers stop, then the pool closes. ready, if not nil,
// receives the bound address.
func serve(ctx context.Context, cfg config, logger *slog.Logger, ready chan<- string) error {
	logger.InfoContext(ctx, "starting", "config", cfg)
	pool, err := database.Open(ctx, cfg.DatabaseURL, database.Options{MaxConns: int32(cfg.DBMaxConns)})
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		database.NewPoolCollector(pool))
	keys, err := signingKeys(cfg, logger)
	if err != nil {
		return err
	}
	issuer := tokens.NewIssuer(tokens.IssuerConfig{
		Keys: keys, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTTL,
	})
	store := tenancy.New(pool)
	revocations := auth.NewRevocations(cfg.AccessTTL)
	var rt *realtime.Service
	var rtHandler http.Handler
	if cfg.RealtimeEnabled {
		store = store.WakeOnCommit(realtime.Channel)
		rc := cfg.realtime()
		rc.DB, rc.Issuer, rc.Revocations, rc.Logger, rc.Listen = store, issuer, revocations, logger, pool.Config().ConnConfig.Copy()
		rt = realtime.New(rc)
		rtHandler = rt
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tasker_realtime_connections", Help: "Open realtime WebSocket connections on this instance.",
		}, func() float64 { return float64(rt.Connections()) }))
	}
	filesCfg, err := cfg.files(ctx, keys)
	if err != nil {
		return err
	}
	billingCfg, err := cfg.billing()
	if err != nil {
		return err
	}
	ssoCfg, err := cfg.sso()
	if err != nil {
		return err
	}
	webhooksCfg, err := cfg.webhooks()
	if err != nil {
		return err
	}
	// Outbound webhooks run when endpoints can exist (their secrets need the key).
	var deliveries *webhooks.Service
	if webhooksCfg.Box != nil {
		store = store.WakeOnCommit(realtime.Channel)
		if deliveries, err = webhooks.New(pool, realtime.Channel, cfg.deliveries(webhooksCfg, store, logger)); err != nil {
			return err
		}
		store = store.WithJobs(deliveries.Jobs())
	}
	handler, err := handlers.NewHTTPHandler(ctx, handlers.Config{
		Files: filesCfg, Billing: billingCfg, SSO: ssoCfg, Webhooks: webhooksCfg,
		DB: store, Logger: logger, Registry: reg, Revocations: revocations, Realtime: rtHandler,
		Password: cfg.argon2(), MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout,
		Issuer:             issuer,
		Sessions:           cfg.sessions(),
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// The timeouts hold for every route. Routes that stream (server-sent events) or upgrade to a
	// WebSocket will lift them for their own connection only, with
	// http.NewResponseController(w).SetReadDeadline(time.Time{}) and SetWriteDeadline(time.Time{}),
	// be mounted outside the REQUEST_TIMEOUT deadline, and end their connections on shutdown
	// themselves (Shutdown does not wait for hijacked connections).
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext:       handlers.ConnContext,
	}
	base := baseURL(ln.Addr())
	logger.InfoContext(ctx, "listening", "api", base+"/v1", "docs", base+"/docs/", "openapi", base+"/openapi.yaml",
		"health", base+"/healthz", "metrics", base+"/metrics")
	if ready != nil {
		ready <- ln.Addr().String()
	}

	group := []workers.Worker{workers.HTTPServer(srv, ln, cfg.ShutdownTimeout)}
	if rt != nil {
		group[0] = afterReady(rt, logger, group[0])
		// Stopped after the HTTP drain: sockets close with 1001, then the relay stops.
		group = append(group, workers.Worker{Name: "realtime-sockets", Run: func(ctx context.Context) error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			rt.Shutdown(sctx)
			return nil
		}}, workers.Worker{Name: "realtime-relay", Run: rt.Run})
	}
	if deliveries != nil {
		group = append(group, workers.Worker{Name: "webhook-deliveries", Run: deliveries.Run})
	}
	sweeper := &files.Sweeper{Store: filesCfg.Store, DB: store, Grace: cfg.FileSweepGrace, Logger: logger}
	group = append(group, workers.Worker{Name: "file-sweep", Run: func(ctx context.Context) error {
		return sweeper.Run(ctx, cfg.FileSweepInterval)
	}})
	err = workers.Run(ctx, logger, group...)
	pool.Close()
	logger.Info("database pool closed")
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// afterReady holds w back until the relay listens and has loaded the revocations of the last
// token lifetime, so the instance never accepts a token another instance already revoked; after
// 10 s it starts anyway, and says so.
func afterReady(rt *realtime.Service, logger *slog.Logger, w workers.Worker) workers.Worker {
	run := w.Run
	w.Run = func(ctx context.Context) error {
		select {
		case <-rt.Ready():
		case <-time.After(10 * time.Second):
			logger.Warn("realtime relay not ready after 10s; serving anyway")
		case <-ctx.Done():
			return nil
		}
		return run(ctx)
	}
	return w
}

func baseURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		port := 0
		if ok {
			port = tcp.Port
		}
		return fmt.Sprintf("http://localhost:%d", port)
	}
	return "http://" + tcp.String()
}

func signingKeys(cfg config, logger *slog.Logger) (*tokens.KeySet, error) {
	if pem := cfg.signingKeysPEM(); len(pem) > 0 {
		return tokens.ParsePEM(pem)
	}
	logger.Warn("no JWT_SIGNING_KEYS_FILE: signing with a key generated for this process; " +
		"tokens will not survive a restart or verify on other instances (run `server keygen` for a real one)")
	return tokens.NewKeySet(tokens.GenerateKey())
}
