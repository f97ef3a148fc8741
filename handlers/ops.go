package handlers

import (
	"context"
	"time"

	"github.com/tasker/tasker/gen/api"
	"github.com/tasker/tasker/internal/problem"
)

// GetHealthz answers while the process is up.
func (s *Server) GetHealthz(context.Context, api.GetHealthzRequestObject) (api.GetHealthzResponseObject, error) {
	return api.GetHealthz200JSONResponse{Status: api.Ok}, nil
}

// GetReadyz answers 200 only when the database answers within two seconds.
func (s *Server) GetReadyz(ctx context.Context, _ api.GetReadyzRequestObject) (api.GetReadyzResponseObject, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		return nil, problem.Wrap(problem.Unavailable, err, "The database is not reachable.")
	}
	return api.GetReadyz200JSONResponse{Status: api.Ok}, nil
}
