package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/pixelpipe/pixelpipe/internal/admin"
)

// runner is a part's blocking Run.
type runner interface {
	Run(ctx context.Context) error
}

// newRegistry returns a registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serve runs parts next to their admin server until ctx ends or one fails.
// /readyz answers ready while the parts run and fails from the moment
// shutdown begins.
func serve(ctx context.Context, logger *slog.Logger, adm *admin.Server, parts ...runner) error {
	g, gctx := errgroup.WithContext(ctx)
	partsCtx, stopParts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopParts()
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	adminDone := make(chan error, 1)
	go func() { adminDone <- adm.Run(adminCtx) }()

	for _, p := range parts {
		g.Go(func() error { return p.Run(partsCtx) })
	}
	adm.SetReady(true)
	logger.Info("admin serving", "addr", adm.Addr())
	go func() {
		<-gctx.Done()
		adm.SetReady(false)
		stopParts()
	}()
	err := g.Wait()
	stopAdmin()
	<-adminDone
	return err
}
