// Package workers runs the long-lived parts of a process (the HTTP server now; the outbox relay,
// sweeps and queue workers next) as one group, and stops them in order.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Worker is one long-lived part of the process. Run works until its context is cancelled, then
// returns nil (or the context's error). Returning earlier, with or without an error, stops the
// whole group.
type Worker struct {
	Name string
	Run  func(ctx context.Context) error
}

// errEarly is what a worker that returned nil before it was stopped is reported with.
var errEarly = errors.New("returned before it was stopped")

// Run starts every worker and blocks until ctx is done or a worker returns. Then it stops them
// one at a time in the order given, cancelling each worker's context only after the one before
// it has returned: the HTTP server, given first, stops accepting and drains its requests while
// the workers behind it still run, and the caller closes what they share (the pool) once Run
// has returned. Workers' contexts carry ctx's values but not its cancellation.
//
// Run returns nil after a stop caused by ctx; otherwise the error of the worker that stopped
// the group. Errors that other workers return while stopping are joined to it.
func Run(ctx context.Context, logger *slog.Logger, workers ...Worker) error {
	type running struct {
		Worker
		cancel context.CancelFunc
		done   chan struct{}
		err    error
	}
	all := make([]*running, len(workers))
	exited := make(chan *running, len(workers))
	for i, w := range workers {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := &running{Worker: w, cancel: cancel, done: make(chan struct{})}
		all[i] = r
		go func() {
			defer close(r.done)
			r.err = w.Run(wctx)
			exited <- r
		}()
	}

	var errs []error
	var first *running
	select {
	case <-ctx.Done():
		logger.InfoContext(ctx, "stopping workers", "reason", context.Cause(ctx).Error())
	case first = <-exited:
		err := first.err
		if err == nil {
			err = errEarly
		}
		errs = append(errs, fmt.Errorf("worker %s: %w", first.Name, err))
		logger.ErrorContext(ctx, "worker failed; stopping the others", "worker", first.Name, "error", err.Error())
	}
	for _, r := range all {
		start := time.Now()
		r.cancel()
		<-r.done
		if r == first {
			continue
		}
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			errs = append(errs, fmt.Errorf("worker %s: stop: %w", r.Name, r.err))
			logger.ErrorContext(ctx, "worker stopped with an error", "worker", r.Name, "error", r.err.Error())
			continue
		}
		logger.InfoContext(ctx, "worker stopped", "worker", r.Name, "took", time.Since(start).String())
	}
	return errors.Join(errs...)
}

// HTTPServer serves srv on ln. When stopped it closes the listener, lets requests in flight
// finish for at most drain, then closes the connections that are left and returns an error
// saying the drain timed out. srv.Shutdown does not wait for hijacked connections (WebSocket):
// their handlers must end them when the server shuts down (srv.RegisterOnShutdown).
func HTTPServer(srv *http.Server, ln net.Listener, drain time.Duration) Worker {
	return Worker{Name: "http", Run: func(ctx context.Context) error {
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			_ = srv.Close()
			<-served
			return fmt.Errorf("drain within %s: %w", drain, err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	}}
}
