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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

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
	logger.InfoContext(ctx, "schema up to date", "version", version)
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
