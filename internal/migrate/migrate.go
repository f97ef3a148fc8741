// Package migrate applies Tasker's embedded goose migrations as the owner role.
package migrate

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime/debug"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	tasker "github.com/tasker/tasker"
	"github.com/tasker/tasker/internal/database"
)

//go:embed bootstrap.sql
var bootstrapSQL string

// Up creates the roles when the connecting user may (see bootstrap.sql), then applies every
// pending migration as tasker_owner, so the owner, not the login user, owns the schema.
// Concurrent migrators wait on a PostgreSQL advisory lock.
func Up(ctx context.Context, url string, logger *slog.Logger) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}

	if cfg.User != database.OwnerRole {
		if err := bootstrap(ctx, cfg); err != nil {
			return err
		}
	}

	db := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET ROLE "+database.OwnerRole)
		return err
	}))
	defer db.Close()

	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, tasker.Migrations(), goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "migration applied", "version", r.Source.Version, "file", r.Source.Path,
			"duration_ms", r.Duration.Milliseconds())
	}
	version, err := provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := riverUp(ctx, cfg, logger); err != nil {
		return err
	}
	logger.InfoContext(ctx, "schema up to date", "version", version)
	return nil
}

// riverUp applies River's own migrations (its job tables), also as tasker_owner: the default
// privileges of bootstrap.sql then give the application role what River's client needs, and
// nothing that row-level security would have to guard, since job arguments are ids only.
func riverUp(ctx context.Context, cfg *pgx.ConnConfig, logger *slog.Logger) error {
	pcfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return err
	}
	pcfg.ConnConfig = cfg.Copy()
	pcfg.MaxConns = 2
	pcfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET ROLE "+database.OwnerRole)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	for _, v := range res.Versions {
		logger.InfoContext(ctx, "river migration applied", "version", v.Version, "duration_ms", v.Duration.Milliseconds())
	}
	return nil
}

func bootstrap(ctx context.Context, cfg *pgx.ConnConfig) error {
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if _, err := db.ExecContext(ctx, bootstrapSQL); err != nil {
		return fmt.Errorf("bootstrap roles (needs a superuser, or connect as %s): %w", database.OwnerRole, err)
	}
	return nil
}

// Fingerprint identifies the schema the migrations build, so a test template built from an
// older set is never reused.
func Fingerprint() string {
	h := sha256.New()
	h.Write([]byte(bootstrapSQL))
	// River's migrations come with its module: a new version may bring new ones.
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "github.com/riverqueue/river" {
				h.Write([]byte(m.Path + "@" + m.Version))
			}
		}
	}
	_ = fs.WalkDir(tasker.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(tasker.Migrations(), path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(data)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}
