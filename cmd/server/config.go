package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/tasker/tasker/internal/password"
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
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		ListenAddr:      ":8080",
		DBMaxConns:      10,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 20 * time.Second,
		MaxBodyBytes:    1 << 20,
		Argon2:          password.DefaultParams,
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
	if v := getenv("SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT=%q: want a duration such as 20s", v))
		}
		c.ShutdownTimeout = d
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
	)
}

func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
