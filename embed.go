// Package tasker holds the files the binary carries with it: the API contracts and the database
// migrations. They are embedded from the repository root because go:embed cannot reach into a
// parent folder, and goose's CLI would trip over a Go file inside migrations/.
package tasker

import (
	"embed"
	"io/fs"
)

//go:embed openapi/openapi.yaml
var OpenAPISpec []byte

//go:embed openapi/asyncapi.yaml
var AsyncAPISpec []byte

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the goose migrations with migrations/ as their root.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the folder is embedded at build time, so this cannot happen at run time
	}
	return sub
}
