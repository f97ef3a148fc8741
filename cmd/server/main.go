// Command server runs the Tasker API. `server migrate` applies the database migrations as the
// owner role; `server` (or `server serve`) serves HTTP as the application role.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tasker/tasker/handlers"
	"github.com/tasker/tasker/internal/database"
	"github.com/tasker/tasker/internal/migrate"
	"github.com/tasker/tasker/internal/tenancy"
	"github.com/tasker/tasker/internal/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	if len(args) > 0 && args[0] == "keygen" {
		// Needs no configuration: prints a new Ed25519 signing key for JWT_SIGNING_KEYS_FILE.
		_, err := out.Write(tokens.EncodePEM(tokens.GenerateKey()))
		return err
	}
	cfg, err := loadConfig(getenv)
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
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate or keygen)", cmd)
	}
}

// serve runs until ctx is cancelled, then drains in-flight requests for at most
// cfg.ShutdownTimeout and closes the pool. ready, if not nil, receives the bound address.
func serve(ctx context.Context, cfg config, logger *slog.Logger, ready chan<- string) error {
	logger.InfoContext(ctx, "starting", "config", cfg.logValue())
	pool, err := database.Open(ctx, cfg.DatabaseURL, database.Options{MaxConns: cfg.DBMaxConns})
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
	handler, err := handlers.NewHTTPHandler(ctx, handlers.Config{
		DB: tenancy.New(pool), Logger: logger, Registry: reg,
		Password: cfg.Argon2, MaxBodyBytes: cfg.MaxBodyBytes,
		Issuer: tokens.NewIssuer(tokens.IssuerConfig{
			Keys: keys, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, TTL: cfg.AccessTTL,
		}),
		Sessions:           cfg.Sessions,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	base := baseURL(ln.Addr())
	logger.InfoContext(ctx, "listening", "api", base+"/v1", "docs", base+"/docs/", "openapi", base+"/openapi.yaml",
		"health", base+"/healthz", "metrics", base+"/metrics")
	if ready != nil {
		ready <- ln.Addr().String()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
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
	if len(cfg.SigningKeysPEM) > 0 {
		return tokens.ParsePEM(cfg.SigningKeysPEM)
	}
	logger.Warn("no JWT_SIGNING_KEYS_FILE: signing with a key generated for this process; " +
		"tokens will not survive a restart or verify on other instances (run `server keygen` for a real one)")
	return tokens.NewKeySet(tokens.GenerateKey())
}
