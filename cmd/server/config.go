package main

import (
	"fmt"
	"github.com/jackc/pgx/v5/pgconn"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/tasker/tasker/internal/middleware"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/session"
)

// config is read once from the environment; every field has a default except DatabaseURL.
type config struct {
	ListenAddr      string
	DatabaseURL     string
	DBMaxConns      int32
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	MaxBodyBytes    int64
	Argon2          password.Params

	// SigningKeysPEM holds Ed25519 private keys (PKCS #8 PEM); the first signs. Empty means a
	// throwaway key generated at start-up, for development only.
	SigningKeysPEM []byte
	JWTIssuer      string
	JWTAudience    string
	AccessTTL      time.Duration
	Sessions       session.Config
	// CORSAllowedOrigins are the exact origins browser clients may call from; none by default.
	CORSAllowedOrigins []string
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		ListenAddr:      ":8080",
		DBMaxConns:      10,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 20 * time.Second,
		MaxBodyBytes:    1 << 20,
		Argon2:          password.DefaultParams,
		JWTIssuer:       "tasker",
		JWTAudience:     "tasker-api",
		AccessTTL:       15 * time.Minute,
		Sessions:        session.DefaultConfig,
	}
	var errs []error
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	num := func(name string, set func(int64)) {
		if v := getenv(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a positive integer", name, v))
				return
			}
			set(n)
		}
	}
	str("LISTEN_ADDR", &c.ListenAddr)
	str("DATABASE_URL", &c.DatabaseURL)
	num("DB_MAX_CONNS", func(n int64) { c.DBMaxConns = int32(min(n, 1000)) })
	num("MAX_BODY_BYTES", func(n int64) { c.MaxBodyBytes = n })
	num("ARGON2_MEMORY_KIB", func(n int64) { c.Argon2.Memory = uint32(min(n, 4<<20)) })
	num("ARGON2_TIME", func(n int64) { c.Argon2.Time = uint32(min(n, 100)) })
	num("ARGON2_THREADS", func(n int64) { c.Argon2.Threads = uint8(min(n, 255)) })
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a duration such as 20s", name, v))
				return
			}
			*dst = d
		}
	}
	dur("SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	dur("ACCESS_TOKEN_TTL", &c.AccessTTL)
	dur("REFRESH_GRACE", &c.Sessions.Grace)
	dur("SESSION_MAX_AGE", &c.Sessions.MaxAge)
	dur("SESSION_IDLE_TIMEOUT", &c.Sessions.IdleTimeout)
	num("LOGIN_RATE_PER_IP", func(n int64) { c.Sessions.LoginPerIP = int(min(n, 1e6)) })
	num("LOGIN_RATE_PER_ACCOUNT", func(n int64) { c.Sessions.LoginPerAccount = int(min(n, 1e6)) })
	str("JWT_ISSUER", &c.JWTIssuer)
	str("JWT_AUDIENCE", &c.JWTAudience)
	if v := getenv("JWT_SIGNING_KEYS"); v != "" {
		c.SigningKeysPEM = []byte(v)
	}
	if f := getenv("JWT_SIGNING_KEYS_FILE"); f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("JWT_SIGNING_KEYS_FILE: %w", err))
		}
		c.SigningKeysPEM = data
	}
	if v := getenv("CORS_ALLOWED_ORIGINS"); v != "" {
		origins, err := middleware.ParseOrigins(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err))
		}
		c.CORSAllowedOrigins = origins
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v))
		}
	}
	if c.DatabaseURL == "" {
		errs = append(errs, fmt.Errorf("DATABASE_URL is not set (make run sets it to a local database)"))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("config: %v", errs)
	}
	return c, nil
}

// logValue masks the database password so the config can be logged at start-up.
func (c config) logValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen_addr", c.ListenAddr),
		slog.String("database_url", maskURL(c.DatabaseURL)),
		slog.Int("db_max_conns", int(c.DBMaxConns)),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.Any("argon2", c.Argon2),
		slog.String("jwt_issuer", c.JWTIssuer),
		slog.String("jwt_audience", c.JWTAudience),
		slog.String("access_token_ttl", c.AccessTTL.String()),
		slog.Bool("jwt_signing_keys_configured", len(c.SigningKeysPEM) > 0),
		slog.String("refresh_grace", c.Sessions.Grace.String()),
		slog.String("session_max_age", c.Sessions.MaxAge.String()),
		slog.String("session_idle_timeout", c.Sessions.IdleTimeout.String()),
		slog.Int("login_rate_per_ip", c.Sessions.LoginPerIP),
		slog.Int("login_rate_per_account", c.Sessions.LoginPerAccount),
		slog.Any("cors_allowed_origins", c.CORSAllowedOrigins),
	)
}

// maskURL names the database without any credential, whichever form (URL or key=value) the
// connection string takes.
func maskURL(raw string) string {
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return "(unparseable)"
	}
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s", cfg.Host, cfg.Port, cfg.Database, cfg.User)
}
