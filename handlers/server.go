// Package handlers implements the generated API server interface: each method decodes nothing
// (the generated code did), runs one tenant transaction through internal/tenancy, and converts
// the sqlc rows into API types. It also assembles the whole HTTP stack in NewHTTPHandler.
package handlers

import (
	"log/slog"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/internal/password"
	"github.com/tasker/tasker/internal/tenancy"
)

// Server implements api.StrictServerInterface.
type Server struct {
	db       *tenancy.DB
	logger   *slog.Logger
	password password.Params
}

var _ api.StrictServerInterface = (*Server)(nil)
